"""The MQTT bus: paho-mqtt driven from the asyncio loop, with reconnect and manual acks.

paho does the protocol; the loop does the waiting. The socket is watched with
``loop.add_reader`` / ``add_writer`` (as paho's own ``examples/loop_asyncio.py``
does) and one supervisor task connects, ticks ``loop_misc`` (keepalive) and
reconnects. No thread touches paho while the socket is registered: only the TCP
connect runs in an executor so an unreachable host cannot block the loop.

The reconnect loop, in order:

1. ``reconnect()`` in an executor (DNS and TCP connect), then wait for CONNACK;
   a failed attempt aims the next one at the next broker of ``broker.failover``
   (round the list), so a client of a cluster moves off a node that died;
2. on success subscribe to every subscription again (the session may be gone)
   and set ``connected`` when the SUBACK arrives;
3. tick ``loop_misc`` once a second until the socket closes;
4. clear ``connected``, sleep an exponential, jittered, bounded delay, go to 1.

Messages are acknowledged after the handler has returned, also when it raised:
a message the handler cannot process is counted and logged, never redelivered
forever.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub import faults
from hub.config import Broker
from hub.errors import BrokerUnavailable
from hub.lifecycle import backoff_delay, first_of
from hub.metrics import RateLimitedLog
from hub.mqtt.tls import tls_context

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]
Will = tuple[str, bytes, bool]
State = Literal["idle", "connecting", "subscribing", "connected", "backoff", "closing", "closed"]

MISC_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 2.0
RESUBSCRIBE_S = 2.0
"""Seconds before subscriptions a broker refused are asked for again."""
# A readable socket may hold many packets; read until one read yields none, at most this many.
READ_BURST = 256


@dataclass(slots=True)
class BusStats:
    """Counters of one bus since it was created."""

    received: int = 0
    acked: int = 0
    published: int = 0
    dropped: int = 0
    reconnects: int = 0
    handler_errors: int = 0
    resubscribed: int = 0
    """SUBSCRIBEs sent again for subscriptions the broker refused."""

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        return asdict(self)


class Bus:
    """An MQTT client session owned by the asyncio loop; use as ``async with Bus(...)``."""

    def __init__(
        self,
        settings: Broker,
        *,
        subscriptions: Sequence[tuple[str, int]],
        handler: Handler | None,
        will: Will | None,
        client_id: str | None = None,
        password: str | None = None,
        backoff: tuple[float, float] = (0.2, 10.0),
        connect_timeout: float = CONNECT_TIMEOUT_S,
        defer_acks: bool = False,
    ) -> None:
        """Prepare the client; nothing connects before ``async with``.

        ``backoff`` is the first and the largest reconnect delay in seconds;
        ``connect_timeout`` bounds the TCP connect, and twice it the wait for CONNACK.
        With ``defer_acks`` a QoS 1 message is acknowledged not when the handler
        returns but when the caller says it is safe (``ack_through``): a clustered
        hub's ingest acknowledges only what its stream has stored.
        """
        self.settings = settings
        self.subscriptions = list(subscriptions)
        self.client_id = client_id or settings.client_id
        self.stats = BusStats()
        self.connected = asyncio.Event()
        self.state: State = "idle"
        self.last_error: str | None = None
        self._handler = handler
        self._backoff = backoff
        self._connack_timeout = 2.0 * connect_timeout
        self._errors = RateLimitedLog(log, )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._sock: Any = None
        self._fd = -1
        self._connecting: asyncio.Future[MQTTErrorCode] | None = None
        self._lost = asyncio.Event()
        self._connack = asyncio.Event()
        self._sub_mid: int | None = None
        self._retrying: dict[int, list[tuple[str, int]]] = {}
        """SUBSCRIBE packet id → the subscriptions it asks for again (refused before)."""
        self._task: asyncio.Task[None] | None = None
        self._endpoints = settings.endpoints()
        self._endpoint = 0
        self._defer_acks = defer_acks
        self._unacked: deque[tuple[int, int, int, int]] = deque()
        """(handled count, connection, mid, qos) of each deferred acknowledgement, in order."""
        self._connection = 0
        self._client = self._make_client(will, password, connect_timeout)

    # --- set-up ---------------------------------------------------------------------------

    def _make_client(self, will: Will | None, password: str | None,
                     connect_timeout: float) -> mqtt.Client:
        v5 = self.settings.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if v5 else False,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        if self.settings.username is not None:
            client.username_pw_set(self.settings.username, password)
        if self.settings.tls is not None:
            client.tls_set_context(tls_context(self.settings.tls, self.client_id))
        client.connect_timeout = connect_timeout  # before connect_async, or paho refuses
        client.max_queued_messages_set(self.settings.max_queued_messages)
        if will is not None:
            topic, payload, retain = will
            client.will_set(topic, payload, qos=1, retain=retain)
        self._aim(client)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    def _aim(self, client: mqtt.Client) -> None:
        """Point the client's next connect at the current endpoint (no I/O)."""
        host, port = self.address
        if self.settings.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self.settings.session_expiry
            client.connect_async(host, port, self.settings.keepalive, clean_start=False,
                                 properties=properties)
        else:
            client.connect_async(host, port, self.settings.keepalive)

    @property
    def address(self) -> tuple[str, int]:
        """The broker the bus is connected to, or tries next."""
        return self._endpoints[self._endpoint]

    async def __aenter__(self) -> Bus:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = self._loop.create_task(self._supervise(), name=f"bus:{self.client_id}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --- public API -------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Send without waiting; False when the message was dropped.

        While disconnected QoS 0 is dropped and QoS 1/2 queued by paho, up to
        ``max_queued_messages`` (in flight and waiting): beyond that, dropped.
        """
        if qos == 0 and not self.connected.is_set():
            self.stats.dropped += 1
            return False
        rc = self._client.publish(topic, payload, qos, retain).rc
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (qos and rc == MQTTErrorCode.MQTT_ERR_NO_CONN):
            self.stats.published += 1
            return True
        self.stats.dropped += 1
        return False

    @property
    def queued(self) -> int:
        """Outgoing QoS 1/2 messages in flight or waiting (bounded by ``max_queued_messages``)."""
        # paho has no public count; _out_messages is what its own bound is checked against.
        return len(self._client._out_messages)

    async def wait_connected(self, timeout: float) -> None:
        """Wait until connected and subscribed, or raise BrokerUnavailable after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                await self.connected.wait()
        except TimeoutError as exc:
            reason = self.last_error or "no answer"
            brokers = ", ".join(f"{host}:{port}" for host, port in self._endpoints)
            raise BrokerUnavailable(
                f"MQTT broker {brokers} not connected after {timeout:g} s: {reason}") from exc

    async def close(self) -> None:
        """Disconnect cleanly, unregister the socket and stop the supervisor."""
        if self.state == "closed":
            return
        self.state = "closing"
        self.connected.clear()
        if self._fd >= 0:
            self._client.disconnect()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._lost.wait()
            except TimeoutError:
                log.warning("bus %s: DISCONNECT not flushed in %s s", self.client_id,
                            CLOSE_TIMEOUT_S)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                # Only swallow our own task's cancellation, not the caller's.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            finally:
                self._task = None
        if self._connecting is not None:
            # The connect thread cannot be cancelled; let it finish so its socket is closed here.
            await asyncio.wait([self._connecting])
            self._connecting.exception()  # retrieved: its failure is of no interest now
            await asyncio.sleep(0)  # run the socket callbacks the thread queued
            self._connecting = None
        self._force_close_socket()
        self.state = "closed"

    # --- supervisor -------------------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            if await self._connect_once():
                attempt = 0
                await self._serve_connection()
                if self.state == "closing":
                    return
                self.connected.clear()
                self.stats.reconnects += 1
                log.warning("bus %s: connection lost", self.client_id)
            self.state = "backoff"
            await asyncio.sleep(backoff_delay(attempt, *self._backoff))
            attempt += 1

    async def _connect_once(self) -> bool:
        """Open the socket and wait for CONNACK; return whether the session is up."""
        assert self._loop is not None
        self.state = "connecting"
        self._lost.clear()
        self._connack.clear()
        self._connecting = self._loop.run_in_executor(None, self._client.reconnect)
        try:
            rc = await asyncio.shield(self._connecting)
        except (OSError, ValueError) as exc:
            self._note_failure(f"connect failed: {exc}")
            self._next_endpoint()
            return False
        finally:
            if self._connecting.done():
                self._connecting = None
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._note_failure(f"connect failed: {mqtt.error_string(rc)}")
            self._force_close_socket()
            self._next_endpoint()
            return False
        try:
            async with asyncio.timeout(self._connack_timeout):
                await first_of(self._connack.wait(), self._lost.wait())
        except TimeoutError:
            self._note_failure(f"no CONNACK within {self._connack_timeout:g} s "
                               f"(does the broker speak MQTT {self.settings.protocol}?)")
            self._force_close_socket()
            self._next_endpoint()
            return False
        # A session that came up counts even if it is already gone again.
        if not self._connack.is_set():
            self._next_endpoint()
        return self._connack.is_set()

    async def _serve_connection(self) -> None:
        """Tick paho's keepalive until the socket closes."""
        while not self._lost.is_set():
            if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            try:
                async with asyncio.timeout(MISC_INTERVAL_S):
                    await self._lost.wait()
            except TimeoutError:
                pass

    def _note_failure(self, reason: str) -> None:
        self.last_error = reason
        self._errors.error("bus %s: %s:%s: %s", self.client_id, *self.address, reason)

    def _next_endpoint(self) -> None:
        """Aim the next attempt at the next broker, when there are several."""
        if len(self._endpoints) > 1:
            self._endpoint = (self._endpoint + 1) % len(self._endpoints)
            self._aim(self._client)

    def _force_close_socket(self) -> None:
        """Drop the socket without MQTT DISCONNECT (paho has no public call for this)."""
        sock = self._sock
        self._unregister_fd()
        if sock is not None:
            sock.close()
        # paho still holds the closed socket; its next reconnect() closes it again, and the
        # close callback it then makes is ignored because the socket is no longer ours.

    # --- paho callbacks (loop thread, except socket open during the executor connect) ------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason: Any, properties: Properties | None) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused connection: {reason}"
            self._errors.error("bus %s: %s", self.client_id, self.last_error)
            return
        self.last_error = None
        self._connection += 1
        self._connack.set()
        if not self.subscriptions:
            self._set_connected()
            return
        self.state = "subscribing"
        rc, mid = client.subscribe(self.subscriptions)
        self._sub_mid = mid if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reasons: list[Any], properties: Properties | None) -> None:
        asked = self._retrying.pop(mid, None)
        if mid != self._sub_mid and asked is None:
            return
        asked = self.subscriptions if asked is None else asked
        refused = [sub for sub, r in zip(asked, reasons, strict=False) if r.is_failure]
        if refused:
            # A NATS node answers so while its streams elect (a node died): the session
            # would get nothing on those topics until asked again. Mosquitto's ACL
            # refuses for good; asking again costs a SUBSCRIBE every few seconds.
            self._errors.error("bus %s: subscriptions refused: %s; asking again in %g s",
                               self.client_id, [topic for topic, _ in refused], RESUBSCRIBE_S)
            assert self._loop is not None
            self._loop.call_later(RESUBSCRIBE_S, self._resubscribe, self._connection, refused)
        if mid == self._sub_mid:
            self._set_connected()

    def _resubscribe(self, connection: int, subscriptions: list[tuple[str, int]]) -> None:
        """Ask again for subscriptions refused on this connection (a new one asks for all)."""
        if connection != self._connection or not self.connected.is_set():
            return
        rc, mid = self._client.subscribe(subscriptions)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._retrying[mid] = subscriptions
            self.stats.resubscribed += 1

    def _set_connected(self) -> None:
        self.state = "connected"
        self.connected.set()
        log.info("bus %s: connected to %s:%s (MQTT %s)", self.client_id, *self.address,
                 self.settings.protocol)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        stats = self.stats
        stats.received += 1
        handler = self._handler
        if handler is not None:
            payload = msg.payload
            if type(payload) is not bytes:
                # paho hands out a bytearray; the handler is promised immutable bytes.
                payload = bytes(payload)
            try:
                handler(msg.topic, payload)
            except Exception as exc:
                stats.handler_errors += 1
                self._errors.error("bus %s: handler failed on %r", self.client_id,
                                   msg.topic[:120], exc_info=True)
                faults.survived(f"bus {self.client_id} handler", exc)
        if not msg.qos:
            return
        if self._defer_acks:
            self._unacked.append((stats.received, self._connection, msg.mid, msg.qos))
            return
        client.ack(msg.mid, msg.qos)
        stats.acked += 1

    def ack_through(self, handled: int) -> None:
        """Acknowledge, in arrival order, the deferred messages among the first ``handled``.

        ``handled`` counts the messages given to the handler (``stats.received``).
        One that came on a connection since lost is not acknowledged: the broker
        sends it again on the new one (the session is persistent).
        """
        while self._unacked and self._unacked[0][0] <= handled:
            _, connection, mid, qos = self._unacked.popleft()
            if connection == self._connection:
                self._client.ack(mid, qos)
                self.stats.acked += 1

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._register, sock)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._closed, sock)

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._add_writer)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_writer)

    # --- socket registration (loop thread only) ----------------------------------------

    def _in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _register(self, sock: Any) -> None:
        assert self._loop is not None
        self._sock, self._fd = sock, sock.fileno()
        self._loop.add_reader(self._fd, self._readable)

    def _closed(self, sock: Any) -> None:
        if sock is not self._sock:
            return
        self._unregister_fd()
        self.connected.clear()
        self._lost.set()

    def _unregister_fd(self) -> None:
        if self._fd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._sock, self._fd = None, -1

    def _add_writer(self) -> None:
        # The socket may already be gone when a call from the connect thread arrives late.
        if self._fd >= 0 and self._loop is not None:
            self._loop.add_writer(self._fd, self._client.loop_write)

    def _remove_writer(self) -> None:
        if self._fd >= 0 and self._loop is not None:
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        # paho reads one packet per loop_read(); keep reading while packets arrive so a
        # burst costs one loop iteration, not one per message.
        stats, read = self.stats, self._client.loop_read
        for _ in range(READ_BURST):
            before = stats.received
            if read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            if stats.received == before and not self._tls_buffered():
                return
        if self._tls_buffered() and self._loop is not None:
            self._loop.call_soon(self._readable)

    def _tls_buffered(self) -> bool:
        """Whether TLS holds decrypted bytes the selector cannot see (the kernel has none)."""
        sock = self._sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
