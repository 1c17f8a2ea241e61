"""TAK clients connect here: the partner's picture out as CoT, the unit's reports in.

Two listeners: TLS with client certificates (``tak.tls_port``, 8089), whose
certificate CN names the client, and plain TCP (``tak.tcp_port``, off by
default) for loopback and labs, which streams ``tak.tcp_partner``'s picture
and binds a connection to the unit whose registered CoT uid it first reports
under. A partner's certificate gets its picture; the operator's the
mission's; a unit's certificate lets it report (and gets the picture of the
partner of its nation, if there is one). Anything else is closed.

Each connection has one writer task (a bounded stream from the TAK sink) and
reads in the handler: events are split and checked before parsing
(hub.tak.protocol), charged to the connection's budget (hub.bucket:
``tak.events_per_s`` and ``tak.bytes_per_s``), parsed, and a PLI or
spot report is handed to the hub as the unit's own telemetry or detections
(hub.tak.inbound). Every refusal is counted and dead-lettered with its code; a
broken stream (oversized, unframed) closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hub import topics
from hub.bucket import Bucket
from hub.config import HubConfig, Tak
from hub.errors import ConfigError, PayloadError, RefusalCode
from hub.publish.stream import Stream
from hub.publish.tak import TakBatch, TakSink
from hub.release.policy import MISSION
from hub.tak.inbound import CotReport, detections, kind_of, parse_proto, parse_xml, telemetry
from hub.tak.protocol import ProtoFrames, XmlEvents, offer, response

log = logging.getLogger(__name__)

READ_BYTES = 65_536
SOCKET_SEND_BUFFER = 64 * 1024
# A client that stops reading keeps close() waiting on its send buffer for ever.
HANG_UP_S = 1.0
"""The kernel's send buffer for a client's socket (Linux doubles it)."""
Ingest = Callable[[str, bytes], None]
"""Hand an inbound message to the hub, as if it had come on ``topic`` over MQTT."""
Refuse = Callable[[str, int, RefusalCode, str], None]
"""Count and dead-letter a refusal: (where, size, code, reason)."""


@dataclass
class Peer:
    """Who is on a connection and what it may do."""

    label: str
    """For logs and dead letters: ``cot/{identity}``."""
    audience: str | None
    """Whose picture it gets (None: none)."""
    unit: str | None
    """The registered unit it reports as (None: not yet bound, or may not report)."""
    budget: Bucket
    """Its events and bytes a second."""
    binds_by_uid: bool = False
    """Plain TCP: the first registered uid it reports under becomes its unit."""
    proto: bool = False
    """It switched to TAK Protocol v1."""


class TakServer:
    """The TAK listeners of ``[tak]``, on the hub's loop."""

    def __init__(self, config: HubConfig, settings: Tak, sink: TakSink, ingest: Ingest,
                 refuse: Refuse) -> None:
        self.config = config
        self.settings = settings
        self.sink = sink
        self.ingest = ingest
        self.refuse = refuse
        self.counters: Counter[str] = Counter()
        self._servers: list[asyncio.Server] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._connections: set[asyncio.StreamWriter] = set()
        self._seq: Counter[tuple[str, str]] = Counter()
        self._units = {s.id: s for s in config.sensors}
        self._uids = {(s.cot_uid or s.id): s.id for s in config.sensors}
        partners = {p.id for p in config.partners}
        self._partner_of_nation = {p.nation: p.id for p in config.partners if p.nation}
        self._audiences = {**{p: p for p in partners},
                           config.broker_server.operator_identity: MISSION}

    async def start(self) -> None:
        """Listen on the configured ports; a port in use is a ConfigError naming its key."""
        settings = self.settings
        if settings.tls_port:
            await self._listen(settings.tls_port, server_context(settings), "tls_port")
        if settings.tcp_port is not None:
            await self._listen(settings.tcp_port, None, "tcp_port")

    async def _listen(self, port: int, context: ssl.SSLContext | None, key: str) -> None:
        try:
            server = await asyncio.start_server(
                lambda r, w: self._serve(r, w, context is not None), self.settings.host, port,
                ssl=context, limit=READ_BYTES)
        except OSError as exc:
            raise ConfigError(f"$.tak.{key}: cannot listen on {self.settings.host}:{port}: "
                              f"{exc.strerror}") from exc
        self._servers.append(server)

    async def stop(self) -> None:
        """Stop listening, close every client connection and wait for its handler to end."""
        for server in self._servers:
            server.close()
        await self.sink.close()
        for writer in list(self._connections):
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5.0)
        self._servers.clear()

    def clients(self) -> int:
        """TAK connections open now."""
        return sum(self.sink.clients().values())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     tls: bool) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._connections.add(writer)
        try:
            await self._serve_client(reader, writer, tls)
        finally:
            await _hang_up(writer)
            self._connections.discard(writer)
            self._handlers.discard(handler)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            tls: bool) -> None:
        bound_send_buffer(writer)
        peer = self._identify(writer, tls)
        if peer is None or self.clients() >= self.settings.max_clients:
            self.counters["tak_refused." + ("identity" if peer is None else "max_clients")] += 1
            return
        stream, first = (self.sink.connect(peer.audience, "tls" if tls else "tcp")
                         if peer.audience is not None else (None, TakBatch([])))
        writer.write(offer(time.time()))
        sender = asyncio.create_task(self._send(writer, peer, stream, first))
        reason = "client_closed"
        try:
            reason = await self._receive(reader, writer, peer)
        finally:
            if sender.done() and not sender.cancelled() and reason == "client_closed":
                reason = sender.result()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            if stream is not None:
                self.sink.disconnect(stream, reason)
            else:
                self.sink.counters[f"tak_disconnects.{reason}"] += 1

    def _identify(self, writer: asyncio.StreamWriter, tls: bool) -> Peer | None:
        """The peer of a connection: by its certificate's CN on TLS; unbound on plain TCP."""
        if not tls:
            return Peer("cot/tcp", self.settings.tcp_partner, None, binds_by_uid=True,
                        budget=self._budget())
        identity = common_name(writer.get_extra_info("peercert"))
        if identity in self._audiences:
            return Peer(f"cot/{identity}", self._audiences[identity], None,
                        budget=self._budget())
        unit = self._units.get(identity or "")
        if unit is None:
            log.warning("TAK client with certificate CN %r: not a partner, operator or unit",
                        (identity or "")[:64])
            return None
        return Peer(f"cot/{unit.id}", self._partner_of_nation.get(unit.nation), unit.id,
                    budget=self._budget())

    def _budget(self) -> Bucket:
        """A new connection's budget, full."""
        return Bucket(self.settings.events_per_s, self.settings.bytes_per_s,
                      self.config.ingest.budget.burst_s, time.monotonic())

    async def _send(self, writer: asyncio.StreamWriter, peer: Peer,
                    stream: Stream[TakBatch] | None, first: TakBatch) -> str:
        """The picture to the device: the whole of it first, then each batch."""
        timeout = self.settings.send_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self._write(writer, peer, first)
            while stream is not None:
                batch = await stream.take()
                if batch is None:  # it fell behind: the whole picture instead of the backlog
                    self.sink.counters["tak_resyncs"] += 1
                    batch = self.sink.whole(stream.audience)
                async with asyncio.timeout(timeout):
                    await self._write(writer, peer, batch)
            await asyncio.Event().wait()  # input only: nothing to send, ever
        except TimeoutError:
            writer.close()
            return "send_timeout"
        except ConnectionError:
            return "closed"
        return "closed"

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, peer: Peer, batch: TakBatch) -> None:
        if len(batch):
            writer.write(batch.proto() if peer.proto else batch.xml())
            await writer.drain()

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       peer: Peer) -> str:
        """Read and handle the device's events until it goes; why the connection ended."""
        max_bytes = self.settings.max_event_bytes
        splitter: XmlEvents | ProtoFrames = XmlEvents(max_bytes)
        while True:
            try:
                data = await reader.read(READ_BYTES)
            except (ConnectionError, ssl.SSLError):
                return "reset"
            if not data:
                return "client_closed"
            try:
                events = splitter.feed(data)
            except PayloadError as exc:  # the stream cannot be followed past this
                self.refuse(peer.label, len(data), exc.code, exc.reason)
                return "broken_stream"
            for event in events:
                if self._handle(event, peer, writer) and not peer.proto:
                    peer.proto = True  # the response went out as XML; both sides now frame
                    splitter = ProtoFrames(max_bytes)

    def _handle(self, event: bytes, peer: Peer, writer: asyncio.StreamWriter) -> bool:
        """Handle one inbound event; True when it switched the connection to protobuf."""
        if not peer.budget.take(len(event), time.monotonic()):
            self.refuse(peer.label, len(event), "rate",
                        "over the connection's budget (tak.events_per_s, tak.bytes_per_s)")
            return False
        try:
            report = parse_proto(event) if peer.proto else parse_xml(event)
            return self._report(report, peer, writer, len(event))
        except PayloadError as exc:
            self.refuse(peer.label, len(event), exc.code, exc.reason)
            return False

    def _report(self, report: CotReport, peer: Peer, writer: asyncio.StreamWriter,
                size: int) -> bool:
        if peer.unit is None and peer.binds_by_uid and report.uid in self._uids:
            peer.unit = self._uids[report.uid]
            peer.label = f"cot/{peer.unit}"
        own_uid = "" if peer.unit is None else (self._units[peer.unit].cot_uid or peer.unit)
        kind = kind_of(report, own_uid)
        if kind == "control":
            writer.write(response(time.time(), accepted=report.takp_request))
            self.counters["tak_events.control"] += 1
            return report.takp_request and not peer.proto
        if peer.unit is None:
            raise PayloadError("identity", "a report from a connection that is no unit")
        stream_kind: Literal["telemetry", "detections"] = (
            "telemetry" if kind == "pli" else "detections")
        self._seq[peer.unit, stream_kind] += 1
        seq = self._seq[peer.unit, stream_kind]
        payload = (telemetry(report, seq, self.config.mission.origin.alt) if kind == "pli"
                   else detections(report, seq, self.settings.spot_sigma_m))
        self.counters[f"tak_events.{kind}"] += 1
        self.ingest(topics.sensor(peer.unit, stream_kind), payload)
        return False


async def _hang_up(writer: asyncio.StreamWriter) -> None:
    """Close a client's connection, dropping what it never read after ``HANG_UP_S``."""
    writer.close()
    try:
        async with asyncio.timeout(HANG_UP_S):
            await writer.wait_closed()
    except (ConnectionError, ssl.SSLError, TimeoutError):
        writer.transport.abort()


def bound_send_buffer(writer: asyncio.StreamWriter) -> None:
    """Cap what the kernel holds unsent for this client, so a stalled one fills its own queue.

    Linux otherwise grows a socket's send buffer up to megabytes, and a device that
    stopped reading would hold that much of the picture before the hub noticed.
    """
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)


def common_name(certificate: object) -> str | None:
    """The subject CN of a peer certificate as ``ssl`` reports it."""
    if not isinstance(certificate, dict):
        return None
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def server_context(settings: Tak) -> ssl.SSLContext:
    """TLS for the listener: the hub's certificate; clients must show one from ``cafile``."""
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=settings.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"$.tak.cafile: cannot load {settings.cafile}: {exc}") from exc
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(settings.certfile), settings.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"$.tak.certfile: cannot load {settings.certfile} with "
                          f"{settings.keyfile}: {exc}") from exc
    return context
