"""Simulators against a real Mosquitto: every message arrives, decodes, and wills work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mqtt_peer import listen

from hub import messages, topics
from hub.broker.launcher import BrokerHandle
from simulators.publisher import PublishStats, publish
from simulators.scenario import load_scenario

WAIT_S = 20.0
MAX = 16 << 20
ROOT = Path(__file__).resolve().parents[2]


def test_publish_faster_than_real_time(mosquitto: BrokerHandle, mqtt_protocol: str) -> None:
    scenario = load_scenario("default")
    listener = listen(mosquitto, mqtt_protocol, "sensors/#", topics.TRUTH)
    try:
        result: list[PublishStats] = []
        started = time.time()
        worker = threading.Thread(target=lambda: result.append(publish(
            scenario, mosquitto.host, mosquitto.port, protocol=mqtt_protocol, speed=10.0,
            duration=20.0, progress=False)))
        worker.start()
        worker.join(WAIT_S * 3)
        assert not worker.is_alive() and result
        stats = result[0]
        # Everything sent at QoS 1 arrives on a local broker, plus one offline status per
        # sensor; retained statuses an earlier test left on this broker are not counted.
        # Frames are QoS 0: counted as they come, not waited for.
        got: list[tuple[str, bytes, bool]] = []
        while sum(not t.endswith("/frames") for t, _, _ in got) < (
                stats.sent - stats.frames_sent + len(scenario.sensor_ids)):
            got += [m for m in listener.take(1, WAIT_S * 3) if not m[2]]
    finally:
        listener.close()
    finished = time.time()
    kinds: dict[str, int] = {}
    for topic, payload, _ in got:
        if topic == topics.TRUTH:
            msg: object = messages.decode(payload, messages.Truth, MAX)
            kind = "truth"
        else:
            sensor_id, kind = topics.parse_sensor_topic(topic)
            assert sensor_id in scenario.sensor_ids
            contract = {"telemetry": messages.Telemetry, "detections": messages.DetectionBatch,
                        "status": messages.SensorStatus, "frames": messages.Frame}[kind]
            msg = messages.decode(payload, contract, MAX)
        kinds[kind] = kinds.get(kind, 0) + 1
        ts = getattr(msg, "ts", None)
        if ts is not None:
            # Stamped with the wall clock at any speed: within the run, never before it.
            assert started <= ts <= finished
    assert kinds["truth"] == 20
    assert kinds["telemetry"] == len(scenario.uavs) * 20 * 5
    # One camera UAV at 2 Hz: 40 frames due; each either sent or skipped as stale.
    assert stats.frames_sent + stats.frames_skipped == 40 and stats.frames_sent > 0
    assert 0 < kinds["frames"] <= stats.frames_sent
    assert kinds["detections"] > 100
    assert kinds["status"] == 2 * len(scenario.sensor_ids)  # online at start, offline at end


def _statuses(handle: BrokerHandle) -> dict[str, messages.SensorStatus]:
    """The retained status of every sensor, as a new subscriber sees it."""
    listener = listen(handle, "5", "sensors/+/status")
    try:
        got = listener.take(5)
    finally:
        listener.close()
    assert all(retained for _, _, retained in got)
    return {topics.parse_sensor_topic(t)[0]: messages.decode(p, messages.SensorStatus, MAX)
            for t, p, _ in got}


def _statuses_once_all(handle: BrokerHandle, online: bool) -> dict[str, messages.SensorStatus]:
    """The retained statuses, once every sensor's is ``online`` (within WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    statuses = _statuses(handle)
    while any(s.online != online for s in statuses.values()):
        assert time.monotonic() < deadline, statuses
        time.sleep(0.05)
        statuses = _statuses(handle)
    return statuses


@pytest.mark.parametrize("how", ["kill", "interrupt"])
def test_process_end_leaves_every_sensor_offline(mosquitto: BrokerHandle, how: str) -> None:
    listener = listen(mosquitto, "5", "sensors/+/telemetry")
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators", "-s", "default", "--host", mosquitto.host,
         "--port", str(mosquitto.port), "--no-progress"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
    try:
        listener.take(1)
        # Each unit has its own connection: one's telemetry may come before another's
        # status replaces the offline one a previous run left retained.
        _statuses_once_all(mosquitto, online=True)
        process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
        _, stderr = process.communicate(timeout=WAIT_S)
    finally:
        listener.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()  # a failure above left it open for a later test to trip on
    if how == "interrupt":
        assert process.returncode == 0 and b"Traceback" not in stderr
    # Killed: the broker publishes each unit's will; interrupted: each says goodbye itself.
    statuses = _statuses_once_all(mosquitto, online=False)
    assert set(statuses) == {"ken-radar-1", "gha-radar-1", "nld-uav-1", "bra-uav-1", "ken-uav-2"}
    assert all(s.kind in ("radar", "uav") for s in statuses.values())
    assert all((s.ts is not None) == (how == "interrupt") for s in statuses.values())


def test_units_whose_broker_dies_go_on_at_the_next_one(
        fresh_mosquitto: BrokerHandle, mosquitto: BrokerHandle) -> None:
    """A clustered hub's field units: node A dies mid-run, what follows arrives at node B."""
    listener = listen(mosquitto, "3.1.1", "sensors/+/detections")
    result: list[PublishStats] = []
    worker = threading.Thread(target=lambda: result.append(publish(
        "default", fresh_mosquitto.host, fresh_mosquitto.port, protocol="3.1.1", speed=5.0,
        duration=30.0, progress=False, failover=[(mosquitto.host, mosquitto.port)])))
    try:
        worker.start()
        time.sleep(1.5)
        fresh_mosquitto.kill()
        killed_at = time.time()
        got = listener.take(5, WAIT_S)
    finally:
        worker.join(WAIT_S * 2)
        listener.close()
    assert not worker.is_alive() and result
    stamps = [messages.decode(payload, messages.DetectionBatch, MAX).ts for _, payload, _ in got]
    assert len(stamps) == 5 and min(stamps) > killed_at - 1.0, stamps
