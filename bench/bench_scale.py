"""The scale scenario: real-time factor of ``hub replay``, and each group against itself alone.

bench/scale/ (bench/scale_files.py): 1,000 targets, 100 sensors of 10
nations, 10 partners forming 10 release groups besides the mission picture.
The recording is generated first (not timed); then ``hub replay -c
bench/scale/hub.toml`` runs as a whole process ``--repeat`` times, and the
real-time factor is the scenario's duration over the median wall time (and
over the median CPU time: the machine is shared).

The identity check replays the first ``--check-seconds`` through the full
config, then, for each partner's group, through a pipeline that has only that
group and is fed only that group's sensors, and compares the group's tracks
(ids, states, covariances, status) and its whole stored state exactly. Usage:

    .venv/bin/python bench/bench_scale.py [--repeat 3] [--check-seconds 10]
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
from typing import Any

import msgspec
import numpy as np
from common import ROOT, load_average, write_results

from hub.config import HubConfig, load_config
from hub.pipeline import Pipeline
from hub.recording import Record, read_recording
from simulators.engine import write_recording
from simulators.scenario import load_scenario

SCALE = ROOT / "bench" / "scale"
TARGET_FACTOR = 5.0


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_replay(recording: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``hub replay --all-groups`` process, start-up included."""
    hub = Path(sys.executable).with_name("hub")
    cpu, wall = children_cpu(), time.perf_counter()
    subprocess.run([str(hub), "replay", "-c", str(SCALE / "hub.toml"), str(recording),
                    "--all-groups"],
                   check=True, capture_output=True)
    return time.perf_counter() - wall, children_cpu() - cpu


def run(config: HubConfig, records: list[Record]) -> Pipeline:
    """A pipeline that took ``records`` as the replay feeds them."""
    pipeline = Pipeline(config)
    for t_received, topic, payload in records:
        if topic.startswith("sensors/"):
            pipeline.handle(topic, payload, t_received)
            pipeline.flush(t_received)
    pipeline.finish()
    pipeline.close()
    return pipeline


def identity(config: HubConfig, records: list[Record]) -> dict[str, Any]:
    """Each partner group's tracks in the full run against the group processed alone."""
    full = run(config, records)
    out: dict[str, Any] = {}
    for partner in config.partners:
        fused = full.group_of(partner.id)
        alone_config = msgspec.structs.replace(config, partners=[partner])
        sees = fused.group.sensors
        alone = run(alone_config, [r for r in records if r[1].split("/")[1] in sees])
        a, b = fused.tracker.snapshot(), alone.group_of(partner.id).tracker.snapshot()
        same = (np.array_equal(a.id, b.id) and np.array_equal(a.x, b.x)
                and np.array_equal(a.P, b.P) and np.array_equal(a.status, b.status))
        # The whole stored state too: histories, misses, sources, every float.
        state, state_alone = fused.tracker.state(), alone.group_of(partner.id).tracker.state()
        same = same and all(np.array_equal(v, state_alone[k]) for k, v in state.items())
        out[partner.id] = {"tracks": len(a), "identical": same}
    return out


def main() -> None:
    """Generate the recording, time the replays, check identity, print and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the median counts")
    parser.add_argument("--check-seconds", type=float, default=10.0)
    args = parser.parse_args()
    scenario = load_scenario(SCALE / "scenario.toml")
    config = load_config(SCALE / "hub.toml")
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "scale.rec"
        write_recording(scenario, recording)
        records = list(read_recording(recording))
        detections = sum(1 for r in records if r[1].endswith("/detections"))
        runs = [time_replay(recording) for _ in range(args.repeat)]
        short = Path(tmp) / "short.rec"
        write_recording(scenario.with_duration(args.check_seconds), short)
        checked = identity(config, list(read_recording(short)))
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    figures = {
        "duration_s": scenario.duration_s, "messages": len(records),
        "detection_messages": detections, "trackers": len(Pipeline(config).groups),
        "runs_wall_s": [round(r[0], 2) for r in runs], "runs_cpu_s": [round(r[1], 2) for r in runs],
        "median_wall_s": round(wall, 2), "median_cpu_s": round(cpu, 2),
        "realtime_factor_wall": round(scenario.duration_s / wall, 2),
        "realtime_factor_cpu": round(scenario.duration_s / cpu, 2),
        "target_factor": TARGET_FACTOR, "identity_seconds": args.check_seconds,
        "identity": checked, "load_average_before": load_before,
        "load_average_after": load_average()}
    print(f"{len(records)} messages, {scenario.duration_s:.0f} s, {figures['trackers']} trackers:"
          f" replay median {wall:.2f} s wall ({figures['realtime_factor_wall']}x real time),"
          f" {cpu:.2f} s CPU ({figures['realtime_factor_cpu']}x); runs {figures['runs_wall_s']}")
    alone = sum(v["identical"] for v in checked.values())
    print(f"groups identical to themselves alone: {alone} of {len(checked)}")
    print(f"wrote {write_results('scale', figures)}")


if __name__ == "__main__":
    main()
