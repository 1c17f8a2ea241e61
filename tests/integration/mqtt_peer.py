"""An independent MQTT peer for integration tests: plain paho in its own thread.

The peer is deliberately not built on ``hub.mqtt.bus`` so the bus is checked against
another client, not against itself.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from hub.cluster.nats_server import NatsCluster

WAIT_S = 15.0
_ids = itertools.count()
Message = tuple[str, bytes]


def unique(prefix: str) -> str:
    """Return a client id or topic prefix no other test in this run uses."""
    return f"{prefix}-{next(_ids)}"


class Endpoint(Protocol):
    """Where an MQTT listener is: a ``BrokerHandle``, or one node of a NATS cluster."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class Listener:
    """One NATS node's MQTT listener, as an ``Endpoint``."""

    host: str
    port: int


def mqtt_of(cluster: NatsCluster, index: int) -> Listener:
    """The MQTT listener of ``cluster``'s node ``index``."""
    node = cluster.node(index)
    return Listener(node.host, node.mqtt_port)


class Peer:
    """A paho client on a background thread that records what it receives."""

    def __init__(self, handle: Endpoint, protocol: str, client_id: str,
                 username: str | None = None, password: str | None = None,
                 clean_session: bool = True) -> None:
        """``clean_session=False`` (MQTT 3.1.1) keeps the session on the broker across
        connections."""
        v5 = protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id,
            clean_session=None if v5 else clean_session,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic, bytes(m.payload), bool(m.retain)))
        self.client.connect(handle.host, handle.port, keepalive=10)
        self.client.loop_start()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK."""
        done = queue.Queue[int]()
        self.client.on_subscribe = lambda c, u, mid, rc, p: done.put(mid)
        _, mid = self.client.subscribe(topic, qos)
        assert done.get(timeout=WAIT_S) == mid

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until the broker has it (QoS 1/2) or it is written (QoS 0)."""
        self.client.publish(topic, payload, qos, retain).wait_for_publish(WAIT_S)

    def take(self, count: int, wait_s: float = WAIT_S) -> list[tuple[str, bytes, bool]]:
        """Block until ``count`` messages arrived (failing after ``wait_s``) and return them."""
        got: list[tuple[str, bytes, bool]] = []
        deadline = time.monotonic() + wait_s
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(deadline - time.monotonic(), 0.01)))
            except queue.Empty:
                raise AssertionError(f"peer received {len(got)} of {count} messages") from None
        return got

    async def receive(self, count: int = 1) -> list[tuple[str, bytes, bool]]:
        """Wait for ``count`` messages (failing after WAIT_S) and return them."""
        got: list[tuple[str, bytes, bool]] = []
        deadline = time.monotonic() + WAIT_S
        while len(got) < count:
            try:
                got.append(self.messages.get_nowait())
            except queue.Empty:
                assert time.monotonic() < deadline, f"peer received {got}, wanted {count}"
                await asyncio.sleep(0.01)
        return got

    def close(self) -> None:
        """Disconnect and stop the thread."""
        self.client.disconnect()
        self.client.loop_stop()



def listen(handle: Endpoint, protocol: str, *filters: str) -> Peer:
    """A new peer subscribed to ``filters`` at QoS 1."""
    peer = Peer(handle, protocol, unique("listener"))
    for topic in filters:
        peer.subscribe(topic)
    return peer


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait until ``predicate()`` holds; fail naming ``what`` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Client:
    """A paho client under one identity that records what it receives (the ACL tests').

    Unlike ``Peer`` it waits for the CONNACK and keeps its reason: a refused login is
    a result, not an error.
    """

    def __init__(self, handle: Endpoint, protocol: str, username: str | None,
                 password: str | None) -> None:
        self.v5 = protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"unique(f'acl-{username}')",
            protocol=MQTTProtocolVersion.MQTTv5 if self.v5 else MQTTProtocolVersion.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.messages: queue.Queue[Message] = queue.Queue()
        self.connack: queue.Queue[mqtt.ReasonCode] = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_connect = lambda c, u, f, reason, p: self.connack.put(reason)
        self.client.connect(handle.host, handle.port, keepalive=10)
        self.client.loop_start()
        self.reason = self.connack.get(timeout=WAIT_S)

    def subscribe(self, *filters: str) -> list[mqtt.ReasonCode]:
        """Subscribe at QoS 1 and return the SUBACK's reason codes."""
        done: queue.Queue[list[mqtt.ReasonCode]] = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, codes, p: done.put(codes)
        self.client.subscribe([(f, 1) for f in filters])
        return done.get(timeout=WAIT_S)

    def publish(self, topic: str, payload: bytes) -> mqtt.ReasonCode | None:
        """Publish at QoS 1, wait for the PUBACK and return its reason (MQTT 5 only)."""
        acks: queue.Queue[mqtt.ReasonCode] = queue.Queue()
        self.client.on_publish = lambda c, u, mid, reason, p: acks.put(reason)
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)
        return acks.get(timeout=WAIT_S) if self.v5 else None

    def take_until(self, marker: Message) -> list[Message]:
        """Everything received up to and including ``marker`` (failing after WAIT_S)."""
        got: list[Message] = []
        while marker not in got:
            try:
                got.append(self.messages.get(timeout=WAIT_S))
            except queue.Empty:
                raise AssertionError(f"marker {marker} never came; got {got}") from None
        return got

    def received(self) -> list[Message]:
        """What has arrived so far."""
        got: list[Message] = []
        while not self.messages.empty():
            got.append(self.messages.get_nowait())
        return got

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
