from hub.config import parse_config
from hub.release.groups import MISSION, release_groups, visible_sensors


def _config() -> object:
    return parse_config({
        "mission": {"origin": {"lat": 0.0, "lon": 0.0}},
        "partners": [{"id": p, "name": p} for p in ("a", "b", "c", "d")],
        "sensors": [
            {"id": "s1", "nation": "KEN", "kind": "radar", "release_to": ["a", "b", "c", "d"]},
            {"id": "s2", "nation": "GHA", "kind": "radar", "release_to": ["a", "b"]},
            {"id": "s3", "nation": "NLD", "kind": "uav", "release_to": ["a", "b", "c", "d"]},
            {"id": "s4", "nation": "BRA", "kind": "uav", "release_to": ["d"]},
        ],
    })


def test_partners_with_the_same_visible_sources_share_a_group() -> None:
    config = _config()
    groups = release_groups(config)  # type: ignore[arg-type]
    assert groups[0].key == MISSION and groups[0].partners == ()
    by_partners = {g.partners: g.sensors for g in groups[1:]}
    assert by_partners == {("a", "b"): {"s1", "s2", "s3"}, ("c",): {"s1", "s3"},
                           ("d",): {"s1", "s3", "s4"}}


def test_group_masks_follow_registry_order() -> None:
    config = _config()
    for group in release_groups(config):  # type: ignore[arg-type]
        assert [bool(m) for m in group.mask] == [
            s.id in group.sensors for s in config.sensors]  # type: ignore[attr-defined]
    assert visible_sensors(config, "c") == {"s1", "s3"}  # type: ignore[arg-type]
