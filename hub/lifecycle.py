"""How long-running commands end: on SIGINT, SIGTERM, or after a duration.

The event loop's side of it (the stop event, waiting for the first of
several, periodic work) and the reconnect backoff. How child processes end
with the hub is ``hub.children``: it needs no event loop, so a replay, which
runs none, starts without importing asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from hub import faults

log = logging.getLogger(__name__)

RECANCEL_AFTER_S = 1.0
"""How long ``run_until`` waits for cancelled loops before it cancels the rest again."""


def stop_event(duration: float | None = None) -> asyncio.Event:
    """An event set on SIGINT or SIGTERM, or ``duration`` seconds from now."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    return stop


def dump_tasks_on(signum: int) -> None:
    """On ``signum``, log where every task of the running loop waits (a hung stop, a stall).

    For an operator (``kill -USR1 PID``) and for the tests, which send it to a
    worker that did not do what it should in time.
    """
    loop = asyncio.get_running_loop()

    def dump() -> None:
        for task in asyncio.all_tasks(loop):
            chain = "\n".join(f"  {line}" for line in awaiting(task.get_coro()))
            log.warning("task %s waits at:\n%s", task.get_name(), chain)

    loop.add_signal_handler(signum, dump)


def awaiting(coro: object) -> list[str]:
    """``coro``'s chain of awaits, outermost first: where it is suspended, and on what."""
    chain = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:  # a future or a task: what the chain waits on
            chain.append(repr(coro)[:200])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain


async def first_of(*awaitables: Awaitable[object]) -> None:
    """Wait until any of ``awaitables`` is done; cancel and await the others."""
    waiters = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def within(seconds: float, work: Awaitable[object], what: str) -> bool:
    """Await ``work`` for at most ``seconds``; past that, cancel it and log that ``what`` was cut.

    For a clean stop's last steps: a stop that hangs on a silent cluster is
    worse than one that leaves the rest to the leases' expiry.
    """
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            await work
    except TimeoutError:
        log.warning("%s: not done after %.0f s; left as it is", what, seconds)
        return False
    took = time.monotonic() - started
    if took > seconds / 4:
        log.warning("%s took %.1f s", what, took)
    return True


async def every(period: float, action: Callable[[], object], first: float | None = None) -> None:
    """Call ``action`` every ``period`` seconds (the first time after ``first``, if given).

    ``action`` may return a coroutine, which is awaited. A failure is logged
    and reported (hub.faults), not fatal: the next period calls it again.
    """
    delay = period if first is None else first
    while True:
        await asyncio.sleep(delay)
        delay = period
        try:
            result = action()
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:
            name = getattr(action, "__name__", repr(action))
            log.exception("periodic task %s failed", name)
            faults.survived(f"periodic task {name}", exc)
        raise_if_cancelled()


def raise_if_cancelled() -> None:
    """Raise CancelledError when this task was told to stop and the telling got lost.

    Python 3.11's ``asyncio.wait_for`` swallows a cancellation that comes as the
    awaited future completes (gh-86296, fixed in 3.12), and nats-py awaits
    through it: an action then returns normally, and a loop told to stop went
    on for ever, its worker never ending on SIGTERM. The request is still
    counted on the task (``Task.cancelling``).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def run_until(stop: asyncio.Event, loops: Sequence[Coroutine[Any, Any, object]]) -> None:
    """Run ``loops`` as tasks until ``stop`` is set; then cancel them and wait for their end.

    A loop still running a second after its cancellation lost it (see
    ``raise_if_cancelled``) and is cancelled again, until it ends.
    """
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        await stop.wait()
    finally:
        pending = set(tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER_S)
            for task in pending:
                log.warning("task %s lost its cancellation; cancelled again", task.get_name())
        await asyncio.gather(*tasks, return_exceptions=True)


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Return the delay before reconnect ``attempt`` (0-based): exponential, capped, jittered."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, 30))
    # "Equal jitter": never less than half the ceiling, so a storm of clients spreads out
    # without any of them retrying immediately.
    return ceiling / 2.0 + random.uniform(0.0, ceiling / 2.0)
