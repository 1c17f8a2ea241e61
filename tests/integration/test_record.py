"""``hub record`` against a real Mosquitto: every inbound message lands in the file, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec
from mqtt_peer import Peer, unique

from hub.broker.launcher import BrokerHandle
from hub.cli.record import record
from hub.config import DEFAULT_CONFIG, load_config
from hub.recording import read_recording


async def test_record_writes_sensor_topics_and_truth(
        mosquitto: BrokerHandle, mqtt_protocol: str, tmp_path: Path,
        peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
    config = load_config(DEFAULT_CONFIG)
    config = msgspec.structs.replace(config, broker=msgspec.structs.replace(
        config.broker, host=mosquitto.host, port=mosquitto.port, protocol=mqtt_protocol,
        client_id=unique("recorder")))
    path = tmp_path / "rec.mpk"
    recorder = asyncio.create_task(record(config, path, duration=4.0))
    await asyncio.sleep(1.5)
    field_unit = peer_factory(mosquitto, mqtt_protocol, unique("unit"))
    sent = [(f"sensors/ken-radar-1/{kind}", f"payload-{i}".encode())
            for i in range(50) for kind in ("detections", "telemetry")]
    sent.append(("sim/truth", b"truth"))
    sent.append(("cop/ken/picture", b"not recorded"))
    for topic, payload in sent:
        await asyncio.to_thread(field_unit.publish, topic, payload)
    assert await recorder == len(sent) - 1
    records = list(read_recording(path))
    assert [(topic, payload) for _, topic, payload in records] == sent[:-1]
    times = [t for t, _, _ in records]
    assert times == sorted(times)
