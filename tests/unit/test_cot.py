"""Cursor-on-Target out and in: events TAK clients read, and what devices may send the hub."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import msgspec
import pytest
import takproto

from hub.errors import PayloadError
from hub.messages import DetectionBatch, Label, Telemetry, Track
from hub.publish.cot import cot_time, cot_type, delete_event, to_frame, track_event
from hub.tak.inbound import class_of, detections, kind_of, parse_proto, parse_xml, telemetry
from hub.tak.protocol import ProtoFrames, XmlEvents

T0 = 1_796_140_800.0  # 2026-12-01T16:00:00Z
LABEL = Label(policy="UN-SECTOR-EAST", classification="RESTRICTED",
              releasable_to=["gha", "ken"], caveats=["UN MISSION"])


def track(**changes: object) -> Track:
    base = Track(id="T7", ts=T0, lat=-1.2921, lon=36.8219, vn=3.0, ve=4.0,
                 cov=(400.0, 0.0, 100.0), status="confirmed", cls="vehicle",
                 cls_probs={"vehicle": 0.87, "unknown": 0.13}, affiliation="unknown",
                 sidc="SUGP-----------", sources=["ken-radar-1"], nations=["KEN"],
                 first_seen=T0 - 60.0, updates=30, last_update=T0 - 2.0, label=LABEL)
    return msgspec.structs.replace(base, **changes)


@pytest.mark.parametrize(("sidc", "expected"), [
    ("SHGPUCI--------", "a-h-G-U-C-I"), ("SFGPUCR--------", "a-f-G-U-C-R"),
    ("SHAPMFQ--------", "a-h-A-M-F-Q"), ("SUGP-----------", "a-u-G"),
    ("SFAP-----------", "a-f-A"), ("SNSP-----------", "a-n-S")])
def test_the_cot_type_comes_from_the_sidc(sidc: str, expected: str) -> None:
    assert cot_type(sidc) == expected


def test_a_track_event_carries_everything_a_tak_client_shows() -> None:
    raw = track_event(track(), "ken", stale_s=15.0, now=T0)
    assert raw.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<event ')
    assert raw.endswith("</event>")  # nothing after it: the next event's declaration follows
    event = ET.fromstring(raw.split("\n", 1)[1])
    assert event.attrib | {} == {
        "version": "2.0", "uid": "hub.ken.T7", "type": "a-u-G", "how": "m-f",
        "time": "2026-12-01T16:00:00.000Z", "start": "2026-12-01T16:00:00.000Z",
        "stale": "2026-12-01T16:00:13.000Z", "access": "RESTRICTED"}
    point = event.find("point")
    assert point is not None and point.get("ce") == "20.0" and point.get("hae") == "9999999.0"
    assert float(point.get("lat", "nan")) == pytest.approx(-1.2921)
    detail = event.find("detail")
    assert detail is not None
    assert detail.find("track").attrib == {"course": "53.1", "speed": "5.00"}  # type: ignore[union-attr]
    assert detail.find("contact").get("callsign") == "T7"  # type: ignore[union-attr]
    assert "vehicle (87%)" in (detail.findtext("remarks") or "")
    assert "ken-radar-1" in (detail.findtext("remarks") or "")
    label = detail.find("__cop_label")
    assert label is not None and label.attrib == {
        "policy": "UN-SECTOR-EAST", "classification": "RESTRICTED",
        "releasable_to": "gha ken", "caveats": "UN MISSION"}
    assert detail.find("__milsym").get("id") == "SUGP-----------"  # type: ignore[union-attr]
    friend = ET.fromstring(track_event(track(affiliation="friend", sidc="SFAP-----------"),
                                       "ken", 15.0, T0).split("\n", 1)[1])
    assert friend.get("how") == "m-g" and friend.get("type") == "a-f-A"


def test_the_label_survives_tak_protobuf() -> None:
    message = takproto.parse_proto(bytearray(to_frame(track_event(track(), "ken", 15.0, T0))))
    assert message is not None
    event = message.cotEvent
    assert (event.uid, event.type, event.how, event.access) == (
        "hub.ken.T7", "a-u-G", "m-f", "RESTRICTED")
    assert event.detail.contact.callsign == "T7"
    assert '<__cop_label policy="UN-SECTOR-EAST" classification="RESTRICTED" ' \
           'releasable_to="gha ken" caveats="UN MISSION"' in event.detail.xmlDetail
    assert event.staleTime - event.startTime == 13_000  # last update 2 s before the picture


def test_a_track_that_leaves_is_force_deleted() -> None:
    event = ET.fromstring(delete_event("ken", "T7", now=T0).split("\n", 1)[1])
    assert event.get("type") == "t-x-d-d"
    assert event.find("detail/link").get("uid") == "hub.ken.T7"  # type: ignore[union-attr]
    assert event.find("detail/__forcedelete") is not None


def test_xml_is_escaped() -> None:
    hostile = track(sources=['x" onload="y', "<script>"], id='T"1')
    event = ET.fromstring(track_event(hostile, "ken", 15.0, T0).split("\n", 1)[1])
    assert event.find("detail/contact").get("callsign") == 'T"1'  # type: ignore[union-attr]
    assert "<script>" in (event.findtext("detail/remarks") or "")


def pli(uid: str = "ken-team-1", cot: str = "a-f-G-U-C-I", lat: str = "-1.30",
        extra: str = "") -> bytes:
    stamp = cot_time(T0)
    return (f'<?xml version="1.0"?><event version="2.0" uid="{uid}" type="{cot}" how="h-e" '
            f'time="{stamp}" start="{stamp}" stale="{cot_time(T0 + 60)}">'
            f'<point lat="{lat}" lon="36.80" hae="1650.0" ce="12.0" le="9999999.0"/>'
            f'<detail><track course="90.0" speed="2.0"/>{extra}</detail></event>').encode()


def test_a_pli_becomes_the_units_telemetry() -> None:
    report = parse_xml(pli())
    assert kind_of(report, "ken-team-1") == "pli"
    message = msgspec.msgpack.decode(telemetry(report, 7, 1650.0), type=Telemetry)
    assert (message.ts, message.seq, message.lat, message.alt) == (T0, 7, -1.30, 1650.0)
    assert message.ve == pytest.approx(2.0) and abs(message.vn or 0.0) < 1e-9


def test_a_spot_report_becomes_a_geo_detection_of_the_unit() -> None:
    report = parse_xml(pli(uid="marker-1", cot="a-h-G-U-C-I"))
    assert kind_of(report, "ken-team-1") == "spot"
    batch = msgspec.msgpack.decode(detections(report, 3, 30.0), type=DetectionBatch)
    (detection,) = batch.detections
    assert detection.sigma == 12.0 and detection.cls == "person"  # type: ignore[union-attr]
    no_ce = parse_xml(pli(uid="marker-2", cot="a-u-G-E-V").replace(b'ce="12.0"',
                                                                    b'ce="9999999.0"'))
    batch = msgspec.msgpack.decode(detections(no_ce, 4, 30.0), type=DetectionBatch)
    assert batch.detections[0].sigma == 30.0 and batch.detections[0].cls == "vehicle"  # type: ignore[union-attr]


@pytest.mark.parametrize(("cot", "cls"), [
    ("a-h-A-M-F-Q", "uav"), ("a-h-A-C-F", "aircraft"), ("a-n-S", "vessel"),
    ("a-h-G-U-C-I", "person"), ("a-u-G-E-V-A", "vehicle"), ("a-h-G", "unknown")])
def test_classes_of_cot_types(cot: str, cls: str) -> None:
    assert class_of(cot) == cls


@pytest.mark.parametrize(("event", "code"), [
    (b"<event", "undecodable"),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><event/>', "undecodable"),
    (b"<chat/>", "schema"),
    (pli(lat="nan"), "schema"),
    (pli(lat="91"), "schema"),
    (pli(lat="x"), "schema"),
    (pli().replace(b'time="', b'time="yesterday'), "schema"),
    (pli().replace(b"<point", b"<nopoint"), "schema"),
])
def test_malformed_events_are_refused_with_their_code(event: bytes, code: str) -> None:
    with pytest.raises(PayloadError) as refused:
        parse_xml(event)
    assert refused.value.code == code


def test_what_a_unit_may_not_send() -> None:
    with pytest.raises(PayloadError) as other:
        kind_of(parse_xml(pli(uid="nld-team-9")), "ken-team-1")
    assert other.value.code == "identity"
    for cot in ("b-t-f", "b-a-o-tbl", "b-f-t-r", "t-x-c-t"):
        with pytest.raises(PayloadError) as unsupported:
            kind_of(parse_xml(pli(cot=cot)), "ken-team-1")
        assert unsupported.value.code == "unsupported"


def test_events_are_split_at_their_end_and_held_to_a_size() -> None:
    splitter = XmlEvents(max_bytes=4096)
    stream = pli() + pli(uid="b")
    assert splitter.feed(stream[:50]) == []
    assert [parse_xml(e).uid for e in splitter.feed(stream[50:])] == ["ken-team-1", "b"]
    with pytest.raises(PayloadError) as big:
        XmlEvents(max_bytes=1024).feed(b"<event>" + b"x" * 2000)
    assert big.value.code == "too_large"


def test_protobuf_frames_are_split_and_parsed() -> None:
    frames = to_frame(pli().decode()) + to_frame(pli(uid="b").decode())
    splitter = ProtoFrames(max_bytes=4096)
    payloads = splitter.feed(frames[:7]) + splitter.feed(frames[7:])
    reports = [parse_proto(p) for p in payloads]
    assert [r.uid for r in reports] == ["ken-team-1", "b"]
    assert reports[0].lat == pytest.approx(-1.30) and math.isclose(reports[0].time, T0)
    with pytest.raises(PayloadError):
        ProtoFrames(max_bytes=4096).feed(b"\x00garbage")
