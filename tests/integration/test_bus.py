"""hub.mqtt.bus against a real Mosquitto, under MQTT 3.1.1 and 5, and the amqtt fallback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
from mqtt_peer import Peer, unique, until

from hub.broker.launcher import BrokerHandle, free_port, start_broker
from hub.config import Broker
from hub.errors import BrokerUnavailable
from hub.mqtt.bus import Bus

PeerFactory = Callable[[BrokerHandle, str, str], Peer]
SettingsFor = Callable[..., Broker]
CONNECT_S = 15.0


class Recorder:
    """A handler that keeps what it was given and raises on payloads marked bad."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        assert isinstance(payload, bytes)
        self.messages.append((topic, payload))
        if payload.startswith(b"bad"):
            raise ValueError("cannot process this payload")


def make_bus(settings: Broker, recorder: Recorder | None, topic: str,
             will: tuple[str, bytes, bool] | None = None) -> Bus:
    return Bus(settings, subscriptions=[(topic, 1)], handler=recorder, will=will,
               backoff=(0.05, 0.5))


async def test_handler_receives_qos0_and_qos1_and_qos1_is_acked(
        broker_settings: Broker, mosquitto: BrokerHandle, peer_factory: PeerFactory) -> None:
    prefix = unique("recv")
    recorder = Recorder()
    peer = peer_factory(mosquitto, broker_settings.protocol, unique("peer"))
    async with make_bus(broker_settings, recorder, f"{prefix}/+") as bus:
        await bus.wait_connected(CONNECT_S)
        sent = [(f"{prefix}/{i % 3}", f"m{i}".encode(), i % 2) for i in range(20)]
        for topic, payload, qos in sent:
            peer.publish(topic, payload, qos)
        await until(lambda: len(recorder.messages) == 20, "20 messages")
        assert sorted(recorder.messages) == sorted((t, p) for t, p, _ in sent)
        assert bus.stats.received == 20
        assert bus.stats.acked == 10  # only QoS 1 needs an ack
        assert bus.stats.handler_errors == 0
        assert bus.state == "connected"


async def test_publish_reaches_a_subscriber_and_retain_is_kept(
        broker_settings: Broker, mosquitto: BrokerHandle, peer_factory: PeerFactory) -> None:
    prefix = unique("pub")
    live = peer_factory(mosquitto, broker_settings.protocol, unique("peer"))
    live.subscribe(f"{prefix}/#")
    async with Bus(broker_settings, subscriptions=[], handler=None, will=None) as bus:
        await bus.wait_connected(CONNECT_S)
        bus.publish(f"{prefix}/a", b"zero", qos=0)
        bus.publish(f"{prefix}/b", b"one", qos=1)
        bus.publish(f"{prefix}/r", b"kept", qos=1, retain=True)
        got = await live.receive(3)
        assert sorted((t, p) for t, p, _ in got) == [
            (f"{prefix}/a", b"zero"), (f"{prefix}/b", b"one"), (f"{prefix}/r", b"kept")]
        assert bus.stats.published == 3 and bus.stats.dropped == 0
    late = peer_factory(mosquitto, broker_settings.protocol, unique("late"))
    late.subscribe(f"{prefix}/r")
    assert await late.receive(1) == [(f"{prefix}/r", b"kept", True)]


async def test_no_broker_drops_qos0_and_wait_connected_raises(mqtt_protocol: str) -> None:
    settings = Broker(host="127.0.0.1", port=free_port(), protocol=mqtt_protocol,  # type: ignore[arg-type]
                      client_id=unique("nobroker"))
    async with Bus(settings, subscriptions=[], handler=None, will=None,
                   backoff=(0.05, 0.2)) as bus:
        bus.publish("x/y", b"lost", qos=0)
        assert bus.stats.dropped == 1
        with pytest.raises(BrokerUnavailable, match="connect failed"):
            await bus.wait_connected(0.5)
    assert bus.state == "closed"


async def test_reconnects_and_resubscribes_after_broker_restart(
        fresh_mosquitto: BrokerHandle, mqtt_protocol: str, peer_factory: PeerFactory,
        broker_settings_for: SettingsFor) -> None:
    # The fresh broker keeps no state across the restart, so messages after it arrive
    # only if the bus subscribed again.
    settings = broker_settings_for(fresh_mosquitto, mqtt_protocol)
    recorder = Recorder()
    async with make_bus(settings, recorder, "restart/+") as bus:
        await bus.wait_connected(CONNECT_S)
        fresh_mosquitto.restart()
        await until(lambda: bus.stats.reconnects >= 1, "the bus to see the loss")
        await bus.wait_connected(CONNECT_S)
        peer = peer_factory(fresh_mosquitto, mqtt_protocol, unique("peer"))
        peer.publish("restart/after", b"hello", qos=1)
        await until(lambda: len(recorder.messages) == 1, "a message after the restart")
        assert recorder.messages == [("restart/after", b"hello")]


async def test_reconnects_after_broker_kill_and_sends_what_was_queued(
        fresh_mosquitto: BrokerHandle, mqtt_protocol: str, peer_factory: PeerFactory,
        broker_settings_for: SettingsFor) -> None:
    settings = broker_settings_for(fresh_mosquitto, mqtt_protocol)
    async with make_bus(settings, Recorder(), "kill/+") as bus:
        await bus.wait_connected(CONNECT_S)
        fresh_mosquitto.kill()
        await until(lambda: not bus.connected.is_set(), "the bus to see the loss")
        bus.publish("kill/x", b"dropped", qos=0)
        bus.publish("kill/x", b"queued", qos=1)
        assert (bus.stats.dropped, bus.stats.published) == (1, 1)
        # Both calls block the loop, so the peer is subscribed before the bus is back.
        fresh_mosquitto.restart()
        peer = peer_factory(fresh_mosquitto, mqtt_protocol, unique("peer"))
        peer.subscribe("kill/x")
        await bus.wait_connected(CONNECT_S)
        assert bus.stats.reconnects == 1
        assert await peer.receive(1) == [("kill/x", b"queued", False)]


async def test_persistent_session_delivers_what_came_while_away(
        broker_settings: Broker, mosquitto: BrokerHandle, peer_factory: PeerFactory) -> None:
    topic = f"{unique('away')}/t"
    first = Recorder()
    async with make_bus(broker_settings, first, topic) as bus:
        await bus.wait_connected(CONNECT_S)
    peer = peer_factory(mosquitto, broker_settings.protocol, unique("peer"))
    for i in range(5):
        peer.publish(topic, f"while-away-{i}".encode(), qos=1)
    second = Recorder()
    async with make_bus(broker_settings, second, topic) as bus:
        await until(lambda: len(second.messages) == 5, "the queued messages")
        assert second.messages == [(topic, f"while-away-{i}".encode()) for i in range(5)]
        assert bus.stats.acked == 5
    assert first.messages == []


async def test_failing_handler_is_counted_and_its_message_acked(
        broker_settings: Broker, mosquitto: BrokerHandle, peer_factory: PeerFactory,
        internal_errors: list[tuple[str, BaseException]]) -> None:
    topic = f"{unique('ack')}/t"
    peer = peer_factory(mosquitto, broker_settings.protocol, unique("peer"))
    first = Recorder()
    async with make_bus(broker_settings, first, topic) as bus:
        await bus.wait_connected(CONNECT_S)
        peer.publish(topic, b"bad message", qos=1)
        peer.publish(topic, b"good message", qos=1)
        await until(lambda: len(first.messages) == 2, "both messages")
        assert bus.stats.handler_errors == 1
        assert bus.stats.acked == 2
        assert [str(exc) for _, exc in internal_errors] == ["cannot process this payload"]
    # Had the bad message not been acked, the broker would resend it before the marker.
    second = Recorder()
    async with make_bus(broker_settings, second, topic) as bus:
        await bus.wait_connected(CONNECT_S)
        peer.publish(topic, b"marker", qos=1)
        await until(lambda: (topic, b"marker") in second.messages, "the marker")
        assert second.messages == [(topic, b"marker")]


async def test_will_is_published_when_the_connection_dies(
        broker_settings: Broker, mosquitto: BrokerHandle, peer_factory: PeerFactory) -> None:
    will_topic = f"{unique('will')}/status"
    watcher = peer_factory(mosquitto, broker_settings.protocol, unique("watch"))
    watcher.subscribe(will_topic)
    will = (will_topic, b"offline", True)
    async with make_bus(broker_settings, None, "will/unused", will=will) as bus:
        await bus.wait_connected(CONNECT_S)
        # Close the TCP connection under the bus with no MQTT DISCONNECT, as a crash would.
        sock = bus._client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        assert await watcher.receive(1) == [(will_topic, b"offline", False)]
        await until(lambda: bus.stats.reconnects == 1, "the reconnect")
        await bus.wait_connected(CONNECT_S)


async def test_amqtt_fallback_over_mqtt311(peer_factory: PeerFactory,
                                           broker_settings_for: SettingsFor,
                                           internal_errors: list[tuple[str, BaseException]]
                                           ) -> None:
    with start_broker(prefer="amqtt") as handle:
        assert handle.kind == "amqtt" and handle.protocol == "3.1.1"
        settings = broker_settings_for(handle, handle.protocol)
        recorder = Recorder()
        peer = peer_factory(handle, handle.protocol, unique("peer"))
        peer.subscribe("fallback/out")
        async with make_bus(settings, recorder, "fallback/in") as bus:
            await bus.wait_connected(CONNECT_S)
            peer.publish("fallback/in", b"bad one", qos=1)
            peer.publish("fallback/in", b"to hub", qos=1)
            await until(lambda: len(recorder.messages) == 2, "two messages")
            assert bus.stats.acked == 2 and bus.stats.handler_errors == 1
            assert len(internal_errors) == 1
            bus.publish("fallback/out", b"from hub", qos=1)
            assert await peer.receive(1) == [("fallback/out", b"from hub", False)]


async def test_a_hanging_connect_does_not_block_the_loop_and_close_settles_it() -> None:
    # A listener whose accept queue is full drops further SYNs: connect() hangs.
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        port = blackhole.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            settings = Broker(host="127.0.0.1", port=port, client_id=unique("hang"))
            async with Bus(settings, subscriptions=[], handler=None, will=None,
                           connect_timeout=1.0) as bus:
                await asyncio.sleep(0.2)
                # Had the connect run on the loop, this line would come only after it failed.
                assert bus.state == "connecting" and bus.last_error is None
            assert bus.state == "closed"
        finally:
            for filler in fillers:
                filler.close()
