"""The frame pool: latest wins per sensor, drops and refusals counted, replay waits.

The policy tests run the real worker code under a hand-cranked executor (jobs
finish when the test says so), so which frame is dropped is exact, not timing.
Two tests run real worker processes (forkserver) end to end.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import msgpack
import numpy as np
import pytest
from frames_scene import CAMERA_ID, Scene, camera_config, enu_of, frame_records

from hub.cli.replay import replay
from hub.config import parse_config
from hub.errors import ConfigError
from hub.ingest.detections import batch_to_scan
from hub.ingest.frame_pool import JOBS_PER_WORKER, FramePool, FrameWorker, _ready
from hub.ingest.imagery import frame_detections, to_geo_detections
from hub.messages import DetectionBatch, Frame, decode
from hub.pipeline import Pipeline

T0 = 1.8e9
CONFIG = camera_config(workers=0)
SCENE = Scene(enu_of(CONFIG), T0)
RECORDS = frame_records(SCENE, 4.0)  # 20 frames at 5 Hz
OTHER = "nld-uav-1"


async def until_true(predicate: Callable[[], bool], what: str, wait_s: float = 30.0) -> None:
    deadline = time.monotonic() + wait_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class HandCranked(Executor):
    """Jobs wait until ``finish`` runs the oldest one with the real worker code."""

    def __init__(self, worker: FrameWorker) -> None:
        self.worker = worker
        self.waiting: list[tuple[Future[Any], tuple[Any, ...]]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.waiting.append((future, args))
        return future

    def finish(self) -> None:
        future, (payload, sensor) = self.waiting.pop(0)
        future.set_result(self.worker.process(payload, sensor))


def cranked_pipeline() -> tuple[Pipeline, HandCranked]:
    executor = HandCranked(FrameWorker(CONFIG))
    pool = FramePool(CONFIG, wait=False, workers=1, executor=executor,
                     dispatch=lambda fn, *args: fn(*args))
    return Pipeline(CONFIG, frames=pool), executor


def as_sensor(record: tuple[float, str, bytes], sensor: str) -> tuple[float, str, bytes]:
    t, _, payload = record
    return t, f"sensors/{sensor}/frames", payload


def test_latest_frame_wins_and_the_replaced_one_is_counted_as_dropped() -> None:
    pipeline, executor = cranked_pipeline()
    cam = RECORDS[:4]
    other = as_sensor(RECORDS[4], OTHER)
    for t, topic, payload in [*cam, other]:
        assert pipeline.handle(topic, payload, t)
    # One worker takes two jobs (JOBS_PER_WORKER): cam 0 and cam 1 run; cam 2 waited and
    # was replaced by cam 3; the other sensor waits.
    assert JOBS_PER_WORKER == 2
    assert (pipeline.frames.in_flight, pipeline.frames.pending) == (2, 2)
    executor.finish()  # cam 0 done: the sensor that waited longest (cam) goes next: cam 3
    executor.finish()  # cam 1 done: the other sensor's frame goes
    executor.finish()  # cam 3
    executor.finish()  # the other sensor's frame
    assert not executor.waiting
    pipeline.flush(RECORDS[5][0])
    c = pipeline.counters
    assert c[f"frames_received.{CAMERA_ID}"] == 4 and c[f"frames_received.{OTHER}"] == 1
    assert c[f"frames_dropped.{CAMERA_ID}"] == 1 and c[f"frames_dropped.{OTHER}"] == 0
    assert c[f"frames_processed.{CAMERA_ID}"] == 3 and c[f"frames_processed.{OTHER}"] == 1
    assert c["frames_received"] == c["frames_processed"] + c["frames_dropped"] == 5
    assert c["rejected"] == 0 and c["frame_detections"] >= 3 * 3


class SlowToBoot(HandCranked):
    """The warm-up blocks (a worker still importing OpenCV) until ``booted`` is set."""

    def __init__(self, worker: FrameWorker) -> None:
        super().__init__(worker)
        self.booted = threading.Event()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if fn is not _ready:
            return super().submit(fn, *args, **kwargs)
        assert self.booted.wait(30)
        future: Future[Any] = Future()
        future.set_result(0)
        return future


async def test_frames_that_come_while_the_pool_boots_wait_for_it_off_the_loop() -> None:
    executor = SlowToBoot(FrameWorker(CONFIG))
    pool = FramePool(CONFIG, wait=False, workers=1, executor=executor,
                     dispatch=lambda fn, *args: fn(*args))
    pipeline = Pipeline(CONFIG, frames=pool)
    boot = asyncio.create_task(pool.boot())
    await asyncio.sleep(0.05)  # the warm-up is blocked in its thread, the loop is not
    for t, topic, payload in RECORDS[:3]:
        assert pipeline.handle(topic, payload, t)
    assert (pool.in_flight, len(executor.waiting), pool.pending) == (0, 0, 1)  # latest waits
    executor.booted.set()
    await boot
    assert (pool.in_flight, len(executor.waiting), pool.pending) == (1, 1, 0)
    executor.finish()
    pipeline.flush(RECORDS[3][0])
    assert pipeline.counters["frames_processed"] == 1
    assert pipeline.counters["frames_dropped"] == 2


def test_per_sensor_queue_keeps_more_than_one_frame_when_configured() -> None:
    config = camera_config(workers=0, queue_per_sensor=3)
    executor = HandCranked(FrameWorker(config))
    pipeline = Pipeline(config, frames=FramePool(config, wait=False, workers=1,
                                                 executor=executor, dispatch=lambda f, *a: f(*a)))
    for t, topic, payload in RECORDS[:6]:
        pipeline.handle(topic, payload, t)
    assert pipeline.frames.pending == 3
    pipeline.flush(RECORDS[6][0])
    assert pipeline.counters["frames_dropped"] == 1  # frames 0, 1 run; 2 dropped; 3, 4, 5 wait


def corrupt(record: tuple[float, str, bytes], **change: Any) -> bytes:
    message = msgpack.unpackb(record[2])
    message.update(change)
    return bytes(msgpack.packb(message, use_bin_type=True))


@pytest.mark.parametrize(("change", "reason"), [
    ({"data": b"\xff\xd8\xff\xe0" + b"\x00" * 64}, "JPEG"),
    ({"gimbal": {"az": 90.0, "el": 30.0}}, "sees no ground"),
    ({"width": 640, "height": 360}, "declares 640x360"),
])
def test_worker_refusal_is_dead_lettered_with_the_workers_reason(change: dict[str, Any],
                                                                 reason: str) -> None:
    pipeline, executor = cranked_pipeline()
    t, topic, _ = RECORDS[0]
    payload = corrupt(RECORDS[0], **change)
    assert pipeline.handle(topic, payload, t)  # the message itself is valid
    executor.finish()
    pipeline.flush(t)
    letter = pipeline.dead_letters[-1]
    assert reason in letter.reason and letter.topic == topic and letter.size == len(payload)
    assert pipeline.counters["rejected"] == 1
    assert pipeline.counters[f"frames_rejected.{CAMERA_ID}"] == 1


def test_invalid_frame_message_is_refused_before_the_pool() -> None:
    pipeline, executor = cranked_pipeline()
    t, topic, _ = RECORDS[0]
    assert not pipeline.handle(topic, corrupt(RECORDS[0], band="uv"), t)
    assert not executor.waiting and pipeline.counters["frames_received"] == 0


def test_frame_scan_is_the_detection_batch_it_stands_for() -> None:
    worker = FrameWorker(CONFIG)
    _, _, payload = RECORDS[3]
    sensor = CONFIG.sensor_index()[CAMERA_ID]
    scan = worker.process(payload, sensor)
    assert not isinstance(scan, str) and len(scan) >= 3
    frame = decode(payload, Frame, 1 << 24)
    ground = frame_detections(frame, worker.detector, worker.terrain, worker.noise[sensor],
                              worker.enu, max_pixels=CONFIG.imagery.max_pixels,
                              height=worker.height)
    batch = DetectionBatch(ts=frame.ts, seq=frame.seq,
                           detections=list(to_geo_detections(ground, worker.enu)))
    expected = batch_to_scan(batch, sensor, worker.enu)
    np.testing.assert_allclose(scan.z, expected.z, atol=1e-3)
    np.testing.assert_allclose(scan.R, expected.R, rtol=1e-9)
    assert np.array_equal(scan.cls, expected.cls) and np.allclose(scan.conf, expected.conf)
    assert scan.t == expected.t and scan.sensor == sensor


def test_per_sensor_pose_noise_overrides_the_mission_default() -> None:
    data = {"mission": {"origin": {"lat": 1.0, "lon": 2.0}},
            "imagery": {"pose_noise": {"sigma_heading": 1.0}},
            "sensors": [{"id": "a", "nation": "KEN", "kind": "uav"},
                        {"id": "b", "nation": "KEN", "kind": "uav",
                         "camera": {"sigma_heading": 2.0, "sigma_alt": 1.0}}]}
    worker = FrameWorker(parse_config(data))
    assert (worker.noise[0].sigma_heading, worker.noise[0].sigma_alt) == (1.0, 5.0)
    assert (worker.noise[1].sigma_heading, worker.noise[1].sigma_alt) == (2.0, 1.0)
    data["sensors"][1]["camera"] = {"sigma_yaw": 1.0}  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"\$\.sensors\[1\]\.camera"):
        parse_config(data)


def test_replay_waits_for_real_worker_processes_and_repeats_itself() -> None:
    config = camera_config(workers=1)
    outs = []
    for _ in range(2):
        out = io.BytesIO()
        summary = replay(RECORDS, config, out)
        assert summary.messages == len(RECORDS) and summary.rejected == 0
        outs.append(out.getvalue())
    assert outs[0] == outs[1] and outs[0].count(b'"confirmed"') > 0


async def test_live_pool_hands_results_to_the_loop_from_worker_processes() -> None:
    config = camera_config(workers=1)
    pipeline = Pipeline(config, frames=FramePool(config, wait=False))
    try:
        for t, topic, payload in RECORDS[:8]:  # all at once: nothing finishes in between
            pipeline.handle(topic, payload, t)
        await until_true(lambda: (pipeline.collect_frames(RECORDS[8][0]) or True)
                         and pipeline.frames.in_flight == 0, "frames done")
        c = pipeline.counters
        # The first two (one worker, two jobs) and the last; the five between were replaced.
        assert (c["frames_processed"], c["frames_dropped"]) == (3, 5)
        assert len(pipeline.reorder) == 3
    finally:
        pipeline.close()


def test_scan_enters_the_trackers_of_the_groups_that_may_see_the_camera() -> None:
    config = camera_config(workers=0)
    pipeline = Pipeline(config)
    for t, topic, payload in RECORDS:
        pipeline.handle(topic, payload, t)
        pipeline.flush(t)
    pipeline.finish()
    seen = {fusion.group.key: fusion.fused for fusion in pipeline.groups}
    ken = pipeline.group_of("ken")
    bra = pipeline.group_of("bra")
    assert ken.fused == len(RECORDS) and bra.fused == 0, seen
    assert (ken.tracker.snapshot().status > 0).sum() >= 3
    assert len(bra.tracker.snapshot().id) == 0
