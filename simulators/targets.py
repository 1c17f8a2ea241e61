"""Truth motion of every target at once: constant velocity with coordinated turns.

State is a set of numpy arrays in the mission's East-North-Up frame. Motion between
two times is exact (a constant-rate turn is a rotation of the velocity); turns,
births, deaths and steering away from the area's edge are decided once per
``DECISION_PERIOD_S``. A reflection at the edge guarantees targets stay inside.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from hub.geo import EnuFrame
from simulators.scenario import Targets

DECISION_PERIOD_S = 1.0

Array = NDArray[np.float64]


class TargetField:
    """The live targets of a scenario, advanced in time together."""

    def __init__(self, spec: Targets, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.class_names: tuple[str, ...] = tuple(spec.classes)
        specs = list(spec.classes.values())
        weights = np.array([c.weight for c in specs])
        self._weights = weights / weights.sum()
        self._speed = np.array([c.speed for c in specs], dtype=np.float64)
        self._alt = np.array([c.alt for c in specs], dtype=np.float64)
        self._rate = np.radians([c.turn_rate for c in specs])
        self._turn_p = np.array([c.turn_probability for c in specs])
        self._turn_len = np.array([c.turn_duration for c in specs], dtype=np.float64)
        a = spec.area
        self.low = np.array([a.east - a.half_width, a.north - a.half_height])
        self.high = np.array([a.east + a.half_width, a.north + a.half_height])
        self.ids = np.zeros(0, dtype=np.int64)
        self.cls = np.zeros(0, dtype=np.int64)
        self.pos = np.zeros((0, 2))  # east, north (m)
        self.vel = np.zeros((0, 2))  # ve, vn (m/s)
        self.alt = np.zeros(0)  # metres above the mission origin
        self.omega = np.zeros(0)  # turn rate, rad/s, positive to the left
        self.turn_left = np.zeros(0)  # seconds of the current turn still to fly
        self._next_id = 1
        self._spawn(spec.count)

    def __len__(self) -> int:
        return int(self.ids.size)

    def _spawn(self, k: int) -> None:
        """Add ``k`` targets at uniform positions with uniform headings."""
        rng = self.rng
        cls = rng.choice(len(self._weights), size=k, p=self._weights)
        pos = rng.uniform(self.low, self.high, size=(k, 2))
        speed = rng.uniform(self._speed[cls, 0], self._speed[cls, 1])
        heading = rng.uniform(0.0, 2.0 * math.pi, size=k)
        alt = rng.uniform(self._alt[cls, 0], self._alt[cls, 1])
        self.ids = np.concatenate([self.ids, np.arange(self._next_id, self._next_id + k)])
        self._next_id += k
        self.cls = np.concatenate([self.cls, cls])
        self.pos = np.concatenate([self.pos, pos])
        vel = np.stack([speed * np.sin(heading), speed * np.cos(heading)], axis=1)
        self.vel = np.concatenate([self.vel, vel])
        self.alt = np.concatenate([self.alt, alt])
        self.omega = np.concatenate([self.omega, np.zeros(k)])
        self.turn_left = np.concatenate([self.turn_left, np.zeros(k)])

    def _keep(self, mask: NDArray[np.bool_]) -> None:
        for name in ("ids", "cls", "pos", "vel", "alt", "omega", "turn_left"):
            setattr(self, name, getattr(self, name)[mask])

    def advance(self, dt: float) -> None:
        """Move every target ``dt`` seconds along its straight line or turn."""
        if dt <= 0.0 or not len(self):
            return
        w = self.omega
        turning = np.abs(w) > 1e-12
        safe_w = np.where(turning, w, 1.0)
        s, c = np.sin(w * dt), np.cos(w * dt)
        # Displacement of a constant-rate turn; the straight-line limit where w == 0.
        a = np.where(turning, s / safe_w, dt)
        b = np.where(turning, (1.0 - c) / safe_w, 0.0)
        ve, vn = self.vel[:, 0], self.vel[:, 1]
        self.pos = self.pos + np.stack([a * ve - b * vn, b * ve + a * vn], axis=1)
        self.vel = np.stack([c * ve - s * vn, s * ve + c * vn], axis=1)
        self._reflect()

    def _reflect(self) -> None:
        """Mirror any target that crossed the edge back inside, turning with it."""
        for bound, side in ((self.low, -1.0), (self.high, 1.0)):
            over = side * (self.pos - bound) > 0.0
            if over.any():
                self.pos = np.where(over, 2.0 * bound - self.pos, self.pos)
                self.vel = np.where(over, -self.vel, self.vel)
                # A mirror image of a turn turns the other way (a corner is a rotation).
                self.omega = np.where(over.sum(axis=1) == 1, -self.omega, self.omega)
        self.pos = np.clip(self.pos, self.low, self.high)

    def decide(self, dt: float = DECISION_PERIOD_S) -> None:
        """End and start turns, steer away from the edge, and apply deaths and births."""
        rng = self.rng
        n = len(self)
        self.turn_left = self.turn_left - dt
        self.omega = np.where(self.turn_left > 0.0, self.omega, 0.0)
        if n:
            start = (self.omega == 0.0) & (rng.random(n) < -np.expm1(-self._turn_p[self.cls] * dt))
            sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
            rate = sign * rng.uniform(0.3, 1.0, size=n) * self._rate[self.cls]
            length = rng.uniform(self._turn_len[self.cls, 0], self._turn_len[self.cls, 1])
            self.omega = np.where(start, rate, self.omega)
            self.turn_left = np.where(start, length, self.turn_left)
            self._steer_inward(dt)
            alive = rng.random(n) >= -math.expm1(-self.spec.death_rate * dt)
            if not alive.all():
                self._keep(alive)
        born = int(rng.poisson(self.spec.birth_rate * dt))
        if born:
            self._spawn(born)

    def _steer_inward(self, dt: float) -> None:
        """Turn targets near the edge and heading out back towards the centre."""
        speed = np.hypot(self.vel[:, 0], self.vel[:, 1])
        max_rate = np.maximum(self._rate[self.cls], 1e-3)
        # Room for a half turn at full rate, plus one decision period of travel.
        margin = 2.0 * speed / max_rate + speed * dt
        centre = 0.5 * (self.low + self.high)
        near = (self.pos - self.low < margin[:, None]) | (self.high - self.pos < margin[:, None])
        to_centre = centre - self.pos
        outward = (self.vel * to_centre).sum(axis=1) < 0.0
        steer = near.any(axis=1) & outward
        if steer.any():
            left = self.vel[:, 0] * to_centre[:, 1] - self.vel[:, 1] * to_centre[:, 0] > 0.0
            self.omega = np.where(steer, np.where(left, max_rate, -max_rate), self.omega)
            self.turn_left = np.where(steer, dt, self.turn_left)

    @property
    def speed(self) -> Array:
        """Ground speed of each target, m/s."""
        return np.hypot(self.vel[:, 0], self.vel[:, 1])

    def class_of(self) -> list[str]:
        """Class name of each target."""
        names = self.class_names
        return [names[i] for i in self.cls.tolist()]


class Snapshot:
    """The truth at one time: copies of the target arrays, geodetic values on demand."""

    def __init__(self, field: TargetField, frame: EnuFrame, origin_alt: float) -> None:
        self.ids = field.ids.copy()
        self.cls = field.cls.copy()
        self.class_names = field.class_names
        self.pos = field.pos.copy()
        self.vel = field.vel.copy()
        self.agl = field.alt.copy()
        self._frame = frame
        self._origin_alt = origin_alt
        self._geodetic: tuple[Array, Array, Array] | None = None

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def geodetic(self) -> tuple[Array, Array, Array]:
        """Latitude, longitude (degrees) and altitude (m) of each target."""
        if self._geodetic is None:
            lat, lon, _ = self._frame.to_geodetic(self.pos[:, 0], self.pos[:, 1], self.agl)
            self._geodetic = (lat, lon, self._origin_alt + self.agl)
        return self._geodetic
