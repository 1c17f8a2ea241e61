"""Detector recall and false positives on simulator-rendered frames over many poses.

Each case draws a random camera (hfov 40-80 deg, 1280x720), a random pose
(altitude 150-700 m, gimbal elevation -90 to -40 deg, any heading, pitch and
roll within +/-5 deg), a band (EO or IR), a format (JPEG quality 60-95, or PNG)
and 1-8 targets of random classes at random pixels at least 40 px apart and
40 px inside the border, placed on the ground by the camera model; the frame is
rendered by simulators.render (with the default pose noise on the reported
pose) and goes through the hub's path: Frame decode, decode_frame at half size,
BandDetector, georeference. A detection matches a target when its centre lies
within 6 px of the target's true pixel.

Measured over 300 cases (seeds 0-299; 150 frames per band, 685 EO and 656 IR
targets): EO recall 0.987 with 0.26 false positives per frame, IR recall 0.899
with 0.11 (BandDetector defaults: EO ContrastDetector k = 8, IR HotSpotDetector
k = 5). With EO at k = 5 the renderer's coarse ground texture gave 70 false
positives per frame; that is what the EO bound catches. IR misses are spread
over altitudes and fields of view (one or two targets in a frame of 5-7), not
yet explained. Bounds: recall >= 0.95 (EO) and >= 0.85 (IR); false positives
<= 0.5 per frame for both.
"""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from hub.geo import EnuFrame
from hub.ingest.camera import Intrinsics, LevelTerrain, Pose, PoseNoise, georeference
from hub.ingest.imagery import BandDetector, frame_detections
from hub.messages import Camera, Frame, decode
from simulators.render import frame_payload, render_frame

W, H = 1280, 720
CASES = 300
MATCH_PX = 6.0
MIN_SEPARATION_PX, MARGIN_PX = 40.0, 40.0
ORIGIN = EnuFrame(-1.2921, 36.8219, 1650.0)
CLASSES = ("person", "vehicle", "uav")


def _pixels(rng: np.random.Generator, count: int) -> np.ndarray:
    points: list[np.ndarray] = []
    while len(points) < count:
        p = rng.uniform((MARGIN_PX, MARGIN_PX), (W - MARGIN_PX, H - MARGIN_PX))
        if all(np.hypot(*(p - q)) >= MIN_SEPARATION_PX for q in points):
            points.append(p)
    return np.array(points)


def _case(seed: int) -> tuple[str, int, int, int]:
    """Render one random case; return (band, targets, matched, false positives)."""
    rng = np.random.default_rng(seed)
    hfov = float(rng.uniform(40.0, 80.0))
    k = Intrinsics.from_camera(Camera(hfov=hfov), W, H)
    pose = Pose.at(ORIGIN, -1.2921 + rng.uniform(-0.01, 0.01), 36.8219 + rng.uniform(-0.01, 0.01),
                   1650.0 + rng.uniform(150.0, 700.0), heading=rng.uniform(0.0, 360.0),
                   pitch=rng.uniform(-5.0, 5.0), roll=rng.uniform(-5.0, 5.0),
                   az=rng.uniform(-30.0, 30.0), el=rng.uniform(-90.0, -40.0))
    band = "eo" if seed % 2 == 0 else "ir"
    png = rng.random() < 0.2
    count = int(rng.integers(1, 9))
    pix = _pixels(rng, count)
    ground = georeference(k, pose, pix[:, 0], pix[:, 1], LevelTerrain(ORIGIN, 1650.0))
    assert ground.valid.all()
    classes = [CLASSES[i] for i in rng.integers(0, len(CLASSES), count)]
    rendered = render_frame(k, pose, ground.enu, classes, band, rng,  # type: ignore[arg-type]
                            quality=int(rng.integers(60, 96)),
                            image_format="png" if png else "jpeg")
    payload = msgpack.packb(frame_payload(rendered, 1.7e9, seed, hfov, ORIGIN), use_bin_type=True)
    frame = decode(payload, Frame, 64 << 20)
    found = frame_detections(frame, BandDetector(), LevelTerrain(ORIGIN, 1650.0), PoseNoise(),
                             ORIGIN, max_pixels=W * H)
    truth = rendered.pixels
    b = found.blobs
    if len(b) == 0:
        return band, count, 0, 0
    dist = np.hypot(b.u[:, None] - truth[None, :, 0], b.v[:, None] - truth[None, :, 1])
    matched = int((dist.min(axis=0) <= MATCH_PX).sum())
    false = int((dist.min(axis=1) > MATCH_PX).sum())
    return band, count, matched, false


@pytest.fixture(scope="module")
def results() -> list[tuple[str, int, int, int]]:
    return [_case(seed) for seed in range(CASES)]


@pytest.mark.parametrize("band", ["eo", "ir"])
def test_recall_and_false_positives_over_random_poses(
        results: list[tuple[str, int, int, int]], band: str) -> None:
    rows = [r for r in results if r[0] == band]
    targets = sum(r[1] for r in rows)
    recall = sum(r[2] for r in rows) / targets
    false_per_frame = sum(r[3] for r in rows) / len(rows)
    print(f"{band}: {len(rows)} frames, {targets} targets, recall {recall:.3f}, "
          f"false positives per frame {false_per_frame:.2f}")
    assert recall >= {"eo": 0.95, "ir": 0.85}[band]
    assert false_per_frame <= 0.5

