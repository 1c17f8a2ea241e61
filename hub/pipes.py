"""One-way pipes between a replay and its children that hold a whole batch.

A replay's ingest child sends its steps, and the replay sends its pictures to
the writer child, in batches of about half a MiB. Through a pipe of Linux's
default 64 KiB, a send of a batch goes in sixteen pieces, each waiting for the
reader to be scheduled and empty the pipe: with three processes on two cores
(the children at a lower priority), the replay waited 0.15-0.3 s in all for
its children's pipes in a 3-4 s replay (docs/BENCHMARKS.md). A pipe that holds
the batch lets the sender write it at once and go on.
"""

from __future__ import annotations

import contextlib
import fcntl
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext

PIPE_BYTES = 1 << 20
"""The buffer asked for: Linux's default limit for an unprivileged process
(/proc/sys/fs/pipe-max-size)."""
BATCH_ROWS = 8_192
"""Rows (a scan's detections, a picture's tracks: 50-60 bytes each pickled) that end a
batch early: about half of ``PIPE_BYTES``, three quarters at most (a batch of steps
ended by one more message of hub.messages.MAX_DETECTIONS_PER_BATCH detections)."""


def batch_pipe(context: BaseContext) -> tuple[Connection, Connection]:
    """A one-way pipe (reader, writer) of ``context`` holding ``PIPE_BYTES`` where allowed.

    Where the system allows less, or has no F_SETPIPE_SZ (not Linux), the pipe
    keeps its default size: every send still arrives, with more waiting.
    """
    reader, writer = context.Pipe(duplex=False)
    resize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if resize is not None:
        with contextlib.suppress(OSError):  # EPERM above a lowered pipe-max-size
            fcntl.fcntl(writer.fileno(), resize, PIPE_BYTES)
    return reader, writer
