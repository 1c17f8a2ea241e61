"""A short reorder window: measurements leave in measurement-time order.

Items wait until the watermark (the newest measurement time seen, advanced by
the receive clock since it was seen, minus the window) passes their time, so
sensors with different latencies still reach the trackers in time order. An
item older than what has already left is late: it is counted and dropped,
because the trackers cannot go back in time.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class Marks(NamedTuple):
    """Where the window stands: the newest time seen, when it was seen, the last released."""

    newest_t: float
    newest_seen_at: float
    released_t: float


class ReorderBuffer(Generic[T]):
    """Release items in measurement-time order once the window has passed them."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()
        self._newest_t = float("-inf")
        self._newest_seen_at = 0.0
        self._released_t = float("-inf")
        self.late = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, t: float, item: T, t_received: float) -> bool:
        """Queue ``item`` measured at ``t``; False (and counted) when it arrived too late."""
        if t < self._released_t:
            self.late += 1
            return False
        if t > self._newest_t:
            self._newest_t, self._newest_seen_at = t, t_received
        heapq.heappush(self._heap, (t, next(self._order), item))
        return True

    def watermark(self, t_received: float) -> float:
        """Measurement time up to which items may leave at receive time ``t_received``."""
        return self._newest_t + max(0.0, t_received - self._newest_seen_at) - self.window_s

    def pop_ready(self, t_received: float) -> list[T]:
        """Remove and return, in time order, every item the watermark has passed."""
        limit = self.watermark(t_received)
        ready: list[T] = []
        while self._heap and self._heap[0][0] <= limit:
            t, _, item = heapq.heappop(self._heap)
            self._released_t = t
            ready.append(item)
        return ready

    def pop_all(self) -> list[T]:
        """Remove and return every queued item in time order (end of a replay)."""
        ready = [heapq.heappop(self._heap) for _ in range(len(self._heap))]
        if ready:
            self._released_t = ready[-1][0]
        return [item for _, _, item in ready]

    def state(self) -> tuple[list[tuple[float, T]], Marks]:
        """The queued (time, item) pairs in release order, and the window's marks."""
        queued = [(t, item) for t, _, item in sorted(self._heap, key=lambda e: e[:2])]
        return queued, Marks(self._newest_t, self._newest_seen_at, self._released_t)

    def restore(self, queued: list[tuple[float, T]], marks: Marks) -> None:
        """Take back a ``state``: the same items, released in the same order."""
        self._heap = [(t, next(self._order), item) for t, item in queued]
        heapq.heapify(self._heap)
        self._newest_t, self._newest_seen_at, self._released_t = marks
