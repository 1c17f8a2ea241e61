"""GOSPA against hand-computed values, switch counting, and score() on small files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.cli.score import count_switches, format_report, gospa, score
from hub.errors import PayloadError
from hub.geo import EnuFrame
from hub.recording import RecordingWriter

T0 = 1_700_000_000.0
LAT0, LON0 = 9.0, 18.0


def pts(*xy: tuple[float, float]) -> np.ndarray:
    return np.array(xy, dtype=np.float64).reshape(-1, 2)


# --- GOSPA, hand-computed -------------------------------------------------------------------

def test_empty_sets_score_zero() -> None:
    g = gospa(pts(), pts(), cutoff=10.0, order=2.0)
    assert (g.distance, g.localisation, g.missed, g.false) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(("order", "expected"), [(1.0, 15.0), (2.0, math.sqrt(150.0))])
def test_all_missed_cost_half_cutoff_power_each(order: float, expected: float) -> None:
    g = gospa(pts((0, 0), (50, 0), (0, 70)), pts(), cutoff=10.0, order=order)
    assert g.distance == pytest.approx(expected)
    assert g.missed == pytest.approx(3 * 10.0**order / 2) and g.false == 0.0


@pytest.mark.parametrize(("order", "expected"), [(1.0, 10.0), (2.0, 10.0)])
def test_all_false_cost_half_cutoff_power_each(order: float, expected: float) -> None:
    g = gospa(pts(), pts((1, 1), (2, 2)), cutoff=10.0, order=order)
    assert g.distance == pytest.approx(expected)
    assert g.false == pytest.approx(10.0**order) and g.missed == 0.0


@pytest.mark.parametrize("order", [1.0, 2.0])
def test_one_matched_pair_costs_its_distance(order: float) -> None:
    g = gospa(pts((0, 0)), pts((3, 4)), cutoff=10.0, order=order)
    assert g.distance == pytest.approx(5.0)
    assert g.localisation == pytest.approx(5.0**order)
    assert g.truth_index.tolist() == [0] and g.track_index.tolist() == [0]


def test_pair_beyond_cutoff_counts_as_missed_and_false() -> None:
    near = gospa(pts((0, 0)), pts((9, 0)), cutoff=10.0, order=2.0)
    far = gospa(pts((0, 0)), pts((20, 0)), cutoff=10.0, order=2.0)
    assert near.distance == pytest.approx(9.0) and near.missed == 0.0
    assert far.distance == pytest.approx(10.0)
    assert (far.localisation, far.missed, far.false) == (0.0, 50.0, 50.0)
    assert len(far.truth_index) == 0


@pytest.mark.parametrize(("order", "expected"), [(1.0, 3 + 4 + 5.0), (2.0, math.sqrt(75.0))])
def test_mixed_case(order: float, expected: float) -> None:
    g = gospa(pts((0, 0), (100, 0)), pts((0, 3), (100, 4), (500, 500)), cutoff=10.0, order=order)
    assert g.distance == pytest.approx(expected)
    assert g.missed == 0.0 and g.false == pytest.approx(10.0**order / 2)


def test_assignment_is_optimal_not_greedy() -> None:
    # Greedy nearest neighbour would pair 10 with 6 (4 m) and leave 0 with 16 (16 m).
    g = gospa(pts((0, 0), (10, 0)), pts((6, 0), (16, 0)), cutoff=20.0, order=2.0)
    assert g.distance == pytest.approx(math.sqrt(72.0))


def brute_gospa(x: np.ndarray, y: np.ndarray, c: float, p: float) -> float:
    """GOSPA from its definition: minimum over every partial assignment, no cut distances."""
    def best(i: int, used: frozenset[int]) -> float:
        if i == len(x):
            return c**p / 2 * (len(y) - len(used))
        options = [c**p / 2 + best(i + 1, used)]
        options += [float(np.hypot(*(x[i] - y[j]))) ** p + best(i + 1, used | {j})
                    for j in range(len(y)) if j not in used]
        return min(options)
    return float(best(0, frozenset()) ** (1 / p))


coords = st.lists(st.tuples(st.floats(-30, 30), st.floats(-30, 30)), max_size=4)


@settings(max_examples=150, deadline=None)
@given(coords, coords, st.sampled_from([1.0, 2.0, 3.0]))
def test_matches_brute_force_definition(x: list[tuple[float, float]],
                                        y: list[tuple[float, float]], p: float) -> None:
    tx, ty = pts(*x), pts(*y)
    assert gospa(tx, ty, cutoff=15.0, order=p).distance == pytest.approx(
        brute_gospa(tx, ty, 15.0, p), rel=1e-9, abs=1e-9)


# --- ID switches and fragmentations -----------------------------------------------------------

def test_switches_and_fragmentations_on_a_hand_made_sequence() -> None:
    a, b, c = 0, 1, 2
    sequences = {
        1: [a, a, b, -1, b, a],   # switches a->b, b->a (across the gap); one resumption
        2: [-1, -1, c, c, -1, -1],  # late start and early end: neither switch nor fragment
        3: [a, -1, -1, a],          # same track after a gap: one fragmentation, no switch
    }
    rows = [(truth, time, code) for truth, seq in sequences.items()
            for time, code in enumerate(seq)]
    rows = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]
    ids, times, codes = (np.array(column) for column in zip(*rows, strict=True))
    assert count_switches(ids, times, codes) == (2, 2)


def test_switch_counting_of_nothing() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert count_switches(empty, empty.astype(np.intp), empty) == (0, 0)


# --- score() on small files ------------------------------------------------------------------

FRAME = EnuFrame(LAT0, LON0)


def geo(east: float, north: float) -> tuple[float, float]:
    lat, lon, _ = FRAME.to_geodetic(east, north, 0.0)
    return float(lat), float(lon)


def write_truth(path: Path, steps: int) -> None:
    """Target 1 drives east at 10 m/s from the origin; target 2 stands 1 km north."""
    with RecordingWriter(path) as writer:
        writer.write(T0, "sensors/ken-radar-1/status", msgpack.packb({"online": True}))
        for k in range(steps):
            targets = []
            for target_id, (e, n) in ((1, (10.0 * k, 0.0)), (2, (0.0, 1000.0))):
                lat, lon = geo(e, n)
                targets.append({"id": target_id, "lat": lat, "lon": lon, "alt": 0.0,
                                "vn": 0.0, "ve": 10.0 if target_id == 1 else 0.0,
                                "cls": "vehicle"})
            writer.write(T0 + k, "sim/truth", msgpack.packb({"ts": T0 + k, "targets": targets}))


def track_line(t: float, track_id: str, e: float, n: float, ve: float, status: str,
               picture: str = "mission", affiliation: str = "unknown") -> str:
    lat, lon = geo(e, n)
    return json.dumps({"t": t, "track_id": track_id, "lat": lat, "lon": lon, "vn": 0.0,
                       "ve": ve, "status": status, "cls": "vehicle",
                       "affiliation": affiliation, "picture": picture})


def write_tracks(path: Path, steps: int) -> None:
    """Half a second before each truth time, except the one before truth time 3.

    Track A sits on target 1 half a second back (exact once predicted); target
    2's track is 30 m east of it, called B then B2 from step 6, coasting at step
    2; a tentative track C stands 5 km away, and so does friend U (an own UAV);
    picture ken has other tracks.
    """
    lines = []
    for k in range(steps):
        if k == 3:
            continue
        t = T0 + k - 0.5
        lines += [track_line(t, "A", 10.0 * (k - 0.5), 0.0, 10.0, "confirmed"),
                  track_line(t, "B" if k < 6 else "B2", 30.0, 1000.0, 0.0,
                             "coasting" if k == 2 else "confirmed"),
                  track_line(t, "C", 5000.0, 0.0, 0.0, "tentative"),
                  track_line(t, "U", -5000.0, 0.0, 0.0, "confirmed", affiliation="friend"),
                  track_line(t, "K", 0.0, 0.0, 0.0, "confirmed", picture="ken")]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    truth, tracks = tmp_path / "truth.rec", tmp_path / "tracks.jsonl"
    write_truth(truth, 10)
    write_tracks(tracks, 10)
    return truth, tracks


def test_score_of_a_known_picture(files: tuple[Path, Path]) -> None:
    report = score(*files)
    assert report.picture == "mission" and report.times == 10
    # Every time: A exact, B 30 m off, so GOSPA = sqrt(0 + 30²) = 30 m, all localisation.
    assert report.gospa == pytest.approx(30.0, abs=1e-3)
    assert report.localisation == pytest.approx(30.0, abs=1e-3)
    assert report.missed == 0.0 and report.false == 0.0
    assert report.localisation_rms == pytest.approx(math.sqrt(900 / 2), abs=1e-3)
    assert report.id_switches == 1 and report.fragmentations == 0
    assert report.mean_truths == 2.0 and report.mean_scored_tracks == 2.0
    # B coasts in the picture of step 2, which truth times 2 and 3 both use.
    assert report.mean_confirmed == pytest.approx(1.8)
    assert report.truth_ids == 2 and report.track_ids == 3


def test_stale_picture_counts_targets_missed(files: tuple[Path, Path]) -> None:
    # With max_age 1 s, truth time 3 (picture 1.5 s old) sees an empty picture.
    report = score(*files, max_age=1.0)
    assert report.gospa == pytest.approx((9 * 30.0 + 100.0) / 10, abs=1e-3)
    assert report.localisation == pytest.approx(27.0, abs=1e-3)
    assert report.missed == pytest.approx(10.0) and report.false == 0.0
    assert report.mean_missed_targets == pytest.approx(0.2)
    assert report.fragmentations == 2 and report.id_switches == 1
    assert report.localisation + report.missed + report.false == pytest.approx(report.gospa)


def test_tentative_tracks_are_scored_only_on_request(files: tuple[Path, Path]) -> None:
    report = score(*files, include_tentative=True)
    assert report.gospa == pytest.approx(math.sqrt(900 + 5000), abs=1e-3)
    assert report.false == pytest.approx(report.gospa * 5000 / 5900, abs=1e-3)
    assert report.mean_false_tracks == pytest.approx(1.0)


def test_friend_tracks_are_left_out_unless_asked(files: tuple[Path, Path]) -> None:
    report = score(*files, exclude_affiliations=())
    assert report.gospa == pytest.approx(math.sqrt(900 + 5000), abs=1e-3)
    assert report.mean_confirmed == pytest.approx(2.8)  # U is confirmed


def test_picture_choice_and_cutoff_order(files: tuple[Path, Path]) -> None:
    # Picture ken: one track K at the origin, so target 1 (moving) and target 2 (1 km off).
    report = score(*files, picture="ken", cutoff=100.0, order=1.0)
    per_time = np.array(report.gospa_per_time)
    east = 10.0 * np.arange(10)
    # K holds still at the origin and pairs with target 1 (under 100 m away): with p = 1
    # it costs its distance, plus c/2 for target 2 missed.
    expected = east + 50.0
    assert per_time == pytest.approx(expected, abs=1e-3)


def test_bad_track_files_are_rejected(tmp_path: Path, files: tuple[Path, Path]) -> None:
    truth, tracks = files
    with pytest.raises(PayloadError, match="no picture 'nld'"):
        score(truth, tracks, picture="nld")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(tracks.read_text().splitlines()[0] + "\n{\"t\": 1}\n")
    with pytest.raises(PayloadError, match=":2:"):
        score(truth, broken)
    several = tmp_path / "several.jsonl"
    several.write_text(track_line(T0, "X", 0, 0, 0, "confirmed", "gha") + "\n"
                       + track_line(T0, "Y", 0, 0, 0, "confirmed", "ken") + "\n")
    with pytest.raises(PayloadError, match="several pictures"):
        score(truth, several)


def test_format_report_shows_the_figures(files: tuple[Path, Path]) -> None:
    text = format_report(score(*files, max_age=1.0))
    assert "GOSPA (c = 100 m, p = 2, alpha = 2)" in text
    assert "37.00 m" in text and "27.00 m" in text and "10.00 m" in text
    assert "ID switches" in text and "fragmentations" in text
