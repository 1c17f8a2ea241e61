import math

import cv2
import numpy as np
import pytest

from hub.geo import EnuFrame
from hub.ingest.camera import FlatTerrain, Intrinsics, Pose, PoseNoise, georeference, project
from hub.messages import Camera, Frame, decode
from simulators.render import (
    EO_BRIGHT,
    EO_DARK,
    LOOKS,
    RenderedFrame,
    frame_message,
    noisy_pose,
    render_frame,
)

W, H, HFOV = 1280, 720, 60.0
K = Intrinsics.from_camera(Camera(hfov=HFOV), W, H)
OBLIQUE = Pose(-50.0, -400.0, 350.0, heading=20.0, pitch=2.0, roll=-3.0, az=-10.0, el=-40.0)
QUIET = PoseNoise(sigma_heading=0.0, sigma_pitch=0.0, sigma_roll=0.0, sigma_az=0.0,
                  sigma_el=0.0, sigma_alt=0.0)


def _image(frame: RenderedFrame) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None and image.shape == (frame.height, frame.width)
    return image.astype(np.float64)


def _targets_in_view(n: int, seed: int) -> np.ndarray:
    """Ground points spread over the oblique view, at least 60 px apart in the image."""
    rng = np.random.default_rng(seed)
    grid_u, grid_v = np.meshgrid(np.linspace(150, W - 150, 5), np.linspace(120, H - 120, 4))
    u = grid_u.ravel()[:n] + rng.uniform(-10, 10, n)
    v = grid_v.ravel()[:n] + rng.uniform(-10, 10, n)
    hit = georeference(K, OBLIQUE, u, v, FlatTerrain(0.0))
    assert hit.valid.all()
    return hit.enu


def _blob_centre(image: np.ndarray, u: float, v: float, band: str,
                 half: int = 10) -> tuple[float, float, float]:
    """Centroid (continuous pixels) and peak contrast of the blob near ``(u, v)``."""
    x0, y0 = int(u) - half, int(v) - half
    window = image[y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1]
    contrast = window - np.median(window)
    if band == "eo":
        contrast = np.abs(contrast)
    weight = np.where(contrast > 0.5 * contrast.max(), contrast, 0.0)
    ys, xs = np.mgrid[0:window.shape[0], 0:window.shape[1]]
    cu = x0 + 0.5 + float((weight * xs).sum() / weight.sum())
    cv = y0 + 0.5 + float((weight * ys).sum() / weight.sum())
    return cu, cv, float(contrast.max())


@pytest.mark.parametrize("band", ["eo", "ir"])
def test_targets_land_where_the_camera_model_projects_them(band: str) -> None:
    targets = _targets_in_view(12, seed=3)
    classes = ["person", "vehicle", "uav"] * 4
    frame = render_frame(K, OBLIQUE, targets, classes, band, np.random.default_rng(7))
    image = _image(frame)
    expected = project(K, OBLIQUE, targets)
    assert frame.drawn.all()
    np.testing.assert_allclose(frame.pixels, np.stack([expected.u, expected.v], -1))
    for u, v in frame.pixels:
        cu, cv, peak = _blob_centre(image, u, v, band)
        assert math.hypot(cu - u, cv - v) < 0.6, (u, v, cu, cv)  # measured max 0.4
        assert peak > 50.0


def test_ir_targets_are_warmer_than_the_background() -> None:
    targets = _targets_in_view(12, seed=4)
    frame = render_frame(K, OBLIQUE, targets, ["person", "vehicle"] * 6, "ir",
                         np.random.default_rng(1))
    image = _image(frame)
    background = np.median(image)
    assert abs(background - LOOKS["ir"].mean) < 5.0
    for u, v in frame.pixels:
        core = image[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2]
        assert core.mean() > background + 50.0


def test_eo_targets_are_dark_or_bright_shapes_on_mid_grey() -> None:
    targets = _targets_in_view(12, seed=5)
    frame = render_frame(K, OBLIQUE, targets, ["vehicle"] * 12, "eo", np.random.default_rng(2))
    image = _image(frame)
    assert abs(np.median(image) - LOOKS["eo"].mean) < 5.0
    centres = np.array([image[int(v), int(u)] for u, v in frame.pixels])
    near = np.minimum(np.abs(centres - EO_DARK), np.abs(centres - EO_BRIGHT))
    assert near.max() < 15.0
    assert (centres < 80).any() and (centres > 180).any()  # both polarities occur


def _area(altitude: float, cls: str) -> int:
    """Pixels of a nadir EO target that differ clearly from the background."""
    pose = Pose(0.0, 0.0, altitude, el=-90.0)
    frame = render_frame(K, pose, np.zeros((1, 3)), [cls], "eo", np.random.default_rng(0),
                         image_format="png")
    image = _image(frame)
    return int((np.abs(image - LOOKS["eo"].mean) > 70.0).sum())


def test_target_size_follows_class_and_ground_sample_distance() -> None:
    areas = [_area(alt, "vehicle") for alt in (800.0, 400.0, 200.0, 100.0)]
    assert areas == sorted(areas) and len(set(areas)) == 4
    # At 200 m the pixel is 200 / fx metres: a 2 x 4.5 m ellipse covers pi/4 * w * l / gsd^2.
    gsd = 200.0 / K.fx
    expected = math.pi / 4.0 * 2.0 * 4.5 / gsd**2
    assert areas[2] == pytest.approx(expected, rel=0.15)
    assert _area(200.0, "person") < _area(200.0, "vehicle")
    # Far away a target keeps the minimum size (4 px across) instead of vanishing.
    assert 6 <= _area(5_000.0, "person") <= 25


def test_a_target_outside_the_view_is_not_drawn() -> None:
    behind_and_aside = np.array([[5_000.0, 0.0, 0.0], [0.0, -2_000.0, 0.0]])
    empty = render_frame(K, OBLIQUE, np.zeros((0, 3)), [], "ir", np.random.default_rng(9))
    outside = render_frame(K, OBLIQUE, behind_and_aside, ["vehicle", "person"], "ir",
                           np.random.default_rng(9))
    assert not outside.drawn.any()
    assert outside.data == empty.data


@pytest.mark.parametrize("band", ["eo", "ir"])
def test_rendering_is_deterministic_with_a_seed(band: str) -> None:
    targets = _targets_in_view(5, seed=1)
    a, b, c = (render_frame(K, OBLIQUE, targets, ["person"] * 5, band,
                            np.random.default_rng(seed)) for seed in (11, 11, 12))
    assert a.data == b.data and a.reported.heading == b.reported.heading
    assert a.data != c.data


def test_frame_message_decodes_as_a_frame_with_the_reported_pose() -> None:
    enu = EnuFrame(52.0, 5.0, 10.0)
    rendered = render_frame(K, OBLIQUE, _targets_in_view(3, seed=2), ["uav"] * 3, "eo",
                            np.random.default_rng(4))
    topic, payload = frame_message("nld-uav-1", rendered, 1.7e9, 42, HFOV, enu)
    assert topic == "sensors/nld-uav-1/frames"
    frame = decode(payload, Frame, 4_000_000)
    assert (frame.ts, frame.seq, frame.band, frame.format) == (1.7e9, 42, "eo", "jpeg")
    assert (frame.width, frame.height, frame.camera.hfov) == (W, H, HFOV)
    assert frame.data == rendered.data
    back = Pose.from_frame(frame, enu)
    reported = rendered.reported
    np.testing.assert_allclose(back.position(), reported.position(), atol=1e-6)
    for name in ("pitch", "roll", "el"):
        assert getattr(back, name) == pytest.approx(getattr(reported, name), abs=1e-9)
    for name in ("heading", "az"):
        turn = (getattr(back, name) - getattr(reported, name)) % 360.0
        assert min(turn, 360.0 - turn) < 1e-9


def test_png_frames_decode_losslessly() -> None:
    frame = render_frame(K, OBLIQUE, np.zeros((0, 3)), [], "eo", np.random.default_rng(3),
                         image_format="png")
    assert frame.data.startswith(b"\x89PNG")
    assert 100.0 < np.median(_image(frame)) < 156.0


def test_reported_pose_errors_have_the_configured_sigmas() -> None:
    noise = PoseNoise(sigma_heading=0.8, sigma_pitch=0.3, sigma_roll=0.2, sigma_az=0.4,
                      sigma_el=0.1, sigma_alt=4.0)
    rng = np.random.default_rng(5)
    draws = [noisy_pose(OBLIQUE, noise, rng) for _ in range(4_000)]
    for name, sigma in (("heading", 0.8), ("pitch", 0.3), ("roll", 0.2), ("az", 0.4),
                        ("el", 0.1), ("up", 4.0)):
        error = np.array([getattr(p, name) for p in draws]) - getattr(OBLIQUE, name)
        # 4,000 draws: the sample sigma is within ~2.2 % (1 s.d.), the mean within 1.6 % sigma.
        assert np.std(error) == pytest.approx(sigma, rel=0.08), name
        assert abs(np.mean(error)) < 0.06 * sigma, name
    east = np.array([p.east for p in draws])
    assert (east == OBLIQUE.east).all()  # only attitude and altitude are noisy


def test_render_reports_a_noisy_pose_and_none_without_noise() -> None:
    noisy = render_frame(K, OBLIQUE, np.zeros((0, 3)), [], "ir", np.random.default_rng(1))
    assert noisy.reported.heading != OBLIQUE.heading
    exact = render_frame(K, OBLIQUE, np.zeros((0, 3)), [], "ir", np.random.default_rng(1),
                         pose_noise=QUIET)
    for name in ("east", "north", "up", "heading", "pitch", "roll", "az", "el"):
        assert getattr(exact.reported, name) == getattr(OBLIQUE, name)
