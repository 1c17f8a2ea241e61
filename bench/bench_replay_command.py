"""Issue 12's item 4 as the issue measures it: the whole ``hub replay`` command, as a user times it.

A ``--scenario`` recording of ``--duration`` s (targets300, 600 s by default) and a
recording of its first message alone are written first (not timed). Then
``hub replay -c CONFIG REC --tracks-out OUT`` and the same command on the
one-message recording run as child processes, alternately, ``--pairs`` times.
Each pair gives the recording's detections over the wall seconds of the whole
replay minus those of the one-message replay (the start-up: imports, config,
pipeline, the issue's other figure, not counted twice), and the same over CPU
seconds (user + system, the replay's children included). With a second core
the replay's ingest and tracks writer run beside its fusion (docs/ARCHITECTURE.md,
"A replay on two cores"): the wall figure is the one a user sees and the
issue's; the CPU figure is what one core would take. The machine's speed moves
by a quarter within minutes: alternating keeps both halves of a pair in the
same minute, and the median of the pairs is the figure. Prints each pair and
the medians; writes bench/results/replay_command.json.

    .venv/bin/python bench/bench_replay_command.py [--pairs 5] [--duration 600] [--all-groups]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from common import ROOT, load_average, write_results

from hub.config import load_config
from hub.errors import ConfigError
from hub.messages import DetectionBatch, decode
from hub.recording import RecordingWriter, read_recording
from simulators.engine import write_recording
from simulators.scenario import load_scenario

TARGET_RATE = 100_000
"""Detections per second (wall) the issue asks of the whole command."""
STARTUP_LIMIT_S = 0.4


def detections_in(recording: Path) -> int:
    """How many detections the recording's detection batches hold."""
    return sum(len(decode(payload, DetectionBatch, 1 << 30).detections)
               for _, topic, payload in read_recording(recording)
               if topic.endswith("/detections"))


def first_message(recording: Path, out: Path) -> None:
    """Write the first record of ``recording`` alone to ``out``."""
    with RecordingWriter(out) as writer:
        writer.write(*next(iter(read_recording(recording))))


def replay_times(config: Path, recording: Path, tracks: Path, extra: list[str],
                 ) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, its children's included) of one ``hub replay``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hub.cli", "replay", "-c", str(config), str(recording),
                    "--tracks-out", str(tracks), *extra],
                   check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    """Write the recordings, time the pairs, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="targets300")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of recording")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "hub.toml")
    parser.add_argument("--all-groups", action="store_true",
                        help="pass --all-groups: fuse every release group, as the live hub does")
    args = parser.parse_args()
    if args.pairs < 1 or not args.duration > 0.0:
        parser.error("--pairs must be at least 1 and --duration above 0")
    try:
        scenario = load_scenario(ROOT / "config" / "scenarios" / f"{args.scenario}.toml")
        load_config(args.config)  # the replays would each fail on it, later and twice
    except ConfigError as exc:
        parser.error(str(exc))
    extra = ["--all-groups"] if args.all_groups else []
    with tempfile.TemporaryDirectory() as tmp:
        recording, one = Path(tmp) / "rec.mpk", Path(tmp) / "one.mpk"
        # Longer than the scenario's own duration: its targets and sensors simply go on.
        write_recording(msgspec.structs.replace(scenario, duration_s=args.duration), recording)
        first_message(recording, one)
        detections = detections_in(recording)
        pairs: list[dict[str, float | str]] = []
        rates: list[float] = []
        cpu_rates: list[float] = []
        startups: list[float] = []
        for index in range(args.pairs):
            whole = replay_times(args.config, recording, Path(tmp) / "tracks.jsonl", extra)
            startup = replay_times(args.config, one, Path(tmp) / "one.jsonl", extra)
            rates.append(detections / (whole[0] - startup[0]))
            cpu_rates.append(detections / (whole[1] - startup[1]))
            startups.append(startup[0])
            load = load_average()[0]
            pairs.append({"whole_wall_s": round(whole[0], 3),
                          "startup_wall_s": round(startup[0], 3),
                          "whole_cpu_s": round(whole[1], 3), "startup_cpu_s": round(startup[1], 3),
                          "detections_per_s": round(rates[-1]),
                          "detections_per_cpu_s": round(cpu_rates[-1]), "load": load,
                          "at": time.strftime("%H:%M:%S")})
            print(f"pair {index + 1}: whole {whole[0]:.2f} s ({whole[1]:.2f} s CPU), start-up "
                  f"{startup[0]:.2f} s ({startup[1]:.2f} s CPU): {rates[-1]:,.0f} det/s, "
                  f"{cpu_rates[-1]:,.0f} det/CPU-s (load {load})")
    rate, cpu_rate = statistics.median(rates), statistics.median(cpu_rates)
    median_startup = statistics.median(startups)
    print(f"median {rate:,.0f} det/s (target {TARGET_RATE:,}), {cpu_rate:,.0f} det/CPU-s; "
          f"start-up {median_startup:.2f} s (limit {STARTUP_LIMIT_S}); {detections} detections")
    path = write_results("replay_command", {
        "scenario": args.scenario, "duration_s": args.duration, "detections": detections,
        "all_groups": args.all_groups, "cores": len(os.sched_getaffinity(0)), "pairs": pairs,
        "median_detections_per_s": round(rate), "median_detections_per_cpu_s": round(cpu_rate),
        "median_startup_s": round(median_startup, 3), "target_detections_per_s": TARGET_RATE,
        "startup_limit_s": STARTUP_LIMIT_S})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
