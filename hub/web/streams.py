"""The live streams: ``/api/v1/stream`` (WebSocket) and ``/api/v1/events`` (Server-Sent Events).

A stream starts with ``hello`` and a snapshot (or, when the client asks to
resume from a ``seq`` still held, the messages it missed), then takes its
audience's messages from a bounded queue (hub.publish.web.Stream). One writer
task per stream does the sending, so a slow client waits alone: it falls
behind and gets a fresh snapshot, and a client that takes nothing for
``web.send_timeout_s`` is closed. Heartbeats (every ``HEARTBEAT_S``) and
status reports go through the same queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import WSMsgType, web
from msgspec import Struct

from hub.bucket import Bucket
from hub.publish.geojson import encode as encode_json
from hub.publish.stream import Stream
from hub.publish.web import Message, snapshot_or_resume
from hub.web.auth import Principal
from hub.web.context import CONTEXT, WebContext

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
MAX_CLIENT_MESSAGE = 4096
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_LARGE = 1009
WRITER_LIMIT = 64 * 1024
"""Bytes aiohttp may hold unsent for a client before its writer waits (and its queue fills)."""
SOCKET_SEND_BUFFER = 64 * 1024
"""The kernel's send buffer for a stream's socket (Linux doubles it)."""


class Hello(Struct, frozen=True, kw_only=True, tag="hello", tag_field="type"):
    """The first message of every stream: who is served, and how to read what follows."""

    v: int = 1
    audience: str
    identity: str
    server_time: float
    levels: list[str]
    policy: str
    stale_after_s: float
    trail_s: float
    heartbeat_s: float
    basemap: bool
    basemap_maxzoom: int


def hello(context: WebContext, who: Principal) -> Message:
    """The ``hello`` message for ``who``."""
    labels = context.config.labels
    tiles = context.tiles
    return Message("hello", None, encode_json(Hello(
        audience=who.audience, identity=who.identity, server_time=time.time(),
        levels=list(labels.classifications), policy=labels.policy,
        stale_after_s=context.settings.stale_after_s, trail_s=context.settings.trail_s,
        heartbeat_s=HEARTBEAT_S, basemap=tiles is not None,
        basemap_maxzoom=0 if tiles is None else tiles.max_zoom)))


def heartbeat() -> Message:
    """A heartbeat with the server's clock, so a client can tell a quiet feed from a dead one."""
    return Message("heartbeat", None, json.dumps(
        {"v": 1, "type": "heartbeat", "server_time": time.time()}).encode())


def status_message(context: WebContext, audience: str) -> Message:
    """A ``status`` message for ``audience``."""
    body = {"v": 1, "type": "status", "data": context.status_for(audience)}
    return Message("status", None, json.dumps(body).encode())


Sender = Callable[[Message], Awaitable[None]]


async def pump(context: WebContext, stream: Stream[Message], first: list[Message],
               send: Sender) -> str:
    """Send ``first``, then the stream's messages until it ends; return why it ended."""
    timeout = context.settings.send_timeout_s
    audience = context.sink.audiences
    try:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that
        # arrives as the send completes, and the writer then waits forever.
        for message in first:
            async with asyncio.timeout(timeout):
                await send(message)
        while True:
            taken = await stream.take()
            if taken is None:  # it fell behind: the backlog is gone, the picture is not
                context.sink.counters["web_resyncs"] += 1
                taken = audience[stream.audience].snapshot()
            async with asyncio.timeout(timeout):
                await send(taken)
    except TimeoutError:
        return "send_timeout"
    except (ConnectionResetError, ConnectionError):
        return "closed"


def open_stream(context: WebContext, who: Principal, kind: str, since: int | None
                ) -> tuple[Stream[Message], list[Message]]:
    """Join ``who``'s audience; the first messages to send (hello, snapshot or what it missed).

    Joining and taking the snapshot happen with no await between them, so no
    picture falls between the snapshot and the queue.
    """
    stream = context.sink.connect(who.audience, "ws" if kind == "ws" else "sse")
    state = context.sink.audiences[who.audience]
    return stream, [hello(context, who), *snapshot_or_resume(state, since)]


def bound_socket_buffer(request: web.Request) -> None:
    """Cap what the kernel holds unsent for this client, so a stalled one fills its own queue.

    Linux otherwise grows a socket's send buffer up to megabytes (tcp_wmem), and
    a client that stopped reading would hold that much before the hub noticed.
    """
    transport = request.transport
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)


def too_many(context: WebContext) -> bool:
    """Whether ``web.max_clients`` streams are already served."""
    return sum(context.sink.clients().values()) >= context.settings.max_clients


async def websocket(request: web.Request, who: Principal) -> web.StreamResponse:
    """``GET /api/v1/stream``: the audience's messages over a WebSocket."""
    context = request.app[CONTEXT]
    if too_many(context):
        context.sink.counters["web_refused.max_clients"] += 1
        raise web.HTTPServiceUnavailable(text="too many console clients")
    # No permessage-deflate: it would compress every message once per client (the same
    # picture goes to each), which costs more of the hub than the bytes it saves on a LAN.
    ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_CLIENT_MESSAGE,
                               writer_limit=WRITER_LIMIT, compress=False)
    bound_socket_buffer(request)
    await ws.prepare(request)
    stream, first = open_stream(context, who, "ws", _int(request.query.get("resume_from")))

    async def send(message: Message) -> None:
        await ws.send_frame(message.data, WSMsgType.TEXT)

    writer = asyncio.create_task(pump(context, stream, first, send))
    reason = "client_closed"
    try:
        reason = await _read_client(ws, stream, context)
    finally:
        # Why it ended is the reader's to say (a bad message, too large), unless the
        # client merely went away: then the writer may know better (a send timed out).
        if writer.done() and not writer.cancelled() and reason in ("client_closed", "closed"):
            reason = writer.result()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        context.sink.disconnect(stream, reason)
        await ws.close()
    return ws


async def _read_client(ws: web.WebSocketResponse, stream: Stream[Message],
                       context: WebContext) -> str:
    """Read what the client sends until it goes; anything but a small JSON object closes it.

    What it sends beyond its budget (``web.client_messages_per_s``, ``client_bytes_per_s``)
    is ignored unread, and counted.
    """
    settings = context.settings
    budget = Bucket(settings.client_messages_per_s, settings.client_bytes_per_s,
                    context.config.ingest.budget.burst_s, time.monotonic())
    async for msg in ws:
        if msg.type is WSMsgType.ERROR:  # aiohttp has closed it already (1009: too large)
            code = getattr(ws.exception(), "code", None)
            return "too_large" if code == CLOSE_TOO_LARGE else "error"
        size = len(msg.data) if isinstance(msg.data, (str, bytes)) else 0
        if not budget.take(size, time.monotonic()):
            context.sink.counters["web_over_budget"] += 1
            continue
        if msg.type is not WSMsgType.TEXT:
            await ws.close(code=CLOSE_UNSUPPORTED, message=b"text JSON objects only")
            return "bad_message"
        try:
            body = json.loads(msg.data)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            await ws.close(code=CLOSE_UNSUPPORTED, message=b"text JSON objects only")
            return "bad_message"
        if body.get("type") == "ping":
            stream.offer(heartbeat())
    return "closed" if stream.closed else "client_closed"


async def events(request: web.Request, who: Principal) -> web.StreamResponse:
    """``GET /api/v1/events``: the same messages as Server-Sent Events."""
    context = request.app[CONTEXT]
    if too_many(context):
        context.sink.counters["web_refused.max_clients"] += 1
        raise web.HTTPServiceUnavailable(text="too many console clients")
    since = _int(request.headers.get("Last-Event-ID") or request.query.get("resume_from"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    bound_socket_buffer(request)
    await response.prepare(request)
    stream, first = open_stream(context, who, "sse", since)

    async def send(message: Message) -> None:
        head = f"event: {message.kind}\n" + (
            f"id: {message.seq}\n" if message.seq is not None else "")
        await response.write(head.encode() + b"data: " + message.data + b"\n\n")

    reason = await pump(context, stream, first, send)
    context.sink.disconnect(stream, reason)
    return response


async def beat(app: web.Application) -> AsyncIterator[None]:
    """Heartbeats to every stream, and each audience's status (the app's cleanup context)."""
    context = app[CONTEXT]
    every = max(1, round(context.config.publish.status_every_s / HEARTBEAT_S))

    async def loop() -> None:
        tick = 0
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            tick += 1
            _offer_all(context, heartbeat(), status=tick % every == 0)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await context.sink.close()


def _offer_all(context: WebContext, message: Message, status: bool) -> None:
    for name, audience in context.sink.audiences.items():
        if not audience.streams:
            continue
        report = status_message(context, name) if status else None
        for stream in audience.streams:
            stream.offer(message)
            if report is not None:
                stream.offer(report)


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None

