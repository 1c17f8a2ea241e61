"""Partner pictures: columnar Track building, deltas, full pictures, provenance by release."""

from __future__ import annotations

import dataclasses

import msgpack
import msgspec
import numpy as np
import pytest
from publishing import mqtt_publisher

from hub import topics
from hub.config import DEFAULT_CONFIG, load_config
from hub.fusion.platforms import friend_id, mission_key
from hub.fusion.tracks import (
    COASTING,
    CONFIRMED,
    STATUS_NAMES,
    TENTATIVE,
    Covariances,
    TrackTable,
)
from hub.geo import EnuFrame
from hub.messages import CLASSES, Picture, Track
from hub.pipeline import Pipeline
from hub.publish.pictures import (
    GroupPicture,
    PartnerFeed,
    TableRows,
    TrackEncoder,
    group_picture,
    sidc,
)
from hub.release.groups import visible_sensors

T0 = 1_800_000_000.0
CONFIG = load_config(DEFAULT_CONFIG)
FRAME = EnuFrame(CONFIG.mission.origin.lat, CONFIG.mission.origin.lon, CONFIG.mission.origin.alt)
N_SENSORS = len(CONFIG.sensors)


def random_table(rng: np.random.Generator, n: int, t: float = T0, first_id: int = 1
                 ) -> TrackTable:
    """A table of ``n`` tracks with every column random, sources included."""
    a = rng.normal(0.0, 30.0, (n, 4, 4))
    probs = rng.dirichlet(np.full(len(CLASSES), 0.3), n)
    return TrackTable(
        t=t, q=1.0, id=np.arange(first_id, first_id + n, dtype=np.int64),
        x=np.column_stack((rng.uniform(-9e3, 9e3, (n, 2)), rng.normal(0.0, 8.0, (n, 2)))),
        cov=Covariances(a @ a.transpose(0, 2, 1)), status=rng.integers(0, 3, n).astype(np.int8),
        cls_probs=probs, first_seen=t - rng.uniform(0.0, 100.0, n),
        last_update=t - rng.uniform(0.0, 5.0, n), updates=rng.integers(1, 500, n),
        sources=rng.random((n, N_SENSORS)) < 0.5)


def reference_track(table: TrackTable, i: int, affiliation: str, prefix: str) -> Track:
    """Row ``i`` built field by field, the plain way."""
    lat, lon, _ = FRAME.to_geodetic(table.x[i, 0], table.x[i, 1], 0.0)
    probs = table.cls_probs[i]
    cls = CLASSES[int(probs.argmax())]
    used = np.flatnonzero(table.sources[i])
    return Track(
        id=f"{prefix}{int(table.id[i])}", ts=table.t, lat=float(lat), lon=float(lon),
        ve=float(table.x[i, 2]), vn=float(table.x[i, 3]),
        cov=(float(table.P[i, 0, 0]), float(table.P[i, 0, 1]), float(table.P[i, 1, 1])),
        status=STATUS_NAMES[int(table.status[i])], cls=cls,
        cls_probs={CLASSES[c]: round(float(p), 4) for c, p in enumerate(probs) if p >= 0.01},
        affiliation=affiliation, sidc=sidc(affiliation, cls),
        sources=[CONFIG.sensors[s].id for s in used],
        nations=sorted({CONFIG.sensors[s].nation for s in used}),
        first_seen=float(table.first_seen[i]), updates=int(table.updates[i]),
        last_update=float(table.last_update[i]))


def group_of(*tables: TrackTable) -> GroupPicture:
    encoder = TrackEncoder(CONFIG, FRAME)
    return GroupPicture([TableRows(encoder, tables[0], "unknown", "T"),
                         *(TableRows(encoder, t, "friend", "F") for t in tables[1:])])


def ids(picture: Picture) -> list[str]:
    return [track.id for track in picture.tracks]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_columnar_build_equals_the_reference_byte_for_byte(seed: int) -> None:
    table = random_table(np.random.default_rng(seed), 300)
    built = TrackEncoder(CONFIG, FRAME).tracks(table, "unknown", "T", include_tentative=True)
    reference = [reference_track(table, i, "unknown", "T") for i in range(len(table))]
    assert [msgspec.msgpack.encode(t) for t in built] == [
        msgspec.msgpack.encode(t) for t in reference]


def test_only_confirmed_and_coasting_tracks_are_published() -> None:
    table = random_table(np.random.default_rng(3), 100)
    built = TrackEncoder(CONFIG, FRAME).tracks(table, "friend", "F")
    expected = [f"F{i}" for i in table.id[table.status != TENTATIVE].tolist()]
    assert [t.id for t in built] == expected
    assert {t.status for t in built} == {"confirmed", "coasting"}


def test_sidc_codes() -> None:
    assert sidc("unknown", "person") == "SUGP-----------"
    assert sidc("friend", "uav") == "SFAP-----------"
    assert sidc("hostile", "vessel") == "SHSP-----------"
    assert sidc("neutral", "aircraft") == "SNAP-----------"
    assert sidc("unknown", "unknown") == "SUGP-----------"
    assert all(len(sidc(a, c)) == 15 for a in ("friend", "unknown") for c in CLASSES)
    table = random_table(np.random.default_rng(4), 50)
    for track in TrackEncoder(CONFIG, FRAME).tracks(table, "friend", "F"):
        assert track.sidc == sidc("friend", track.cls)


def test_delta_carries_exactly_the_new_and_changed_tracks_and_the_removed_ids() -> None:
    rng = np.random.default_rng(5)
    before = random_table(rng, 60)
    before = dataclasses.replace(before, status=np.full(60, CONFIRMED, np.int8))
    friends = random_table(rng, 3, first_id=0)
    friends = dataclasses.replace(friends, status=np.full(3, CONFIRMED, np.int8))
    feed = PartnerFeed("ken")
    first = feed.picture(group_of(before, friends), T0, full=False)
    assert first is not None and not first.full
    assert ids(first) == [f"T{i}" for i in range(1, 61)] + ["F0", "F1", "F2"]

    keep = np.ones(60, bool)
    keep[[4, 17, 33]] = False  # deleted tracks
    updates, status = before.updates.copy(), before.status.copy()
    updates[[0, 9]] += 1  # updated
    status[21] = COASTING  # aged without an update
    status[40] = TENTATIVE  # no longer publishable: removed for the partner
    after = dataclasses.replace(before, t=T0 + 1, updates=updates, status=status)
    after = after.take(np.flatnonzero(keep))
    born = random_table(rng, 2, t=T0 + 1, first_id=100)
    born = dataclasses.replace(born, status=np.full(2, CONFIRMED, np.int8))
    arrays = [f.name for f in dataclasses.fields(after) if f.name not in ("t", "q", "cov")]
    after = dataclasses.replace(
        after, cov=Covariances(np.concatenate((after.P, born.P))),
        **{name: np.concatenate((getattr(after, name), getattr(born, name))) for name in arrays})
    friends_after = friends.take(np.arange(1, len(friends)))
    friends_after = dataclasses.replace(friends_after,
                                        updates=friends_after.updates + np.array([0, 1]))

    delta = feed.picture(group_of(after, friends_after), T0 + 1, full=False)
    assert delta is not None and not delta.full and delta.seq == 2
    assert ids(delta) == ["T1", "T10", "T22", "T100", "T101", "F2"]
    assert delta.removed == ["T5", "T18", "T34", "T41", "F0"]
    assert feed.picture(group_of(after, friends_after), T0 + 2, full=False) is None


def test_full_picture_carries_everything_and_resets_the_delta_base() -> None:
    rng = np.random.default_rng(6)
    table, friends = random_table(rng, 80), random_table(rng, 2, first_id=0)
    feed = PartnerFeed("gha")
    assert feed.picture(group_of(table, friends), T0, full=False) is not None
    full = feed.picture(group_of(table, friends), T0 + 1, full=True)
    assert full is not None and full.full and full.removed == [] and feed.last_full == T0 + 1
    publishable = [f"T{i}" for i in table.id[table.status > 0].tolist()]
    assert ids(full) == publishable + [f"F{i}" for i in friends.id[friends.status > 0].tolist()]
    assert feed.picture(group_of(table, friends), T0 + 2, full=False) is None


def test_partners_of_one_group_share_the_built_tracks() -> None:
    table = random_table(np.random.default_rng(7), 40)
    group = group_of(table)
    a = PartnerFeed("ken").picture(group, T0, full=True)
    b = PartnerFeed("gha").picture(group, T0, full=False)
    assert a is not None and b is not None and len(a.tracks) == len(b.tracks) > 0
    assert all(x is y for x, y in zip(a.tracks, b.tracks, strict=True))


def _sensor_traffic(frame: EnuFrame, seconds: int) -> list[tuple[float, str, bytes]]:
    """Every sensor of the default registry sees the same 5 targets; UAVs send telemetry."""
    targets = np.array([[-900.0, 200.0], [300.0, -700.0], [1500.0, 900.0], [0.0, 0.0],
                        [-2000.0, -1500.0]])
    records = []
    for k in range(seconds):
        t = T0 + k
        lat, lon, _ = frame.to_geodetic(targets[:, 0] + 5.0 * k, targets[:, 1], 0.0)
        for s, sensor in enumerate(CONFIG.sensors):
            batch = {"ts": t, "seq": k, "detections": [
                {"kind": "geo", "lat": la, "lon": lo, "sigma": 15.0, "cls": "vehicle"}
                for la, lo in zip(lat.tolist(), lon.tolist(), strict=True)]}
            records.append((t + 0.01, f"sensors/{sensor.id}/detections", msgpack.packb(batch)))
            if sensor.is_platform:
                fix = {"ts": t, "seq": k, "lat": float(lat[3]) + 0.001 * s, "lon": float(lon[3]),
                       "alt": 1800.0, "heading": 90.0, "pitch": 0.0, "roll": 0.0}
                records.append((t + 0.01, f"sensors/{sensor.id}/telemetry", msgpack.packb(fix)))
    return records


def test_no_partner_is_told_of_a_source_not_released_to_it() -> None:
    pipeline = Pipeline(CONFIG)
    sent: list[tuple[str, bytes]] = []
    publisher = mqtt_publisher(pipeline, lambda topic, payload, q, r: sent.append(
        (topic, payload)))
    for t_received, topic, payload in _sensor_traffic(pipeline.frame, 12):
        assert pipeline.handle(topic, payload, t_received)
        if pipeline.flush(t_received):
            publisher.publish(t_received)
    nation_of = {s.id: s.nation for s in CONFIG.sensors}
    seen_sources: dict[str, set[str]] = {p.id: set() for p in CONFIG.partners}
    friends: dict[str, set[str]] = {p.id: set() for p in CONFIG.partners}
    anonymous = dict.fromkeys(seen_sources, 0)
    for topic, payload in sent:
        picture = msgspec.msgpack.decode(payload, type=Picture)
        assert topic in (topics.partner_picture(picture.partner),
                         topics.partner_snapshot(picture.partner))
        visible = visible_sensors(CONFIG, picture.partner)
        for track in picture.tracks:
            assert set(track.sources) <= visible, (picture.partner, track.sources)
            assert track.nations == sorted({nation_of[s] for s in track.sources})
            seen_sources[picture.partner].update(track.sources)
            anonymous[picture.partner] += not track.sources
            if track.affiliation == "friend":
                friends[picture.partner].add(track.id)
    # The scene was rich enough to matter: each partner saw every source released to it
    # (unless a contributor's release strips attribution: then a track names no source),
    # and the friend tracks of exactly the platforms released to it.
    for partner in seen_sources:
        visible = visible_sensors(CONFIG, partner)
        rules = pipeline.policy.partners[partner]
        stripping = {s.id for s, strip in zip(CONFIG.sensors, rules.strip, strict=True)
                     if strip and s.id in visible}
        if stripping:
            assert seen_sources[partner] <= visible - stripping
            assert anonymous[partner]
        else:
            assert seen_sources[partner] == visible
        key = mission_key(CONFIG)
        platforms = [s.id for s in CONFIG.sensors if s.is_platform and s.id in visible]
        assert friends[partner] == {
            f"F{friend_id(key, unit, partner if unit in stripping else None)}"
            for unit in platforms}


def test_group_picture_of_a_live_pipeline_matches_the_reference() -> None:
    pipeline = Pipeline(CONFIG)
    for t_received, topic, payload in _sensor_traffic(pipeline.frame, 8):
        pipeline.handle(topic, payload, t_received)
        pipeline.flush(t_received)
    encoder = TrackEncoder(CONFIG, pipeline.frame)
    for fusion in pipeline.groups:
        tracks = group_picture(encoder, fusion.tables(pipeline.fusion_time)).tracks()
        table, friends = fusion.tracker.snapshot(), fusion.platforms.snapshot()
        reference = ([reference_track(table, i, "unknown", "T")
                      for i in np.flatnonzero(table.status > 0)]
                     + [reference_track(friends, i, "friend", "F")
                        for i in np.flatnonzero(friends.status > 0)])
        assert tracks == reference and len(tracks) >= 5
