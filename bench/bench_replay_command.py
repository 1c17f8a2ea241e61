"""Issue 12's item 4 as the issue measures it: the whole ``hub replay`` command, per CPU second.

A ``--scenario`` recording of ``--duration`` s (targets300, 600 s by default) and a
recording of its first message alone are written first (not timed). Then
``hub replay -c CONFIG REC --tracks-out OUT`` and the same command on the
one-message recording run as child processes, alternately, ``--pairs`` times.
Each pair gives the recording's detections over the CPU seconds (user + system)
of the whole replay minus those of the one-message replay: the start-up
(imports, config, pipeline) is the issue's other figure and is not counted
twice. The machine's speed moves by a quarter within minutes: alternating
keeps both halves of a pair in the same minute, and the median of the pairs
is the figure. Prints each pair and the medians; writes
bench/results/replay_command.json.

    .venv/bin/python bench/bench_replay_command.py [--pairs 5] [--duration 600] [--all-groups]
"""

from __future__ import annotations

import argparse
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
"""Detections per CPU second the issue asks of the whole command."""
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


def replay_cpu_s(config: Path, recording: Path, tracks: Path, extra: list[str]) -> float:
    """CPU seconds (user + system) of one ``hub replay`` child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "hub.cli", "replay", "-c", str(config), str(recording),
                    "--tracks-out", str(tracks), *extra],
                   check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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
        startups: list[float] = []
        for index in range(args.pairs):
            whole = replay_cpu_s(args.config, recording, Path(tmp) / "tracks.jsonl", extra)
            startup = replay_cpu_s(args.config, one, Path(tmp) / "one.jsonl", extra)
            rates.append(detections / (whole - startup))
            startups.append(startup)
            load = load_average()[0]
            pairs.append({"whole_cpu_s": round(whole, 3), "startup_cpu_s": round(startup, 3),
                          "detections_per_cpu_s": round(rates[-1]), "load": load,
                          "at": time.strftime("%H:%M:%S")})
            print(f"pair {index + 1}: whole {whole:.2f} s CPU, start-up {startup:.2f} s, "
                  f"{rates[-1]:,.0f} det/CPU-s (load {load})")
    rate, startup = statistics.median(rates), statistics.median(startups)
    print(f"median {rate:,.0f} det/CPU-s (target {TARGET_RATE:,}); start-up {startup:.2f} s "
          f"CPU (limit {STARTUP_LIMIT_S}); {detections} detections")
    path = write_results("replay_command", {
        "scenario": args.scenario, "duration_s": args.duration, "detections": detections,
        "all_groups": args.all_groups, "pairs": pairs,
        "median_detections_per_cpu_s": round(rate), "median_startup_cpu_s": round(startup, 3),
        "target_detections_per_cpu_s": TARGET_RATE, "startup_limit_s": STARTUP_LIMIT_S})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
