"""Partners' pictures across the cluster: published by the fusion workers, relayed by publish ones.

Each group's owner hands its partners' pictures (and the mission's, when it
owns the ``mission`` group) to a ``NatsPictureSink`` beside the MQTT one: one
subject per audience and kind (``Names.picture_subject``), MessagePack as on
MQTT, with the feed they belong to in a header (the worker and the moment it
took the group). Full pictures are also kept, the last one per audience, in
the pictures stream, so a publish process that starts later begins complete;
a withdrawal (the audience's rules changed) is an empty full picture, which
replaces the stored one as MQTT's empty retained snapshot does.

A publish process feeds its web and TAK sinks through a ``PictureRelay``: per
audience, a full picture, then the deltas that follow it in the same feed
with the next ``seq``. A delta that does not (one was lost, or the group moved
and the new owner's feed began) is not applied: the audience waits for its
next full picture. Every picture passes ``released_only`` again before a sink
(fail closed): what comes over NATS is checked as if it were the publisher's.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.cluster.names import Names
from hub.errors import PayloadError
from hub.messages import Picture, decode, encode
from hub.metrics import RateLimitedLog
from hub.publish.sink import PartnerSink, SinkStats, released_only

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

FEED_HEADER = "Hub-Feed"
"""The feed a picture belongs to: its group's owner and when it took the group."""
OUTBOX = 1024
"""Pictures a sink holds while NATS does not take them; the oldest are dropped beyond."""
MAX_PICTURE_BYTES = 16 << 20


class NatsPictureSink:
    """One group owner's pictures on NATS, for the publish processes."""

    name = "nats"

    def __init__(self, names: Names, feed: str, serves_mission: bool) -> None:
        self.names = names
        self.feed = feed
        self.serves_mission = serves_mission
        """Only the ``mission`` group's owner builds the operators' picture."""
        self.stats = SinkStats()
        self.outbox: deque[tuple[str, bytes]] = deque()
        self._unsent = RateLimitedLog(log, level=logging.WARNING)

    def picture(self, partner: str, picture: Picture) -> None:
        """Queue the picture for ``flush`` (the publisher never waits on NATS)."""
        self._queue(self.names.picture_subject(partner, picture.full), encode(picture))

    def withdraw(self, partner: str) -> None:
        """Replace the stored full picture by an empty one: the relays withdraw the view."""
        self._queue(self.names.picture_subject(partner, True), b"")

    def _queue(self, subject: str, payload: bytes) -> None:
        self.outbox.append((subject, payload))
        if len(self.outbox) > OUTBOX:
            self.outbox.popleft()
            self.stats.dropped += 1

    async def flush(self, nc: Client) -> None:
        """Publish what is queued, in order; what NATS refuses is counted as dropped."""
        from nats.errors import Error as NatsError

        headers = {FEED_HEADER: self.feed}
        while self.outbox:
            subject, payload = self.outbox.popleft()
            try:
                await nc.publish(subject, payload, headers=headers)
            except NatsError as exc:
                self.stats.dropped += 1
                self._unsent.error("pictures: not published on %s (%s)", subject,
                                   type(exc).__name__)
            else:
                self.stats.delivered += 1

    async def close(self) -> None:
        """Nothing to release: the connection is the worker's."""


def subject_parts(names: Names, subject: str) -> tuple[str, bool] | None:
    """(audience, is full) of a picture subject; None for anything else."""
    head = f"{names.prefix}.picture."
    if not subject.startswith(head):
        return None
    audience, _, kind = subject.removeprefix(head).rpartition(".")
    if not audience or "." in audience or kind not in ("full", "delta"):
        return None
    return audience, kind == "full"


@dataclass
class _Following:
    """Where one audience's relay stands: the feed and ``seq`` of the last picture applied."""

    feed: str = ""
    seq: int | None = None
    """None: waiting for a full picture (at start, after a gap, after a withdrawal)."""


class PictureRelay:
    """Apply the pictures that come over NATS to local sinks: full, then deltas in order."""

    def __init__(self, audiences: Sequence[str], sinks: Sequence[PartnerSink]) -> None:
        self.audiences = list(audiences)
        self.sinks = list(sinks)
        self.following = {audience: _Following() for audience in audiences}
        self.counters: Counter[str] = Counter()
        self._bad = RateLimitedLog(log, level=logging.WARNING)

    def waiting(self) -> list[str]:
        """Audiences waiting for a full picture."""
        return [a for a, state in self.following.items() if state.seq is None]

    def take(self, audience: str, full: bool, feed: str, payload: bytes,
             stored: bool = False) -> bool:
        """Apply one message of ``audience``'s feed; return whether the sinks got a picture.

        ``stored``: read back from the pictures stream at start, applied only
        while the audience still waits (a live picture may have come first).
        """
        state = self.following.get(audience)
        if state is None:
            self.counters["relay_unknown"] += 1
            return False
        if stored and state.seq is not None:
            return False
        if full and not payload:
            if not stored:  # stored: nothing was shown here yet to take back
                self._withdraw(audience, state)
            return False
        picture = self._decode(audience, full, payload)
        if picture is None:
            return False
        if not full and (state.seq is None or feed != state.feed
                         or picture.seq != state.seq + 1):
            self.counters["relay_gaps" if state.seq is not None else "relay_skipped"] += 1
            state.seq = None  # a delta on top of a picture it does not follow: wait for a full
            return False
        checked, refused = released_only(audience, picture, self.following)
        self.counters["release_refused"] += refused
        if checked is None:
            return False
        state.feed, state.seq = feed, picture.seq
        for sink in self.sinks:
            sink.picture(audience, checked)
        self.counters["relay_full" if full else "relay_deltas"] += 1
        self.counters["relay_stored"] += stored
        return True

    def _decode(self, audience: str, full: bool, payload: bytes) -> Picture | None:
        try:
            picture = decode(payload, Picture, MAX_PICTURE_BYTES)
            if picture.full != full:
                raise PayloadError("schema", "a full picture on a delta's subject, or the reverse")
        except PayloadError as exc:
            self.counters["relay_bad"] += 1
            self._bad.error("relay: %s's picture refused: %s", audience, exc)
            return None
        return picture

    def _withdraw(self, audience: str, state: _Following) -> None:
        state.seq = None
        for sink in self.sinks:
            sink.withdraw(audience)
        self.counters["relay_withdrawn"] += 1
