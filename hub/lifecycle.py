"""How long-running commands end: on SIGINT, SIGTERM, or after a duration.

And how their children end with them, however they die (SIGKILL included): a
child started through multiprocessing (the frame workers) watches a
``Lifeline`` and exits at its end of file; a child started with subprocess
(Mosquitto, the simulators) gets ``exit_with_parent``.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

from hub import faults

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when the thread that created it ends."""
ORPHANED_EXIT = 70
"""Exit status of a child that ended because its parent was gone."""


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


async def run_until(stop: asyncio.Event, loops: Sequence[Coroutine[Any, Any, object]]) -> None:
    """Run ``loops`` as tasks until ``stop`` is set; then cancel them and wait for their end."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def end_child(process: subprocess.Popen[bytes] | None, signum: int, timeout: float) -> None:
    """Send ``signum`` to ``process`` if it still runs, and reap it (SIGKILL after ``timeout``)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Return the delay before reconnect ``attempt`` (0-based): exponential, capped, jittered."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, 30))
    # "Equal jitter": never less than half the ceiling, so a storm of clients spreads out
    # without any of them retrying immediately.
    return ceiling / 2.0 + random.uniform(0.0, ceiling / 2.0)


class Lifeline:
    """A pipe whose write end only this process holds: at its death, readers see end of file.

    The kernel closes a dead process's files whatever killed it, SIGKILL included,
    so a child that watches the reader (``watch_lifeline``) learns of the death at
    once, with no polling and no pid that could be reused. The writer never
    leaves this process: the pipe is not inheritable and only the reader is sent
    to children (multiprocessing passes it as a file descriptor).
    """

    def __init__(self) -> None:
        self.reader, self._writer = Pipe(duplex=False)

    def close(self) -> None:
        """Cut the line: every child still watching it exits."""
        self._writer.close()
        self.reader.close()


def watch_lifeline(reader: Connection) -> None:
    """In a child: exit the process (status ``ORPHANED_EXIT``) when ``reader`` reaches its end."""

    def watch() -> None:
        try:
            while True:
                reader.recv_bytes()  # the parent never writes: this waits for its end
        except (EOFError, OSError):
            pass
        os._exit(ORPHANED_EXIT)  # nothing to clean up that outlives the parent

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def exit_with_parent() -> Callable[[], None] | None:
    """A ``Popen`` ``preexec_fn`` that gets the child SIGKILL when its parent dies (Linux).

    For children that cannot be handed a ``Lifeline`` (Mosquitto). The kernel sends
    the signal when the *thread* that started the child ends, not the process:
    start such children only from a thread that lives as long as the process
    (the main thread). None where prctl(2) is missing (not Linux).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc, already loaded
    parent = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # died before prctl took effect
            os._exit(ORPHANED_EXIT)

    return in_child
