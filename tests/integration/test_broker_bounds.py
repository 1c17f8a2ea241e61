"""The bounds of the generated config, on a real Mosquitto: what a parked partner may queue,
the hub's in-flight window, the connections per listener.

Each figure comes from ``broker_limits`` of the registry the broker runs, so the tests
hold the config to its own comments, and each fails under Mosquitto's defaults (1,000
queued, no byte bound, 20 in flight, no connection limit) or the old 100,000 queue.
"""

from __future__ import annotations

import queue
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from secured import Secured, registry, start_secured

from hub import topics
from hub.broker.launcher import find_mosquitto
from hub.broker.limits import BrokerLimits, broker_limits

WAIT_S = 30.0
QUIET_S = 1.0
PARTNER = "ken"
SENSOR = "ken-radar-1"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    handle = start_secured(registry(broker_server={"persistence": False}),
                           tmp_path_factory.mktemp("bounds"))
    try:
        yield handle
    finally:
        handle.handle.stop()


@pytest.fixture(scope="module")
def limits(secured: Secured) -> BrokerLimits:
    return broker_limits(secured.config)


class Client:
    """A paho client logged in as ``identity``, with a persistent session when asked."""

    def __init__(self, secured: Secured, protocol: str, identity: str, *,
                 persistent: bool = False, manual_ack: bool = False) -> None:
        v5 = protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=identity, manual_ack=manual_ack,
            clean_session=None if v5 else not persistent,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
        self.client.username_pw_set(identity, secured.password(identity))
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acked: queue.Queue[int] = queue.Queue()
        self.session_present: queue.Queue[bool] = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_publish = lambda c, u, mid, rc, p: self.acked.put(mid)
        self.client.on_connect = lambda c, u, flags, rc, p: self.session_present.put(
            flags.session_present)
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 3600 if persistent else 0
        self.client.connect(secured.handle.host, secured.handle.port, keepalive=30,
                            clean_start=not persistent if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                            properties=properties)
        self.client.loop_start()
        self.resumed = self.session_present.get(timeout=WAIT_S)

    def subscribe(self, topic: str) -> None:
        done: queue.Queue[int] = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, rc, p: done.put(mid)
        _, mid = self.client.subscribe(topic, 1)
        assert done.get(timeout=WAIT_S) == mid

    def publish_all(self, topic: str, payloads: list[bytes]) -> None:
        """Publish at QoS 1 and wait until the broker has acknowledged every one."""
        for payload in payloads:
            self.client.publish(topic, payload, qos=1)
        for _ in payloads:
            self.acked.get(timeout=WAIT_S)

    def drain(self) -> list[mqtt.MQTTMessage]:
        """Every message that arrives until none has for QUIET_S."""
        got = []
        while True:
            try:
                got.append(self.messages.get(timeout=QUIET_S))
            except queue.Empty:
                return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def park(secured: Secured, protocol: str) -> None:
    """The partner subscribes with a persistent session, then goes away."""
    partner = Client(secured, protocol, PARTNER, persistent=True)
    partner.subscribe(topics.partner_picture(PARTNER))
    partner.drain()
    partner.close()


def come_back(secured: Secured, protocol: str) -> list[mqtt.MQTTMessage]:
    """The partner returns to its session; what the broker kept for it."""
    partner = Client(secured, protocol, PARTNER, persistent=True)
    try:
        assert partner.resumed, "the broker kept the session"
        return partner.drain()
    finally:
        partner.client.unsubscribe(topics.partner_picture(PARTNER))
        partner.close()


def test_a_parked_partner_is_queued_max_queued_messages_and_no_more(
        secured: Secured, limits: BrokerLimits, mqtt_protocol: str) -> None:
    park(secured, mqtt_protocol)
    hub = Client(secured, mqtt_protocol, "hub")
    sent = [b"%d" % n for n in range(limits.max_queued_messages + 50)]
    hub.publish_all(topics.partner_picture(PARTNER), sent)
    hub.close()
    kept = [m.payload for m in come_back(secured, mqtt_protocol)]
    assert len(kept) == limits.max_queued_messages
    assert kept == sent[:limits.max_queued_messages], "the oldest are kept, in order"


def test_a_parked_partner_is_queued_max_queued_bytes_and_no_more(
        secured: Secured, limits: BrokerLimits, mqtt_protocol: str) -> None:
    park(secured, mqtt_protocol)
    hub = Client(secured, mqtt_protocol, "hub")
    picture = bytes(64 * 1024)
    fit = -(-limits.max_queued_bytes // len(picture))  # Mosquitto admits while below the bound
    hub.publish_all(topics.partner_picture(PARTNER), [picture] * (fit + 20))
    hub.close()
    kept = come_back(secured, mqtt_protocol)
    assert len(kept) == fit < limits.max_queued_messages
    assert sum(len(m.payload) for m in kept) < limits.max_queued_bytes + len(picture)


def test_the_hubs_subscription_has_a_window_of_max_inflight_messages(
        secured: Secured, limits: BrokerLimits, mqtt_protocol: str) -> None:
    hub = Client(secured, mqtt_protocol, "hub", manual_ack=True)
    sensor = Client(secured, mqtt_protocol, SENSOR)
    try:
        hub.subscribe(topics.SENSORS_TREE)
        sensor.publish_all(topics.sensor(SENSOR, "detections"),
                           [b"%d" % n for n in range(limits.max_inflight_messages + 200)])
        unacknowledged = hub.drain()
        assert len(unacknowledged) == limits.max_inflight_messages
        for message in unacknowledged:
            hub.client.ack(message.mid, message.qos)
        assert len(hub.drain()) == 200, "acknowledging opens the window again"
    finally:
        hub.close()
        sensor.close()


def miscounted_closes() -> int:
    """Places Mosquitto wrongly frees after the start-up probe's connection closed.

    Before 2.0.12 a closed connection left the listener's count one too low
    (eclipse/mosquitto 79542158).
    """
    binary = find_mosquitto()
    assert binary is not None
    banner = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False).stdout
    version = tuple(int(n) for n in banner.split()[2].split("."))
    return 1 if version < (2, 0, 12) else 0


def test_a_listener_takes_max_connections_and_refuses_the_next(tmp_path: Path) -> None:
    secured = start_secured(registry(broker_server={"persistence": False}), tmp_path / "b")
    address = (secured.handle.host, secured.handle.port)
    opened: list[socket.socket] = []
    try:
        allowed = broker_limits(secured.config).max_connections + miscounted_closes()
        time.sleep(0.5)  # the start-up probe's connection is gone
        for _ in range(allowed):
            opened.append(socket.create_connection(address, timeout=WAIT_S))
        last = socket.create_connection(address, timeout=5.0)
        opened.append(last)
        assert last.recv(1) == b"", "the broker closes a connection beyond the limit"
        first = opened[0]
        first.settimeout(0.5)
        with pytest.raises(TimeoutError):
            first.recv(1)  # still open, waiting for its CONNECT
    finally:
        for sock in opened:
            sock.close()
        secured.handle.stop()
