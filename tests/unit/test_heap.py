"""The heap settings take on glibc, and a trim gives freed pages back to the system."""

from __future__ import annotations

import platform

import pytest

from hub.heap import trim_heap, tune_heap

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_glibc_takes_every_setting() -> None:
    assert tune_heap()


def test_a_trim_returns_what_small_freed_blocks_held() -> None:
    # 40 MiB in 8 KiB blocks (below the mmap threshold, so on the heap), every
    # other one kept: the freed half is holes between live blocks, which glibc
    # keeps until it is asked to trim.
    tune_heap()
    blocks = [bytearray(8 * 1024) for _ in range(5_000)]
    del blocks[::2]
    before = rss_kib()
    assert trim_heap()
    assert rss_kib() < before - 8 * 1024
