"""Each release rule has an effect a partner can see, and a track obeys all its contributors."""

from __future__ import annotations

import numpy as np
import pytest
from release_fixtures import FRAME, config_with, latlon_ring, table_of

from hub.fusion.tracks import TrackTable
from hub.messages import CLASSES
from hub.publish.pictures import TrackEncoder, partner_picture, publishable_rows
from hub.release.apply import Labeller, Released, release
from hub.release.groups import GroupTables
from hub.release.policy import ReleasePolicy
from hub.release.view import released_picture

ALL = ["a", "b", "c"]


def released(config_releases: list[dict[str, object]],
             rows: list[tuple[float, float, str, list[str]]], partner: str = "a",
             **extra: object) -> tuple[TrackTable, Released]:
    policy = ReleasePolicy(config_with(config_releases, **extra), FRAME)
    table = table_of(rows)
    return table, release(table, publishable_rows(table), policy.partners[partner],
                          Labeller(policy))


def test_coarsening_rounds_to_the_grid_and_widens_the_covariance() -> None:
    rows = [(1234.0, -777.0, "vehicle", ["s1"]), (1234.0, -777.0, "vehicle", ["s2"])]
    _, out = released([{"by": "KEN", "to": ALL, "precision_m": 500.0},
                       {"by": "GHA", "to": ALL}], rows)
    assert out.table.x[0, :2].tolist() == [1000.0, -1000.0]
    assert out.table.P[0, 0, 0] == pytest.approx(25.0 + 500.0**2 / 12.0)
    assert out.table.P[0, 1, 1] == pytest.approx(25.0 + 500.0**2 / 12.0)
    assert out.table.x[1, :2].tolist() == [1234.0, -777.0]  # GHA's track stays exact
    assert out.table.P[1, 0, 0] == 25.0


def test_a_fused_track_gets_the_coarsest_grid_of_its_contributors() -> None:
    rows = [(1234.0, 3333.0, "vehicle", ["s1", "s2"])]
    _, out = released([{"by": "KEN", "to": ALL, "precision_m": 100.0},
                       {"by": "GHA", "to": ALL, "precision_m": 1000.0}], rows)
    assert out.table.x[0, :2].tolist() == [1000.0, 3000.0]


def test_area_withholds_tracks_outside_every_contributors_polygon() -> None:
    ken_box = latlon_ring([(0.0, 0.0), (2000.0, 0.0), (2000.0, 2000.0), (0.0, 2000.0)])
    gha_box = latlon_ring([(1000.0, 0.0), (3000.0, 0.0), (3000.0, 2000.0), (1000.0, 2000.0)])
    rows = [(500.0, 500.0, "vehicle", ["s1"]),         # inside KEN's box
            (2500.0, 500.0, "vehicle", ["s1"]),        # outside it
            (500.0, 500.0, "vehicle", ["s1", "s2"]),   # in KEN's box, not in GHA's
            (1500.0, 500.0, "vehicle", ["s1", "s2"]),  # in both
            (9000.0, 9000.0, "vehicle", ["s3"])]       # NLD gave no area
    _, out = released([{"by": "KEN", "to": ALL, "area": ken_box},
                       {"by": "GHA", "to": ALL, "area": gha_box},
                       {"by": "NLD", "to": ALL}], rows)
    assert out.table.id.tolist() == [1, 4, 5]
    assert out.withheld == 2 and out.unlabelled == 0


def test_hidden_classes_withhold_the_track_and_leave_the_class_probabilities() -> None:
    rows = [(0.0, 0.0, "person", ["s1"]), (0.0, 0.0, "vehicle", ["s1"]),
            (0.0, 0.0, "person", ["s2"])]
    table, out = released([{"by": "KEN", "to": ALL, "hide_classes": ["person"]},
                           {"by": "GHA", "to": ALL}], rows)
    assert out.table.id.tolist() == [2, 3]
    person = CLASSES.index("person")
    assert out.table.cls_probs[0, person] == 0.0 and table.cls_probs[1, person] > 0.0
    assert out.table.cls_probs[0].sum() == pytest.approx(1.0)
    assert out.table.cls_probs[1, person] == table.cls_probs[2, person]  # GHA hides nothing


def test_stripped_attribution_names_no_sensor_and_no_nation() -> None:
    rows = [(0.0, 0.0, "vehicle", ["s1", "s2"]), (0.0, 0.0, "vehicle", ["s2"])]
    _, out = released([{"by": "KEN", "to": ALL, "strip_attribution": True},
                       {"by": "GHA", "to": ALL}], rows)
    tracks = TrackEncoder(config_with([{"by": "KEN", "to": ALL}, {"by": "GHA", "to": ALL}]),
                          FRAME).build(out.table, np.arange(2), "unknown", "T", out.labels)
    assert tracks[0].sources == [] and tracks[0].nations == []
    assert tracks[1].sources == ["s2"] and tracks[1].nations == ["GHA"]


def test_labels_carry_the_highest_level_all_caveats_and_the_common_audience() -> None:
    extra = {"sensors": [
        {"id": "s1", "nation": "KEN", "kind": "radar", "platform": False,
         "label": {"classification": "CONFIDENTIAL", "caveats": ["UN MISSION"]}},
        {"id": "s2", "nation": "GHA", "kind": "radar", "platform": False,
         "label": {"classification": "RESTRICTED", "caveats": ["AU ONLY"]}},
        {"id": "s3", "nation": "NLD", "kind": "uav", "platform": False}]}
    rows = [(0.0, 0.0, "vehicle", ["s1", "s2"]), (0.0, 0.0, "vehicle", ["s3"])]
    _, out = released([{"by": "KEN", "to": ["a", "b"]}, {"by": "GHA", "to": ["a", "c"]},
                       {"by": "NLD", "to": ALL}], rows, **extra)
    fused, alone = out.labels
    assert (fused.classification, fused.caveats, fused.releasable_to) == (
        "CONFIDENTIAL", ["AU ONLY", "UN MISSION"], ["a"])
    assert (alone.classification, alone.caveats, alone.releasable_to) == (
        "UNCLASSIFIED", [], ["a", "b", "c"])


def test_a_track_that_cannot_be_labelled_is_dropped_and_counted() -> None:
    rows = [(0.0, 0.0, "vehicle", ["s1"]), (0.0, 0.0, "vehicle", ["s1", "s3"]),
            (0.0, 0.0, "vehicle", [])]
    _, out = released([{"by": "KEN", "to": ALL}, {"by": "NLD", "to": ["b"]}], rows)
    assert out.table.id.tolist() == [1]
    assert out.unlabelled == 2


def test_a_partner_above_its_clearance_sees_nothing_of_that_source() -> None:
    extra = {"partners": [{"id": "a", "name": "A", "clearance": "RESTRICTED"},
                          {"id": "b", "name": "B"}, {"id": "c", "name": "C"}],
             "sensors": [{"id": "s1", "nation": "KEN", "kind": "radar",
                          "label": {"classification": "SECRET"}},
                         {"id": "s2", "nation": "GHA", "kind": "radar"},
                         {"id": "s3", "nation": "NLD", "kind": "uav"}]}
    policy = ReleasePolicy(config_with([{"by": "KEN", "to": ALL}], **extra), FRAME)
    assert policy.visible_sensors("a") == frozenset()
    assert policy.visible_sensors("b") == {"s1"}


def test_first_matching_release_of_the_nation_applies_and_groups_expand() -> None:
    config = config_with([{"by": "KEN", "to": ["a"]},
                          {"by": "KEN", "to": ["UN"], "precision_m": 500.0}],
                         groups={"UN": ["a", "b"]})
    policy = ReleasePolicy(config, FRAME)
    assert policy.partners["a"].precision[0] == 0.0
    assert policy.partners["b"].precision[0] == 500.0
    assert not policy.partners["c"].visible[0]


def test_a_view_uses_the_labels_of_its_rows() -> None:
    config = config_with([{"by": "KEN", "to": ALL}, {"by": "GHA", "to": ["a"]}])
    policy = ReleasePolicy(config, FRAME)
    table = table_of([(0.0, 0.0, "vehicle", ["s1"]), (0.0, 0.0, "vehicle", ["s1", "s2"])])
    empty = table_of([])
    view = released_picture(GroupTables(table.t, (table, empty)), policy.partners["a"],
                            Labeller(policy))
    tracks = partner_picture(TrackEncoder(config, FRAME), view).tracks()
    assert [t.label.releasable_to for t in tracks if t.label] == [["a", "b", "c"], ["a"]]
