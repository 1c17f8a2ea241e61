"""Latency from a sensor's publish to a partner's receipt of the picture that includes it.

    .venv/bin/python bench/bench_latency.py [--rate 100] [--detections 100] [--seconds 30]
                                            [--window 0 --window 0.02]

Everything goes through a private Mosquitto; the hub (HubService, default
config with ``publish.interval_s = 0``, event-driven, and the given
``fusion.reorder_window_s``) runs in its own process, and so do the load and
the partner. The load: three sensors released to the partner (ken-radar-1,
gha-radar-1, nld-uav-1), each on its own MQTT connection, take turns to
publish ``--rate`` QoS 1 batches/s in all of ``--detections`` geo detections
of 200 targets moving at constant velocity (each sensor sees 100 of them, with
overlap), stamped with the wall clock just before encoding. The partner
subscribes to ``cop/{partner}/picture`` and notes the receipt time of each
picture and its ``ts`` (the hub's fusion time). A batch's latency is the
receipt time of the first picture whose ``ts`` is at least the batch's ``ts``,
minus that ``ts``; batches of the first ``--warmup`` seconds are not scored.

The reorder window trades latency for order: every measurement waits the
window's length before it is fused (plus up to the hub's flush tick, a quarter
of the window, when no newer message arrives first), so a window of 0 is
fastest but counts any measurement that arrives after a newer one as late and
drops it.

With ``--cluster`` the hub runs instead as workers on a private 3-node NATS
cluster (one ingest worker, ``--fusion-workers`` fusion workers, a fusion step
every ``--tick`` seconds); the load publishes to node 0's MQTT listener and the
partner subscribes on node 1's, so every picture crosses the cluster.

The private Mosquitto runs with ``set_tcp_nodelay true`` (hub/broker/launcher.py):
without it, Nagle's algorithm holds each picture to the partner until the
partner's delayed ACK, which tripled p50 and p99 here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    CpuMeter,
    RawPublisher,
    StatusWatcher,
    cpu_seconds,
    hub_config,
    load_average,
    start_hub,
    stop_process,
    write_results,
)

from hub import topics
from hub.broker.launcher import BrokerHandle, start_broker
from hub.children import end_child
from hub.config import HubConfig
from hub.geo import EnuFrame

SENSORS = ("ken-radar-1", "gha-radar-1", "nld-uav-1")
TARGETS = 200
SEEN_PER_SENSOR = 100
SIGMA_M = 10.0


class _Stamp(msgspec.Struct):
    """The only field of a picture the partner needs."""

    ts: float


# --- load ------------------------------------------------------------------------------------

class TargetField:
    """Targets on straight lines: positions at any wall-clock time, as WGS84."""

    def __init__(self, config: HubConfig, seed: int) -> None:
        rng = np.random.default_rng(seed)
        o = config.mission.origin
        self.frame = EnuFrame(o.lat, o.lon, o.alt)
        self.t0 = time.time()
        self.pos0 = rng.uniform(-3000.0, 3000.0, (TARGETS, 2))
        heading = rng.uniform(0.0, 2 * np.pi, TARGETS)
        speed = rng.uniform(3.0, 15.0, TARGETS)
        self.vel = np.stack((speed * np.sin(heading), speed * np.cos(heading)), axis=1)
        self.cls = rng.choice(["person", "vehicle"], TARGETS).tolist()
        self.rng = rng

    def batch(self, sensor: int, ts: float, seq: int, count: int) -> bytes:
        """One sensor's batch of ``count`` detections at ``ts``, MessagePack-encoded."""
        seen = (sensor * (TARGETS // 4) + np.arange(SEEN_PER_SENSOR)) % TARGETS
        seen = seen[np.arange(count) % seen.shape[0]]
        enu = self.pos0[seen] + self.vel[seen] * (ts - self.t0)
        enu = enu + self.rng.normal(0.0, SIGMA_M, enu.shape)
        lat, lon, _ = self.frame.to_geodetic(enu[:, 0], enu[:, 1], 0.0)
        detections = [{"kind": "geo", "lat": la, "lon": lo, "sigma": SIGMA_M,
                       "cls": self.cls[i], "conf": 0.6}
                      for la, lo, i in zip(lat.tolist(), lon.tolist(), seen.tolist(), strict=True)]
        return msgpack.packb({"ts": ts, "seq": seq, "detections": detections})  # type: ignore[no-any-return]


def _load(config_bytes: bytes, rate: float, count: int, seconds: float,
          conn: Connection) -> None:
    """Child process: publish the batches in turn, then send back their ``ts``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us
    config = msgspec.msgpack.decode(config_bytes, type=HubConfig)
    field = TargetField(config, seed=7)
    broker = config.broker
    pubs = [RawPublisher(broker.host, broker.port, s, qos=1) for s in SENSORS]
    conn.send("ready")
    conn.recv()  # go
    stamps: list[float] = []
    t0 = time.monotonic()
    total = int(rate * seconds)
    for k in range(total):
        delay = t0 + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sensor = k % len(SENSORS)
        ts = time.time()
        payload = field.batch(sensor, ts, k // len(SENSORS), count)
        pub = pubs[sensor]
        pub.send(pub.publish(topics.sensor(SENSORS[sensor], "detections"), payload))
        stamps.append(ts)
    acked = all(p.wait_acks(5.0) for p in pubs)
    for p in pubs:
        p.close()
    conn.send((np.array(stamps), acked))


# --- partner ---------------------------------------------------------------------------------

def _partner(host: str, port: int, partner: str, protocol: MQTTProtocolVersion, stop: Any,
             conn: Connection) -> None:
    """Child process: record (receipt time, ts) of every picture until ``stop``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    decoder = msgspec.msgpack.Decoder(_Stamp)
    got_t: list[float] = []
    got_ts: list[float] = []

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        got_t.append(time.time())
        got_ts.append(decoder.decode(msg.payload).ts)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"partner-{partner}-bench",
                         protocol=protocol)
    client.on_message = on_message
    client.on_connect = lambda c, u, f, r, p: c.subscribe(topics.partner_picture(partner), 1)
    client.on_subscribe = lambda c, u, mid, rc, p: conn.send("ready")
    client.connect(host, port, keepalive=30)
    while not stop.is_set():
        client.loop(0.05)
    client.disconnect()
    conn.send((np.array(got_t), np.array(got_ts)))


# --- one run ---------------------------------------------------------------------------------

def latencies(batch_ts: np.ndarray, picture_t: np.ndarray, picture_ts: np.ndarray) -> np.ndarray:
    """Per batch: receipt time of the first picture with ts >= the batch's ts, minus its ts.

    NaN where no such picture arrived.
    """
    order = np.argsort(picture_t, kind="stable")
    t, ts = picture_t[order], np.maximum.accumulate(picture_ts[order])
    index = np.searchsorted(ts, batch_ts, side="left")
    found = index < t.shape[0]
    out = np.full(batch_ts.shape, np.nan)
    out[found] = t[index[found]] - batch_ts[found]
    return out


class SingleHub:
    """The single process (HubService) on the private Mosquitto."""

    name = "single process on Mosquitto"
    protocol = MQTTProtocolVersion.MQTTv5

    def __init__(self, handle: BrokerHandle, window: float, args: argparse.Namespace) -> None:
        self.config = hub_config(handle.port, client_id=f"hub-bench-{time.time_ns()}",
                                 interval_s=0.0, reorder_window_s=window, status_every_s=1.0)
        self.load_port = self.partner_port = handle.port
        self.broker_pids = [handle.pid or 0]
        self.watcher = StatusWatcher(handle.host, handle.port)
        self.process = start_hub(self.config, args.warmup + args.seconds + 60, daemon=False)

    def ready(self) -> list[int]:
        """Wait until the hub is subscribed; its pids."""
        self.watcher.wait_connected(30)
        return [self.process.pid or 0]

    def counters(self) -> dict[str, Any]:
        return dict((self.watcher.latest or {}).get("counters", {}))

    def stop(self) -> None:
        stop_process(self.process)
        self.watcher.close()


class ClusterHub:
    """The hub as processes on a private 3-node NATS cluster.

    One ingest worker and ``--fusion-workers`` fusion workers; the load on
    node 0's MQTT, the partner on node 1's (across the cluster, as a partner
    elsewhere would be). Fusion steps come every ``--tick`` (``cluster.tick_s``):
    a clustered hub has no event-driven publish, a step is a record of the stream.
    """

    name = "NATS cluster, 3 nodes"
    protocol = MQTTProtocolVersion.MQTTv311

    def __init__(self, workdir: Path, window: float, args: argparse.Namespace) -> None:
        from hub.cli.cluster_demo import clustered, start_worker
        from hub.cluster.nats_server import start_nats_cluster
        from hub.config import config_toml

        self.cluster = start_nats_cluster(3, workdir=workdir / "nats")
        config = clustered(hub_config(self.cluster.mqtt_ports[0], interval_s=0.0,
                                      reorder_window_s=window, status_every_s=1.0),
                           self.cluster)
        assert config.cluster is not None
        self.config = msgspec.structs.replace(config, cluster=msgspec.structs.replace(
            config.cluster, tick_s=args.tick))
        path = workdir / "cluster.toml"
        path.write_text(config_toml(self.config))
        self.load_port, self.partner_port = self.cluster.mqtt_ports[0], self.cluster.mqtt_ports[1]
        self.broker_pids = [node.pid or 0 for node in self.cluster.nodes]
        roles = [("in1", "ingest"), *((f"f{i}", "fusion") for i in range(args.fusion_workers))]
        self.workers = [start_worker(path, name, role, workdir / f"{name}.log")
                        for name, role in roles]
        self.reports: dict[str, dict[str, Any]] = {}

    def ready(self) -> list[int]:
        """Wait until every group is owned and every ingest slot served; the workers' pids."""
        from bench_cluster import until_reported

        from hub.cluster.ingest import slots_of
        from hub.release.groups import release_groups

        groups, slots = len(release_groups(self.config)), len(slots_of(self.config))

        def up(reports: dict[str, dict[str, Any]]) -> bool:
            return (sum(len(r.get("groups", {})) for r in reports.values()) == groups
                    and sum(len(r.get("slots", [])) for r in reports.values()) == slots)

        self.reports = asyncio.run(until_reported(self.cluster, self.config, up, 60.0))
        return [w.pid for w in self.workers]

    def counters(self) -> dict[str, Any]:
        return dict(self.reports.get("in1", {}).get("counters", {}))

    def stop(self) -> None:
        for worker in self.workers:
            end_child(worker, signal.SIGTERM, 10.0)
        self.cluster.stop()


Hub = SingleHub | ClusterHub


def run_once(hub: Hub, window: float, args: argparse.Namespace) -> dict[str, Any]:
    """Partner and load against a started ``hub``; return the figures."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    partner_conn, partner_child = ctx.Pipe()
    partner = ctx.Process(target=_partner, name="partner", daemon=True,
                          args=("127.0.0.1", hub.partner_port, args.partner, hub.protocol, stop,
                                partner_child))
    load_config = msgspec.structs.replace(hub.config, broker=msgspec.structs.replace(
        hub.config.broker, port=hub.load_port))
    load_conn, load_child = ctx.Pipe()
    load = ctx.Process(target=_load, name="load", daemon=True,
                       args=(msgspec.msgpack.encode(load_config), args.rate, args.detections,
                             args.warmup + args.seconds, load_child))
    try:
        hub_pids = hub.ready()
        partner.start()
        load.start()
        if partner_conn.recv() != "ready" or load_conn.recv() != "ready":
            raise RuntimeError("partner or load did not start")
        cpu0, t0 = sum(map(cpu_seconds, hub_pids)), time.monotonic()
        broker0 = sum(map(cpu_seconds, hub.broker_pids))
        meter = CpuMeter([os.getpid(), *hub_pids, partner.pid or 0, load.pid or 0,
                          *hub.broker_pids])
        load_conn.send("go")
        batch_ts, acked = load_conn.recv()
        time.sleep(args.settle)
        elapsed = time.monotonic() - t0
        cpu = (sum(map(cpu_seconds, hub_pids)) - cpu0) / elapsed
        broker_cpu = (sum(map(cpu_seconds, hub.broker_pids)) - broker0) / elapsed
        cores = meter.read()
        stop.set()
        picture_t, picture_ts = partner_conn.recv()
        counters = hub.counters()
    finally:
        stop.set()
        for proc in (load, partner):
            proc.join(5)
            stop_process(proc)
        hub.stop()
    scored = batch_ts >= batch_ts[0] + args.warmup
    lat = latencies(batch_ts[scored], picture_t, picture_ts)
    got = lat[~np.isnan(lat)] * 1e3
    return {
        "engine": hub.name, "reorder_window_s": window, "batches": int(scored.sum()),
        "all_acked": bool(acked),
        "without_picture": int(np.isnan(lat).sum()), "pictures": int(picture_t.shape[0]),
        "p50_ms": float(np.percentile(got, 50)), "p90_ms": float(np.percentile(got, 90)),
        "p99_ms": float(np.percentile(got, 99)), "max_ms": float(got.max()),
        "mean_ms": float(got.mean()), "hub_cpu": cpu, "broker_cpu": broker_cpu, "cores": cores,
        "hub_counters": counters, "loadavg_after": load_average(),
    }


def measure(window: float, args: argparse.Namespace, handle: BrokerHandle | None,
            workdir: Path) -> dict[str, Any]:
    """One run on the single process (``handle``) or, without one, on the cluster."""
    hub: Hub = (SingleHub(handle, window, args) if handle is not None
                else ClusterHub(workdir / f"window{window:g}", window, args))
    return run_once(hub, window, args)


def main() -> None:
    """Run one measurement per reorder window, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="batches/s, all sensors")
    parser.add_argument("--detections", type=int, default=100, help="detections per batch")
    parser.add_argument("--seconds", type=float, default=30.0, help="scored seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unscored seconds first")
    parser.add_argument("--settle", type=float, default=1.0, help="wait after the last batch")
    parser.add_argument("--window", type=float, action="append",
                        help="fusion.reorder_window_s (repeat; default 0 and 0.02)")
    parser.add_argument("--partner", default="ken", help="partner whose picture is timed")
    parser.add_argument("--cluster", action="store_true",
                        help="the hub as workers on a private 3-node NATS cluster")
    parser.add_argument("--fusion-workers", type=int, default=1,
                        help="with --cluster: how many fusion workers")
    parser.add_argument("--tick", type=float, default=0.01,
                        help="with --cluster: cluster.tick_s, seconds between fusion steps")
    args = parser.parse_args()
    windows = args.window or [0.0, 0.02]
    print(f"load average before: {load_average()}")
    print(f"load {args.rate:g} batches/s x {args.detections} detections = "
          f"{args.rate * args.detections:,.0f} detections/s from {len(SENSORS)} sensors; "
          f"partner {args.partner}; {args.seconds:g} s scored after {args.warmup:g} s")
    runs = []
    with contextlib.ExitStack() as stack:
        handle = None if args.cluster else stack.enter_context(start_broker(prefer="mosquitto"))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for window in windows:
            run = measure(window, args, handle, workdir)
            runs.append(run)
            c = run["hub_counters"]
            print(f"  {run['engine']}, window {window:5.3f} s: p50 {run['p50_ms']:6.1f} ms  p99 "
                  f"{run['p99_ms']:6.1f} ms  max {run['max_ms']:6.1f} ms  hub cpu "
                  f"{run['hub_cpu']:4.0%}  broker cpu {run['broker_cpu']:4.0%}  late "
                  f"{c.get('late', 0)}  no picture {run['without_picture']}  other users' load "
                  f"{run['cores']['others_cores']:.2f} cores", flush=True)
    print()
    print(f"{'window s':>8}  {'batches':>7}  {'p50 ms':>7}  {'p99 ms':>7}  {'max ms':>7}")
    for r in runs:
        print(f"{r['reorder_window_s']:8.3f}  {r['batches']:7d}  {r['p50_ms']:7.1f}  "
              f"{r['p99_ms']:7.1f}  {r['max_ms']:7.1f}")
    path = write_results("bench_latency_cluster" if args.cluster else "bench_latency", {
        "rate_batches_per_s": args.rate, "detections_per_batch": args.detections,
        "detections_per_s": args.rate * args.detections, "sensors": list(SENSORS),
        "partner": args.partner, "seconds": args.seconds, "warmup_s": args.warmup,
        "cluster": {"fusion_workers": args.fusion_workers, "tick_s": args.tick}
        if args.cluster else None,
        "runs": runs})
    print(f"load average after: {load_average()}; written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
