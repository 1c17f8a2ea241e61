"""The C heap of a long-running hub: few arenas, fixed thresholds, freed memory given back.

Python's own allocations are flat under steady traffic (tracemalloc finds no
site that grows over an hour), yet the RSS of a hub on glibc crept up by about
0.13 MiB a minute. What grows is glibc's heap around them: every thread that
allocates (the frame pool's result and feeder threads, asyncio's helper
threads) gets an arena of its own, and after the first large buffer is freed
glibc raises its mmap threshold, so frames of a few hundred KiB then come from
the heap, where freed holes between live blocks are never handed back. Hence,
at start, two arenas and a fixed mmap threshold (which also fixes the trim
threshold), and after each checkpoint a ``malloc_trim``, which returns the free
pages inside the heaps too. Elsewhere than glibc these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""mallopt(3) parameters, from glibc's malloc.h."""

ARENA_MAX = 2
MMAP_THRESHOLD = 128 * 1024
"""Blocks this large or larger are mmapped, so they go back to the system when freed."""
TRIM_THRESHOLD = 1 << 20


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, if this process runs on it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def tune_heap() -> bool:
    """Bound the arenas and fix the mmap and trim thresholds; False where that is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    settings = ((M_ARENA_MAX, ARENA_MAX), (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    ok = all(libc.mallopt(param, value) == 1 for param, value in settings)
    if not ok:
        log.warning("mallopt refused a heap setting; memory may creep on long runs")
    return ok


def trim_heap() -> bool:
    """Give the free pages of every arena back to the system; True if some were."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1
