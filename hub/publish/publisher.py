"""The picture publisher: each partner's full pictures and deltas, handed to every sink.

Pictures come from the release view (hub.release.view) and nowhere else. Each
partner has one feed (one ``seq``), shared by every sink, so a delta means the
same on MQTT, the web and TAK. Before any sink sees a picture it passes
``released_only`` (fail closed). When rules change, every sink withdraws the
partner's old view first, and its next picture is full.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from hub.messages import Picture
from hub.publish.pictures import GroupPicture, PartnerFeed, TrackEncoder, partner_picture
from hub.publish.sink import PartnerSink, released_only, sink_counters
from hub.release.policy import MISSION
from hub.release.view import ReleaseView


class PicturePublisher:
    """Turn the release view's pictures into per-partner pictures for every sink."""

    def __init__(self, view: ReleaseView, sinks: Sequence[PartnerSink]) -> None:
        self.view = view
        self.sinks = list(sinks)
        config = view.state.config
        self.settings = config.publish
        self.encoder = TrackEncoder(config, config.mission.origin.frame())
        self.mission = any(sink.serves_mission for sink in self.sinks)
        """Whether the mission picture is built too (some sink serves the operators)."""
        audiences = [*view.partners, *([MISSION] if self.mission else [])]
        self.feeds = {a: PartnerFeed(a) for a in audiences}
        self.counters: Counter[str] = Counter()
        self.published = 0
        self.on_delivered: Callable[[str, Picture], None] | None = None
        """Called with each picture handed to the sinks (the latency histogram)."""

    def publish(self, now: float) -> int:
        """Send every partner's next picture; ``now`` paces the full pictures."""
        sent = 0
        t = self.view.state.fusion_time
        for partners, released in self.view.pictures():
            picture = partner_picture(self.encoder, released)
            for partner in partners:
                sent += self._send(self.feeds[partner], picture, now, t)
        if self.mission:
            mission = partner_picture(self.encoder, self.view.mission_picture())
            sent += self._send(self.feeds[MISSION], mission, now, t)
        self.published += sent
        return sent

    def _send(self, feed: PartnerFeed, group: GroupPicture, now: float, t: float) -> int:
        full = now - feed.last_full >= self.settings.full_every_s
        picture = feed.picture(group, t, full)
        if picture is None:
            return 0
        self.deliver(feed.partner, picture)
        return 1

    def deliver(self, audience: str, picture: Picture) -> None:
        """Hand ``picture`` to every sink, with only what is labelled releasable to ``audience``."""
        checked, refused = released_only(audience, picture, self.feeds)
        self.counters["release_refused"] += refused
        if checked is None:
            return
        for sink in self.sinks:
            if audience != MISSION or sink.serves_mission:
                sink.picture(audience, checked)
        if self.on_delivered is not None:
            self.on_delivered(audience, checked)

    def rules_changed(self, partners: Sequence[str]) -> None:
        """Adopt the view's new rules: withdraw each partner's old view, then send it anew."""
        self.view.reload()
        for partner in partners:
            for sink in self.sinks:
                sink.withdraw(partner)
            self.feeds[partner] = PartnerFeed(partner, seq=self.feeds[partner].seq)

    def sink_counters(self) -> dict[str, int]:
        """Per sink, pictures delivered and dropped (``sink_dropped.mqtt``, ...)."""
        return sink_counters(self.sinks)

    async def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            await sink.close()
