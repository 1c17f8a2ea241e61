"""Shared helpers of the live benchmarks: raw MQTT publishing, the hub in a child process,
hub/status and CPU readings, machine facts and the JSON results file.

The load generators write pre-encoded MQTT packets straight to a socket, so
the publisher costs a few microseconds per message and never competes with
the hub for the machine's two cores the way a paho publisher would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import platform
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from flood import UNLIMITED_BUDGET  # noqa: E402

from hub import topics  # noqa: E402
from hub.broker.launcher import find_mosquitto  # noqa: E402
from hub.config import DEFAULT_CONFIG, Budget, HubConfig, load_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- machine ---------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """The facts a reader needs to compare figures: CPU, versions, load now."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mosquitto = "not installed"
    binary = find_mosquitto()
    if binary:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
        mosquitto = (out.stdout or out.stderr).splitlines()[0].strip()
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "paho": paho.mqtt.__version__, "msgspec": msgspec.__version__,
            "mosquitto": mosquitto, "loadavg": load_average(), "platform": platform.platform(),
            "git": _git_state()}


def _git_state() -> str:
    """The commit the figures were taken at, with "-dirty" when the tree had changes."""
    out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` now, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


class CpuMeter:
    """Cores kept busy during an interval: by the whole machine, by our processes, by others.

    "Others" is what other users ran at the same time: when it is not near 0 the
    figures were taken on a shared, busy machine.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = [p for p in pids if p]
        self.t0 = time.monotonic()
        self.machine0 = _machine_busy_s()
        self.ours0 = sum(cpu_seconds(p) for p in self.pids)

    def read(self) -> dict[str, float]:
        """Average busy cores since the meter started."""
        span = max(time.monotonic() - self.t0, 1e-9)
        machine = (_machine_busy_s() - self.machine0) / span
        ours = (sum(cpu_seconds(p) for p in self.pids) - self.ours0) / span
        return {"machine_cores": round(machine, 2), "ours_cores": round(ours, 2),
                "others_cores": round(max(machine - ours, 0.0), 2)}


def write_results(name: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` and the machine facts to bench/results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"bench": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                "machine": machine_info(), **figures}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# --- raw MQTT 3.1.1 packets ------------------------------------------------------------------

def remaining_length(n: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, keepalive: int = 60) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02" + struct.pack("!HH", keepalive, len(cid)) + cid
    return b"\x10" + remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int) -> bytes:
    """An MQTT 3.1.1 PUBLISH (no retain)."""
    t = topic.encode()
    head = struct.pack("!H", len(t)) + t + (struct.pack("!H", packet_id) if qos else b"")
    return (bytes([0x30 | (qos << 1)]) + remaining_length(len(head) + len(payload))
            + head + payload)


class RawPublisher:
    """One MQTT 3.1.1 connection that writes pre-built PUBLISH packets and counts PUBACKs."""

    def __init__(self, host: str, port: int, client_id: str, qos: int) -> None:
        self.qos = qos
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id))
        answer = self.sock.recv(4)
        if answer[:1] != b"\x20" or answer[3:4] != b"\x00":
            raise ConnectionError(f"{client_id}: no CONNACK ({answer!r})")
        self.sock.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ)
        self._next_id = 0
        self.sent = 0
        self.acked = 0
        self._pending = b""

    def packet_id(self) -> int:
        """The next packet id, 1..65535."""
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def publish(self, topic: str, payload: bytes) -> bytes:
        """Build one PUBLISH for ``send`` (so several can go out in one write)."""
        self.sent += 1
        return publish_packet(topic, payload, self.qos, self.packet_id() if self.qos else 0)

    def send(self, data: bytes) -> None:
        """Write ``data`` completely, reading PUBACKs meanwhile so the broker never stalls."""
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except BlockingIOError:
                self._selector.select(0.01)
            self.read_acks()

    def read_acks(self) -> None:
        """Count the PUBACKs that have arrived (4 bytes each in MQTT 3.1.1)."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data = self._pending + chunk
            whole = len(data) // 4
            self.acked += whole
            self._pending = data[whole * 4:]

    def wait_acks(self, timeout: float) -> bool:
        """Wait until every QoS 1 message is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.qos and self.acked < self.sent and time.monotonic() < deadline:
            self._selector.select(0.05)
            self.read_acks()
        return not self.qos or self.acked >= self.sent

    def close(self) -> None:
        """Send DISCONNECT and close."""
        try:
            self.sock.setblocking(True)
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self._selector.close()
        self.sock.close()


# --- the hub in a child process --------------------------------------------------------------

def hub_config(port: int, *, client_id: str = "hub-bench", status_every_s: float = 0.25,
               interval_s: float | None = None, reorder_window_s: float | None = None,
               base: Path = DEFAULT_CONFIG, budgets: bool = False) -> HubConfig:
    """The default config, pointed at a private broker, with the given overrides.

    Sensors' budgets (``ingest.budget``) are lifted unless ``budgets``: a throughput
    benchmark sends one sensor's messages far faster than the sensor would, and
    measures the hub, not its flow control (bench_flood.py measures that).
    """
    config = load_config(base)
    replace = msgspec.structs.replace
    if not budgets:
        config = replace(config, ingest=replace(
            config.ingest, budget=msgspec.convert(UNLIMITED_BUDGET, Budget)))
    publish = replace(config.publish, status_every_s=status_every_s,
                      **({} if interval_s is None else {"interval_s": interval_s}))
    fusion = (config.fusion if reorder_window_s is None
              else replace(config.fusion, reorder_window_s=reorder_window_s))
    # No session left behind: a later phase's load must not queue up for a hub that has gone.
    broker = replace(config.broker, host="127.0.0.1", port=port, client_id=client_id,
                     session_expiry=0)
    return replace(config, broker=broker, publish=publish, fusion=fusion)


def _run_hub(config_bytes: bytes, duration: float) -> None:
    """Child process: run HubService until SIGTERM/SIGINT or ``duration``."""
    from hub.heap import keep_freed_memory
    from hub.lifecycle import stop_event
    from hub.service import HubService

    keep_freed_memory()  # as the ``hub`` command does

    logging.basicConfig(level=logging.WARNING, format="hub: %(levelname)s %(name)s: %(message)s")
    config = msgspec.msgpack.decode(config_bytes, type=HubConfig)

    async def serve() -> None:
        await HubService(config).run(stop_event(duration))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def start_hub(config: HubConfig, duration: float, *, daemon: bool = True
              ) -> mp.process.BaseProcess:
    """Start the hub in its own process (spawned, so it shares nothing with this one).

    ``daemon=False`` when the hub must start its frame workers (a daemonic process
    may not have children); the caller then stops it with ``stop_process``.
    """
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_run_hub, args=(msgspec.msgpack.encode(config), duration),
                       name="hub", daemon=daemon)
    proc.start()
    return proc


def stop_process(proc: mp.process.BaseProcess | None, timeout: float = 10.0) -> None:
    """Ask a child to stop (SIGTERM), then kill it if it does not."""
    if proc is None or proc.pid is None:
        return
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()


class StatusWatcher:
    """A paho client (own thread) that keeps the latest retained ``hub/status``."""

    def __init__(self, host: str, port: int) -> None:
        self.latest: dict[str, Any] | None = None
        self.updated = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-status-{os.getpid()}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topics.HUB_STATUS, 1)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.updated:
            self.latest = msgspec.msgpack.decode(msg.payload)
            self.updated.notify_all()

    def counter(self, name: str) -> int:
        """The latest value of one of the hub's counters (0 before any status)."""
        latest = self.latest
        return int(latest["counters"].get(name, 0)) if latest else 0

    def wait_connected(self, timeout: float) -> None:
        """Wait for a status saying the hub is online and subscribed."""
        deadline = time.monotonic() + timeout
        with self.updated:
            while not (self.latest and self.latest.get("online")
                       and self.latest.get("broker") == "connected"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"hub not connected after {timeout:g} s: {self.latest}")
                self.updated.wait(left)

    def wait_counter(self, name: str, target: int, timeout: float) -> tuple[bool, float]:
        """Wait until counter ``name`` reaches ``target``; return (reached, when, monotonic)."""
        deadline = time.monotonic() + timeout
        with self.updated:
            while self.counter(name) < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False, time.monotonic()
                self.updated.wait(left)
        return True, time.monotonic()

    def close(self) -> None:
        """Disconnect and stop the thread."""
        self.client.disconnect()
        self.client.loop_stop()
