"""Tracking accuracy on the scenario families of simulators.families, with the shipped defaults.

The families come from a generator that shares no motion or sensor model with
the hub's own simulator (issue 12): near-constant-velocity and manoeuvring
targets, walking persons and parked vehicles, GMTI radars blind below a
radial speed, radars 20 km out, dense clutter, UAV cameras with class
confusion, births and deaths. Each family's own seed is replayed through
config/hub.toml (no per-family tuning) and scored on the mission picture with
GOSPA c = 50 m, p = 1. Measured (m; bench/bench_families.py puts them beside
Stone Soup):

    family          GOSPA  missed  false  ID sw.  one quiet**  before*            old defaults:
                                                                                GOSPA, false
    quiet            65.2     6.0    0.0  0           66.8    66.6               91.1   0.0
    manoeuvring     106.6     6.2    0.8  0          108.3    107.9              108.7   0.2
    persons_parked   74.2     7.1    0.0  0           75.8    80.5               107.2   0.0
    gmti            185.8   130.6    0.2  0          185.4    186.6              201.9   0.0
    long_range      148.2     7.9    1.7  0          152.4    151.8              176.9   1.7
    dense_clutter    75.6     5.2    5.6  0           73.8    74.8               124.5  32.9
    uav_cameras     271.2   252.5    0.0  9          271.5    272.5
    births_deaths    46.7     7.7    5.8  0           47.8    55.4 (false 12.5)  66.1  12.5

(**before the quiet model was kept twice, born slow and born fast; *before
the stationary IMM model and the radar-miss deletion. Old defaults:
quiet_noise 0.3, model_switch_rate 0.03, process_noise 3.0, init_speed_sigma
15, confirm 3 of 5.) Most of gmti's and uav_cameras' GOSPA is targets no
sensor sees (parked or tangential under GMTI; outside the small camera
footprints), the same for any tracker. Bounds sit about 10 % above the GOSPA
measured and a few metres above each part, so the old defaults fail six of
the eight families while a harmless change passes; two are tighter, to hold
what the stationary model and the radar-miss deletion bought: persons_parked's
GOSPA (79, 4 % above; 80.5 without the stationary model) and births_deaths'
false part (9; 12.5 when a dead target's track coasts for delete_after_s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.cli.replay import replay_file
from hub.cli.score import ScoreReport, format_report, score
from hub.config import load_config
from simulators.families import FAMILIES, write_family

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "hub.toml"


@dataclass(frozen=True)
class Bounds:
    """Upper bounds on mean GOSPA (c = 50 m, p = 1), its missed and false parts, ID switches."""

    gospa: float
    missed: float
    false: float
    id_switches: int = 3


BOUNDS = {
    "quiet": Bounds(74.0, 9.0, 4.0),
    "manoeuvring": Bounds(118.0, 9.0, 4.0),
    "persons_parked": Bounds(79.0, 10.0, 4.0),
    "gmti": Bounds(196.0, 137.0, 4.0),
    "long_range": Bounds(166.0, 12.0, 6.0),
    "dense_clutter": Bounds(84.0, 9.0, 8.0),
    "uav_cameras": Bounds(285.0, 262.0, 4.0, id_switches=13),
    "births_deaths": Bounds(53.0, 11.0, 9.0),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[str, ScoreReport]:
    name: str = request.param
    folder = tmp_path_factory.mktemp(name)
    recording, tracks = folder / "family.rec", folder / "tracks.jsonl"
    write_family(name, recording)
    replay_file(recording, load_config(CONFIG), tracks)
    return name, score(recording, tracks, cutoff=50.0, order=1.0)


def test_every_family_has_bounds() -> None:
    assert set(BOUNDS) == set(FAMILIES)


def test_gospa_parts_and_switches_stay_under_bounds(report: tuple[str, ScoreReport]) -> None:
    name, r = report
    bound = BOUNDS[name]
    assert r.times >= 100 and r.truth_ids >= 10  # the scenario really ran
    assert r.gospa < bound.gospa, format_report(r)
    assert r.missed < bound.missed, format_report(r)
    assert r.false < bound.false, format_report(r)
    assert r.id_switches < bound.id_switches, format_report(r)


def test_a_family_recording_and_its_tracks_are_repeatable(tmp_path: Path) -> None:
    """Same family and seed, same bytes; same recording, same tracks byte for byte."""
    config = load_config(CONFIG)
    outputs = []
    for run in ("a", "b"):
        recording, tracks = tmp_path / f"{run}.rec", tmp_path / f"{run}.jsonl"
        write_family("dense_clutter", recording)
        replay_file(recording, config, tracks)
        outputs.append((recording.read_bytes(), tracks.read_bytes()))
    assert outputs[0] == outputs[1]
    other = tmp_path / "other.rec"
    write_family("dense_clutter", other, seed=99)
    assert other.read_bytes() != outputs[0][0]  # the seed does change the scene
