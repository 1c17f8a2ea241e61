"""Detection batches to Scans: geo projection, unbiased polar conversion, classes."""

import numpy as np

from hub.geo import EnuFrame
from hub.ingest.detections import batch_to_scan, unbiased_conversion
from hub.messages import CLASSES, DetectionBatch, GeoDetection, PolarDetection, SensorPosition

FRAME = EnuFrame(-1.2921, 36.8219, 1650.0)
T0 = 1.8e9


def test_geo_detections_with_sigma_and_cov_and_class_mapping() -> None:
    e, n, _ = FRAME.to_enu(-1.28, 36.83, 1650.0)
    batch = DetectionBatch(ts=T0, seq=1, detections=[
        GeoDetection(lat=-1.28, lon=36.83, sigma=5.0, cls="vehicle", conf=0.7),
        GeoDetection(lat=-1.28, lon=36.83, cov=(4.0, 1.0, 9.0), cls="tank"),
    ])
    scan = batch_to_scan(batch, 2, FRAME)
    assert scan.t == T0 and scan.sensor == 2 and len(scan) == 2
    np.testing.assert_allclose(scan.z, [[float(e), float(n)]] * 2, atol=0.01)
    np.testing.assert_allclose(scan.R[0], 25.0 * np.eye(2))
    np.testing.assert_allclose(scan.R[1], [[4.0, 1.0], [1.0, 9.0]])
    assert scan.cls.tolist() == [CLASSES.index("vehicle"), CLASSES.index("unknown")]
    np.testing.assert_allclose(scan.conf, [0.7, 1.0])


def test_polar_detection_from_a_sensor_geometry_and_slant_range() -> None:
    sensor = SensorPosition(lat=-1.2921, lon=36.8219, alt=1650.0)
    batch = DetectionBatch(ts=T0, seq=1, sensor=sensor, detections=[
        PolarDetection(range=1000.0, bearing=90.0, sigma_range=1.0, sigma_bearing=0.01),
        PolarDetection(range=2000.0, bearing=0.0, elevation=60.0, sigma_range=4.0,
                       sigma_bearing=0.01),
        GeoDetection(lat=-1.2921, lon=36.8219, sigma=1.0),
    ])
    scan = batch_to_scan(batch, 0, FRAME)
    np.testing.assert_allclose(scan.z[0], [1000.0, 0.0], atol=0.05)
    np.testing.assert_allclose(scan.z[1], [0.0, 1000.0], atol=0.05)  # 2000 m · cos 60°
    np.testing.assert_allclose(scan.z[2], [0.0, 0.0], atol=0.01)
    # Along the range axis the variance is σr² (ground: (σr cos el)²).
    assert abs(scan.R[0, 0, 0] - 1.0) < 0.01 and abs(scan.R[1, 1, 1] - 4.0) < 0.01


def test_small_and_large_geo_batches_project_alike() -> None:
    # Up to a few detections go point by point, more in one vectorised call.
    rng = np.random.default_rng(7)
    dets = [GeoDetection(lat=-1.2921 + d_lat, lon=36.8219 + d_lon, alt=alt, sigma=5.0)
            for d_lat, d_lon, alt in zip(rng.uniform(-0.05, 0.05, 9), rng.uniform(-0.05, 0.05, 9),
                                         rng.uniform(1500.0, 2000.0, 9), strict=True)]
    large = batch_to_scan(DetectionBatch(ts=T0, seq=1, detections=dets), 0, FRAME)
    for k in (1, 2, 3):
        small = batch_to_scan(DetectionBatch(ts=T0, seq=1, detections=dets[:k]), 0, FRAME)
        np.testing.assert_allclose(small.z, large.z[:k], rtol=0.0, atol=1e-6)
        np.testing.assert_allclose(small.R, large.R[:k])


def test_empty_batch_gives_empty_scan() -> None:
    scan = batch_to_scan(DetectionBatch(ts=T0, seq=0, detections=[]), 1, FRAME)
    assert len(scan) == 0 and scan.R.shape == (0, 2, 2) and scan.cls.shape == (0,)


def test_unbiased_conversion_by_monte_carlo() -> None:
    # 20 km, σb = 2°, σr = 20 m: the plain conversion's bias r(1 - λ) is 12 m.
    rng = np.random.default_rng(7)
    k = 200_000
    r_true, b_true = 20_000.0, np.radians(30.0)
    sr, sb = 20.0, np.radians(2.0)
    r_meas = r_true + rng.normal(scale=sr, size=k)
    b_meas = b_true + rng.normal(scale=sb, size=k)
    z, cov = unbiased_conversion(r_meas, b_meas, np.full(k, sr), np.full(k, sb))
    truth = np.array([r_true * np.sin(b_true), r_true * np.cos(b_true)])
    err = z - truth
    # Mean error within 4 standard errors of zero (σ ≈ 700 m across range).
    stderr = err.std(axis=0) / np.sqrt(k)
    assert np.all(np.abs(err.mean(axis=0)) < 4 * stderr)
    plain_bias = np.array([np.sin(b_meas), np.cos(b_meas)]).T * r_meas[:, None] - truth
    assert np.linalg.norm(plain_bias.mean(axis=0)) > 10.0  # so the test can tell
    # Covariance consistency: the average NEES is 2 (2-dof) within 1.5 %. (The mean
    # of R itself is no reference: R turns with the measured bearing, so its mean
    # leaks cross-range variance into the range axis.)
    nees = np.einsum("ki,kij,kj->k", err, np.linalg.inv(cov), err)
    assert abs(nees.mean() - 2.0) < 0.03
    assert np.all(np.linalg.eigvalsh(cov) > 0.0)
