"""End-to-end frames/s: camera frames through Mosquitto into the whole hub, beside a background.

    .venv/bin/python bench/bench_frames_live.py [--cameras 4] [--rates 20 50 100 150 200 300]
                                                [--rates-1080p 50 100] [--window-s 5]

A private Mosquitto; the hub as ``HubService`` in a child process with the
default config (worker pool of cores - 1) plus ``--cameras`` camera-only
sensors ``bench-cam-N`` (KEN, released to ken). A separate process publishes,
from pre-built MQTT packets re-stamped with the current time and a rising
``seq`` per sensor:

- frames at QoS 0: the rendered frames of bench_frames.py (tests/frames_scene.py,
  JPEG 85, EO and IR alternating), the cameras taking turns, paced at an
  offered total rate that each step sets (720p over ``--rates``, then 1080p);
- a steady background at QoS 1: the telemetry and detections of
  config/scenarios/targets300.toml at real time (two radars, two UAVs), the
  whole time.

Each step runs ``--warmup-s`` and then a ``--window-s`` steady window, over
which the hub's counters on hub/status (published every 0.25 s) give frames
received / processed / dropped per second, and /proc gives the CPU of the
hub's process, its frame workers, Mosquitto and the other users. At the end
the frames stop, the hub drains, and the background is checked: every
message received, none rejected or late, every item fused.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import signal
import struct
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e2e import SCENARIO, TS_AT, Template, build_templates, fixed_payload
from common import (
    ROOT,
    CpuMeter,
    RawPublisher,
    StatusWatcher,
    cpu_seconds,
    hub_config,
    load_average,
    remaining_length,
    start_hub,
    stop_process,
    write_results,
)

from hub import topics
from hub.broker.launcher import start_broker
from hub.config import HubConfig, Sensor

TICK_S = 0.002
SEQ_AT = 18  # "seq" value offset in a fixed_payload body (after ts)
SIZES = ("720p", "1080p")
MAX_BURST = 8  # frames a late publisher sends at once; beyond, it stops catching up


# --- the load process ------------------------------------------------------------------------

class FrameStream:
    """Pre-built frame bodies of every size, stamped and sent in turn by each camera."""

    def __init__(self, cameras: list[str]) -> None:
        from bench_frames import SIZES as PIXELS
        from bench_frames import make_frames

        self.heads = {c: struct.pack("!H", len(t)) + t
                      for c in cameras for t in [topics.sensor(c, "frames").encode()]}
        self.bodies = {size: [bytearray(fixed_payload(msgpack.unpackb(p)))
                              for p in make_frames(*PIXELS[size])] for size in SIZES}
        self.kib = {size: sum(map(len, b)) / len(b) / 1024 for size, b in self.bodies.items()}
        self.cameras = cameras
        self.seq: Counter[str] = Counter()
        self.sent = 0

    def next(self, size: str) -> bytes:
        """The next camera's next frame as one MQTT PUBLISH, stamped now."""
        camera = self.cameras[self.sent % len(self.cameras)]
        frames = self.bodies[size]
        body = frames[self.seq[camera] % len(frames)]
        struct.pack_into("!d", body, TS_AT, time.time())
        struct.pack_into("!I", body, SEQ_AT, self.seq[camera] & 0xFFFFFFFF)
        self.seq[camera] += 1
        self.sent += 1
        topic_part = self.heads[camera]
        return b"\x30" + remaining_length(len(topic_part) + len(body)) + topic_part + bytes(body)


class Background:
    """The scenario's telemetry and detections, looped at real time, stamped now."""

    def __init__(self, templates: list[Template], span: float) -> None:
        self.templates = [t for t in templates if t.stream[1] != "frames"]
        self.span = span
        self.t_first = self.templates[0].t
        self.index = 0
        self.detections = 0
        self.seq: Counter[tuple[str, str]] = Counter()  # also what was sent, per stream

    def due(self) -> float:
        """Seconds after the start at which the next message is due."""
        loop, j = divmod(self.index, len(self.templates))
        return loop * self.span + self.templates[j].t - self.t_first

    def next(self, pub: RawPublisher) -> bytes:
        """The next message as a PUBLISH (QoS 1), stamped now."""
        tpl = self.templates[self.index % len(self.templates)]
        self.index += 1
        packet = tpl.packet
        pub.sent += 1
        struct.pack_into("!H", packet, tpl.id_at, pub.packet_id())
        struct.pack_into("!d", packet, tpl.ts_at, time.time())
        struct.pack_into("!I", packet, tpl.seq_at, self.seq[tpl.stream] & 0xFFFFFFFF)
        self.seq[tpl.stream] += 1
        self.detections += tpl.detections
        return bytes(packet)


def _load(host: str, port: int, cameras: list[str], conn: Connection) -> None:
    """Child process: background always, frames at the rate of the last ("rate", size, r)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us
    frames = FrameStream(cameras)
    templates, span = build_templates(1, "detections")
    background = Background(templates, span)
    bg_pub = RawPublisher(host, port, "bench-background", 1)
    frame_pub = RawPublisher(host, port, "bench-frames", 0)
    conn.send({"frame_kib": frames.kib, "background_messages": len(background.templates),
               "background_span_s": span,
               "background_kinds": Counter(t.stream[1] for t in background.templates),
               "background_sensors": sorted({t.sensor for t in background.templates})})
    size, rate, step_t0, step_base = "720p", 0.0, time.monotonic(), 0
    t0: float | None = None  # background off until asked
    while True:
        if conn.poll():
            command, *args = conn.recv()
            if command == "stop":
                break
            if command == "rate":
                size, rate = args[0], float(args[1])
                step_t0, step_base = time.monotonic(), frames.sent
            elif command == "background":
                t0 = time.monotonic() - background.due() if args[0] else None
            conn.send({"frames": frames.sent, "background": bg_pub.sent,
                       "detections": background.detections, "t": time.monotonic(),
                       "acked": bg_pub.acked,
                       "streams": [[*k, v] for k, v in background.seq.items()]})
        now = time.monotonic()
        packets = []
        while t0 is not None and background.due() <= now - t0:
            packets.append(background.next(bg_pub))
        if packets:
            bg_pub.send(b"".join(packets))
        due = int(rate * (now - step_t0)) - (frames.sent - step_base)
        if due > MAX_BURST:  # behind: give up the backlog rather than burst it
            step_base += due - MAX_BURST
            due = MAX_BURST
        for _ in range(max(due, 0)):
            frame_pub.send(frames.next(size))
        bg_pub.read_acks()
        time.sleep(TICK_S)
    bg_pub.close()
    frame_pub.close()


class Load:
    """The load process, driven over a pipe."""

    def __init__(self, host: str, port: int, cameras: list[str]) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_load, args=(host, port, cameras, child), name="load",
                                daemon=True)
        self.proc.start()
        if not self.conn.poll(120):
            raise TimeoutError("load process not ready")
        self.info: dict[str, Any] = self.conn.recv()

    def rate(self, size: str, rate: float) -> dict[str, Any]:
        """Set the frames' offered rate; return the counts so far."""
        self.conn.send(("rate", size, rate))
        return self.conn.recv()  # type: ignore[no-any-return]

    def counts(self) -> dict[str, Any]:
        """Messages sent so far."""
        self.conn.send(("counts",))
        return self.conn.recv()  # type: ignore[no-any-return]

    def background(self, on: bool) -> None:
        """Start or stop the background."""
        self.conn.send(("background", on))
        self.conn.recv()

    def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(("stop",))
            self.proc.join(5)
        stop_process(self.proc)


# --- the hub ---------------------------------------------------------------------------------

def live_config(port: int, cameras: list[str]) -> HubConfig:
    """The default config on the private broker, with the bench's cameras registered."""
    config = hub_config(port, client_id=f"hub-frames-{time.time_ns()}")
    added = [Sensor(id=c, nation="KEN", kind="camera", release_to=["ken"], platform=False)
             for c in cameras]
    return msgspec.structs.replace(config, sensors=[*config.sensors, *added])


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (the forkserver and the frame workers)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out += children
        todo += children
    return out


class Snapshot:
    """Counters, load counts and CPU seconds at one moment."""

    def __init__(self, watcher: StatusWatcher, load: Load, pids: dict[str, list[int]]) -> None:
        with watcher.updated:  # the next status, so the counters are fresh
            watcher.updated.wait(1.0)
            status = watcher.latest or {}
        self.ts = float(status.get("ts", time.time()))
        self.counters: dict[str, int] = dict(status.get("counters", {}))
        self.queues: dict[str, int] = dict(status.get("queues", {}))
        self.load = load.counts()
        self.cpu = {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}


def step_figures(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """Rates over the window between two snapshots."""
    span = b.ts - a.ts
    sent_span = b.load["t"] - a.load["t"]

    def rate(name: str) -> float:
        return round((b.counters.get(name, 0) - a.counters.get(name, 0)) / span, 1)

    delta = {k: b.counters.get(k, 0) - a.counters.get(k, 0)
             for k in ("late", "rejected", "frames_rejected", "detections")}
    return {
        "offered_frames_per_s": round((b.load["frames"] - a.load["frames"]) / sent_span, 1),
        "received_per_s": rate("frames_received"),
        "processed_per_s": rate("frames_processed"),
        "dropped_per_s": rate("frames_dropped"),
        "background_msgs_per_s": round((b.load["background"] - a.load["background"])
                                       / sent_span, 1),
        "background_received_per_s": round(rate("received") - rate("frames_received"), 1),
        "cpu_cores": {k: round((b.cpu[k] - a.cpu[k]) / span, 2) for k in b.cpu},
        "window_s": round(span, 2),
        **delta,
        "queues_end": b.queues,
    }


# --- the run ---------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start broker, hub and load; run the steps; check the background at the end."""
    cameras = [f"bench-cam-{k + 1}" for k in range(args.cameras)]
    plan = [("720p", r) for r in args.rates] + [("1080p", r) for r in args.rates_1080p]
    steps: list[dict[str, Any]] = []
    with start_broker(prefer="mosquitto") as handle:
        config = live_config(handle.port, cameras)
        watcher = StatusWatcher(handle.host, handle.port)
        hub = start_hub(config, 170.0, daemon=False)
        load: Load | None = None
        try:
            watcher.wait_connected(60)
            load = Load(handle.host, handle.port, cameras)
            print(f"hub pid {hub.pid}, {config.imagery.worker_count()} frame worker(s); "
                  f"{len(cameras)} cameras; frames {load.info['frame_kib']}; background "
                  f"{load.info['background_messages']} messages / "
                  f"{load.info['background_span_s']:.0f} s", flush=True)
            time.sleep(args.warmup_s)
            base = Snapshot(watcher, load, {})
            load.background(True)
            meter = CpuMeter([hub.pid or 0, handle.pid or 0, load.proc.pid or 0])
            for size, rate in plan:
                load.rate(size, rate)
                time.sleep(args.warmup_s)
                workers = descendants(hub.pid or 0)
                pids = {"hub": [hub.pid or 0], "workers": workers, "broker": [handle.pid or 0],
                        "load": [load.proc.pid or 0]}
                a = Snapshot(watcher, load, pids)
                window = CpuMeter([hub.pid or 0, *workers, handle.pid or 0, load.proc.pid or 0])
                time.sleep(args.window_s)
                b = Snapshot(watcher, load, pids)
                step = {"size": size, "target_frames_per_s": rate, **step_figures(a, b),
                        "machine": window.read(), "loadavg": load_average()}
                steps.append(step)
                cpu = step["cpu_cores"]
                print(f"{size:5} {rate:5.0f}/s: offered {step['offered_frames_per_s']:6.1f}  "
                      f"received {step['received_per_s']:6.1f}  processed "
                      f"{step['processed_per_s']:6.1f}  dropped {step['dropped_per_s']:6.1f}  "
                      f"hub {cpu['hub']:.2f} + workers {cpu['workers']:.2f} cores, broker "
                      f"{cpu['broker']:.2f}, others {step['machine']['others_cores']:.2f}; "
                      f"bg {step['background_received_per_s']:.0f}/"
                      f"{step['background_msgs_per_s']:.0f} msg/s, late {step['late']}, "
                      f"load {step['loadavg'][0]}", flush=True)
            load.rate("720p", 0)
            load.background(False)
            time.sleep(args.drain_s)
            end = Snapshot(watcher, load, {})
            background = background_check(config, base, end)
            background["cores_whole_run"] = meter.read()
        finally:
            if load is not None:
                load.close()
            stop_process(hub)
            watcher.close()
    ceiling = {size: max((s["processed_per_s"] for s in steps if s["size"] == size), default=0.0)
               for size in SIZES}
    return {"ceiling_frames_per_s": ceiling, "cameras": len(cameras),
            "workers": config.imagery.worker_count(),
            "scenario": SCENARIO.name, "frame_kib": load.info["frame_kib"],
            "warmup_s": args.warmup_s, "window_s": args.window_s, "steps": steps,
            "background": background, "final_counters": end.counters}


def background_check(config: HubConfig, base: Snapshot, end: Snapshot) -> dict[str, Any]:
    """Whether every background message was received and fused, none late or rejected."""
    def d(name: str) -> int:
        return end.counters.get(name, 0) - base.counters.get(name, 0)

    index = config.sensor_index()
    sent = sum(n for _, _, n in end.load["streams"])
    # Fusion takes every detection batch and every fix of a platform (a UAV's telemetry).
    fusable = sum(n for sensor, kind, n in end.load["streams"]
                  if kind == "detections" or config.sensors[index[sensor]].is_platform)
    out = {"sent": sent, "received": d("received") - d("frames_received"),
           "detections_sent": int(end.load["detections"]),
           "detections_received": d("detections"), "fusable_sent": fusable,
           "fused": d("fused") - d("frames_processed"), "late": d("late"),
           "rejected": d("rejected"), "reorder_queue_end": end.queues.get("reorder", 0)}
    out["all_fused"] = (out["received"] == sent == int(end.load["background"])
                        and out["detections_received"] == out["detections_sent"]
                        and out["fused"] == fusable and out["late"] == 0
                        and out["rejected"] == 0)
    return out


def main() -> int:
    """Run the steps, print the table, write bench/results/frames_live.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--rates", type=float, nargs="*", default=[20, 50, 100, 150, 200, 300],
                        help="offered 720p frames/s, all cameras together")
    parser.add_argument("--rates-1080p", type=float, nargs="*", default=[50, 100])
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--window-s", type=float, default=5.0)
    parser.add_argument("--drain-s", type=float, default=3.0)
    args = parser.parse_args()
    print(f"load average before: {load_average()}", flush=True)
    figures = run(args)
    print()
    print(f"{'size':5}  {'offered':>7}  {'received':>8}  {'processed':>9}  {'dropped':>7}  "
          f"{'hub cpu':>7}  {'workers':>7}  {'others':>6}")
    for s in figures["steps"]:
        print(f"{s['size']:5}  {s['offered_frames_per_s']:7.1f}  {s['received_per_s']:8.1f}  "
              f"{s['processed_per_s']:9.1f}  {s['dropped_per_s']:7.1f}  "
              f"{s['cpu_cores']['hub']:7.2f}  {s['cpu_cores']['workers']:7.2f}  "
              f"{s['machine']['others_cores']:6.2f}")
    print("sustained processed frames/s: " + ", ".join(
        f"{size} {rate:.0f}" for size, rate in figures["ceiling_frames_per_s"].items()))
    bg = figures["background"]
    print(f"background: {bg['received']}/{bg['sent']} messages, {bg['detections_received']}/"
          f"{bg['detections_sent']} detections, late {bg['late']}, rejected {bg['rejected']}, "
          f"all fused: {bg['all_fused']}")
    path = write_results("frames_live", figures)
    print(f"load average after: {load_average()}; written {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
