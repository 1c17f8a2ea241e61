"""Push a partner's picture into the partner's own TAK Server, as one more feed of it.

For each ``[[tak.servers]]`` the hub connects out (TLS with its client
certificate, or plain TCP), sends the whole picture and then every batch, as
any TAK client of that picture gets it, and reconnects with a jittered,
capped backoff whenever the connection ends. What the server sends back
(other clients' positions) is read and discarded, so it never fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from hub.config import TakServer
from hub.errors import ConfigError
from hub.lifecycle import backoff_delay
from hub.metrics import RateLimitedLog
from hub.publish.stream import Stream
from hub.publish.tak import TakBatch, TakSink

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 30.0)
CONNECT_TIMEOUT_S = 10.0


def client_context(server: TakServer) -> ssl.SSLContext | None:
    """TLS to the TAK Server (its certificate checked against ``cafile``), or None for TCP."""
    if server.cafile is None:
        return None
    try:
        context = ssl.create_default_context(cafile=server.cafile)
        if server.certfile is not None:
            context.load_cert_chain(server.certfile, server.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"$.tak.servers ({server.host}:{server.port}): cannot load its "
                          f"TLS files: {exc}") from exc
    return context


async def push_forever(server: TakServer, sink: TakSink, send_timeout_s: float) -> None:
    """Keep ``server.partner``'s picture flowing into the server until cancelled."""
    context = client_context(server)
    failures = RateLimitedLog(log, interval_s=60.0, level=logging.WARNING)
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(server.host, server.port,
                                                               ssl=context)
        except (OSError, TimeoutError) as exc:
            failures.error("TAK server %s:%s: %s", server.host, server.port, exc)
            await asyncio.sleep(backoff_delay(attempt, *BACKOFF_S))
            attempt += 1
            continue
        attempt = 0
        stream, first = sink.connect(server.partner, "push")
        reason = await _stream_to(reader, writer, stream, first, sink, send_timeout_s)
        sink.disconnect(stream, reason)
        await asyncio.sleep(backoff_delay(attempt, *BACKOFF_S))


async def _stream_to(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     stream: Stream[TakBatch], first: TakBatch, sink: TakSink,
                     timeout: float) -> str:
    drain = asyncio.create_task(_discard(reader))
    try:
        batch: TakBatch | None = first
        while True:
            if batch is None:
                batch = sink.whole(stream.audience)
            if len(batch):
                writer.write(batch.xml())
                async with asyncio.timeout(timeout):
                    await writer.drain()
            if drain.done():
                return "server_closed"
            batch = await _next(stream, drain)
    except TimeoutError:
        return "send_timeout"
    except (ConnectionError, ssl.SSLError):
        return "server_closed"
    finally:
        drain.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _next(stream: Stream[TakBatch], drain: asyncio.Task[None]) -> TakBatch | None:
    """The stream's next batch; ConnectionError when the server closed first."""
    take = asyncio.ensure_future(stream.take())
    await asyncio.wait([take, drain], return_when=asyncio.FIRST_COMPLETED)
    if not take.done():
        take.cancel()
        raise ConnectionError("the TAK Server closed the connection")
    return take.result()


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read and drop what the server sends until it closes."""
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while await reader.read(65_536):
            pass
