"""End-to-end throughput of the hub through Mosquitto, beside a bare paho subscriber.

    .venv/bin/python bench/bench_e2e.py [--profile detections] [--profile telemetry]
                                        [--step-s 4] [--qos 1] [--qos 0]

Loads (``--profile``, default both), built from config/scenarios/targets300.toml,
looped and re-stamped so every message's ``ts`` and ``seq`` rise and stay in
the recent past, sent by a separate process from pre-encoded MQTT 3.1.1 packets
on one connection:

- ``detections``: the scenario's sensor messages as they are (two radars with
  ~270 detections per scan, two UAVs with telemetry and small detection
  batches; ~33 detections per message on average). Fusion-bound.
- ``telemetry``: only the two UAVs' telemetry (~170-byte messages from
  registered platforms, each a friend-track update), re-timed 1 ms apart. Cheap
  to fuse, so it shows the transport and per-message overhead of the hub.

For each subscriber (the bare paho client first, then the hub, each in its
own process and alone on the broker): a short flood estimates its capacity,
then paced steps of ``--step-s`` seconds climb from 70 % of it by 15 % until a
step is not fully received within the grace time after the last send; one
bisection follows. Reported: the highest rate passed, in messages/s and
detections/s, and hub / bare. The hub's count is its ``received`` counter on
the retained hub/status (published every 0.25 s here).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import signal
import struct
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import msgpack
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
    publish_packet,
    start_hub,
    stop_process,
    write_results,
)

from hub import topics
from hub.broker.launcher import BrokerHandle, start_broker

SCENARIO = ROOT / "config" / "scenarios" / "targets300.toml"
SPAN_MARGIN_S = 60.0
MAX_AGE_USED_S = 80_000.0  # the hub rejects ts older than a day; stay well inside
TICK_S = 0.002
TS_AT, SEQ_AT = 5, 18  # map header, "ts" key, float64 marker / + 8, "seq" key, uint32 marker
PROFILES = ("detections", "telemetry")
TELEMETRY_DT_S = 0.001  # measurement-time step of the telemetry profile, message to message
# Messages of the first estimate: ~0.2 s or more of the subscriber's rate, since the hub's
# count is only seen every 0.25 s on hub/status.
FLOOD = {"detections": 3000, "telemetry": 20000}


# --- load: the scenario's sensor messages as patchable packet templates ---------------------

@dataclass
class Template:
    """One message as an MQTT PUBLISH whose packet id, ts and seq are patched per send."""

    packet: bytearray
    sensor: str
    stream: tuple[str, str]
    t: float
    detections: int
    id_at: int
    ts_at: int
    seq_at: int


def fixed_payload(message: dict[str, Any]) -> bytes:
    """Encode with ``ts`` (float64) and ``seq`` (uint32) first; their values at 5 and 18."""
    rest = [(k, v) for k, v in message.items() if k not in ("ts", "seq")]
    n = len(rest) + 2
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack("!H", n)
    assert len(head) == 1
    body = b"".join(msgpack.packb(k) + msgpack.packb(v, use_bin_type=True) for k, v in rest)
    return head + b"\xa2ts\xcb" + bytes(8) + b"\xa3seq\xce" + bytes(4) + body


def build_templates(qos: int, profile: str = "detections") -> tuple[list[Template], float]:
    """The profile's sensor messages (no truth, no status) and their span in seconds."""
    from simulators.engine import generate
    from simulators.scenario import load_scenario

    scenario = load_scenario(SCENARIO)
    out: list[Template] = []
    for t, topic, payload in generate(scenario, start_ts=0.0):
        if topic == topics.TRUTH or topic.endswith("/status"):
            continue
        message = msgpack.unpackb(payload)
        sensor, kind = topics.parse_sensor_topic(topic)
        body = fixed_payload(message)
        packet = bytearray(publish_packet(topic, body, qos, 1))
        offset = len(packet) - len(body)
        id_at = offset - 2 if qos else -1
        detections = len(message.get("detections", []))
        out.append(Template(packet, sensor, (sensor, kind), t, detections, id_at,
                            offset + TS_AT, offset + SEQ_AT))
    if profile == "telemetry":
        # Re-timed: at tens of thousands of messages/s the scenario's 5 Hz would run the
        # load's measurement time into the future within seconds.
        out = [t for t in out if t.stream[1] == "telemetry"]
        for i, tpl in enumerate(out):
            tpl.t = i * TELEMETRY_DT_S
        return out, len(out) * TELEMETRY_DT_S
    return out, scenario.duration_s


class LoadStream:
    """The looped scenario: message ``i`` is template ``i % n`` in loop ``i // n``."""

    def __init__(self, templates: list[Template], span: float, anchor: float) -> None:
        self.templates, self.span, self.anchor = templates, span, anchor
        self.index = 0
        self.seq: Counter[tuple[str, str]] = Counter()

    def next(self, pub: RawPublisher) -> tuple[bytes, int]:
        """The next message's packet bytes and its number of detections."""
        loop, j = divmod(self.index, len(self.templates))
        self.index += 1
        tpl = self.templates[j]
        ts = self.anchor + loop * self.span + tpl.t
        if ts > time.time():
            raise RuntimeError("load stream ran into the future: lower the rates or steps")
        packet = tpl.packet
        pub.sent += 1
        if tpl.id_at >= 0:
            struct.pack_into("!H", packet, tpl.id_at, pub.packet_id())
        struct.pack_into("!d", packet, tpl.ts_at, ts)
        struct.pack_into("!I", packet, tpl.seq_at, self.seq[tpl.stream] & 0xFFFFFFFF)
        self.seq[tpl.stream] += 1
        return bytes(packet), tpl.detections


def _publisher(host: str, port: int, qos: int, profile: str, conn: Connection) -> None:
    """Child process: on ("run", rate, seconds) or ("count", n, 0) send and report back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us
    templates, span = build_templates(qos, profile)
    stream = LoadStream(templates, span, time.time() - MAX_AGE_USED_S)
    # One connection for every sensor: the load is time-compressed (a step at 1,000 msg/s
    # plays ~60 scenario seconds per second), so the few milliseconds by which separate
    # connections reorder would exceed the hub's 0.5 s reorder window and count as late.
    publisher = RawPublisher(host, port, "bench-load", qos)
    conn.send(("ready", len(templates)))
    while True:
        command, value, seconds = conn.recv()
        if command == "stop":
            break
        count = int(value) if command == "count" else int(value * seconds)
        rate = float("inf") if command == "count" else value
        conn.send(_send(stream, publisher, count, rate))
    publisher.close()


def _send(stream: LoadStream, publisher: RawPublisher, count: int,
          rate: float) -> dict[str, float]:
    """Send ``count`` messages paced at ``rate`` per second; return what was done."""
    sent = detections = 0
    t0 = time.monotonic()
    wall0 = time.time()
    while sent < count:
        due = count if rate == float("inf") else min(count, int(rate * (time.monotonic() - t0)) + 1)
        packets = []
        for _ in range(min(due - sent, 500)):
            packet, n = stream.next(publisher)
            packets.append(packet)
            detections += n
            sent += 1
        publisher.send(b"".join(packets))
        if rate != float("inf") and sent < count:
            time.sleep(max(0.0, min(TICK_S, (sent + 1) / rate - (time.monotonic() - t0))))
    elapsed = time.monotonic() - t0
    acked = publisher.wait_acks(10.0)
    return {"sent": sent, "detections": detections, "seconds": elapsed, "wall_start": wall0,
            "all_acked": acked}


class Load:
    """The publisher process, driven over a pipe."""

    def __init__(self, handle: BrokerHandle, qos: int, profile: str) -> None:
        self.profile = profile
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_publisher, name="load", daemon=True,
                                args=(handle.host, handle.port, qos, profile, child))
        self.proc.start()
        ready, self.templates = self.conn.recv()
        assert ready == "ready"

    def run(self, rate: float, seconds: float) -> dict[str, float]:
        """Send at ``rate`` messages/s for ``seconds``."""
        self.conn.send(("run", rate, seconds))
        return self.conn.recv()  # type: ignore[no-any-return]

    def flood(self, count: int) -> dict[str, float]:
        """Send ``count`` messages as fast as possible."""
        self.conn.send(("count", count, 0))
        return self.conn.recv()  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(("stop", 0, 0))
            self.proc.join(5)
        stop_process(self.proc)


# --- subscribers -----------------------------------------------------------------------------

class Subscriber(Protocol):
    """A process that receives the load and can say how many messages it has."""

    name: str

    @property
    def pid(self) -> int: ...

    def count(self) -> int: ...

    def wait_count(self, target: int, timeout: float) -> tuple[bool, float]: ...

    def close(self) -> None: ...


def _bare(host: str, port: int, qos: int, counter: Any, ready: Any) -> None:
    """Child process: a plain paho client on ``sensors/+/+`` that only counts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare",
                         protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
    count = 0

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        count += 1
        counter.value = count
        if msg.qos:
            c.ack(msg.mid, msg.qos)

    client.on_message = on_message
    client.on_subscribe = lambda c, u, mid, rc, p: ready.set()
    client.on_connect = lambda c, u, f, r, p: c.subscribe(topics.SENSORS_ALL, qos)
    client.connect(host, port, keepalive=30)
    client.loop_forever()


class BareSubscriber:
    """The ceiling: a bare paho subscriber in its own process."""

    name = "bare paho"

    def __init__(self, handle: BrokerHandle, qos: int) -> None:
        ctx = mp.get_context("spawn")
        self.counter = ctx.Value("q", 0, lock=False)
        ready = ctx.Event()
        self.proc = ctx.Process(target=_bare, args=(handle.host, handle.port, qos, self.counter,
                                                    ready), name="bare", daemon=True)
        self.proc.start()
        if not ready.wait(15):
            raise TimeoutError("bare subscriber did not subscribe")

    @property
    def pid(self) -> int:
        return self.proc.pid or 0

    def count(self) -> int:
        return int(self.counter.value)

    def wait_count(self, target: int, timeout: float) -> tuple[bool, float]:
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if time.monotonic() > deadline:
                return False, time.monotonic()
            time.sleep(0.005)
        return True, time.monotonic()

    def close(self) -> None:
        stop_process(self.proc)


class HubSubscriber:
    """The hub (HubService, default config) in its own process; counts from hub/status."""

    name = "hub"

    def __init__(self, handle: BrokerHandle, max_seconds: float) -> None:
        self.watcher = StatusWatcher(handle.host, handle.port)
        self.proc = start_hub(hub_config(handle.port, client_id=f"hub-bench-{time.time_ns()}"),
                              max_seconds)
        self.watcher.wait_connected(30)

    @property
    def pid(self) -> int:
        return self.proc.pid or 0

    def count(self) -> int:
        return self.watcher.counter("received")

    def wait_count(self, target: int, timeout: float) -> tuple[bool, float]:
        return self.watcher.wait_counter("received", target, timeout)

    def counters(self) -> dict[str, int]:
        latest = self.watcher.latest or {}
        return dict(latest.get("counters", {}))

    def close(self) -> None:
        stop_process(self.proc)
        self.watcher.close()


# --- the climb -------------------------------------------------------------------------------

@dataclass
class Step:
    """One paced step and how the subscriber kept up."""

    target_rate: float
    sent: int
    detections: int
    offered_rate: float
    received: int
    lag_s: float
    cpu: float
    passed: bool

    @property
    def detection_rate(self) -> float:
        return self.detections / self.sent * self.offered_rate if self.sent else 0.0


def run_step(load: Load, sub: Subscriber, rate: float, seconds: float, grace: float,
             drain: float) -> Step:
    """Send one paced step; it passes when all of it arrived within ``grace`` of the end."""
    base = sub.count()
    cpu0, t0 = cpu_seconds(sub.pid), time.monotonic()
    done = load.run(rate, seconds)
    t_end = time.monotonic()
    reached, when = sub.wait_count(base + int(done["sent"]), grace)
    cpu = (cpu_seconds(sub.pid) - cpu0) / max(when - t0, 1e-9)
    if not reached:
        sub.wait_count(base + int(done["sent"]), drain)  # let the backlog go before the next step
    offered = done["sent"] / done["seconds"]
    passed = reached and offered >= 0.97 * rate and bool(done["all_acked"])
    return Step(rate, int(done["sent"]), int(done["detections"]), offered,
                sub.count() - base, when - t_end if reached else float("nan"), cpu, passed)


def estimate(load: Load, sub: Subscriber, count: int, drain: float) -> float:
    """Flood ``count`` messages; return the subscriber's receive rate (messages/s)."""
    base = sub.count()
    t0 = time.monotonic()
    done = load.flood(count)
    reached, when = sub.wait_count(base + int(done["sent"]), drain)
    if not reached:
        raise RuntimeError(f"{sub.name}: flood of {count} not received within {drain} s")
    return done["sent"] / (when - t0)


def climb(load: Load, sub: Subscriber, args: argparse.Namespace) -> dict[str, Any]:
    """Find the highest paced rate the subscriber receives completely and on time."""
    meter = CpuMeter([os.getpid(), sub.pid, load.proc.pid or 0, args.broker_pid])
    capacity = estimate(load, sub, args.flood or FLOOD[load.profile], args.drain)
    print(f"  {sub.name}: flood estimate {capacity:,.0f} msg/s", flush=True)
    steps: list[Step] = []

    def attempt(rate: float) -> Step:
        step = run_step(load, sub, rate, args.step_s, args.grace, args.drain)
        steps.append(step)
        print(f"  {sub.name}: {step.target_rate:8,.0f} msg/s  offered {step.offered_rate:8,.0f}"
              f"  got {step.received:7d}/{step.sent:<7d} lag {step.lag_s:5.2f} s"
              f"  cpu {step.cpu:4.0%}  {'ok' if step.passed else 'FAIL'}", flush=True)
        return step

    rate, best, failed = args.start * capacity, None, None
    while len(steps) < args.max_steps:
        step = attempt(rate)
        if not step.passed:
            failed = rate
            break
        best = step
        rate *= args.factor
    if failed is not None and best is not None and len(steps) < args.max_steps:
        step = attempt((best.target_rate + failed) / 2)
        if step.passed:
            best = step
    if best is None:
        raise RuntimeError(f"{sub.name}: even {steps[0].target_rate:.0f} msg/s was not sustained")
    cores = meter.read()
    print(f"  {sub.name}: other users' load meanwhile {cores['others_cores']:.2f} cores",
          flush=True)
    return {"flood_estimate": capacity, "best": asdict(best) | {
        "detection_rate": best.detection_rate}, "steps": [asdict(s) for s in steps],
        "cores": cores}


def measure(handle: BrokerHandle, qos: int, profile: str,
            args: argparse.Namespace) -> dict[str, Any]:
    """Both subscribers on the same load at one QoS."""
    out: dict[str, Any] = {"profile": profile, "qos": qos}
    load = Load(handle, qos, profile)
    try:
        bare = BareSubscriber(handle, qos)
        try:
            out["bare"] = climb(load, bare, args)
        finally:
            bare.close()
        hub = HubSubscriber(handle, max_seconds=170)
        try:
            out["hub"] = climb(load, hub, args)
            out["hub_counters"] = counters = hub.counters()
            if counters.get("rejected", 0):
                raise RuntimeError(f"the hub rejected part of the load: {counters}")
        finally:
            hub.close()
    finally:
        load.close()
    out["templates"] = load.templates
    out["ratio"] = out["hub"]["best"]["offered_rate"] / out["bare"]["best"]["offered_rate"]
    out["loadavg_after"] = load_average()
    return out


def main() -> None:
    """Run the climbs, print the table, write bench/results/bench_e2e.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", choices=PROFILES,
                        help="load profile (repeat; default both)")
    parser.add_argument("--qos", type=int, action="append", choices=[0, 1],
                        help="QoS of the load (repeat for both; default 1)")
    parser.add_argument("--step-s", type=float, default=5.0, help="seconds per paced step")
    parser.add_argument("--grace", type=float, default=1.0,
                        help="seconds after the last send by which all must have arrived")
    parser.add_argument("--drain", type=float, default=20.0, help="longest wait for a backlog")
    parser.add_argument("--flood", type=int,
                        help="messages of the first estimate (default per profile)")
    parser.add_argument("--start", type=float, default=0.7,
                        help="first paced rate as a share of the flood estimate")
    parser.add_argument("--factor", type=float, default=1.15, help="rate step up")
    parser.add_argument("--max-steps", type=int, default=6, help="paced steps per subscriber")
    args = parser.parse_args()
    qos_levels = args.qos or [1]
    profiles = args.profile or list(PROFILES)
    print(f"load average before: {load_average()}")
    results = []
    with start_broker(prefer="mosquitto") as handle:
        args.broker_pid = handle.pid or 0
        print(f"broker {handle.url} (Mosquitto), loads from {SCENARIO.name}, "
              f"steps {args.step_s:g} s")
        for profile in profiles:
            for qos in qos_levels:
                print(f"{profile}, QoS {qos}:", flush=True)
                results.append(measure(handle, qos, profile, args))
    print()
    print(f"{'profile':10}  {'QoS':>3}  {'subscriber':10}  {'msg/s':>9}  {'det/s':>10}  "
          f"{'cpu':>5}")
    for r in results:
        for name in ("bare", "hub"):
            best = r[name]["best"]
            print(f"{r['profile']:10}  {r['qos']:>3}  {name:10}  {best['offered_rate']:9,.0f}  "
                  f"{best['detection_rate']:10,.0f}  {best['cpu']:5.0%}")
        print(f"{r['profile']:10}  {r['qos']:>3}  hub / bare  {r['ratio']:9.1%}")
    path = write_results("bench_e2e", {"scenario": SCENARIO.name, "profiles": profiles,
                                       "step_s": args.step_s, "grace_s": args.grace,
                                       "results": results})
    print(f"load average after: {load_average()}; written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
