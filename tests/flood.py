"""A sensor that floods: the load of the flood test and of bench/bench_flood.py.

Half of what it sends is valid (a detection batch of one detection, ``seq``
rising), half invalid (a batch whose detection lies at latitude 200: it decodes
as MessagePack and fails the schema), so both the fusion path and the refusal
path are loaded. ``flood`` publishes at a paced rate over one paho connection
with a large in-flight window, in a process of its own (spawned), so the
publisher never shares a GIL with the hub under test.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import get_args

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from hub.config import SensorKind

ORIGIN = (-1.2921, 36.8219)
KINDS = get_args(SensorKind)
IN_FLIGHT = 1_000
TICK_S = 0.005
"""The publisher sends what is due every tick, so its rate holds without a sleep per message."""

def flood_topic(sensor_id: str) -> str:
    """Where the flooding sensor publishes."""
    return f"sensors/{sensor_id}/detections"


def flood_payload(k: int, ts: float) -> bytes:
    """The ``k``-th message of a flood, stamped ``ts``: even ones valid, odd ones not."""
    lat = ORIGIN[0] + 0.01 if k % 2 == 0 else 200.0
    payload: bytes = msgpack.packb({"ts": ts, "seq": k, "detections": [
        {"kind": "geo", "lat": lat, "lon": ORIGIN[1] + 0.01, "sigma": 10.0}]})
    return payload


@dataclass(frozen=True)
class Flooded:
    """What a flood sent: messages, over how long, and whether the broker acknowledged all."""

    sent: int
    seconds: float
    acked: bool

    @property
    def rate(self) -> float:
        """Messages a second reached."""
        return self.sent / max(self.seconds, 1e-9)


def _flood(host: str, port: int, protocol: str, sensor_id: str, rate: float, seconds: float,
           conn: Connection) -> None:
    """Child process: connect, say ready, wait for go, flood, report."""
    topic, count = flood_topic(sensor_id), int(rate * seconds)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{sensor_id}",
                         protocol=(MQTTProtocolVersion.MQTTv5 if protocol == "5"
                                   else MQTTProtocolVersion.MQTTv311))
    client.max_inflight_messages_set(IN_FLIGHT)
    client.max_queued_messages_set(0)  # no limit: pacing, not paho, decides the rate
    client.connect(host, port, keepalive=30)
    client.loop_start()
    conn.send("ready")
    conn.recv()
    infos = []
    started = time.monotonic()
    for k in range(count):
        ahead = started + k / rate - time.monotonic()
        if ahead > TICK_S:
            time.sleep(ahead)
        # Stamped as sent, as a sensor would: the valid half is fused, not late.
        infos.append(client.publish(topic, flood_payload(k, time.time()), qos=1))
    seconds = time.monotonic() - started
    deadline = time.monotonic() + 30.0
    while infos and not infos[-1].is_published() and time.monotonic() < deadline:
        time.sleep(0.05)
    acked = all(info.is_published() for info in infos)
    client.disconnect()
    client.loop_stop()
    conn.send(Flooded(count, seconds, acked))


class Flood:
    """One flooding sensor in its own process: ``start()``, ``go()``, then ``result()``."""

    def __init__(self, host: str, port: int, protocol: str, sensor_id: str, rate: float,
                 seconds: float) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_flood, name="flood", daemon=True,
                                   args=(host, port, protocol, sensor_id, rate, seconds, child))

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it is connected."""
        self.process.start()
        if not self._conn.poll(timeout) or self._conn.recv() != "ready":
            raise TimeoutError("the flooding sensor did not connect")

    def go(self) -> None:
        """Start flooding."""
        self._conn.send("go")

    def result(self, timeout: float) -> Flooded:
        """Wait for the flood to end; what it sent."""
        if not self._conn.poll(timeout):
            raise TimeoutError("the flood did not end")
        flooded: Flooded = self._conn.recv()
        return flooded

    def close(self) -> None:
        """End the process, whatever it is doing."""
        self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


UNLIMITED_BUDGET = {"messages_per_s": dict.fromkeys(KINDS, 1e9),
                    "bytes_per_s": dict.fromkeys(KINDS, 1e9)}
"""``ingest.budget`` past any load: for tests and benchmarks of something else at full speed."""
