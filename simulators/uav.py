"""A UAV flying an orbit or a lawnmower survey, with a nadir camera and on-board detector.

The pose is a closed-form function of time, so telemetry at any rate is exact.
The detector reports each target inside the camera footprint with probability
``pd`` as a geo detection with Gaussian position error, a class that is wrong
with probability ``confusion``, and Poisson clutter spread over the footprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hub.geo import EnuFrame
from simulators.scenario import Lawnmower, Orbit, Uav
from simulators.targets import Snapshot

Array = NDArray[np.float64]
GRAVITY = 9.80665


@dataclass(frozen=True)
class Pose:
    """Where the UAV is (mission ENU) and how it flies at one time."""

    east: float
    north: float
    heading: float  # degrees clockwise from north
    roll: float  # degrees, positive right wing down
    ve: float
    vn: float


@dataclass(frozen=True)
class UavReturns:
    """One frame's detections in mission ENU; ``target`` is the truth index or -1."""

    east: Array
    north: Array
    agl: Array
    cls: list[str]
    conf: Array
    target: NDArray[np.int64]


def _lawnmower_path(p: Lawnmower, spacing: float) -> tuple[Array, Array]:
    """Waypoints of east-west legs, out and back, and their cumulative distance."""
    rows = max(1, math.floor((p.north - p.south) / spacing) + 1)
    north = p.south + spacing * np.arange(rows)
    west_first = np.arange(rows) % 2 == 0
    start = np.where(west_first, p.west, p.east)
    end = np.where(west_first, p.east, p.west)
    out = np.stack([np.stack([start, north], 1), np.stack([end, north], 1)], 1).reshape(-1, 2)
    points = np.concatenate([out, out[::-1][1:]])  # fly back the same way: a closed loop
    lengths = np.hypot(*np.diff(points, axis=0).T)
    return points, np.concatenate([[0.0], np.cumsum(lengths)])


class UavSim:
    """One UAV: its pattern, its camera footprint and its detector."""

    def __init__(self, spec: Uav, frame: EnuFrame, origin_alt: float,
                 rng: np.random.Generator) -> None:
        self.spec = spec
        self.frame = frame
        self.origin_alt = origin_alt
        self.rng = rng
        p = spec.pattern
        if isinstance(p, Lawnmower):
            spacing = p.spacing or 1.6 * spec.footprint_radius
            self._points, self._cum = _lawnmower_path(p, spacing)

    def pose(self, t: float) -> Pose:
        """The UAV's pose ``t`` seconds into the scenario."""
        p, v = self.spec.pattern, self.spec.speed
        if isinstance(p, Orbit):
            return self._orbit_pose(p, v, t)
        s = (v * t) % self._cum[-1]
        i = int(np.searchsorted(self._cum, s, side="right")) - 1
        i = min(i, len(self._points) - 2)
        a, b = self._points[i], self._points[i + 1]
        d = (b - a) / max(self._cum[i + 1] - self._cum[i], 1e-9)
        e, n = a + d * (s - self._cum[i])
        heading = math.degrees(math.atan2(d[0], d[1])) % 360.0
        return Pose(float(e), float(n), heading, 0.0, float(v * d[0]), float(v * d[1]))

    @staticmethod
    def _orbit_pose(p: Orbit, v: float, t: float) -> Pose:
        direction = -1.0 if p.clockwise else 1.0
        theta = math.radians(p.start_angle) + direction * v / p.radius * t
        e = p.center.east + p.radius * math.cos(theta)
        n = p.center.north + p.radius * math.sin(theta)
        ve, vn = -direction * v * math.sin(theta), direction * v * math.cos(theta)
        heading = math.degrees(math.atan2(ve, vn)) % 360.0
        roll = -direction * math.degrees(math.atan(v * v / (p.radius * GRAVITY)))
        return Pose(e, n, heading, roll, ve, vn)

    def in_footprint(self, pose: Pose, east: Array, north: Array) -> NDArray[np.bool_]:
        """Whether each ground point lies inside the camera footprint at ``pose``."""
        de, dn = east - pose.east, north - pose.north
        r = self.spec.footprint_radius
        if self.spec.footprint_shape == "circle":
            return np.asarray(np.hypot(de, dn) <= r)
        h = math.radians(pose.heading)
        along = de * math.sin(h) + dn * math.cos(h)
        across = de * math.cos(h) - dn * math.sin(h)
        return np.asarray((np.abs(along) <= r) & (np.abs(across) <= r))

    def _clutter_offsets(self, pose: Pose, k: int) -> tuple[Array, Array]:
        rng, r = self.rng, self.spec.footprint_radius
        if self.spec.footprint_shape == "circle":
            rho, phi = r * np.sqrt(rng.random(k)), rng.uniform(0.0, 2.0 * math.pi, k)
            return rho * np.sin(phi), rho * np.cos(phi)
        along, across = rng.uniform(-r, r, k), rng.uniform(-r, r, k)
        h = math.radians(pose.heading)
        east = along * math.sin(h) + across * math.cos(h)
        return east, along * math.cos(h) - across * math.sin(h)

    def detect(self, t: float, snap: Snapshot) -> UavReturns:
        """Run the on-board detector on the camera frame at time ``t``."""
        s, rng, names = self.spec, self.rng, snap.class_names
        pose = self.pose(t)
        seen = self.in_footprint(pose, snap.pos[:, 0], snap.pos[:, 1])
        hit = np.flatnonzero(seen & (rng.random(len(snap)) < s.pd))
        noise = rng.normal(0.0, s.sigma, (2, hit.size))
        k = int(rng.poisson(s.clutter_mean))
        ce, cn = self._clutter_offsets(pose, k)
        east = np.concatenate([snap.pos[hit, 0] + noise[0], pose.east + ce])
        north = np.concatenate([snap.pos[hit, 1] + noise[1], pose.north + cn])
        agl = np.concatenate([snap.agl[hit], np.zeros(k)])
        true_cls = snap.cls[hit]
        confused = rng.random(hit.size) < s.confusion
        # A confused class is one of the others, chosen uniformly.
        shift = rng.integers(1, max(len(names), 2), hit.size)
        reported = np.where(confused, (true_cls + shift) % len(names), true_cls)
        conf = np.where(confused, rng.uniform(0.35, 0.65, hit.size),
                        rng.uniform(0.6, 0.95, hit.size))
        cls_idx = np.concatenate([reported, rng.integers(0, len(names), k)])
        conf = np.concatenate([conf, rng.uniform(0.3, 0.6, k)])
        cls = [names[c] for c in cls_idx.tolist()]
        if len(names) == 1:
            cls = [c if not bad else "unknown"
                   for c, bad in zip(cls, np.concatenate([confused, np.zeros(k, bool)]).tolist(),
                                     strict=True)]
        target = np.concatenate([hit, np.full(k, -1, dtype=np.int64)])
        return UavReturns(east, north, agl, cls, conf, target)

    def position(self, pose: Pose) -> tuple[float, float, float]:
        """Latitude, longitude and altitude of the UAV at ``pose``."""
        lat, lon, _ = self.frame.to_geodetic(pose.east, pose.north, self.spec.altitude)
        return float(lat), float(lon), self.origin_alt + self.spec.altitude

    def telemetry(self, ts: float, seq: int, t: float) -> dict[str, Any]:
        """The telemetry message at scenario time ``t``."""
        pose = self.pose(t)
        lat, lon, alt = self.position(pose)
        battery = max(0.0, 100.0 - self.spec.battery_drain_per_hour * t / 3600.0)
        mode = "orbit" if isinstance(self.spec.pattern, Orbit) else "survey"
        return {"ts": ts, "seq": seq, "lat": lat, "lon": lon, "alt": alt,
                "heading": pose.heading, "pitch": 0.0, "roll": pose.roll,
                "vn": pose.vn, "ve": pose.ve, "vu": 0.0, "battery": battery, "mode": mode}

    def batch(self, ts: float, seq: int, t: float, returns: UavReturns) -> dict[str, Any]:
        """The detection batch message of one camera frame."""
        lat, lon, _ = self.frame.to_geodetic(returns.east, returns.north, returns.agl)
        alt = self.origin_alt + returns.agl
        sigma = self.spec.sigma
        detections = [
            {"kind": "geo", "lat": la, "lon": lo, "alt": al, "sigma": sigma, "cls": c, "conf": p}
            for la, lo, al, c, p in zip(np.atleast_1d(lat).tolist(), np.atleast_1d(lon).tolist(),
                                        alt.tolist(), returns.cls, returns.conf.tolist(),
                                        strict=True)
        ]
        ulat, ulon, ualt = self.position(self.pose(t))
        return {"ts": ts, "seq": seq, "sensor": {"lat": ulat, "lon": ulon, "alt": ualt},
                "detections": detections}
