"""A TCP relay between a client and a server that the test can pause: a consumer that stalls.

When paused it stops reading from the server, with a small receive buffer, so
what stalls is a real socket: the server's kernel and library buffers fill for
real before its sink has to drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket


class Relay:
    """A TCP relay between a client and the console that can stop reading the console."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.paused = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        upstream = socket.socket()
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        upstream.setblocking(False)
        await asyncio.get_running_loop().sock_connect(upstream, ("127.0.0.1", self.target))
        hub_in, hub_out = await asyncio.open_connection(sock=upstream, limit=4096)
        self._writers += [client_out, hub_out]
        for source, sink, pausable in ((client_in, hub_out, False), (hub_in, client_out, True)):
            task = asyncio.create_task(self._pipe(source, sink, pausable))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    pausable: bool) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await source.read(4096):
                while pausable and self.paused.is_set():
                    await asyncio.sleep(3600)
                sink.write(data)
                await sink.drain()
        sink.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:  # a paused pipe's peer may never take its buffer
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
