"""The web's pieces without a server: GeoJSON features, streams, audiences, sessions, limits."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import geojson
import msgspec
import numpy as np
import pytest
from release_fixtures import T0, config_with

from hub.broker.files import write_auth_files
from hub.config import Web
from hub.errors import ConfigError
from hub.messages import Label, Picture, Track
from hub.publish.geojson import encode, feature, major_sigma
from hub.publish.stream import Stream
from hub.publish.web import RESUME_DEPTH, Audience, Message, WebSink
from hub.web.auth import Credentials, LoginLimiter, Sessions, basic_credentials, session_key

LABEL = Label(policy="P", classification="UNCLASSIFIED", releasable_to=["a"])


def track(track_id: str, t: float, lon: float = 36.8, lat: float = -1.3, ve: float = 3.0,
          vn: float = 4.0) -> Track:
    return Track(id=track_id, ts=t, lat=lat, lon=lon, vn=vn, ve=ve, cov=(400.0, 0.0, 100.0),
                 status="confirmed", cls="vehicle", cls_probs={"vehicle": 1.0},
                 affiliation="unknown", sidc="SUGP-----------", sources=["s1"],
                 nations=["KEN"], first_seen=t - 5.0, updates=3, last_update=t - 1.0,
                 label=LABEL)


def picture(seq: int, t: float, tracks: list[Track], full: bool = False,
            removed: list[str] | None = None) -> Picture:
    return Picture(ts=t, seq=seq, partner="a", full=full, tracks=tracks, removed=removed or [])


def test_a_feature_is_rfc7946_with_lon_lat_and_what_a_map_needs() -> None:
    f = feature(track("T1", T0, lon=36.123456789, lat=-1.987654321), stale_after_s=10.0)
    data = msgspec.json.decode(encode(f))
    assert geojson.loads(encode(f).decode()).is_valid
    assert data["geometry"] == {"type": "Point", "coordinates": [36.1234568, -1.9876543]}
    props = data["properties"]
    assert props["speed_mps"] == 5.0 and props["course_deg"] == pytest.approx(36.8698976)
    assert props["ce_m"] == 20.0 and props["stale"] == T0 - 1.0 + 10.0
    assert props["label"]["releasable_to"] == ["a"] and props["sources"] == ["s1"]


def test_major_sigma_is_the_largest_eigenvalues_root() -> None:
    for ee, en, nn in [(4.0, 0.0, 1.0), (2.0, 1.0, 2.0), (9.0, -3.0, 5.0)]:
        largest = max(abs(v) for v in np.linalg.eigvalsh([[ee, en], [en, nn]]))
        assert major_sigma(ee, en, nn) == pytest.approx(math.sqrt(largest))


async def test_a_stream_is_bounded_and_a_client_behind_gets_a_snapshot_instead() -> None:
    audience = Audience("a", 10.0, 300.0)
    stream: Stream[Message] = Stream("a", limit=3, kind="ws")
    for seq in range(1, 4):
        assert stream.offer(audience.apply(picture(seq, T0 + seq, [track("T1", T0 + seq)])))
    assert not stream.offer(audience.apply(picture(4, T0 + 4, [track("T1", T0 + 4)])))
    assert len(stream) == 0 and stream.behind  # the backlog is gone, not grown
    assert not stream.offer(audience.apply(picture(5, T0 + 5, [track("T1", T0 + 5)])))
    assert await stream.take() is None  # the writer sends a snapshot now
    assert stream.offer(audience.apply(picture(6, T0 + 6, [track("T1", T0 + 6)])))
    taken = await stream.take()
    assert taken is not None and taken.seq == 6
    stream.close()
    with pytest.raises(ConnectionResetError):
        await stream.take()


async def test_take_waits_for_a_message() -> None:
    stream: Stream[Message] = Stream("a", limit=3, kind="sse")
    waiter = asyncio.create_task(stream.take())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    stream.offer(Audience("a", 1.0, 1.0).snapshot())
    assert (await asyncio.wait_for(waiter, 1.0)).kind == "snapshot"  # type: ignore[union-attr]


def test_an_audience_resumes_from_a_held_seq_or_says_it_cannot() -> None:
    audience = Audience("a", 10.0, 300.0)
    for seq in range(1, RESUME_DEPTH + 11):
        audience.apply(picture(seq, T0 + seq, [track("T1", T0 + seq)]))
    last = RESUME_DEPTH + 10
    assert audience.resume(last) == []
    assert [m.seq for m in audience.resume(last - 3) or []] == [last - 2, last - 1, last]
    assert audience.resume(5) is None  # too old: the deltas are no longer held
    assert audience.resume(last + 1) is None  # a seq from another life of the hub


def test_trails_keep_the_last_trail_s_and_end_with_their_track() -> None:
    audience = Audience("a", 10.0, trail_s=5.0)
    for seq in range(1, 11):
        audience.apply(picture(seq, T0 + seq, [track("T1", T0 + seq, lon=36.8 + seq * 1e-4),
                                               track("T2", T0 + seq)]))
    trail = audience.trail("T1")
    assert trail is not None and trail.properties.times == [T0 + t for t in range(5, 11)]
    assert trail.geometry.coordinates[-1] == (36.801, -1.3)
    audience.apply(picture(11, T0 + 11, [], removed=["T1"]))
    assert audience.trail("T1") is None and audience.trail("T2") is not None
    assert geojson.loads(encode(audience.all_trails()).decode()).is_valid


def test_a_full_picture_replaces_the_audience_state() -> None:
    audience = Audience("a", 10.0, 300.0)
    audience.apply(picture(1, T0, [track("T1", T0), track("T2", T0)]))
    message = audience.apply(picture(2, T0 + 1, [track("T3", T0 + 1)], full=True))
    assert message.kind == "snapshot" and set(audience.features) == {"T3"}
    assert set(audience.trails) == {"T3"}


def test_the_web_sink_withdraws_and_ignores_unknown_audiences(tmp_path: Path) -> None:
    sink = WebSink(Web(passwd_file="x"), ["a", "mission"], lambda a: 0.0)
    stream = sink.connect("a", "ws")
    sink.picture("a", picture(1, T0, [track("T1", T0)]))
    sink.picture("zzz", picture(1, T0, [track("T9", T0)]))  # not an audience: dropped
    assert set(sink.audiences) == {"a", "mission"} and sink.stats.delivered == 1
    sink.withdraw("a")
    assert not sink.audiences["a"].features and stream in sink.audiences["a"].streams
    assert sink.audiences["a"].seq == 1  # the sequence goes on


@pytest.fixture
def credentials(tmp_path: Path) -> tuple[Credentials, dict[str, str]]:
    config = config_with([{"by": "KEN", "to": ["a", "b"]}])
    files = write_auth_files(config, tmp_path / "auth")
    return Credentials(config, files.auth.password_file), files.passwords


def test_only_partners_and_the_operator_log_in_with_their_own_password(
        credentials: tuple[Credentials, dict[str, str]]) -> None:
    check, passwords = credentials
    assert check.check("a", passwords["a"]) == "a"
    assert check.check("hub-operator", passwords["hub-operator"]) == "mission"
    assert check.check("a", passwords["b"]) is None
    assert check.check("s1", passwords["s1"]) is None  # a sensor is no console user
    assert check.check("hub", passwords["hub"]) is None
    assert check.check("nobody", "x") is None


def test_sessions_are_signed_expire_and_can_be_revoked(
        credentials: tuple[Credentials, dict[str, str]], tmp_path: Path) -> None:
    key_file = tmp_path / "session.key"
    sessions = Sessions(session_key(str(key_file)), 60.0, credentials[0])
    token, expires = sessions.issue("a", now=T0)
    assert sessions.principal(token, now=T0 + 30).audience == "a"  # type: ignore[union-attr]
    assert sessions.principal(token, now=expires + 1) is None
    forged = token.replace("a.", "b.", 1)
    assert sessions.principal(forged, now=T0) is None
    again = Sessions(session_key(str(key_file)), 60.0, credentials[0])  # a restarted hub
    assert again.principal(token, now=T0 + 1) is not None
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    sessions.revoke(token, now=T0 + 1)
    assert sessions.principal(token, now=T0 + 2) is None
    other = Sessions(session_key(None), 60.0, credentials[0])
    assert other.principal(token, now=T0 + 1) is None  # another key: not ours


def test_a_short_session_key_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("abcd\n")
    with pytest.raises(ConfigError, match=r"\$\.web\.session_secret_file"):
        session_key(str(short))


def test_failed_logins_are_limited_per_address_and_per_identity() -> None:
    limiter = LoginLimiter(attempts=3)
    keys = ("address:1.2.3.4", "identity:a")
    for k in range(3):
        assert limiter.retry_after(keys, now=100.0 + k) == 0.0
        limiter.failed(keys, now=100.0 + k)
    assert limiter.retry_after(keys, now=103.0) == pytest.approx(57.0)
    assert limiter.retry_after(("address:5.6.7.8", "identity:a"), now=103.0) > 0
    assert limiter.retry_after(("address:5.6.7.8", "identity:b"), now=103.0) == 0.0
    assert limiter.retry_after(keys, now=161.0) == 0.0  # a minute later


def test_basic_credentials_parse_or_refuse() -> None:
    assert basic_credentials("Basic YTpwYXNzOndvcmQ=") == ("a", "pass:word")
    assert basic_credentials("Bearer abc") is None
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials("Basic YWJj") is None  # no colon
