"""No process of the hub's outlives it, however it dies: SIGKILL of ``hub run`` and ``hub demo``.

The frame pool (a forkserver, its workers and multiprocessing's resource
tracker), and in the demo the broker and the simulators, are the hub's
descendants; each must be gone within ``GRACE_S`` of the hub's death.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from processes import Proc, alive, kill_all, wait_for_descendants, with_child

from hub.broker.launcher import BrokerHandle

HUB = [sys.executable, "-m", "hub.cli"]
GRACE_S = 2.0
START_S = 60.0
FORKSERVER = "multiprocessing.forkserver"


@contextlib.contextmanager
def started(argv: list[str], ready: Callable[[dict[int, Proc]], bool]
            ) -> Iterator[dict[int, Proc]]:
    """Run ``argv`` until ``ready`` holds of its descendants, yield them, then SIGKILL it."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        yield wait_for_descendants(process.pid, ready, START_S)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


def survivors(seen: dict[int, Proc]) -> list[Proc]:
    """Those of ``seen`` alive ``GRACE_S`` after their ancestor died (then killed, not left)."""
    time.sleep(GRACE_S)
    left = alive(seen)
    kill_all(left)
    return left


def test_no_frame_worker_outlives_a_killed_hub_run(mosquitto: BrokerHandle) -> None:
    # Imagery is on in the default config: the pool starts its workers at once.
    with started([*HUB, "run", "--host", mosquitto.host, "--port", str(mosquitto.port),
                  "--quiet"], lambda found: with_child(found, FORKSERVER)) as seen:
        pass
    assert len(seen) >= 3, seen  # the resource tracker, the forkserver, a worker
    assert survivors(seen) == []


def demo_ready(found: dict[int, Proc]) -> bool:
    commands = [p.cmdline for p in found.values()]
    return (with_child(found, FORKSERVER) and any("-m simulators" in c for c in commands)
            and any("mosquitto" in c for c in commands))


def test_nothing_outlives_a_killed_demo(tmp_path: Path) -> None:
    with started([*HUB, "demo", "--workdir", str(tmp_path / "demo"), "--broker", "mosquitto"],
                 demo_ready) as seen:
        pass
    assert survivors(seen) == []
