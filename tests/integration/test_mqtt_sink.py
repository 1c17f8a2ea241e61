"""The MQTT sink held to the shared sink contract, through a real Mosquitto, MQTT 3.1.1 and 5."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
from mqtt_peer import WAIT_S, Peer, unique, until
from sink_contract import Delivery, SinkContract

from hub import topics
from hub.broker.launcher import BrokerHandle
from hub.config import Broker
from hub.messages import Picture
from hub.mqtt.bus import Bus
from hub.publish.mqtt import MqttPictureSink

QUEUE_BOUND = 20


class MqttHarness:
    """The sink on the hub's Bus; a partner-side subscriber to ``cop/#``."""

    def __init__(self, bus: Bus, peer: Peer, broker: BrokerHandle) -> None:
        self.sink = MqttPictureSink(bus.publish)
        self.bound = QUEUE_BOUND
        self.sequenced = True
        self.bus, self.peer, self.broker = bus, peer, broker
        self.received: dict[str, list[Delivery]] = {}

    def _drain(self) -> None:
        while True:
            try:
                topic, payload, _ = self.peer.messages.get_nowait()
            except queue.Empty:
                return
            _, partner, kind = topic.split("/")
            if kind == "picture":
                delivery = Delivery(msgspec.msgpack.decode(payload, type=Picture))
            elif not payload:  # an empty retained snapshot: the old view is withdrawn
                delivery = Delivery(None)
            else:
                continue  # the retained copy of a full picture already received
            self.received.setdefault(partner, []).append(delivery)

    async def deliveries(self, partner: str, count: int) -> list[Delivery]:
        deadline = time.monotonic() + WAIT_S
        self._drain()
        while len(self.received.get(partner, [])) < count:
            assert time.monotonic() < deadline, (partner, self.received.get(partner), count)
            await asyncio.sleep(0.01)
            self._drain()
        return list(self.received.get(partner, []))

    async def starve(self) -> None:
        self.broker.kill()
        await until(lambda: not self.bus.connected.is_set(), "the bus to see the broker gone")

    def backlog(self) -> int:
        return self.bus.queued


class TestMqttSink(SinkContract):
    @pytest.fixture(autouse=True)
    def _broker(self, fresh_mosquitto: BrokerHandle, mqtt_protocol: str,
                broker_settings_for: Callable[..., Broker],
                peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
        self.broker = fresh_mosquitto
        self.settings = msgspec.structs.replace(
            broker_settings_for(fresh_mosquitto, mqtt_protocol),
            max_queued_messages=QUEUE_BOUND)
        self.partner_side = peer_factory(fresh_mosquitto, mqtt_protocol, unique("partner-side"))
        self.partner_side.subscribe(topics.COP_TREE)

    @contextlib.asynccontextmanager
    async def harness(self) -> AsyncIterator[MqttHarness]:
        async with Bus(self.settings, subscriptions=(), handler=None, will=None) as bus:
            await bus.wait_connected(WAIT_S)
            yield MqttHarness(bus, self.partner_side, self.broker)
