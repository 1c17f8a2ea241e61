"""How a long-running command's last steps end (hub.lifecycle.within, run_until, every)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from hub.lifecycle import every, run_until, within


async def test_a_step_that_hangs_is_cut_at_its_bound_and_said_so(
        caplog: pytest.LogCaptureFixture) -> None:
    ended = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    assert not await within(0.05, hang(), "stop: handing the groups over")
    assert ended.is_set()  # cancelled, not left running
    assert "stop: handing the groups over: not done after" in caplog.text


async def test_a_step_within_its_bound_runs_to_its_end() -> None:
    done = []

    async def step() -> None:
        await asyncio.sleep(0.01)
        done.append(True)

    assert await within(5.0, step(), "a quick step")
    assert done == [True]


async def test_run_until_cancels_every_loop_when_told_to_stop() -> None:
    stop, cancelled = asyncio.Event(), []

    async def loop(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    asyncio.get_running_loop().call_later(0.05, stop.set)
    await run_until(stop, [loop("a"), loop("b")])
    assert sorted(cancelled) == ["a", "b"]


async def swallow_one_cancellation() -> None:
    """Lose a cancellation as Python 3.11's asyncio.wait_for can (gh-86296), then wait again."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)


async def test_a_periodic_loop_stops_when_its_action_lost_the_cancellation() -> None:
    lost: list[bool] = []

    async def action() -> None:
        if lost:  # once: a loop that goes on still ends with the test
            await asyncio.sleep(3600)
            return
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            lost.append(True)  # swallowed: the action returns as if nothing happened

    task = asyncio.create_task(every(0.0, action))
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert task in done and task.cancelled()


async def test_run_until_cancels_again_a_loop_that_lost_its_cancellation(
        caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, stop.set)
    async with asyncio.timeout(5.0):
        await run_until(stop, [swallow_one_cancellation()])
    assert "lost its cancellation; cancelled again" in caplog.text
