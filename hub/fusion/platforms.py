"""Friend tracks of registered platforms, straight from their own telemetry.

A platform knows where it is better than any sensor does, so its telemetry is
not fused with detections: each registered platform (``Sensor.is_platform``)
has one row, set from its latest fix. Velocity comes from the fix's ``vn``,
``ve`` when given, else from the difference with the previous fix. A platform
silent for ``friend_timeout_s`` is removed.

A row's id (``friend_id``, published as ``F{id}``) is a keyed hash of the
unit's id under the mission's key (``mission.id_key_file``): stable across
drop-outs and restarts, the same in every hub of the mission, and telling
nothing to whoever lacks the key: not the unit, not its place in the
registry. A partner whose release strips the unit's attribution gets an id
keyed by its own id as well (hub.release.policy), which maps to no other
picture's id.

Snapshots extrapolate every fix to the table's current time, with the
covariance of a GNSS fix (POSITION_SIGMA, VELOCITY_SIGMA) grown by the
constant-velocity process noise over the extrapolation.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from hub.config import KEY_BYTES, HubConfig, key_file
from hub.fusion import classify, models
from hub.fusion.tracks import CONFIRMED, Covariances, TrackTable
from hub.geo import EnuFrame
from hub.messages import CLASSES, Telemetry

POSITION_SIGMA = 5.0
"""Assumed one-sigma horizontal error of a platform's own position fix, metres."""
VELOCITY_SIGMA = 1.0
"""Assumed one-sigma error of its velocity, m/s."""
_CLASS_OF_KIND = {"uav": CLASSES.index("uav")}
FRIEND_ID_BITS = 40
"""Bits of a friend id: 13 decimal digits at most; two of 1000 units share one about once in
two million missions."""
_PROCESS_KEY = secrets.token_bytes(KEY_BYTES)
"""The key of a mission without ``id_key_file``: one per process, so ids hold until a restart."""


def mission_key(config: HubConfig) -> bytes:
    """The key friend ids are derived from: ``mission.id_key_file``'s, else this process's."""
    path = config.mission.id_key_file
    return _PROCESS_KEY if path is None else key_file(path, "$.mission.id_key_file")


def friend_id(key: bytes, unit: str, audience: str | None = None) -> int:
    """The id of ``unit``'s friend track: one for every picture, or ``audience``'s own one.

    HMAC-SHA256 of the unit id (and the audience id; ids hold no NUL, so the
    message is unambiguous), cut to ``FRIEND_ID_BITS``.
    """
    parts = ["friend", unit] if audience is None else ["friend", unit, audience]
    digest = hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:FRIEND_ID_BITS // 8], "big")


def friend_ids(key: bytes, units: Sequence[str],
               audiences: Sequence[str | None] | None = None) -> NDArray[np.int64]:
    """``friend_id`` of each unit, with each one's audience when ``audiences`` are given."""
    own = audiences if audiences is not None else [None] * len(units)
    return np.array([friend_id(key, unit, audience)
                     for unit, audience in zip(units, own, strict=True)], dtype=np.int64)


class PlatformTable:
    """Friend tracks of the registered platforms of ``config``, in ``frame``."""

    def __init__(self, config: HubConfig, frame: EnuFrame) -> None:
        self.frame = frame
        self.timeout_s = config.fusion.friend_timeout_s
        self.q = config.fusion.process_noise**2
        k = len(config.sensors)
        self.t = -math.inf
        self._ids = friend_ids(mission_key(config), [s.id for s in config.sensors])
        self._registered = np.array([s.is_platform for s in config.sensors], dtype=bool)
        self._cls = np.array([_CLASS_OF_KIND.get(s.kind, classify.UNKNOWN)
                              for s in config.sensors], dtype=np.intp)
        self._live = np.zeros(k, dtype=bool)
        self._t_fix = np.zeros(k)
        self._first = np.zeros(k)
        self._updates = np.zeros(k, dtype=np.int64)
        self._x = np.zeros((k, 4))
        self.timed_out = 0
        """Platforms dropped for silence so far."""

    def update(self, sensor: int, telemetry: Telemetry,
               enu: tuple[float, float] | None = None) -> None:
        """Take a platform's position fix; fixes older than its last one are ignored.

        ``enu`` is the fix's east, north in the frame when the caller already
        has it (the pipeline converts each fix once for every release group).
        """
        if not self._registered[sensor]:
            return
        ts = telemetry.ts
        live = bool(self._live[sensor])
        if live and ts <= self._t_fix[sensor]:
            return
        if enu is None:
            e, n, _ = self.frame.point_to_enu(telemetry.lat, telemetry.lon, telemetry.alt)
        else:
            e, n = enu
        # Plain floats: one fix is too small for numpy to pay.
        if telemetry.ve is not None and telemetry.vn is not None:
            vel = (telemetry.ve, telemetry.vn)
        elif live:
            dt = ts - float(self._t_fix[sensor])
            vel = ((e - float(self._x[sensor, 0])) / dt, (n - float(self._x[sensor, 1])) / dt)
        else:
            vel = (0.0, 0.0)
        if not live:
            self._first[sensor] = ts
            self._updates[sensor] = 0
        self._x[sensor] = (e, n, *vel)
        self._t_fix[sensor] = ts
        self._updates[sensor] += 1
        self._live[sensor] = True
        self.t = max(self.t, ts)

    def advance(self, t: float) -> None:
        """Move the table's time to ``t`` and drop platforms silent for the timeout."""
        self.t = max(self.t, t)
        gone = self._live & (self.t - self._t_fix > self.timeout_s)
        self.timed_out += int(gone.sum())
        self._live &= ~gone

    def state(self) -> dict[str, NDArray[np.generic]]:
        """The table's state as named arrays (a checkpoint; ``restore`` takes it back)."""
        return {"live": self._live.copy(), "t_fix": self._t_fix.copy(),
                "first": self._first.copy(), "updates": self._updates.copy(),
                "x": self._x.copy(), "scalars": np.array([self.t, self.timed_out])}

    def restore(self, arrays: dict[str, NDArray[np.generic]]) -> None:
        """Take back a ``state``; a KeyError or ValueError when it does not fit this table."""
        for name, target in (("live", self._live), ("t_fix", self._t_fix),
                             ("first", self._first), ("updates", self._updates), ("x", self._x)):
            if arrays[name].shape != target.shape:
                raise ValueError(f"{name}: shape {arrays[name].shape}, needs {target.shape}")
            target[...] = arrays[name]
        t, timed_out = arrays["scalars"].tolist()
        self.t, self.timed_out = t, int(timed_out)

    def snapshot(self) -> TrackTable:
        """Return the live platforms as confirmed tracks extrapolated to the table's time."""
        rows = np.flatnonzero(self._live)
        k = rows.shape[0]
        dt = np.maximum(self.t - self._t_fix[rows], 0.0)
        x = models.predict_mean(self._x[rows], dt)
        probs = np.zeros((k, classify.N_CLASSES))
        probs[np.arange(k), self._cls[rows]] = 1.0
        sources = np.zeros((k, self._live.shape[0]), dtype=bool)
        sources[np.arange(k), rows] = True
        return TrackTable(
            t=self.t, q=self.q, id=self._ids[rows], x=x,
            cov=Covariances(compute=functools.partial(_fix_covariance, dt, self.q)),
            status=np.full(k, CONFIRMED, dtype=np.int8), cls_probs=probs,
            first_seen=self._first[rows].copy(), last_update=self._t_fix[rows].copy(),
            updates=self._updates[rows].copy(), sources=sources)


def _fix_covariance(dt: NDArray[np.float64], q: float) -> NDArray[np.float64]:
    """The covariances of fixes ``dt`` s old: a fix's own, then a CV model's growth."""
    k = dt.shape[0]
    p0 = np.zeros((k, 4, 4))
    p0[:, 0, 0] = p0[:, 1, 1] = POSITION_SIGMA**2
    p0[:, 2, 2] = p0[:, 3, 3] = VELOCITY_SIGMA**2
    return models.predict_covariance(p0, dt, q)
