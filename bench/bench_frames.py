"""Imagery throughput: frames/s of one worker process, and of the frame pool at N workers.

Frames: the camera-only UAV of tests/frames_scene.py (orbit at 400 m, four
vehicles in view), rendered by simulators/render.py as JPEG quality 85, IR and
EO alternating, 20 distinct frames per size, built before timing. *Per process*
times ``FrameWorker.process`` in this process with OpenCV on one thread:
msgspec decode of the payload, reduced greyscale JPEG decode, detection,
georeference with covariance — everything a worker does per frame. Parts are
timed separately too. *Pool* runs the live ``FramePool`` (worker processes,
forkserver) on an asyncio loop with room for every frame (no drops) and
reports frames/s from first submit to last result. Usage:

    .venv/bin/python bench/bench_frames.py [--frames 300] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from common import load_average, write_results  # noqa: E402
from frames_scene import CAMERA_ID, Scene, camera_config, enu_of  # noqa: E402

from hub.ingest.frame_pool import FramePool, FrameWorker  # noqa: E402
from hub.ingest.imagery import BandDetector, decode_frame  # noqa: E402
from hub.ingest.router import FrameJob  # noqa: E402
from hub.messages import Frame, decode  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def make_frames(width: int, height: int, count: int = 20) -> list[bytes]:
    """Distinct rendered frames along the orbit, IR and EO alternating."""
    config = camera_config()
    scene = Scene(enu_of(config), 1.8e9)
    rng = np.random.default_rng(0)
    return [scene.message(scene.t0 + 6.0 * k, k, rng, "ir" if k % 2 else "eo",
                          width, height)[1] for k in range(count)]


def per_process(frames: list[bytes], total: int) -> dict[str, float]:
    """Frames/s of the worker's whole job and of its parts, in this process."""
    config = camera_config(workers=0)
    worker = FrameWorker(config)
    sensor = config.sensor_index()[CAMERA_ID]
    detector = BandDetector()
    decoded = [decode(p, Frame, 1 << 26) for p in frames]
    images = [decode_frame(f, max_pixels=1 << 26) for f in decoded]
    for payload in frames:  # warm caches
        worker.process(payload, sensor)

    def rate(step: Any, items: list[Any]) -> float:
        started = time.perf_counter()
        for k in range(total):
            step(items[k % len(items)])
        return total / (time.perf_counter() - started)

    return {
        "frames_per_s": rate(lambda p: worker.process(p, sensor), frames),
        "msgspec_decode_per_s": rate(lambda p: decode(p, Frame, 1 << 26), frames),
        "image_decode_per_s": rate(lambda f: decode_frame(f, max_pixels=1 << 26), decoded),
        "detect_per_s": rate(lambda im: detector.detect(im, "ir"), images),
        "payload_kib": sum(map(len, frames)) / len(frames) / 1024,
    }


async def pool_rate(frames: list[bytes], workers: int, total: int) -> float:
    """Frames/s through the live pool at ``workers`` processes, nothing dropped."""
    config = camera_config(workers=workers, queue_per_sensor=1000)
    pool = FramePool(config, wait=False)
    sensor = config.sensor_index()[CAMERA_ID]
    pool.warm_up()
    await asyncio.sleep(1.0)  # workers booted
    try:
        for k in range(workers * 4):  # warm every worker
            pool.submit(FrameJob(0.0, sensor, frames[k % len(frames)], 0.0, "warm"))
        while pool.in_flight or pool.pending:
            await asyncio.sleep(0.001)
        pool.take()
        started = time.perf_counter()
        for k in range(total):
            pool.submit(FrameJob(0.0, sensor, frames[k % len(frames)], 0.0, "bench"))
        while pool.in_flight or pool.pending:
            await asyncio.sleep(0.0005)
        elapsed = time.perf_counter() - started
        done = pool.take()
        assert len(done) == total and all(o.scan is not None for o in done)
        return total / elapsed
    finally:
        pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    figures: dict[str, Any] = {"frames": args.frames, "per_process": {}, "pool": {}}
    for name, (width, height) in SIZES.items():
        frames = make_frames(width, height)
        figures["per_process"][name] = per_process(frames, args.frames)
        figures["pool"][name] = {str(n): asyncio.run(pool_rate(frames, n, args.frames))
                                 for n in args.workers}
        one = figures["per_process"][name]
        parts = (f"msgspec {one['msgspec_decode_per_s']:.0f}/s, image decode "
                 f"{one['image_decode_per_s']:.0f}/s, detect {one['detect_per_s']:.0f}/s")
        pools = ", ".join(f"{n} workers {r:.0f}/s" for n, r in figures["pool"][name].items())
        print(f"{name}: {one['frames_per_s']:.0f} frames/s per process (payload "
              f"{one['payload_kib']:.0f} KiB; {parts}); pool {pools}", flush=True)
    print(f"load average {load_average()}; written to {write_results('frames', figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
