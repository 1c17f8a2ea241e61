"""Wire contracts v1: every MQTT payload the hub reads or writes.

Inbound payloads are decoded by msgspec into frozen Structs whose field types
carry their bounds, so a value out of range, a NaN or a wrong type fails at
decode time. ``decode_*`` functions translate every failure into PayloadError.
docs/PROTOCOL.md describes the same contracts for people.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import Meta, Struct

from hub.errors import PayloadError

Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]
Alt = Annotated[float, Meta(ge=-1_000.0, le=100_000.0)]
# Epoch seconds between 2000-01-01 and 2100-01-01: also rejects NaN and inf.
Timestamp = Annotated[float, Meta(ge=946_684_800.0, le=4_102_444_800.0)]
Seq = Annotated[int, Meta(ge=0, le=2**62)]
Heading = Annotated[float, Meta(ge=-360.0, le=360.0)]
Pitch = Annotated[float, Meta(ge=-90.0, le=90.0)]
Roll = Annotated[float, Meta(ge=-180.0, le=180.0)]
Speed = Annotated[float, Meta(ge=-1_000.0, le=1_000.0)]
Sigma = Annotated[float, Meta(gt=0.0, le=100_000.0)]
AngleSigma = Annotated[float, Meta(gt=0.0, le=180.0)]
Variance = Annotated[float, Meta(ge=-1e10, le=1e10)]
Confidence = Annotated[float, Meta(ge=0.0, le=1.0)]
ClassName = Annotated[str, Meta(min_length=1, max_length=32)]
LocalId = int | Annotated[str, Meta(max_length=64)]

MAX_DETECTIONS_PER_BATCH: Final = 5_000
CLASSES: Final = ("unknown", "person", "vehicle", "uav", "vessel", "aircraft")
"""Class vocabulary of the fused picture; an unlisted ``cls`` counts as unknown."""


# The hot messages' leaves hold numbers and strings only, so they can never be in
# a reference cycle: ``gc=False`` keeps the collector from tracking the thousands a
# second decoded (a radar batch's decode 110-119 → 94-96 µs).
class Telemetry(Struct, frozen=True, kw_only=True, gc=False):
    """Position and attitude report of a platform (``sensors/{id}/telemetry``)."""

    ts: Timestamp
    seq: Seq
    lat: Lat
    lon: Lon
    alt: Alt
    heading: Heading
    pitch: Pitch
    roll: Roll
    vn: Speed | None = None
    ve: Speed | None = None
    vu: Speed | None = None
    battery: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    mode: Annotated[str, Meta(max_length=32)] | None = None


class SensorPosition(Struct, frozen=True, gc=False):
    """Where a sensor stood when it measured (needed for polar detections)."""

    lat: Lat
    lon: Lon
    alt: Alt = 0.0


class GeoDetection(Struct, frozen=True, tag_field="kind", tag="geo", kw_only=True, gc=False):
    """A detection located on the ground, with ``sigma`` or ``cov`` [ee, en, nn] in m²."""

    lat: Lat
    lon: Lon
    alt: Alt | None = None
    sigma: Sigma | None = None
    cov: tuple[Variance, Variance, Variance] | None = None
    cls: ClassName = "unknown"
    conf: Confidence = 1.0
    local_id: LocalId | None = None

    def __post_init__(self) -> None:
        if (self.sigma is None) == (self.cov is None):
            raise ValueError("a geo detection needs exactly one of `sigma` or `cov`")
        if self.cov is not None:
            ee, en, nn = self.cov
            if not (ee > 0.0 and nn > 0.0 and ee * nn - en * en > 0.0):
                raise ValueError("`cov` is not positive definite")


class PolarDetection(Struct, frozen=True, tag_field="kind", tag="polar", kw_only=True,
                     gc=False):
    """A detection by range and bearing from the batch's sensor position."""

    range: Annotated[float, Meta(ge=0.0, le=1_000_000.0)]
    bearing: Annotated[float, Meta(ge=-360.0, le=360.0)]
    elevation: Annotated[float, Meta(ge=-90.0, le=90.0)] | None = None
    sigma_range: Sigma
    sigma_bearing: AngleSigma
    cls: ClassName = "unknown"
    conf: Confidence = 1.0
    local_id: LocalId | None = None


Detection = GeoDetection | PolarDetection


class DetectionBatch(Struct, frozen=True, kw_only=True):
    """One scan's detections from one sensor (``sensors/{id}/detections``)."""

    ts: Timestamp
    seq: Seq
    detections: Annotated[list[Detection], Meta(max_length=MAX_DETECTIONS_PER_BATCH)]
    sensor: SensorPosition | None = None

    def __post_init__(self) -> None:
        if self.sensor is None and any(isinstance(d, PolarDetection) for d in self.detections):
            raise ValueError("polar detections need the batch's `sensor` position")


class Camera(Struct, frozen=True, kw_only=True):
    """Camera intrinsics: ``hfov`` (degrees) or ``fx, fy, cx, cy`` (pixels)."""

    hfov: Annotated[float, Meta(gt=0.0, lt=180.0)] | None = None
    fx: Annotated[float, Meta(gt=0.0, le=1e6)] | None = None
    fy: Annotated[float, Meta(gt=0.0, le=1e6)] | None = None
    cx: Annotated[float, Meta(ge=-1e5, le=1e5)] | None = None
    cy: Annotated[float, Meta(ge=-1e5, le=1e5)] | None = None

    def __post_init__(self) -> None:
        if self.hfov is None and (self.fx is None or self.fy is None):
            raise ValueError("camera needs `hfov` or both `fx` and `fy`")


class Platform(Struct, frozen=True, kw_only=True):
    """Platform pose at the frame's time."""

    lat: Lat
    lon: Lon
    alt: Alt
    heading: Heading
    pitch: Pitch
    roll: Roll


class Gimbal(Struct, frozen=True):
    """Gimbal angles relative to the platform nose; ``el`` negative looks down."""

    az: Heading = 0.0
    el: Annotated[float, Meta(ge=-180.0, le=180.0)] = 0.0


class Frame(Struct, frozen=True, kw_only=True):
    """One camera frame with the pose needed to georeference it."""

    ts: Timestamp
    seq: Seq
    band: Annotated[str, Meta(pattern="^(eo|ir)$")]
    format: Annotated[str, Meta(pattern="^(jpeg|png)$")]
    data: bytes
    width: Annotated[int, Meta(gt=0, le=16_384)]
    height: Annotated[int, Meta(gt=0, le=16_384)]
    camera: Camera
    platform: Platform
    gimbal: Gimbal = Gimbal()


class SensorStatus(Struct, frozen=True, kw_only=True):
    """Retained liveness of a field unit; its will message sets ``online: false``."""

    online: bool
    ts: Timestamp | None = None
    kind: Annotated[str, Meta(max_length=32)] | None = None


class TruthTarget(Struct, frozen=True, kw_only=True):
    """One simulated target's true state."""

    id: int
    lat: Lat
    lon: Lon
    alt: float = 0.0
    vn: float = 0.0
    ve: float = 0.0
    cls: str = "unknown"


class Truth(Struct, frozen=True, kw_only=True):
    """Ground truth published by the simulators on ``sim/truth``."""

    ts: Timestamp
    targets: list[TruthTarget]


class Label(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A track's confidentiality label, in the spirit of STANAG 4774.

    ``classification`` is the highest of the contributing sources' levels,
    ``releasable_to`` the partners every contributing source is released to,
    ``caveats`` the union of the sources' caveats.
    """

    policy: str
    classification: str
    releasable_to: list[str]
    caveats: list[str] = []


class Track(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One track of a published picture."""

    id: str
    ts: float
    lat: float
    lon: float
    vn: float
    ve: float
    cov: tuple[float, float, float]
    status: str
    cls: str
    cls_probs: dict[str, float]
    affiliation: str
    sidc: str
    sources: list[str]
    nations: list[str]
    first_seen: float
    updates: int
    last_update: float | None = None
    alt: float | None = None
    label: Label | None = None


class Picture(Struct, frozen=True, kw_only=True):
    """A partner's picture: a delta (``full`` false) or the whole picture."""

    ts: float
    seq: int
    partner: str
    full: bool
    tracks: list[Track]
    removed: list[str]


class DeadLetter(Struct, frozen=True, kw_only=True):
    """Report of one rejected inbound message, or a summary of many (``hub/deadletter``).

    ``code`` is the refusal's stable reason code (``hub.errors.REFUSAL_CODES``),
    ``reason`` the explanation for people. ``count`` is how many refusals the
    letter stands for: 1, or a summary of one source's refusals with one code
    within a second (hub.ingest.deadletters), then ``size`` is their bytes together.
    """

    ts: float
    topic: str
    reason: str
    size: int
    code: str = ""
    count: int = 1


class HubStatus(Struct, frozen=True, kw_only=True):
    """Retained health of the hub (``hub/status``)."""

    ts: float
    online: bool
    version: str
    uptime: float = 0.0
    counters: dict[str, int] = {}
    rates: dict[str, float] = {}
    queues: dict[str, int] = {}
    broker: str = ""


T = TypeVar("T")

_decoders: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {
    t: msgspec.msgpack.Decoder(t)
    for t in (Telemetry, DetectionBatch, Frame, SensorStatus, Truth, Picture, DeadLetter, HubStatus)
}
_encoder = msgspec.msgpack.Encoder()


def decode(payload: bytes, kind: type[T], max_bytes: int) -> T:
    """Decode ``payload`` as ``kind`` or raise PayloadError with the reason."""
    if len(payload) > max_bytes:
        raise PayloadError("too_large",
                           f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit")
    try:
        result: T = _decoders[kind].decode(payload)
    except msgspec.ValidationError as exc:
        raise PayloadError("schema", f"invalid {kind.__name__}: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadError("undecodable", f"undecodable {kind.__name__}: {exc}") from exc
    return result


def encode(message: Struct) -> bytes:
    """Encode an outbound message as MessagePack."""
    return _encoder.encode(message)


def is_finite(*values: float) -> bool:
    """True when every value is a finite float."""
    return all(math.isfinite(v) for v in values)
