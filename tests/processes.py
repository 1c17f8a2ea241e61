"""A process's descendants, read from /proc (Linux), for tests that kill a parent."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    state: str
    cmdline: str


def _read(pid: int) -> Proc | None:
    """``pid``'s parent, state and command line; None when it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces: the fields follow its last ')'.
    state, ppid = stat.rpartition(")")[2].split()[:2]
    return Proc(pid, int(ppid), state, cmdline.replace(b"\0", b" ").decode(errors="replace"))


def processes() -> dict[int, Proc]:
    """Every process now."""
    found = (_read(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit())
    return {p.pid: p for p in found if p is not None}


def descendants(pid: int) -> dict[int, Proc]:
    """The children of ``pid``, their children, and so on."""
    table = processes()
    found: dict[int, Proc] = {}
    parents = {pid}
    while parents:
        children = {p.pid: p for p in table.values() if p.ppid in parents and p.pid not in found}
        found.update(children)
        parents = set(children)
    return found


def alive(seen: dict[int, Proc]) -> list[Proc]:
    """Those of ``seen`` still running: neither gone nor a zombie waiting to be reaped."""
    now = (_read(pid) for pid in seen)
    # The same command line: not another process that took a freed pid.
    return [p for p in now if p is not None and p.state != "Z"
            and p.cmdline == seen[p.pid].cmdline]


def with_child(found: dict[int, Proc], command: str) -> bool:
    """Whether one of ``found`` whose command line holds ``command`` has a child among them."""
    return any(command in p.cmdline and any(c.ppid == p.pid for c in found.values())
               for p in found.values())


def wait_for_descendants(pid: int, ready: Callable[[dict[int, Proc]], bool],
                         timeout: float) -> dict[int, Proc]:
    """Wait until ``ready`` holds of ``pid``'s descendants; return them."""
    deadline = time.monotonic() + timeout
    while not ready(found := descendants(pid)):
        assert time.monotonic() < deadline, f"descendants of {pid} never ready: {found}"
        time.sleep(0.2)
    return found


def kill_all(procs: list[Proc]) -> None:
    """SIGKILL each of ``procs`` that is still there."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
