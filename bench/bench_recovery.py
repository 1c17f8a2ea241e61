"""Crashes and broker restarts under load: is every acknowledged message fused exactly once?

Three UAVs publish numbered QoS 1 detection batches (one fixed object each)
at ``--rate`` messages/s in total to a persistent Mosquitto while either the
hub is killed (SIGKILL, started again after ``--down`` s) or the broker is
restarted, ``--times`` times. At the end the hub's totals (carried across its
restarts by its checkpoints) must show every batch fused once: ``fused ==
sent``. It also records how long after each restart the partner picture
resumed, and whether the objects kept their track ids. Each outage comes a
random 0.5–3 s after the hub is back from the one before (a picture came and
it has caught up with the sensors to within a second).

    python bench/bench_recovery.py --mode kill --times 20 --rate 400
    python bench/bench_recovery.py --mode broker --times 20 --rate 400
"""

from __future__ import annotations

import argparse
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import paho.mqtt.client as mqtt
from common import ROOT, write_results
from paho.mqtt.enums import CallbackAPIVersion

from hub import messages, topics
from hub.broker.launcher import BrokerHandle, start_broker
from hub.config import DEFAULT_CONFIG, load_config
from hub.messages import HubStatus, Picture

SENSORS = ("ken-uav-2", "nld-uav-1", "bra-uav-1")
"""UAVs: 400 messages/s in all is 133/s each, under half a UAV's default budget (300/s)."""
PARTNER = "ken"
UP_S = 3.0


def write_config(directory: Path, port: int) -> Path:
    text = DEFAULT_CONFIG.read_text().replace("port = 1883", f"port = {port}")
    text = text.replace("[publish]\n", "[publish]\nstatus_every_s = 0.5\n")
    path = directory / "hub.toml"
    path.write_text(text + f'\n[recovery]\ndir = "{directory / "state"}"\n')
    return path


class Sensors(threading.Thread):
    """Numbered batches at ``rate``/s until stopped; one fixed object per sensor."""

    def __init__(self, broker: BrokerHandle, rate: float) -> None:
        super().__init__(daemon=True)
        self.broker, self.rate = broker, rate
        self.sent = 0
        self.acked = 0
        self.stopped = threading.Event()
        frame = load_config(DEFAULT_CONFIG).mission.origin.frame()
        self.positions = [frame.to_geodetic(2_000.0 * i - 3_000.0, 1_000.0, 0.0)[:2]
                          for i in range(len(SENSORS))]

    def run(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sensors",
                             clean_session=False)
        client.max_inflight_messages_set(1_000)
        client.max_queued_messages_set(0)
        client.on_publish = lambda *args: setattr(self, "acked", self.acked + 1)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        started = time.monotonic()
        seq = 0
        while not self.stopped.is_set():
            for sensor, (lat, lon) in zip(SENSORS, self.positions, strict=True):
                client.publish(topics.sensor(sensor, "detections"), msgpack.packb({
                    "ts": time.time(), "seq": seq, "detections": [{
                        "kind": "geo", "lat": float(lat), "lon": float(lon), "sigma": 5.0,
                        "cls": "vehicle", "conf": 0.9}]}), qos=1)
                self.sent += 1
            seq += 1
            pause = started + self.sent / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        deadline = time.monotonic() + 60
        while self.acked < self.sent and time.monotonic() < deadline:
            time.sleep(0.1)
        client.disconnect()
        client.loop_stop()


class Listener:
    """hub/status and the partner's pictures: totals, track ids, when pictures came."""

    def __init__(self, broker: BrokerHandle) -> None:
        self.inbox: queue.Queue[tuple[float, str, bytes]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-listener")
        self.client.on_message = lambda c, u, m: self.inbox.put(
            (time.monotonic(), m.topic, bytes(m.payload)))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(topics.HUB_STATUS, 1), (topics.partner_picture(PARTNER), 1)])
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.counters: dict[str, int] = {}
        self.picture_times: list[float] = []
        self.ids: list[set[str]] = []

    def drain(self) -> None:
        while True:
            try:
                at, topic, payload = self.inbox.get_nowait()
            except queue.Empty:
                return
            if topic == topics.HUB_STATUS:
                status = messages.decode(payload, HubStatus, 1 << 20)
                if status.online:
                    self.counters = dict(status.counters)
            else:
                picture = messages.decode(payload, Picture, 1 << 24)
                self.picture_times.append(at)
                self.ids.append({t.id for t in picture.tracks if t.status == "confirmed"})

    def resumed_after(self, at: float) -> float | None:
        return next((t - at for t in self.picture_times if t > at), None)


def start_hub(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "-c", str(config),
                                 "--quiet"], stdout=out, stderr=out, cwd=ROOT)


def outage(mode: str, hub: subprocess.Popen[bytes], broker: BrokerHandle, config: Path,
           log: Path, down_s: float) -> subprocess.Popen[bytes]:
    """One kill of the hub (started again after ``down_s``) or one broker restart."""
    if mode == "broker":
        broker.restart()
        return hub
    hub.send_signal(signal.SIGKILL)
    hub.wait()
    time.sleep(down_s)
    return start_hub(config, log)


def live_again(listener: Listener, since: float, sensors: Sensors) -> None:
    """Wait until a picture came after ``since`` and the hub has caught up with the sensors."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
            listener.resumed_after(since) is None
            or listener.counters.get("received", 0) < sensors.sent - sensors.rate):
        time.sleep(0.05)
        listener.drain()


def wait_for_totals(listener: Listener, sent: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and listener.counters.get("fused") != sent:
        time.sleep(0.2)
        listener.drain()


def run(mode: str, times: int, rate: float, down_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, \
            start_broker(prefer="mosquitto", persistence=True,
                         workdir=Path(tmp) / "broker") as broker:
        config, log = write_config(Path(tmp), broker.port), Path(tmp) / "hub.log"
        hub = start_hub(config, log)
        listener = Listener(broker)
        while not listener.counters:
            time.sleep(0.1)
            listener.drain()
        sensors = Sensors(broker, rate)
        sensors.start()
        restarts: list[float] = []
        rng = random.Random(11)
        for n in range(times):
            live_again(listener, restarts[-1] if restarts else 0.0, sensors)
            time.sleep(rng.uniform(0.5, UP_S))  # killed anywhere in its stride
            hub = outage(mode, hub, broker, config, log, down_s)
            restarts.append(time.monotonic())
            print(f"{mode} {n + 1}/{times}: {sensors.sent} sent", flush=True)
        time.sleep(UP_S)
        sensors.stopped.set()
        sensors.join(60)
        wait_for_totals(listener, sensors.sent)
        hub.terminate()
        hub.wait(30)
        tracebacks = log.read_text().count("Traceback")
    counters = listener.counters
    resumed = [r for r in (listener.resumed_after(at) for at in restarts) if r is not None]
    seen = set().union(*listener.ids)
    return {"mode": mode, "times": times, "rate": rate, "down_s": down_s,
            "sent": sensors.sent, "fused": counters.get("fused"),
            "duplicates": counters.get("duplicates"), "late": counters.get("late"),
            "rejected": counters.get("rejected"), "seq_restarts": counters.get("seq_restarts"),
            "over_budget": counters.get("over_budget"),
            "objects_seen": max(map(len, listener.ids), default=0), "track_ids_seen": len(seen),
            "tracebacks": tracebacks,
            "resumed_s_max": max(resumed, default=None),
            "resumed_s_median": sorted(resumed)[len(resumed) // 2] if resumed else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=("kill", "broker"), default="kill")
    parser.add_argument("--times", type=int, default=20)
    parser.add_argument("--rate", type=float, default=400.0, help="messages/s in all")
    parser.add_argument("--down", type=float, default=2.0, help="seconds the hub stays dead")
    args = parser.parse_args()
    figures = run(args.mode, args.times, args.rate, args.down)
    print(figures)
    write_results(f"recovery_{args.mode}", figures)
    exact = (figures["fused"] == figures["sent"]
             and figures["track_ids_seen"] == figures["objects_seen"])
    return 0 if exact and not figures["tracebacks"] else 1


if __name__ == "__main__":
    sys.exit(main())
