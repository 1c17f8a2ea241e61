"""Tracking accuracy: GOSPA and its parts, track counts, ID switches, fragmentations.

Ground truth comes from the ``sim/truth`` messages of a recording; tracks come
from the JSON Lines written by ``hub replay --tracks-out`` (one line per track
per picture update; all lines with the same ``t`` and ``picture`` form that
picture's state at ``t``).

Metric: GOSPA (Rahmathullah, García-Fernández, Svensson, "Generalized optimal
sub-pattern assignment metric", FUSION 2017) with cutoff ``c``, order ``p`` and
``alpha = 2``. With ``alpha = 2`` the optimal assignment can be found by
``linear_sum_assignment`` on ``min(d, c)^p``: a pair at ``d >= c`` costs
``c^p``, exactly what leaving both unassigned costs (``c^p/2`` missed plus
``c^p/2`` false), so such pairs are counted as one missed target and one false
track. Per time the p-th power splits exactly:
``GOSPA^p = localisation + missed + false`` with localisation the sum of
``d^p`` over pairs closer than ``c``, missed ``c^p/2`` per unassigned truth and
false ``c^p/2`` per unassigned track.

Averaging over time: the headline figure is the mean of the per-time GOSPA
(metres). Each per-time GOSPA is split in proportion to the p-th-power
contributions of its parts (``loc_t = GOSPA_t * L_t / GOSPA_t^p`` and likewise
for missed and false), and the parts are averaged the same way, so the three
reported parts add up to the reported GOSPA exactly.

Defaults, ``c = 100 m`` and ``p = 2``: ``p = 2`` makes the localisation part an
RMS-like error that weighs large errors more, as the Kalman filter's own
squared-error criterion does. ``c`` must sit well above a good track's error
(radar cross-range errors of tens of metres at range, UAV geo detections of
5-20 m) so that localisation is not cut, yet well below the spacing of
distinct targets so that a track on the wrong target counts as missed plus
false; 100 m does both for the scenarios in config/scenarios/.

Picture choice per truth time: the most recent picture time ``t_pic <= t``
with ``t - t_pic <= max_age`` (default 2 s, twice the default publish period of
1 s, so one late or skipped update is tolerated). A picture time is any time at
which the picture wrote at least one line; when no picture time lies within
``max_age`` the picture is taken as empty at ``t`` (a picture with no tracks
writes no lines). Tracks are propagated from ``t_pic`` to ``t`` with their own
velocity. Only confirmed and coasting tracks are scored unless
``include_tentative``. Friend tracks are left out by default: the hub makes
them from its own platforms' telemetry, and ``sim/truth`` lists only the
targets, so scoring them would count every UAV as a false track.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from hub import topics
from hub.cli.arguments import UsageError
from hub.errors import PayloadError
from hub.fusion.lsap import linear_sum_assignment
from hub.geo import EnuFrame
from hub.messages import Truth, decode
from hub.recording import RecordingReader

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]

DEFAULT_CUTOFF = 100.0
DEFAULT_ORDER = 2.0
DEFAULT_MAX_AGE = 2.0
MISSION_PICTURE = "mission"
"""The picture built from every source (the id hub.release.groups gives it)."""
_MAX_TRUTH_BYTES = 64 << 20
_STATUSES = ("tentative", "confirmed", "coasting")


class TrackLine(msgspec.Struct, frozen=True):
    """One line of a ``--tracks-out`` file: one track of one picture at time ``t``."""

    t: float
    track_id: str | int
    lat: float
    lon: float
    vn: float
    ve: float
    status: Literal["tentative", "confirmed", "coasting"]
    cls: str = "unknown"
    affiliation: str = "unknown"
    picture: str = MISSION_PICTURE


@dataclass(frozen=True, slots=True)
class Gospa:
    """GOSPA at one time: p-th-power parts and the pairs closer than the cutoff."""

    order: float
    localisation: float
    missed: float
    false: float
    truth_index: IntArray
    track_index: IntArray

    @property
    def distance(self) -> float:
        """GOSPA itself, in metres."""
        return float((self.localisation + self.missed + self.false) ** (1.0 / self.order))


def gospa(truth: Array, tracks: Array, cutoff: float = DEFAULT_CUTOFF,
          order: float = DEFAULT_ORDER) -> Gospa:
    """Compute GOSPA (alpha = 2) between (m, d) truth and (n, d) track positions."""
    truth, tracks = np.asarray(truth, dtype=np.float64), np.asarray(tracks, dtype=np.float64)
    m, n = len(truth), len(tracks)
    half = cutoff**order / 2.0
    empty = np.zeros(0, dtype=np.intp)
    if m == 0 or n == 0:
        return Gospa(order, 0.0, half * m, half * n, empty, empty)
    d = np.sqrt(((truth[:, None, :] - tracks[None, :, :]) ** 2).sum(axis=-1))
    rows, cols = linear_sum_assignment(np.minimum(d, cutoff) ** order)
    near = d[rows, cols] < cutoff
    rows, cols = rows[near].astype(np.intp), cols[near].astype(np.intp)
    assigned = len(rows)
    return Gospa(order, float((d[rows, cols] ** order).sum()), half * (m - assigned),
                 half * (n - assigned), rows, cols)


@dataclass(frozen=True)
class ScoreReport:
    """Accuracy of one picture against ground truth, averaged over the truth times.

    ``localisation + missed + false == gospa`` (see the module docstring);
    ``gospa_per_time`` holds GOSPA at each truth time ``t``, for plots and bounds.
    """

    picture: str
    cutoff: float
    order: float
    max_age: float
    times: int
    gospa: float
    localisation: float
    missed: float
    false: float
    localisation_rms: float
    mean_missed_targets: float
    mean_false_tracks: float
    mean_truths: float
    mean_confirmed: float
    mean_scored_tracks: float
    id_switches: int
    fragmentations: int
    truth_ids: int
    track_ids: int
    gospa_per_time: tuple[float, ...]
    t: tuple[float, ...]


@dataclass(frozen=True)
class TruthSeries:
    """Ground truth as flat arrays sorted by time: row ``i`` is target ``ids[i]`` at ``t[i]``.

    ``times`` holds every distinct truth time, including those with no target.
    """

    times: Array
    t: Array
    ids: NDArray[np.int64]
    lat: Array
    lon: Array


@dataclass(frozen=True)
class TrackSeries:
    """One picture's track lines as flat arrays, sorted by time (stable)."""

    t: Array
    ids: NDArray[np.str_]
    lat: Array
    lon: Array
    vn: Array
    ve: Array
    status: NDArray[np.int8]
    affiliation: NDArray[np.str_]


def read_truth(path: str | Path) -> TruthSeries:
    """Read every ``sim/truth`` message of a whole recording as flat arrays."""
    rows: list[tuple[float, int, float, float]] = []
    times: set[float] = set()
    reader = RecordingReader(path)
    for _, topic, payload in reader:
        if topic != topics.TRUTH:
            continue
        truth = decode(payload, Truth, _MAX_TRUTH_BYTES)
        times.add(truth.ts)
        rows.extend((truth.ts, target.id, target.lat, target.lon) for target in truth.targets)
    if reader.damage is not None:  # the missing end would go unscored, unseen
        raise UsageError(f"{reader.damage}; refusing to score a cut-short truth")
    if not times:
        raise UsageError(f"{path}: no sim/truth message to score against")
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(table[:, 0], kind="stable")
    table = table[order]
    return TruthSeries(np.array(sorted(times), dtype=np.float64), table[:, 0],
                       table[:, 1].astype(np.int64), table[:, 2], table[:, 3])


def read_tracks(path: str | Path, picture: str | None = None) -> tuple[str, TrackSeries]:
    """Read one picture's lines from a ``--tracks-out`` file; return its id and the lines.

    With ``picture`` None the mission picture is chosen, or the only picture in
    the file; a file holding several pictures and no mission picture is an error.
    """
    decoder = msgspec.json.Decoder(TrackLine)
    lines: list[TrackLine] = []
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                lines.append(decoder.decode(line))
            except msgspec.DecodeError as exc:
                raise PayloadError("schema", f"{path}:{number}: {exc}") from exc
    if not lines:  # a replay writes a line per track per picture: this is no replay's output
        raise UsageError(f"{path}: no track lines to score")
    chosen = _choose_picture(path, {line.picture for line in lines}, picture)
    lines = [line for line in lines if line.picture == chosen]
    return chosen, _track_series(lines)


def _choose_picture(path: str | Path, present: set[str], picture: str | None) -> str:
    if picture is not None:
        if picture not in present:
            raise PayloadError("schema",
                               f"{path}: no picture {picture!r}; present: {sorted(present)}")
        return picture
    if MISSION_PICTURE in present:
        return MISSION_PICTURE
    if len(present) == 1:
        return next(iter(present))
    raise PayloadError("schema", f"{path}: several pictures and no {MISSION_PICTURE!r}; "
                                 f"choose one of {sorted(present)}")


def _track_series(lines: Iterable[TrackLine]) -> TrackSeries:
    lines = list(lines)
    numbers = np.array([(x.t, x.lat, x.lon, x.vn, x.ve) for x in lines],
                       dtype=np.float64).reshape(-1, 5)
    ids = np.array([str(x.track_id) for x in lines], dtype=np.str_)
    status = np.array([_STATUSES.index(x.status) for x in lines], dtype=np.int8)
    affiliation = np.array([x.affiliation for x in lines], dtype=np.str_)
    order = np.argsort(numbers[:, 0], kind="stable")
    numbers = numbers[order]
    return TrackSeries(numbers[:, 0], ids[order], numbers[:, 1], numbers[:, 2],
                       numbers[:, 3], numbers[:, 4], status[order], affiliation[order])


def score(truth_path: str | Path, tracks_path: str | Path, *, cutoff: float = DEFAULT_CUTOFF,
          order: float = DEFAULT_ORDER, picture: str | None = None,
          max_age: float = DEFAULT_MAX_AGE, include_tentative: bool = False,
          exclude_affiliations: tuple[str, ...] = ("friend",)) -> ScoreReport:
    """Score the tracks of one picture against the ground truth of a recording.

    Args:
        truth_path: recording holding ``sim/truth`` messages.
        tracks_path: JSON Lines written by ``hub replay --tracks-out``.
        cutoff: GOSPA cutoff ``c`` in metres.
        order: GOSPA order ``p``.
        picture: picture id; None chooses the mission picture (see read_tracks).
        max_age: oldest picture state, in seconds before a truth time, still used.
        include_tentative: score tentative tracks too.
        exclude_affiliations: affiliations never scored (own platforms by default).
    """
    if cutoff <= 0.0 or order < 1.0 or max_age < 0.0:
        raise ValueError("need cutoff > 0, order >= 1 and max_age >= 0")
    truth = read_truth(truth_path)
    chosen, tracks = read_tracks(tracks_path, picture)
    _check_overlap(truth, tracks, max_age, truth_path, tracks_path)
    return score_series(truth, tracks, picture=chosen, cutoff=cutoff, order=order,
                        max_age=max_age, include_tentative=include_tentative,
                        exclude_affiliations=exclude_affiliations)


def _check_overlap(truth: TruthSeries, tracks: TrackSeries, max_age: float,
                   truth_path: str | Path, tracks_path: str | Path) -> None:
    """Refuse tracks that no truth time can use: GOSPA would be all missed targets."""
    latest = np.searchsorted(tracks.t, truth.times, side="right") - 1
    age = truth.times - tracks.t[np.maximum(latest, 0)]
    if not np.any((latest >= 0) & (age <= max_age)):
        raise UsageError(f"{tracks_path}: no picture within {max_age:g} s of a truth time in "
                         f"{truth_path} (tracks {_span(tracks.t)}, truth {_span(truth.times)})")


def _span(t: Array) -> str:
    first, last = (datetime.fromtimestamp(float(x), UTC) for x in (t.min(), t.max()))
    return f"{first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} UTC"


def score_series(truth: TruthSeries, tracks: TrackSeries, *, picture: str,
                 cutoff: float = DEFAULT_CUTOFF, order: float = DEFAULT_ORDER,
                 max_age: float = DEFAULT_MAX_AGE,
                 include_tentative: bool = False,
                 exclude_affiliations: tuple[str, ...] = ("friend",)) -> ScoreReport:
    """Score already-read truth and track series (see score)."""
    if len(truth.times) == 0:
        raise PayloadError("schema", "the recording holds no sim/truth message to score against")
    frame = _frame(truth, tracks)
    truth_e, truth_n, _ = frame.to_enu(truth.lat, truth.lon)
    track_e, track_n, _ = frame.to_enu(tracks.lat, tracks.lon)
    scored = (np.ones(len(tracks.t), dtype=bool) if include_tentative
              else tracks.status != _STATUSES.index("tentative"))
    kept = ~np.isin(tracks.affiliation, list(exclude_affiliations))
    scored &= kept
    confirmed = (tracks.status == _STATUSES.index("confirmed")) & kept
    pic_times, pic_starts = np.unique(tracks.t, return_index=True)
    pic_ends = np.append(pic_starts[1:], len(tracks.t))
    times = truth.times
    truth_starts = np.searchsorted(truth.t, times, side="left")
    truth_ends = np.searchsorted(truth.t, times, side="right")
    _, track_codes = np.unique(tracks.ids, return_inverse=True)

    parts = np.zeros((len(times), 3))
    counts = np.zeros((len(times), 4), dtype=np.int64)  # truths, confirmed, scored, assigned
    assigned = np.full(len(truth.t), -1, dtype=np.int64)  # track code per truth row
    for k, t in enumerate(times):
        rows = slice(truth_starts[k], truth_ends[k])
        xy_truth = np.column_stack((truth_e[rows], truth_n[rows]))
        lo, hi = _picture_rows(pic_times, pic_starts, pic_ends, float(t), max_age)
        use = lo + np.flatnonzero(scored[lo:hi])
        dt = t - tracks.t[use]
        xy_track = np.column_stack((track_e[use] + tracks.ve[use] * dt,
                                    track_n[use] + tracks.vn[use] * dt))
        g = gospa(xy_truth, xy_track, cutoff, order)
        parts[k] = g.localisation, g.missed, g.false
        counts[k] = len(xy_truth), confirmed[lo:hi].sum(), len(use), len(g.truth_index)
        assigned[truth_starts[k] + g.truth_index] = track_codes[use][g.track_index]

    switches = count_switches(truth.ids, np.searchsorted(times, truth.t), assigned)
    return _report(picture, cutoff, order, max_age, times, parts, counts, switches,
                   truth, tracks, scored)


def _frame(truth: TruthSeries, tracks: TrackSeries) -> EnuFrame:
    """ENU frame at the first truth position (or first track): metres near the action."""
    for lat, lon in ((truth.lat, truth.lon), (tracks.lat, tracks.lon)):
        if len(lat):
            return EnuFrame(float(lat[0]), float(lon[0]))
    return EnuFrame(0.0, 0.0)


def _picture_rows(pic_times: Array, starts: IntArray, ends: IntArray, t: float,
                  max_age: float) -> tuple[int, int]:
    """Row range of the picture state used at truth time ``t`` (empty when too old)."""
    k = int(np.searchsorted(pic_times, t, side="right")) - 1
    if k < 0 or t - pic_times[k] > max_age:
        return 0, 0
    return int(starts[k]), int(ends[k])


def count_switches(truth_ids: NDArray[np.int64], time_index: NDArray[np.intp],
                   assigned: NDArray[np.int64]) -> tuple[int, int]:
    """Count ID switches and fragmentations from per-(truth, time) assignments.

    ``assigned`` is the track code assigned to the truth at that time, or -1.
    An ID switch is a change of assigned track between consecutive times at
    which the truth is assigned. A fragmentation is a resumption: the truth is
    assigned, was unassigned at its previous time and was assigned before that.
    """
    if len(truth_ids) == 0:
        return 0, 0
    order = np.lexsort((time_index, truth_ids))
    ids, codes = truth_ids[order], assigned[order]
    is_assigned = codes >= 0
    a_ids, a_codes = ids[is_assigned], codes[is_assigned]
    switches = int(np.count_nonzero((a_ids[1:] == a_ids[:-1]) & (a_codes[1:] != a_codes[:-1])))
    same = ids[1:] == ids[:-1]
    group_start = np.flatnonzero(np.r_[True, ~same])
    cum = np.cumsum(is_assigned)
    before_group: NDArray[np.int64] = np.repeat(cum[group_start] - is_assigned[group_start],
                             np.diff(np.r_[group_start, len(ids)]))
    before: NDArray[np.int64] = cum - is_assigned - before_group  # assigned earlier, same truth
    resumed = is_assigned[1:] & ~is_assigned[:-1] & same & (before[1:] > 0)
    return switches, int(np.count_nonzero(resumed))


def _report(picture: str, cutoff: float, order: float, max_age: float, times: Array,
            parts: Array, counts: NDArray[np.int64], switches: tuple[int, int],
            truth: TruthSeries, tracks: TrackSeries, scored: NDArray[np.bool_]) -> ScoreReport:
    total = parts.sum(axis=1)
    per_time = total ** (1.0 / order)
    # Split each time's GOSPA in proportion to its parts' p-th-power contributions.
    share = np.divide(parts, total[:, None], out=np.zeros_like(parts), where=total[:, None] > 0)
    split = (share * per_time[:, None]).mean(axis=0)
    half = cutoff**order / 2.0
    assigned = counts[:, 3].sum()
    return ScoreReport(
        picture=picture, cutoff=cutoff, order=order, max_age=max_age, times=len(times),
        gospa=float(per_time.mean()), localisation=float(split[0]), missed=float(split[1]),
        false=float(split[2]),
        localisation_rms=float((parts[:, 0].sum() / assigned) ** (1.0 / order))
        if assigned else 0.0,
        mean_missed_targets=float(parts[:, 1].mean() / half),
        mean_false_tracks=float(parts[:, 2].mean() / half),
        mean_truths=float(counts[:, 0].mean()), mean_confirmed=float(counts[:, 1].mean()),
        mean_scored_tracks=float(counts[:, 2].mean()), id_switches=switches[0],
        fragmentations=switches[1], truth_ids=len(np.unique(truth.ids)),
        track_ids=len(np.unique(tracks.ids[scored])),
        gospa_per_time=tuple(per_time.tolist()), t=tuple(times.tolist()))


def format_report(report: ScoreReport) -> str:
    """Render a report as the text ``hub score`` prints."""
    p = f"{report.order:g}"
    return "\n".join([
        f"picture {report.picture}: {report.times} truth times, "
        f"{report.truth_ids} targets, {report.track_ids} scored track ids",
        f"GOSPA (c = {report.cutoff:g} m, p = {p}, alpha = 2), mean over time:",
        f"  GOSPA            {report.gospa:9.2f} m",
        f"    localisation   {report.localisation:9.2f} m",
        f"    missed         {report.missed:9.2f} m",
        f"    false          {report.false:9.2f} m",
        f"  localisation error of assigned pairs (mean of d^{p}, ^1/{p}) "
        f"{report.localisation_rms:.2f} m",
        f"  missed targets per time   {report.mean_missed_targets:8.2f}",
        f"  false tracks per time     {report.mean_false_tracks:8.2f}",
        f"truths per time             {report.mean_truths:8.2f}",
        f"confirmed tracks per time   {report.mean_confirmed:8.2f}",
        f"scored tracks per time      {report.mean_scored_tracks:8.2f}",
        f"ID switches                 {report.id_switches:8d}",
        f"fragmentations              {report.fragmentations:8d}",
        f"(parts split each time's GOSPA by p-th-power share, so they add up to GOSPA; "
        f"picture states up to {report.max_age:g} s old are used)",
    ])
