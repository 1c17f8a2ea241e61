"""How a long-running command's last steps end (hub.lifecycle.within, run_until)."""

from __future__ import annotations

import asyncio

import pytest

from hub.lifecycle import run_until, within


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
