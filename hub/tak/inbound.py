"""What a TAK device may report, turned into the hub's own inbound messages.

A registered unit may send its position (a PLI: ``a-f-...`` under its own
uid), which becomes that unit's telemetry, hence its friend track, exactly as
if it had come over MQTT; and spot reports (a marker the operator placed:
``a-h-...``, ``a-u-...``, ``a-n-...`` at a point), which become a geo
detection of that unit with the marker's ``ce`` (or ``tak.spot_sigma_m`` when
it gives none) and a class taken from the type. Both then go through the
same validation, release rules and fusion as every message. Anything else
(chat, files, emergencies, another unit's position) is refused with a reason
code. Each message gets a per-unit ``seq`` so repeats and gaps are seen.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import msgspec

from hub.errors import PayloadError
from hub.tak.protocol import REQUEST_TYPE, refuse_declarations

UNKNOWN_LIMIT = 9_999_990.0
"""CoT writes 9999999 for an unknown ``hae``, ``ce`` or ``le``."""
SPOT_CONFIDENCE = 0.7
"""How much a human observer's class is trusted (a detector's is its own ``conf``)."""


@dataclass(frozen=True, slots=True)
class CotReport:
    """The fields of one inbound CoT event the hub uses."""

    type: str
    uid: str
    time: float
    lat: float
    lon: float
    hae: float | None
    ce: float | None
    course: float | None
    speed: float | None
    takp_request: bool = False


Kind = Literal["pli", "spot", "control"]


def parse_xml(event: bytes) -> CotReport:
    """One XML event; PayloadError (``undecodable`` or ``schema``) when it is not a CoT event."""
    refuse_declarations(event)
    try:
        root = ET.fromstring(event)
    except ET.ParseError as exc:
        raise PayloadError("undecodable", f"CoT event is not well-formed XML: {exc}") from exc
    if root.tag != "event":
        raise PayloadError("schema", f"CoT root element is <{root.tag[:40]}>, not <event>")
    point = root.find("point")
    track = root.find("detail/track")
    control = root.find("detail/TakControl/TakRequest")
    return CotReport(
        type=_text(root.get("type"), "type"), uid=_text(root.get("uid"), "uid"),
        time=_time(root.get("time") or root.get("start")),
        lat=_number(point, "lat", -90.0, 90.0), lon=_number(point, "lon", -180.0, 180.0),
        hae=_known(point, "hae"), ce=_known(point, "ce"),
        course=None if track is None else _optional(track, "course"),
        speed=None if track is None else _optional(track, "speed"),
        takp_request=control is not None and control.get("version") == "1")


def parse_proto(payload: bytes) -> CotReport:
    """One TAK Protocol v1 TakMessage payload."""
    from takproto.proto import TakMessage  # protobuf loads only for clients that switched

    message = TakMessage()
    try:
        message.ParseFromString(payload)
    except Exception as exc:  # protobuf's DecodeError has no stable import path
        raise PayloadError("undecodable", f"not a TakMessage: {type(exc).__name__}") from exc
    event = message.cotEvent
    if not event.type:
        raise PayloadError("schema", "TakMessage without a cotEvent type")
    refuse_declarations(event.detail.xmlDetail.encode())
    track = event.detail.track
    return CotReport(
        type=_text(event.type, "type"), uid=_text(event.uid, "uid"),
        time=_bounded(event.sendTime / 1000.0 or event.startTime / 1000.0, "time", 0.0, 4.2e9),
        lat=_bounded(event.lat, "lat", -90.0, 90.0), lon=_bounded(event.lon, "lon", -180.0, 180.0),
        hae=event.hae if abs(event.hae) < UNKNOWN_LIMIT else None,
        ce=event.ce if 0.0 < event.ce < UNKNOWN_LIMIT else None,
        course=track.course if event.detail.HasField("track") else None,
        speed=track.speed if event.detail.HasField("track") else None)


def kind_of(report: CotReport, unit_uid: str) -> Kind:
    """What a report is, or PayloadError: ``unsupported`` type, or ``identity`` mismatch."""
    if report.type == REQUEST_TYPE:
        return "control"
    affiliation = report.type[2:3] if report.type.startswith("a-") else ""
    if affiliation == "f":
        if report.uid != unit_uid:
            raise PayloadError("identity", f"a friendly position under uid {report.uid[:64]!r}, "
                                           f"not this unit's {unit_uid!r}")
        return "pli"
    if affiliation in ("h", "u", "n", "s", "j", "k"):
        return "spot"
    raise PayloadError("unsupported", f"CoT type {report.type[:40]!r} is neither a position "
                                      "nor a spot report")


def telemetry(report: CotReport, seq: int, ground_alt: float) -> bytes:
    """A PLI as the unit's telemetry payload (``sensors/{unit}/telemetry``)."""
    message: dict[str, object] = {
        "ts": report.time, "seq": seq, "lat": report.lat, "lon": report.lon,
        "alt": ground_alt if report.hae is None else report.hae,
        "heading": (report.course or 0.0) % 360.0, "pitch": 0.0, "roll": 0.0}
    if report.course is not None and report.speed is not None:
        course = math.radians(report.course)
        message["vn"], message["ve"] = (report.speed * math.cos(course),
                                        report.speed * math.sin(course))
    return msgspec.msgpack.encode(message)


def detections(report: CotReport, seq: int, default_sigma: float) -> bytes:
    """A spot report as one geo detection of the unit (``sensors/{unit}/detections``)."""
    sigma = default_sigma if report.ce is None else max(report.ce, 1.0)
    return msgspec.msgpack.encode({"ts": report.time, "seq": seq, "detections": [
        {"kind": "geo", "lat": report.lat, "lon": report.lon, "sigma": sigma,
         "cls": class_of(report.type), "conf": SPOT_CONFIDENCE, "local_id": report.uid[:64]}]})


def class_of(cot: str) -> str:
    """The hub's class for a CoT atom type (2525 battle dimension and function)."""
    fields = cot.split("-")
    dimension = fields[2] if len(fields) > 2 else ""
    function = "-".join(fields[3:])
    if dimension == "A":
        return "uav" if function.startswith("M-F-Q") else "aircraft"
    if dimension == "S":
        return "vessel"
    if dimension == "G":
        if function.startswith("U-C-I") or function.startswith("U-C-R"):
            return "person"
        if function.startswith("E-V") or function.startswith("U-C-A"):
            return "vehicle"
    return "unknown"


def _text(value: str | None, what: str) -> str:
    if not value or len(value) > 256:
        raise PayloadError("schema", f"CoT event without a usable {what}")
    return value


def _number(element: ET.Element | None, key: str, low: float, high: float) -> float:
    if element is None:
        raise PayloadError("schema", "CoT event without a <point>")
    raw = element.get(key)
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError as exc:
        raise PayloadError("schema", f"point {key} {str(raw)[:40]!r} is not a number") from exc
    return _bounded(value, key, low, high)


def _bounded(value: float, key: str, low: float, high: float) -> float:
    if not low <= value <= high:  # NaN fails too
        raise PayloadError("schema", f"point {key} {value!r} is out of range")
    return value


def _known(element: ET.Element | None, key: str) -> float | None:
    """A point value CoT may give as unknown (9999999): None then, or for junk."""
    value = _optional(element, key)
    return None if value is None or abs(value) >= UNKNOWN_LIMIT or value < -1e6 else value


def _optional(element: ET.Element | None, key: str) -> float | None:
    raw = None if element is None else element.get(key)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _time(raw: str | None) -> float:
    if not raw:
        raise PayloadError("schema", "CoT event without a time")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadError("schema", f"CoT time {raw[:40]!r} is not ISO 8601") from exc
    # CoT times are UTC; one written without its Z is taken as UTC too.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()

