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

Each pair also times *the fusion alone*, in this process: the recording's
steps made first (decoded, validated, converted: not timed), then only what
the replay's fusion does with them (the reorder window, the tracker, friend
platforms) in CPU seconds, with no pictures and no start-up. The replay's
rate over that rate is the issue's title, "a replay as fast as the tracker":
1.0 when the replay costs no more than its fusion. Both are taken seconds
apart, and this machine's speed moves by up to half within a minute: read
the median, not one pair.

    .venv/bin/python bench/bench_replay_command.py [--pairs 5] [--duration 600] [--all-groups]
    .venv/bin/python bench/bench_replay_command.py --family quiet [--targets 300] \
        [--half-side 10000]

``--family`` replays data our simulator did not make instead: a family of
``simulators.families`` (its own motion, radar and camera models) with
``--targets`` targets over a square of ``--half-side`` m, for ``--duration`` s
(figures to bench/results/replay_command_FAMILY.json).
Its scans hold fewer detections than targets300's where its area is wider
than the radars' reach, and a scan costs its numpy calls whatever its size.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
from common import ROOT, load_average, write_results

from hub.cli.replay import fuse
from hub.cli.replay_ingest import IngestResult, InlineIngest
from hub.cluster.records import Decoded
from hub.config import HubConfig, load_config
from hub.errors import ConfigError
from hub.heap import keep_freed_memory
from hub.recording import RecordingReader, RecordingWriter, read_recording
from simulators.engine import write_recording
from simulators.families import FAMILIES, write_family
from simulators.scenario import Scenario, load_scenario

TARGET_RATE = 100_000
"""Detections per second (wall) the issue asks of the whole command."""
STARTUP_LIMIT_S = 0.4


def first_message(recording: Path, out: Path) -> None:
    """Write the first record of ``recording`` alone to ``out``."""
    with RecordingWriter(out) as writer:
        writer.write(*next(iter(read_recording(recording))))


class MadeSteps:
    """A replay's steps made beforehand, handed to ``fuse`` as its ingest."""

    def __init__(self, steps: list[Decoded], result: IngestResult | None) -> None:
        self._steps, self.result = steps, result

    def steps(self) -> Iterator[Decoded]:
        """The steps, in the order the ingest made them."""
        yield from self._steps


def made_steps(config: HubConfig, recording: Path) -> MadeSteps:
    """The recording's fusion steps, as ``hub replay``'s ingest makes them (frames in process)."""
    ingest = InlineIngest(RecordingReader(recording), config, frame_workers=0)
    steps = list(ingest.steps())
    return MadeSteps(steps, ingest.result)


def fusion_seconds(config: HubConfig, steps: MadeSteps) -> float:
    """CPU seconds of the replay's fusion of ``steps`` alone: no reading, pictures or start-up."""
    started = time.process_time()
    fuse(steps, config)
    return time.process_time() - started


def write_source(args: argparse.Namespace, scenario: Scenario | None, out: Path) -> str:
    """Write the recording to time (``--family``'s, else the scenario's); what it is."""
    if args.family is None:
        assert scenario is not None
        # Longer than the scenario's own duration: its targets and sensors simply go on.
        write_recording(msgspec.structs.replace(scenario, duration_s=args.duration), out)
        return str(args.scenario)
    family = FAMILIES[args.family]
    population = dataclasses.replace(
        family.population, count=args.targets,
        half_side=family.population.half_side if args.half_side is None else args.half_side)
    write_family(dataclasses.replace(family, population=population, duration_s=args.duration),
                 out)
    return f"family {args.family}, {args.targets} targets, half side {population.half_side:g} m"


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
    parser.add_argument("--family", choices=sorted(FAMILIES),
                        help="replay this family of simulators.families instead of --scenario")
    parser.add_argument("--targets", type=int, default=300, help="with --family: how many")
    parser.add_argument("--half-side", type=float, default=None,
                        help="with --family: half the side of the targets' square, m")
    args = parser.parse_args()
    if args.pairs < 1 or not args.duration > 0.0:
        parser.error("--pairs must be at least 1 and --duration above 0")
    if args.targets < 1 or (args.half_side is not None and not args.half_side > 0.0):
        parser.error("--targets must be at least 1 and --half-side above 0")
    try:
        scenario = None if args.family is not None else load_scenario(
            ROOT / "config" / "scenarios" / f"{args.scenario}.toml")
        config = load_config(args.config)  # the replays would each fail on it, later and twice
    except ConfigError as exc:
        parser.error(str(exc))
    keep_freed_memory()  # the fusion alone runs here: as in the ``hub`` command
    extra = ["--all-groups"] if args.all_groups else []
    with tempfile.TemporaryDirectory() as tmp:
        recording, one = Path(tmp) / "rec.mpk", Path(tmp) / "one.mpk"
        source = write_source(args, scenario, recording)
        first_message(recording, one)
        steps = made_steps(config, recording)
        # What the ingest counted, as ``hub replay`` reports it: every detection of the batches.
        assert steps.result is not None, "an ingest's result follows its last step"
        detections = steps.result.counters["detections"]
        pairs: list[dict[str, float | str]] = []
        rates: list[float] = []
        cpu_rates: list[float] = []
        startups: list[float] = []
        ratios: list[float] = []
        for index in range(args.pairs):
            whole = replay_times(args.config, recording, Path(tmp) / "tracks.jsonl", extra)
            startup = replay_times(args.config, one, Path(tmp) / "one.jsonl", extra)
            rates.append(detections / (whole[0] - startup[0]))
            cpu_rates.append(detections / (whole[1] - startup[1]))
            startups.append(startup[0])
            fusion_rate = detections / fusion_seconds(config, steps)
            ratios.append(rates[-1] / fusion_rate)
            load = load_average()[0]
            pairs.append({"whole_wall_s": round(whole[0], 3),
                          "startup_wall_s": round(startup[0], 3),
                          "whole_cpu_s": round(whole[1], 3), "startup_cpu_s": round(startup[1], 3),
                          "detections_per_s": round(rates[-1]),
                          "detections_per_cpu_s": round(cpu_rates[-1]),
                          "fusion_alone_detections_per_cpu_s": round(fusion_rate),
                          "replay_over_fusion_alone": round(ratios[-1], 3), "load": load,
                          "at": time.strftime("%H:%M:%S")})
            print(f"pair {index + 1}: whole {whole[0]:.2f} s ({whole[1]:.2f} s CPU), start-up "
                  f"{startup[0]:.2f} s ({startup[1]:.2f} s CPU): {rates[-1]:,.0f} det/s, "
                  f"{cpu_rates[-1]:,.0f} det/CPU-s; the fusion alone {fusion_rate:,.0f} det/CPU-s, "
                  f"the replay {ratios[-1]:.2f} of it (load {load})")
    rate, cpu_rate = statistics.median(rates), statistics.median(cpu_rates)
    median_startup = statistics.median(startups)
    ratio = statistics.median(ratios)
    print(f"median {rate:,.0f} det/s (target {TARGET_RATE:,}), {cpu_rate:,.0f} det/CPU-s; "
          f"start-up {median_startup:.2f} s (limit {STARTUP_LIMIT_S}); {detections} detections; "
          f"the replay {ratio:.2f} of the fusion alone")
    name = "replay_command" if args.family is None else f"replay_command_{args.family}"
    path = write_results(name, {
        "scenario": source, "duration_s": args.duration, "detections": detections,
        "all_groups": args.all_groups, "cores": len(os.sched_getaffinity(0)), "pairs": pairs,
        "median_detections_per_s": round(rate), "median_detections_per_cpu_s": round(cpu_rate),
        "median_startup_s": round(median_startup, 3),
        "median_replay_over_fusion_alone": round(ratio, 3), "target_detections_per_s": TARGET_RATE,
        "startup_limit_s": STARTUP_LIMIT_S})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
