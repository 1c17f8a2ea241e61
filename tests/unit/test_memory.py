"""Memory stays flat under steady traffic: nothing per track or per message is kept for ever.

A long synthetic run through the whole in-process path (router, reorder
window, trackers of two release groups, publisher with its delay history):
clutter makes tentative tracks that die every scan and targets come and go,
so anything kept per dead track, per message or per picture would grow.
"""

from __future__ import annotations

import gc
import tracemalloc

import msgpack
import numpy as np
from publishing import mqtt_publisher

from hub.config import HubConfig, parse_config
from hub.geo import EnuFrame
from hub.pipeline import Pipeline

T0 = 1_800_000_000.0
ORIGIN = (-1.0, 36.0)
CLUTTER = 20
WARM_UP_S = 120
MEASURED_S = 600
GROWTH_BOUND = 256 * 1024
"""Bytes the measured run may add; a list of dead ids alone adds 1.5 MiB."""


def config() -> HubConfig:
    return parse_config({
        "mission": {"origin": {"lat": ORIGIN[0], "lon": ORIGIN[1]}},
        "fusion": {"reorder_window_s": 0.5},
        "partners": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        "sensors": [
            {"id": "shared", "nation": "KEN", "kind": "radar"},
            {"id": "secret", "nation": "NLD", "kind": "uav", "release_to": ["a"]},
        ],
        "releases": [{"by": "KEN", "to": ["a", "b"], "delay_s": 30.0}],
    })


def batch(frame: EnuFrame, t: float, seq: int, rng: np.random.Generator) -> bytes:
    """Ten targets that each live 60 s, plus clutter that never repeats."""
    k = int(t - T0)
    targets = [(300.0 * (k // 60 % 50 + i), 10.0 * (k % 60)) for i in range(10)]
    clutter = rng.uniform(-20_000, 20_000, size=(CLUTTER, 2)).tolist()
    east, north = np.array(targets + clutter).T
    lat, lon, _ = frame.to_geodetic(east, north, 0.0)
    return msgpack.packb({"ts": t, "seq": seq, "detections": [
        {"kind": "geo", "lat": float(la), "lon": float(lo), "sigma": 10.0, "cls": "vehicle",
         "conf": 0.8} for la, lo in zip(lat, lon, strict=True)]})


def run(pipeline: Pipeline, start_s: int, seconds: int) -> None:
    frame, rng = pipeline.frame, np.random.default_rng(start_s)
    publisher = mqtt_publisher(pipeline, lambda *message: None)
    for k in range(start_s, start_s + seconds):
        t = T0 + k
        for sensor in ("shared", "secret"):
            pipeline.handle(f"sensors/{sensor}/detections", batch(frame, t, k, rng), t + 0.1)
        pipeline.flush(t + 0.9)
        publisher.publish(t + 0.9)


def test_memory_is_flat_over_a_long_run_with_tracks_born_and_dying() -> None:
    pipeline = Pipeline(config())
    run(pipeline, 0, WARM_UP_S)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        run(pipeline, WARM_UP_S, MEASURED_S)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        pipeline.close()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "lineno"))
    deleted = sum(fusion.tracker.deleted for fusion in pipeline.groups)
    assert deleted > 20 * MEASURED_S  # the run did make and kill tracks
    top = after.compare_to(before, "lineno")[:3]
    assert growth < GROWTH_BOUND, f"{growth} bytes more; most at {top}"
