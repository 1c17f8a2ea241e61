"""Silent failures fail the tests: an exception the hub only logged is never a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

PROVOKED = '''
import asyncio
import contextlib

from hub.pipeline import Pipeline
from hub.config import DEFAULT_CONFIG, load_config
from hub.lifecycle import every


def boom() -> None:
    raise RuntimeError("a periodic task's bug")


async def one_failing_tick() -> None:
    task = asyncio.create_task(every(0.001, boom))
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_unnoticed() -> None:
    await one_failing_tick()


async def test_taken_on(internal_errors) -> None:
    await one_failing_tick()
    assert internal_errors and str(internal_errors[0][1]) == "a periodic task's bug"


def test_pipeline_bug_unnoticed() -> None:
    pipeline = Pipeline(load_config(DEFAULT_CONFIG))
    pipeline.router.route = None  # a bug: calling it raises TypeError inside handle()
    assert not pipeline.handle("sensors/ken-radar-1/detections", b"", 1.8e9)
'''


def test_a_logged_exception_fails_the_test_unless_the_test_takes_it_on(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_provoked=PROVOKED)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n"
                     "asyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_unnoticed*",
        "*survived * exception(s) it only logged; the first, in periodic task boom*",
        "*ERROR at teardown of test_pipeline_bug_unnoticed*",
        "*in pipeline: sensors/ken-radar-1/detections: TypeError*"])
