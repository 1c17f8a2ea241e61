"""Valid inbound messages by the contract, and mutations that each break it in one named way.

Shared by the decoder property tests (driven by hypothesis through ``st.randoms``)
and the pipeline fuzz tests (driven by a seeded ``random.Random``). Every mutation
here makes the message invalid for the hub, by schema or by its timestamp relative
to the receive time, so a fuzzed message on a registered sensor's topic must be
dead-lettered and can never change the picture.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

import msgpack

from hub.errors import PayloadError
from hub.messages import (
    MAX_DETECTIONS_PER_BATCH,
    DetectionBatch,
    Frame,
    SensorStatus,
    Telemetry,
    decode,
)

Message = dict[str, Any]
Bounds = tuple[float, float]

MAX_FUTURE_S = 5.0
MAX_AGE_S = 86_400.0
BAD_IDS = ["a/b", "+", "#", "x#y", "$SYS", "a\x00b", "", "x" * 65, "é", "a b", "..\n"]
WRONG_TYPES: list[object] = ["x", [1.0], {"a": 1}, True, b"\x00"]

TELEMETRY_BOUNDS: dict[str, Bounds] = {
    "lat": (-90, 90), "lon": (-180, 180), "alt": (-1_000, 100_000), "heading": (-360, 360),
    "pitch": (-90, 90), "roll": (-180, 180), "vn": (-1_000, 1_000), "ve": (-1_000, 1_000),
    "vu": (-1_000, 1_000), "battery": (0, 100)}
POSITION_BOUNDS: dict[str, Bounds] = {"lat": (-90, 90), "lon": (-180, 180),
                                      "alt": (-1_000, 100_000)}
GEO_BOUNDS: dict[str, Bounds] = {**POSITION_BOUNDS, "sigma": (0, 1e5), "conf": (0, 1)}
POLAR_BOUNDS: dict[str, Bounds] = {
    "range": (0, 1e6), "bearing": (-360, 360), "elevation": (-90, 90), "sigma_range": (0, 1e5),
    "sigma_bearing": (0, 180), "conf": (0, 1)}
PLATFORM_BOUNDS = {k: TELEMETRY_BOUNDS[k]
                   for k in ("lat", "lon", "alt", "heading", "pitch", "roll")}


def pack(message: object) -> bytes:
    """Encode as a third-party field unit would."""
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def _uniform(rng: random.Random, bounds: Bounds) -> float:
    """A value strictly inside ``bounds`` (some are open at zero)."""
    lo, hi = bounds
    return lo + (hi - lo) * (0.5 + 0.999 * (rng.random() - 0.5))


def _fields(rng: random.Random, bounds: dict[str, Bounds]) -> Message:
    return {key: _uniform(rng, b) for key, b in bounds.items()}


def valid_telemetry(rng: random.Random, ts: float, seq: int) -> Message:
    """A telemetry message inside every bound."""
    message = {"ts": ts, "seq": seq, **_fields(rng, TELEMETRY_BOUNDS)}
    if rng.random() < 0.5:
        message["mode"] = rng.choice(["auto", "loiter", "rtl", ""])
    return message


def valid_geo(rng: random.Random) -> Message:
    """A geo detection with either a sigma or a positive-definite covariance."""
    det: Message = {"kind": "geo", **_fields(rng, GEO_BOUNDS)}
    if rng.random() < 0.5:
        del det["sigma"]
        ee, nn = rng.uniform(1.0, 1e4), rng.uniform(1.0, 1e4)
        det["cov"] = [ee, rng.uniform(-0.9, 0.9) * math.sqrt(ee * nn), nn]
    det["cls"] = rng.choice(["unknown", "person", "vehicle", "uav", "boat", "x" * 32])
    if rng.random() < 0.5:
        det["local_id"] = rng.choice([rng.randrange(-2**63, 2**63), "t-" + "7" * 62])
    return det


def valid_polar(rng: random.Random) -> Message:
    """A polar detection inside every bound."""
    return {"kind": "polar", **_fields(rng, POLAR_BOUNDS),
            "cls": rng.choice(["unknown", "vehicle"])}


def valid_batch(rng: random.Random, ts: float, seq: int, size: int = 4) -> Message:
    """A detection batch of up to ``size`` geo and polar detections with the sensor position."""
    detections = [valid_geo(rng) if rng.random() < 0.5 else valid_polar(rng)
                  for _ in range(rng.randint(0, size))]
    return {"ts": ts, "seq": seq, "detections": detections,
            "sensor": _fields(rng, POSITION_BOUNDS)}


def valid_frame(rng: random.Random, ts: float, seq: int) -> Message:
    """A camera frame message with a small opaque image."""
    camera = ({"hfov": rng.uniform(1.0, 170.0)} if rng.random() < 0.5 else
              {"fx": rng.uniform(1.0, 1e4), "fy": rng.uniform(1.0, 1e4), "cx": 320.0, "cy": 240.0})
    return {"ts": ts, "seq": seq, "band": rng.choice(["eo", "ir"]),
            "format": rng.choice(["jpeg", "png"]), "data": rng.randbytes(rng.randint(0, 64)),
            "width": rng.randint(1, 16_384), "height": rng.randint(1, 16_384), "camera": camera,
            "platform": _fields(rng, PLATFORM_BOUNDS),
            "gimbal": {"az": rng.uniform(-360, 360), "el": rng.uniform(-180, 180)}}


def valid_status(rng: random.Random, ts: float) -> Message:
    """A sensor status message."""
    return {"online": rng.random() < 0.5, "ts": ts, "kind": rng.choice(["radar", "uav"])}


VALID: dict[str, Callable[[random.Random, float, int], Message]] = {
    "telemetry": valid_telemetry, "detections": valid_batch, "frames": valid_frame,
    "status": lambda rng, ts, seq: valid_status(rng, ts)}


def bad_number(rng: random.Random, bounds: Bounds, optional: bool = False) -> object:
    """A value no bounded float field accepts: NaN, ±inf, out of range or the wrong type."""
    lo, hi = bounds
    choices: list[object] = [math.nan, math.inf, -math.inf, hi + 1 + abs(hi) * rng.random(),
                             lo - 1 - abs(lo) * rng.random(), 1e308, -1e308, *WRONG_TYPES[:4]]
    if not optional:
        choices.append(None)
    return rng.choice(choices)


def bad_time(rng: random.Random, t_received: float) -> object:
    """A timestamp too far in the future or past for ``t_received``, or not a time at all."""
    return rng.choice([t_received + MAX_FUTURE_S + 1 + rng.expovariate(1e-3),
                       t_received - MAX_AGE_S - 1 - rng.expovariate(1e-6),
                       4.2e9, 0.0, -1.0, math.nan, math.inf, "now", None])


def _mutate_fields(rng: random.Random, target: Message, bounds: dict[str, Bounds],
                   required: set[str]) -> str:
    key = rng.choice(sorted(bounds))
    if key in required and rng.random() < 0.15:
        del target[key]
        return f"{key} missing"
    target[key] = bad_number(rng, bounds[key], optional=key not in required)
    return f"{key}={target[key]!r}"


def _mutate_common(rng: random.Random, message: Message, t_received: float) -> str | None:
    """Break ``ts`` or ``seq`` a third of the time; None when it left them alone."""
    roll = rng.random()
    if roll < 0.22:
        message["ts"] = bad_time(rng, t_received)
        return f"ts={message['ts']!r}"
    if roll < 0.3:
        message["seq"] = rng.choice([-1, 2**63, 1.5, "1", None])
        return f"seq={message['seq']!r}"
    return None


def _mutate_telemetry(rng: random.Random, m: Message, t: float) -> str:
    if rng.random() < 0.1:
        m["mode"] = rng.choice(["x" * 33, 5, ["auto"]])
        return "mode"
    return _mutate_common(rng, m, t) or _mutate_fields(
        rng, m, TELEMETRY_BOUNDS, {"lat", "lon", "alt", "heading", "pitch", "roll"})


_OVERSIZE: list[bytes] = []


def _oversize_detections() -> list[Message]:
    det = {"kind": "geo", "lat": 0.0, "lon": 0.0, "sigma": 5.0}
    return [det] * (MAX_DETECTIONS_PER_BATCH + 1)


def _mutate_detection(rng: random.Random, m: Message) -> str:
    if not m["detections"]:
        m["detections"].append(valid_geo(rng))
    det = rng.choice(m["detections"])
    roll = rng.random()
    if det["kind"] == "geo" and roll < 0.3:
        ee, nn = rng.uniform(-10, 1e4), rng.uniform(-10, 1e4)
        choice = rng.choice(["negative", "non-pd", "both", "neither", "short", "nan"])
        det.pop("sigma", None)
        off = 2 * math.sqrt(abs(ee * nn)) + 1
        det["cov"] = {"negative": [-abs(ee) - 1, 0.0, nn], "non-pd": [abs(ee), off, abs(nn)],
                      "both": [1.0, 0.0, 1.0], "neither": None, "short": [1.0, 0.0],
                      "nan": [math.nan, 0.0, 1.0]}[choice]
        if choice == "both":
            det["sigma"] = 3.0
        if choice == "neither":
            del det["cov"]
        return f"cov {choice}"
    if roll < 0.4:
        det["kind"] = rng.choice(["radar", "", 3, None])
        return "kind"
    if roll < 0.5:
        key = rng.choice(["cls", "local_id"])
        det[key] = rng.choice(["", "x" * 65, 1.5, [1]]) if key == "local_id" else rng.choice(
            ["", "x" * 33, 7, None])
        if key == "local_id" and det[key] == "":
            det[key] = "x" * 65
        return key
    bounds = GEO_BOUNDS if det["kind"] == "geo" else POLAR_BOUNDS
    required = ({"lat", "lon"} if det["kind"] == "geo" else
                {"range", "bearing", "sigma_range", "sigma_bearing"})
    if det["kind"] == "geo" and "sigma" not in det:
        bounds = {k: v for k, v in bounds.items() if k != "sigma"}
    return "detection " + _mutate_fields(rng, det, bounds, required)


def _mutate_batch(rng: random.Random, m: Message, t: float) -> str:
    common = _mutate_common(rng, m, t)
    if common:
        return common
    roll = rng.random()
    if roll < 0.02:
        m["detections"] = _oversize_detections()
        return "oversize"
    if roll < 0.1:
        m["detections"] = rng.choice(["x", {"kind": "geo"}, None, [1, 2]])
        return "detections type"
    if roll < 0.18:
        m["detections"].append(valid_polar(rng))
        del m["sensor"]
        return "polar without sensor"
    if roll < 0.28:
        return "sensor " + _mutate_fields(rng, m["sensor"], POSITION_BOUNDS, {"lat", "lon"})
    return _mutate_detection(rng, m)


def _mutate_frame(rng: random.Random, m: Message, t: float) -> str:
    common = _mutate_common(rng, m, t)
    if common:
        return common
    roll = rng.random()
    if roll < 0.15:
        key = rng.choice(["band", "format"])
        m[key] = rng.choice(["uv", "gif", "", 1, None])
        return key
    if roll < 0.3:
        key = rng.choice(["width", "height"])
        m[key] = rng.choice([0, -1, 16_385, 2**40, 1.5, "640", None])
        return key
    if roll < 0.4:
        m["data"] = rng.choice([5, None, [1, 2], {"a": 1}])
        return "data"
    if roll < 0.55:
        m["camera"] = rng.choice([{}, {"fx": 100.0}, {"hfov": 180.0}, {"hfov": 0.0},
                                  {"hfov": math.nan}, {"fx": -1.0, "fy": 1.0}, None])
        return "camera"
    if roll < 0.65:
        m["gimbal"] = {"az": bad_number(rng, (-360, 360)), "el": 0.0}
        return "gimbal"
    return "platform " + _mutate_fields(rng, m["platform"], PLATFORM_BOUNDS, set(PLATFORM_BOUNDS))


def _mutate_status(rng: random.Random, m: Message, t: float) -> str:
    roll = rng.random()
    if roll < 0.4:
        m["online"] = rng.choice([1, 0, "yes", None, [True]])
        return "online"
    if roll < 0.5:
        del m["online"]
        return "online missing"
    if roll < 0.65:
        m["kind"] = rng.choice(["x" * 33, 5, [1]])
        return "kind"
    m["ts"] = rng.choice([t + MAX_FUTURE_S + 1 + rng.expovariate(1e-3), 4.2e9, 0.0, math.nan,
                          math.inf, "now"])
    return f"ts={m['ts']!r}"


MUTATE: dict[str, Callable[[random.Random, Message, float], str]] = {
    "telemetry": _mutate_telemetry, "detections": _mutate_batch, "frames": _mutate_frame,
    "status": _mutate_status}


def mutated(rng: random.Random, kind: str, t_received: float) -> tuple[Message, str]:
    """A message of ``kind`` made invalid in one way, and what was broken."""
    message = copy.deepcopy(VALID[kind](rng, t_received, rng.randrange(2**40)))
    return message, MUTATE[kind](rng, message, t_received)


def mangled_bytes(rng: random.Random, payload: bytes) -> bytes:
    """``payload`` truncated, with bytes overwritten, or replaced by random bytes."""
    roll = rng.random()
    if roll < 0.3 or not payload:
        return rng.randbytes(rng.randint(0, 200))
    if roll < 0.5:
        return payload[:rng.randrange(len(payload))]
    raw = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    return bytes(raw)


KINDS: dict[str, type[Any]] = {"telemetry": Telemetry, "detections": DetectionBatch,
                               "frames": Frame, "status": SensorStatus}


def refused_payload(rng: random.Random, kind: str, t_received: float, good: list[bytes],
                    mangle: bool) -> bytes:
    """A ``kind`` payload the hub must refuse: a mutated message, or mangled bytes.

    Mangled bytes start from the mutated message or from one of ``good``; bytes
    that still decode as a valid message are drawn again.
    """
    message, _ = mutated(rng, kind, t_received)
    if not mangle:
        return pack(message)
    while True:
        payload = mangled_bytes(rng, pack(message) if rng.random() < 0.5 else rng.choice(good))
        try:
            decode(payload, KINDS[kind], 1 << 20)
        except PayloadError:
            return payload
