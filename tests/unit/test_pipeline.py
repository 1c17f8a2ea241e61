"""The processing core without a broker: dead letters, release by construction, determinism."""

from __future__ import annotations

import math

import msgpack
import msgspec
import numpy as np

from hub.config import HubConfig, parse_config
from hub.geo import EnuFrame
from hub.pipeline import Pipeline
from hub.publish.pictures import TrackEncoder, group_tracks

T0 = 1_800_000_000.0
ORIGIN = (-1.0, 36.0)


def two_partner_config(window: float = 0.0) -> HubConfig:
    return parse_config({
        "mission": {"origin": {"lat": ORIGIN[0], "lon": ORIGIN[1]}},
        "fusion": {"reorder_window_s": window},
        "partners": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        "sensors": [
            {"id": "shared", "nation": "KEN", "kind": "radar", "release_to": ["a", "b"]},
            {"id": "secret", "nation": "NLD", "kind": "uav", "release_to": ["a"]},
        ],
    })


def geo_batch(frame: EnuFrame, t: float, seq: int, points: list[tuple[float, float]]) -> bytes:
    east, north = np.array(points, dtype=float).T
    lat, lon, _ = frame.to_geodetic(east, north, 0.0)
    return msgpack.packb({"ts": t, "seq": seq, "detections": [
        {"kind": "geo", "lat": float(la), "lon": float(lo), "sigma": 10.0, "cls": "vehicle",
         "conf": 0.8} for la, lo in zip(lat, lon, strict=True)]})


def scenario(frame: EnuFrame, seconds: int = 30) -> list[tuple[float, str, bytes]]:
    """Target X (east, moving) seen only by 'secret'; target Y (west) only by 'shared'."""
    records = []
    for k in range(seconds):
        t = T0 + k
        x = (2_000.0 + 10.0 * k, 500.0)
        y = (-2_000.0, -300.0 + 5.0 * k)
        records.append((t + 0.05, "sensors/secret/detections", geo_batch(frame, t, k, [x])))
        records.append((t + 0.05, "sensors/shared/detections", geo_batch(frame, t, k, [y])))
    return records


def run(config: HubConfig, records: list[tuple[float, str, bytes]]) -> Pipeline:
    pipeline = Pipeline(config)
    for t_received, topic, payload in records:
        pipeline.handle(topic, payload, t_received)
        pipeline.flush(t_received)
    pipeline.finish()
    return pipeline


def test_withheld_source_never_reaches_a_partners_picture() -> None:
    config = two_partner_config()
    frame = EnuFrame(*ORIGIN)
    records = scenario(frame)
    full = run(config, records)
    only_shared = run(config, [r for r in records if "/shared/" in r[1]])
    b_table = full.group_of("b").tracker.snapshot()
    reference = only_shared.group_of("b").tracker.snapshot()
    # Partner b's tracker is exactly the tracker fed only b's sources: nothing withheld
    # created, moved or confirmed anything in it.
    assert np.array_equal(b_table.id, reference.id)
    assert np.array_equal(b_table.x, reference.x)
    assert np.array_equal(b_table.status, reference.status)
    assert np.all(b_table.x[:, 0] < 0.0), "a track near the withheld target X exists for b"
    a_table = full.group_of("a").tracker.snapshot()
    east_confirmed = (a_table.x[:, 0] > 0.0) & (a_table.status > 0)
    assert east_confirmed.sum() == 1, "partner a, who may see X, should have it confirmed"
    encoder = TrackEncoder(config, full.frame)
    for track in group_tracks(encoder, full.group_of("b").tables(full.fusion_time)):
        assert track.sources == ["shared"] and track.nations == ["KEN"]


def test_bad_messages_are_dead_lettered_and_good_ones_still_fuse() -> None:
    config = two_partner_config()
    frame = EnuFrame(*ORIGIN)
    good = scenario(frame, seconds=10)
    bad_payloads = [
        ("sensors/shared/detections", b"\xc1garbage"),
        ("sensors/shared/detections", msgpack.packb({"ts": "now", "seq": 1, "detections": []})),
        ("sensors/shared/detections", msgpack.packb({"ts": math.nan, "seq": 1,
                                                     "detections": []})),
        ("sensors/shared/telemetry", msgpack.packb({"ts": T0, "seq": 1, "lat": 95.0, "lon": 0,
                                                   "alt": 0, "heading": 0, "pitch": 0,
                                                   "roll": 0})),
        ("sensors/intruder/detections", good[0][2]),
        ("sensors/shared/detections", b"\x00" * (2 << 20)),
        ("sensors/shared/status", msgpack.packb({"online": "yes"})),
        ("sensors/shared/frames", msgpack.packb({"ts": T0, "seq": 1})),
    ]
    records = list(good)
    for i, (topic, payload) in enumerate(bad_payloads):
        records.insert(2 * i + 1, (good[2 * i][0], topic, payload))
    pipeline = run(config, records)
    assert pipeline.counters["rejected"] == len(bad_payloads)
    assert pipeline.counters["fused"] == len(good)
    reasons = [letter.reason for letter in pipeline.dead_letters]
    assert any("unknown sensor id 'intruder'" in r for r in reasons)
    assert any("exceeds" in r for r in reasons)
    assert any("$.lat" in r for r in reasons)
    assert (pipeline.groups[0].tracker.snapshot().status > 0).sum() == 2


def test_a_broker_resending_older_messages_is_not_a_sensor_restart() -> None:
    frame = EnuFrame(*ORIGIN)
    batches = [(T0 + k, k, geo_batch(frame, T0 + k, k, [(0.0, 0.0)])) for k in range(10)]
    records = [(t + 0.05, "sensors/shared/detections", payload) for t, _, payload in batches]
    # The broker restarts and resends 5..9, which the hub had taken but not acknowledged.
    records += [(T0 + 10, "sensors/shared/detections", payload) for *_, payload in batches[5:]]
    # Then the sensor itself restarts: seq from 0 again, with newer times.
    restarted = [(T0 + 20 + k, "sensors/shared/detections",
                  geo_batch(frame, T0 + 20 + k, k, [(0.0, 0.0)])) for k in range(3)]
    pipeline = run(two_partner_config(window=0.0), records + restarted)
    counters = pipeline.router.counters
    assert (counters["duplicates"], counters["seq_restarts"]) == (5, 1)
    assert pipeline.counters["fused"] == 13


def test_messages_a_broker_delivers_out_of_order_are_taken_once_each() -> None:
    frame = EnuFrame(*ORIGIN)
    batches = {k: geo_batch(frame, T0 + 0.1 * k, k, [(0.0, 0.0)]) for k in range(10)}
    # After a broker restart, 5..7 (queued for the hub) come after 8..9 (resent by the sensor),
    # and 8 comes once more.
    order = [0, 1, 2, 3, 4, 8, 9, 5, 6, 7, 8]
    records = [(T0 + 2.0, "sensors/shared/detections", batches[k]) for k in order]
    pipeline = run(two_partner_config(window=5.0), records)
    counters = pipeline.router.counters
    assert (counters["duplicates"], counters["seq_late"], counters["seq_restarts"]) == (1, 3, 0)
    assert pipeline.counters["fused"] == 10


def test_same_input_gives_the_same_tracks() -> None:
    config = two_partner_config(window=0.5)
    records = scenario(EnuFrame(*ORIGIN))
    first, second = run(config, records), run(config, records)
    for g1, g2 in zip(first.groups, second.groups, strict=True):
        t1, t2 = g1.tracker.snapshot(), g2.tracker.snapshot()
        assert np.array_equal(t1.id, t2.id) and np.array_equal(t1.x, t2.x)


def test_duplicates_and_late_messages_are_counted_not_fused() -> None:
    config = two_partner_config(window=0.0)
    records = scenario(EnuFrame(*ORIGIN), seconds=5)
    records.insert(3, records[2])  # a QoS 1 redelivery
    late_t = T0 + 1.0
    late = geo_batch(EnuFrame(*ORIGIN), late_t, 99, [(0.0, 0.0)])
    records.append((T0 + 10, "sensors/shared/detections", late))
    pipeline = run(config, records)
    assert pipeline.router.counters["duplicates"] == 1
    assert pipeline.counters["late"] == 1


def test_every_group_fused_with_the_others_is_the_group_processed_alone() -> None:
    """Three groups, sensors at different times: each group's tracks equal its run alone."""
    config = parse_config({
        "mission": {"origin": {"lat": ORIGIN[0], "lon": ORIGIN[1]}},
        "fusion": {"reorder_window_s": 0.5},
        "partners": [{"id": p, "name": p.upper()} for p in ("a", "b", "c")],
        "sensors": [
            {"id": "radar", "nation": "KEN", "kind": "radar", "release_to": ["a", "b", "c"]},
            {"id": "ua", "nation": "NLD", "kind": "uav", "release_to": ["a"]},
            {"id": "ub", "nation": "BRA", "kind": "uav", "release_to": ["b", "c"]},
            {"id": "uc", "nation": "GHA", "kind": "uav", "release_to": ["c"]},
        ],
    })
    frame = EnuFrame(*ORIGIN)
    records = []
    for k in range(40):
        t = T0 + k
        targets = [(100.0 * j + 8.0 * k, 50.0 * j - 3.0 * k) for j in range(6)]
        for offset, sensor, seen in ((0.0, "radar", targets[::2]), (0.3, "ua", targets[:3]),
                                     (0.55, "ub", targets[2:5]), (0.8, "uc", targets[3:])):
            records.append((t + offset + 0.05, f"sensors/{sensor}/detections",
                            geo_batch(frame, t + offset, k, seen)))
    full = run(config, records)
    assert len(full.groups) == 4
    for partner in config.partners:
        fused = full.group_of(partner.id)
        alone = run(msgspec.structs.replace(config, partners=[partner]),
                    [r for r in records if r[1].split("/")[1] in fused.group.sensors])
        a, b = fused.tracker.snapshot(), alone.group_of(partner.id).tracker.snapshot()
        assert (a.status > 0).sum() >= 3, partner.id
        # Bit for bit, whole state: nothing a partner may not see (a withheld
        # sensor's timing included) may change even the rounding of its tracks.
        state, state_alone = fused.tracker.state(), alone.group_of(partner.id).tracker.state()
        assert state.keys() == state_alone.keys()
        for name, value in state.items():
            assert np.array_equal(value, state_alone[name]), (partner.id, name)
        assert np.array_equal(a.P, b.P) and np.array_equal(a.status, b.status), partner.id
        # The picture at the fusion time predicts a copy: the same for both.
        pa, pb = fused.tables(full.fusion_time), alone.group_of(partner.id).tables(full.fusion_time)
        for ta, tb in zip(pa.tables, pb.tables, strict=True):
            assert np.array_equal(ta.x, tb.x) and np.array_equal(ta.P, tb.P), partner.id


def test_a_group_dropped_by_new_rules_leaves_the_shared_rows_and_the_others_as_they_were() -> None:
    """Every group's tracks live in one table: a dropped group's rows go, nothing else moves."""
    config = two_partner_config()
    # A third sensor for the mission picture alone, so that a's sources are a group of their own.
    config = msgspec.structs.replace(config, sensors=[*config.sensors, msgspec.structs.replace(
        config.sensors[1], id="own", release_to=[])])
    pipeline = run(config, scenario(EnuFrame(*ORIGIN)))
    assert len(pipeline.groups) == 3
    before = {f.group.sensors: f.tracker.state() for f in pipeline.groups}
    dropped = pipeline.group_of("a")
    assert (dropped.tracker.snapshot().status > 0).sum() == 2
    # 'secret' withdrawn from a: a's group is now b's, and its tracker goes.
    pipeline.reload_rules(msgspec.structs.replace(config, sensors=[
        msgspec.structs.replace(s, release_to=[]) if s.id == "secret" else s
        for s in config.sensors]))
    assert dropped not in pipeline.groups and len(pipeline.groups) == 2
    table = pipeline.rows
    owners = table._owner[:table.n]
    assert not (owners == dropped.tracker.slot).any()
    assert sum(f.tracker.n for f in pipeline.groups) == table.n - table.gone
    for fusion in pipeline.groups:
        for name, value in fusion.tracker.state().items():
            assert np.array_equal(value, before[fusion.group.sensors][name]), name
