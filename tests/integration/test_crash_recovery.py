"""``hub run`` killed mid-stream (SIGKILL) and started again: nothing lost, nothing fused twice.

Numbered QoS 1 detection batches flow at 240 a second from three
sensors while the hub is killed twice and restarted. The hub's own totals,
carried across restarts by its checkpoints, must count every batch fused
exactly once, and the objects must keep the track ids they had before.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import paho.mqtt.client as mqtt
import pytest
from mqtt_peer import WAIT_S, listen, unique
from paho.mqtt.enums import CallbackAPIVersion

from hub import messages, topics
from hub.broker.launcher import BrokerHandle
from hub.config import DEFAULT_CONFIG, load_config
from hub.geo import EnuFrame
from hub.messages import HubStatus, Picture

HUB = [sys.executable, "-m", "hub.cli"]
SENSORS = ("ken-radar-1", "gha-radar-1", "nld-uav-1")
RATE = 240
"""Messages/s in all: 80/s a sensor, within a radar's default budget (100/s)."""
SECONDS = 9.0
KILLS_AT = (2.5, 6.0)
OBJECTS = [(1_000.0, 500.0), (-1_500.0, 800.0), (200.0, -2_000.0)]
PARTNER = "ken"


class Hub:
    """``hub run`` as a process that the test can kill and start again."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*HUB, "run", "-c", str(self.config), "--quiet"], stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=WAIT_S)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def hub(mosquitto: BrokerHandle, tmp_path: Path) -> Iterator[Hub]:
    config = tmp_path / "hub.toml"
    text = DEFAULT_CONFIG.read_text().replace("port = 1883", f"port = {mosquitto.port}")
    config.write_text(text.replace("[publish]\n", "[publish]\nstatus_every_s = 0.5\n"))
    hub = Hub(config, tmp_path / "hub.log")
    try:
        yield hub
    finally:
        hub.stop()
    assert "Traceback" not in hub.log.read_text()


def batches(frame: EnuFrame) -> Iterator[tuple[str, bytes]]:
    """Each sensor's numbered batches, one detection of one of three fixed objects each."""
    lat_lon = [frame.to_geodetic(e, n, 0.0)[:2] for e, n in OBJECTS]
    seq = 0
    while True:
        for sensor in SENSORS:
            lat, lon = lat_lon[seq % len(OBJECTS)]
            yield (topics.sensor(sensor, "detections"), msgpack.packb({
                "ts": time.time(), "seq": seq, "detections": [{
                    "kind": "geo", "lat": float(lat), "lon": float(lon), "sigma": 5.0,
                    "cls": "vehicle", "conf": 0.9}]}))
        seq += 1


def publish(broker: BrokerHandle, frame: EnuFrame, sent: list[int]) -> None:
    """Publish at RATE for SECONDS, QoS 1 (the broker queues for the hub while it is down)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("sensors"))
    client.max_inflight_messages_set(1_000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    started = time.monotonic()
    pending = []
    for topic, payload in batches(frame):
        elapsed = time.monotonic() - started
        if elapsed > SECONDS:
            break
        while sent[0] > (time.monotonic() - started) * RATE:
            time.sleep(0.002)
        pending.append(client.publish(topic, payload, qos=1))
        sent[0] += 1
    for info in pending:
        info.wait_for_publish(WAIT_S)
    client.disconnect()
    client.loop_stop()


def latest_status(peer_messages: queue.Queue[tuple[str, bytes, bool]],
                  ids: dict[str, set[str]], phase: str) -> HubStatus | None:
    """Drain the listener; keep track ids seen per phase; return the newest status."""
    status = None
    while True:
        try:
            topic, payload, _ = peer_messages.get_nowait()
        except queue.Empty:
            return status
        if topic == topics.HUB_STATUS:
            status = messages.decode(payload, HubStatus, 1 << 20)
        elif topic == topics.partner_picture(PARTNER):
            picture = messages.decode(payload, Picture, 1 << 24)
            ids.setdefault(phase, set()).update(t.id for t in picture.tracks)


def test_kills_lose_nothing_and_fuse_nothing_twice(hub: Hub, mosquitto: BrokerHandle) -> None:
    frame = load_config(DEFAULT_CONFIG).mission.origin.frame()
    listener = listen(mosquitto, "5", topics.HUB_STATUS, topics.partner_picture(PARTNER))
    hub.start()
    listener.take(1, wait_s=30)  # the hub is up: its first status
    sent = [0]
    sender = threading.Thread(target=publish, args=(mosquitto, frame, sent))
    started = time.monotonic()
    sender.start()
    ids: dict[str, set[str]] = {}
    for n, at in enumerate(KILLS_AT):
        while time.monotonic() - started < at:
            latest_status(listener.messages, ids, f"before kill {n}")
            time.sleep(0.05)
        hub.kill()
        hub.start()
    sender.join(SECONDS + 30)
    deadline = time.monotonic() + 40
    fused = -1
    while time.monotonic() < deadline and fused != sent[0]:
        status = latest_status(listener.messages, ids, "after")
        fused = fused if status is None else status.counters["fused"]
        time.sleep(0.1)
    listener.close()
    assert fused == sent[0], f"{fused} fused of {sent[0]} sent"
    before = set().union(*(v for k, v in ids.items() if k.startswith("before")))
    assert len(before) == len(OBJECTS) and ids["after"] == before
