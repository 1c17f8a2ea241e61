"""How long-running commands end: on SIGINT, SIGTERM, or after a duration."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Awaitable


def stop_event(duration: float | None = None) -> asyncio.Event:
    """An event set on SIGINT or SIGTERM, or ``duration`` seconds from now."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    return stop


async def first_of(*awaitables: Awaitable[object]) -> None:
    """Wait until any of ``awaitables`` is done; cancel and await the others."""
    waiters = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Return the delay before reconnect ``attempt`` (0-based): exponential, capped, jittered."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, 30))
    # "Equal jitter": never less than half the ceiling, so a storm of clients spreads out
    # without any of them retrying immediately.
    return ceiling / 2.0 + random.uniform(0.0, ceiling / 2.0)
