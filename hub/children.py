"""How the hub's child processes end with it, however it dies (SIGKILL included).

A child started through multiprocessing (the frame workers) watches a
``Lifeline`` and exits at its end of file; a child started with subprocess
(Mosquitto, nats-server, the simulators) gets ``exit_with_parent``; and
``end_child`` stops one on the way out. No event loop here: the frame pool
uses it in a replay too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when the thread that created it ends."""
ORPHANED_EXIT = 70
"""Exit status of a child that ended because its parent was gone."""


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
