"""Decoders accept exactly the contract: anything else is a PayloadError, nothing else escapes."""

from __future__ import annotations

import contextlib
import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import PayloadError
from hub.messages import (
    DetectionBatch,
    Frame,
    GeoDetection,
    PolarDetection,
    SensorStatus,
    Telemetry,
    decode,
)

LIMIT = 1 << 20
TELEMETRY = {"ts": 1.8e9, "seq": 3, "lat": -1.3, "lon": 36.8, "alt": 1700.0, "heading": 90.0,
             "pitch": 2.0, "roll": -1.0, "vn": 3.0, "ve": 4.0}
DETECTIONS = {"ts": 1.8e9, "seq": 7, "sensor": {"lat": -1.3, "lon": 36.8, "alt": 1650.0},
              "detections": [
                  {"kind": "geo", "lat": -1.29, "lon": 36.81, "sigma": 8.0, "cls": "person",
                   "conf": 0.7, "local_id": 12},
                  {"kind": "geo", "lat": -1.28, "lon": 36.82, "cov": [25.0, 5.0, 16.0]},
                  {"kind": "polar", "range": 1200.0, "bearing": 45.0, "sigma_range": 10.0,
                   "sigma_bearing": 0.5, "extra": "ignored"}]}
CONTRACTS = [(Telemetry, TELEMETRY), (DetectionBatch, DETECTIONS)]


def test_valid_messages_decode_into_typed_structs() -> None:
    batch = decode(msgpack.packb(DETECTIONS), DetectionBatch, LIMIT)
    assert [type(d) for d in batch.detections] == [GeoDetection, GeoDetection, PolarDetection]
    assert batch.detections[1].cov == (25.0, 5.0, 16.0)
    telemetry = decode(msgpack.packb(TELEMETRY), Telemetry, LIMIT)
    assert telemetry.vn == 3.0 and telemetry.battery is None


@pytest.mark.parametrize(("change", "where"), [
    ({"lat": math.nan}, "$.lat"), ({"lat": math.inf}, "$.lat"), ({"lat": 90.5}, "$.lat"),
    ({"ts": -1.0}, "$.ts"), ({"seq": -1}, "$.seq"), ({"heading": "north"}, "$.heading"),
    ({"alt": None}, "$.alt"),
])
def test_bad_telemetry_names_the_field(change: dict[str, object], where: str) -> None:
    with pytest.raises(PayloadError, match=f"invalid Telemetry: .*{where.replace('$', '[$]')}"):
        decode(msgpack.packb({**TELEMETRY, **change}), Telemetry, LIMIT)


@pytest.mark.parametrize(("detection", "reason"), [
    ({"kind": "geo", "lat": 0.0, "lon": 0.0}, "exactly one of"),
    ({"kind": "geo", "lat": 0.0, "lon": 0.0, "sigma": 1.0, "cov": [1, 0, 1]}, "exactly one of"),
    ({"kind": "geo", "lat": 0.0, "lon": 0.0, "cov": [-1.0, 0.0, 1.0]}, "positive definite"),
    ({"kind": "geo", "lat": 0.0, "lon": 0.0, "sigma": 0.0}, "> 0.0"),
    ({"kind": "radar", "lat": 0.0}, "Invalid value 'radar'"),
    ({"kind": "polar", "range": 1.0, "bearing": 0.0, "sigma_range": 1.0,
      "sigma_bearing": math.nan}, "sigma_bearing"),
])
def test_bad_detections_are_refused(detection: dict[str, object], reason: str) -> None:
    payload = msgpack.packb({"ts": 1.8e9, "seq": 1, "detections": [detection]})
    with pytest.raises(PayloadError, match=reason):
        decode(payload, DetectionBatch, LIMIT)


def test_polar_needs_the_sensor_position_and_size_is_limited() -> None:
    polar_only = {**DETECTIONS, "detections": DETECTIONS["detections"][2:]}  # type: ignore[index]
    del polar_only["sensor"]
    with pytest.raises(PayloadError, match="sensor"):
        decode(msgpack.packb(polar_only), DetectionBatch, LIMIT)
    with pytest.raises(PayloadError, match="exceeds the 100-byte limit"):
        decode(msgpack.packb(DETECTIONS), DetectionBatch, 100)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_only_ever_raise_payload_error(payload: bytes) -> None:
    for kind in (Telemetry, DetectionBatch, Frame, SensorStatus):
        with contextlib.suppress(PayloadError):
            decode(payload, kind, LIMIT)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CONTRACTS), st.data())
def test_mutated_valid_messages_only_ever_raise_payload_error(
        contract: tuple[type, dict[str, object]], data: st.DataObject) -> None:
    kind, valid = contract
    raw = bytearray(msgpack.packb(valid))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(PayloadError):
        decode(bytes(raw), kind, LIMIT)
