"""One sensor floods the hub: the other partners' picture latency before, during and after.

    .venv/bin/python bench/bench_flood.py [--rate 10000] [--flood 10] [--before 10] [--after 10]
                                          [--profile hub.prof]

Everything goes through a private Mosquitto; the hub (HubService, the default
config with its default budgets: pictures every second behind a 0.5 s reorder
window) runs in its own process, and so do the normal load, the partner and
the flood. The normal load: three sensors released to partner ken
(ken-radar-1, gha-radar-1, nld-uav-1) take turns to publish ``--batches``
QoS 1 batches a second in all, of ``--detections`` geo detections each, for
the whole run (bench_latency.py's load). The flood: ``bra-uav-1`` (released to
bra only) publishes ``--rate`` QoS 1 messages a second for ``--flood``
seconds, half valid detection batches and half failing the schema
(tests/flood.py), as pre-encoded packets over one raw connection. The partner
records each picture's receipt time and ``ts``; a batch's latency is the
receipt of the first picture covering it, minus its ``ts`` (bench_latency.py).

Figures per phase (before, during, after the flood): batch latency p50/p99/max,
pictures a second, the hub's CPU. Recovery is the time from the flood's last
message until the other sensors' batches are seen within the baseline's worst
latency again, and stay so. ``--profile FILE`` runs the hub under cProfile
(slower: for where the time goes, not for the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import multiprocessing as mp
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_latency import _load, _partner, latencies
from common import (
    ROOT,
    CpuMeter,
    RawPublisher,
    StatusWatcher,
    cpu_seconds,
    hub_config,
    load_average,
    stop_process,
    write_results,
)
from flood import flood_payload, flood_topic

from hub import topics
from hub.broker.launcher import BrokerHandle, start_broker
from hub.config import HubConfig
from hub.messages import DeadLetter

FLOODER = "bra-uav-1"
PARTNER = "ken"
TICK_S = 0.001


# --- the flood -------------------------------------------------------------------------------

def _flood(host: str, port: int, rate: float, seconds: float, conn: Connection) -> None:
    """Child process: connect, wait for go, send ``rate`` messages a second, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pub = RawPublisher(host, port, f"flood-{FLOODER}", qos=1)
    topic = flood_topic(FLOODER)
    conn.send("ready")
    conn.recv()
    count = int(rate * seconds)
    started_wall, started = time.time(), time.monotonic()
    k = 0
    while k < count:
        due = min(int((time.monotonic() - started) * rate) + 1, count)
        if due <= k:
            time.sleep(TICK_S)
            continue
        now = time.time()
        pub.send(b"".join(pub.publish(topic, flood_payload(j, now)) for j in range(k, due)))
        k = due
    ended_wall, took = time.time(), time.monotonic() - started
    acked = pub.wait_acks(30.0)
    pub.close()
    conn.send({"sent": count, "seconds": took, "rate": count / took, "acked": acked,
               "start": started_wall, "end": ended_wall})


# --- the hub, optionally profiled ------------------------------------------------------------

def _run_hub(config_bytes: bytes, duration: float, profile: str | None) -> None:
    """Child process: HubService until SIGTERM or ``duration``; cProfile it into ``profile``."""
    from hub.lifecycle import stop_event
    from hub.service import HubService

    logging.basicConfig(level=logging.WARNING, format="hub: %(levelname)s %(name)s: %(message)s")
    config = msgspec.msgpack.decode(config_bytes, type=HubConfig)

    async def serve() -> None:
        await HubService(config).run(stop_event(duration))

    profiler = cProfile.Profile() if profile else None
    with contextlib.suppress(KeyboardInterrupt):
        if profiler is not None and profile is not None:
            profiler.runcall(asyncio.run, serve())
            profiler.dump_stats(profile)
        else:
            asyncio.run(serve())


class Letters:
    """A paho client (own thread) counting ``hub/deadletter`` letters and what they stand for."""

    def __init__(self, host: str, port: int) -> None:
        self.letters = 0
        self.refusals = 0
        self.by_code: dict[str, int] = {}
        self._lock = threading.Lock()
        self._decoder = msgspec.msgpack.Decoder(DeadLetter)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-letters",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topics.DEADLETTER, 0)
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        letter = self._decoder.decode(msg.payload)
        with self._lock:
            self.letters += 1
            self.refusals += letter.count
            self.by_code[letter.code] = self.by_code.get(letter.code, 0) + letter.count

    def close(self) -> None:
        """Disconnect and stop the thread."""
        self.client.disconnect()
        self.client.loop_stop()


# --- figures ---------------------------------------------------------------------------------

def phase(lat: np.ndarray, ts: np.ndarray, picture_t: np.ndarray, start: float, end: float,
          cpu: float) -> dict[str, Any]:
    """Latency percentiles of the batches stamped in [start, end), pictures a second, CPU."""
    inside = (ts >= start) & (ts < end)
    got = lat[inside]
    seen = got[~np.isnan(got)] * 1e3
    pictures = int(((picture_t >= start) & (picture_t < end)).sum())
    figures: dict[str, Any] = {"batches": int(inside.sum()), "without_picture": int(np.isnan(
        got).sum()), "pictures_per_s": pictures / max(end - start, 1e-9), "hub_cpu": cpu}
    if seen.size:
        figures.update(p50_ms=float(np.percentile(seen, 50)),
                       p99_ms=float(np.percentile(seen, 99)), max_ms=float(seen.max()))
    return figures


def recovery_s(lat: np.ndarray, ts: np.ndarray, flood_end: float, limit_s: float) -> float:
    """From the flood's end until every later batch is seen within ``limit_s``."""
    after = ts >= flood_end
    bad = after & ~(lat <= limit_s)  # NaN (never seen) counts as bad
    if not bad.any():
        return 0.0
    return float(ts[bad].max() - flood_end)


# --- one run ---------------------------------------------------------------------------------

def run(handle: BrokerHandle, args: argparse.Namespace) -> dict[str, Any]:
    """Hub, partner, normal load and flood; return the figures."""
    ctx = mp.get_context("spawn")
    config = hub_config(handle.port, client_id=f"hub-flood-{time.time_ns()}", budgets=True,
                        status_every_s=0.25)
    total_s = args.before + args.flood + args.after
    watcher = StatusWatcher(handle.host, handle.port)
    letters = Letters(handle.host, handle.port)
    hub = ctx.Process(target=_run_hub, name="hub", args=(
        msgspec.msgpack.encode(config), total_s + 60, args.profile))
    hub.start()
    stop = ctx.Event()
    partner_conn, partner_child = ctx.Pipe()
    partner = ctx.Process(target=_partner, name="partner", daemon=True,
                          args=(handle.host, handle.port, PARTNER, stop, partner_child))
    load_conn, load_child = ctx.Pipe()
    load = ctx.Process(target=_load, name="load", daemon=True, args=(
        msgspec.msgpack.encode(config), args.batches, args.detections, total_s, load_child))
    flood_conn, flood_child = ctx.Pipe()
    flood = ctx.Process(target=_flood, name="flood", daemon=True,
                        args=(handle.host, handle.port, args.rate, args.flood, flood_child))
    reorder_max = 0
    try:
        watcher.wait_connected(60)
        for proc in (partner, load, flood):
            proc.start()
        for conn in (partner_conn, load_conn, flood_conn):
            if conn.recv() != "ready":
                raise RuntimeError("a load process did not start")
        meter = CpuMeter([hub.pid or 0, partner.pid or 0, load.pid or 0, flood.pid or 0,
                          handle.pid or 0])
        load_conn.send("go")
        t0 = time.time()
        cpu = [cpu_seconds(hub.pid or 0)]
        time.sleep(args.before)
        cpu.append(cpu_seconds(hub.pid or 0))
        flood_conn.send("go")
        while not flood_conn.poll(0.25):
            reorder_max = max(reorder_max, (watcher.latest or {}).get("queues", {}).get(
                "reorder", 0))
        flooded = flood_conn.recv()
        cpu.append(cpu_seconds(hub.pid or 0))
        batch_ts, acked = load_conn.recv()
        time.sleep(args.settle)
        cpu.append(cpu_seconds(hub.pid or 0))
        cores = meter.read()
        counters = dict((watcher.latest or {}).get("counters", {}))
        stop.set()
        picture_t, picture_ts = partner_conn.recv()
    finally:
        stop.set()
        for proc in (load, partner, flood):
            proc.join(5)
            stop_process(proc)
        stop_process(hub, timeout=30.0)
        watcher.close()
        letters.close()
    lat = latencies(batch_ts, picture_t, picture_ts)
    start, end = flooded["start"], flooded["end"]
    spans = {"before": (t0 + args.warmup, start), "during": (start, end),
             "after": (end, batch_ts.max() + 1e-6)}
    phases = {name: phase(lat, batch_ts, picture_t, a, b,
                          (cpu[i + 1] - cpu[i]) / max(b - a, 1e-9))
              for i, (name, (a, b)) in enumerate(spans.items())}
    baseline_worst = phases["before"]["max_ms"] / 1e3
    return {
        "flood": flooded, "load_acked": bool(acked), "phases": phases,
        "lost_before_the_hub": flooded["sent"] + len(batch_ts) - counters.get("received", 0),
        "during_p99_vs_before": phases["during"]["p99_ms"] / phases["before"]["p99_ms"],
        "recovery_s": recovery_s(lat, batch_ts, end, baseline_worst),
        "reorder_max": reorder_max, "cores": cores, "hub_counters": counters,
        "dead_letters": {"letters": letters.letters, "refusals": letters.refusals,
                         "by_code": letters.by_code},
        "loadavg_after": load_average(),
    }


def main() -> None:
    """One run; print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000.0, help="flood, messages/s")
    parser.add_argument("--flood", type=float, default=10.0, help="flood seconds")
    parser.add_argument("--before", type=float, default=10.0, help="seconds before the flood")
    parser.add_argument("--after", type=float, default=10.0, help="seconds after the flood")
    parser.add_argument("--warmup", type=float, default=3.0, help="unscored seconds first")
    parser.add_argument("--settle", type=float, default=2.0, help="wait after the last batch")
    parser.add_argument("--batches", type=float, default=30.0, help="normal batches/s, all")
    parser.add_argument("--detections", type=int, default=20, help="detections per batch")
    parser.add_argument("--profile", help="cProfile the hub into this file")
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    with start_broker(prefer="mosquitto") as handle:
        result = run(handle, args)
    flood = result["flood"]
    print(f"flood: {flood['sent']:,} messages in {flood['seconds']:.1f} s = "
          f"{flood['rate']:,.0f}/s (asked {args.rate:,.0f}/s), all acknowledged: "
          f"{flood['acked']}")
    print(f"{'phase':>7}  {'batches':>7}  {'p50 ms':>7}  {'p99 ms':>7}  {'max ms':>7}  "
          f"{'pict/s':>6}  {'hub cpu':>7}")
    for name, p in result["phases"].items():
        print(f"{name:>7}  {p['batches']:7d}  {p.get('p50_ms', float('nan')):7.0f}  "
              f"{p.get('p99_ms', float('nan')):7.0f}  {p.get('max_ms', float('nan')):7.0f}  "
              f"{p['pictures_per_s']:6.2f}  {p['hub_cpu']:7.0%}")
    c = result["hub_counters"]
    print(f"during p99 / before p99: {result['during_p99_vs_before']:.2f}; recovery "
          f"{result['recovery_s']:.2f} s; reorder queue max {result['reorder_max']}")
    print(f"hub: received {c.get('received', 0):,}, over_budget {c.get('over_budget', 0):,}, "
          f"rejected {c.get('rejected', 0):,}, late {c.get('late', 0):,}, dead letters "
          f"{result['dead_letters']['letters']:,} standing for "
          f"{result['dead_letters']['refusals']:,} refusals, dropped unsent "
          f"{c.get('dead_letters_dropped', 0):,}; lost before the hub "
          f"{result['lost_before_the_hub']:,}; other users' load "
          f"{result['cores']['others_cores']:.2f} cores")
    path = write_results("bench_flood", {"args": vars(args), **result})
    print(f"load average after: {load_average()}; written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
