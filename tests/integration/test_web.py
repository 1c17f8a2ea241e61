"""The console's API against ``hub run`` + ``hub sim`` + a canary on a secured Mosquitto.

One hub serves the whole module. Every endpoint is asked by every identity:
nothing of a source not released to it comes back, and the canary released
to nobody appears only to the operator. Streams, resume, limits, GeoJSON and
metrics are checked against the same running hub.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import geojson
import numpy as np
import pytest
from mqtt_peer import Peer
from prometheus_client.parser import text_string_to_metric_families
from secured import CANARY
from web_hub import CANARY_ENU, IDENTITIES, PARTNER_IDS, WebHub, web_hub

from hub import messages, topics
from hub.messages import Picture
from hub.release.policy import visible_sensors

WAIT_S = 30.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHub]:
    with web_hub(tmp_path_factory.mktemp("web"), max_clients=12, send_timeout_s=2.0,
                 client_queue=8) as running:
        yield running


@pytest.fixture
async def sessions(hub: WebHub) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """One logged-in HTTP session per identity."""
    made = {}
    try:
        for identity in IDENTITIES:
            session = client(hub)
            async with session.post("/api/v1/login", json={
                    "identity": identity, "password": hub.password(identity)}) as answer:
                assert answer.status == 200, await answer.text()
            made[identity] = session
        yield made
    finally:
        for session in made.values():
            await session.close()


def client(hub: WebHub, **options: Any) -> aiohttp.ClientSession:
    """A client that keeps cookies from an IP address (aiohttp refuses them by default)."""
    return aiohttp.ClientSession(hub.url, cookie_jar=aiohttp.CookieJar(unsafe=True), **options)


def basic(identity: str, password: str) -> str:
    """An ``Authorization: Basic`` value, as curl or QGIS send it."""
    return "Basic " + base64.b64encode(f"{identity}:{password}".encode()).decode()


async def get_json(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(path) as answer:
        assert answer.status == 200, (path, answer.status, await answer.text())
        return json.loads(await answer.text())


async def stream_messages(session: aiohttp.ClientSession, count: int, path: str = "/api/v1/stream"
                          ) -> list[dict[str, Any]]:
    """The first ``count`` messages of a WebSocket stream."""
    got: list[dict[str, Any]] = []
    async with session.ws_connect(path) as ws:
        async with asyncio.timeout(WAIT_S):
            while len(got) < count:
                msg = await ws.receive()
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                got.append(json.loads(msg.data))
    return got


async def sse_events(session: aiohttp.ClientSession, count: int) -> list[tuple[str, str]]:
    """The first ``count`` Server-Sent Events as (event, data)."""
    events: list[tuple[str, str]] = []
    async with session.get("/api/v1/events") as answer:
        assert answer.headers["Content-Type"] == "text/event-stream"
        event, data = "", ""
        async with asyncio.timeout(WAIT_S):
            async for raw in answer.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and event:
                    events.append((event, data))
                    if len(events) == count:
                        break
    return events


async def wait_for_tracks(sessions: dict[str, aiohttp.ClientSession]) -> None:
    """Until every partner sees tracks and the mission sees the canary's three."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        pictures = {i: await get_json(s, "/api/v1/picture.geojson") for i, s in sessions.items()}
        if (all(len(pictures[p]["features"]) >= 5 for p in PARTNER_IDS)
                and len(near_canary(pictures["hub-operator"]["features"])) >= 3):
            return
        await asyncio.sleep(1.0)
    raise AssertionError("the pictures did not fill")


def near_canary(features: list[dict[str, Any]], hub: WebHub | None = None) -> list[str]:
    """Ids of features within 1 km of a canary target."""
    frame = FRAME_HOLDER[0]
    found = []
    for f in features:
        lon, lat = f["geometry"]["coordinates"]
        e, n, _ = frame.to_enu(lat, lon, 0.0)
        if np.hypot(CANARY_ENU[:, 0] - e, CANARY_ENU[:, 1] - n).min() < 1000.0:
            found.append(f["id"])
    return found


FRAME_HOLDER: list[Any] = []


@pytest.fixture(autouse=True)
def _frame(hub: WebHub) -> None:
    FRAME_HOLDER[:] = [hub.config.mission.origin.frame()]


def features_in(message: dict[str, Any]) -> list[dict[str, Any]]:
    data = message.get("data") or {}
    if message.get("type") == "snapshot":
        return list(data.get("features", []))
    if message.get("type") == "delta":
        return list(data.get("upserts", []))
    return []


async def everything_seen_by(session: aiohttp.ClientSession, ids: set[str]
                             ) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    """Features from every data endpoint, every raw answer text, and history statuses."""
    features: list[dict[str, Any]] = []
    texts: list[str] = []
    picture = await get_json(session, "/api/v1/picture.geojson")
    features += picture["features"]
    trails = await get_json(session, "/api/v1/trails.geojson")
    for path in ("/api/v1/picture.geojson", "/api/v1/trails.geojson", "/api/v1/status"):
        async with session.get(path) as answer:
            texts.append(await answer.text())
    stream = await stream_messages(session, 4)
    texts += [json.dumps(m) for m in stream]
    for message in stream:
        features += features_in(message)
    for _, data in await sse_events(session, 3):
        texts.append(data)
        features += features_in(json.loads(data))
    own = {f["id"] for f in picture["features"]} | {t["id"] for t in trails["features"]}
    statuses = {}
    for track_id in sorted(ids):
        async with session.get(f"/api/v1/tracks/{track_id}/history.geojson") as answer:
            statuses[track_id] = answer.status
            texts.append(await answer.text())
            if track_id not in own and answer.status == 200:
                body = json.loads(texts[-1])
                # An id another audience also uses may be this audience's own track now.
                assert body["id"] == track_id
    return features, texts, statuses


async def test_every_endpoint_for_every_identity_holds_only_what_is_released(
        hub: WebHub, sessions: dict[str, aiohttp.ClientSession]) -> None:
    await wait_for_tracks(sessions)
    all_ids = set()
    for session in sessions.values():
        all_ids |= {f["id"] for f in (await get_json(session, "/api/v1/picture.geojson"))
                    ["features"]}
    for identity, session in sessions.items():
        features, texts, statuses = await everything_seen_by(session, all_ids)
        assert features, identity
        if identity == "hub-operator":
            assert len(set(near_canary(features))) >= 3
            assert any(CANARY in f["properties"]["sources"] for f in features)
            continue
        visible = visible_sensors(hub.config, identity)
        for f in features:
            assert set(f["properties"]["sources"]) <= visible, (identity, f["id"])
            assert identity in f["properties"]["label"]["releasable_to"], (identity, f["id"])
        assert not near_canary(features), identity
        for text in texts:
            assert CANARY not in text and '"ZZZ"' not in text, identity
        assert 200 in statuses.values() and 404 in statuses.values(), identity


async def test_the_audience_comes_from_the_credential_never_the_url(
        hub: WebHub, sessions: dict[str, aiohttp.ClientSession]) -> None:
    await wait_for_tracks(sessions)
    ken = sessions["ken"]
    for query in ("?partner=bra", "?audience=mission", "?identity=hub-operator"):
        answer = await get_json(ken, f"/api/v1/picture.geojson{query}")
        assert answer["audience"] == "ken"
        for f in answer["features"]:
            assert set(f["properties"]["sources"]) <= visible_sensors(hub.config, "ken")
    async with ken.get("/metrics") as denied:
        assert denied.status == 403
    status = await get_json(ken, "/api/v1/status")
    assert set(status["hub"]) == {"version", "uptime", "online", "broker"}
    assert status["rules"] == [f"ken sees {', '.join(sorted_visible(hub, 'ken'))}"]
    operator = await get_json(sessions["hub-operator"], "/api/v1/status")
    assert "counters" in operator["hub"] and operator["audience"] == "mission"
    async with client(hub) as anonymous:
        for path in ("/api/v1/picture.geojson", "/api/v1/stream", "/api/v1/events", "/metrics",
                     "/api/v1/status", "/api/v1/trails.geojson", "/tiles/0/0/0"):
            async with anonymous.get(path) as answer:
                assert answer.status == 401, path
        async with anonymous.get("/") as page:
            assert page.status == 200 and "text/html" in page.headers["Content-Type"]
            assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def sorted_visible(hub: WebHub, partner: str) -> list[str]:
    return [s.id for s in hub.config.sensors if s.id in visible_sensors(hub.config, partner)]


async def test_http_basic_serves_tools_with_the_same_credentials(hub: WebHub) -> None:
    auth = {"Authorization": basic("gha", hub.password("gha"))}
    async with aiohttp.ClientSession(hub.url, headers=auth) as tool:
        async with tool.get("/api/v1/picture.geojson") as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("application/geo+json")
            body = json.loads(await answer.text())
        assert body["audience"] == "gha"
        assert geojson.loads(json.dumps(body)).is_valid
    wrong = {"Authorization": basic("gha", hub.password("ken"))}
    async with (aiohttp.ClientSession(hub.url, headers=wrong) as tool,
                tool.get("/api/v1/picture.geojson") as answer):
        assert answer.status == 401 and "Basic" in answer.headers["WWW-Authenticate"]


async def test_geojson_is_rfc7946_lon_lat_with_the_picture_around_it(
        hub: WebHub, sessions: dict[str, aiohttp.ClientSession]) -> None:
    await wait_for_tracks(sessions)
    origin = hub.config.mission.origin
    for identity, session in sessions.items():
        async with session.get("/api/v1/picture.geojson") as answer:
            assert answer.headers["Content-Type"].startswith("application/geo+json")
            text = await answer.text()
        collection = geojson.loads(text)
        assert collection.is_valid, collection.errors()
        body = json.loads(text)
        assert body["type"] == "FeatureCollection" and "crs" not in body
        assert body["seq"] >= 1 and body["audience"] in (identity, "mission")
        for f in body["features"]:
            lon, lat = f["geometry"]["coordinates"]
            assert abs(lon - origin.lon) < 0.5 and abs(lat - origin.lat) < 0.5  # [lon, lat]
            assert f["properties"]["label"]["classification"]
        trails = geojson.loads(await (await session.get("/api/v1/trails.geojson")).text())
        assert trails.is_valid and all(
            len(t["geometry"]["coordinates"]) == len(t["properties"]["times"])
            for t in trails["features"])


async def test_the_stream_carries_the_mqtt_pictures_seq(
        hub: WebHub, sessions: dict[str, aiohttp.ClientSession]) -> None:
    await wait_for_tracks(sessions)
    peer = Peer(hub.secured.handle, "5", "ken", "ken", hub.password("ken"))
    try:
        peer.subscribe(topics.partner_picture("ken"))
        web = await stream_messages(sessions["ken"], 8)
        await asyncio.sleep(1.0)
        mqtt = {}
        while not peer.messages.empty():
            _, payload, _ = peer.messages.get_nowait()
            picture = messages.decode(payload, Picture, 1 << 24)
            mqtt[picture.seq] = picture
    finally:
        peer.close()
    assert web[0]["type"] == "hello" and web[0]["audience"] == "ken"
    assert web[0]["levels"] == list(hub.config.labels.classifications)
    pictures = [m for m in web if m["type"] in ("snapshot", "delta")]
    assert pictures[0]["type"] == "snapshot"
    seqs = [m["seq"] for m in pictures]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    matched = [m for m in pictures[1:] if m["seq"] in mqtt]
    assert matched, (seqs, sorted(mqtt))
    for message in matched:
        picture = mqtt[message["seq"]]
        assert message["ts"] == picture.ts
        ids = {f["id"] for f in features_in(message)}
        assert ids == {t.id for t in picture.tracks}
        assert sorted(message["data"].get("deletes", [])) == sorted(picture.removed)


async def test_a_client_that_reconnects_resumes_or_gets_a_snapshot(
        sessions: dict[str, aiohttp.ClientSession]) -> None:
    await wait_for_tracks(sessions)
    nld = sessions["nld"]
    first = await stream_messages(nld, 4)
    last = max(m["seq"] for m in first if "seq" in m)
    await asyncio.sleep(1.5)
    resumed = await stream_messages(nld, 4, f"/api/v1/stream?resume_from={last}")
    assert resumed[0]["type"] == "hello"
    # What it missed, in order (a full picture among them comes as a snapshot of its seq);
    # a fresh snapshot instead would carry the newest seq, at least last + 3 by now.
    assert [m["seq"] for m in resumed[1:]] == [last + 1, last + 2, last + 3]
    # A seq this hub never sent (a client of an earlier hub): a snapshot of now.
    other_life = await stream_messages(nld, 2, "/api/v1/stream?resume_from=1000000")
    assert other_life[1]["type"] == "snapshot" and other_life[1]["seq"] >= last + 3


async def test_sse_ids_are_seqs_and_last_event_id_resumes(
        sessions: dict[str, aiohttp.ClientSession]) -> None:
    await wait_for_tracks(sessions)
    bra = sessions["bra"]
    events = await sse_events(bra, 3)
    assert [e for e, _ in events[:2]] == ["hello", "snapshot"]
    last = json.loads(events[-1][1]).get("seq") or json.loads(events[1][1])["seq"]
    await asyncio.sleep(1.5)
    async with bra.get("/api/v1/events", headers={"Last-Event-ID": str(last)}) as answer:
        text = ""
        async with asyncio.timeout(WAIT_S):
            async for raw in answer.content:
                text += raw.decode()
                if text.count("\n\n") >= 2:
                    break
    second = text.split("\n\n")[1]  # after hello: what it missed, from last + 1 on
    assert f"id: {last + 1}\n" in second and ("event: delta" in second
                                             or "event: snapshot" in second), second[:200]


async def test_bad_or_oversized_client_messages_close_that_socket_only(
        hub: WebHub, sessions: dict[str, aiohttp.ClientSession]) -> None:
    gha = sessions["gha"]
    closes = {}
    for name, send in (("binary", lambda ws: ws.send_bytes(b"\x00\x01")),
                       ("not an object", lambda ws: ws.send_str("[1, 2]")),
                       ("not json", lambda ws: ws.send_str("{nope")),
                       ("too large", lambda ws: ws.send_str(json.dumps({"x": "y" * 8000})))):
        async with gha.ws_connect("/api/v1/stream") as ws:
            await ws.receive()  # hello
            await send(ws)
            async with asyncio.timeout(WAIT_S):
                while (await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                    pass
            closes[name] = ws.close_code
    assert closes == {"binary": 1003, "not an object": 1003, "not json": 1003,
                      "too large": 1009}
    async with gha.ws_connect("/api/v1/stream") as ws:
        await ws.send_str('{"type": "ping"}')
        kinds = set()
        async with asyncio.timeout(WAIT_S):
            while "heartbeat" not in kinds:
                kinds.add(json.loads((await ws.receive()).data)["type"])
    async with asyncio.timeout(WAIT_S):  # the hub counts once its side has closed too
        while True:
            counters = (await get_json(sessions["hub-operator"], "/api/v1/status")
                        )["hub"]["counters"]
            if (counters.get("web_disconnects.bad_message", 0) >= 3
                    and counters.get("web_disconnects.too_large", 0) >= 1):
                break
            await asyncio.sleep(0.1)


async def test_a_stream_sending_beyond_its_budget_is_ignored_and_counted(
        hub: WebHub, sessions: dict[str, aiohttp.ClientSession]) -> None:
    async def over_budget() -> int:
        counters = (await get_json(sessions["hub-operator"], "/api/v1/status"))["hub"]["counters"]
        return int(counters.get("web_over_budget", 0))

    before = await over_budget()
    async with sessions["gha"].ws_connect("/api/v1/stream") as ws:
        for _ in range(100):
            await ws.send_str('{"type": "ping"}')
        # 10 a second in bursts of 2 s (web.client_messages_per_s, ingest.budget.burst_s)
        async with asyncio.timeout(WAIT_S):
            while await over_budget() - before < 100 - 21:
                await asyncio.sleep(0.1)
        assert await over_budget() - before <= 100 - 20
        assert not ws.closed  # ignored, not closed: a busy console is no hostile one


async def test_a_cross_origin_websocket_is_refused(sessions: dict[str, aiohttp.ClientSession]
                                                  ) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await sessions["ken"].ws_connect("/api/v1/stream",
                                         headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403


async def test_a_flood_of_streams_is_capped_and_the_others_read_on(
        hub: WebHub, sessions: dict[str, aiohttp.ClientSession]) -> None:
    await wait_for_tracks(sessions)
    ken = sessions["ken"]
    await until_streams(sessions, 0)  # earlier tests' streams have all gone
    sockets = [await ken.ws_connect("/api/v1/stream") for _ in range(12)]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await ken.ws_connect("/api/v1/stream")
        assert refused.value.status == 503
        # Nobody reads these twelve; a new reader, once eleven have gone, reads on undisturbed.
    finally:
        for ws in sockets[1:]:
            await ws.close()
    await until_streams(sessions, 1)  # the hub has let the eleven go
    slow = sockets[0]
    fine = await stream_messages(ken, 6)
    seqs = [m["seq"] for m in fine if m["type"] in ("snapshot", "delta")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    await slow.close()


async def until_streams(sessions: dict[str, aiohttp.ClientSession], count: int) -> None:
    """Wait until the hub serves ``count`` streams in all (each audience counts its own)."""
    async with asyncio.timeout(WAIT_S):
        while sum([(await get_json(s, "/api/v1/status"))["clients"]
                   for s in sessions.values()]) != count:
            await asyncio.sleep(0.1)


async def test_metrics_parse_as_prometheus_text(hub: WebHub,
                                                 sessions: dict[str, aiohttp.ClientSession]
                                                 ) -> None:
    await wait_for_tracks(sessions)
    async with sessions["hub-operator"].get("/metrics") as answer:
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
        text = await answer.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["hub_received"].type == "counter"
    assert families["hub_received"].samples[0].value > 100
    codes = {s.labels["code"] for s in families["hub_rejected_by_code"].samples}
    assert {"schema", "unknown_sensor", "internal"} <= codes
    assert families["hub_fusion_step_seconds"].type == "histogram"
    latency = families["hub_sensor_to_sink_seconds"]
    assert {s.labels.get("audience") for s in latency.samples} >= set(PARTNER_IDS)
    assert families["hub_web_clients"].type == "gauge"
    assert families["hub_broker_connected"].samples[0].value == 1.0


async def test_readyz_follows_the_broker(hub: WebHub) -> None:
    async with client(hub) as anyone:
        assert (await anyone.get("/readyz")).status == 200
        assert (await anyone.get("/livez")).status == 200
        hub.secured.handle.kill()
        try:
            async with asyncio.timeout(WAIT_S):
                while (await anyone.get("/readyz")).status != 503:
                    await asyncio.sleep(0.2)
            assert (await anyone.get("/livez")).status == 200
        finally:
            hub.secured.handle.start()
        async with asyncio.timeout(WAIT_S):
            while (await anyone.get("/readyz")).status != 200:
                await asyncio.sleep(0.2)


async def test_logins_are_checked_limited_and_sessions_end(hub: WebHub) -> None:
    # Last in the module: the failed-login limit then blocks this address for a minute.
    async with client(hub) as browser:
        bad = await browser.post("/api/v1/login", json={"identity": "ken-radar-1",
                                                        "password": hub.password("ken-radar-1")})
        assert bad.status == 401, "a sensor is no console user"
        good = await browser.post("/api/v1/login", json={"identity": "ken",
                                                         "password": hub.password("ken")})
        assert good.status == 200
        cookie = good.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert (await browser.get("/api/v1/session")).status == 200
        assert (await browser.post("/api/v1/logout")).status == 200
        assert (await browser.get("/api/v1/session")).status == 401
    stolen = cookie.split(";")[0].split("=", 1)[1]
    async with client(hub, cookies={"hub_session": stolen}) as thief:
        assert (await thief.get("/api/v1/picture.geojson")).status == 401  # revoked
    async with client(hub) as guesser:
        answers = [(await guesser.post("/api/v1/login", json={
            "identity": "nld", "password": f"guess-{k}"})).status for k in range(6)]
        # Five failures a minute from one address (earlier tests failed some already).
        first_limited = answers.index(429)
        assert 1 <= first_limited <= 5 and set(answers[:first_limited]) == {401}
        assert set(answers[first_limited:]) == {429}
        limited = await guesser.post("/api/v1/login", json={"identity": "nld",
                                                            "password": hub.password("nld")})
        assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0

