"""Replay throughput of the whole pipeline (decode, route, reorder, fuse), in detections/s.

Each scenario's recording is generated first (not timed); then ``hub.cli.replay``
runs it twice per config: once without output (the pipeline alone, timed in
wall and CPU seconds) and once writing the mission picture's tracks, which are
scored against the recording's truth with ``hub.cli.score``. Configs:

- ``single``: config/hub.toml with no partners, so only the mission tracker runs;
- ``default``: config/hub.toml as shipped (the mission picture and the
  partners' release groups, one tracker each).

Each timing is the median of ``--repeat`` runs (the machine is shared). Prints a
table and writes bench/results/replay.json with machine facts and load. Usage:

    .venv/bin/python bench/bench_replay.py [--scenarios targets50 targets300] [--profile]
                                           [--repeat 3]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from hub.cli.replay import replay
from hub.cli.score import score
from hub.config import HubConfig, load_config
from hub.heap import keep_freed_memory
from hub.pipeline import Pipeline
from hub.recording import Record, read_recording
from simulators.engine import write_recording
from simulators.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "replay.json"
TARGET_RATE = 100_000


def configs() -> dict[str, HubConfig]:
    """The configs compared: one tracker, and the shipped release groups."""
    shipped = load_config(ROOT / "config" / "hub.toml")
    return {"single": msgspec.structs.replace(shipped, partners=[]), "default": shipped}


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Facts about the machine the numbers come from."""
    return {"nproc": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "platform": platform.platform()}


def run_one(records: list[Record], config: HubConfig, recording: Path, tracks: Path,
            repeat: int = 3) -> dict[str, Any]:
    """Time the median of ``repeat`` replays without output, then replay writing tracks."""
    runs = []
    for _ in range(repeat):
        cpu = time.process_time()
        summary = replay(records, config, all_groups=True)
        runs.append((summary.seconds, time.process_time() - cpu, summary))
    _, cpu, summary = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    with open(tracks, "wb") as out:
        replay(records, config, out, all_groups=True)
    report = score(recording, tracks)
    return {
        "trackers": len(Pipeline(config).groups), "messages": summary.messages,
        "detections": summary.detections, "wall_s": round(summary.seconds, 3),
        "cpu_s": round(cpu, 3),
        "detections_per_s": round(summary.detections / summary.seconds),
        "detections_per_cpu_s": round(summary.detections / cpu) if cpu > 0 else None,
        "gospa": round(report.gospa, 2), "localisation": round(report.localisation, 2),
        "missed": round(report.missed, 2), "false": round(report.false, 2),
        "id_switches": report.id_switches, "truths_per_time": round(report.mean_truths, 1),
        "confirmed_per_time": round(report.mean_confirmed, 1),
    }


def profile(records: list[Record], config: HubConfig, top: int = 25) -> None:
    """Print where one replay spends its time (cProfile, cumulative)."""
    profiler = cProfile.Profile()
    profiler.enable()
    replay(records, config, all_groups=True)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    """Run the benchmark, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["targets50", "targets300"])
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of the single-tracker replay")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the median counts")
    args = parser.parse_args()
    keep_freed_memory()  # in process, as the ``hub replay`` command runs
    rows: list[dict[str, Any]] = []
    load_before = list(os.getloadavg())  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios:
            recording = Path(tmp) / f"{name}.rec"
            write_recording(load_scenario(ROOT / "config" / "scenarios" / f"{name}.toml"),
                            recording)
            records = list(read_recording(recording))  # decoded once: the file is not timed
            for label, config in configs().items():
                row = {"scenario": name, "config": label,
                       **run_one(records, config, recording, Path(tmp) / "tracks.jsonl",
                                 args.repeat)}
                rows.append(row)
                print_row(row)
            if args.profile:
                profile(records, configs()["single"])
    result = {"machine": machine(), "load_average_before": load_before,
              "load_average_after": list(os.getloadavg()), "repeat": args.repeat,
              "target_detections_per_s": TARGET_RATE, "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def print_row(row: dict[str, Any]) -> None:
    """One line of the table (header before the first)."""
    if not getattr(print_row, "header", False):
        print(f"{'scenario':11} {'config':8} {'trk':>3} {'detections':>10} {'wall s':>7} "
              f"{'det/s':>9} {'det/cpu-s':>9} {'GOSPA':>7} {'miss':>6} {'false':>6} {'IDsw':>5}")
        print_row.header = True  # type: ignore[attr-defined]
    print(f"{row['scenario']:11} {row['config']:8} {row['trackers']:3d} {row['detections']:10d} "
          f"{row['wall_s']:7.2f} {row['detections_per_s']:9,d} {row['detections_per_cpu_s']:9,d} "
          f"{row['gospa']:7.1f} {row['missed']:6.1f} {row['false']:6.1f} "
          f"{row['id_switches']:5d}")


if __name__ == "__main__":
    main()
