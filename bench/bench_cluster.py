"""Issue 13's scale benchmark: the scale scenario's fusion on 1, 2 and 4 fusion workers.

The inputs stream of a fresh 3-node cluster is filled first (not timed) with
what the ingest workers and the clock would store for the scale scenario
(bench/scale: 1,000 targets, 100 sensors, 11 release groups; records built
by ``hub.cluster.records.records_of``). Then N ``hub run --role fusion``
processes start and apply it. Timed: from their start until every group has
applied the whole stream (start-up, lease and restore included), and each
worker's CPU seconds then (/proc). On a 2-core machine N > 2 workers share
the cores, so the wall time stops falling; the CPU per worker says how the
work divides, and what N cores would do with it.

    .venv/bin/python bench/bench_cluster.py [--seconds 60] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, cpu_seconds, load_average, write_results

from hub.cli.cluster_demo import clustered
from hub.cluster.names import Names
from hub.cluster.nats_server import NatsCluster, start_nats_cluster
from hub.cluster.records import Record, records_of
from hub.config import HubConfig, config_toml, load_config
from hub.recording import read_recording
from simulators.engine import write_recording
from simulators.scenario import load_scenario

SCALE = ROOT / "bench" / "scale"
TICK_S = 0.05
WAIT_S = 600.0


async def fill(cluster: NatsCluster, config: HubConfig, records: list[Record]) -> None:
    """Store ``records`` in the inputs stream, in order (the streams are declared first)."""
    from hub.cluster.streams import connect, declare

    assert config.cluster is not None
    names = Names.of(config.cluster)
    nc = await connect(config.cluster, "bench-fill")
    link = await declare(nc, config.cluster)
    for is_tick, data in records:
        await link.js.publish(names.tick_subject if is_tick else names.item_subject, data,
                              stream=names.inputs_stream)
    await nc.close()


async def until_reported(cluster: NatsCluster, config: HubConfig,
                         done: Callable[[dict[str, dict[str, Any]]], bool],
                         timeout: float = WAIT_S) -> dict[str, dict[str, Any]]:
    """Wait until the workers' latest reports (worker → report) are ``done``; return them."""
    from hub.cluster.connect import connect_nats

    assert config.cluster is not None
    reports: dict[str, dict[str, Any]] = {}

    async def take(msg: Any) -> None:
        report = json.loads(msg.data)
        reports[report["worker"]] = report

    nc = await connect_nats(cluster.urls, name="bench-watch")
    await nc.subscribe(Names.of(config.cluster).status_subject, cb=take)
    deadline = time.monotonic() + timeout
    while not done(reports):
        assert time.monotonic() < deadline, f"not done in {timeout} s: {reports}"
        await asyncio.sleep(0.05)
    await nc.close()
    return reports


def applied(last: int, groups: int) -> Callable[[dict[str, dict[str, Any]]], bool]:
    """Whether ``groups`` groups report the stream applied through ``last``."""
    return lambda reports: sum(g["applied"] >= last for r in reports.values()
                               for g in r.get("groups", {}).values()) >= groups


def run(config: HubConfig, records: list[Record], workers: int, tmp: Path) -> dict[str, Any]:
    """One measurement: ``workers`` fusion workers apply the whole stream."""
    groups = len(config_groups(config))
    with start_nats_cluster(3, workdir=tmp / f"nats{workers}") as cluster:
        live = clustered(config, cluster)
        path = tmp / f"cluster{workers}.toml"
        path.write_text(config_toml(live))
        asyncio.run(fill(cluster, live, records))
        started = time.perf_counter()
        processes = [subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "-c", str(path), "--role", "fusion",
             "--worker-id", f"w{i}", "-q"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL) for i in range(workers)]
        try:
            reports = asyncio.run(until_reported(cluster, live, applied(len(records), groups)))
            wall = time.perf_counter() - started
            cpu = [round(cpu_seconds(p.pid), 2) for p in processes]
        finally:
            stopping = time.perf_counter()
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(300)
            stopped = time.perf_counter() - stopping
    owned = {w: sorted(r.get("groups", {})) for w, r in reports.items()}
    return {"workers": workers, "wall_s": round(wall, 2), "cpu_s": cpu, "groups": owned,
            "stop_s": round(stopped, 2)}


def config_groups(config: HubConfig) -> list[str]:
    from hub.release.groups import release_groups

    return [g.key for g in release_groups(config)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="scenario seconds")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    scenario = load_scenario(SCALE / "scenario.toml").with_duration(args.seconds)
    config = load_config(SCALE / "hub.toml")
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "scale.rec"
        write_recording(scenario, recording)
        records = records_of(config, (r for r in read_recording(recording)
                                      if r[1].startswith("sensors/")), TICK_S)
        items = sum(not is_tick for is_tick, _ in records)
        runs = [run(config, records, n, Path(tmp)) for n in args.workers]
    for r in runs:
        print(f"{r['workers']} fusion worker(s): the {len(records):,} records ({items:,} items, "
              f"{args.seconds:.0f} s of the scenario) applied by all "
              f"{len(config_groups(config))} groups in {r['wall_s']} s; CPU per worker "
              f"{r['cpu_s']} s; stopped (every group checkpointed) in {r['stop_s']} s; "
              f"groups {r['groups']}")
    figures = {"seconds": args.seconds, "records": len(records), "items": items, "runs": runs,
               "load_average_before": load_before, "load_average_after": load_average()}
    print(f"wrote {write_results('cluster', figures)}")


if __name__ == "__main__":
    main()
