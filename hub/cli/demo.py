"""``hub demo``: a broker, the simulators and the hub on one machine, no set-up.

The broker and the simulators run as child processes in their own sessions,
so a Ctrl-C reaches only this process, which then stops them in order. Both
are started from the main thread with ``hub.children.exit_with_parent``, so a
demo killed outright (SIGKILL) takes them with it; the frame workers follow
their lifeline (hub.ingest.frame_pool).

Secure by default: with Mosquitto the demo writes the ``hub broker-config``
files into ``WORKDIR/broker`` (password file, ACL, ``credentials.toml``), turns
anonymous access off, and the hub and every simulated unit log in as
themselves. The embedded amqtt fallback stays anonymous, and says so.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from hub.broker.acl import hub_identity
from hub.broker.files import BrokerFiles, describe_generated, write_auth_files
from hub.broker.launcher import Prefer, free_port, start_broker
from hub.broker.limits import broker_limits
from hub.children import exit_with_parent
from hub.cli.console import LiveTable
from hub.config import HubConfig, Tak, Web
from hub.lifecycle import stop_event
from hub.service import HubService


class Simulators:
    """``python -m simulators`` against the broker, in its own session, restarted at its end."""

    def __init__(self, scenario: Path, host: str, port: int, protocol: str, speed: float,
                 log_path: Path, credentials: Path | None = None,
                 failover: Sequence[str] = ()) -> None:
        self.command = [sys.executable, "-m", "simulators", "-s", str(scenario), "--host", host,
                        "--port", str(port), "--protocol", protocol, "--speed", str(speed),
                        "--no-progress", *(f"--failover={entry}" for entry in failover)]
        if credentials is not None:
            self.command += ["--credentials", str(credentials)]
        self.log_path = log_path
        self.runs = 0
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        """Start a run; called on the main thread (``exit_with_parent`` follows the thread)."""
        self.runs += 1
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=exit_with_parent())

    def keep_running(self) -> None:
        """Start the scenario again when it has played to its end."""
        if self.process.poll() == 0:
            self.process = self._start()

    def stop(self) -> None:
        """Stop the simulators."""
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Ask a child to stop, then make sure it has."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def with_console(config: HubConfig, files: BrokerFiles, directory: Path) -> HubConfig:
    """``config`` serving the console on a free port, logins checked against ``files``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = config.web or Web(passwd_file=str(files.auth.password_file))
    host = base.host if config.web is not None else "127.0.0.1"
    web = msgspec.structs.replace(
        base, host=host, port=base.port if config.web is not None else free_port(host),
        passwd_file=str(files.auth.password_file),
        session_secret_file=str(directory / "session.key"))
    return msgspec.structs.replace(config, web=web)


def with_tak(config: HubConfig) -> HubConfig:
    """``config`` serving TAK clients: its own ``[tak]``, else a plain loopback listener.

    The plain listener streams the first partner's picture, for an ATAK or WinTAK on
    this machine; certificates for the TLS listener are the operator's to issue.
    """
    if config.tak is not None or not config.partners:
        return config
    tak = Tak(tls_port=0, tcp_port=free_port("127.0.0.1"),
              tcp_partner=config.partners[0].id)
    return msgspec.structs.replace(config, tak=tak)


async def _serve(service: HubService, tick: Callable[[HubService], None],
                 duration: float | None) -> None:
    stop = stop_event(duration)
    await service.run(stop, on_tick=tick)


def run_demo(config: HubConfig, scenario: Path, duration: float | None, speed: float,
             workdir: Path, broker_kind: Prefer = "auto") -> int:
    """Run the whole demo until ``duration`` passes or Ctrl-C; return an exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = write_auth_files(config, workdir / "broker")
    config = with_tak(with_console(config, files, workdir / "web"))
    # The demo's broker is its own: so is its recovery state, next to it.
    config = msgspec.structs.replace(config, recovery=msgspec.structs.replace(
        config.recovery, dir=config.recovery.dir or str(workdir / "state")))
    with start_broker(prefer=broker_kind, workdir=workdir / "broker", auth=files.auth,
                      limits=broker_limits(config), dies_with_parent=True) as broker:
        secure = broker.kind == "mosquitto"
        config = msgspec.structs.replace(config, broker=msgspec.structs.replace(
            config.broker, host=broker.host, port=broker.port, protocol=broker.protocol,
            username=hub_identity(config) if secure else None))
        address = f"mqtt://{broker.host}:{broker.port}"
        print(f"broker: {address} (MQTT {broker.protocol}); scenario {scenario.name}; "
              f"simulator log {workdir / 'simulators.log'}", flush=True)
        assert config.web is not None
        print(f"console: http://{config.web.host}:{config.web.port}/ (log in as a partner, "
              f"or as {config.broker_server.operator_identity} for the mission picture)",
              flush=True)
        if config.tak is not None and config.tak.tcp_port is not None:
            print(f"TAK: tcp://{config.tak.host}:{config.tak.tcp_port} streams "
                  f"{config.tak.tcp_partner}'s picture as CoT (plain TCP, loopback)", flush=True)
        if secure:
            print("access: a password and an ACL per identity, anonymous off", flush=True)
        else:
            print("access: ANONYMOUS: the embedded amqtt broker runs without passwords or ACL; "
                  "install Mosquitto for the secure demo (the console still asks for them)",
                  flush=True)
        print(describe_generated(files, roles=("partner", "operator")), flush=True)
        sims = Simulators(scenario, broker.host, broker.port, broker.protocol, speed,
                          workdir / "simulators.log", files.credentials if secure else None)
        service = HubService(config, password=files.password(hub_identity(config))
                             if secure else None)
        table = LiveTable(address)

        def tick(service: HubService) -> None:
            sims.keep_running()
            table.show(service)

        try:
            asyncio.run(_serve(service, tick, duration))
        finally:
            sims.stop()
    print("stopped; final picture:\n" + table.render(service))
    return 0
