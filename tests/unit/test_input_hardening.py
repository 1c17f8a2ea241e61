"""Input hardening: every decoder lets out only our typed error, and every bad input is refused.

Valid messages are built by the contract (tests/fuzzing.py) and must round-trip;
the same messages broken in one way (NaN, ±inf, out of range, wrong type, stale or
future time, bad covariance, oversize arrays) must be refused by the router with a
reason, and counted as rejected by the pipeline. The config loader gets the same
treatment with random and mutated documents and random file bytes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import tomllib
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import pytest
from fuzzing import BAD_IDS, VALID, mangled_bytes, mutated, pack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import topics
from hub.config import DEFAULT_CONFIG, HubConfig, load_config, parse_config
from hub.errors import ConfigError, PayloadError
from hub.geo import EnuFrame
from hub.ingest.router import Router
from hub.messages import DetectionBatch, Frame, SensorStatus, Telemetry, decode
from hub.pipeline import Pipeline

LIMIT = 1 << 20
T_RECEIVED = 1_800_000_000.0
KINDS: dict[str, type[Any]] = {"telemetry": Telemetry, "detections": DetectionBatch,
                               "frames": Frame, "status": SensorStatus}
SENSOR = {"telemetry": "nld-uav-1", "detections": "ken-radar-1", "frames": "nld-uav-1",
          "status": "gha-radar-1"}
CONFIG = load_config(DEFAULT_CONFIG)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def router() -> Router:
    origin = CONFIG.mission.origin
    return Router(CONFIG, EnuFrame(origin.lat, origin.lon, origin.alt))


def floats_in(value: object) -> list[float]:
    """Every float anywhere inside ``value`` (a decoded message or config as builtins)."""
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list | tuple):
        return [f for v in value for f in floats_in(v)]
    return []


def assert_subset(sent: object, got: object) -> None:
    """Every field sent comes back equal (defaults may be added)."""
    if isinstance(sent, dict):
        assert isinstance(got, dict)
        for key, value in sent.items():
            assert_subset(value, got[key])
    elif isinstance(sent, list):
        assert isinstance(got, list) and len(got) == len(sent)
        for a, b in zip(sent, got, strict=True):
            assert_subset(a, b)
    else:
        assert got == sent


@SETTINGS
@given(st.sampled_from(sorted(KINDS)), st.randoms(use_true_random=False))
def test_valid_messages_round_trip_and_route(kind: str, rng: random.Random) -> None:
    message = VALID[kind](rng, T_RECEIVED - rng.uniform(0.0, 3_600.0), rng.randrange(2**40))
    decoded = decode(pack(message), KINDS[kind], LIMIT)
    again = msgpack.unpackb(msgspec.msgpack.encode(decoded))
    assert_subset(message, again)
    assert all(math.isfinite(f) for f in floats_in(again))
    router().route(topics.sensor(SENSOR[kind], kind), pack(message), T_RECEIVED)  # type: ignore[arg-type]


@SETTINGS
@given(st.sampled_from(sorted(KINDS)), st.randoms(use_true_random=False))
def test_mutated_messages_are_refused_with_a_reason(kind: str, rng: random.Random) -> None:
    message, broken = mutated(rng, kind, T_RECEIVED)
    with pytest.raises(PayloadError) as refused:
        router().route(topics.sensor(SENSOR[kind], kind), pack(message), T_RECEIVED)  # type: ignore[arg-type]
    assert refused.value.reason, broken


@SETTINGS
@given(st.sampled_from(sorted(KINDS)), st.randoms(use_true_random=False))
def test_mangled_bytes_only_ever_raise_payload_error(kind: str, rng: random.Random) -> None:
    payload = mangled_bytes(rng, pack(VALID[kind](rng, T_RECEIVED, 1)))
    for decoder in KINDS.values():
        with contextlib.suppress(PayloadError):
            decode(payload, decoder, LIMIT)
    with contextlib.suppress(PayloadError):
        router().route(topics.sensor(SENSOR[kind], kind), payload, T_RECEIVED)  # type: ignore[arg-type]


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers(-2**63, 2**64 - 1)
                    | st.text(max_size=8)
                    | st.binary(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20))
def test_arbitrary_msgpack_values_only_ever_raise_payload_error(value: object) -> None:
    payload = pack(value)
    for decoder in KINDS.values():
        with contextlib.suppress(PayloadError):
            decode(payload, decoder, LIMIT)


# One example of each rejection part 7 names, on the topic that carries it.
BASE_BATCH = {"ts": T_RECEIVED, "seq": 1, "sensor": {"lat": -1.3, "lon": 36.8},
              "detections": [{"kind": "geo", "lat": -1.29, "lon": 36.81, "sigma": 8.0}]}
BASE_TELEMETRY = {"ts": T_RECEIVED, "seq": 1, "lat": -1.3, "lon": 36.8, "alt": 1700.0,
                  "heading": 90.0, "pitch": 2.0, "roll": -1.0}


def with_detection(**change: object) -> dict[str, object]:
    batch = copy.deepcopy(BASE_BATCH)
    batch["detections"][0].update(change)  # type: ignore[index]
    return batch


REJECTIONS: list[tuple[str, str, object, str]] = [
    ("nan", "sensors/nld-uav-1/telemetry", {**BASE_TELEMETRY, "lat": math.nan}, r"\$\.lat"),
    ("infinite", "sensors/nld-uav-1/telemetry", {**BASE_TELEMETRY, "vn": math.inf}, r"\$\.vn"),
    ("out of range", "sensors/nld-uav-1/telemetry", {**BASE_TELEMETRY, "pitch": 91.0},
     r"\$\.pitch"),
    ("future", "sensors/nld-uav-1/telemetry", {**BASE_TELEMETRY, "ts": T_RECEIVED + 60},
     "in the future"),
    ("far past", "sensors/ken-radar-1/detections", {**BASE_BATCH, "ts": T_RECEIVED - 2 * 86_400},
     "in the past"),
    ("future status", "sensors/ken-radar-1/status", {"online": True, "ts": T_RECEIVED + 3_600},
     "in the future"),
    ("future frame", "sensors/nld-uav-1/frames",
     {"ts": T_RECEIVED + 60, "seq": 1, "band": "eo", "format": "jpeg", "data": b"", "width": 1,
      "height": 1, "camera": {"hfov": 60.0}, "platform": {
          "lat": 0.0, "lon": 0.0, "alt": 0.0, "heading": 0.0, "pitch": 0.0, "roll": 0.0}},
     "in the future"),
    ("negative covariance", "sensors/ken-radar-1/detections",
     with_detection(sigma=None, cov=[-4.0, 0.0, 4.0]), "positive definite"),
    ("non-PD covariance", "sensors/ken-radar-1/detections",
     with_detection(sigma=None, cov=[4.0, 5.0, 4.0]), "positive definite"),
    ("NaN covariance", "sensors/ken-radar-1/detections",
     with_detection(sigma=None, cov=[math.nan, 0.0, 4.0]), r"\$\.detections\[0\]"),
    ("zero sigma", "sensors/ken-radar-1/detections", with_detection(sigma=0.0), "sigma"),
    ("oversize array", "sensors/ken-radar-1/detections",
     {**BASE_BATCH, "detections": BASE_BATCH["detections"] * 5_001},  # type: ignore[operator]
     "length <= 5000"),
    ("unknown id", "sensors/intruder/detections", BASE_BATCH, "unknown sensor id"),
    *[(f"bad id {bad!r}", f"sensors/{bad}/detections", BASE_BATCH, "sensor")
      for bad in BAD_IDS],
]


@pytest.mark.parametrize(("topic", "message", "reason"), [r[1:] for r in REJECTIONS],
                         ids=[r[0] for r in REJECTIONS])
def test_each_named_rejection_has_a_reason_and_is_counted(topic: str, message: object,
                                                          reason: str) -> None:
    pipeline = Pipeline(CONFIG)
    assert not pipeline.handle(topic, pack(message), T_RECEIVED)
    assert pipeline.counters["rejected"] == 1 and pipeline.counters["received"] == 1
    assert pipeline.dead_letters[-1].reason.count("internal error") == 0
    assert pipeline.dead_letters[-1].topic == topic[:256]
    with pytest.raises(PayloadError, match=reason):
        pipeline.router.route(topic, pack(message), T_RECEIVED)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_topic_building_refuses_bad_ids(bad: str) -> None:
    for build in (topics.sensor_all, topics.partner_picture, topics.partner_snapshot,
                  topics.partner_all):
        with pytest.raises(PayloadError):
            build(bad)
    for kind in topics.INBOUND_KINDS:
        with pytest.raises(PayloadError):
            topics.sensor(bad, kind)


# The config loader.
VALID_CONFIG: dict[str, Any] = tomllib.loads(DEFAULT_CONFIG.read_text())
JUNK: list[object] = [math.nan, math.inf, -math.inf, -1, 0, 2**70, 1e308, "x", "a/b", "\x00", "",
                      [], {}, None, True, [1, "x"], {"id": "x"}]


def leaves(value: object, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every value inside a parsed TOML document."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaves(v, (*path, i))] or [path]
    return [path]


def assert_sane(config: HubConfig) -> None:
    assert all(math.isfinite(f) for f in floats_in(msgspec.to_builtins(config)))


@SETTINGS
@given(st.randoms(use_true_random=False), st.integers(1, 4))
def test_mutated_configs_give_a_config_error_or_a_sane_config(rng: random.Random,
                                                              changes: int) -> None:
    data = copy.deepcopy(VALID_CONFIG)
    for _ in range(changes):
        path = rng.choice(leaves(data))
        if not path:
            break
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[path[-1]]
        elif isinstance(parent, dict) and rng.random() < 0.1:
            parent["unknown_" + str(path[-1])] = 1
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(JUNK))
    try:
        config = parse_config(data)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert_sane(config)


@SETTINGS
@given(st.dictionaries(st.text(max_size=10), st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=10), max_size=5))
def test_random_config_documents_give_only_config_error(data: dict[str, object]) -> None:
    with contextlib.suppress(ConfigError):
        assert_sane(parse_config(data))


@SETTINGS
@given(st.one_of(st.binary(max_size=300),
                 st.randoms(use_true_random=False).map(
                     lambda rng: mangled_bytes(rng, DEFAULT_CONFIG.read_bytes()))))
def test_config_files_of_random_bytes_give_only_config_error(tmp_path_factory: Any,
                                                             raw: bytes) -> None:
    path: Path = tmp_path_factory.mktemp("cfg") / "hub.toml"
    path.write_bytes(raw)
    with contextlib.suppress(ConfigError):
        assert_sane(load_config(path))


def test_the_default_config_round_trips() -> None:
    config = parse_config(copy.deepcopy(VALID_CONFIG))
    assert parse_config(msgspec.to_builtins(config)) == config
    assert_sane(config)


def test_dead_letters_pushed_out_of_a_full_backlog_are_counted() -> None:
    from hub.config import DEFAULT_CONFIG, load_config
    from hub.pipeline import DEAD_LETTER_BACKLOG, Pipeline

    pipeline = Pipeline(load_config(DEFAULT_CONFIG))
    for k in range(DEAD_LETTER_BACKLOG + 7):
        assert not pipeline.handle("sensors/nobody/detections", b"\x00", 1.8e9 + k)
    assert len(pipeline.dead_letters) == DEAD_LETTER_BACKLOG
    assert pipeline.counters["rejected"] == DEAD_LETTER_BACKLOG + 7
    assert pipeline.counters["dead_letters_dropped"] == 7
