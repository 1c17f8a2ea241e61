"""Property: on random registries, labels, rules and tracks, each partner gets exactly what an
independent, plain-Python oracle of the release rules allows, transformed as it says."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from release_fixtures import FRAME, ORIGIN, T0

from hub.config import HubConfig, parse_config
from hub.fusion.tracks import CONFIRMED, Covariances, TrackTable
from hub.messages import CLASSES, Track
from hub.publish.pictures import TrackEncoder, publishable_rows
from hub.release.apply import Labeller, release
from hub.release.policy import ReleasePolicy

NATIONS = ["KEN", "GHA", "NLD", "BRA"]
KINDS = ["radar", "uav", "ground"]
LEVELS = ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"]
PARTNERS = ["p0", "p1", "p2", "p3"]


@st.composite
def registries(draw: st.DrawFn) -> dict[str, Any]:
    n_sensors = draw(st.integers(1, 7))
    sensors = [{"id": f"s{i}", "nation": draw(st.sampled_from(NATIONS)),
                "kind": draw(st.sampled_from(KINDS)), "platform": False,
                "label": {"classification": draw(st.sampled_from(LEVELS)),
                          "caveats": draw(st.lists(st.sampled_from(["X", "Y", "Z"]),
                                                   max_size=2, unique=True))}}
               for i in range(n_sensors)]
    partners = [{"id": p, "name": p, "clearance": draw(st.sampled_from([None, *LEVELS]))}
                for p in PARTNERS]
    groups = {"G1": draw(st.lists(st.sampled_from(PARTNERS), min_size=1, unique=True)),
              "G2": draw(st.lists(st.sampled_from(PARTNERS), min_size=1, unique=True))}
    releases = [draw(release_for(sensors)) for _ in range(draw(st.integers(0, 6)))]
    # One nation's sensors may use the release_to shorthand when no release selects them.
    shorthand = {s["nation"] for s in sensors} - {r["by"] for r in releases}
    for sensor in sensors:
        if sensor["nation"] in shorthand:
            sensor["release_to"] = draw(st.lists(st.sampled_from([*PARTNERS, "G1"]),
                                                 max_size=3, unique=True))
    return {"mission": {"origin": {"lat": ORIGIN[0], "lon": ORIGIN[1]}}, "sensors": sensors,
            "partners": partners, "groups": groups, "releases": releases}


@st.composite
def release_for(draw: st.DrawFn, sensors: list[dict[str, Any]]) -> dict[str, Any]:
    by = draw(st.sampled_from(sorted({s["nation"] for s in sensors})))
    own = [s for s in sensors if s["nation"] == by]
    rule: dict[str, Any] = {"by": by, "to": draw(st.lists(st.sampled_from([*PARTNERS, "G1",
                                                                            "G2"]),
                                                          min_size=1, max_size=3, unique=True))}
    selector = draw(st.sampled_from(["all", "sensors", "kinds"]))
    if selector == "sensors":
        rule["sensors"] = [s["id"] for s in draw(st.lists(st.sampled_from(own), min_size=1,
                                                          unique_by=lambda s: s["id"]))]
    elif selector == "kinds":
        rule["kinds"] = sorted({draw(st.sampled_from(own))["kind"]})
    rule["precision_m"] = draw(st.sampled_from([0.0, 50.0, 500.0]))
    rule["hide_classes"] = draw(st.lists(st.sampled_from(CLASSES), max_size=2, unique=True))
    rule["strip_attribution"] = draw(st.booleans())
    if draw(st.booleans()):
        e0, n0 = draw(st.floats(-3000, 1000)), draw(st.floats(-3000, 1000))
        w, h = draw(st.floats(500, 4000)), draw(st.floats(500, 4000))
        east, north = np.array([e0, e0 + w, e0 + w / 2, e0]), np.array([n0, n0, n0 + h, n0 + h])
        lat, lon, _ = FRAME.to_geodetic(east, north, 0.0)
        rule["area"] = [[float(a), float(b)] for a, b in zip(lat, lon, strict=True)]
    return rule


def random_tracks(rng: np.random.Generator, n: int, n_sensors: int) -> TrackTable:
    probs = rng.dirichlet(np.full(len(CLASSES), 0.5), n)
    return TrackTable(
        t=T0, q=1.0, id=np.arange(1, n + 1, dtype=np.int64),
        x=np.column_stack((rng.uniform(-4000, 4000, (n, 2)), rng.normal(0, 5, (n, 2)))),
        cov=Covariances(np.tile(np.diag([30.0, 30.0, 4.0, 4.0]), (n, 1, 1))),
        status=np.full(n, CONFIRMED, np.int8), cls_probs=probs,
        first_seen=np.full(n, T0 - 5), last_update=np.full(n, T0),
        updates=np.full(n, 3, np.int64), sources=rng.random((n, n_sensors)) < 0.4)


# --- the oracle: the rules as the config's comments state them, one track at a time ---

def oracle_grant(config: HubConfig, sensor: Any, partner: Any) -> Any:
    if partner.clearance is not None and (LEVELS.index(sensor.label.classification)
                                          > LEVELS.index(partner.clearance)):
        return None

    def named(names: list[str]) -> bool:
        return any(partner.id == n or partner.id in config.groups.get(n, []) for n in names)

    if named(sensor.release_to):
        return {"precision_m": 0.0, "area": [], "hide_classes": [], "strip_attribution": False}
    for r in config.releases:
        mine = r.by == sensor.nation and (
            (not r.sensors and not r.kinds) or sensor.id in r.sensors or sensor.kind in r.kinds)
        if mine and named(r.to):
            return {"precision_m": r.precision_m, "area": r.area,
                    "hide_classes": r.hide_classes, "strip_attribution": r.strip_attribution}
    return None


def winding_inside(east: float, north: float, ring: list[tuple[float, float]]) -> bool:
    """Winding-number test (a different algorithm from the hub's even-odd crossing test)."""
    pts = [FRAME.point_to_enu(lat, lon, 0.0)[:2] for lat, lon in ring]
    total = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        a0 = math.atan2(y0 - north, x0 - east)
        a1 = math.atan2(y1 - north, x1 - east)
        d = a1 - a0
        total += (d + math.pi) % (2 * math.pi) - math.pi
    return abs(total) > math.pi


def oracle_track(config: HubConfig, table: TrackTable, i: int, partner: Any) -> Any:
    used = [s for k, s in enumerate(config.sensors) if table.sources[i, k]]
    grants = [oracle_grant(config, s, partner) for s in used]
    if not used or any(g is None for g in grants):
        return None
    cls = CLASSES[int(np.argmax(table.cls_probs[i]))]
    east, north = float(table.x[i, 0]), float(table.x[i, 1])
    if any(cls in g["hide_classes"] for g in grants):
        return None
    if any(g["area"] and not winding_inside(east, north, g["area"]) for g in grants):
        return None
    grid = max(g["precision_m"] for g in grants)
    if grid > 0:
        east, north = round(east / grid) * grid, round(north / grid) * grid
    strip = any(g["strip_attribution"] for g in grants)
    audience = [p.id for p in config.partners
                if all(oracle_grant(config, s, p) is not None for s in used)]
    return {"east": east, "north": north, "var": 30.0 + grid**2 / 12,
            "sources": [] if strip else [s.id for s in used],
            "level": max((s.label.classification for s in used), key=LEVELS.index),
            "caveats": sorted({c for s in used for c in s.label.caveats}),
            "audience": audience}


def check(track: Track, expected: dict[str, Any]) -> None:
    lat, lon, _ = FRAME.to_geodetic(expected["east"], expected["north"], 0.0)
    assert abs(track.lat - lat) < 1e-9 and abs(track.lon - lon) < 1e-9
    assert math.isclose(track.cov[0], expected["var"]) and math.isclose(track.cov[2],
                                                                          expected["var"])
    assert track.sources == expected["sources"]
    assert track.label is not None
    assert track.label.classification == expected["level"]
    assert track.label.caveats == expected["caveats"]
    assert track.label.releasable_to == expected["audience"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registry=registries(), seed=st.integers(0, 2**32 - 1))
def test_every_partner_gets_exactly_what_the_oracle_allows(registry: dict[str, Any],
                                                          seed: int) -> None:
    config = parse_config(registry)
    policy = ReleasePolicy(config, FRAME)
    table = random_tracks(np.random.default_rng(seed), 40, len(config.sensors))
    encoder, labeller = TrackEncoder(config, FRAME), Labeller(policy)
    for partner in config.partners:
        out = release(table, publishable_rows(table), policy.partners[partner.id], labeller)
        tracks = encoder.build(out.table, np.arange(len(out.table)), "unknown", "T", out.labels)
        expected = {int(table.id[i]): oracle_track(config, table, i, partner)
                    for i in range(len(table))}
        allowed = {k: v for k, v in expected.items() if v is not None}
        assert [t.id for t in tracks] == [f"T{k}" for k in sorted(allowed)]
        event("some tracks delivered" if tracks else "no track delivered")
        event("some withheld by area or class" if out.withheld else "none withheld")
        for track in tracks:
            check(track, allowed[int(track.id[1:])])
