"""M-of-N track confirmation and deletion of tentative tracks, vectorised.

Each track keeps a bit history of its last N *opportunities* (newest in bit
0): 1 for a scan that updated it, 0 for a miss. A tentative track becomes
confirmed once M of those N bits are set; confirmation is sticky (confirmed
tracks die only by staleness or uncertainty, see hub.fusion.tracker). A
tentative track is deleted after ``tentative_max_misses`` consecutive misses.

Which scans are opportunities. The hub knows no sensor's coverage, and
counting every scan of every sensor as a miss would kill a track that only
one sensor sees (a UAV's target misses every scan of a radar far away). So a
scan is an opportunity for a track when the scan updated it or when the
scan's sensor has updated that track before (``sources``): a sensor that has
seen a target and then reports nothing near it is evidence against it, a
sensor that never saw it is not. A track born from clutter has exactly one
source, whose next scans find nothing there, so it dies after
``tentative_max_misses`` of that sensor's scans; a real target seen by two
sensors is confirmed from the hits of both.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Bools = NDArray[np.bool_]


def record(history: NDArray[np.uint32], misses: NDArray[np.int32], counted: Bools,
           hit: NDArray[np.intp], n: int) -> None:
    """Shift the counted tracks' hit (rows ``hit``) or miss into their N-bit histories, in place.

    ``counted`` (hit or seen by this scan's sensor before) says which tracks
    the scan is an opportunity for; ``misses`` counts consecutive misses.
    """
    # A hit is always counted: shift where counted, then set bit 0 of the hits.
    history <<= counted
    history[hit] |= np.uint32(1)
    history &= np.uint32((1 << n) - 1)  # drop the bit shifted out
    misses += counted
    misses[hit] = 0


_bitwise_count = getattr(np, "bitwise_count", None)


def popcount(history: NDArray[np.uint32]) -> NDArray[np.int64]:
    """Return the number of set bits of each history."""
    if _bitwise_count is not None:  # numpy >= 2: one ufunc
        fast: NDArray[np.int64] = _bitwise_count(history).astype(np.int64)
        return fast
    as_bytes = history.astype("<u4").view(np.uint8).reshape(-1, 4)
    counts: NDArray[np.int64] = np.unpackbits(as_bytes, axis=1).sum(axis=1, dtype=np.int64)
    return counts


def reaches_m(history: NDArray[np.uint32], m: int) -> Bools:
    """Return which histories hold at least M hits."""
    if _bitwise_count is not None:
        reached: Bools = _bitwise_count(history) >= m
        return reached
    return popcount(history) >= m
