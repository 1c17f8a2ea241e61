"""Friend tracks from registered platforms' telemetry, and the ids partners know them by."""

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from hub.config import DEFAULT_CONFIG, HubConfig, key_file, load_config
from hub.errors import ConfigError
from hub.fusion.platforms import (
    POSITION_SIGMA,
    VELOCITY_SIGMA,
    PlatformTable,
    friend_id,
    mission_key,
)
from hub.fusion.tracks import CONFIRMED, TrackTable
from hub.geo import EnuFrame
from hub.messages import CLASSES, Telemetry
from hub.publish.pictures import TrackEncoder, partner_picture
from hub.release.apply import Labeller
from hub.release.groups import GroupTables
from hub.release.policy import MISSION, ReleasePolicy
from hub.release.view import released_picture
from simulators.engine import write_recording
from simulators.scenario import load_scenario

CONFIG = load_config("config/hub.toml")
ORIGIN = CONFIG.mission.origin
FRAME = EnuFrame(ORIGIN.lat, ORIGIN.lon, ORIGIN.alt)
UAV = CONFIG.sensor_index()["nld-uav-1"]
RADAR = CONFIG.sensor_index()["ken-radar-1"]
T0 = 1.8e9
UAV_ID = friend_id(mission_key(CONFIG), "nld-uav-1")


def _fix(t: float, east: float, north: float, **vel: float) -> Telemetry:
    lat, lon, _ = FRAME.to_geodetic(east, north, 200.0)
    return Telemetry(ts=T0 + t, seq=int(t), lat=float(lat), lon=float(lon), alt=float(ORIGIN.alt)
                     + 200.0, heading=0.0, pitch=0.0, roll=0.0, **vel)


def test_platform_velocity_from_fix_or_differenced_and_extrapolated() -> None:
    table = PlatformTable(CONFIG, FRAME)
    table.update(UAV, _fix(0.0, 100.0, 200.0))
    table.update(UAV, _fix(2.0, 120.0, 190.0))  # differenced: (10, -5) m/s
    table.update(RADAR, _fix(2.0, 0.0, 0.0))  # not a platform: ignored
    table.advance(T0 + 3.0)
    snap = table.snapshot()
    assert snap.id.tolist() == [UAV_ID] and snap.status.tolist() == [CONFIRMED]
    np.testing.assert_allclose(snap.x[0], [130.0, 185.0, 10.0, -5.0], atol=0.05)
    assert snap.cls_probs[0].argmax() == CLASSES.index("uav")
    assert snap.sources[0].tolist() == [i == UAV for i in range(len(CONFIG.sensors))]
    assert snap.updates.tolist() == [2] and snap.first_seen.tolist() == [T0]
    table.update(UAV, _fix(4.0, 0.0, 0.0, vn=3.0, ve=-1.0))
    table.update(UAV, _fix(3.5, 999.0, 999.0))  # older than the last fix: ignored
    np.testing.assert_allclose(table.snapshot().x[0], [0.0, 0.0, -1.0, 3.0], atol=0.05)


def test_a_platform_s_covariance_grows_with_its_fix_s_age() -> None:
    # Read after the table moved on: the snapshot's own age of the fix counts.
    table = PlatformTable(CONFIG, FRAME)
    table.update(UAV, _fix(0.0, 100.0, 200.0, vn=0.0, ve=10.0))
    table.advance(T0 + 2.0)
    snap = table.snapshot()
    table.advance(T0 + 9.0)
    dt, q = 2.0, table.q
    expected = POSITION_SIGMA**2 + dt * dt * VELOCITY_SIGMA**2 + q * dt**3 / 3.0
    assert snap.P[0, 0, 0] == pytest.approx(expected)
    assert snap.P[0, 1, 1] == pytest.approx(expected)
    assert snap.P[0, 2, 2] == pytest.approx(VELOCITY_SIGMA**2 + q * dt)
    assert snap.P[0, 0, 1] == 0.0


def test_platform_times_out_and_is_reported_removed() -> None:
    table = PlatformTable(CONFIG, FRAME)
    table.update(UAV, _fix(0.0, 0.0, 0.0))
    table.advance(T0 + CONFIG.fusion.friend_timeout_s - 0.1)
    assert len(table.snapshot()) == 1 and table.timed_out == 0
    table.advance(T0 + CONFIG.fusion.friend_timeout_s + 0.1)
    assert table.snapshot().id.tolist() == [] and table.timed_out == 1


def friends_of(config: HubConfig, unit: str = "nld-uav-1") -> TrackTable:
    """The friend table of ``config`` with ``unit`` live."""
    table = PlatformTable(config, FRAME)
    table.update(config.sensor_index()[unit], _fix(0.0, 100.0, 200.0))
    return table.snapshot()


def test_friend_ids_do_not_follow_the_registry_order() -> None:
    shuffled = msgspec.structs.replace(CONFIG, sensors=CONFIG.sensors[::-1])
    for unit in ("nld-uav-1", "bra-uav-1"):
        index = CONFIG.sensor_index()[unit]
        ids = {friends_of(config, unit).id[0] for config in (CONFIG, shuffled)}
        assert len(ids) == 1 and ids != {index}, unit


def test_friend_ids_hold_across_hubs_with_the_mission_key_file(tmp_path: Path) -> None:
    def keyed(name: str) -> HubConfig:
        mission = msgspec.structs.replace(CONFIG.mission, id_key_file=str(tmp_path / name))
        return msgspec.structs.replace(CONFIG, mission=mission)

    first = friends_of(keyed("mission.key")).id.tolist()
    assert (tmp_path / "mission.key").stat().st_mode & 0o777 == 0o600
    assert friends_of(keyed("mission.key")).id.tolist() == first  # a restarted hub, a standby
    assert friends_of(keyed("other.key")).id.tolist() != first
    assert friends_of(CONFIG).id.tolist() != first  # no key file: this process's own key


@pytest.mark.parametrize(("text", "problem"), [("not hex\n", "does not hold a hex key"),
                                              ("abcd\n", "holds a key under 32 bytes")])
def test_a_bad_mission_key_file_is_refused_naming_the_key(tmp_path: Path, text: str,
                                                         problem: str) -> None:
    path = tmp_path / "mission.key"
    path.write_text(text)
    mission = msgspec.structs.replace(CONFIG.mission, id_key_file=str(path))
    with pytest.raises(ConfigError, match=rf"^\$\.mission\.id_key_file: {path} {problem}$"):
        mission_key(msgspec.structs.replace(CONFIG, mission=mission))


def published_friend_ids(config: HubConfig) -> dict[str, str]:
    """The id of nld-uav-1's friend track in each partner's picture and the mission's."""
    policy = ReleasePolicy(config, FRAME)
    labeller, encoder = Labeller(policy), TrackEncoder(config, FRAME)
    friends = friends_of(config)
    tables = GroupTables(T0, (TrackTable.empty(len(config.sensors), len(CLASSES), T0), friends))
    seen = {}
    for audience, rules in [*policy.partners.items(), (MISSION, policy.mission)]:
        picture = released_picture(tables, rules, labeller)
        [track] = partner_picture(encoder, picture).tracks()
        seen[audience] = track.id
    return seen


def test_a_partner_without_attribution_gets_a_friend_id_of_its_own() -> None:
    """NLD releases its UAV to nld as it is, to the other UN partners without attribution."""
    seen = published_friend_ids(CONFIG)
    assert seen["nld"] == seen[MISSION] == f"F{UAV_ID}"
    stripped = [seen[p] for p in ("ken", "gha", "bra")]
    assert len(set(stripped)) == 3 and seen[MISSION] not in stripped
    # Nothing to look it up by: no unit's id in any picture that names units.
    named = {f"F{friend_id(mission_key(CONFIG), s.id)}" for s in CONFIG.sensors}
    assert not named & set(stripped)
    assert published_friend_ids(CONFIG) == seen  # stable from one picture to the next


def test_two_hub_processes_with_one_key_file_give_a_unit_the_same_friend_id(
        tmp_path: Path) -> None:
    recording, config = tmp_path / "short.mpk", tmp_path / "hub.toml"
    write_recording(load_scenario("default").with_duration(10.0), recording)
    key_path = tmp_path / "mission.key"
    config.write_text(DEFAULT_CONFIG.read_text().replace(
        "[mission]\n", f'[mission]\nid_key_file = "{key_path}"\n'))

    def friend_ids_of_a_hub() -> set[str]:
        tracks = tmp_path / "tracks.jsonl"
        subprocess.run([sys.executable, "-m", "hub.cli", "replay", str(recording), "-c",
                        str(config), "--tracks-out", str(tracks)], check=True,
                       capture_output=True, timeout=120)
        lines = [json.loads(line) for line in tracks.read_text().splitlines()]
        return {line["track_id"] for line in lines if line["affiliation"] == "friend"}

    first = friend_ids_of_a_hub()
    key = key_file(str(key_path), "test")
    assert first == {f"F{friend_id(key, unit)}" for unit in ("nld-uav-1", "bra-uav-1",
                                                             "ken-uav-2")}
    assert friend_ids_of_a_hub() == first
