"""The live hub outlives its broker: restart and kill, then traffic resumes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgpack
import msgspec
import pytest
from mqtt_peer import Peer, unique, until

from hub.broker.launcher import BrokerHandle
from hub.config import DEFAULT_CONFIG, load_config
from hub.service import HubService


def telemetry(seq: int) -> bytes:
    return msgpack.packb({"ts": time.time(), "seq": seq, "lat": -1.29, "lon": 36.82,
                          "alt": 1800.0, "heading": 90.0, "pitch": 0.0, "roll": 0.0})


async def publish_batch(peer: Peer, first_seq: int, count: int) -> None:
    for seq in range(first_seq, first_seq + count):
        await asyncio.to_thread(peer.publish, "sensors/nld-uav-1/telemetry", telemetry(seq))


@pytest.mark.parametrize("outage", ["restart", "kill"])
async def test_hub_reconnects_and_keeps_fusing(
        fresh_mosquitto: BrokerHandle, mqtt_protocol: str, outage: str,
        peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
    config = load_config(DEFAULT_CONFIG)
    config = msgspec.structs.replace(config, broker=msgspec.structs.replace(
        config.broker, host=fresh_mosquitto.host, port=fresh_mosquitto.port,
        protocol=mqtt_protocol, client_id=unique("hub-resilience")))
    service = HubService(config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await until(lambda: service.bus is not None and service.bus.connected.is_set(), "online")
        assert service.bus is not None
        await publish_batch(peer_factory(fresh_mosquitto, mqtt_protocol, unique("uav")), 0, 20)
        await until(lambda: service.pipeline.counters["received"] == 20, "first batch")
        if outage == "kill":
            fresh_mosquitto.kill()
            await until(lambda: not service.bus.connected.is_set(), "outage noticed")
            await asyncio.to_thread(fresh_mosquitto.restart)
        else:
            await asyncio.to_thread(fresh_mosquitto.restart)
        await until(lambda: service.bus.connected.is_set(), "reconnected")
        await publish_batch(peer_factory(fresh_mosquitto, mqtt_protocol, unique("uav")), 20, 20)
        await until(lambda: service.pipeline.counters["received"] == 40, "second batch")
        await until(lambda: service.pipeline.counters["fused"] == 40, "all fused")
        assert service.pipeline.counters["rejected"] == 0
        assert service.bus.stats.reconnects >= 1
        friends = service.pipeline.groups[0].platforms.snapshot()
        assert len(friends) == 1
    finally:
        stop.set()
        await task
