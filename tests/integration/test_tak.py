"""TAK clients against ``hub run`` + ``hub sim`` + a canary: pytak over TLS with certificates.

One hub serves the module: TLS (8089-style, a trustme CA; the certificate's CN
names a partner, the operator or a unit) and plain TCP for labs, and a push of
nld's picture into a TAK Server the test runs. What a client receives is
compared, event by event, with the partner's pictures over MQTT: an event's
``start`` is the picture time of the track's state it carries.
"""

from __future__ import annotations

import asyncio
import base64
import configparser
import contextlib
import json
import math
import ssl
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytak
import pytest
import takproto
import trustme
from mqtt_peer import Peer
from secured import CANARY
from sockets import hang_up
from web_hub import CANARY_ENU, WebHub, web_hub

from hub import messages, topics
from hub.broker.launcher import free_port
from hub.messages import Picture
from hub.publish.cot import cot_time, cot_type
from hub.publish.geojson import major_sigma
from hub.release.policy import visible_sensors

UNIT = "ken-team-1"
UNITS = ({"id": UNIT, "nation": "KEN", "kind": "team", "release_to": ["ken", "gha"]},)
STALE_S = 15.0
WAIT_S = 30.0


@dataclass
class Pki:
    """A test CA and the PEM files of the server and of each identity."""

    ca: trustme.CA
    directory: Path

    def files(self, identity: str) -> tuple[str, str]:
        cert = self.directory / f"{identity}.pem"
        if not cert.exists():
            issued = self.ca.issue_cert(f"{identity}.test", common_name=identity)
            issued.cert_chain_pems[0].write_to_path(str(cert))
            issued.private_key_pem.write_to_path(str(self.directory / f"{identity}.key"))
        return str(cert), str(self.directory / f"{identity}.key")

    @property
    def cafile(self) -> str:
        path = self.directory / "ca.pem"
        if not path.exists():
            self.ca.cert_pem.write_to_path(str(path))
        return str(path)

    def client(self, identity: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile)
        context.load_cert_chain(*self.files(identity))
        return context


@dataclass
class TakHub:
    hub: WebHub
    pki: Pki
    tls_port: int
    tcp_port: int
    push: PushServer


class PushServer:
    """A TAK Server stand-in: a TLS listener that keeps what the hub pushes."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.received = bytearray()
        self.connections = 0
        self.port = free_port()
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def serve(self) -> asyncio.Server:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.pki.cafile)
        context.verify_mode = ssl.CERT_REQUIRED
        cert = self.pki.ca.issue_cert("127.0.0.1", common_name="tak-server")
        cert.configure_cert(context)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  ssl=context)
        return self._server

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.CancelledError):
            while data := await reader.read(65536):
                self.received += data
        self._handlers.discard(handler)

    def drop_all(self) -> None:
        """Cut every connection at once, as a TAK Server that goes away."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        """Stop listening and wait until every connection (a late one too) is gone."""
        if self._server is not None:
            self._server.close()
        self.drop_all()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@pytest.fixture(scope="module")
def tak_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TakHub]:
    directory = tmp_path_factory.mktemp("tak")
    pki = Pki(trustme.CA(), directory)
    issued = pki.ca.issue_cert("127.0.0.1", common_name="hub")
    issued.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    tls_port, tcp_port = free_port(), free_port()
    push = PushServer(pki)
    hub_cert, hub_key = pki.files("hub-pusher")
    tak = {"host": "127.0.0.1", "tls_port": tls_port, "tcp_port": tcp_port,
           "tcp_partner": "bra", "cafile": pki.cafile, "certfile": str(directory / "server.pem"),
           "keyfile": str(directory / "server.pem"), "stale_s": STALE_S, "events_per_s": 50.0,
           "servers": [{"host": "127.0.0.1", "port": push.port, "partner": "nld",
                        "cafile": pki.cafile, "certfile": hub_cert, "keyfile": hub_key}]}
    with web_hub(directory / "hub", tak=tak, units=UNITS) as hub:
        yield TakHub(hub, pki, tls_port, tcp_port, push)


def events_of(stream: bytes) -> list[ET.Element]:
    """Every event of an XML CoT stream; each must parse on its own."""
    found = []
    for chunk in stream.split(b"</event>")[:-1]:
        text = chunk + b"</event>"
        assert text.lstrip().startswith(b"<?xml"), text[:80]
        found.append(ET.fromstring(text.split(b"?>", 1)[1]))
    return found


async def read_events(tak: TakHub, identity: str, seconds: float) -> list[ET.Element]:
    """What a pytak client logged in with ``identity``'s certificate receives."""
    cert, key = tak.pki.files(identity)
    config = configparser.ConfigParser()
    config["tak"] = {"COT_URL": f"tls://127.0.0.1:{tak.tls_port}",
                     "PYTAK_TLS_CLIENT_CERT": cert, "PYTAK_TLS_CLIENT_KEY": key,
                     "PYTAK_TLS_CLIENT_CAFILE": tak.pki.cafile,
                     "PYTAK_TLS_SERVER_EXPECTED_HOSTNAME": "127.0.0.1"}
    reader, writer = await pytak.protocol_factory(config["tak"])
    received = bytearray()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                received += await reader.readuntil(b"</event>")
    await hang_up(writer)
    return events_of(bytes(received))


def api(tak: TakHub, path: str, identity: str) -> Any:
    request = urllib.request.Request(tak.hub.url + path)
    token = base64.b64encode(f"{identity}:{tak.hub.password(identity)}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def wait_tracks(tak: TakHub, identity: str, count: int = 5) -> None:
    deadline = time.monotonic() + 60
    while len(api(tak, "/api/v1/picture.geojson", identity)["features"]) < count:
        assert time.monotonic() < deadline, "the picture did not fill"
        time.sleep(1.0)


def tracks_only(events: list[ET.Element]) -> list[ET.Element]:
    return [e for e in events if e.get("type", "").startswith("a-")]


async def test_a_client_receives_its_partners_picture_as_cot(tak_hub: TakHub) -> None:
    wait_tracks(tak_hub, "gha")
    peer = Peer(tak_hub.hub.secured.handle, "5", "gha", "gha", tak_hub.hub.password("gha"))
    try:
        peer.subscribe(topics.partner_picture("gha"))
        events = await read_events(tak_hub, "gha", 4.0)
        await asyncio.sleep(0.5)
        versions = {}
        while not peer.messages.empty():
            picture = messages.decode(peer.messages.get_nowait()[1], Picture, 1 << 24)
            for track in picture.tracks:
                versions[track.id, cot_time(track.ts)] = track
    finally:
        peer.close()
    assert events[0].get("type") == "t-x-takp-v"  # the offer of TAK Protocol v1 comes first
    tracks = tracks_only(events)
    matched = 0
    for event in tracks:
        track_id = event.get("uid", "").removeprefix("hub.gha.")
        track = versions.get((track_id, event.get("start")))
        if track is None:
            continue  # a version sent before the MQTT subscription
        matched += 1
        point = event.find("point")
        assert point is not None
        assert event.get("type") == cot_type(track.sidc)
        assert event.get("how") == ("m-g" if track.affiliation == "friend" else "m-f")
        assert math.isclose(float(point.get("lat", "nan")), track.lat, abs_tol=1e-7)
        assert math.isclose(float(point.get("lon", "nan")), track.lon, abs_tol=1e-7)
        assert float(point.get("ce", "nan")) == pytest.approx(major_sigma(*track.cov), abs=0.06)
        assert event.get("stale") == cot_time(max((track.last_update or track.ts) + STALE_S,
                                                  track.ts + 1.0))
        label = event.find("detail/__cop_label")
        assert track.label is not None and label is not None
        assert label.get("classification") == track.label.classification == event.get("access")
        assert label.get("releasable_to", "").split() == track.label.releasable_to
    assert matched >= 5, (matched, len(tracks))
    for event in tracks[:20]:  # and TAK protobuf keeps the label
        xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(event).decode()
        message = takproto.parse_proto(takproto.xml2proto(xml, takproto.TAKProtoVer.STREAM))
        assert "<__cop_label" in message.cotEvent.detail.xmlDetail  # type: ignore[union-attr]
        assert message.cotEvent.access == event.get("access")  # type: ignore[union-attr]


async def test_a_client_that_asks_gets_tak_protocol_v1(tak_hub: TakHub) -> None:
    wait_tracks(tak_hub, "ken")
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", tak_hub.tls_port, ssl=tak_hub.pki.client("ken"),
        server_hostname="127.0.0.1")
    offer = await reader.readuntil(b"</event>")
    assert b't-x-takp-v' in offer and b'<TakProtocolSupport version="1"/>' in offer
    stamp = cot_time(time.time())
    writer.write(f'<?xml version="1.0"?><event version="2.0" uid="ken-device" '
                 f'type="t-x-takp-q" how="m-g" time="{stamp}" start="{stamp}" '
                 f'stale="{stamp}"><point lat="0" lon="0" hae="0" ce="0" le="0"/>'
                 '<detail><TakControl><TakRequest version="1"/></TakControl></detail>'
                 "</event>".encode())
    stream = b""
    async with asyncio.timeout(WAIT_S):
        while b"t-x-takp-r" not in stream:
            stream += await reader.read(65536)
    # XML until the answer (track events may come before it), TAK protobuf after it.
    end = stream.index(b"</event>", stream.index(b"t-x-takp-r")) + len(b"</event>")
    answer = stream[stream.rindex(b"<?xml", 0, end):end]
    assert b'<TakResponse status="true"/>' in answer
    frames = bytearray(stream[end:])
    async with asyncio.timeout(WAIT_S):
        while frames.count(0xBF) < 10:
            frames += await reader.read(65536)
    await hang_up(writer)
    message = takproto.parse_proto(frames)
    assert message is not None and message.cotEvent.uid.startswith("hub.ken.")
    assert "__cop_label" in message.cotEvent.detail.xmlDetail


async def test_every_identity_gets_only_what_is_released_to_it(tak_hub: TakHub) -> None:
    wait_tracks(tak_hub, "ken")
    frame = tak_hub.hub.config.mission.origin.frame()
    for identity in ("ken", "gha", "nld", "bra", "hub-operator"):
        events = tracks_only(await read_events(tak_hub, identity, 3.0))
        assert events, identity
        near = []
        for event in events:
            point = event.find("point")
            assert point is not None
            e, n, _ = frame.to_enu(float(point.get("lat", "nan")), float(point.get("lon", "nan")))
            if np.hypot(CANARY_ENU[:, 0] - e, CANARY_ENU[:, 1] - n).min() < 1000.0:
                near.append(event.get("uid"))
        if identity == "hub-operator":
            assert len(near) >= 3, (len(events), near)
            assert all(e.get("uid", "").startswith("hub.mission.") for e in events)
            continue
        assert not near, (identity, near)
        visible = visible_sensors(tak_hub.hub.config, identity)
        for event in events:
            assert event.get("uid", "").startswith(f"hub.{identity}."), event.attrib
            text = ET.tostring(event).decode()
            assert CANARY not in text and "ZZZ" not in text, identity
            label = event.find("detail/__cop_label")
            assert label is not None, event.attrib
            assert identity in label.get("releasable_to", "").split(), label.attrib
            remarks = event.findtext("detail/remarks") or ""
            sources = remarks.split("sources: ", 1)[1]
            if sources != "not released":
                assert set(sources.split(", ")) <= visible, (identity, sources)


def cot(uid: str, kind: str, lat: float, lon: float, ce: float = 5.0,
        when: float | None = None) -> bytes:
    stamp = cot_time(time.time() if when is None else when)
    return (f'<?xml version="1.0"?><event version="2.0" uid="{uid}" type="{kind}" how="h-e" '
            f'time="{stamp}" start="{stamp}" stale="{cot_time(time.time() + 60)}">'
            f'<point lat="{lat:.7f}" lon="{lon:.7f}" hae="1650.0" ce="{ce}" le="9999999.0"/>'
            '<detail><contact callsign="K1"/></detail></event>').encode()


@contextlib.asynccontextmanager
async def device(tak: TakHub, identity: str) -> AsyncIterator[asyncio.StreamWriter]:
    """A TAK device connected with ``identity``'s certificate, reading and discarding."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", tak.tls_port, ssl=tak.pki.client(identity), server_hostname="127.0.0.1")

    async def discard() -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    task = asyncio.create_task(discard())
    try:
        yield writer
    finally:
        await hang_up(writer)
        task.cancel()


def features_near(tak: TakHub, identity: str, lat: float, lon: float, metres: float
                  ) -> list[dict[str, Any]]:
    frame = tak.hub.config.mission.origin.frame()
    e0, n0, _ = frame.to_enu(lat, lon)
    out = []
    for f in api(tak, "/api/v1/picture.geojson", identity)["features"]:
        flon, flat = f["geometry"]["coordinates"]
        e, n, _ = frame.to_enu(flat, flon)
        if math.hypot(e - e0, n - n0) < metres:
            out.append(f)
    return out


async def test_a_units_position_becomes_a_friend_track_for_the_partners_released_to(
        tak_hub: TakHub) -> None:
    lat, lon = -1.2500, 36.7600
    async with device(tak_hub, UNIT) as writer:
        for _ in range(4):
            writer.write(cot(UNIT, "a-f-G-U-C-I", lat, lon))
            await writer.drain()
            await asyncio.sleep(0.6)
        deadline = time.monotonic() + WAIT_S
        while not features_near(tak_hub, "ken", lat, lon, 30.0):
            assert time.monotonic() < deadline, "no friend track for the unit"
            await asyncio.sleep(0.5)
    for identity in ("ken", "gha", "hub-operator"):
        found = features_near(tak_hub, identity, lat, lon, 30.0)
        assert [f["properties"]["affiliation"] for f in found] == ["friend"], identity
    for identity in ("nld", "bra"):
        assert not features_near(tak_hub, identity, lat, lon, 500.0), identity


async def test_repeated_spot_reports_confirm_a_track(tak_hub: TakHub) -> None:
    # Three markers placed in turn: a report on one is no miss for the others.
    spots = [(-1.3400, 36.7700), (-1.3400, 36.7900), (-1.3600, 36.7700)]
    async with device(tak_hub, UNIT) as writer:
        for k in range(9):
            lat, lon = spots[k % 3]
            writer.write(cot(f"marker-{k % 3}", "a-h-G-U-C-I", lat, lon, ce=8.0))
            await writer.drain()
            await asyncio.sleep(0.4)
        deadline = time.monotonic() + WAIT_S
        while not all(features_near(tak_hub, "ken", lat, lon, 50.0) for lat, lon in spots):
            assert time.monotonic() < deadline, "not every spot report became a track"
            await asyncio.sleep(0.5)
    for lat, lon in spots:
        (track,) = features_near(tak_hub, "ken", lat, lon, 50.0)
        assert track["properties"]["cls"] == "person"
        assert UNIT in track["properties"]["sources"]
        assert not features_near(tak_hub, "nld", lat, lon, 500.0)


def rejected(tak: TakHub) -> dict[str, int]:
    counters = api(tak, "/api/v1/status", "hub-operator")["hub"]["counters"]
    return {k: v for k, v in counters.items() if k.startswith("rejected.")}


async def test_a_unit_may_report_only_as_itself_and_only_what_the_hub_takes(
        tak_hub: TakHub) -> None:
    before = rejected(tak_hub)
    async with device(tak_hub, UNIT) as writer:
        writer.write(cot("bra-uav-1", "a-f-A-M-F-Q", -1.2, 36.8))  # another unit's position
        writer.write(cot("chat-1", "b-t-f", -1.2, 36.8))  # chat
        writer.write(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><event>&a;</event>')
        writer.write(cot(UNIT, "a-f-G", math.nan, 36.8))
        await writer.drain()
        deadline = time.monotonic() + WAIT_S
        while True:
            after = rejected(tak_hub)
            grew = {k: after[k] - before.get(k, 0) for k in after}
            if all(grew.get(f"rejected.{c}", 0) >= 1
                   for c in ("identity", "unsupported", "undecodable", "schema")):
                break
            assert time.monotonic() < deadline, grew
            await asyncio.sleep(0.3)


async def test_unknown_or_missing_certificates_are_refused(tak_hub: TakHub,
                                                           tmp_path: Path) -> None:
    stranger = trustme.CA().issue_cert("x.test", common_name="ken")
    context = ssl.create_default_context(cafile=tak_hub.pki.cafile)
    stranger.configure_cert(context)
    no_cert = ssl.create_default_context(cafile=tak_hub.pki.cafile)
    for name, client in (("another CA's certificate", context), ("no certificate", no_cert)):
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", tak_hub.tls_port, ssl=client, server_hostname="127.0.0.1")
            try:
                await reader.readuntil(b"</event>")  # TLS 1.3 fails here, at the first read
                pytest.fail(f"{name} got in")
            finally:
                await hang_up(writer)
    nobody = tak_hub.pki.client("nobody")  # our CA, but no partner, operator or unit
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", tak_hub.tls_port, ssl=nobody, server_hostname="127.0.0.1")
    assert await reader.read(100) == b""
    await hang_up(writer)


async def test_the_plain_port_streams_its_partner_and_binds_a_unit_by_uid(
        tak_hub: TakHub) -> None:
    wait_tracks(tak_hub, "bra")
    reader, writer = await asyncio.open_connection("127.0.0.1", tak_hub.tcp_port)
    received = b""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3.0):
            while True:
                received += await reader.readuntil(b"</event>")
    uids = {e.get("uid", "") for e in tracks_only(events_of(received))}
    assert uids and all(u.startswith("hub.bra.") for u in uids)
    before = rejected(tak_hub)
    writer.write(cot("anonymous-1", "a-h-G", -1.2, 36.8))  # no unit yet: refused
    writer.write(cot(UNIT, "a-f-G-U-C-I", -1.2510, 36.7610))  # binds the connection
    writer.write(cot("bra-uav-1", "a-f-A", -1.2, 36.8))  # then someone else's position
    await writer.drain()
    await asyncio.sleep(1.0)
    await hang_up(writer)
    after = rejected(tak_hub)
    assert after.get("rejected.identity", 0) - before.get("rejected.identity", 0) == 2


async def test_the_picture_is_pushed_to_a_partners_tak_server(tak_hub: TakHub) -> None:
    push = tak_hub.push
    await push.serve()
    try:
        deadline = time.monotonic() + WAIT_S
        while len(tracks_only(events_of(bytes(push.received)))) < 5:
            assert time.monotonic() < deadline, "nothing pushed"
            await asyncio.sleep(0.3)
        events = tracks_only(events_of(bytes(push.received)))
        assert all(e.get("uid", "").startswith("hub.nld.") for e in events)
        assert all("nld" in (e.find("detail/__cop_label").get("releasable_to") or "").split()  # type: ignore[union-attr]
                   for e in events)
        push.drop_all()  # the TAK Server goes away: the hub comes back by itself
        connections = push.connections
        while push.connections == connections:
            assert time.monotonic() < deadline + WAIT_S, "the push did not reconnect"
            await asyncio.sleep(0.3)
    finally:
        await push.close()
