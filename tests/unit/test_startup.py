"""Start-up: a command imports what it uses, and no heavy package it does not.

A restarted hub's picture and every ``hub replay`` wait for Python's imports;
scipy.optimize (0.4 s), OpenCV (0.2 s) and aiohttp (0.3 s) were most of them; nats-py
(0.35 s) is for the cluster roles alone.
Checked in a fresh interpreter, since this one has imported everything.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.optimize

from hub.fusion.lsap import linear_sum_assignment

HEAVY = ("scipy.optimize", "cv2", "aiohttp", "nats")


def imported_after(statement: str, modules: tuple[str, ...] = HEAVY) -> set[str]:
    """Which of ``modules`` a fresh interpreter holds after running ``statement``."""
    probe = f"import sys\n{statement}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["hub.service", "hub.cli.replay", "hub.cli.main",
                                    "hub.cli.score"])
def test_the_hub_and_replay_start_without_heavy_imports(module: str) -> None:
    assert imported_after(f"import {module}") == set()


def test_a_replay_starts_without_the_event_loop() -> None:
    # asyncio brings ssl and subprocess: 50-60 ms of a replay's 0.25 s start-up.
    statement = "import hub.cli.main, hub.cli.replay, hub.cli.score"
    assert imported_after(statement, ("asyncio", "ssl")) == set()


def test_a_frame_worker_loads_opencv_when_built() -> None:
    statement = ("from hub.config import DEFAULT_CONFIG, load_config\n"
                 "from hub.ingest.frame_pool import FrameWorker\n"
                 "FrameWorker(load_config(DEFAULT_CONFIG))")
    assert imported_after(statement) == {"cv2"}


def test_the_solver_is_scipys_own() -> None:
    assert linear_sum_assignment is scipy.optimize.linear_sum_assignment
    cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == 5.0
