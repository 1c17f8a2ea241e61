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

import math

import numpy as np
from numpy.typing import NDArray

from hub.fusion.measurements import Scan
from hub.geo import EnuFrame
from hub.messages import CLASSES, DetectionBatch, GeoDetection, SensorPosition

CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}
UNKNOWN = CLASS_INDEX["unknown"]

Array = NDArray[np.float64]


def batch_to_scan(batch: DetectionBatch, sensor_index: int, frame: EnuFrame) -> Scan:
    """Convert every detection of ``batch`` into ENU positions with covariances."""
    m = len(batch.detections)
    cls: list[int] = []
    conf: list[float] = []
    geo_rows: list[int] = []
    geo: list[tuple[float, float, float, float, float, float]] = []
    polar: list[tuple[float, float, float, float, float]] = []
    for i, d in enumerate(batch.detections):
        cls.append(CLASS_INDEX.get(d.cls, UNKNOWN))
        conf.append(d.conf)
        if isinstance(d, GeoDetection):
            geo_rows.append(i)
            alt = d.alt if d.alt is not None else frame.alt0
            if d.cov is not None:
                geo.append((d.lat, d.lon, alt, *d.cov))
            else:
                s2 = d.sigma * d.sigma if d.sigma is not None else 0.0
                geo.append((d.lat, d.lon, alt, s2, 0.0, s2))
        else:
            el = d.elevation if d.elevation is not None else 0.0
            polar.append((d.range, d.bearing, el, d.sigma_range, d.sigma_bearing))
    z = np.empty((m, 2))
    r = np.empty((m, 2, 2))
    is_geo = np.zeros(m, dtype=bool)
    is_geo[geo_rows] = True
    if geo:
        z[is_geo], r[is_geo] = _geo(np.array(geo), frame)
    if polar:
        assert batch.sensor is not None  # DetectionBatch validation guarantees it
        z[~is_geo], r[~is_geo] = _polar(np.array(polar), batch.sensor, frame)
    return Scan(t=batch.ts, sensor=sensor_index, z=z, R=r,
                cls=np.array(cls, dtype=np.int16), conf=np.array(conf, dtype=np.float64))


def _geo(rows: Array, frame: EnuFrame) -> tuple[Array, Array]:
    """Project rows of (lat, lon, alt, ee, en, nn) into ENU positions and covariances."""
    e, n, _ = frame.to_enu(rows[:, 0], rows[:, 1], rows[:, 2])
    r = np.empty((rows.shape[0], 2, 2))
    r[:, 0, 0] = rows[:, 3]
    r[:, 0, 1] = r[:, 1, 0] = rows[:, 4]
    r[:, 1, 1] = rows[:, 5]
    return np.stack((e, n), axis=1), r


def _polar(rows: Array, sensor: SensorPosition, frame: EnuFrame) -> tuple[Array, Array]:
    """Convert rows of (range, bearing°, elevation°, σr, σb°) seen from ``sensor``."""
    e0, n0, gamma = sensor_origin(sensor, frame)
    cos_el = np.cos(np.radians(rows[:, 2]))
    ground, sigma_r = rows[:, 0] * cos_el, rows[:, 3] * cos_el
    z, r = unbiased_conversion(ground, np.radians(rows[:, 1]) + gamma, sigma_r,
                               np.radians(rows[:, 4]))
    z[:, 0] += e0
    z[:, 1] += n0
    return z, r


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
    lam4 = lam**4
    sb, cb = np.sin(bearing), np.cos(bearing)
    c2b, s2b = np.cos(2.0 * bearing), np.sin(2.0 * bearing)
    a = (lam**-2 - 2.0) * rng**2
    h = 0.5 * (rng**2 + sigma_r**2)
    z = np.stack((rng * sb / lam, rng * cb / lam), axis=1)
    r = np.empty((rng.shape[0], 2, 2))
    r[:, 0, 0] = a * sb * sb + h * (1.0 - lam4 * c2b)
    r[:, 1, 1] = a * cb * cb + h * (1.0 + lam4 * c2b)
    r[:, 0, 1] = r[:, 1, 0] = a * sb * cb + h * lam4 * s2b
    return z, r
