"""The multi-target tracker: IMM (stationary, two quiet, manoeuvre), gating, GNN, M-of-N, classes.

All track state lives in parallel numpy arrays (``TrackRows``), rows [0, n),
grown by doubling; a deleted track's row stays, inert, until an eighth of the
rows are such, then the table is compacted. No Python object per track.
The release groups' trackers share one such table, each row tagged with its
tracker's slot, so a scan several groups fuse costs one pass of bookkeeping
over all their rows, not one per group (``process_scan``).
The float fields are column views of one packed array, so an update
gathers and scatters a track's row once and a prediction is one product.
Each track is stored at the time of its last update (``_LAST``), not at the
tracker's time ``t``: a scan predicts a copy of only the tracks it could
gate (an exact bound from the predicted position and the trace of the
position covariance, see ``TrackRows.near``), and writes back those it updates. A
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
measured position, at rest, with velocity sigma ``init_slow_speed_sigma`` in
one quiet model and ``init_speed_sigma`` in the other (hub.fusion.imm), unless
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

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hub.config import Fusion
from hub.fusion import classify, imm, initiation, models
from hub.fusion.association import Gated, assign, gate, lambda_max2
from hub.fusion.measurements import Scan
from hub.fusion.tracks import COASTING, CONFIRMED, TENTATIVE, Covariances, TrackTable

__all__ = ["COAST_AFTER_S", "TrackRows", "TrackTable", "Tracker", "process_scan"]

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
_MODELS = slice(_XM.start, _PM.stop)
"""The model states and covariances, side by side."""
_NX = _PM.start - _XM.start
"""How many of the ``_MODELS`` columns are the model states."""
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
# Rows of ``TrackRows._reach`` (one contiguous array per quantity, not strided
# columns of the packed rows): the mixture state, those traces (Ppv's twice),
# and the time of the last update.
_R_X, _R_PP, _R_PV2, _R_VV, _R_LAST = slice(0, 4), 4, 5, 6, 7
_REACH_ROWS = 8
Terms = tuple[NDArray[np.float64], NDArray[np.float64]]
"""Each live track's time since its last update and its position trace (``TrackRows.terms``)."""
Rows = tuple[NDArray[np.float64], NDArray[np.float64]]
"""Packed rows (k, _WIDTH) and their ``_reach`` columns (_REACH_ROWS, k)."""


@dataclass(frozen=True, slots=True)
class _Box:
    """What the gating bound needs of a scan: its bounding box and largest λmax(R)."""

    lo: tuple[float, float]
    """The smallest east and north."""
    hi: tuple[float, float]
    lam_r: float

    @staticmethod
    def of(scan: Scan) -> _Box:
        # Column by column: numpy reduces a (m, 2) array along axis 0 a third as fast.
        east, north = scan.z[:, 0], scan.z[:, 1]
        return _Box((float(east.min()), float(north.min())),
                    (float(east.max()), float(north.max())), float(lambda_max2(scan.R).max()))


_NO_ROWS = np.zeros(0, dtype=np.intp)
_GONE = -1
"""The slot of a deleted track's row until the table is compacted (``TrackRows._delete``)."""
_TWINS_FROM = 32
"""Fewer candidates cost a scan their numpy calls, not their rows: no looking for twins."""
_COMPACT_SHARE = 8
"""The table is compacted once more than 1/8 of its rows are deleted tracks'."""
Cols = slice | NDArray[np.intp]
"""Some of a table's rows: all of them (``slice(0, n)``, views) or those listed."""


class TrackRows:
    """The packed rows of the tracks of every tracker sharing them, one per release group.

    Rows [0, n) are each tagged with its tracker's slot (``_owner``), or
    with ``_GONE`` for a deleted track waiting for compaction (``_delete``).
    A tracker's rows keep the order they would have in a table of its own:
    new rows go at the end and deletion keeps the order. A scan several
    trackers fuse thus costs one pass of bookkeeping over all their rows (the
    bound, lost tracks, hits and misses, confirmation, deletion, new tracks)
    rather than one per tracker, and every row's arithmetic is still its own.
    The float fields are column views of one packed array, so an update
    gathers and scatters a track's row once.
    """

    def __init__(self, params: Fusion, n_sensors: int) -> None:
        self.params = params
        self.n_sensors = n_sensors
        # IMM models (hub.fusion.imm): stationary, two quiet (going straight,
        # born slow or fast), manoeuvre (the last, used for gating).
        self.model_q = imm.noises(params.quiet_noise, params.process_noise)
        self.switching = imm.Switching(params.stop_rate, params.model_switch_rate)
        self.speed_priors = imm.speed_priors(params.init_slow_speed_sigma,
                                             params.init_speed_sigma)
        """Each model's velocity variance in a new track."""
        self.n = 0
        self.gone = 0
        """How many of the rows [0, n) are deleted tracks waiting for ``_compact``."""
        self.trackers: list[Tracker | None] = []
        """The tracker of each slot (None once it left)."""
        self.live = 0
        """How many trackers have a slot."""
        self._listed: dict[tuple[int, ...], tuple[NDArray[np.intp], int]] = {}
        """``owned_by``'s lists, by slots, each with the rows [0, n) it covers."""
        self._reach = np.zeros((_REACH_ROWS, 0))
        """What the gating bound needs of each track, by quantity (derived from ``_f``)."""
        self._alloc(_INITIAL_CAPACITY)

    _id: NDArray[np.int64]
    _owner: NDArray[np.int32]
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

    def layout(self) -> dict[str, tuple[tuple[int, ...], type[np.generic]]]:
        """Return each per-track array's row shape and dtype (the float fields are packed)."""
        return {
            "_id": ((), np.int64), "_owner": ((), np.int32), "_f": ((_WIDTH,), np.float64),
            "_confirmed": ((), np.bool_), "_updates": ((), np.int64),
            "_sources": ((self.n_sensors,), np.bool_), "_hist": ((), np.uint32),
            "_misses": ((), np.int32), "_radar_misses": ((), np.int32),
        }

    def _alloc(self, cap: int) -> None:
        """Allocate (or grow to) capacity ``cap`` rows, keeping the live rows."""
        rows = []
        for name, (shape, dtype) in self.layout().items():
            new = np.zeros((cap, *shape), dtype=dtype)
            old = getattr(self, name, None)
            if old is not None:
                new[: self.n] = old[: self.n]
            setattr(self, name, new)
            rows.append(new)
        self._rows: list[NDArray[np.generic]] = rows
        """The per-track arrays of ``layout``, for moving rows without a lookup by name."""
        reach = np.zeros((_REACH_ROWS, cap))
        reach[:, : self.n] = self._reach[:, : self.n]
        self._reach = reach
        f = self._f
        self._x, self._mu, self._cls = f[:, _X], f[:, _MU], f[:, _CLS]
        self._xm, self._pm = f[:, _XM].reshape(cap, _J, 4), f[:, _PM].reshape(cap, _J, 4, 4)
        self._first, self._last = f[:, _FIRST], f[:, _LAST]

    def join(self, tracker: Tracker) -> int:
        """Give ``tracker`` a slot: the tag of its rows."""
        self.trackers.append(tracker)
        self.live += 1
        return len(self.trackers) - 1

    def leave(self, slot: int) -> None:
        """Drop the rows of ``slot``'s tracker and the slot (its release group is gone)."""
        self._delete(self.owned(slot))
        self.trackers[slot] = None
        self.live -= 1

    def owned(self, slot: int) -> NDArray[np.bool_]:
        """Which live rows are ``slot``'s tracker's."""
        mine: NDArray[np.bool_] = self._owner[:self.n] == slot
        return mine

    def owned_by(self, slots: list[int]) -> Cols:
        """The rows of the trackers of ``slots``: a slice when they are every live one.

        A scan seen by a few groups (a UAV's) then touches only their rows,
        and one seen by all (a radar's) works on views, with no gathering.
        Either may take deleted rows too, which no step of a scan can pick.
        """
        if len(slots) == self.live:
            return slice(0, self.n)
        # Kept until the next compaction: rows are only added at the end, and
        # a row deleted since stays listed, as inert as in the slice.
        listed, upto = self._listed.get(tuple(slots), (_NO_ROWS, 0))
        if upto < self.n:
            takes = np.zeros(len(self.trackers) + 1, dtype=np.bool_)  # the last: _GONE's
            takes[slots] = True
            new = upto + np.flatnonzero(takes[self._owner[upto:self.n]])
            listed = np.concatenate((listed, new))
            self._listed[tuple(slots)] = (listed, self.n)
        return listed

    def predicted(self, rows: NDArray[np.intp], t: float) -> NDArray[np.float64]:
        """A copy of the packed ``rows``, each predicted from its last update to ``t``."""
        return _predict(self._f[rows], t, self.model_q)

    def terms(self, t: float, cols: Cols) -> Terms:
        """The rows' (of ``cols``) time to ``t`` since their last update, position trace at ``t``.

        The trace of the widest model's position covariance predicted to ``t``
        in closed form, tr Ppp + 2 dt tr Ppv + dt² tr Pvv + 2 q dt³ / 3: a bound
        on its largest eigenvalue without predicting the track.
        """
        reach = self._reach[:, cols]
        dt = t - reach[_R_LAST]
        cubic = (2.0 / 3.0) * float(self.model_q[-1])
        trace = reach[_R_PP] + dt * (reach[_R_PV2] + dt * (reach[_R_VV] + cubic * dt))
        return dt, trace

    def near(self, box: _Box, chi2: float, terms: Terms, cols: Cols) -> NDArray[np.bool_]:
        """Which rows of ``cols`` may gate (d² ≤ ``chi2``) with some measurement inside ``box``.

        Exact: d² ≥ |y|² / λmax(S) and λmax(S) ≤ tr P_pos + λmax(R), so a
        track whose predicted position is farther than that radius from the
        scan's bounding box in east or north gates with none of it.
        """
        dt, trace = terms
        radius = np.sqrt(chi2 * (trace + box.lam_r) * _BOUND_SLACK)
        x = self._reach[_R_X, cols]
        east = x[0] + dt * x[2]
        north = x[1] + dt * x[3]
        lo, hi = box.lo, box.hi
        inside: NDArray[np.bool_] = ((east + radius >= lo[0]) & (east - radius <= hi[0])
                                     & (north + radius >= lo[1]) & (north - radius <= hi[1]))
        return inside

    def lost(self, t: float, terms: Terms, cols: Cols) -> NDArray[np.bool_]:
        """Which rows of ``cols`` are stale or too uncertain at time ``t``.

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
        rows = self.predicted(_rows(cols, suspects), t)
        p_pos = rows[:, _PM].reshape(k, _J, 4, 4)[:, -1, 0:2, 0:2]
        stale[suspects[lambda_max2(p_pos) > limit2]] = True
        return stale

    def begin(self, scan: Scan, box: _Box | None, slots: list[int], reporter: bool, radar: bool
              ) -> tuple[Cols, NDArray[np.intp]] | None:
        """Drop the lost tracks of ``slots`` at ``scan.t``; their rows, and which the scan may gate.

        The second are positions in the first. ``box``: the scan's
        (``_Box.of``), None for an empty scan, which only counts as a miss
        where its sensor saw a track (and None is returned).
        """
        cols = self.owned_by(slots)
        terms = self.terms(scan.t, cols)
        lost = self.lost(scan.t, terms, cols)
        if lost.any():
            self._delete(self._spread(cols, lost))
            cols = self.owned_by(slots)
            terms = self.terms(scan.t, cols)
        if box is None:
            self.confirm(scan.sensor, cols, _NO_ROWS, reporter, radar)
            return None
        near = self.near(box, self.params.gate_chi2 * INIT_EXCLUSION, terms, cols)
        return cols, np.flatnonzero(near)

    def store(self, hit: NDArray[np.intp], updated: NDArray[np.float64]) -> None:
        """Write back the ``updated`` packed rows of tracks ``hit``."""
        self._f[hit], self._reach[:, hit] = updated, _reach_of(updated)
        self._updates[hit] += 1

    def confirm(self, sensor: int, cols: Cols, hit: NDArray[np.intp], reporter: bool,
                radar: bool) -> None:
        """Record a scan's hits (positions in ``cols``) and misses on the rows ``cols``.

        Then confirm by M-of-N and drop the failed tentative tracks and the
        confirmed ones radars lost (``_missed_by_radars``; ``radar``: the
        scan is a radar's).
        """
        # This scan counts for the tracks it hit and for those its sensor has
        # seen before: after marking the hits as seen (through this view of the
        # sensor's column), that is the column itself. A reporter's scan (a spot
        # report about one thing) says nothing of the rest: only its hits count.
        seen = self._sources[:self.n, sensor]
        seen[_rows(cols, hit)] = True
        counted = seen[cols]
        if reporter:
            counted = np.zeros(counted.shape[0], dtype=np.bool_)
            counted[hit] = True
        if not counted.any():
            # No history moves, so no track is confirmed or fails (both are
            # settled after every change): skip the bookkeeping.
            return
        hist, misses, radar_misses = self._hist[cols], self._misses[cols], self._radar_misses[cols]
        initiation.record(hist, misses, counted, hit, self.params.confirm_n)
        confirmed = self._confirmed[cols]
        # Before this scan's confirmations: a track confirmed now has not been missed.
        gone = self._missed_by_radars(radar_misses, counted, hit, radar, confirmed)
        confirmed |= initiation.reaches_m(hist, self.params.confirm_m)
        if not isinstance(cols, slice):  # gathered copies: put them back
            self._hist[cols], self._misses[cols] = hist, misses
            self._radar_misses[cols], self._confirmed[cols] = radar_misses, confirmed
        failed = ~confirmed & (misses >= self.params.tentative_max_misses)
        self._delete(self._spread(cols, failed | gone))

    def _missed_by_radars(self, misses: NDArray[np.int32], counted: NDArray[np.bool_],
                          hit: NDArray[np.intp], radar: bool, confirmed: NDArray[np.bool_]
                          ) -> NDArray[np.bool_]:
        """Count the radar scans in a row that missed each track; return the confirmed ones gone.

        ``misses``: the rows' counts (``_radar_misses``), counted in place;
        ``counted``, ``hit`` and ``confirmed`` as in ``confirm``. A hit by any
        sensor restarts the count; a scan of a radar (``radar``: its sensor is
        one of ``Tracker.radars``) adds one for each track it counts (it saw
        the track before) and did not hit. A radar sweeps all its coverage
        every scan, so ``radar_miss_limit`` of them in a row (P(miss) = 1 - Pd
        each) mean the target is gone (it died, parked under a GMTI radar,
        left the coverage) long before ``delete_after_s``. A camera's misses
        do not count: its footprint moves on and leaves targets it saw behind.
        Each row keeps its own count, twins too (``_twins`` shares arithmetic only).
        """
        limit = self.params.radar_miss_limit
        if radar and limit > 0:
            misses += counted
            misses[hit] = 0
            gone: NDArray[np.bool_] = confirmed & (misses >= limit)
            return gone
        misses[hit] = 0
        return np.zeros(misses.shape[0], dtype=np.bool_)

    def _spread(self, cols: Cols, flags: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """``flags`` over the rows ``cols`` as flags over all live rows."""
        if isinstance(cols, slice):
            return flags
        every = np.zeros(self.n, dtype=np.bool_)
        every[cols] = flags
        return every

    def initiate(self, trackers: Sequence[Tracker], free: NDArray[np.bool_], sensor: int,
                 fresh: Rows) -> None:
        """Start a tentative track of ``trackers[g]`` at each measurement ``free[g]`` flags.

        ``fresh``: a new track's rows, one per column of ``free``. Each tracker's new
        rows come in measurement order and take its next ids.
        """
        g, mi = np.nonzero(free)
        k = mi.shape[0]
        if k == 0:
            return
        counts = np.bincount(g, minlength=len(trackers))
        firsts = np.array([tracker.take_ids(c) for tracker, c in
                           zip(trackers, counts.tolist(), strict=True)])
        # The i-th new row is number i - start[g] of its tracker's.
        ids = (firsts - (np.cumsum(counts) - counts))[g] + np.arange(k)
        rows = self._append(k)
        self._id[rows] = ids
        self._owner[rows] = np.array([tracker.slot for tracker in trackers])[g]
        self._f[rows] = fresh[0][mi]
        self._reach[:, rows] = fresh[1][:, mi]
        self._updates[rows] = 1
        self._sources[rows] = False
        self._sources[rows, sensor] = True
        self._hist[rows] = 1
        self._misses[rows] = 0
        self._radar_misses[rows] = 0
        self._confirmed[rows] = self.params.confirm_m <= 1

    def _append(self, k: int) -> slice:
        """Make ``k`` new live rows at the end (grown by doubling); their slice."""
        if self.gone and self.n + k > self._id.shape[0]:
            self._compact()
        while self.n + k > self._id.shape[0]:
            self._alloc(2 * self._id.shape[0])
        rows = slice(self.n, self.n + k)
        self.n += k
        return rows

    def _delete(self, dead: NDArray[np.bool_]) -> None:
        """Delete the tracks flagged in ``dead`` (over the rows [0, n)).

        A deleted row stays in place, inert, until more than 1/``_COMPACT_SHARE``
        of the rows are: it has no slot, no scan counts for it (no sources)
        and no bound keeps it (its last-update time is NaN, so every
        comparison with it fails). Then ``_compact`` removes them all in one
        move; moving every row after the first dead one at each deletion (the
        clutter tracks that failed, at most radar scans) cost more than all
        the other bookkeeping of the scan.
        """
        if not dead.any():
            return
        owner = self._owner[:self.n]
        counts = np.bincount(owner[dead], minlength=len(self.trackers))
        for slot in np.flatnonzero(counts).tolist():
            tracker = self.trackers[slot]
            if tracker is not None:
                tracker.deleted += int(counts[slot])
        owner[dead] = _GONE
        self._sources[:self.n][dead] = False
        # Counts that would flag the row again (a failed tentative track, a
        # confirmed one radars lost) start over: a dead row must not die twice.
        self._misses[:self.n][dead] = 0
        self._radar_misses[:self.n][dead] = 0
        self._reach[_R_LAST, :self.n][dead] = np.nan
        self.gone += int(counts.sum())
        if self.gone * _COMPACT_SHARE > self.n:
            self._compact()

    def _compact(self) -> None:
        """Remove the deleted rows, keeping the order of the others."""
        dead = self._owner[:self.n] == _GONE
        # Rows before the first dead one stay put: move only the rest.
        first = int(dead.argmax())
        keep = first + np.flatnonzero(~dead[first:])
        for arr in self._rows:
            arr[first:first + keep.shape[0]] = arr[keep]
        self._reach[:, first:first + keep.shape[0]] = self._reach[:, keep]
        self.n = first + keep.shape[0]
        self.gone = 0
        self._listed.clear()


class Tracker:
    """Track many targets from position scans of ``n_sensors`` sensors.

    ``rows``: the table the tracks live in, shared with the other trackers
    (release groups) of the same fusion config and sensors (and the same
    ``reporters`` and ``radars``: a scan's kind is read off the first
    tracker taking it); by default a table of its own.
    """

    def __init__(self, params: Fusion, n_sensors: int, coast_after_s: float = COAST_AFTER_S,
                 reporters: frozenset[int] = frozenset(), radars: frozenset[int] = frozenset(),
                 rows: TrackRows | None = None) -> None:
        self.rows = TrackRows(params, n_sensors) if rows is None else rows
        if self.rows.params != params or self.rows.n_sensors != n_sensors:
            raise ValueError("a tracker shares rows only with trackers of its fusion config and "
                             "sensors")
        self.slot = self.rows.join(self)
        """The tag of this tracker's rows in ``rows``."""
        self.params = params
        self.n_sensors = n_sensors
        self.reporters = reporters
        """Sensors whose scans are reports of what they point at, not sweeps of an area."""
        self.radars = radars
        """Sensors that sweep all their coverage every scan: their misses count for deletion."""
        self.coast_after_s = coast_after_s
        self.q = params.process_noise**2
        self.t = -math.inf
        self.late_scans = 0
        self._next_id = 1
        self.deleted = 0
        """Tracks deleted so far (a count: a list of their ids would grow for ever)."""

    @property
    def n(self) -> int:
        """How many live tracks this tracker has."""
        return int(np.count_nonzero(self.rows.owned(self.slot)))

    def close(self) -> None:
        """Drop this tracker's tracks from the shared rows (its release group is gone)."""
        self.rows.leave(self.slot)

    def process(self, scan: Scan) -> None:
        """Move to ``scan.t``, then associate, update and initiate from the scan."""
        process_scan([self], scan)

    def takes(self, scan: Scan) -> bool:
        """Move to ``scan.t``; False for a late scan (counted, not applied)."""
        if scan.t < self.t:
            self.late_scans += 1
            return False
        self.t = scan.t
        return True

    def take_ids(self, k: int) -> int:
        """Reserve ``k`` ids for new tracks; the first."""
        first = self._next_id
        self._next_id += k
        return first

    def advance(self, t: float) -> None:
        """Move the tracker's time to ``t`` (if later) and delete stale or lost tracks."""
        if t > self.t:
            self.t = t
            cols, lost = self._lost(t)
            self.rows._delete(self.rows._spread(cols, lost))

    def _lost(self, t: float) -> tuple[Cols, NDArray[np.bool_]]:
        """This tracker's rows in the table, and which of them are lost at ``t``."""
        cols = np.flatnonzero(self.rows.owned(self.slot))
        return cols, self.rows.lost(t, self.rows.terms(t, cols), cols)

    def snapshot(self, t: float | None = None) -> TrackTable:
        """Return copies of the live tracks, predicted to ``t`` (default: the tracker's time).

        A later ``t`` predicts a copy and leaves out the tracks that would be
        lost by then; the stored state stays at the last scan, so a picture's
        time (the fusion time, set by sources the group may not see) never
        reaches the group's own tracks.
        """
        t = self.t if t is None else max(t, self.t)
        table = self.rows
        cols, lost = self._lost(t)
        keep = _rows(cols, np.flatnonzero(~lost))
        rows = table._f[keep]
        # The mixture's mean moves with the models' common F; its covariance
        # (every model predicted, then moment-matched) waits for a reader.
        x = models.predict_mean(rows[:, _X], t - rows[:, _LAST])
        confirmed = table._confirmed[keep]
        last = rows[:, _LAST].copy()
        status = np.where(confirmed, CONFIRMED, TENTATIVE).astype(np.int8)
        status[confirmed & (t - last > self.coast_after_s)] = COASTING
        return TrackTable(
            t=t, q=self.q, id=table._id[keep], x=x,
            cov=Covariances(compute=functools.partial(_mixture_covariance, rows, t,
                                                      table.model_q)),
            status=status, cls_probs=rows[:, _CLS].copy(),
            first_seen=rows[:, _FIRST].copy(), last_update=last,
            updates=table._updates[keep], sources=table._sources[keep])

    def _fields(self) -> dict[str, tuple[tuple[int, ...], type[np.generic]]]:
        """The per-track arrays a checkpoint holds (the slot tag is the table's, not the state)."""
        return {name: kind for name, kind in self.rows.layout().items() if name != "_owner"}

    def state(self) -> dict[str, NDArray[np.generic]]:
        """The tracker's whole state as named arrays (a checkpoint; ``restore`` takes it back)."""
        mine = self.rows.owned(self.slot)
        arrays: dict[str, NDArray[np.generic]] = {
            name: getattr(self.rows, name)[:self.rows.n][mine] for name in self._fields()}
        arrays["scalars"] = np.array([self.t, self.late_scans, self._next_id, self.deleted])
        return arrays

    def restore(self, arrays: dict[str, NDArray[np.generic]]) -> None:
        """Take back a ``state``; a KeyError or ValueError when it does not fit this tracker."""
        n = int(arrays["_id"].shape[0])
        for name, (shape, _) in self._fields().items():
            if arrays[name].shape != (n, *shape):
                raise ValueError(f"{name}: shape {arrays[name].shape}, this tracker needs "
                                 f"{(n, *shape)}")
        table = self.rows
        table._delete(table.owned(self.slot))
        rows = table._append(n)
        for name, (_, dtype) in self._fields().items():
            getattr(table, name)[rows] = arrays[name].astype(dtype, copy=False)
        table._owner[rows] = self.slot
        table._reach[:, rows] = _reach_of(table._f[rows])
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


def process_scan(trackers: Sequence[Tracker], scan: Scan) -> None:
    """``tracker.process(scan)`` for each of ``trackers`` (of one config), the work shared.

    Each tracker (a release group's) keeps its own state: its time, its ids
    and its rows. Trackers sharing one ``TrackRows`` (``_fuse``) do the
    bookkeeping in one pass over their rows and the arithmetic in one pass
    over their candidates, and every row's arithmetic is the row's alone, so
    each tracker's state is, bit for bit, what it would be if it were the
    only one.
    """
    tables: dict[int, list[Tracker]] = {}
    for tracker in trackers:
        tables.setdefault(id(tracker.rows), []).append(tracker)
    for sharing in tables.values():
        _fuse(sharing[0].rows, sharing, scan)


def _fuse(table: TrackRows, trackers: list[Tracker], scan: Scan) -> None:
    """``process_scan`` for trackers sharing ``table``.

    Each tracker moves to the scan's time (``Tracker.takes``); then, over
    the rows of those that take it, the lost tracks go and the candidates are
    picked (``TrackRows.begin``), the candidates are predicted, gated,
    assigned and updated (``_associate``), and the updated rows are stored,
    hits and misses counted and new tracks started.
    """
    taking = [tracker for tracker in trackers if tracker.takes(scan)]
    if not taking:
        return
    box = _Box.of(scan) if len(scan) else None
    reporter, radar = scan.sensor in taking[0].reporters, scan.sensor in taking[0].radars
    begun = table.begin(scan, box, [tracker.slot for tracker in taking], reporter, radar)
    if begun is None:
        return
    cols, near = begun
    ti, updated, free = _associate(table, _rows(cols, near), taking, scan)
    table.store(_rows(cols, near[ti]), updated)
    table.confirm(scan.sensor, cols, near[ti], reporter, radar)
    if free.any():
        # A new track's row depends on its measurement only: built once for every
        # tracker, and only for the measurements some tracker starts a track at.
        wanted = np.flatnonzero(free.any(axis=0))
        born = _fresh(scan.take(wanted), table.speed_priors)
        table.initiate(taking, free[:, wanted], scan.sensor, (born, _reach_of(born)))


def _associate(table: TrackRows, near: NDArray[np.intp], taking: list[Tracker], scan: Scan
               ) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.bool_]]:
    """Predict, gate, assign and update the candidate rows ``near`` of ``taking``.

    Returns which of ``near`` are updated, their updated packed rows, and which
    measurements are free to start a track, one row of flags per tracker.
    The assignment solves each tracker's conflicts apart: one solve over two
    trackers could break a tie differently.
    """
    params, m, k = table.params, len(scan), near.shape[0]
    owner = _takers(table, near, taking)
    f = table._f[near]
    twins = _twins(f) if len(taking) > 1 and k >= _TWINS_FROM else None
    rows = f if twins is None else f[twins.first]
    models = _predicted_models(rows, scan.t, table.model_q)
    # Gate with the manoeuvre model's covariance: a turn must not leave the gate
    # while the quiet model still holds most of the probability.
    wide = gate(rows[:, 0:2], _covariances(models)[-1, 0:2, 0:2].transpose(2, 0, 1), scan.z,
                scan.R, params.gate_chi2 * INIT_EXCLUSION)
    if twins is not None:
        wide = _every_twins(wide, twins)
    gated = wide.within(params.gate_chi2)
    confirmed = table._confirmed[near]
    # Confirmed tracks first: a tentative track (often clutter, at rest with a
    # wide gate) must not take a measurement a confirmed track can use.
    ti, mi = assign(gated, k, m, ~confirmed, TENTATIVE_PENALTY, owner)
    updated = _updated_once(rows, models, ti, mi, scan, table.switching, twins)
    free = np.ones((len(taking), m), dtype=bool)
    # A measurement inside any track's gate is not a new target: starting a
    # track there would only make a duplicate that steals measurements.
    free[_of(owner, gated.ti), gated.mi] = False
    # Nor is one just outside the gate of a confirmed track that this scan
    # missed: that is the track's target manoeuvring, and a new track there
    # would take its next measurements and leave it to coast away.
    if wide.ti.shape[0] > gated.ti.shape[0]:  # some pair is outside the gate
        missed = confirmed.copy()  # not an alias: ``confirmed`` stays the flags it names
        missed[ti] = False
        outside = missed[wide.ti]
        free[_of(owner, wide.ti[outside]), wide.mi[outside]] = False
    return ti, updated, free


def _takers(table: TrackRows, rows: NDArray[np.intp], taking: list[Tracker]
            ) -> NDArray[np.intp] | None:
    """Which of ``taking`` each of ``rows`` is a row of (its place in the list).

    None when one tracker takes the scan (a replay's, or a single group's):
    every row is its own, and the assignment needs no labels.
    """
    if len(taking) == 1:
        return None
    rank = np.zeros(len(table.trackers), dtype=np.intp)
    rank[[tracker.slot for tracker in taking]] = np.arange(len(taking))
    takers: NDArray[np.intp] = rank[table._owner[rows]]
    return takers


def _of(takers: NDArray[np.intp] | None, at: NDArray[np.intp]) -> NDArray[np.intp] | int:
    """The tracker (a row of ``_associate``'s flags) of the candidates ``at`` (``_takers``)."""
    return 0 if takers is None else takers[at]


@dataclass(frozen=True, slots=True)
class _Distinct:
    """The distinct values of some list: the ``first`` position of each; each one's index ``of``."""

    first: NDArray[np.intp]
    of: NDArray[np.intp]

    @staticmethod
    def of_keys(keys: NDArray[np.generic]) -> _Distinct | None:
        """The distinct ``keys``; None when they all differ."""
        _, first, of = np.unique(keys, return_index=True, return_inverse=True)
        return None if first.shape[0] == keys.shape[0] else _Distinct(first, of)


def _twins(f: NDArray[np.float64]) -> _Distinct | None:
    """The distinct packed rows of ``f`` (a contiguous copy), equal bit for bit; None if all differ.

    Release groups that saw the same scans hold the same track, to the bit,
    in one row each (11 groups seeing the same radars: ten rows of eleven),
    and the same arithmetic on them gives the same bits: a scan predicts,
    gates and updates each distinct row once. Keyed by the position's bits,
    then checked on every bit of the row (two tracks at one position are
    treated apart).
    """
    bits = f.view(np.uint64)
    twins = _Distinct.of_keys(bits[:, 0] ^ (bits[:, 1] * np.uint64(0x9E3779B97F4A7C15)))
    if twins is None or not (bits[twins.first[twins.of]] == bits).all():
        return None
    return twins


def _every_twins(pairs: Gated, twins: _Distinct) -> Gated:
    """The gated ``pairs`` of the distinct rows as those of every row: each its twin's."""
    counts = np.bincount(pairs.ti, minlength=twins.first.shape[0])
    by_row = np.argsort(pairs.ti, kind="stable")
    each = counts[twins.of]
    ti = np.repeat(np.arange(each.shape[0]), each)
    # Row i's pairs are the run of its twin's pairs in ``by_row``.
    starts = (np.cumsum(counts) - counts)[twins.of] - (np.cumsum(each) - each)
    at = by_row[np.repeat(starts, each) + np.arange(ti.shape[0])]
    return Gated(ti, pairs.mi[at], pairs.d2[at], pairs.cost[at])


def _updated_once(rows: NDArray[np.float64], models: NDArray[np.float64], ti: NDArray[np.intp],
                  mi: NDArray[np.intp], scan: Scan, switching: imm.Switching,
                  twins: _Distinct | None) -> NDArray[np.float64]:
    """``_updated`` of the predicted candidates ``ti`` with measurements ``mi``.

    ``rows`` and ``models``: as ``_predicted_models`` left them. With
    ``twins``, they are the candidates' distinct rows, and twins
    given the same measurement are one update. Without, every pair differs
    (a candidate takes one measurement at most).
    """
    ri = ti if twins is None else twins.of[ti]
    pairs = None if twins is None or ri.shape[0] < 2 else _Distinct.of_keys(ri * len(scan) + mi)
    if pairs is not None:
        ri, mi = ri[pairs.first], mi[pairs.first]
    updated = _updated(rows[ri], np.take(models, ri, axis=1), scan.z[mi], scan.R[mi],
                       scan.cls[mi], scan.conf[mi], scan.t, switching)
    return updated if pairs is None else updated[pairs.of]


def _rows(cols: Cols, at: NDArray[np.intp]) -> NDArray[np.intp]:
    """The table rows at positions ``at`` of ``cols``."""
    return at if isinstance(cols, slice) else cols[at]


def _predict(f: NDArray[np.float64], t: float, model_q: NDArray[np.float64]
             ) -> NDArray[np.float64]:
    """Predict packed rows ``f`` (a copy) in place, each from its last update to ``t``."""
    f[:, _MODELS] = _predicted_models(f, t, model_q).T
    return f


def _predicted_models(f: NDArray[np.float64], t: float, model_q: NDArray[np.float64]
                      ) -> NDArray[np.float64]:
    """Predict packed rows ``f`` (a copy) to ``t``: the mixture's x in place, the models apart.

    Returns the predicted model states and covariances (the ``_MODELS``
    columns, the tracks last: ``_states``, ``_covariances``), which the update
    takes as they are; ``f``'s own model columns are left as they were.
    """
    dt = t - f[:, _LAST]
    # x moves with the models' common F (it needs no re-weighting).
    f[:, 0:2] += dt[:, None] * f[:, 2:4]
    # The stationary model (at rest, no process noise) is a fixed point of the
    # prediction: only the moving models are predicted.
    moving = slice(imm.STATIONARY + 1, None)
    models = f[:, _MODELS].T.copy()
    imm.predict_tracks_last(_states(models)[moving], _covariances(models)[moving], dt,
                            model_q[moving])
    return models


def _states(models: NDArray[np.float64]) -> NDArray[np.float64]:
    """The model states (J, 4, k) of ``_MODELS`` columns held with the tracks last (a view)."""
    return models[:_NX].reshape(_J, 4, models.shape[1])


def _covariances(models: NDArray[np.float64]) -> NDArray[np.float64]:
    """The model covariances (J, 4, 4, k) of ``_MODELS`` columns held with the tracks last."""
    return models[_NX:].reshape(_J, 4, 4, models.shape[1])


def _mixture_covariance(rows: NDArray[np.float64], t: float, model_q: NDArray[np.float64]
                        ) -> NDArray[np.float64]:
    """The (k, 4, 4) mixture covariances at ``t`` of packed ``rows`` (a copy, predicted here)."""
    k = rows.shape[0]
    rows = _predict(rows, t, model_q)
    _, p = imm.combine(rows[:, _XM].reshape(k, _J, 4), rows[:, _PM].reshape(k, _J, 4, 4),
                       rows[:, _MU])
    return p


def _updated(rows: NDArray[np.float64], models: NDArray[np.float64], z: NDArray[np.float64],
             r: NDArray[np.float64], cls: NDArray[np.int16], conf: NDArray[np.float64], t: float,
             switching: imm.Switching) -> NDArray[np.float64]:
    """Return packed ``rows`` updated with measurements z, R, cls, conf at ``t``.

    ``rows`` and their ``models``: as ``_predicted_models`` left them (the
    models predicted to ``t``, the tracks last).
    """
    k = rows.shape[0]
    if k == 0:
        return rows
    # Mixing happens at updates (see hub.fusion.imm), over the time since the last.
    x, p, mu = imm.mix_update_tracks_last(_states(models), _covariances(models), rows[:, _MU],
                                          switching.over(t - rows[:, _LAST]), z, r)
    rows[:, _X] = np.einsum("jk,jdk->kd", mu, x)
    rows[:, _XM] = x.reshape(4 * _J, k).T
    rows[:, _PM] = p.reshape(16 * _J, k).T
    rows[:, _MU] = mu.T
    rows[:, _CLS] = classify.fuse(rows[:, _CLS], cls, conf)
    rows[:, _LAST] = t
    return rows


def _fresh(scan: Scan, speed_priors: NDArray[np.float64]) -> NDArray[np.float64]:
    """A new tentative track's packed row per measurement of ``scan``: there, at rest.

    Every model starts with the measurement's position and covariance and
    its velocity variance of ``speed_priors`` (``imm.speed_priors``: none
    for the stationary one); model probabilities ``imm.NEW_TRACK_MU``; the
    class is the report fused into a uniform prior.
    """
    m = len(scan)
    f = np.zeros((m, _WIDTH))
    f[:, 0:2] = scan.z
    f[:, _XM].reshape(m, _J, 4)[:] = f[:, None, _X]
    pm = f[:, _PM].reshape(m, _J, 4, 4)
    pm[:, :, 0:2, 0:2] = scan.R[:, None]
    pm[:, :, 2, 2] = pm[:, :, 3, 3] = speed_priors
    f[:, _MU] = imm.NEW_TRACK_MU
    f[:, _CLS] = classify.fuse(classify.uniform(m), scan.cls, scan.conf)
    f[:, _FIRST] = f[:, _LAST] = scan.t
    return f


def _reach_of(f: NDArray[np.float64]) -> NDArray[np.float64]:
    """The ``TrackRows._reach`` columns of packed rows ``f``: what the gating bound needs."""
    reach = np.empty((_REACH_ROWS, f.shape[0]))
    reach[_R_X] = f[:, _X].T
    reach[_R_PP] = f[:, _PP[0]] + f[:, _PP[1]]
    reach[_R_PV2] = 2.0 * (f[:, _PV[0]] + f[:, _PV[1]])
    reach[_R_VV] = f[:, _VV[0]] + f[:, _VV[1]]
    reach[_R_LAST] = f[:, _LAST]
    return reach
