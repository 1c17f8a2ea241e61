import numpy as np
import pymap3d

from hub.geo import EnuFrame, ecef_to_geodetic, geodetic_to_ecef


def test_enu_matches_pymap3d_over_a_mission_area() -> None:
    rng = np.random.default_rng(1)
    frame = EnuFrame(-1.2921, 36.8219, 1650.0)
    lat = -1.2921 + rng.uniform(-0.5, 0.5, 2000)
    lon = 36.8219 + rng.uniform(-0.5, 0.5, 2000)
    alt = rng.uniform(0.0, 5000.0, 2000)
    east, north, up = frame.to_enu(lat, lon, alt)
    ref = pymap3d.geodetic2enu(lat, lon, alt, -1.2921, 36.8219, 1650.0)
    assert np.abs(east - ref[0]).max() < 1e-6
    assert np.abs(north - ref[1]).max() < 1e-6
    assert np.abs(up - ref[2]).max() < 1e-6


def test_enu_round_trip_is_exact_to_a_millimetre() -> None:
    rng = np.random.default_rng(2)
    frame = EnuFrame(52.0, 4.5, 0.0)
    east, north, up = (rng.uniform(-50_000, 50_000, 500) for _ in range(3))
    lat, lon, alt = frame.to_geodetic(east, north, up)
    back = frame.to_enu(lat, lon, alt)
    assert np.abs(np.stack(back) - np.stack([east, north, up])).max() < 1e-3


def test_ecef_inverse_near_the_poles() -> None:
    lat = np.array([89.9, -89.99, 0.0, 45.0])
    lon = np.array([10.0, -170.0, 179.9, -45.0])
    alt = np.array([100.0, 3000.0, -50.0, 10_000.0])
    back = ecef_to_geodetic(*geodetic_to_ecef(lat, lon, alt))
    assert np.allclose(back[0], lat, atol=1e-9)
    assert np.allclose(back[1], lon, atol=1e-9)
    assert np.allclose(back[2], alt, atol=1e-4)


def test_one_degree_of_latitude_is_about_110_km() -> None:
    frame = EnuFrame(0.0, 0.0)
    _, north, _ = frame.to_enu(1.0, 0.0, 0.0)
    assert 110_500 < north < 110_700


def test_point_to_enu_agrees_with_the_vectorised_form() -> None:
    rng = np.random.default_rng(3)
    frame = EnuFrame(-1.2921, 36.8219, 1650.0)
    lat = -1.2921 + rng.uniform(-0.5, 0.5, 50)
    lon = 36.8219 + rng.uniform(-0.5, 0.5, 50)
    alt = rng.uniform(0.0, 5000.0, 50)
    ref = np.stack(frame.to_enu(lat, lon, alt), axis=1)
    points = np.array([frame.point_to_enu(*p) for p in zip(lat.tolist(), lon.tolist(),
                                                           alt.tolist(), strict=True)])
    assert np.abs(points - ref).max() < 1e-6


def test_the_one_step_inverse_is_within_micrometres_of_a_converged_one() -> None:
    # One Bowring step (hub.geo.ecef_to_geodetic) against pymap3d's iterated
    # inverse, 200 km around origins where the step's error is largest.
    rng = np.random.default_rng(3)
    for lat0 in (-1.3, 45.0, 70.0):
        frame = EnuFrame(lat0, 36.8, 1600.0)
        east, north = (rng.uniform(-200_000, 200_000, 2000) for _ in range(2))
        up = rng.uniform(-3000.0, 9000.0, 2000)
        lat, lon, alt = frame.to_geodetic(east, north, up)
        ref = pymap3d.enu2geodetic(east, north, up, lat0, 36.8, 1600.0)
        metres_per_degree = 111_000.0
        assert np.abs(lat - ref[0]).max() * metres_per_degree < 1e-5
        assert np.abs(lon - ref[1]).max() * metres_per_degree < 1e-5
        assert np.abs(alt - ref[2]).max() < 1e-5
