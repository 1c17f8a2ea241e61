"""Mahalanobis gating and global nearest neighbour assignment of one scan to the tracks.

Gating is vectorised over all tracks and measurements in three steps, each
exact about what it discards. Since λmax(S) ≤ λmax(P_pos) + λmax(R), a pair
whose squared distance exceeds ``chi2·(λmax(P_pos) + λmax(R))`` has d² > chi2.
First a sweep over the measurements sorted by north stripe, then east, keeps
the pairs whose east offset is within that bound (taken with the scan's
largest R) in the track's stripe and the two beside it (``_stripe_pairs``),
then the 2-D distance is tested against the pair's own bound, and only the
survivors get the exact d² = yᵀ S⁻¹ y. 300 tracks × 300 measurements over
10 km thus cost some 600 candidate pairs, not 90,000 (nor the 6,000 of an
east band alone). Small scenes (a few thousand pairs) skip the bounds and
compute d² for every pair: fewer numpy calls, same d².

Assignment is classical GNN: among the gated pairs, the assignment with the
most pairs, and among those the least total cost ``d² + ln det S`` (the
negative log-likelihood up to a constant, which favours the sharper track of
two at the same distance), plus a penalty on the pairs of ``junior`` tracks
(the tracker's tentative ones) big enough that a conflict goes to a senior
track whenever the number of pairs allows. A pair whose track and
measurement gate with nothing else is assigned directly; all the other pairs
(the conflicting clusters) go to one scipy linear_sum_assignment over just
their rows and columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hub.fusion.lsap import linear_sum_assignment

Array = NDArray[np.float64]
Index = NDArray[np.intp]

# Cost of a non-gated cell inside a cluster: larger than any sum of real costs,
# so the solver first maximises the number of real pairs.
_FORBIDDEN = 1e12

# Up to this many track x measurement pairs the gate computes d² for all of
# them (a dozen whole-matrix operations); above, the striped sweep wins. The two
# cost the same at 6,000 to 10,000 pairs (timed on the radar scans of targets300
# and of a sparse independent family, where scans of ~60 detections against ~70
# tracks fall between: 82 µs all pairs, 108 µs the sweep).
_DENSE_PAIRS = 8000
_RADIUS_SLACK = 1.0 + 1e-6
"""Widens the sweep's radius and stripes past rounding: a bound must never cut."""
_ENTRIES = ((0, 0), (0, 1), (1, 0), (1, 1))
"""The entries of a 2x2 matrix, row by row."""
_BESIDE = np.array([-1.0, 0.0, 1.0])
"""A track's stripe and those beside it, as offsets."""


@dataclass(frozen=True, slots=True)
class Gated:
    """Pairs that passed the gate: track ``ti``, measurement ``mi``, ``d2``, ``cost``."""

    ti: Index
    mi: Index
    d2: Array
    cost: Array

    def within(self, chi2: float) -> Gated:
        """Return the pairs with d² ≤ ``chi2``."""
        ok = self.d2 <= chi2
        return Gated(self.ti[ok], self.mi[ok], self.d2[ok], self.cost[ok])


def lambda_max2(m: Array) -> Array:
    """Return the largest eigenvalue of each symmetric 2x2 matrix in a stack (K, 2, 2)."""
    a, b, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 1]
    half_tr = 0.5 * (a + d)
    return half_tr + np.sqrt(np.maximum(0.25 * (a - d) ** 2 + b * b, 0.0))


def gate(pos: Array, p_pos: Array, z: Array, r: Array, chi2: float) -> Gated:
    """Gate predicted positions (T, 2) with covariances (T, 2, 2) against z (M, 2), R (M, 2, 2)."""
    if pos.shape[0] == 0 or z.shape[0] == 0:
        empty = np.zeros(0, dtype=np.intp)
        return Gated(empty, empty, np.zeros(0), np.zeros(0))
    if pos.shape[0] * z.shape[0] <= _DENSE_PAIRS:
        return _gate_all_pairs(pos, p_pos, z, r, chi2)
    # Contiguous columns: a gather from a 1-D array is a plain loop, one from
    # a strided (T, 2, 2) stack goes through numpy's general indexing.
    pe, pn, ze, zn = (np.ascontiguousarray(a) for a in (pos[:, 0], pos[:, 1], z[:, 0], z[:, 1]))
    lam_p, lam_r = lambda_max2(p_pos), lambda_max2(r)
    radius = np.sqrt(chi2 * (lam_p + lam_r.max())) * _RADIUS_SLACK
    ti, mi = _stripe_pairs(pe, pn, radius, ze, zn)
    de = ze[mi] - pe[ti]
    dn = zn[mi] - pn[ti]
    near = np.flatnonzero(de * de + dn * dn <= chi2 * (lam_p[ti] + lam_r[mi]))
    ti, mi, de, dn = ti[near], mi[near], de[near], dn[near]
    # S = P + R entry by entry: gathers from (strided) 1-D views, not from (T, 2, 2) stacks.
    a, b, c, d = (p_pos[:, i, j][ti] + r[:, i, j][mi] for i, j in _ENTRIES)
    det = a * d - b * c
    # yᵀ S⁻¹ y written out for 2x2 S: no stacked inverse, no einsum.
    d2 = (d * de * de - (b + c) * de * dn + a * dn * dn) / det
    ok = np.flatnonzero(d2 <= chi2)
    return Gated(ti[ok], mi[ok], d2[ok], d2[ok] + np.log(det[ok]))


def _gate_all_pairs(pos: Array, p_pos: Array, z: Array, r: Array, chi2: float) -> Gated:
    """Return the gated pairs of a small scene, computing the exact d² of all T x M pairs.

    For small scenes a dozen whole-matrix operations cost less than the
    bounds, sort and gathers of the sparse path; the d² are the same numbers.
    """
    de = z[None, :, 0] - pos[:, 0, None]
    dn = z[None, :, 1] - pos[:, 1, None]
    a = p_pos[:, 0, 0, None] + r[None, :, 0, 0]
    b = p_pos[:, 0, 1, None] + r[None, :, 0, 1]
    c = p_pos[:, 1, 0, None] + r[None, :, 1, 0]
    d = p_pos[:, 1, 1, None] + r[None, :, 1, 1]
    det = a * d - b * c
    d2 = (d * de * de - (b + c) * de * dn + a * dn * dn) / det
    ti, mi = np.nonzero(d2 <= chi2)
    d2 = d2[ti, mi]
    return Gated(ti, mi, d2, d2 + np.log(det[ti, mi]))


def _stripe_pairs(track_e: Array, track_n: Array, radius: Array, meas_e: Array,
                  meas_n: Array) -> tuple[Index, Index]:
    """Every (track, measurement) pair within ``radius`` in east and in north, and some more.

    The measurements are cut into stripes along north as wide as the largest
    radius, so a track's measurements lie in its own stripe or one beside
    it, and sorted by stripe, then east: each track's candidates are three
    runs of that order (its east interval in each of the three stripes),
    found by binary search. The work is O((T + M) log M + pairs), the pairs
    those of a 3 x 2 radius box about each track rather than of a band across
    the whole scene.
    """
    width = float(radius.max()) * _RADIUS_SLACK
    n0, e0 = float(meas_n.min()), float(meas_e.min())
    span = float(meas_e.max()) - e0
    # A stripe's keys lie in [s·pitch, s·pitch + span]; the searched intervals
    # are clipped to a margin of 1 about that, so no two stripes' overlap.
    pitch = span + 4.0
    key = np.floor((meas_n - n0) / width) * pitch + (meas_e - e0)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    base = (np.floor((track_n - n0) / width)[:, None] + _BESIDE) * pitch
    lo_e = np.maximum(track_e - radius - e0, -1.0)[:, None]
    hi_e = np.minimum(track_e + radius - e0, span + 1.0)[:, None]
    lo = np.searchsorted(sorted_key, (base + lo_e).ravel(), side="left")
    counts = np.maximum(np.searchsorted(sorted_key, (base + hi_e).ravel(), side="right") - lo, 0)
    runs = np.repeat(np.arange(counts.shape[0]), counts)
    start = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    return runs // _BESIDE.shape[0], order[start + np.arange(runs.shape[0])]


def assign(gated: Gated, n_tracks: int, n_meas: int, junior: NDArray[np.bool_] | None = None,
           penalty: float = 0.0, owner: Index | None = None) -> tuple[Index, Index]:
    """Return (track indices, measurement indices) of the GNN assignment of gated pairs.

    ``penalty`` is added to the cost of the pairs of the ``junior`` tracks
    (flags over all tracks); only conflicts can feel it, so only they pay for it.
    ``owner`` (one label per track) makes separate problems of the tracks of
    each label, every measurement available to each (release groups fusing
    the same scan): a label's pairs are assigned as if it were alone.
    """
    ti, mi, cost = gated.ti, gated.mi, gated.cost
    if ti.shape[0] == 0:
        return ti, mi
    # A pair whose track and measurement gate with nothing else is its own
    # cluster: assigned at once. (Measurement j of label g counts as g·M + j.)
    key = mi if owner is None else mi + n_meas * owner[ti]
    alone = (np.bincount(ti, minlength=n_tracks)[ti] == 1) & (np.bincount(key)[key] == 1)
    if alone.all():
        return ti, mi
    rest = ~alone
    ti, mi, cost = ti[rest], mi[rest], cost[rest]
    if junior is not None:
        cost = cost + penalty * junior[ti]
    t_sel, m_sel = _solve_apart(ti, mi, cost, None if owner is None else owner[ti])
    return np.concatenate((gated.ti[alone], t_sel)), np.concatenate((gated.mi[alone], m_sel))


def _solve_apart(ti: Index, mi: Index, cost: Array, label: Index | None) -> tuple[Index, Index]:
    """``_solve_conflicts`` once per ``label`` (of each pair; None: one solve).

    One solve over two labels' conflicts could break a tie differently from
    each alone (the forbidden cells' costs round): a label's must be its own.
    """
    if label is None or np.all(label == label[0]):
        return _solve_conflicts(ti, mi, cost)
    picked = [_solve_conflicts(ti[mine], mi[mine], cost[mine])
              for mine in (label == g for g in np.unique(label).tolist())]
    return np.concatenate([p[0] for p in picked]), np.concatenate([p[1] for p in picked])


def _solve_conflicts(ti: Index, mi: Index, cost: Array) -> tuple[Index, Index]:
    """Solve every conflicting cluster at once: one linear_sum_assignment over their union.

    The clusters share no track or measurement, so the union's matrix is
    block-diagonal up to forbidden cells, and its optimum (most real pairs,
    then least cost) is the union of the clusters' optima: one small dense
    solve instead of a graph search and one solve per cluster.
    """
    tracks, t_local = np.unique(ti, return_inverse=True)
    meas, m_local = np.unique(mi, return_inverse=True)
    matrix = np.full((tracks.shape[0], meas.shape[0]), _FORBIDDEN)
    matrix[t_local, m_local] = cost
    rows, cols = linear_sum_assignment(matrix)
    real = matrix[rows, cols] < _FORBIDDEN
    return tracks[rows[real]], meas[cols[real]]
