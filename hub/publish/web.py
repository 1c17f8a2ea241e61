"""The web sink: each audience's picture as the console and its API serve it, and its streams.

Per audience (a partner, or ``mission`` for the operators) the sink holds the
current picture as GeoJSON Features, the last deltas (so a client that
reconnects resumes where it was) and every track's trail of the last
``trail_s``. Each picture is encoded once per audience and offered to every
stream of that audience. A stream is a bounded queue: a client that falls
``client_queue`` messages behind loses its backlog and takes a fresh snapshot
instead, counted; it never slows the hub or another client.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from msgspec import Struct

from hub.config import Web
from hub.messages import Picture
from hub.publish.geojson import Feature, FeatureCollection, TrailFeature, collection, feature
from hub.publish.geojson import encode as encode_json
from hub.publish.geojson import trail as trail_feature
from hub.publish.sink import SinkStats
from hub.publish.stream import Stream

RESUME_DEPTH = 60
"""Messages kept per audience so a client that reconnects gets what it missed."""

TrailPoint = tuple[float, float, float]
"""Time (epoch s), lon, lat."""


class Snapshot(Struct, frozen=True, kw_only=True, tag="snapshot", tag_field="type"):
    """The whole picture: replace everything held."""

    v: int = 1
    seq: int
    ts: float
    sent_at: float
    """Wall clock when the hub handed it on: a client's latency is its receive time minus this."""
    data: FeatureCollection


class Changes(Struct, frozen=True):
    """What a delta changes: tracks new or updated, and ids gone."""

    upserts: list[Feature]
    deletes: list[str]


class Delta(Struct, frozen=True, kw_only=True, tag="delta", tag_field="type"):
    """The picture's changes since ``seq - 1``."""

    v: int = 1
    seq: int
    ts: float
    sent_at: float
    data: Changes


class Withdraw(Struct, frozen=True, kw_only=True, tag="withdraw", tag_field="type"):
    """The audience's rules changed: drop everything held; a snapshot follows."""

    v: int = 1


@dataclass(frozen=True, slots=True)
class Message:
    """One stream message, encoded once for every client of an audience."""

    kind: str
    """``snapshot``, ``delta``, ``withdraw``, ``status``, ``heartbeat`` (SSE's ``event:``)."""
    seq: int | None
    """The picture's ``seq`` (SSE's ``id:``), None for messages outside the sequence."""
    data: bytes
    """The JSON text."""


WITHDRAW = Message("withdraw", None, encode_json(Withdraw()))


class Audience:
    """What one audience sees now: features, recent messages, trails, and its streams."""

    def __init__(self, name: str, stale_s: float, trail_s: float) -> None:
        self.name = name
        self.stale_s = stale_s
        """Seconds after a track's last update at which it is shown stale (delay included)."""
        self.trail_s = trail_s
        self.seq = 0
        self.ts = 0.0
        self.features: dict[str, Feature] = {}
        self.trails: dict[str, deque[TrailPoint]] = {}
        self.recent: deque[Message] = deque(maxlen=RESUME_DEPTH)
        self.streams: set[Stream[Message]] = set()

    def apply(self, picture: Picture) -> Message:
        """Take ``picture`` (full or delta); return its stream message, encoded."""
        features = [feature(track, self.stale_s) for track in picture.tracks]
        if picture.full:
            self.features = {f.id: f for f in features}
        else:
            for track_id in picture.removed:
                self.features.pop(track_id, None)
            self.features.update((f.id, f) for f in features)
        self._extend_trails(picture.ts, features)
        self.seq, self.ts = picture.seq, picture.ts
        if picture.full:
            message = self.snapshot()
        else:
            message = Message("delta", picture.seq, encode_json(Delta(
                seq=picture.seq, ts=picture.ts, sent_at=time.time(),
                data=Changes(features, picture.removed))))
        self.recent.append(message)
        return message

    def snapshot(self) -> Message:
        """The whole picture now, as a stream message."""
        return Message("snapshot", self.seq, encode_json(Snapshot(
            seq=self.seq, ts=self.ts, sent_at=time.time(), data=self.collection())))

    def collection(self) -> FeatureCollection:
        """The whole picture now, as a FeatureCollection."""
        return collection(list(self.features.values()), self.name, self.seq, self.ts)

    def resume(self, since: int) -> list[Message] | None:
        """The messages after ``since``, if all are still held; else None (send a snapshot)."""
        if since == self.seq:
            return []
        held = [m.seq for m in self.recent if m.seq is not None]
        if since > self.seq or not held or held[0] > since + 1:
            return None
        return [m for m in self.recent if m.seq is not None and m.seq > since]

    def trail(self, track_id: str) -> TrailFeature | None:
        """One track's trail, if this audience has seen it within ``trail_s``."""
        points = self.trails.get(track_id)
        return None if not points else trail_feature(track_id, list(points))

    def all_trails(self) -> FeatureCollection:
        """Every trail held, as LineString features."""
        return FeatureCollection(features=[trail_feature(i, list(p))
                                           for i, p in self.trails.items() if p],
                                 audience=self.name, seq=self.seq, ts=self.ts)

    def withdraw(self) -> None:
        """Forget everything this audience was shown (its rules changed)."""
        self.features.clear()
        self.trails.clear()
        self.recent.clear()

    def _extend_trails(self, t: float, features: Iterable[Feature]) -> None:
        trails = self.trails
        for f in features:
            points = trails.get(f.id)
            if points is None:
                points = trails[f.id] = deque()
            lon, lat = f.geometry.coordinates
            if not points or points[-1][0] < t:
                points.append((t, lon, lat))
        horizon = t - self.trail_s
        for track_id in [i for i in trails if i not in self.features]:
            del trails[track_id]
        for points in trails.values():
            while points and points[0][0] < horizon:
                points.popleft()


class WebSink:
    """Every audience's picture for the web console, its API and its streams."""

    name = "web"
    serves_mission = True

    def __init__(self, settings: Web, audiences: Iterable[str],
                 delay_of: Callable[[str], float]) -> None:
        self.settings = settings
        self.delay_of = delay_of
        self.stats = SinkStats()
        self.counters: Counter[str] = Counter()
        self.audiences = {a: self._audience(a) for a in audiences}

    def _audience(self, name: str) -> Audience:
        stale_s = self.delay_of(name) + self.settings.stale_after_s
        return Audience(name, stale_s, self.settings.trail_s)

    def picture(self, partner: str, picture: Picture) -> None:
        """Apply the picture to the audience's state; offer its message to every stream."""
        audience = self.audiences.get(partner)
        if audience is None:  # not an audience of this sink: fail closed
            return
        message = audience.apply(picture)
        for stream in audience.streams:
            if stream.offer(message):
                self.stats.delivered += 1
            else:
                self.stats.dropped += 1

    def withdraw(self, partner: str) -> None:
        """Drop what the audience was shown; tell its streams; a snapshot follows."""
        old = self.audiences.get(partner)
        if old is None:
            return
        fresh = self._audience(partner)  # its delay may have changed with its rules
        fresh.seq, fresh.ts, fresh.streams = old.seq, old.ts, old.streams
        self.audiences[partner] = fresh
        for stream in fresh.streams:
            stream.offer(WITHDRAW)

    def connect(self, audience: str, kind: Literal["ws", "sse"]) -> Stream[Message]:
        """A new stream of ``audience``'s messages."""
        stream: Stream[Message] = Stream(audience, self.settings.client_queue, kind)
        self.audiences[audience].streams.add(stream)
        self.counters[f"web_connects.{kind}"] += 1
        return stream

    def disconnect(self, stream: Stream[Message], reason: str) -> None:
        """Forget ``stream`` (closed by either side); ``reason`` is counted."""
        stream.close()
        self.audiences[stream.audience].streams.discard(stream)
        self.counters[f"web_disconnects.{reason}"] += 1

    def clients(self) -> dict[str, int]:
        """Streams connected now, per audience."""
        return {name: len(a.streams) for name, a in self.audiences.items()}

    def backlog(self) -> int:
        """The longest queue of any stream now."""
        return max((len(s) for a in self.audiences.values() for s in a.streams), default=0)

    async def close(self) -> None:
        """Close every stream; their writers end."""
        for audience in self.audiences.values():
            for stream in list(audience.streams):
                self.disconnect(stream, "shutdown")


def snapshot_or_resume(audience: Audience, since: int | None) -> list[Message]:
    """What a (re)connecting stream gets first: the missed messages, else a snapshot."""
    if since is not None:
        missed = audience.resume(since)
        if missed is not None:
            return missed
    return [audience.snapshot()]

