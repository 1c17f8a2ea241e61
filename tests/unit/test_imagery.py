"""Imagery detection: decoding limits, detector recall on synthetic EO/IR frames, georeferencing.

Synthetic frames (1280x720 JPEG, quality 85): EO is mid-grey (128) with
Gaussian noise sigma 8 and a gentle gradient, with five 10-24 px rectangles,
each dark (50) or bright (210); IR is a cool background (70, noise sigma 6,
gradient) with five warm Gaussian blobs (amplitude 70-120, sigma 2.5-4 px).
Measured on 20 frames of each (seeded): recall 1.0 and 0 false positives per
frame, centre error below 1 px; the bounds below (recall >= 0.9, <= 1 false
positive per frame, centres within 2 px) leave room for other seeds.
"""

from __future__ import annotations

import math
import struct

import cv2
import numpy as np
import pytest

from hub.errors import PayloadError
from hub.geo import EnuFrame
from hub.ingest.camera import (
    FlatTerrain,
    Intrinsics,
    Pose,
    PoseNoise,
    ground_covariance,
    project,
)
from hub.ingest.imagery import (
    BandDetector,
    ContrastDetector,
    HeightPrior,
    HotSpotDetector,
    decode_frame,
    detect_frame,
    encoded_size,
    frame_detections,
    height_prior,
    to_geo_detections,
)
from hub.messages import Camera, Frame, Gimbal, Platform

W, H = 1280, 720
MAX_PIXELS = 4096 * 4096
ORIGIN = EnuFrame(8.0, 38.0, 0.0)
NADIR = Platform(lat=8.0, lon=38.0, alt=500.0, heading=0.0, pitch=0.0, roll=0.0)
TARGETS = 5
LOOK_DOWN = Gimbal(0.0, -90.0)


def _background(rng: np.random.Generator, level: float, sigma: float) -> np.ndarray:
    ramp = np.linspace(-10.0, 10.0, W)[None, :] + np.linspace(-6.0, 6.0, H)[:, None]
    return level + ramp + rng.normal(0.0, sigma, (H, W))


def _centres(rng: np.random.Generator, margin: int = 40) -> np.ndarray:
    """Draw target centres at least 60 px apart, clear of the image border."""
    points: list[np.ndarray] = []
    while len(points) < TARGETS:
        p = rng.uniform((margin, margin), (W - margin, H - margin))
        if all(np.hypot(*(p - q)) > 60.0 for q in points):
            points.append(p)
    return np.array(points)


def eo_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return an EO image with dark/bright rectangles and their true centres."""
    image = _background(rng, 128.0, 8.0)
    truth = []
    for cx, cy in _centres(rng):
        half_w, half_h = rng.uniform(5.0, 12.0, 2)
        x0, x1 = round(cx - half_w), round(cx + half_w)
        y0, y1 = round(cy - half_h), round(cy + half_h)
        image[y0:y1, x0:x1] = rng.choice([50.0, 210.0]) + rng.normal(0.0, 4.0, (y1 - y0, x1 - x0))
        truth.append(((x0 + x1) / 2.0, (y0 + y1) / 2.0))  # continuous pixel centre
    return np.clip(image, 0, 255).astype(np.uint8), np.array(truth)


def ir_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return an IR image with warm Gaussian blobs and their true centres."""
    image = _background(rng, 70.0, 6.0)
    truth = _centres(rng)
    u, v = np.arange(W) + 0.5, np.arange(H) + 0.5
    for cx, cy in truth:
        s, a = rng.uniform(2.5, 4.0), rng.uniform(70.0, 120.0)
        x0, x1, y0, y1 = int(cx) - 20, int(cx) + 20, int(cy) - 20, int(cy) + 20
        gx = np.exp(-0.5 * ((u[x0:x1] - cx) / s) ** 2)
        gy = np.exp(-0.5 * ((v[y0:y1] - cy) / s) ** 2)
        image[y0:y1, x0:x1] += a * gy[:, None] * gx[None, :]
    return np.clip(image, 0, 255).astype(np.uint8), truth


def jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def make_frame(data: bytes, band: str = "eo", width: int = W, height: int = H,
               platform: Platform = NADIR, gimbal: Gimbal = LOOK_DOWN,
               fmt: str = "jpeg") -> Frame:
    return Frame(ts=1.7e9, seq=1, band=band, format=fmt, data=data, width=width, height=height,
                 camera=Camera(hfov=60.0), platform=platform, gimbal=gimbal)


def _score(found: np.ndarray, truth: np.ndarray, radius: float = 6.0
           ) -> tuple[int, int, list[float]]:
    """Return (hits, false positives, centre errors of the hits) by nearest match."""
    if len(found) == 0:
        return 0, 0, []
    dist = np.hypot(*(found[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    nearest = dist.min(axis=0)
    hit = nearest <= radius
    false = int((dist.min(axis=1) > radius).sum())
    return int(hit.sum()), false, list(nearest[hit])


@pytest.mark.parametrize(("band", "make"), [("eo", eo_image), ("ir", ir_image)])
def test_recall_false_positives_and_centres_on_synthetic_frames(band: str, make: object) -> None:
    rng = np.random.default_rng(7 if band == "eo" else 11)
    hits = falses = 0
    errors: list[float] = []
    frames = 20
    for _ in range(frames):
        image, truth = make(rng)  # type: ignore[operator]
        blobs = detect_frame(make_frame(jpeg(image), band), BandDetector(), max_pixels=MAX_PIXELS)
        h, f, e = _score(np.stack([blobs.u, blobs.v], axis=1), truth)
        hits, falses, errors = hits + h, falses + f, errors + e
    assert hits / (frames * TARGETS) >= 0.9
    assert falses / frames <= 1.0
    assert max(errors) <= 2.0


def test_full_resolution_decode_finds_the_same_centres() -> None:
    image, truth = ir_image(np.random.default_rng(3))
    frame = make_frame(jpeg(image), "ir")
    half = detect_frame(frame, HotSpotDetector(), max_pixels=MAX_PIXELS, reduce=2)
    full = detect_frame(frame, HotSpotDetector(min_area=8), max_pixels=MAX_PIXELS, reduce=1)
    for blobs in (half, full):
        h, f, e = _score(np.stack([blobs.u, blobs.v], axis=1), truth)
        assert (h, f) == (TARGETS, 0) and max(e) <= 2.0


def test_flat_frame_gives_no_blobs() -> None:
    frame = make_frame(jpeg(np.full((H, W), 128, np.uint8)))
    assert len(detect_frame(frame, ContrastDetector(), max_pixels=MAX_PIXELS)) == 0


def test_declared_size_over_the_limit_is_refused_before_decoding() -> None:
    # The data is not even an image: refusal must come from the declared size alone.
    frame = make_frame(b"\x00" * 16, width=16_384, height=16_384)
    with pytest.raises(PayloadError, match="exceeds"):
        decode_frame(frame, max_pixels=MAX_PIXELS)


def test_small_jpeg_that_inflates_beyond_its_declared_size_is_refused() -> None:
    # A 20000x20000 all-grey JPEG: a few hundred kB that would decode to 400 Mpx.
    small = jpeg(np.full((8, 8), 128, np.uint8), quality=50)
    data = _patch_jpeg_size(small, 20_000, 20_000)
    assert encoded_size(data, "jpeg") == (20_000, 20_000)
    with pytest.raises(PayloadError, match="declares 64x64"):
        decode_frame(make_frame(data, width=64, height=64), max_pixels=MAX_PIXELS)


def test_png_header_size_is_checked_too() -> None:
    ok, buf = cv2.imencode(".png", np.zeros((40, 30), np.uint8))
    assert ok
    data = buf.tobytes()
    assert encoded_size(data, "png") == (30, 40)
    assert decode_frame(make_frame(data, width=30, height=40, fmt="png"),
                        max_pixels=MAX_PIXELS).shape == (20, 15)
    with pytest.raises(PayloadError, match="declares"):
        decode_frame(make_frame(data, width=30, height=30, fmt="png"), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\xff\xd8\xff\xe0\x00\x10JFIF",
                                  b"\x89PNG\r\n\x1a\n" + b"\x00" * 30])
def test_undecodable_data_is_refused_with_a_reason(data: bytes) -> None:
    fmt = "png" if data.startswith(b"\x89PNG") else "jpeg"
    with pytest.raises(PayloadError) as info:
        decode_frame(make_frame(data, fmt=fmt), max_pixels=MAX_PIXELS)
    assert info.value.reason


def test_truncated_jpeg_with_a_valid_header_is_refused() -> None:
    data = jpeg(np.full((H, W), 128, np.uint8))
    sof = data.index(b"\xff\xc0")
    with pytest.raises(PayloadError, match="decode"):
        decode_frame(make_frame(data[:sof + 40]), max_pixels=MAX_PIXELS)


def test_frame_looking_at_the_sky_is_refused() -> None:
    image, _ = ir_image(np.random.default_rng(5))
    frame = make_frame(jpeg(image), "ir", gimbal=Gimbal(0.0, 30.0))
    with pytest.raises(PayloadError, match="no ground"):
        frame_detections(frame, BandDetector(), FlatTerrain(), PoseNoise(), ORIGIN,
                         max_pixels=MAX_PIXELS)


def test_nadir_frame_georeferences_onto_the_camera_model() -> None:
    image, truth = ir_image(np.random.default_rng(9))
    frame = make_frame(jpeg(image), "ir")
    ground = frame_detections(frame, BandDetector(), FlatTerrain(), PoseNoise(), ORIGIN,
                              max_pixels=MAX_PIXELS)
    assert len(ground.blobs) == TARGETS
    fx = (W / 2.0) / math.tan(math.radians(30.0))
    gsd = 500.0 / fx  # metres per pixel at nadir
    # Nadir, heading north: image right is east, image up is north.
    expect_e = (truth[:, 0] - W / 2.0) * gsd
    expect_n = -(truth[:, 1] - H / 2.0) * gsd
    order = [int(np.argmin(np.hypot(ground.enu[:, 0] - e, ground.enu[:, 1] - n)))
             for e, n in zip(expect_e, expect_n, strict=True)]
    assert np.hypot(ground.enu[order, 0] - expect_e, ground.enu[order, 1] - expect_n).max() \
        <= 2.0 * gsd
    assert np.abs(ground.enu[:, 2]).max() < 1e-6
    k = Intrinsics.from_camera(frame.camera, W, H)
    pose = Pose.from_frame(frame, ORIGIN)
    expected_cov = ground_covariance(k, pose, ground.blobs.u, ground.blobs.v, FlatTerrain(),
                                     PoseNoise())
    np.testing.assert_allclose(ground.cov, expected_cov)
    geo = to_geo_detections(ground, ORIGIN)
    back = np.array(ORIGIN.to_enu([d.lat for d in geo], [d.lon for d in geo],
                                  [d.alt or 0.0 for d in geo])).T
    np.testing.assert_allclose(back, ground.enu, atol=1e-3)


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0 header of a baseline JPEG to claim another size."""
    sof = data.index(b"\xff\xc0")
    return data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


GATE = math.sqrt(13.8)  # the tracker's default gate, in sigmas
OBLIQUE = Platform(lat=8.0, lon=38.0, alt=800.0, heading=0.0, pitch=0.0, roll=0.0)
LOOK_45 = Gimbal(0.0, -45.0)


def _warm_spot(u: float, v: float) -> np.ndarray:
    """An IR image with one warm Gaussian blob centred on continuous pixel ``(u, v)``."""
    x, y = np.arange(W) + 0.5, np.arange(H) + 0.5
    blob = 100.0 * np.exp(-0.5 * (((x[None, :] - u) / 3.0) ** 2 + ((y[:, None] - v) / 3.0) ** 2))
    return np.clip(70.0 + blob + np.random.default_rng(3).normal(0.0, 4.0, (H, W)), 0,
                   255).astype(np.uint8)


def _mahalanobis(z: np.ndarray, cov: np.ndarray, truth: np.ndarray) -> float:
    d = truth - z
    return float(np.sqrt(d @ np.linalg.solve(cov, d)))


def test_height_priors_of_ground_airborne_and_unknown_objects() -> None:
    for cls in ("person", "vehicle", "vessel"):
        assert height_prior(cls, 300.0) == HeightPrior()
    assert height_prior("uav", 300.0) == HeightPrior(150.0, pytest.approx(300.0 / math.sqrt(12)))
    assert height_prior("unknown", 300.0) == HeightPrior(0.0, 100.0)
    assert height_prior("unknown", 0.0) == HeightPrior()


def test_airborne_object_seen_obliquely_falls_inside_its_measurement_gate() -> None:
    # 800 m up, looking north 45 degrees down: the optical axis meets the ground
    # 800 m north; a UAV 200 m up on that axis is 600 m north, and its ray goes
    # on to the ground 200 m beyond it (1 / tan 45 = 1 m per metre of height).
    truth = np.array([0.0, 600.0, 200.0])
    frame = make_frame(b"", "ir", platform=OBLIQUE, gimbal=LOOK_45)
    pose = Pose.from_frame(frame, ORIGIN)
    u, v, _ = project(Intrinsics.from_camera(frame.camera, W, H), pose, truth)
    assert (float(u), float(v)) == pytest.approx((W / 2.0, H / 2.0), abs=1e-6)
    frame = make_frame(jpeg(_warm_spot(float(u), float(v))), "ir", platform=OBLIQUE,
                       gimbal=LOOK_45)

    def detect(height: HeightPrior) -> tuple[np.ndarray, np.ndarray]:
        found = frame_detections(frame, BandDetector(), FlatTerrain(), PoseNoise(), ORIGIN,
                                 max_pixels=MAX_PIXELS, height=height)
        assert len(found.blobs) == 1
        return found.enu[0], found.cov[0]

    on_ground, ground_cov = detect(height_prior("vehicle", 300.0))
    assert on_ground[:2] == pytest.approx((0.0, 800.0), abs=3.0)
    assert _mahalanobis(on_ground[:2], ground_cov, truth[:2]) > 10.0  # a false track's start
    unknown, cov = detect(height_prior("unknown", 300.0))
    # The mean stays on the ground; the covariance grows by 100² along the line of sight.
    np.testing.assert_allclose(unknown, on_ground)
    # (to the blob centroid's fraction of a pixel off the optical axis)
    np.testing.assert_allclose(cov, ground_cov + np.diag([0.0, 100.0**2]), atol=10.0)
    assert 1.5 < _mahalanobis(unknown[:2], cov, truth[:2]) < GATE
    uav, cov = detect(height_prior("uav", 300.0))  # 150 m up the ray, sigma 87 m
    assert uav == pytest.approx(on_ground + np.array([0.0, -150.0, 150.0]), abs=0.5)
    assert _mahalanobis(uav[:2], cov, truth[:2]) < 1.0


def test_height_prior_widens_a_nadir_view_only_away_from_its_centre() -> None:
    image, _ = ir_image(np.random.default_rng(9))
    frame = make_frame(jpeg(image), "ir")

    def detect(height: HeightPrior) -> tuple[np.ndarray, np.ndarray]:
        found = frame_detections(frame, BandDetector(), FlatTerrain(), PoseNoise(), ORIGIN,
                                 max_pixels=MAX_PIXELS, height=height)
        return found.enu, found.cov

    enu, cov = detect(HeightPrior())
    lifted, wider = detect(height_prior("unknown", 300.0))
    np.testing.assert_allclose(lifted, enu)
    # Straight down from 500 m, a point r metres off nadir rises r / 500 m a metre:
    # the covariance grows by (100 r / 500)² along the radius, nothing across it.
    r = np.hypot(enu[:, 0], enu[:, 1])
    grown = wider - cov
    np.testing.assert_allclose(np.trace(grown, axis1=1, axis2=2), (100.0 * r / 500.0) ** 2,
                               rtol=1e-9)
    across = np.stack([-enu[:, 1], enu[:, 0]], axis=1) / r[:, None]
    np.testing.assert_allclose(np.einsum("ni,nij,nj->n", across, grown, across), 0.0, atol=1e-6)
