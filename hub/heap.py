"""Keep freed heap memory in the process rather than give it back to the kernel after each scan.

A scan's numpy temporaries are a few hundred kB each (a thousand tracks'
model covariances: 64 floats a track). glibc's malloc gives memory above
its trim threshold back to the kernel as soon as it is free (the threshold
starts at 128 kB and only grows to twice the largest freed mmap'd block),
so every scan the heap shrank and grew again and the kernel zero-filled
the same pages anew: a replay of targets300 with four trackers spent 0.7 s
of its 8.6 s CPU in the kernel, 0.13 s with the thresholds below
(docs/BENCHMARKS.md, *Replay with --tracks-out*). The process keeps at
most ``TRIM_THRESHOLD`` of free memory above what it uses: 8 MiB took
the replay's system time down as far as 64 MiB did, and left `hub demo`'s
peak resident size where it was (81 MB; 117 MB with 64 MiB).

Process-wide, so only entry points call it (the ``hub`` command, and the
benchmarks that start the service as ``hub run`` would). A C library
without ``mallopt`` (not glibc) is left as it is.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 8 << 20
"""Free memory at the top of the heap kept before any is given back, bytes: a scan's worth."""
MMAP_THRESHOLD = 32 << 20
"""Blocks from this size up get pages of their own (the rest come from the heap), bytes."""


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for a process that frees and allocates the same sizes.

    Returns whether both were set (False off Linux, or without glibc's ``mallopt``).
    """
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
