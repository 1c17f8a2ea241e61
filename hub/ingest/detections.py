"""Turn a decoded detection batch into a Scan: positions and covariances in mission ENU.

Geo detections are projected into the ENU frame at their own height (the
origin's when they give none: projecting a point 1.6 km below its true
height would move it metres sideways at mission ranges), then the height is
dropped: the tracker's state is 2-D. Polar detections are converted with the unbiased
converted-measurement method (Mo, Song, Zhou, Sun and Bar-Shalom 1998,
"Unbiased converted measurements for tracking"; covariance evaluated at the
measured values, as Longbaum's variant does), so every update downstream is
linear. With bearing b clockwise from north and λ = exp(-σb²/2):

    e = r sin b / λ,  n = r cos b / λ
    R_ee = (λ⁻² - 2) r² sin²b   + ½ (r² + σr²)(1 - λ⁴ cos 2b)
    R_nn = (λ⁻² - 2) r² cos²b   + ½ (r² + σr²)(1 + λ⁴ cos 2b)
    R_en = (λ⁻² - 2) r² sin b cos b + ½ (r² + σr²) λ⁴ sin 2b

Plain conversion (e = r sin b) is biased towards the sensor by r(1 - λ), which
at 20 km and 1° is 3 m, and its linearised covariance is too small across
range; tests/unit/test_detections.py checks both by Monte Carlo.

The bearing is measured from true north at the sensor, which in the mission
frame is turned by the meridian convergence γ (small near the origin, but
free to correct), so b is replaced by b + γ.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import cast

import numpy as np
from numpy.typing import NDArray

from hub.fusion.measurements import Scan
from hub.geo import EnuFrame
from hub.messages import CLASSES, DetectionBatch, GeoDetection, PolarDetection, SensorPosition

CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}
UNKNOWN = CLASS_INDEX["unknown"]


class _ClassLookup(dict[str, int]):
    """CLASS_INDEX for ``map``: a name outside CLASSES is ``unknown``."""

    def __missing__(self, key: str) -> int:
        return UNKNOWN


_CLASS_LOOKUP = _ClassLookup(CLASS_INDEX)
_CLS = operator.attrgetter("cls")
_SMALL_GEO_BATCH = 4
"""Up to this many geo detections are projected one by one with ``EnuFrame.point_to_enu``
(about 1 us each) instead of by ``to_enu`` (about 40 us whatever the size): UAV
scans hold 0 to 3 detections."""

Array = NDArray[np.float64]


def batch_to_scan(batch: DetectionBatch, sensor_index: int, frame: EnuFrame) -> Scan:
    """Convert every detection of ``batch`` into ENU positions with covariances."""
    dets = batch.detections
    m = len(dets)
    if m == 0:  # most UAV scans: no arrays to fill
        return Scan(t=batch.ts, sensor=sensor_index, z=np.empty((0, 2)), R=np.empty((0, 2, 2)),
                    cls=np.empty(0, np.int16), conf=np.empty(0))
    # One list comprehension per field, then numpy: no per-detection appends.
    cls = np.fromiter(map(_CLASS_LOOKUP.__getitem__, map(_CLS, dets)), np.int16, m)
    conf = np.array([d.conf for d in dets], dtype=np.float64)
    kinds = set(map(type, dets))  # a sensor's batch is nearly always of one kind
    if PolarDetection not in kinds:
        z, r = _geo(cast(list[GeoDetection], dets), frame)
    elif GeoDetection not in kinds:
        assert batch.sensor is not None  # DetectionBatch validation guarantees it
        z, r = _polar(cast(list[PolarDetection], dets), batch.sensor, frame)
    else:
        assert batch.sensor is not None
        is_geo = np.array([isinstance(d, GeoDetection) for d in dets], dtype=bool)
        geo = [d for d in dets if isinstance(d, GeoDetection)]
        polar = [d for d in dets if isinstance(d, PolarDetection)]
        z, r = np.empty((m, 2)), np.empty((m, 2, 2))
        z[is_geo], r[is_geo] = _geo(geo, frame)
        z[~is_geo], r[~is_geo] = _polar(polar, batch.sensor, frame)
    return Scan(t=batch.ts, sensor=sensor_index, z=z, R=r, cls=cls, conf=conf)


def _geo(dets: list[GeoDetection], frame: EnuFrame) -> tuple[Array, Array]:
    """Project geo detections into ENU positions and covariances."""
    k = len(dets)
    if k == 0:
        return np.empty((0, 2)), np.empty((0, 2, 2))
    alt0 = frame.alt0
    alts = [alt0 if d.alt is None else d.alt for d in dets]
    if k <= _SMALL_GEO_BATCH:
        points = [frame.point_to_enu(d.lat, d.lon, h) for d, h in zip(dets, alts, strict=True)]
        e, n = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    else:
        e, n, _ = frame.to_enu(np.array([d.lat for d in dets]), np.array([d.lon for d in dets]),
                               np.array(alts))
    cov = np.array([d.cov if d.cov is not None else _isotropic(d.sigma) for d in dets])
    r = np.empty((k, 2, 2))
    r[:, 0, 0] = cov[:, 0]
    r[:, 0, 1] = r[:, 1, 0] = cov[:, 1]
    r[:, 1, 1] = cov[:, 2]
    return np.stack((e, n), axis=1), r


def _isotropic(sigma: float | None) -> tuple[float, float, float]:
    """Return (ee, en, nn) of a circular sigma (0 when the detection gives none)."""
    s2 = sigma * sigma if sigma is not None else 0.0
    return (s2, 0.0, s2)


def _polar(dets: list[PolarDetection], sensor: SensorPosition, frame: EnuFrame
           ) -> tuple[Array, Array]:
    """Convert polar detections (range, bearing°, elevation°, σr, σb°) seen from ``sensor``."""
    e0, n0, gamma = _sensor_origin_cached(sensor.lat, sensor.lon, sensor.alt, frame)
    cos_el = np.cos(np.radians([0.0 if d.elevation is None else d.elevation for d in dets]))
    ground = np.array([d.range for d in dets]) * cos_el
    sigma_r = np.array([d.sigma_range for d in dets]) * cos_el
    z, r = unbiased_conversion(ground, np.radians([d.bearing for d in dets]) + gamma, sigma_r,
                               np.radians([d.sigma_bearing for d in dets]))
    z[:, 0] += e0
    z[:, 1] += n0
    return z, r


@functools.lru_cache(maxsize=256)
def _sensor_origin_cached(lat: float, lon: float, alt: float, frame: EnuFrame
                          ) -> tuple[float, float, float]:
    """``sensor_origin`` memoised: a radar reports the same position scan after scan."""
    return sensor_origin(SensorPosition(lat=lat, lon=lon, alt=alt), frame)


def sensor_origin(sensor: SensorPosition, frame: EnuFrame) -> tuple[float, float, float]:
    """Return the sensor's east, north (m) and the angle (rad) from mission north to its north."""
    lat = np.array([sensor.lat, min(sensor.lat + 1e-3, 90.0)])
    e, n, _ = frame.to_enu(lat, np.array([sensor.lon, sensor.lon]), sensor.alt)
    gamma = math.atan2(float(e[1] - e[0]), float(n[1] - n[0]))
    return float(e[0]), float(n[0]), gamma


def unbiased_conversion(rng: Array, bearing: Array, sigma_r: Array, sigma_b: Array
                        ) -> tuple[Array, Array]:
    """Return unbiased ENU offsets (K, 2) and covariances (K, 2, 2) of range/bearing (rad)."""
    lam = np.exp(-0.5 * sigma_b**2)
    lam2 = lam * lam  # products, not powers: numpy's power calls pow() per entry
    lam4 = lam2 * lam2
    sb, cb = np.sin(bearing), np.cos(bearing)
    c2b, s2b = np.cos(2.0 * bearing), np.sin(2.0 * bearing)
    a = (1.0 / lam2 - 2.0) * rng**2
    h = 0.5 * (rng**2 + sigma_r**2)
    z = np.stack((rng * sb / lam, rng * cb / lam), axis=1)
    r = np.empty((rng.shape[0], 2, 2))
    r[:, 0, 0] = a * sb * sb + h * (1.0 - lam4 * c2b)
    r[:, 1, 1] = a * cb * cb + h * (1.0 + lam4 * c2b)
    r[:, 0, 1] = r[:, 1, 0] = a * sb * cb + h * lam4 * s2b
    return z, r
