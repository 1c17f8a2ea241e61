"""The multi-target tracker: IMM (stationary, quiet, manoeuvre), gating, GNN, M-of-N, class fusion.

All track state lives in parallel numpy arrays, rows [0, n) live and
contiguous, grown by doubling and compacted on deletion; no Python object per
track. The float fields are column views of one packed array, so an update
gathers and scatters a track's row once and a prediction is one product.
Each track is stored at the time of its last update (``_LAST``), not at the
tracker's time ``t``: a scan predicts a copy of only the tracks it could
gate (an exact bound from the predicted position and the trace of the
position covariance, see ``_near``), and writes back those it updates. A
radar scan sees a few per cent of a wide area's tracks, and a track is
predicted in one step from its last update however many scans passed. The
snapshot predicts copies of all to one time (``snapshot(t)``: a picture's), so
the stored state moves only with the scans a group may see.

Time order. Scans must come in non-decreasing time (the pipeline's reorder
window sees to that). A scan older than ``t`` is not applied: it is dropped
and counted in ``late_scans``, because predicting a filter backwards would
corrupt it. Scans at exactly ``t`` are applied (dt = 0).

Time moves only forward, so ``advance`` must not be called with a time ahead
of what the reorder window has released (use the latest fused measurement
time, not the wall clock), or the scans still held back would arrive late.

Association. GNN over the pairs inside the gate (``gate_chi2``, with the
manoeuvre model's covariance), confirmed tracks first: a tentative track's
pairs carry ``TENTATIVE_PENALTY``, so where the two compete for a measurement
the confirmed track gets it (a tentative track born from clutter, at rest
with a wide gate, used to take a confirmed track's measurements, get
confirmed on them and coast away as a false track).

Initiation. Each measurement left unassigned starts a tentative track at the
measured position, at rest, with velocity sigma ``init_speed_sigma``, unless
it lies inside some track's gate (GNN maximises the number of pairs, so such
a track already took another measurement of this scan, and a new track there
would be a duplicate), or inside the gate widened ``INIT_EXCLUSION`` times in
d² (10⁻⁶ instead of 10⁻³ of a 2-dof chi-square for the default gate) of a
confirmed track this scan missed. That measurement is most likely the
track's own target turning harder than the manoeuvre model expects: a new
track there took the target's next measurements and left the old one to
coast away, one false track and one ID switch per such turn. The track
misses one scan instead, its covariance grows, and the next scan gates.

Deletion. A track dies when it has had no update for ``delete_after_s``, when
its position sigma (square root of the largest eigenvalue of its position
covariance) exceeds ``max_position_sigma``, or, while tentative, after
``tentative_max_misses`` consecutive misses (hub.fusion.initiation says what
counts as a miss), or, once confirmed, after ``radar_miss_limit`` radar scans
in a row that missed it (``_missed_by_radars``). ``deleted`` counts the dead;
ids are never reused.
A *reporter* (a team's spot reports: a person marks one thing at a time)
gives no misses: its report about one object is no evidence against
another it reported before, so its scans count only for the tracks they hit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hub.config import Fusion
from hub.fusion import classify, imm, initiation
from hub.fusion.association import assign, gate, lambda_max2
from hub.fusion.measurements import Scan
from hub.fusion.tracks import COASTING, CONFIRMED, TENTATIVE, TrackTable

__all__ = ["COAST_AFTER_S", "TrackTable", "Tracker", "process_scan"]

COAST_AFTER_S = 3.0
"""A confirmed track not updated for longer than this is reported as coasting."""

_INITIAL_CAPACITY = 64
# Columns of the packed float rows: mixture state, model states and
# covariances, model probabilities, class probabilities, first and last time.
_J = imm.N_MODELS
_X, _XM = slice(0, 4), slice(4, 4 + 4 * _J)
_PM = slice(_XM.stop, _XM.stop + 16 * _J)
_MU = slice(_PM.stop, _PM.stop + _J)
_CLS = slice(_MU.stop, _MU.stop + classify.N_CLASSES)
_FIRST, _LAST = _CLS.stop, _CLS.stop + 1
_WIDTH = _LAST + 1
INIT_EXCLUSION = 2.0
"""A missed confirmed track keeps new tracks out of its gate widened by this factor in d²."""
TENTATIVE_PENALTY = 1e6
"""Cost added to a tentative track's pairs: GNN then prefers confirmed tracks outright."""
_BOUND_SLACK = 1.0 + 1e-9
"""Widens the gating bound past the rounding of the trace's closed form (it must never cut)."""
# The widest model's position covariance entries in the packed row, for
# the closed-form trace of its prediction: P00 + P11, P02 + P13, P22 + P33.
_W = _PM.start + 16 * imm.MANOEUVRE
_PP, _PV, _VV = (_W + 0, _W + 5), (_W + 2, _W + 7), (_W + 10, _W + 15)
# Rows of ``Tracker._reach`` (one contiguous array per quantity, not strided
# columns of the packed rows): the mixture state, those traces (Ppv's twice),
# and the time of the last update.
_R_X, _R_PP, _R_PV2, _R_VV, _R_LAST = slice(0, 4), 4, 5, 6, 7
_REACH_ROWS = 8
Terms = tuple[NDArray[np.float64], NDArray[np.float64]]
"""Each live track's time since its last update and its position trace (``Tracker._terms``)."""
Rows = tuple[NDArray[np.float64], NDArray[np.float64]]
"""Packed rows (k, _WIDTH) and their ``_reach`` columns (_REACH_ROWS, k)."""


@dataclass(frozen=True, slots=True)
class _Box:
    """What the gating bound needs of a scan: its bounding box and largest λmax(R)."""

    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    lam_r: float

    @staticmethod
    def of(scan: Scan) -> _Box:
        return _Box(scan.z.min(axis=0), scan.z.max(axis=0), float(lambda_max2(scan.R).max()))


_NO_ROWS = np.zeros(0, dtype=np.intp)


class Tracker:
    """Track many targets from position scans of ``n_sensors`` sensors."""

    def __init__(self, params: Fusion, n_sensors: int, coast_after_s: float = COAST_AFTER_S,
                 reporters: frozenset[int] = frozenset(),
                 radars: frozenset[int] = frozenset()) -> None:
        self.params = params
        self.n_sensors = n_sensors
        self.reporters = reporters
        """Sensors whose scans are reports of what they point at, not sweeps of an area."""
        self.radars = radars
        """Sensors that sweep all their coverage every scan: their misses count for deletion."""
        self.coast_after_s = coast_after_s
        self.q = params.process_noise**2
        # IMM models (hub.fusion.imm): stationary, quiet (going straight),
        # manoeuvre (the last, used for gating).
        self._model_q = np.array([0.0, params.quiet_noise**2, self.q])
        self._switching = imm.Switching(params.stop_rate, params.model_switch_rate)
        self.t = -math.inf
        self.n = 0
        self.late_scans = 0
        self._next_id = 1
        self.deleted = 0
        """Tracks deleted so far (a count: a list of their ids would grow for ever)."""
        self._reach = np.zeros((_REACH_ROWS, 0))
        """What the gating bound needs of each track, by quantity (derived from ``_f``)."""
        self._alloc(_INITIAL_CAPACITY)

    _id: NDArray[np.int64]
    _f: NDArray[np.float64]
    _x: NDArray[np.float64]
    _confirmed: NDArray[np.bool_]
    _cls: NDArray[np.float64]
    _first: NDArray[np.float64]
    _last: NDArray[np.float64]
    _updates: NDArray[np.int64]
    _sources: NDArray[np.bool_]
    _hist: NDArray[np.uint32]
    _misses: NDArray[np.int32]
    _radar_misses: NDArray[np.int32]
    _xm: NDArray[np.float64]
    _pm: NDArray[np.float64]
    _mu: NDArray[np.float64]

    def _layout(self) -> dict[str, tuple[tuple[int, ...], type[np.generic]]]:
        """Return each per-track array's row shape and dtype (the float fields are packed)."""
        return {
            "_id": ((), np.int64), "_f": ((_WIDTH,), np.float64),
            "_confirmed": ((), np.bool_), "_updates": ((), np.int64),
            "_sources": ((self.n_sensors,), np.bool_), "_hist": ((), np.uint32),
            "_misses": ((), np.int32), "_radar_misses": ((), np.int32),
        }

    def _alloc(self, cap: int) -> None:
        """Allocate (or grow to) capacity ``cap`` rows, keeping the live rows."""
        rows = []
        for name, (shape, dtype) in self._layout().items():
            new = np.zeros((cap, *shape), dtype=dtype)
            old = getattr(self, name, None)
            if old is not None:
                new[: self.n] = old[: self.n]
            setattr(self, name, new)
            rows.append(new)
        self._rows: list[NDArray[np.generic]] = rows
        """The per-track arrays of ``_layout``, for moving rows without a lookup by name."""
        # The float fields are views of one (cap, _WIDTH) array, so an update
        # gathers and scatters each track's row once, not once per field.
        reach = np.zeros((_REACH_ROWS, cap))
        reach[:, : self.n] = self._reach[:, : self.n]
        self._reach = reach
        f = self._f
        self._x, self._mu, self._cls = f[:, _X], f[:, _MU], f[:, _CLS]
        self._xm, self._pm = f[:, _XM].reshape(cap, _J, 4), f[:, _PM].reshape(cap, _J, 4, 4)
        self._first, self._last = f[:, _FIRST], f[:, _LAST]

    def process(self, scan: Scan) -> None:
        """Move to ``scan.t``, then associate, update and initiate from the scan."""
        process_scan([self], scan)

    def _begin(self, scan: Scan, box: _Box | None) -> NDArray[np.intp] | None:
        """Move to ``scan.t`` and drop lost tracks; the rows the scan may gate, None if none.

        ``box``: the scan's (``_Box.of``), None for an empty scan, which only
        counts as a miss where its sensor saw a track. None is returned for it
        and for a late scan (counted, not applied).
        """
        if scan.t < self.t:
            self.late_scans += 1
            return None
        self.t = scan.t
        terms = self._terms(scan.t)
        lost = self._lost(scan.t, terms)
        if lost.any():
            self._delete(lost)
            terms = self._terms(scan.t)
        if box is None:
            self._confirm(scan.sensor, _NO_ROWS)
            return None
        return self._near(box, self.params.gate_chi2 * INIT_EXCLUSION, terms)

    def _finish(self, scan: Scan, hit: NDArray[np.intp], rows: Rows, free: NDArray[np.bool_],
                fresh: Rows | None) -> None:
        """Store the updated ``rows`` of tracks ``hit``, count hits and misses, start new tracks.

        ``fresh``: a new track's rows, one per measurement (None when none is free).
        """
        self._f[hit], self._reach[:, hit] = rows
        self._updates[hit] += 1
        self._confirm(scan.sensor, hit)
        if fresh is not None:
            self._initiate(scan, np.flatnonzero(free), fresh)

    def advance(self, t: float) -> None:
        """Move the tracker's time to ``t`` (if later) and delete stale or lost tracks."""
        if t > self.t:
            self.t = t
            self._delete(self._lost(t, self._terms(t)))

    def snapshot(self, t: float | None = None) -> TrackTable:
        """Return copies of the live tracks, predicted to ``t`` (default: the tracker's time).

        A later ``t`` predicts a copy and leaves out the tracks that would be
        lost by then; the stored state stays at the last scan, so a picture's
        time (the fusion time, set by sources the group may not see) never
        reaches the group's own tracks.
        """
        t = self.t if t is None else max(t, self.t)
        keep = np.flatnonzero(~self._lost(t, self._terms(t)))
        rows = self._predicted(keep, t)
        k = rows.shape[0]
        _, p = imm.combine(rows[:, _XM].reshape(k, _J, 4), rows[:, _PM].reshape(k, _J, 4, 4),
                           rows[:, _MU])
        confirmed = self._confirmed[keep]
        last = rows[:, _LAST].copy()
        status = np.where(confirmed, CONFIRMED, TENTATIVE).astype(np.int8)
        status[confirmed & (t - last > self.coast_after_s)] = COASTING
        return TrackTable(
            t=t, q=self.q, id=self._id[keep], x=rows[:, _X].copy(),
            P=p, status=status, cls_probs=rows[:, _CLS].copy(),
            first_seen=rows[:, _FIRST].copy(), last_update=last,
            updates=self._updates[keep], sources=self._sources[keep])

    def state(self) -> dict[str, NDArray[np.generic]]:
        """The tracker's whole state as named arrays (a checkpoint; ``restore`` takes it back)."""
        n = self.n
        arrays: dict[str, NDArray[np.generic]] = {
            name: getattr(self, name)[:n].copy() for name in self._layout()}
        arrays["scalars"] = np.array([self.t, self.late_scans, self._next_id, self.deleted])
        return arrays

    def restore(self, arrays: dict[str, NDArray[np.generic]]) -> None:
        """Take back a ``state``; a KeyError or ValueError when it does not fit this tracker."""
        n = int(arrays["_id"].shape[0])
        self.n = 0
        self._alloc(max(_INITIAL_CAPACITY, 1 << max(n - 1, 0).bit_length()))
        for name, (shape, dtype) in self._layout().items():
            value = arrays[name]
            if value.shape != (n, *shape):
                raise ValueError(f"{name}: shape {value.shape}, this tracker needs {(n, *shape)}")
            getattr(self, name)[:n] = value.astype(dtype, copy=False)
        self.n = n
        self._reach[:, :n] = _reach_of(self._f[:n])
        t, late, next_id, deleted = arrays["scalars"].tolist()
        self.t, self.late_scans, self.deleted = t, int(late), int(deleted)
        self.reserve_ids(int(next_id))

    def reserve_ids(self, next_id: int) -> None:
        """Give new tracks ids from ``next_id`` up, never below what was given already."""
        self._next_id = max(self._next_id, next_id)

    @property
    def next_id(self) -> int:
        """The id the next new track gets."""
        return self._next_id

    def _predicted(self, rows: NDArray[np.intp], t: float) -> NDArray[np.float64]:
        """A copy of the packed ``rows``, each predicted from its last update to ``t``."""
        return _predict(self._f[rows], t, self._model_q)

    def _terms(self, t: float) -> Terms:
        """Each live track's time to ``t`` since its last update, and its position trace at ``t``.

        The trace of the widest model's position covariance predicted to ``t``
        in closed form, tr Ppp + 2 dt tr Ppv + dt² tr Pvv + 2 q dt³ / 3: a bound
        on its largest eigenvalue without predicting the track.
        """
        reach = self._reach[:, :self.n]
        dt = t - reach[_R_LAST]
        cubic = (2.0 / 3.0) * float(self._model_q[-1])
        trace = reach[_R_PP] + dt * (reach[_R_PV2] + dt * (reach[_R_VV] + cubic * dt))
        return dt, trace

    def _near(self, box: _Box, chi2: float, terms: Terms) -> NDArray[np.intp]:
        """The live rows that may gate (d² ≤ ``chi2``) with some measurement of ``scan``.

        Exact: d² ≥ |y|² / λmax(S) and λmax(S) ≤ tr P_pos + λmax(R), so a
        track whose predicted position is farther than that radius from the
        scan's bounding box in east or north gates with none of it.
        """
        dt, trace = terms
        radius = np.sqrt(chi2 * (trace + box.lam_r) * _BOUND_SLACK)
        x = self._reach[_R_X, :self.n]
        east = x[0] + dt * x[2]
        north = x[1] + dt * x[3]
        lo, hi = box.lo.tolist(), box.hi.tolist()
        inside = ((east + radius >= lo[0]) & (east - radius <= hi[0])
                  & (north + radius >= lo[1]) & (north - radius <= hi[1]))
        return np.flatnonzero(inside)

    def _lost(self, t: float, terms: Terms) -> NDArray[np.bool_]:
        """Return which live tracks are stale or too uncertain at time ``t``.

        Too uncertain: the widest model's position sigma (from the largest
        eigenvalue of its covariance predicted to ``t``) over the limit.
        """
        dt, trace = terms
        limit2 = self.params.max_position_sigma**2
        stale = dt > self.params.delete_after_s
        # Cheap exact screen first: λmax <= trace for a covariance, and most
        # scans lose no track, so the eigenvalues are rarely needed.
        wide = trace > limit2
        if not (stale.any() or wide.any()):
            return stale
        suspects = np.flatnonzero(wide)
        k = suspects.shape[0]
        p_pos = self._predicted(suspects, t)[:, _PM].reshape(k, _J, 4, 4)[:, -1, 0:2, 0:2]
        stale[suspects[lambda_max2(p_pos) > limit2]] = True
        return stale

    def _confirm(self, sensor: int, ti: NDArray[np.intp]) -> None:
        """Record hits and misses of this scan, confirm by M-of-N, drop failed tentatives."""
        n = self.n
        # This scan counts for the tracks it hit and for those its sensor has
        # seen before: after marking the hits as seen (through this view of the
        # sensor's column), that is the column itself. A reporter's scan (a spot
        # report about one thing) says nothing of the rest: only its hits count.
        seen = self._sources[:n, sensor]
        seen[ti] = True
        counted = seen
        if sensor in self.reporters:
            counted = np.zeros(n, dtype=np.bool_)
            counted[ti] = True
        if not counted.any():
            # No history moves, so no track is confirmed or fails (both are
            # settled after every change): skip the bookkeeping.
            return
        initiation.record(self._hist[:n], self._misses[:n], counted, ti, self.params.confirm_n)
        gone = self._missed_by_radars(sensor, counted, ti)
        self._confirmed[:n] |= initiation.reaches_m(self._hist[:n], self.params.confirm_m)
        failed = ~self._confirmed[:n] & (self._misses[:n] >= self.params.tentative_max_misses)
        self._delete(failed | gone)

    def _missed_by_radars(self, sensor: int, counted: NDArray[np.bool_], ti: NDArray[np.intp]
                          ) -> NDArray[np.bool_]:
        """Count the radar scans in a row that missed each track; return the confirmed ones gone.

        A hit by any sensor restarts the count; a scan of a radar (``radars``)
        adds one for each track it counts (``counted``: it saw the track before)
        and did not hit. A radar sweeps all its coverage every scan, so
        ``radar_miss_limit`` of them in a row (P(miss) = 1 - Pd each) mean the
        target is gone (it died, parked under a GMTI radar, left the coverage)
        long before ``delete_after_s``. A camera's misses do not count: its
        footprint moves on and leaves targets it saw behind.
        """
        n = self.n
        misses = self._radar_misses[:n]
        limit = self.params.radar_miss_limit
        if sensor in self.radars and limit > 0:
            misses += counted
            misses[ti] = 0
            gone: NDArray[np.bool_] = self._confirmed[:n] & (misses >= limit)
            return gone
        misses[ti] = 0
        return np.zeros(n, dtype=np.bool_)

    def _initiate(self, scan: Scan, mi: NDArray[np.intp], fresh: Rows) -> None:
        """Start one tentative track at each measurement ``mi``, from its ``fresh`` rows."""
        k = mi.shape[0]
        if k == 0:
            return
        while self.n + k > self._id.shape[0]:
            self._alloc(2 * self._id.shape[0])
        rows = slice(self.n, self.n + k)
        self._id[rows] = np.arange(self._next_id, self._next_id + k)
        self._next_id += k
        self._f[rows] = fresh[0][mi]
        self._reach[:, rows] = fresh[1][:, mi]
        self._updates[rows] = 1
        self._sources[rows] = False
        self._sources[rows, scan.sensor] = True
        self._hist[rows] = 1
        self._misses[rows] = 0
        self._radar_misses[rows] = 0
        self._confirmed[rows] = self.params.confirm_m <= 1
        self.n += k

    def _delete(self, dead: NDArray[np.bool_]) -> None:
        """Remove the rows flagged in ``dead`` (over the live rows), keeping order."""
        if not dead.any():
            return
        self.deleted += int(dead.sum())
        # Rows before the first dead one stay put: move only the rest (the dead
        # are mostly failed tentative tracks, the newest rows).
        first = int(dead.argmax())
        keep = first + np.flatnonzero(~dead[first:])
        for arr in self._rows:
            arr[first:first + keep.shape[0]] = arr[keep]
        self._reach[:, first:first + keep.shape[0]] = self._reach[:, keep]
        self.n = first + keep.shape[0]


def process_scan(trackers: Sequence[Tracker], scan: Scan) -> None:
    """``tracker.process(scan)`` for each of ``trackers`` (of one config), the arithmetic shared.

    Each tracker (a release group's) keeps its own state: it moves to the
    scan's time, drops its lost tracks and picks the tracks the scan may gate
    (``_begin``), and after the shared part it stores its updated tracks,
    counts its hits and misses and starts its new tracks (``_finish``). The
    shared part runs once over the candidates of all: prediction, gating,
    assignment (each tracker's conflicts solved apart from the others') and
    the IMM update. Every row's arithmetic is the row's alone, so each
    tracker's state is, bit for bit, what it would be if it were the only one.
    """
    taking, nears = [], []
    box = _Box.of(scan) if len(scan) else None
    for tracker in trackers:
        near = tracker._begin(scan, box)
        if near is not None:
            taking.append(tracker)
            nears.append(near)
    if not taking:
        return
    params, model_q, switching = taking[0].params, taking[0]._model_q, taking[0]._switching
    m, sizes = len(scan), [near.shape[0] for near in nears]
    owner = np.repeat(np.arange(len(taking)), sizes)
    rows = _predict(np.concatenate([t._f[near] for t, near in zip(taking, nears, strict=True)]),
                    scan.t, model_q)
    k = rows.shape[0]
    # Gate with the manoeuvre model's covariance: a turn must not leave the gate
    # while the quiet model still holds most of the probability.
    wide = gate(rows[:, 0:2], rows[:, _PM].reshape(k, _J, 4, 4)[:, -1, 0:2, 0:2], scan.z,
                scan.R, params.gate_chi2 * INIT_EXCLUSION)
    gated = wide.within(params.gate_chi2)
    confirmed = np.concatenate([t._confirmed[near] for t, near in zip(taking, nears, strict=True)])
    # Confirmed tracks first: a tentative track (often clutter, at rest with a
    # wide gate) must not take a measurement a confirmed track can use.
    ti, mi = assign(gated, k, m, ~confirmed, TENTATIVE_PENALTY, owner)
    updated = _updated(rows[ti], scan.z[mi], scan.R[mi], scan.cls[mi], scan.conf[mi], scan.t,
                       switching)
    free = np.ones((len(taking), m), dtype=bool)
    # A measurement inside any track's gate is not a new target: starting a
    # track there would only make a duplicate that steals measurements.
    free[owner[gated.ti], gated.mi] = False
    # Nor is one just outside the gate of a confirmed track that this scan
    # missed: that is the track's target manoeuvring, and a new track there
    # would take its next measurements and leave it to coast away.
    if wide.ti.shape[0] > gated.ti.shape[0]:  # some pair is outside the gate
        missed = confirmed
        missed[ti] = False
        outside = missed[wide.ti]
        free[owner[wide.ti[outside]], wide.mi[outside]] = False
    # A new track's row depends on its measurement only: built once for every tracker.
    born = _fresh(scan, params.init_speed_sigma) if free.any() else None
    fresh = None if born is None else (born, _reach_of(born))
    by_row = np.argsort(ti, kind="stable")
    ti, updated = ti[by_row], updated[by_row]
    reach = _reach_of(updated)
    starts = np.cumsum([0, *sizes])
    bounds = np.searchsorted(ti, starts).tolist()
    for g, (tracker, near) in enumerate(zip(taking, nears, strict=True)):
        mine = slice(bounds[g], bounds[g + 1])
        tracker._finish(scan, near[ti[mine] - starts[g]], (updated[mine], reach[:, mine]), free[g],
                        fresh)


def _predict(f: NDArray[np.float64], t: float, model_q: NDArray[np.float64]
             ) -> NDArray[np.float64]:
    """Predict packed rows ``f`` (a copy) in place, each from its last update to ``t``."""
    k = f.shape[0]
    dt = t - f[:, _LAST]
    # x moves with the models' common F (it needs no re-weighting).
    f[:, 0:2] += dt[:, None] * f[:, 2:4]
    # The stationary model (at rest, no process noise) is a fixed point of the
    # prediction: only the moving models are predicted.
    moving = slice(imm.STATIONARY + 1, None)
    imm.predict(f[:, _XM].reshape(k, _J, 4)[:, moving], f[:, _PM].reshape(k, _J, 4, 4)[:, moving],
                dt, model_q[moving])
    return f


def _updated(rows: NDArray[np.float64], z: NDArray[np.float64], r: NDArray[np.float64],
             cls: NDArray[np.int16], conf: NDArray[np.float64], t: float,
             switching: imm.Switching) -> NDArray[np.float64]:
    """Return packed ``rows`` (predicted to ``t``) updated with measurements z, R, cls, conf."""
    k = rows.shape[0]
    if k == 0:
        return rows
    # Mixing happens at updates (see hub.fusion.imm), over the time since the last.
    xm, pm, mu = imm.mix_update(rows[:, _XM].reshape(k, _J, 4), rows[:, _PM].reshape(k, _J, 4, 4),
                                rows[:, _MU], switching.over(t - rows[:, _LAST]), z, r)
    rows[:, _X] = np.einsum("kj,kjd->kd", mu, xm)
    rows[:, _XM] = xm.reshape(k, 4 * _J)
    rows[:, _PM] = pm.reshape(k, 16 * _J)
    rows[:, _MU] = mu
    rows[:, _CLS] = classify.fuse(rows[:, _CLS], cls, conf)
    rows[:, _LAST] = t
    return rows


def _fresh(scan: Scan, speed_sigma: float) -> NDArray[np.float64]:
    """A new tentative track's packed row per measurement of ``scan``: there, at rest.

    The moving models start alike, with the measurement's covariance and
    velocity sigma ``speed_sigma``, the stationary one with the same position
    and no velocity; model probabilities ``imm.NEW_TRACK_MU``; the class is
    the report fused into a uniform prior.
    """
    m = len(scan)
    f = np.zeros((m, _WIDTH))
    f[:, 0:2] = scan.z
    f[:, _XM].reshape(m, _J, 4)[:] = f[:, None, _X]
    pm = f[:, _PM].reshape(m, _J, 4, 4)
    pm[:, :, 0:2, 0:2] = scan.R[:, None]
    pm[:, :, 2, 2] = pm[:, :, 3, 3] = speed_sigma**2
    pm[:, imm.STATIONARY, 2, 2] = pm[:, imm.STATIONARY, 3, 3] = 0.0
    f[:, _MU] = imm.NEW_TRACK_MU
    f[:, _CLS] = classify.fuse(classify.uniform(m), scan.cls, scan.conf)
    f[:, _FIRST] = f[:, _LAST] = scan.t
    return f


def _reach_of(f: NDArray[np.float64]) -> NDArray[np.float64]:
    """The ``Tracker._reach`` columns of packed rows ``f``: what the gating bound needs."""
    reach = np.empty((_REACH_ROWS, f.shape[0]))
    reach[_R_X] = f[:, _X].T
    reach[_R_PP] = f[:, _PP[0]] + f[:, _PP[1]]
    reach[_R_PV2] = 2.0 * (f[:, _PV[0]] + f[:, _PV[1]])
    reach[_R_VV] = f[:, _VV[0]] + f[:, _VV[1]]
    reach[_R_LAST] = f[:, _LAST]
    return reach
