"""The NATS substrate with real parts: a 3-node nats-server cluster, paho and nats-py clients.

What issue 13 stands on: MQTT 3.1.1 QoS 1 across nodes, NATS's topic mapping, a
replicated JetStream stream that loses nothing when a node is SIGKILLed, an MQTT
publisher that fails over to another node with its session, a node that rejoins.
The figures each prints (``pytest -s``) are those of docs/SCALING.md.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator

import paho.mqtt.client as mqtt
import pytest
from mqtt_peer import Listener, Peer, mqtt_of, unique
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from hub.broker.launcher import free_port
from hub.cluster.connect import connect_nats
from hub.cluster.nats_server import NatsCluster
from hub.cluster.subjects import mqtt_topic_to_subject, subject_to_mqtt_topic
from hub.config import Broker
from hub.errors import BrokerUnavailable
from hub.mqtt.bus import Bus

WAIT_S = 30.0
"""Bound of every wait that spans an election (observed: under 10 s)."""


def peer(cluster: NatsCluster, index: int, prefix: str, clean_session: bool = True) -> Peer:
    """A paho MQTT 3.1.1 client on node ``index`` (NATS speaks no MQTT 5)."""
    return Peer(mqtt_of(cluster, index), "3.1.1", unique(prefix), clean_session=clean_session)


@pytest.fixture
async def nats_client(nats_cluster: NatsCluster) -> AsyncIterator[Nats]:
    """nats-py on node 0, where the MQTT peers of the mapping tests are: a subscription's
    interest reaches the other nodes a little later, and core NATS drops what nobody wants."""
    client = await connect_nats(nats_cluster.urls[:1], name=unique("test"))
    try:
        yield client
    finally:
        await client.close()


async def next_messages(subscription: object, count: int) -> list[tuple[str, bytes]]:
    got = []
    for _ in range(count):
        msg = await subscription.next_msg(timeout=5)  # type: ignore[attr-defined]
        got.append((msg.subject, msg.data))
    return got


async def test_no_node_answering_is_one_clear_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailable, match=f"no NATS server of {url} answered within 1 s"):
        await connect_nats([url], name="nobody", first_connect=1.0)


# --- MQTT across nodes, and the topic mapping --------------------------------------------


async def test_qos1_published_on_one_node_reaches_a_subscriber_on_another(
        nats_cluster: NatsCluster, nats_client: Nats) -> None:
    listener = peer(nats_cluster, 2, "sub", clean_session=False)
    listener.subscribe("sensors/+/detections", qos=1)
    native = await nats_client.subscribe("sensors.x.detections")
    await nats_client.flush()
    sender = peer(nats_cluster, 0, "pub")
    try:
        for i in range(100):
            sender.publish("sensors/x/detections", str(i).encode(), qos=1)
        got = listener.take(100)
        assert [(topic, payload) for topic, payload, _ in got] == [
            ("sensors/x/detections", str(i).encode()) for i in range(100)]
        assert await next_messages(native, 100) == [
            ("sensors.x.detections", str(i).encode()) for i in range(100)]
    finally:
        sender.close()
        listener.close()


@pytest.mark.parametrize("levels", ["x/detections", "a//b", "x/", "deep/er/still/x"])
async def test_mqtt_topics_arrive_on_the_subjects_the_helper_names(
        nats_cluster: NatsCluster, nats_client: Nats, levels: str) -> None:
    topic = f"{unique('map')}/{levels}"
    native = await nats_client.subscribe(f"{topic.split('/')[0]}.>")
    await nats_client.flush()
    sender = peer(nats_cluster, 0, "pub")
    try:
        sender.publish(topic, b"m", qos=1)
        assert await next_messages(native, 1) == [(mqtt_topic_to_subject(topic), b"m")]
    finally:
        sender.close()


@pytest.mark.parametrize("tokens", ["x.detections", "a./.b", "c/d.x", "c//d.x"])
async def test_subjects_arrive_on_the_mqtt_topics_the_helper_names(
        nats_cluster: NatsCluster, nats_client: Nats, tokens: str) -> None:
    prefix = unique("map")
    subject = f"{prefix}.{tokens}"
    listener = peer(nats_cluster, 0, "sub")
    listener.subscribe(f"{prefix}/#", qos=0)
    try:
        await nats_client.publish(subject, b"m")
        await nats_client.flush()
        assert listener.take(1) == [(subject_to_mqtt_topic(subject), b"m", False)]
    finally:
        listener.close()


def test_a_dot_in_an_mqtt_topic_closes_the_publishers_connection(
        nats_cluster: NatsCluster) -> None:
    """nats-server 2.9 refuses '.': hub ids that hold one cannot use MQTT on the cluster."""
    prefix = unique("dot")
    listener = peer(nats_cluster, 2, "sub")
    listener.subscribe(f"{prefix}/#", qos=1)
    lost = threading.Event()
    sender = peer(nats_cluster, 0, "pub")
    sender.client.on_disconnect = lambda *args: lost.set()
    try:
        sender.client.publish(f"{prefix}/radar.1/detections", b"m", qos=1)
        assert lost.wait(5), "the node kept the connection"
        with pytest.raises(AssertionError, match="received 0 of 1"):
            listener.take(1, wait_s=1.0)
    finally:
        sender.close()
        listener.close()


# --- JetStream across a node's death ------------------------------------------------------


async def publish_until_acked(js: JetStreamContext, subject: str, i: int) -> tuple[int, bool]:
    """Publish message ``i`` (its id deduplicates retries) until a node acks it."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            ack = await js.publish(subject, str(i).encode(), timeout=1.0,
                                   headers={"Nats-Msg-Id": str(i)})
            return ack.seq, bool(ack.duplicate)
        except Exception:  # no responders, timeout, no leader: the election is under way
            assert time.monotonic() < deadline, f"message {i} not acked in {WAIT_S} s"
            await asyncio.sleep(0.05)


def node_index(cluster: NatsCluster, name: str) -> int:
    return [node.name for node in cluster.nodes].index(name)


async def stream_leader(js: JetStreamContext, stream: str) -> str:
    info = await js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader is not None
    return info.cluster.leader


async def read_all(js: JetStreamContext, stream: str, last: int) -> list[bytes]:
    return [(await js.get_msg(stream, seq)).data or b"" for seq in range(1, last + 1)]


async def test_a_replicated_stream_keeps_every_message_when_its_leader_is_killed(
        fresh_nats_cluster: NatsCluster) -> None:
    cluster, total = fresh_nats_cluster, 300
    client = await connect_nats(cluster.urls, name="scans-writer")
    try:
        js = client.jetstream()
        await js.add_stream(name="SCANS", subjects=["scans.>"], num_replicas=3)
        killed = await stream_leader(js, "SCANS")
        acks, times = [], []
        for i in range(total):
            if i == total // 3:
                cluster.kill(node_index(cluster, killed))
            acks.append(await publish_until_acked(js, "scans.r1", i))
            times.append(time.monotonic())
        stall = max(b - a for a, b in itertools.pairwise(times))
        print(f"\nmeasured: stream leader {killed} SIGKILLed, longest gap between acks "
              f"{stall:.2f} s, {sum(d for _, d in acks)} duplicate acks")
        assert sorted(seq for seq, duplicate in acks if not duplicate) == list(
            range(1, total + 1))
        assert await read_all(js, "SCANS", total) == [str(i).encode() for i in range(total)]
        assert (await js.stream_info("SCANS")).state.messages == total
        assert await stream_leader(js, "SCANS") != killed
    finally:
        await client.close()


async def test_a_killed_node_restarts_and_catches_up(fresh_nats_cluster: NatsCluster) -> None:
    cluster = fresh_nats_cluster
    client = await connect_nats(cluster.urls[:1], name="rejoin", randomize=False)
    try:
        js = client.jetstream()
        await js.add_stream(name="LOG", subjects=["log.>"], num_replicas=3)
        for i in range(50):
            await publish_until_acked(js, "log.x", i)
        cluster.kill(1)
        for i in range(50, 100):  # two of three nodes are a quorum
            await publish_until_acked(js, "log.x", i)
        started = time.monotonic()
        cluster.restart(1)
        rejoined = time.monotonic() - started
        await until_caught_up(cluster, 1, "LOG", 100)
        print(f"\nmeasured: node restarted, ready (meta leader, MQTT) in {rejoined:.2f} s, "
              f"stream caught up in {time.monotonic() - started:.2f} s")
        assert cluster.node(1).meta_leader() is not None
    finally:
        await client.close()
    listener = peer(cluster, 1, "sub")
    sender = peer(cluster, 0, "pub")
    try:
        listener.subscribe("sensors/+/status", qos=1)
        sender.publish("sensors/s1/status", b"back", qos=1)
        assert listener.take(1) == [("sensors/s1/status", b"back", False)]
    finally:
        sender.close()
        listener.close()


async def until_caught_up(cluster: NatsCluster, index: int, stream: str, messages: int) -> None:
    """Wait until node ``index`` holds ``messages`` of ``stream`` (its own replica)."""
    deadline = time.monotonic() + WAIT_S
    while stored(cluster, index, stream) != messages:
        assert time.monotonic() < deadline, (
            f"node {index} holds {stored(cluster, index, stream)} of {messages} messages")
        await asyncio.sleep(0.1)


def stored(cluster: NatsCluster, index: int, stream: str) -> int | None:
    jsz = cluster.node(index).monitor("/jsz?streams=true") or {}
    for account in jsz.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail.get("name") == stream:
                return int(detail["state"]["messages"])
    return None


# --- an MQTT publisher whose node dies ----------------------------------------------------


class FailoverPublisher:
    """paho (MQTT 3.1.1, persistent session) that moves to the next node when its node goes.

    paho resends the QoS 1 messages the lost node had not acknowledged once it reconnects
    with the same client id and session; ``connect_async`` changes where it reconnects.
    A node that is up but whose MQTT session stream is electing a leader closes the
    connection after 4 s (nats-server's JetStream API timeout): the next node is tried.
    """

    def __init__(self, listeners: list[Listener], client_id: str) -> None:
        self.listeners = listeners
        self.current = 0
        self.lost_at: float | None = None
        self.nodes_tried: list[tuple[int, float]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False, protocol=MQTTProtocolVersion.MQTTv311)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_disconnect = self._next_node
        self.client.on_connect_fail = self._next_node  # a refused TCP connect is no disconnect
        self.client.connect(listeners[0].host, listeners[0].port, keepalive=5)
        self.client.loop_start()

    def _next_node(self, client: mqtt.Client, *args: object) -> None:
        self.lost_at = self.lost_at or time.monotonic()
        self.current = (self.current + 1) % len(self.listeners)
        self.nodes_tried.append((self.current, round(time.monotonic() - self.lost_at, 1)))
        target = self.listeners[self.current]
        client.connect_async(target.host, target.port, keepalive=5)

    def close(self) -> None:
        self.client.on_disconnect = self.client.on_connect_fail = None
        self.client.disconnect()
        self.client.loop_stop()


def received_ids(messages: queue.Queue[tuple[str, bytes, bool]], stamps: list[float],
                 counts: Counter[int]) -> None:
    while True:
        try:
            _, payload, _ = messages.get_nowait()
        except queue.Empty:
            return
        counts[int(payload)] += 1
        stamps.append(time.monotonic())


def test_qos1_publisher_fails_over_when_its_node_is_killed(
        fresh_nats_cluster: NatsCluster) -> None:
    cluster, total = fresh_nats_cluster, 1000
    listener = peer(cluster, 2, "sub", clean_session=False)
    listener.subscribe("sensors/+/detections", qos=1)
    sender = FailoverPublisher([mqtt_of(cluster, i) for i in (0, 1, 2)], unique("pub"))
    counts: Counter[int] = Counter()
    stamps: list[float] = []
    try:
        for i in range(total):
            if i == total // 3:
                killed_at = time.monotonic()
                cluster.kill(0)
            sender.client.publish("sensors/r1/detections", str(i).encode(), qos=1)
            time.sleep(0.002)
            received_ids(listener.messages, stamps, counts)
        deadline = time.monotonic() + WAIT_S
        while len(counts) < total and time.monotonic() < deadline:
            time.sleep(0.05)
            received_ids(listener.messages, stamps, counts)
        assert set(counts) == set(range(total)), (
            f"received {len(counts)} of {total}; publisher on node {sender.current}, "
            f"{len(sender.nodes_tried)} connects; node 2:\n{cluster.node(2).log_tail(40)}")
        stall = max(b - a for a, b in itertools.pairwise([killed_at, *stamps]) if b > killed_at)
        duplicates = sum(counts.values()) - len(counts)
        print(f"\nmeasured: QoS 1 across a node kill: {total} sent, {len(counts)} distinct "
              f"received, {duplicates} duplicates; longest gap in receiving {stall:.2f} s; "
              f"publisher moved to (node, s after the loss) {sender.nodes_tried}")
        assert sender.current != 0
    finally:
        sender.close()
        listener.close()


# --- the hub's Bus, failing over ------------------------------------------------------------


def bus_settings(cluster: NatsCluster, first: int) -> Broker:
    """The hub's broker settings: node ``first``, then the others as ``broker.failover``."""
    others = [f"{node.host}:{node.mqtt_port}" for i, node in enumerate(cluster.nodes)
              if i != first]
    node = cluster.node(first)
    return Broker(host=node.host, port=node.mqtt_port, protocol="3.1.1", keepalive=5,
                  client_id=unique("hub"), failover=others)


async def test_the_bus_moves_to_another_node_and_keeps_receiving(
        fresh_nats_cluster: NatsCluster) -> None:
    cluster, total = fresh_nats_cluster, 300
    received: list[bytes] = []
    sender = peer(cluster, 2, "pub")
    bus = Bus(bus_settings(cluster, 0), subscriptions=[("sensors/+/detections", 1)],
              handler=lambda topic, payload: received.append(payload), will=None,
              backoff=(0.2, 1.0))
    try:
        async with bus:
            await bus.wait_connected(10)
            for i in range(total):
                if i == total // 3:
                    cluster.kill(0)
                    killed_at = time.monotonic()
                sender.client.publish("sensors/r1/detections", str(i).encode(), qos=1)
                await asyncio.sleep(0.005)
            await bus.wait_connected(WAIT_S)
            back_after = time.monotonic() - killed_at
            deadline = time.monotonic() + WAIT_S
            while len(set(received)) < total and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            print(f"\nmeasured: the bus reconnected to {bus.address} {back_after:.2f} s after "
                  f"the kill; {len(set(received))} of {total} distinct received, "
                  f"{len(received) - len(set(received))} duplicates")
            assert bus.address != (cluster.node(0).host, cluster.node(0).mqtt_port)
            assert set(received) == {str(i).encode() for i in range(total)}
    finally:
        sender.close()


async def test_a_lease_given_up_while_its_renewal_is_in_flight_is_free_at_once(
        nats_cluster: NatsCluster) -> None:
    """The renew and rebalance loops run apart: a hand-over's give-up can name the revision a
    renewal is replacing. Its delete then fails, and the renewal must not hold the key again
    (it did: the next owner could never take the group)."""
    from hub.cluster.lease import Leases
    from hub.cluster.streams import connect, declare
    from hub.config import Cluster

    settings = Cluster(servers=nats_cluster.urls, prefix=unique("lease").replace("-", "_"))
    nc = await connect(settings, "lease-race")
    try:
        link = await declare(nc, settings)
        holder, next_holder = Leases(link, "wa", 2.0), Leases(link, "wb", 2.0)
        assert await holder.take("group.g1")
        update = link.kv.update

        async def renewal_landing_before_the_give_up(key: str, value: bytes, last: int) -> int:
            revision = await update(key, value, last=last)
            await holder.give_up(key)  # names `last`, the revision just replaced
            return revision

        link.kv.update = renewal_landing_before_the_give_up  # type: ignore[method-assign]
        await holder.renew()
        assert "group.g1" not in holder.held
        assert await next_holder.take("group.g1")
    finally:
        await nc.close()


async def test_a_lease_kept_for_a_failed_start_goes_to_the_worker_the_assignment_names(
        nats_cluster: NatsCluster) -> None:
    """A worker alone leases every group; its starts fail (the cluster is electing). A second
    worker joins: the groups the assignment now gives it must be given up, not renewed for ever
    (they were: the cluster demo's second fusion worker never got the mission group)."""
    from hub.cluster.lease import FUSION, GROUP, Leases, Shares, assignment
    from hub.cluster.streams import connect, declare
    from hub.config import Cluster

    settings = Cluster(servers=nats_cluster.urls, prefix=unique("shares").replace("-", "_"))
    keys = ["mission", "g1", "g2", "g3"]
    nc = await connect(settings, "shares-failed-start")
    try:
        link = await declare(nc, settings)
        started: dict[str, set[str]] = {"wa": set(), "wb": set()}

        def shares(owner: str, fail: bool) -> Shares:
            async def start(key: str) -> bool:
                if not fail:
                    started[owner].add(key)
                return not fail

            async def stop(key: str, in_order: bool) -> None:
                started[owner].discard(key)

            return Shares(Leases(link, owner, 2.0), FUSION, GROUP, keys, start, stop)

        first, second = shares("wa", fail=True), shares("wb", fail=False)
        await first.join(5.0)
        await first.rebalance()
        assert first.serving == set() and {GROUP + k for k in keys} <= set(first.leases.held)
        await second.join(5.0)
        await first.rebalance()
        await second.rebalance()
        theirs = {k for k, owner in assignment(keys, ["wa", "wb"]).items() if owner == "wb"}
        assert theirs and started["wb"] == theirs
        assert not {GROUP + k for k in theirs} & set(first.leases.held)
    finally:
        await nc.close()
