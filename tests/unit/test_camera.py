import math

import numpy as np
import pytest
from scipy.stats import chi2

from hub.geo import EnuFrame
from hub.ingest.camera import (
    FlatTerrain,
    Intrinsics,
    LevelTerrain,
    Pose,
    PoseNoise,
    georeference,
    ground_covariance,
    project,
    rise,
)
from hub.messages import Camera, Frame, Gimbal, Platform

W, H, HFOV = 1280, 720, 60.0
K = Intrinsics.from_camera(Camera(hfov=HFOV), W, H)
GROUND = FlatTerrain(0.0)
HALF = math.tan(math.radians(HFOV / 2.0))


def _hit(pose: Pose, u: float, v: float) -> np.ndarray:
    hit = georeference(K, pose, u, v, GROUND)
    assert bool(hit.valid)
    return hit.enu


def test_intrinsics_from_hfov_and_from_focal_lengths() -> None:
    assert K.fx == pytest.approx(640.0 / HALF) and K.fy == K.fx
    assert (K.cx, K.cy) == (640.0, 360.0)
    explicit = Intrinsics.from_camera(Camera(fx=900.0, fy=910.0, cx=600.0, cy=350.0), W, H)
    assert (explicit.fx, explicit.fy, explicit.cx, explicit.cy) == (900.0, 910.0, 600.0, 350.0)


def test_nadir_centre_pixel_lands_under_the_platform() -> None:
    east, north, up = _hit(Pose(120.0, -40.0, 800.0, el=-90.0), 640.0, 360.0)
    assert (east, north, up) == pytest.approx((120.0, -40.0, 0.0), abs=1e-9)


def test_nadir_image_top_is_the_nose_and_right_edge_is_h_tan_half_fov() -> None:
    h = 1000.0
    top = _hit(Pose(0.0, 0.0, h, el=-90.0), 640.0, 0.0)
    assert top[1] > 300.0 and abs(top[0]) < 1e-9  # heading 0: the nose is north
    right = _hit(Pose(0.0, 0.0, h, el=-90.0), float(W), 360.0)
    assert right[:2] == pytest.approx((h * HALF, 0.0), abs=1e-9)


def test_heading_90_turns_the_right_edge_to_the_south() -> None:
    h = 1000.0
    right = _hit(Pose(0.0, 0.0, h, heading=90.0, el=-90.0), float(W), 360.0)
    assert right[:2] == pytest.approx((0.0, -h * HALF), abs=1e-9)
    top = _hit(Pose(0.0, 0.0, h, heading=90.0, el=-90.0), 640.0, 0.0)
    assert top[0] > 300.0 and abs(top[1]) < 1e-9


def test_gimbal_azimuth_turns_right_and_elevation_down() -> None:
    centre = _hit(Pose(0.0, 0.0, 1000.0, az=90.0, el=-30.0), 640.0, 360.0)
    assert centre[:2] == pytest.approx((1000.0 / math.tan(math.radians(30.0)), 0.0), abs=1e-6)


def test_pitch_up_moves_a_nadir_view_ahead_and_roll_right_moves_it_left() -> None:
    ahead = _hit(Pose(0.0, 0.0, 1000.0, pitch=10.0, el=-90.0), 640.0, 360.0)
    assert ahead[:2] == pytest.approx((0.0, 1000.0 * math.tan(math.radians(10.0))), abs=1e-6)
    left = _hit(Pose(0.0, 0.0, 1000.0, roll=10.0, el=-90.0), 640.0, 360.0)
    assert left[:2] == pytest.approx((-1000.0 * math.tan(math.radians(10.0)), 0.0), abs=1e-6)


def test_horizon_and_sky_pixels_do_not_hit_the_ground() -> None:
    u = np.array([0.0, 640.0, 1280.0, 640.0, 640.0])
    v = np.array([360.0, 360.0, 360.0, 0.0, 720.0])  # el = 0: centre row is the horizon
    hit = georeference(K, Pose(0.0, 0.0, 500.0), u, v, GROUND)
    assert hit.valid.tolist() == [False, False, False, False, True]
    assert np.isnan(hit.enu[:4]).all() and np.isfinite(hit.enu[4]).all()


def test_ground_beyond_max_range_is_reported_not_returned() -> None:
    pose = Pose(0.0, 0.0, 100.0, el=-1.0)  # meets the ground about 5.7 km out
    assert not bool(georeference(K, pose, 640.0, 360.0, GROUND, max_range=5_000.0).valid)
    assert bool(georeference(K, pose, 640.0, 360.0, GROUND, max_range=6_000.0).valid)


def test_points_behind_the_camera_do_not_project() -> None:
    px = project(K, Pose(0.0, 0.0, 1000.0, el=-30.0), np.array([[0.0, -3000.0, 0.0],
                                                                   [0.0, 500.0, 0.0]]))
    assert px.valid.tolist() == [False, True]
    assert np.isnan(px.u[0]) and np.isnan(px.v[0])


def _random_poses(rng: np.random.Generator, n: int) -> Pose:
    return Pose(rng.uniform(-5_000, 5_000, n), rng.uniform(-5_000, 5_000, n),
                rng.uniform(100, 3_000, n), rng.uniform(-180, 180, n),
                rng.uniform(-20, 20, n), rng.uniform(-30, 30, n),
                rng.uniform(-180, 180, n), rng.uniform(-90, -15, n))


def test_ground_pixel_ground_round_trip_over_random_poses() -> None:
    rng = np.random.default_rng(7)
    n = 5_000
    pose = _random_poses(rng, n)
    ground = FlatTerrain(rng.uniform(-50, 50))
    seed = georeference(K, pose, rng.uniform(0, W, n), rng.uniform(0, H, n), ground)
    keep = seed.valid
    assert keep.sum() >= 1_000
    points = seed.enu[keep]  # ground points known to be in view
    sub = Pose(*(np.asarray(getattr(pose, f))[keep] for f in
                 ("east", "north", "up", "heading", "pitch", "roll", "az", "el")))
    px = project(K, sub, points)
    assert px.valid.all() and K.contains(px.u, px.v).all()
    back = georeference(K, sub, px.u, px.v, ground)
    assert back.valid.all()
    assert np.abs(back.enu - points).max() < 1e-6


def test_level_terrain_follows_earth_curvature_and_pose_from_frame_round_trips() -> None:
    enu = EnuFrame(-1.29, 36.82, 1650.0)
    terrain = LevelTerrain(enu, 1600.0)
    frame = Frame(ts=0.0, seq=0, band="eo", format="jpeg", data=b"", width=W, height=H,
                  camera=Camera(hfov=HFOV),
                  platform=Platform(lat=-1.1, lon=37.0, alt=2600.0, heading=30.0,
                                    pitch=2.0, roll=-3.0),
                  gimbal=Gimbal(az=20.0, el=-50.0))
    pose = Pose.from_frame(frame, enu)
    hit = georeference(K, pose, np.array([100.0, 640.0, 1200.0]),
                       np.array([650.0, 360.0, 500.0]), terrain)
    assert hit.valid.all()
    _, _, alt = enu.to_geodetic(*hit.enu.T)
    assert np.abs(alt - 1600.0).max() < 1e-3
    px = project(K, pose, hit.enu)
    assert np.allclose(px.u, [100.0, 640.0, 1200.0], atol=1e-6)
    # ~30 km from the origin the local vertical leans 0.27 degrees: ignoring it
    # would move a ground point by metres, so `level` must not be the identity.
    assert np.abs(pose.level - np.eye(3)).max() > 1e-3


def test_propagated_covariance_is_consistent_with_sampled_errors() -> None:
    """Chi-square: normalised squared errors of noisy georeferencing follow chi2(2)."""
    rng = np.random.default_rng(11)
    n = 4_000
    noise = PoseNoise(sigma_px=2.0, sigma_heading=0.5, sigma_pitch=0.3, sigma_roll=0.3,
                      sigma_az=0.3, sigma_el=0.3, sigma_alt=5.0)
    truth = Pose(np.zeros(n), np.zeros(n), rng.uniform(200, 2_000, n), rng.uniform(-180, 180, n),
                 rng.uniform(-5, 5, n), rng.uniform(-5, 5, n), rng.uniform(-180, 180, n),
                 rng.uniform(-90, -45, n))
    u, v = rng.uniform(0, W, n), rng.uniform(0, H, n)
    true_points = georeference(K, truth, u, v, GROUND)
    angles = ("heading", "pitch", "roll", "az", "el")
    reported = Pose(truth.east, truth.north,
                    np.asarray(truth.up) + rng.normal(0, noise.sigma_alt, n),
                    *(np.asarray(getattr(truth, a)) +
                      rng.normal(0, getattr(noise, f"sigma_{a}"), n) for a in angles))
    u_m, v_m = u + rng.normal(0, noise.sigma_px, n), v + rng.normal(0, noise.sigma_px, n)
    measured = georeference(K, reported, u_m, v_m, GROUND)
    cov = ground_covariance(K, reported, u_m, v_m, GROUND, noise)
    ok = true_points.valid & measured.valid & np.isfinite(cov).all(axis=(-1, -2))
    assert ok.mean() > 0.99
    err = (measured.enu - true_points.enu)[ok, :2]
    nees = np.einsum("ni,nij,nj->n", err, np.linalg.inv(cov[ok]), err)
    print(f"NEES mean {nees.mean():.3f}, within chi2 95%: {(nees < chi2.ppf(0.95, 2)).mean():.4f}")
    assert abs(nees.mean() - 2.0) < 0.12  # 4 sigma of the mean of 4,000 chi2(2)
    assert abs((nees < chi2.ppf(0.95, 2)).mean() - 0.95) < 0.015


class _Slope:
    """A tilted plane: the simplest terrain that needs the fixed-point iteration."""

    def height(self, east: np.ndarray, north: np.ndarray) -> np.ndarray:
        return 20.0 + 0.05 * east - 0.03 * north


def test_intersection_iterates_onto_a_sloped_terrain() -> None:
    rng = np.random.default_rng(3)
    n = 1_000
    pose = Pose(0.0, 0.0, 1_500.0, heading=rng.uniform(-180, 180, n), az=rng.uniform(-180, 180, n),
                el=rng.uniform(-90, -40, n))
    hit = georeference(K, pose, rng.uniform(0, W, n), rng.uniform(0, H, n), _Slope())
    assert hit.valid.all()
    east, north, up = hit.enu.T
    assert np.abs(up - _Slope().height(east, north)).max() < 1e-3


def test_nadir_covariance_matches_closed_form() -> None:
    h, pose = 1_000.0, Pose(0.0, 0.0, 1_000.0, el=-90.0)
    pixel_only = ground_covariance(K, pose, 640.0, 360.0, GROUND, PoseNoise(2.0, 0, 0, 0, 0, 0, 0))
    assert pixel_only == pytest.approx(np.diag([(h / K.fx * 2.0) ** 2] * 2), rel=1e-9)
    alt_only = ground_covariance(K, pose, float(W), 360.0, GROUND,
                                 PoseNoise(0, 0, 0, 0, 0, 0, sigma_alt=10.0))
    assert alt_only == pytest.approx(np.diag([(HALF * 10.0) ** 2, 0.0]), abs=1e-9)


def test_rise_moves_a_ground_point_up_its_ray() -> None:
    # Looking north 45 degrees down from 800 m: the centre ray meets the ground
    # 800 m north and climbs back towards the camera one metre south per metre up.
    pose = Pose(0.0, 0.0, 800.0, el=-45.0)
    ground = _hit(pose, 640.0, 360.0)
    assert rise(pose, ground) == pytest.approx((0.0, -1.0), abs=1e-9)
    # Any ray: the point h up it is where the ray meets a plane h up.
    tilted = Pose(30.0, -50.0, 700.0, heading=33.0, pitch=2.0, roll=-3.0, az=20.0, el=-35.0)
    u, v = np.array([100.0, 640.0, 1200.0]), np.array([650.0, 360.0, 80.0])
    low = georeference(K, tilted, u, v, GROUND).enu
    high = georeference(K, tilted, u, v, FlatTerrain(150.0)).enu
    np.testing.assert_allclose(high[:, :2], low[:, :2] + 150.0 * rise(tilted, low), atol=1e-9)
    assert rise(Pose(5.0, 5.0, 900.0, el=-90.0), _hit(Pose(5.0, 5.0, 900.0, el=-90.0), 640.0,
                                                      360.0)) == pytest.approx((0.0, 0.0))
