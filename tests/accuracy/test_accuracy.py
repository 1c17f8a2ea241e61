"""Tracking accuracy of the mission picture on the default scenario, against ground truth.

Each seed's recording is generated with simulators.engine.write_recording,
replayed through hub.cli.replay with config/hub.toml (mission picture) and scored
with hub.cli.score (GOSPA c = 100 m, p = 2, alpha = 2). Bounds sit above what was
measured, with a margin for harmless changes (a tracker tweak, a different
random stream) but well below what a real regression gives (the tracker
before its tuning had 13 and 28 ID switches, false parts of 18 and 34 m).

Measured with config/hub.toml (IMM: stationary, quiet 0.05 (twice, born at
0.5 and 8 m/s) and manoeuvre 2.0 m/s², switch rate 0.003/s, stop rate
0.0001/s; confirm 3 of 4; a confirmed track deleted after 6 radar misses in a row: the
defaults of issue 12, chosen on simulators/families.py, not on this scenario;
frame detections of unknown class widened along the line of sight,
imagery.max_object_height_m = 300), in metres:

    seed    GOSPA  localisation  missed  false   ID switches
    7       69.1   58.0          8.1     3.0     2
    11      69.4   59.6          6.0     3.8     1
    (one quiet model, born at 8 m/s:
    7       69.3   58.2          8.1     3.0     2
    11      69.6   59.8          6.0     3.8     1)
    (before the stationary model and the radar-miss deletion:
    7       70.3   57.6          6.9     5.8     1   (the scenario's seed)
    11      71.6   58.6          5.9     7.1     1)
    (issue 12's defaults, frame detections put on the terrain:
    7       72.9   55.6          6.8     10.5    1
    11      71.5   58.5          5.9     7.1     1
    the defaults before issue 12 (quiet 0.3, manoeuvre 3.0 m/s², switch rate
    0.03/s, speed sigma 15 m/s, 3 of 5), widened frame detections:
    7       71.7   59.0          6.9     5.8     1
    11      71.6   59.5          5.4     6.8     0
    those defaults, frame detections on the terrain:
    7       74.3   57.1          6.8     10.4    1
    11      71.6   59.5          5.4     6.8     0
    and without the frames of the camera-only ken-uav-2:
    7       71.9   59.3          6.9     5.8     1
    11      71.9   59.7          5.4     6.8     0)

Put on the terrain, a frame detection of an airborne target (class uav,
80-300 m up) seen obliquely by ken-uav-2 lands about 300 m beyond the target
along the line of sight, with a covariance of a few metres: outside the gate
of the radar's track of it, it started a track tracked there for 29 s, 4.6 m
of seed 7's false part. A frame detection of unknown class now keeps its mean
on the terrain and is widened along the line of sight by a third of
max_object_height_m (docs/ARCHITECTURE.md, Imagery), so it updates the radar's
track instead; the false part is the one without frames. (Each part is its
share of each time's GOSPA, hub.cli.score: with the false track gone, GOSPA
falls by 2.6 m and localisation's share of it rises by 1.9 m. With the mean
at half the ceiling instead, a uniform height that biases every ground
object, GOSPA was 72.0 and 71.7; a ceiling of 150 or 500 m gave the same
figures as 300 m within 0.1 m.)

Earlier figures, for the regressions the bounds must catch (before the rules
"confirmed tracks first in GNN" and "no new track just outside a missed
confirmed track's gate":
    7       73.7   58.5          6.9     8.3     4
    11      73.2   59.2          5.4     8.7     2
    single CV filter, process_noise 2.0:
    7       80.6   67.3          6.8     6.6     2
    11      86.8   66.8          5.3     14.7    11
    process_noise 1.0, before tuning:
    7       85.5   60.9          6.9     17.7    13
    11      94.1   54.8          5.3     34.0    28)

Bounds (per seed, as BOUNDS below): GOSPA < 79 m for both; missed < 12 m;
false < 8 m (seed 7) and < 9 m (seed 11); ID switches < 4. GOSPA over ~30
targets is dominated by localisation (the sum of ~30 squared errors of ~11 m
RMS each), so its bound is the loosest; the missed and false parts and the
switches are what catch lost, duplicated or clutter tracks. Most of the false
part left is the 8 s a confirmed track coasts after its target died (the
scenario's death rate), not duplicates.

Coverage: every target that stays 10 s inside some sensor's coverage (radar
min/max range around the radar; UAV camera footprint around the UAV's
telemetry position, both with the simulators' own coverage functions) must
have a confirmed track within 50 m at the end of those 10 s. Measured: 34
targets per seed, the farthest nearest confirmed track 35 m (seed 7) and 22 m
(seed 11); the target count depends on the simulators only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from hub import topics
from hub.cli.replay import replay_file
from hub.cli.score import ScoreReport, format_report, read_tracks, score
from hub.config import load_config
from hub.geo import EnuFrame
from hub.messages import Telemetry, Truth, decode
from hub.recording import read_recording
from simulators.engine import write_recording
from simulators.radar import RadarSim
from simulators.scenario import Scenario, load_scenario
from simulators.uav import Pose, UavSim

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "config" / "scenarios" / "default.toml"
CONFIG = ROOT / "config" / "hub.toml"
SEEDS = (7, 11)  # 7 is the scenario's own seed


@dataclass(frozen=True)
class Bounds:
    """Upper bounds on one seed's mean GOSPA, its missed and false parts, and ID switches."""

    gospa: float
    missed: float
    false: float
    id_switches: int


BOUNDS = {7: Bounds(79.0, 12.0, 8.0, 4), 11: Bounds(79.0, 12.0, 9.0, 4)}
DWELL_S = 10.0
MAX_TRACK_DISTANCE = 50.0
_BIG = 1 << 26

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Run:
    """One seed's recording, the mission picture's tracks and their score."""

    seed: int
    recording: Path
    tracks: Path
    report: ScoreReport


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SCENARIO)


@pytest.fixture(scope="module", params=SEEDS, ids=lambda s: f"seed{s}")
def run(request: pytest.FixtureRequest, scenario: Scenario,
        tmp_path_factory: pytest.TempPathFactory) -> Run:
    seed: int = request.param
    folder = tmp_path_factory.mktemp(f"seed{seed}")
    recording, tracks = folder / "default.rec", folder / "tracks.jsonl"
    write_recording(scenario, recording, seed)
    replay_file(recording, load_config(CONFIG), tracks)
    return Run(seed, recording, tracks, score(recording, tracks))


def test_gospa_and_its_parts_stay_under_bounds(run: Run) -> None:
    r, bound = run.report, BOUNDS[run.seed]
    assert r.truth_ids >= 30 and r.times == 300  # the scenario really ran
    assert r.gospa < bound.gospa, format_report(r)
    assert r.missed < bound.missed, format_report(r)
    assert r.false < bound.false, format_report(r)


def test_id_switches_stay_under_bound(run: Run) -> None:
    assert run.report.id_switches < BOUNDS[run.seed].id_switches, format_report(run.report)


@dataclass(frozen=True)
class TruthTable:
    """Every sim/truth row: time, target id, mission ENU east and north."""

    t: Array
    ids: NDArray[np.int64]
    east: Array
    north: Array
    covered: NDArray[np.bool_]


def _truth_and_poses(recording: Path) -> tuple[Array, dict[str, dict[float, Telemetry]]]:
    rows: list[tuple[float, int, float, float, float]] = []
    telemetry: dict[str, dict[float, Telemetry]] = {}
    for _, topic, payload in read_recording(recording):
        if topic == topics.TRUTH:
            truth = decode(payload, Truth, _BIG)
            rows.extend((truth.ts, x.id, x.lat, x.lon, x.alt) for x in truth.targets)
        elif topic.endswith("/telemetry"):
            sensor_id, _ = topics.parse_sensor_topic(topic)
            fix = decode(payload, Telemetry, _BIG)
            telemetry.setdefault(sensor_id, {})[fix.ts] = fix
    return np.array(rows, dtype=np.float64).reshape(-1, 5), telemetry


def _pose(fix: Telemetry, frame: EnuFrame) -> Pose:
    """The UAV pose the hub could know from one telemetry message."""
    e, n, _ = frame.to_enu(np.array([fix.lat]), np.array([fix.lon]), fix.alt)
    return Pose(float(e[0]), float(n[0]), fix.heading, fix.roll, fix.ve or 0.0, fix.vn or 0.0)


def covered_truth(recording: Path, scenario: Scenario) -> TruthTable:
    """Truth rows with whether some sensor could see each target at that time."""
    rows, telemetry = _truth_and_poses(recording)
    o = scenario.origin
    frame = EnuFrame(o.lat, o.lon, o.alt)
    east, north, _ = frame.to_enu(rows[:, 2], rows[:, 3], rows[:, 4])
    covered = np.zeros(len(rows), dtype=bool)
    rng = np.random.default_rng(0)  # unused: coverage draws no random numbers
    for spec in scenario.radars:
        radar = RadarSim(spec, rng)
        covered |= radar.in_coverage(radar.polar_of(rows[:, 2], rows[:, 3], rows[:, 4])[0])
    for uav_spec in scenario.uavs:
        if not uav_spec.detector:
            # A camera-only UAV (ken-uav-2) covers nothing until the hub turns frames
            # into detections; its coverage is the imagery tests' business.
            continue
        uav = UavSim(uav_spec, frame, o.alt, rng)
        fixes = telemetry[uav_spec.id]
        for t in np.unique(rows[:, 0]).tolist():
            at = rows[:, 0] == t
            covered[at] |= uav.in_footprint(_pose(fixes[t], frame), east[at], north[at])
    return TruthTable(rows[:, 0], rows[:, 1].astype(np.int64), east, north, covered)


def dwell_ends(truth: TruthTable) -> list[tuple[int, float, float, float]]:
    """(target id, time, east, north) at the end of each target's first 10 s in coverage."""
    ends = []
    for target in np.unique(truth.ids).tolist():
        rows = np.flatnonzero(truth.ids == target)
        t, ok = truth.t[rows], truth.covered[rows]
        start = None
        for k in range(len(rows)):
            if not ok[k]:
                start = None
                continue
            if start is None or t[k] - t[k - 1] > 1.5:  # newly covered, or back after a gap
                start = k
            if t[k] - t[start] >= DWELL_S:
                ends.append((target, float(t[k]), float(truth.east[rows[k]]),
                             float(truth.north[rows[k]])))
                break
    return ends


def test_every_target_seen_for_10_s_has_a_confirmed_track(run: Run, scenario: Scenario) -> None:
    truth = covered_truth(run.recording, scenario)
    ends = dwell_ends(truth)
    assert len(ends) >= 30
    _, tracks = read_tracks(run.tracks)
    o = scenario.origin
    frame = EnuFrame(o.lat, o.lon, o.alt)
    e, n, _ = frame.to_enu(tracks.lat, tracks.lon)
    confirmed = (tracks.status == 1) & (tracks.affiliation != "friend")
    far: list[tuple[int, float, float]] = []
    for target, t, te, tn in ends:
        # The newest picture at or before t, moved on to t with each track's velocity.
        t_pic = tracks.t[tracks.t <= t].max()
        assert t - t_pic <= 1.5
        use = confirmed & (tracks.t == t_pic)
        dt = t - t_pic
        d = np.hypot(e[use] + tracks.ve[use] * dt - te, n[use] + tracks.vn[use] * dt - tn)
        nearest = float(d.min()) if d.size else np.inf
        if nearest > MAX_TRACK_DISTANCE:
            far.append((target, t, nearest))
    assert not far, f"targets without a confirmed track within {MAX_TRACK_DISTANCE} m: {far}"
