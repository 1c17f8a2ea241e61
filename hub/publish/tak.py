"""The TAK sink: each audience's picture as Cursor-on-Target events for its TAK clients.

Per audience the sink keeps the latest event of every track it shows, so a
client that connects (or fell behind) gets the whole picture at once. Each
picture becomes one batch per audience: the events of the tracks it carries
and a deletion (``t-x-d-d``, force-delete) for every track that left; a full
picture also deletes what the audience held and no longer has. The batch is
encoded once, as XML and, when some client switched to TAK Protocol v1, as
protobuf frames, and offered to every client's bounded stream. When the
audience's rules change, every track it was shown is deleted on its devices
before anything new is sent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from hub.messages import Picture
from hub.publish.cot import delete_event, to_frame, track_event
from hub.publish.sink import SinkStats
from hub.publish.stream import Stream


class TakBatch:
    """The events of one picture for an audience, encoded on first use per framing."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self._xml: bytes | None = None
        self._proto: bytes | None = None

    def xml(self) -> bytes:
        """The events one after the other, as a TAK XML stream carries them."""
        if self._xml is None:
            self._xml = "".join(self.events).encode()
        return self._xml

    def proto(self) -> bytes:
        """The events as TAK Protocol v1 stream frames."""
        if self._proto is None:
            self._proto = b"".join(to_frame(event) for event in self.events)
        return self._proto

    def __len__(self) -> int:
        return len(self.events)


class TakAudience:
    """The events an audience's TAK clients hold now, and its clients."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: dict[str, str] = {}
        """Track id → its latest event."""
        self.streams: set[Stream[TakBatch]] = set()

    def apply(self, picture: Picture, stale_s: float) -> TakBatch:
        """Take a picture; the batch that brings a client holding the last one up to it."""
        now = time.time()
        fresh = {t.id: track_event(t, self.name, stale_s, now) for t in picture.tracks}
        gone = list(dict.fromkeys(picture.removed))
        if picture.full:
            gone += [i for i in self.events if i not in fresh and i not in gone]
            self.events = dict(fresh)
        else:
            for track_id in gone:
                self.events.pop(track_id, None)
            self.events.update(fresh)
        return TakBatch([*fresh.values(), *(delete_event(self.name, i, now) for i in gone)])

    def whole(self) -> TakBatch:
        """Every track held now: what a new or resynchronised client needs."""
        return TakBatch(list(self.events.values()))


class TakSink:
    """Every audience's picture for TAK clients, and their streams."""

    name = "tak"
    serves_mission = True

    def __init__(self, audiences: Iterable[str], stale_s: float, client_queue: int) -> None:
        self.stale_s = stale_s
        self.client_queue = client_queue
        self.stats = SinkStats()
        self.counters: Counter[str] = Counter()
        self.audiences = {name: TakAudience(name) for name in audiences}

    def picture(self, partner: str, picture: Picture) -> None:
        """Apply the picture; offer its batch to every client of the audience."""
        audience = self.audiences.get(partner)
        if audience is None:  # not an audience of this sink: fail closed
            return
        self._offer(audience, audience.apply(picture, self.stale_s))

    def withdraw(self, partner: str) -> None:
        """Delete every track the audience was shown from its devices; start it afresh."""
        audience = self.audiences.get(partner)
        if audience is None:
            return
        now = time.time()
        batch = TakBatch([delete_event(partner, i, now) for i in audience.events])
        audience.events = {}
        self._offer(audience, batch)

    def _offer(self, audience: TakAudience, batch: TakBatch) -> None:
        if not batch:
            return
        for stream in audience.streams:
            if stream.offer(batch):
                self.stats.delivered += 1
            else:
                self.stats.dropped += 1

    def connect(self, audience: str, kind: str) -> tuple[Stream[TakBatch], TakBatch]:
        """A new client of ``audience``, and the whole picture to send it first."""
        state = self.audiences[audience]
        stream: Stream[TakBatch] = Stream(audience, self.client_queue, kind)
        state.streams.add(stream)
        self.counters[f"tak_connects.{kind}"] += 1
        return stream, state.whole()

    def disconnect(self, stream: Stream[TakBatch], reason: str) -> None:
        """Forget ``stream``; ``reason`` is counted."""
        stream.close()
        self.audiences[stream.audience].streams.discard(stream)
        self.counters[f"tak_disconnects.{reason}"] += 1

    def whole(self, audience: str) -> TakBatch:
        """The whole picture of ``audience`` (a client that fell behind starts again)."""
        return self.audiences[audience].whole()

    def clients(self) -> dict[str, int]:
        """Clients connected now, per audience."""
        return {name: len(a.streams) for name, a in self.audiences.items()}

    def backlog(self) -> int:
        """The longest queue of any client now."""
        return max((len(s) for a in self.audiences.values() for s in a.streams), default=0)

    async def close(self) -> None:
        """Close every client stream; their writers end."""
        for audience in self.audiences.values():
            for stream in list(audience.streams):
                self.disconnect(stream, "shutdown")
