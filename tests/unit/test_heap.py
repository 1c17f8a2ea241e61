"""The ``hub`` command keeps freed heap memory: a scan's temporaries do not cost page faults anew.

Each probe runs in a process of its own (malloc's thresholds are the
process's): eight 800 kB arrays alive at once, freed, fifty times over, the
pattern of a scan's numpy temporaries, counting the minor page faults.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "keep":
        from hub.heap import keep_freed_memory
        assert keep_freed_memory()
    elif sys.argv[1] == "hub":
        import contextlib, io
        from hub.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["config", "docs"]) == 0

    def scan():
        live = [np.ones(100_000) for _ in range(8)]
        return sum(float(a[0]) for a in live)

    scan()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        scan()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")
PAGES_TOUCHED = 50 * 8 * 800_000 // 4096
"""What the rounds would fault in if every round's memory were new to the process."""


def page_faults(mode: str) -> int:
    """Minor page faults of the probe's rounds: malloc as it is, as set, or after a hub command."""
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True, timeout=60)
    return int(done.stdout)


def test_freed_scan_memory_is_reused_without_page_faults() -> None:
    kept = page_faults("keep")
    assert kept < PAGES_TOUCHED // 100, f"{kept} page faults with the hub's malloc settings"


def test_the_probe_sees_the_faults_of_a_heap_given_back_at_each_round() -> None:
    """The control: without the settings the same rounds fault (glibc trims the heap)."""
    assert page_faults("default") > PAGES_TOUCHED // 4


def test_the_hub_command_sets_them_before_it_runs() -> None:
    kept = page_faults("hub")
    assert kept < PAGES_TOUCHED // 100, f"{kept} page faults after `hub config docs`"
