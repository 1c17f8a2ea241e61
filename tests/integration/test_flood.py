"""One sensor floods, the others are still fused: the live hub on Mosquitto (issue 11).

``bra-uav-1`` sends FLOOD_RATE messages a second for FLOOD_S seconds (half valid,
half failing the schema) from a process of its own, far beyond a UAV's budget,
while ``ken-radar-1`` sends its usual batches. Every radar batch must be fused
into partner ken's picture and seen there promptly, the flood's excess dropped
before decoding and counted against the flooder alone, and the flood's refusals
reported on ``hub/deadletter`` as summaries whose counts add up.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack
import msgspec
import paho.mqtt.client as mqtt
from flood import Flood
from mqtt_peer import Peer, listen, unique, until
from secured import registry

from hub import messages, topics
from hub.broker.launcher import BrokerHandle
from hub.messages import DeadLetter
from hub.service import HubService

FLOODER = "bra-uav-1"
RADAR = "ken-radar-1"
FLOOD_RATE = 2_000.0
FLOOD_S = 3.0
RADAR_RATE = 10.0
TARGET = (-1.30, 36.83)
MAX_PICTURE_LATENCY_S = 2.5
"""Publish every 0.5 s behind a 0.5 s reorder window: about 1 s at rest; 46 s when it starved."""


class Pictures:
    """Receipt time and ``ts`` of each picture a partner gets."""

    def __init__(self, peer: Peer) -> None:
        self.got: list[tuple[float, float]] = []
        peer.client.on_message = self._on_message

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.got.append((time.time(), msgpack.unpackb(msg.payload)["ts"]))

    def latency(self, ts: float) -> float:
        """From ``ts`` to the receipt of the first picture fused up to it (inf: none came)."""
        return min((t for t, fused in self.got if fused >= ts), default=float("inf")) - ts


def radar_batch(seq: int, ts: float) -> bytes:
    payload: bytes = msgpack.packb({"ts": ts, "seq": seq, "detections": [
        {"kind": "geo", "lat": TARGET[0], "lon": TARGET[1] + seq * 1e-6, "sigma": 10.0}]})
    return payload


async def radar(peer: Peer, seconds: float) -> list[float]:
    """Publish the radar's batches at RADAR_RATE for ``seconds``; their ``ts``."""
    sent: list[float] = []
    started = time.monotonic()
    for seq in range(int(seconds * RADAR_RATE)):
        await asyncio.sleep(max(started + seq / RADAR_RATE - time.monotonic(), 0.0))
        ts = time.time()
        await asyncio.to_thread(peer.publish, topics.sensor(RADAR, "detections"),
                                radar_batch(seq, ts))
        sent.append(ts)
    return sent


async def test_a_flooding_sensor_is_contained_and_the_others_are_fused(
        mosquitto: BrokerHandle, peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
    config = registry()
    config = msgspec.structs.replace(
        config, broker=msgspec.structs.replace(
            config.broker, host=mosquitto.host, port=mosquitto.port, client_id=unique("hub")),
        publish=msgspec.structs.replace(config.publish, interval_s=0.5))
    service = HubService(config)
    stop = asyncio.Event()
    hub = asyncio.create_task(service.run(stop))
    partner = listen(mosquitto, "5", topics.partner_picture("ken"))
    pictures = Pictures(partner)
    monitor = listen(mosquitto, "5", topics.DEADLETTER)
    flood = Flood(mosquitto.host, mosquitto.port, "5", FLOODER, FLOOD_RATE, FLOOD_S)
    counters = service.pipeline.counters
    try:
        await until(lambda: service.bus is not None and service.bus.connected.is_set(),
                    "hub online")
        await asyncio.to_thread(flood.start)
        radar_task = asyncio.create_task(
            radar(peer_factory(mosquitto, "5", unique(RADAR)), FLOOD_S + 3.0))
        await asyncio.sleep(1.0)  # the radar alone first
        flood.go()
        flooded = await asyncio.to_thread(flood.result, 60.0)
        sent = await radar_task
        total = flooded.sent + len(sent)
        await until(lambda: counters["received"] == total, "every message at the hub")
        await asyncio.sleep(1.5)  # the last pictures; the last dead-letter summaries
    finally:
        stop.set()
        await hub
        flood.close()
        partner.close()
        monitor.close()
    assert flooded.acked and flooded.rate > 0.8 * FLOOD_RATE, flooded

    # The flooder alone paid: every radar batch fused into ken's picture, promptly.
    assert counters["over_budget"] == counters[f"over_budget.{FLOODER}"] > flooded.sent / 2
    assert counters[f"over_budget.{RADAR}"] == 0
    assert service.pipeline.group_of("ken").fused == len(sent)
    worst = max(pictures.latency(ts) for ts in sent)
    assert worst < MAX_PICTURE_LATENCY_S, f"ken's picture {worst:.1f} s behind a radar batch"

    # What its budget admitted was decoded: the valid fused, the invalid refused.
    admitted = flooded.sent - counters["over_budget"]
    valid = service.pipeline.router.counters["detection_batches"] - len(sent)
    assert counters["rejected.schema"] == counters["rejected"] == admitted - valid
    assert admitted / 4 < valid < admitted * 3 / 4
    assert counters["late"] == 0

    # Every refusal on hub/deadletter, in a few letters a second that say how many.
    letters = [messages.decode(payload, DeadLetter, 1 << 20)
               for _, payload, _ in monitor.take(monitor.messages.qsize(), 1.0)]
    assert {d.topic for d in letters} == {topics.sensor(FLOODER, "detections")}
    counts: Counter[str] = Counter()
    for letter in letters:
        counts[letter.code] += letter.count
    assert counts == {"rate": counters["over_budget"], "schema": counters["rejected.schema"]}
    assert {d.code for d in letters if d.count > 1} == {"rate", "schema"}
    assert len(letters) <= 2 * 2 * (FLOOD_S + 2)
    assert counters["dead_letters_dropped"] == 0
