"""One connected client of a sink: a bounded queue between the hub and that client's writer.

The hub offers each picture's message to every client's queue and never waits.
A client that falls ``limit`` messages behind loses its backlog: its writer is
told so (``take`` answers None) and sends the whole picture instead, so a slow
client costs memory bounded by ``limit`` and is never a growing backlog. Web
consoles and TAK clients use it alike.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Stream(Generic[T]):
    """A bounded queue of messages for one client of ``audience``."""

    def __init__(self, audience: str, limit: int, kind: str) -> None:
        self.audience = audience
        self.kind = kind
        """The transport, for counters: ``ws``, ``sse``, ``tls``, ``tcp``, ``push``."""
        self.limit = limit
        self.behind = False
        """It fell behind: its backlog was dropped; the next message it takes is the picture."""
        self.closed = False
        self._queue: deque[T] = deque()
        self._ready = asyncio.Event()

    def offer(self, message: T) -> bool:
        """Queue ``message``; False when it was dropped (the client is behind or gone)."""
        if self.closed or self.behind:
            return False
        if len(self._queue) >= self.limit:
            self._queue.clear()
            self.behind = True
            self._ready.set()
            return False
        self._queue.append(message)
        self._ready.set()
        return True

    async def take(self) -> T | None:
        """The next message to send; None when it fell behind (send the whole picture).

        Raises ConnectionResetError once the stream is closed.
        """
        while not (self._queue or self.behind or self.closed):
            self._ready.clear()
            await self._ready.wait()
        if self.closed:
            raise ConnectionResetError("stream closed")
        if self.behind:
            self.behind = False
            return None
        return self._queue.popleft()

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop: the writer's next ``take`` raises."""
        self.closed = True
        self._ready.set()
