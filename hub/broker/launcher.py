"""Start a private MQTT broker: Mosquitto when installed, else the embedded amqtt one.

Used by ``hub demo`` and the tests. The broker runs as a child process in its
own session (so Ctrl-C in a terminal reaches only the parent, which then stops
it), listens on a free loopback port and keeps its config, log and persistence
in a private directory that ``stop()`` removes. Handles still running at
interpreter exit are stopped by an ``atexit`` hook; a parent killed with
SIGKILL leaves Mosquitto behind (the embedded broker notices and exits),
unless it was started ``dies_with_parent`` (``hub demo``).
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Literal

from hub.broker.limits import BrokerLimits
from hub.children import end_child, exit_with_parent
from hub.errors import BrokerUnavailable

if TYPE_CHECKING:
    import ssl

Protocol = Literal["5", "3.1.1"]
Kind = Literal["mosquitto", "amqtt"]
Prefer = Literal["auto", "mosquitto", "amqtt"]

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 3
LOG = "mosquitto.log"
# Where ``hub broker-config`` puts persistence and the log, so Mosquitto may own them.
DATA = "data"
_LIVE: weakref.WeakSet[BrokerHandle] = weakref.WeakSet()


def find_server(name: str) -> str | None:
    """The path of server binary ``name`` (on PATH, else Debian's /usr/sbin), or None."""
    found = shutil.which(name)
    if found:
        return found
    fallback = Path("/usr/sbin") / name
    return str(fallback) if os.access(fallback, os.X_OK) else None


def find_mosquitto() -> str | None:
    """Return the path of the ``mosquitto`` binary, or None."""
    return find_server("mosquitto")


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Where Linux says which ports it gives to outgoing connections (and to bind port 0)."""
LISTEN_FLOOR = 10_000
"""The lowest port ``free_port`` picks: above the well-known and most services' ports."""
_handed_out: set[int] = set()
_PICKER = random.SystemRandom()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on now.

    Below the system's ephemeral range where it says which that is (and then
    never the same port twice in this process); else the kernel's bind(0). A port from
    bind(0) is one the kernel also gives to outgoing connections, so between
    this call and the listener's bind any client in any process could take it
    (a test's console once lost its port to a NATS client's connection that
    way). Below that range only another listener can.
    """
    low = _ephemeral_low()
    if low is not None and low > LISTEN_FLOOR + 100:
        # From the OS's randomness: a forked child or a seeded ``random`` would pick alike.
        for port in _PICKER.sample(range(LISTEN_FLOOR, low), 100):
            if port not in _handed_out and _binds(host, port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_low() -> int | None:
    """The first port of the ephemeral range, or None where the system does not say."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _binds(host: str, port: int) -> bool:
    """Whether a listener could bind ``port`` on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class BrokerAuth:
    """Mosquitto's password and ACL files (from ``hub broker-config``): anonymous access off."""

    password_file: Path
    acl_file: Path


def mosquitto_config(host: str, port: int, workdir: Path, persistence: bool,
                     auth: BrokerAuth | None = None, limits: BrokerLimits | None = None) -> str:
    """Return a Mosquitto config for one listener: anonymous, or with ``auth`` enforced.

    With ``auth`` the listener takes each client's user name as its client id, so no
    identity can take over another's connection by connecting with its client id.
    ``limits`` bound what each client may cost (``hub.broker.limits``); without them
    a test broker queues up to 100,000 messages per client and keeps sessions for ever.
    Persistence and the log go to ``workdir``.
    """
    access = ["allow_anonymous true"] if auth is None else [
        "use_username_as_clientid true",
        "allow_anonymous false",
        f"password_file {auth.password_file}",
        f"acl_file {auth.acl_file}",
    ]
    lines = [
        f"listener {port} {host}",
        *(limits.listener_lines() if limits is not None else []),
        *access,
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {workdir}/",
        f"log_dest file {workdir / LOG}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        *(limits.conf_lines() if limits is not None else ["max_queued_messages 100000"]),
        "# Without it Nagle holds each picture until the partner's delayed ACK (up to 40 ms):",
        "# bench_latency p50/p99 26/64 ms -> 8/16 ms.",
        "set_tcp_nodelay true",
    ]
    return "\n".join(lines) + "\n"


class BrokerHandle:
    """A running broker child process; ``stop()`` (or leaving ``with``) ends it."""

    def __init__(self, kind: Kind, host: str, port: int, argv: list[str], workdir: Path,
                 owns_workdir: bool) -> None:
        self.kind = kind
        self.dies_with_parent = False
        """Started with ``hub.children.exit_with_parent``: SIGKILLed when its starter dies."""
        self.host = host
        self.port = port
        self.protocol: Protocol = "5" if kind == "mosquitto" else "3.1.1"
        self.workdir = workdir
        self._argv = argv
        self._owns_workdir = owns_workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker's address as an ``mqtt://`` URL."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the child and wait until its port accepts connections."""
        if self.running:
            return
        self._output = open(self.workdir / f"{self.kind}.out", "ab")  # noqa: SIM115 (kept open)
        self._process = subprocess.Popen(
            self._argv, stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT,
            start_new_session=True, env=_child_env(),
            preexec_fn=exit_with_parent() if self.dies_with_parent else None)
        _LIVE.add(self)
        try:
            _wait_for_port(self.host, self.port, self._process, timeout)
        except BrokerUnavailable as exc:
            self._end(signal.SIGKILL)
            raise BrokerUnavailable(f"{exc}\n{self.log_tail()}") from exc

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), as a crash would; ``restart()`` brings it back."""
        self._end(signal.SIGKILL)

    def restart(self, timeout: float = START_TIMEOUT_S) -> None:
        """Stop the broker if it runs, then start it again on the same port."""
        self._end(signal.SIGTERM)
        self.start(timeout)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and remove its private directory."""
        self._end(signal.SIGTERM)
        _LIVE.discard(self)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the broker's log and output."""
        text = []
        for name in (LOG, f"{DATA}/{LOG}", f"{self.kind}.out"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def _end(self, signum: signal.Signals) -> None:
        process, self._process = self._process, None
        end_child(process, signum, STOP_TIMEOUT_S)
        if self._output is not None:
            self._output.close()
            self._output = None

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<BrokerHandle {self.kind} {self.url} MQTT {self.protocol} pid={self.pid}>"


def start_broker(*, host: str = "127.0.0.1", port: int | None = None,
                 workdir: Path | None = None, prefer: Prefer = "auto",
                 persistence: bool = False, timeout: float = START_TIMEOUT_S,
                 auth: BrokerAuth | None = None,
                 limits: BrokerLimits | None = None,
                 dies_with_parent: bool = False) -> BrokerHandle:
    """Start a private broker and return its handle once it accepts connections.

    Args:
        host: loopback address to listen on.
        port: a fixed port, or None for a free one (retried if another process takes it).
        workdir: where config, log and persistence go; None for a private temp dir
            that ``stop()`` removes (a given directory is kept).
        prefer: "auto" uses Mosquitto when installed, else amqtt; the others force one.
        persistence: whether Mosquitto keeps sessions across restarts (in ``workdir``).
        timeout: seconds to wait for the port.
        auth: password and ACL files Mosquitto enforces (anonymous access off); None for an
            open broker. The embedded amqtt broker ignores it and stays anonymous.
        limits: what each client may cost Mosquitto (packet size, queues, session expiry,
            connections); None for a test broker's generous defaults.
        dies_with_parent: the broker gets SIGKILL when the thread that started it ends
            (hub.children.exit_with_parent), however: call from the main thread.
    """
    binary = find_mosquitto() if prefer != "amqtt" else None
    if prefer == "mosquitto" and binary is None:
        raise BrokerUnavailable("mosquitto is not installed (apt-get install mosquitto)")
    owns = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="hub-broker-")) if workdir is None else workdir
    directory.mkdir(parents=True, exist_ok=True)
    attempts = 1 if port is not None else PORT_ATTEMPTS
    for attempt in range(attempts):
        chosen = port if port is not None else free_port(host)
        handle = _make_handle(binary, host, chosen, directory, owns, persistence, auth, limits)
        handle.dies_with_parent = dies_with_parent
        try:
            handle.start(timeout)
            return handle
        except BrokerUnavailable:
            if attempt == attempts - 1:
                if owns:
                    shutil.rmtree(directory, ignore_errors=True)
                raise
    raise AssertionError("unreachable")


def _make_handle(binary: str | None, host: str, port: int, workdir: Path, owns: bool,
                 persistence: bool, auth: BrokerAuth | None,
                 limits: BrokerLimits | None) -> BrokerHandle:
    if binary is not None:
        text = mosquitto_config(host, port, workdir, persistence, auth, limits)
        return mosquitto_handle(binary, text, host, port, workdir, owns)
    argv = [sys.executable, "-m", "hub.broker.embedded", "--host", host, "--port", str(port),
            "--parent-pid", str(os.getpid())]
    return BrokerHandle("amqtt", host, port, argv, workdir, owns)


def mosquitto_handle(binary: str, conf_text: str, host: str, port: int, workdir: Path,
                     owns: bool = False) -> BrokerHandle:
    """Write ``conf_text`` to ``workdir/mosquitto.conf``; return a handle (not started) to run it.

    ``host:port`` is the plain listener the handle waits for on start.
    """
    conf = workdir / "mosquitto.conf"
    if os.geteuid() == 0:
        # Started by root, Mosquitto drops to the `mosquitto` user, which can neither read
        # the private (0600) password and ACL files nor write the log in our directory.
        conf_text += "user root\n"
    conf.write_text(conf_text)
    return BrokerHandle("mosquitto", host, port, [binary, "-c", str(conf)], workdir, owns)


def _child_env() -> dict[str, str]:
    """Return the environment with this project importable (for ``-m hub.broker.embedded``)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the broker answers an MQTT CONNECT on ``host:port``, or raise BrokerUnavailable.

    An MQTT answer, not just an open port: another program on the port must not pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise BrokerUnavailable(f"broker exited with code {process.returncode} on start")
        if answers_mqtt(host, port):
            return
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"broker not answering on {host}:{port} after {timeout:g} s")
        time.sleep(0.05)


def answers_mqtt(host: str, port: int, timeout: float = 0.5,
                 tls: ssl.SSLContext | None = None) -> bool:
    """Send an MQTT 3.1.1 CONNECT (clean session) and say whether a CONNACK came back.

    With ``tls``, through a TLS connection made with that context (``host`` is checked).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            if tls is None:
                return _connack(raw)
            with tls.wrap_socket(raw, server_hostname=host) as sock:
                return _connack(sock)
    except OSError:  # ssl.SSLError too: a refused handshake
        return False


def _connack(sock: socket.socket) -> bool:
    client_id = f"hub-probe-{os.getpid()}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(client_id).to_bytes(2, "big") + client_id
    sock.sendall(bytes([0x10, len(body)]) + body)
    answer = sock.recv(4)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    return answer[:1] == b"\x20"


@atexit.register
def _stop_all() -> None:
    for handle in list(_LIVE):
        handle.stop()
