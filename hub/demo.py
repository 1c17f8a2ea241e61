"""``hub demo``: a broker, the simulators and the hub on one machine, no set-up.

The broker and the simulators run as child processes in their own sessions,
so a Ctrl-C reaches only this process, which then stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from hub.broker import start_broker
from hub.config import HubConfig
from hub.console import LiveTable
from hub.service import HubService

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "config" / "scenarios" / "default.toml"


def start_simulators(scenario: Path, host: str, port: int, protocol: str, speed: float,
                     log_path: Path) -> subprocess.Popen[bytes]:
    """Run ``python -m simulators`` against the broker in its own session."""
    command = [sys.executable, "-m", "simulators", "-s", str(scenario), "--host", host,
               "--port", str(port), "--protocol", protocol, "--speed", str(speed),
               "--no-progress"]
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Ask a child to stop, then make sure it has."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _serve(service: HubService, table: LiveTable, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    await service.run(stop, on_tick=table.show)


def run_demo(config: HubConfig, scenario: Path, duration: float | None, speed: float,
             workdir: Path) -> int:
    """Run the whole demo until ``duration`` passes or Ctrl-C; return an exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    with start_broker() as broker:
        config = msgspec.structs.replace(config, broker=msgspec.structs.replace(
            config.broker, host=broker.host, port=broker.port, protocol=broker.protocol))
        address = f"mqtt://{broker.host}:{broker.port}"
        print(f"broker: {address} (MQTT {broker.protocol}); scenario {scenario.name}; "
              f"simulator log {workdir / 'simulators.log'}", flush=True)
        sims = start_simulators(scenario, broker.host, broker.port, broker.protocol, speed,
                                workdir / "simulators.log")
        service = HubService(config)
        try:
            asyncio.run(_serve(service, LiveTable(address), duration))
        finally:
            stop_process(sims)
    with contextlib.suppress(Exception):
        print(LiveTable(address).render(service))
    return 0
