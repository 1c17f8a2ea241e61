"""Throughput of Tracker.process alone: detections per second on one core.

Scene: N targets (default 300) moving straight at 3-20 m/s in a 20 km square,
two geo sensors alternating scans every 0.5 s (σ 10 m, Pd 0.95, 5 clutter
points per scan), so each scan holds about N detections. Scans are built
first; only ``Tracker.process`` (plus one ``advance`` per scan, as the
pipeline does) is timed. Usage:

    .venv/bin/python bench/bench_tracker_core.py [--targets 300] [--seconds 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hub.config import Fusion
from hub.fusion.measurements import Scan
from hub.fusion.tracker import Tracker

T0 = 1.8e9


def make_scans(n_targets: int, seconds: float, seed: int = 0) -> list[Scan]:
    """Build the benchmark's scans."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-10_000.0, 10_000.0, (n_targets, 2))
    heading = rng.uniform(0.0, 2 * np.pi, n_targets)
    vel = rng.uniform(3.0, 20.0, n_targets)[:, None] * np.stack(
        (np.sin(heading), np.cos(heading)), axis=1)
    scans = []
    for k, t in enumerate(np.arange(0.0, seconds, 0.5)):
        seen = rng.random(n_targets) < 0.95
        z = pos[seen] + vel[seen] * t + rng.normal(scale=10.0, size=(int(seen.sum()), 2))
        z = np.concatenate((z, rng.uniform(-10_000.0, 10_000.0, (rng.poisson(5.0), 2))))
        m = z.shape[0]
        scans.append(Scan(t=T0 + t, sensor=k % 2, z=z,
                          R=np.repeat(np.eye(2)[None] * 100.0, m, axis=0),
                          cls=np.asarray(rng.integers(0, 3, size=m), dtype=np.int16),
                          conf=np.full(m, 0.8)))
    return scans


def main() -> None:
    """Run the benchmark and print detections/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    scans = make_scans(args.targets, args.seconds)
    detections = sum(len(s) for s in scans)
    tracker = Tracker(Fusion(), n_sensors=2)
    wall, cpu = time.perf_counter(), time.process_time()
    for scan in scans:
        tracker.process(scan)
        tracker.advance(scan.t)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    table = tracker.snapshot()
    print(f"{args.targets} targets, {len(scans)} scans, {detections} detections "
          f"({detections / len(scans):.0f}/scan)")
    print(f"wall {wall:.3f} s, cpu {cpu:.3f} s: {detections / wall:,.0f} detections/s wall, "
          f"{detections / cpu:,.0f} detections/s cpu, {1e3 * wall / len(scans):.2f} ms/scan")
    print(f"tracks at end: {len(table)}, confirmed {(table.status > 0).sum()}")


if __name__ == "__main__":
    main()
