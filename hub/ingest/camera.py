"""Pinhole camera model: pixels to ground points in ENU and back, with covariance.

Conventions (the frames contract, DESIGN.md "Camera geometry for frames"):

- Pixels: ``u`` grows to the right, ``v`` downwards, in continuous pixel units;
  the principal point is the image centre ``(width / 2, height / 2)`` unless
  ``cx, cy`` are given. ``hfov`` is the full horizontal field of view, so
  ``fx = (width / 2) / tan(hfov / 2)``; ``fy = fx`` (square pixels) unless given.
  Explicit ``fx, fy`` win over ``hfov``.
- Camera frame: x right (``u``), y down (``v``), z along the optical axis.
- Gimbal: ``az = 0, el = 0`` looks along the nose with the image top up; ``az``
  turns right (clockwise seen from above), ``el`` negative tilts down; at
  ``el = -90`` the camera looks straight down with the image top towards the nose.
- Platform: body frame x forward, y right, z down; ``heading``, ``pitch``,
  ``roll`` applied as aircraft yaw-pitch-roll (pitch up raises the nose, roll
  right lowers the right wing) relative to the local North-East-Down frame.
- World: the mission East-North-Up frame (``hub.geo.EnuFrame``), metres. A pose
  built by ``Pose.from_frame`` carries the small rotation between the platform's
  own local level and the mission frame's, so Earth curvature tilts no ray.

So camera → world is ``ENU←NED · Rz(heading) Ry(pitch) Rx(roll) · Rz(az) Ry(el) ·
gimbal←camera``. Angles are in degrees everywhere in the public API.

Ground: a ``Terrain`` gives the ENU ``up`` of the ground at ``(east, north)``.
``FlatTerrain`` is a plane; ``LevelTerrain`` a constant WGS84 height (the plane
bent by Earth curvature). The intersection is a fixed-point iteration on
``height(east, north)``, exact after one step on a plane and convergent on any
terrain whose slope is below the ray's depression angle, so a DEM can be added
as one more ``Terrain``. Pixels whose ray does not descend, or meets the ground
beyond ``max_range``, come back as NaN with ``valid`` False, never as a wrong point.

Covariance: the east/north covariance of a ground point from pixel noise,
attitude noise (heading, pitch, roll, az, el) and altitude error, by central
divided differences of the vectorised forward model with a step of one sigma
per noise source (the DD1 rule of Nørgaard et al.: the Jacobian for a linear
model, and it follows the model's curvature over the noise's real extent).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hub.geo import EnuFrame
from hub.messages import Camera, Frame

Array = NDArray[np.float64]

DEFAULT_MAX_RANGE_M = 20_000.0
_EARTH_RADIUS_M = 6_371_000.0
_ONE_STEP_RANGE_M = 20_000.0

# ENU ← NED: east is NED y, north is NED x, up is -z.
_ENU_FROM_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
# Gimbal (x boresight, y right, z down) ← camera (x right, y down, z boresight).
_GIMBAL_FROM_CAMERA = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_POSE_ANGLES = ("heading", "pitch", "roll", "az", "el")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_camera(cls, camera: Camera, width: int, height: int) -> Intrinsics:
        """Build intrinsics from a frame's ``camera`` and image size."""
        if camera.fx is not None and camera.fy is not None:
            fx, fy = camera.fx, camera.fy
        else:
            assert camera.hfov is not None  # Camera.__post_init__ guarantees one of the two
            fx = fy = (width / 2.0) / np.tan(np.radians(camera.hfov) / 2.0)
        cx = width / 2.0 if camera.cx is None else camera.cx
        cy = height / 2.0 if camera.cy is None else camera.cy
        return cls(float(fx), float(fy), float(cx), float(cy), width, height)

    def rays(self, u: ArrayLike, v: ArrayLike) -> Array:
        """Camera-frame directions ``(..., 3)`` through pixels, with z = 1."""
        x = (np.asarray(u, dtype=np.float64) - self.cx) / self.fx
        y = (np.asarray(v, dtype=np.float64) - self.cy) / self.fy
        x, y = np.broadcast_arrays(x, y)
        return np.stack([x, y, np.ones_like(x)], axis=-1)

    def contains(self, u: ArrayLike, v: ArrayLike) -> NDArray[np.bool_]:
        """Tell which pixel coordinates fall inside the image."""
        u, v = np.asarray(u), np.asarray(v)
        return (u >= 0.0) & (u <= self.width) & (v >= 0.0) & (v <= self.height)


@dataclass(frozen=True, eq=False)
class Pose:
    """Camera position (ENU metres) and platform and gimbal angles (degrees).

    Every field broadcasts, so one ``Pose`` can hold many poses. ``level`` is
    the rotation mission-ENU ← the platform's local ENU (identity near the origin).
    """

    east: ArrayLike
    north: ArrayLike
    up: ArrayLike
    heading: ArrayLike = 0.0
    pitch: ArrayLike = 0.0
    roll: ArrayLike = 0.0
    az: ArrayLike = 0.0
    el: ArrayLike = 0.0
    level: Array = field(default_factory=lambda: np.eye(3))

    @classmethod
    def from_frame(cls, frame: Frame, enu: EnuFrame) -> Pose:
        """Take the pose a frame reports, in the mission frame ``enu``."""
        p, g = frame.platform, frame.gimbal
        return cls.at(enu, p.lat, p.lon, p.alt, p.heading, p.pitch, p.roll, g.az, g.el)

    @classmethod
    def at(cls, enu: EnuFrame, lat: float, lon: float, alt: float, heading: float = 0.0,
           pitch: float = 0.0, roll: float = 0.0, az: float = 0.0, el: float = 0.0) -> Pose:
        """Build the pose of a camera at a geodetic position, in the mission frame ``enu``."""
        east, north, up = enu.point_to_enu(lat, lon, alt)
        level = _enu_axes(enu.lat0, enu.lon0) @ _enu_axes(lat, lon).T
        return cls(east, north, up, heading, pitch, roll, az, el, level)

    def position(self) -> Array:
        """Camera centres ``(..., 3)`` in ENU."""
        parts = np.broadcast_arrays(*(np.asarray(c, dtype=np.float64)
                                      for c in (self.east, self.north, self.up)))
        return np.stack(parts, axis=-1)

    def rotation(self) -> Array:
        """Rotations world ← camera, ``(..., 3, 3)``."""
        yaw, pitch, roll, az, el = (np.radians(np.asarray(getattr(self, a), dtype=np.float64))
                                    for a in _POSE_ANGLES)
        body = _rz(yaw) @ _ry(pitch) @ _rx(roll)
        gimbal = _rz(az) @ _ry(el)
        rotation: Array = self.level @ _ENU_FROM_NED @ body @ gimbal @ _GIMBAL_FROM_CAMERA
        return rotation


class Terrain(Protocol):
    """Ground height as ENU ``up`` at given east, north (a DEM implements this too)."""

    def height(self, east: Array, north: Array) -> Array:
        """Return the ground's ``up`` coordinate under each ``(east, north)``."""
        ...


@dataclass(frozen=True)
class FlatTerrain:
    """A horizontal plane of the ENU frame at ``up`` metres."""

    up: float = 0.0

    def height(self, east: Array, north: Array) -> Array:
        """Return the plane's height everywhere."""
        return np.full(np.broadcast_shapes(np.shape(east), np.shape(north)), self.up)


@dataclass(frozen=True)
class LevelTerrain:
    """Ground at a constant WGS84 height ``alt``, seen in the mission frame ``enu``."""

    enu: EnuFrame
    alt: float = 0.0

    def height(self, east: Array, north: Array) -> Array:
        """Return the ENU ``up`` at which the geodetic height equals ``alt``."""
        east, north = np.asarray(east, dtype=np.float64), np.asarray(north, dtype=np.float64)
        flat2 = east * east + north * north
        # Start from the sphere's drop below the tangent plane (right to about
        # 1 % of itself: 0.3 m at 20 km); up and geodetic height then move
        # together to a part in 10^5 there, so one correction is sub-millimetre
        # and a second is spent only beyond 20 km. Each to_geodetic is most of
        # a georeference's cost.
        up = np.broadcast_to(self.alt - self.enu.alt0 - flat2 / (2.0 * _EARTH_RADIUS_M),
                             np.broadcast_shapes(east.shape, north.shape))
        far = bool(np.any(flat2 > _ONE_STEP_RANGE_M**2))
        for _ in range(3 if far else 1):
            _, _, h = self.enu.to_geodetic(east, north, up)
            up = up - (h - self.alt)
        return np.asarray(up, dtype=np.float64)


class GroundPoints(NamedTuple):
    """Ground points ``(..., 3)`` in ENU; NaN where ``valid`` is False."""

    enu: Array
    valid: NDArray[np.bool_]


class Pixels(NamedTuple):
    """Pixel coordinates; NaN where ``valid`` (in front of the camera) is False."""

    u: Array
    v: Array
    valid: NDArray[np.bool_]


def georeference(intrinsics: Intrinsics, pose: Pose, u: ArrayLike, v: ArrayLike,
                 terrain: Terrain, max_range: float = DEFAULT_MAX_RANGE_M,
                 iterations: int = 10, tolerance: float = 1e-4) -> GroundPoints:
    """Intersect the rays through pixels ``(u, v)`` with the terrain.

    ``u, v`` and the pose's fields broadcast together. A ray that does not
    descend, meets the ground beyond ``max_range`` metres or does not settle
    within ``iterations`` fixed-point steps gives NaN and ``valid`` False.
    """
    d = (pose.rotation() @ intrinsics.rays(u, v)[..., None])[..., 0]
    origin = pose.position()
    d, origin = np.broadcast_arrays(d, origin)
    descending = d[..., 2] < 0.0
    dz = np.where(descending, d[..., 2], -1.0)
    ground = terrain.height(origin[..., 0], origin[..., 1])
    settled = np.zeros(descending.shape, dtype=bool)
    for _ in range(iterations):
        t = (origin[..., 2] - ground) / -dz
        point = origin + t[..., None] * d
        new_ground = terrain.height(point[..., 0], point[..., 1])
        settled = np.abs(new_ground - ground) <= tolerance
        ground = new_ground
        if np.all(settled | ~descending):
            break
    t = (origin[..., 2] - ground) / -dz
    point = origin + t[..., None] * d
    reach = t * np.linalg.norm(d, axis=-1)
    valid = descending & settled & (t >= 0.0) & (reach <= max_range)
    return GroundPoints(np.where(valid[..., None], point, np.nan), valid)


def project(intrinsics: Intrinsics, pose: Pose, enu: ArrayLike) -> Pixels:
    """Project ENU points ``(..., 3)`` into pixels; points behind the camera are NaN."""
    rel = np.asarray(enu, dtype=np.float64) - pose.position()
    rotation = pose.rotation()
    cam = (np.swapaxes(rotation, -1, -2) @ rel[..., None])[..., 0]
    z = cam[..., 2]
    valid = z > 0.0
    z = np.where(valid, z, np.nan)
    u = intrinsics.fx * cam[..., 0] / z + intrinsics.cx
    v = intrinsics.fy * cam[..., 1] / z + intrinsics.cy
    return Pixels(u, v, valid)


@dataclass(frozen=True)
class PoseNoise:
    """One-sigma errors: pixels, angles in degrees, platform altitude in metres."""

    sigma_px: float = 1.0
    sigma_heading: float = 0.5
    sigma_pitch: float = 0.2
    sigma_roll: float = 0.2
    sigma_az: float = 0.2
    sigma_el: float = 0.2
    sigma_alt: float = 5.0


def ground_covariance(intrinsics: Intrinsics, pose: Pose, u: ArrayLike, v: ArrayLike,
                      terrain: Terrain, noise: PoseNoise,
                      max_range: float = DEFAULT_MAX_RANGE_M) -> Array:
    """East/north covariance ``(..., 2, 2)`` of the ground points of pixels ``(u, v)``.

    Central divided differences with a step of one sigma per independent noise
    source, all probes in one vectorised ``georeference`` call; NaN where any
    perturbed ray misses the ground (the uncertainty reaches the horizon, so no
    finite covariance is honest).
    """
    values = {"u": u, "v": v, **{name: getattr(pose, name) for name in _NOISY_POSE_FIELDS}}
    shape = np.broadcast_shapes(*(np.shape(x) for x in (*values.values(), pose.east, pose.north)))
    sources = [(name, sigma) for name, sigma in _sigmas(noise) if sigma > 0.0]
    if not sources:
        return np.zeros((*shape, 2, 2))
    probes = {name: np.broadcast_to(np.asarray(x, dtype=np.float64),
                                    (2 * len(sources), *shape)).copy()
              for name, x in values.items()}
    for i, (name, sigma) in enumerate(sources):
        probes[name][2 * i] += sigma
        probes[name][2 * i + 1] -= sigma
    moved = replace(pose, **{name: probes[name] for name in _NOISY_POSE_FIELDS})
    hits = georeference(intrinsics, moved, probes["u"], probes["v"], terrain, max_range).enu
    spread = np.moveaxis((hits[0::2, ..., :2] - hits[1::2, ..., :2]) / 2.0, 0, -1)
    covariance: Array = spread @ np.swapaxes(spread, -1, -2)  # spread: (..., 2, sources)
    return covariance


_NOISY_POSE_FIELDS = (*_POSE_ANGLES, "up")


def rise(pose: Pose, ground: ArrayLike) -> Array:
    """East/north move ``(..., 2)`` per metre of height, up each ray from its ground point.

    A point ``h`` metres above the ground point ``ground`` ``(..., 3)`` on the
    same ray is at ``ground[..., :2] + h * rise``: the ray is straight, so the
    move points from the ground point towards the camera, ``1 / tan(depression)``
    long (0 at nadir, unbounded towards the horizon).
    """
    rel = pose.position() - np.asarray(ground, dtype=np.float64)
    move: Array = rel[..., :2] / rel[..., 2:3]
    return move


def _sigmas(noise: PoseNoise) -> list[tuple[str, float]]:
    """Each independent noise source: the probe it moves and its one-sigma step."""
    return [("u", noise.sigma_px), ("v", noise.sigma_px),
            *((name, getattr(noise, f"sigma_{name}")) for name in _POSE_ANGLES),
            ("up", noise.sigma_alt)]


def _enu_axes(lat: float, lon: float) -> Array:
    """Rows: east, north, up unit vectors in ECEF at ``lat, lon`` (degrees)."""
    phi, lam = np.radians(lat), np.radians(lon)
    sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
    return np.array([[-sl, cl, 0.0], [-sp * cl, -sp * sl, cp], [cp * cl, cp * sl, sp]])


def _rz(a: Array) -> Array:
    """Rotations about z by ``a`` radians, ``(..., 3, 3)``."""
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([c, -s, o, s, c, o, o, o, i], axis=-1).reshape((*a.shape, 3, 3))


def _ry(a: Array) -> Array:
    """Rotations about y by ``a`` radians, ``(..., 3, 3)``."""
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([c, o, s, o, i, o, -s, o, c], axis=-1).reshape((*a.shape, 3, 3))


def _rx(a: Array) -> Array:
    """Rotations about x by ``a`` radians, ``(..., 3, 3)``."""
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([i, o, o, o, c, -s, o, s, c], axis=-1).reshape((*a.shape, 3, 3))
