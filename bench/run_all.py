"""Run every benchmark with its defaults, one after the other (``make bench``).

Each writes its figures to bench/results/; docs/BENCHMARKS.md quotes them with
the command and the machine. Pass names to run a subset:
``python bench/run_all.py replay latency``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "tracker_core": ["bench_tracker_core.py"],
    "replay": ["bench_replay.py"],
    "replay_command": ["bench_replay_command.py"],  # issue 12 item 4: the whole command
    # The same on an independent generator's scene, 300 targets over 20 km by 20 km
    # (smaller scans than targets300's: the per-scan cost shows).
    "replay_command_family": ["bench_replay_command.py", "--family", "quiet",
                              "--half-side", "10000"],
    "stonesoup": ["bench_stonesoup.py", "--scenario", "targets50"],
    "families": ["bench_families.py"],  # ~15 min: Stone Soup's grid on 8 families
    "bus": ["bench_bus.py", "--messages", "100000"],
    "e2e": ["bench_e2e.py"],
    "latency": ["bench_latency.py"],
    "publish": ["bench_publish.py"],
    "frames": ["bench_frames.py"],
    "frames_live": ["bench_frames_live.py"],
    "web": ["bench_web.py", "--clients", "200"],
    "console": ["bench_console.py", "--tracks", "1000"],
    "tak": ["bench_tak.py", "--rounds", "4"],
    "flood": ["bench_flood.py"],
    "parked_partner": ["bench_parked_partner.py"],  # 30 minutes parked
}


def main(names: list[str]) -> int:
    """Run the named benchmarks (all by default); return the number that failed."""
    failed = 0
    for name in names or list(BENCHES):
        script, *args = BENCHES[name]
        if not (HERE / script).exists():
            print(f"== {name}: {script} is missing", flush=True)
            failed += 1
            continue
        print(f"== {name}: {script} {' '.join(args)}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(HERE / script), *args], check=False)
        print(f"== {name}: exit {result.returncode} after {time.monotonic() - started:.0f} s\n",
              flush=True)
        failed += result.returncode != 0
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
