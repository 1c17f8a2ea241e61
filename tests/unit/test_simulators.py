"""Simulators: determinism, wire validity, sensor statistics against truth, scenario errors."""

from __future__ import annotations

import math
from pathlib import Path

import msgpack
import msgspec
import numpy as np
import pytest

from hub import messages, topics
from hub.config import load_config
from hub.errors import ConfigError
from hub.geo import EnuFrame
from hub.recording import read_recording
from simulators.engine import generate, pending, sensor_rng, write_recording
from simulators.radar import RadarSim
from simulators.scenario import (
    SCENARIO_DIR,
    Area,
    ClassSpec,
    Scenario,
    Targets,
    load_scenario,
    parse_scenario,
)
from simulators.targets import Snapshot, TargetField
from simulators.uav import UavSim

MAX = 16 << 20
KINDS: dict[str, type] = {"telemetry": messages.Telemetry, "detections": messages.DetectionBatch,
                          "status": messages.SensorStatus, "frames": messages.Frame}


def decode(topic: str, payload: bytes) -> object:
    """Decode one simulator message with the hub's own contracts."""
    if topic == topics.TRUTH:
        return messages.decode(payload, messages.Truth, MAX)
    _, kind = topics.parse_sensor_topic(topic)
    return messages.decode(payload, KINDS[kind], MAX)


@pytest.fixture(scope="module")
def default() -> Scenario:
    return load_scenario("default")


@pytest.fixture(scope="module")
def default_stream(default: Scenario) -> list[tuple[float, str, bytes]]:
    return list(generate(default))


def frame_of(scenario: Scenario) -> EnuFrame:
    o = scenario.origin
    return EnuFrame(o.lat, o.lon, o.alt)


def crowd(scenario: Scenario, count: int, half: float, seed: int = 3) -> Snapshot:
    """A snapshot of ``count`` targets spread over a square of half-side ``half``."""
    spec = msgspec.structs.replace(
        scenario.targets, count=count,
        area=Area(east=0.0, north=0.0, half_width=half, half_height=half))
    field = TargetField(spec, np.random.default_rng(seed))
    return Snapshot(field, frame_of(scenario), scenario.origin.alt)


# Determinism and wire validity


def test_same_seed_gives_identical_bytes(default: Scenario) -> None:
    short = default.with_duration(20.0)
    assert list(generate(short, seed=11)) == list(generate(short, seed=11))


def test_different_seed_gives_different_stream(default: Scenario) -> None:
    short = default.with_duration(20.0)
    a, b = list(generate(short, seed=11)), list(generate(short, seed=12))
    assert [m[1] for m in a[:4]] == [m[1] for m in b[:4]]  # the same status messages first
    assert [m[2] for m in a] != [m[2] for m in b]


def test_start_ts_shifts_every_timestamp(default: Scenario) -> None:
    short = default.with_duration(5.0)
    for (t, topic, payload) in generate(short, start_ts=1_800_000_000.0):
        ts = decode(topic, payload).ts  # type: ignore[attr-defined]
        assert ts == t and 1_800_000_000.0 <= t < 1_800_000_005.0


def assert_faster(slow: dict[str, object], fast: dict[str, object], speed: float) -> None:
    """``fast`` is ``slow`` in a world ``speed`` times faster: velocities scaled, all else equal."""
    assert fast.keys() == slow.keys()
    for key, value in slow.items():
        if key in ("vn", "ve", "vu"):
            assert fast[key] == pytest.approx(speed * value)  # type: ignore[operator]
        elif key == "targets":
            for a, b in zip(value, fast[key], strict=True):  # type: ignore[call-overload]
                assert_faster(a, b, speed)
        elif key != "ts":
            assert fast[key] == value, key


def test_speed_stamps_the_same_world_faster_on_the_clock(default: Scenario) -> None:
    start, speed = 1_800_000_000.0, 4.0
    short = default.with_duration(6.0)
    real = list(pending(short, start_ts=start, part="rest"))
    fast = list(pending(short, start_ts=start, part="rest", speed=speed))
    assert [m.topic for m in fast] == [m.topic for m in real]
    assert fast[-1].ts < start + short.duration_s / speed
    moving = 0
    for slow, quick in zip(real, fast, strict=True):
        assert quick.ts - start == pytest.approx((slow.ts - start) / speed, abs=1e-6)
        assert quick.period == pytest.approx(slow.period / speed)
        a, b = msgpack.unpackb(slow.build()), msgpack.unpackb(quick.build())
        assert b.get("ts", quick.ts) == quick.ts
        assert_faster(a, b, speed)
        moving += abs(a.get("vn", 0.0)) > 1.0
    assert moving > 10  # the UAVs' telemetry: velocities that were scaled


def test_every_message_decodes_in_time_order(default_stream: list[tuple[float, str, bytes]],
                                             default: Scenario) -> None:
    times = [t for t, _, _ in default_stream]
    assert times == sorted(times)
    seen: dict[str, int] = {}
    for _, topic, payload in default_stream:
        decode(topic, payload)
        seen[topic] = seen.get(topic, 0) + 1
    for sensor_id in default.sensor_ids:
        assert seen[topics.sensor(sensor_id, "status")] == 1
    for radar in default.radars:
        assert seen[topics.sensor(radar.id, "detections")] > 100
    for uav in default.uavs:
        assert seen[topics.sensor(uav.id, "telemetry")] == default.duration_s * uav.telemetry_rate
        detections = seen.get(topics.sensor(uav.id, "detections"), 0)
        assert detections == (default.duration_s * uav.detection_rate if uav.detector else 0)
        frames = seen.get(topics.sensor(uav.id, "frames"), 0)
        assert frames == (0 if uav.camera is None else default.duration_s * uav.camera.rate_hz)
    assert any(uav.camera is not None and not uav.detector for uav in default.uavs)
    assert seen[topics.TRUTH] == default.duration_s * default.truth_rate


def test_seq_rises_by_one_per_topic(default_stream: list[tuple[float, str, bytes]]) -> None:
    last: dict[str, int] = {}
    for _, topic, payload in default_stream:
        if topic.endswith(("/telemetry", "/detections", "/frames")):
            seq = decode(topic, payload).seq  # type: ignore[attr-defined]
            assert seq == last.get(topic, -1) + 1
            last[topic] = seq


def test_benchmark_scenarios_decode(tmp_path: Path) -> None:
    for name in ("targets50", "targets300"):
        scenario = load_scenario(name).with_duration(3.0)
        path = tmp_path / f"{name}.mpk"
        count = write_recording(scenario, path)
        records = list(read_recording(path))
        assert len(records) == count and records == list(generate(scenario))
        for _, topic, payload in records:
            decode(topic, payload)
        truth = [decode(tp, p) for _, tp, p in records if tp == topics.TRUTH]
        assert len(truth[0].targets) == scenario.targets.count  # type: ignore[attr-defined]


def test_shipped_scenarios_use_registered_sensors() -> None:
    registry = {s.id: s.kind for s in load_config(SCENARIO_DIR.parent / "hub.toml").sensors}
    for path in sorted(SCENARIO_DIR.glob("*.toml")):
        scenario = load_scenario(path)
        assert {r.id: "radar" for r in scenario.radars}.items() <= registry.items()
        assert {u.id: "uav" for u in scenario.uavs}.items() <= registry.items()
        assert len(scenario.sensor_ids) >= 3


# Truth motion


def test_truth_stays_inside_the_area_with_births_and_deaths(
        default_stream: list[tuple[float, str, bytes]], default: Scenario) -> None:
    frame, area = frame_of(default), default.targets.area
    ids_seen: set[int] = set()
    for _, topic, payload in default_stream:
        if topic != topics.TRUTH:
            continue
        truth = decode(topic, payload)
        lat = np.array([x.lat for x in truth.targets])  # type: ignore[attr-defined]
        lon = np.array([x.lon for x in truth.targets])  # type: ignore[attr-defined]
        e, n, _ = frame.to_enu(lat, lon, default.origin.alt)
        assert np.all(np.abs(e - area.east) <= area.half_width + 1.0)
        assert np.all(np.abs(n - area.north) <= area.half_height + 1.0)
        ids_seen |= {x.id for x in truth.targets}  # type: ignore[attr-defined]
    assert len(ids_seen) > default.targets.count  # births happened


def test_long_run_keeps_targets_inside_and_speeds_constant() -> None:
    spec = Targets(count=200, classes={"vehicle": ClassSpec(speed=(15.0, 30.0), turn_rate=20.0,
                                                             turn_probability=0.2)},
                   area=Area(half_width=1000.0, half_height=500.0))
    field = TargetField(spec, np.random.default_rng(5))
    speed0 = field.speed.copy()
    for _ in range(600):
        for _ in range(3):
            field.advance(1.0 / 3.0)
        field.decide()
        assert np.all(np.abs(field.pos) <= [1000.0, 500.0])
    # Turns and reflections change the heading, never the speed.
    np.testing.assert_allclose(field.speed, speed0, rtol=1e-9)


def test_deaths_and_births_balance_around_the_rates() -> None:
    spec = Targets(count=100, classes={"person": ClassSpec()}, birth_rate=1.0, death_rate=0.01)
    field = TargetField(spec, np.random.default_rng(9))
    for _ in range(2000):
        field.decide()
    # Equilibrium is birth_rate / death_rate = 100.
    assert 70 <= len(field) <= 130
    assert field.ids.min() > 100  # every initial target died


# Radar


def test_radar_noise_and_detection_rate_match_the_configuration(default: Scenario) -> None:
    spec = msgspec.structs.replace(default.radars[0], pd=0.8, sigma_range=12.0,
                                   sigma_bearing=0.5, clutter_mean=3.0)
    radar = RadarSim(spec, sensor_rng(1, spec.id))
    snap = crowd(default, 400, 5000.0)
    r_true, b_true = radar.true_polar(snap)
    covered = (r_true >= spec.min_range) & (r_true <= spec.max_range)
    dr, db, hits, clutter, scans = [], [], 0, 0, 200
    for _ in range(scans):
        ret = radar.measure(snap)
        real = ret.target >= 0
        assert np.all(covered[ret.target[real]])
        dr.append(ret.range[real] - r_true[ret.target[real]])
        db.append((ret.bearing[real] - b_true[ret.target[real]] + 180.0) % 360.0 - 180.0)
        hits += int(real.sum())
        clutter += int((~real).sum())
        assert np.all((ret.range[~real] >= spec.min_range) & (ret.range[~real] <= spec.max_range))
    dr_all, db_all = np.concatenate(dr), np.concatenate(db)
    assert dr_all.size > 50_000
    assert abs(dr_all.std() / spec.sigma_range - 1.0) < 0.03
    assert abs(db_all.std() / spec.sigma_bearing - 1.0) < 0.03
    assert abs(dr_all.mean()) < 0.2 and abs(db_all.mean()) < 0.01
    assert abs(hits / (scans * covered.sum()) - spec.pd) < 0.01
    assert abs(clutter / scans - spec.clutter_mean) < 0.5


def test_radar_messages_agree_with_truth(default_stream: list[tuple[float, str, bytes]],
                                         default: Scenario) -> None:
    spec = default.radars[0]
    topic = topics.sensor(spec.id, "detections")
    batches = [decode(tp, p) for _, tp, p in default_stream if tp == topic]
    first = batches[0]
    assert first.sensor == messages.SensorPosition(  # type: ignore[attr-defined]
        spec.position.lat, spec.position.lon, spec.position.alt)
    dets = [d for b in batches for d in b.detections]  # type: ignore[attr-defined]
    assert all(isinstance(d, messages.PolarDetection) for d in dets)
    assert all(spec.min_range - 5 * spec.sigma_range <= d.range
               <= spec.max_range + 5 * spec.sigma_range for d in dets)
    unknown = sum(d.cls == "unknown" for d in dets) / len(dets)
    assert abs(unknown - (1.0 - spec.classify_probability)) < 0.03


# UAV


@pytest.mark.parametrize("shape", ["circle", "square"])
def test_uav_detections_only_inside_the_footprint(default: Scenario, shape: str) -> None:
    spec = msgspec.structs.replace(default.uavs[1], footprint_shape=shape, clutter_mean=2.0,
                                   footprint_radius=400.0)
    uav = UavSim(spec, frame_of(default), default.origin.alt, sensor_rng(2, spec.id))
    snap = crowd(default, 3000, 5000.0)
    inside_total = hits = clutter = 0
    for t in np.arange(0.0, 600.0, 1.7):
        pose = uav.pose(float(t))
        inside = uav.in_footprint(pose, snap.pos[:, 0], snap.pos[:, 1])
        ret = uav.detect(float(t), snap)
        real = ret.target >= 0
        assert np.all(inside[ret.target[real]])
        assert np.all(uav.in_footprint(pose, ret.east[~real], ret.north[~real]))
        err = np.hypot(ret.east[real] - snap.pos[ret.target[real], 0],
                       ret.north[real] - snap.pos[ret.target[real], 1])
        assert np.all(err < 6 * spec.sigma)
        inside_total += int(inside.sum())
        hits += int(real.sum())
        clutter += int((~real).sum())
    assert inside_total > 1000
    assert abs(hits / inside_total - spec.pd) < 0.05
    assert clutter > 0


def test_uav_messages_are_near_the_uav(default_stream: list[tuple[float, str, bytes]],
                                       default: Scenario) -> None:
    frame = frame_of(default)
    for spec in default.uavs:
        reach = spec.footprint_radius * math.sqrt(2.0) + 6 * spec.sigma
        for _, topic, payload in default_stream:
            if topic == topics.sensor(spec.id, "telemetry"):
                tel = decode(topic, payload)
                assert tel.alt == pytest.approx(  # type: ignore[attr-defined]
                    default.origin.alt + spec.altitude)
            elif topic == topics.sensor(spec.id, "detections"):
                batch = decode(topic, payload)
                pos = batch.sensor  # type: ignore[attr-defined]
                ue, un, _ = frame.to_enu(pos.lat, pos.lon, pos.alt)
                for d in batch.detections:  # type: ignore[attr-defined]
                    assert isinstance(d, messages.GeoDetection) and d.sigma == spec.sigma
                    e, n, _ = frame.to_enu(d.lat, d.lon, d.alt)
                    assert math.hypot(e - ue, n - un) < reach


def test_orbit_flies_its_circle_at_its_speed(default: Scenario) -> None:
    spec = default.uavs[0]
    uav = UavSim(spec, frame_of(default), default.origin.alt, sensor_rng(0, spec.id))
    c = spec.pattern.center  # type: ignore[union-attr]
    for t in np.linspace(0.0, 400.0, 37):
        p = uav.pose(float(t))
        assert math.hypot(p.east - c.east, p.north - c.north) == pytest.approx(1500.0)
        assert math.hypot(p.ve, p.vn) == pytest.approx(spec.speed)
        assert math.degrees(math.atan2(p.ve, p.vn)) % 360 == pytest.approx(p.heading)
        assert p.roll > 0  # clockwise is a right turn: right wing down
    # Moving along the heading for a short time keeps it on the circle's tangent.
    a, b = uav.pose(10.0), uav.pose(10.01)
    assert b.east - a.east == pytest.approx(a.ve * 0.01, rel=1e-3)


def test_lawnmower_stays_in_its_box(default: Scenario) -> None:
    spec = default.uavs[1]
    box = spec.pattern
    uav = UavSim(spec, frame_of(default), default.origin.alt, sensor_rng(0, spec.id))
    poses = [uav.pose(float(t)) for t in np.arange(0.0, 3000.0, 0.5)]
    assert all(box.west - 1e-6 <= p.east <= box.east + 1e-6  # type: ignore[union-attr]
               and box.south - 1e-6 <= p.north <= box.north + 1e-6  # type: ignore[union-attr]
               for p in poses)
    assert all(math.hypot(p.ve, p.vn) == pytest.approx(spec.speed) for p in poses)
    # It covers the whole box: both the first and the last leg are flown.
    assert min(p.north for p in poses) == pytest.approx(box.south)  # type: ignore[union-attr]
    assert max(p.north for p in poses) > box.north - spec.pattern.spacing  # type: ignore


# Scenario errors


def _doc(path: Path) -> dict[str, object]:
    import tomllib
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize(("change", "key"), [
    (lambda d: d["radars"][1].update(pd=1.5), "$.radars[1].pd"),
    (lambda d: d["targets"].update(speedd=3), "$.targets"),
    (lambda d: d["radars"][0].update(max_range=50.0), "$.radars[0].max_range"),
    (lambda d: d["targets"]["classes"].update(tank={"weight": 1.0}), "$.targets.classes.tank"),
    (lambda d: d["targets"]["classes"]["person"].update(speed=[3.0, 1.0]),
     "$.targets.classes.person.speed"),
    (lambda d: d["uavs"][0]["pattern"].update(kind="spiral"), "$.uavs[0].pattern"),
    (lambda d: d["uavs"][1].update(id=d["radars"][0]["id"]), "$.uavs[1].id"),
    (lambda d: d.pop("duration_s"), "duration_s"),
])
def test_scenario_errors_name_the_key(change: object, key: str) -> None:
    doc = _doc(SCENARIO_DIR / "default.toml")
    change(doc)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        parse_scenario(doc)
    assert key in str(info.value)


def test_scenario_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nduration_s = "long"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: .*duration_s"):
        load_scenario(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")
