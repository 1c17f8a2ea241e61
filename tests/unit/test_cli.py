"""The ``hub`` command offline: config check, replay and score through main()."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hub.cli.main import main
from hub.config import DEFAULT_CONFIG, load_config
from hub.fusion.platforms import friend_id, mission_key
from hub.geo import EnuFrame
from simulators.engine import write_recording
from simulators.scenario import load_scenario


def test_config_check_accepts_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(DEFAULT_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "ok (5 sensors, 4 partners, 6 releases)" in out
    # What each partner sees under the default rules, NLD's UAV coarsened for the others.
    assert "  nld sees ken-radar-1, nld-uav-1, ken-uav-2\n" in out
    assert "  gha sees ken-radar-1, gha-radar-1, nld-uav-1 (100 m, no attribution), " in out
    assert "  bra sees ken-radar-1, nld-uav-1 (100 m, no attribution), bra-uav-1, ken-uav-2" in out


def test_config_check_names_key_and_problem(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_CONFIG.read_text().replace('nation = "GHA"\nkind = "radar"',
                                                      'nation = "Ghana"\nkind = "radar"'))
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "$.sensors[1].nation" in err and "Expected `str` matching regex" in err


def test_replay_then_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording, tracks = tmp_path / "short.mpk", tmp_path / "tracks.jsonl"
    write_recording(load_scenario("default").with_duration(60.0), recording)
    assert main(["replay", str(recording), "--tracks-out", str(tracks)]) == 0
    assert "0 rejected" in capsys.readouterr().out
    lines = [json.loads(line) for line in tracks.read_text().splitlines()]
    assert {line["picture"] for line in lines} == {"mission"}
    assert {"t", "track_id", "lat", "lon", "vn", "ve", "status", "cls", "affiliation"} <= set(
        lines[0])
    assert main(["score", "--truth", str(recording), "--tracks", str(tracks)]) == 0
    report = capsys.readouterr().out
    assert "GOSPA (c = 100 m, p = 2, alpha = 2)" in report and "ID switches" in report


def test_replay_of_a_partner_picture_and_an_unknown_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording, tracks = tmp_path / "short.mpk", tmp_path / "tracks.jsonl"
    write_recording(load_scenario("default").with_duration(20.0), recording)
    assert main(["replay", str(recording), "--picture", "bra", "--tracks-out", str(tracks)]) == 0
    assert all(json.loads(line)["picture"] == "bra" for line in tracks.read_text().splitlines())
    for flags in ([], ["--all-groups"]):
        assert main(["replay", str(recording), "--picture", "zzz", *flags]) == 2
        assert "error: --picture: no partner 'zzz' in the config" in capsys.readouterr().err


def test_replay_fuses_the_picture_s_group_alone_with_the_same_tracks_as_all_groups(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording = tmp_path / "rec.mpk"
    write_recording(load_scenario("default").with_duration(30.0), recording, seed=5)
    for picture in ("mission", "nld", "gha"):
        outputs = {}
        for flags in ([], ["--all-groups"]):
            tracks = tmp_path / f"{picture}{len(flags)}.jsonl"
            assert main(["replay", str(recording), "--picture", picture, "--tracks-out",
                         str(tracks), *flags]) == 0
            fused = capsys.readouterr().out.rsplit("; ", 1)[1].strip()
            outputs[fused] = tracks.read_bytes()
        assert set(outputs) == {"1 release group fused", "4 release groups fused"}, picture
        alone, every = outputs.values()
        assert alone == every and alone.count(b'"confirmed"') > 20, picture


def test_replay_is_deterministic(tmp_path: Path) -> None:
    recording = tmp_path / "rec.mpk"
    write_recording(load_scenario("default").with_duration(40.0), recording, seed=3)
    outputs = []
    for run in range(2):
        tracks = tmp_path / f"tracks{run}.jsonl"
        assert main(["replay", str(recording), "--tracks-out", str(tracks)]) == 0
        outputs.append(tracks.read_bytes())
    assert outputs[0] == outputs[1] and len(outputs[0]) > 10_000


def test_replay_of_a_partner_picture_applies_its_release_rules(tmp_path: Path) -> None:
    """In the default rules NLD releases its UAV to GHA on a 100 m grid: so is its friend track."""
    recording = tmp_path / "short.mpk"
    write_recording(load_scenario("default").with_duration(20.0), recording)
    config = load_config(DEFAULT_CONFIG)
    frame = EnuFrame(config.mission.origin.lat, config.mission.origin.lon,
                     config.mission.origin.alt)
    offsets = {}
    key = mission_key(config)
    # GHA sees nld-uav-1 without attribution: under an id of its own.
    for picture, audience in (("mission", None), ("gha", "gha")):
        tracks = tmp_path / f"{picture}.jsonl"
        assert main(["replay", str(recording), "--picture", picture, "--tracks-out",
                     str(tracks)]) == 0
        lines = [json.loads(line) for line in tracks.read_text().splitlines()]
        uav_id = f"F{friend_id(key, 'nld-uav-1', audience)}"
        uav = [line for line in lines if line["track_id"] == uav_id]
        east, north, _ = frame.to_enu([u["lat"] for u in uav], [u["lon"] for u in uav],
                                      config.mission.origin.alt)
        offsets[picture] = np.abs(np.concatenate([east, north]) / 100.0
                                  - np.round(np.concatenate([east, north]) / 100.0)) * 100.0
    assert len(offsets["gha"]) > 20 and offsets["gha"].max() < 0.5
    assert np.median(offsets["mission"]) > 5.0
