"""Publish partner pictures: deltas on ``cop/{p}/picture``, retained full ones on ``snapshot``.

Every picture goes through the partner's release rules (hub.release.view).
After the rules change (``reload``), a partner whose view changed has its
retained snapshot cleared at once and gets a full picture next, so nothing it
may no longer see lingers on the broker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from hub import topics
from hub.messages import Track, encode
from hub.pipeline import GroupFusion, Pipeline
from hub.publish.pictures import PartnerFeed, TrackEncoder
from hub.release.apply import Labeller
from hub.release.policy import PartnerRules
from hub.release.view import GroupTables, History, View, empty_tables, group_tables, partner_view

PublishFn = Callable[[str, bytes, int, bool], None]
"""Send ``payload`` to ``topic`` with ``qos`` and ``retain``."""

PICTURE_QOS = 1
HISTORY_STEP_S = 0.5


class PicturePublisher:
    """Turn the pipeline's release groups into per-partner picture messages."""

    def __init__(self, pipeline: Pipeline, send: PublishFn) -> None:
        self.pipeline = pipeline
        self.send = send
        self.settings = pipeline.config.publish
        self.encoder = TrackEncoder(pipeline.config, pipeline.frame)
        self.labeller = Labeller(pipeline.policy)
        self.feeds = {p.id: PartnerFeed(p.id) for p in pipeline.config.partners}
        self.histories: dict[frozenset[str], History] = {}
        """Recent tables per group, by its set of sources (stable across reloads)."""
        self.counters: Counter[str] = Counter()
        self.published = 0

    def publish(self, now: float) -> int:
        """Send every partner's next picture; ``now`` paces the full pictures."""
        sent = 0
        t = self.pipeline.fusion_time
        for fusion in self.pipeline.groups:
            if not fusion.group.partners:
                continue
            live = group_tables(fusion, t)
            self._remember(fusion, live)
            views: dict[object, View] = {}
            for partner in fusion.group.partners:
                rules = self.pipeline.policy.partners[partner]
                view = views.get(rules.grants)
                if view is None:
                    view = views[rules.grants] = self._view(fusion, live, rules)
                sent += self._send_picture(self.feeds[partner], view, now, t)
        self.published += sent
        return sent

    def partner_tracks(self, partner: str) -> list[Track]:
        """Every track ``partner`` may see now, as its next full picture would hold them."""
        fusion = self.pipeline.group_of(partner)
        live = group_tables(fusion, self.pipeline.fusion_time)
        self._remember(fusion, live)
        return self._view(fusion, live, self.pipeline.policy.partners[partner]).picture.tracks()

    def _send_picture(self, feed: PartnerFeed, view: View, now: float, t: float) -> int:
        full = now - feed.last_full >= self.settings.full_every_s
        picture = feed.picture(view.picture, t, full)
        if picture is None:
            return 0
        payload = encode(picture)
        self.send(topics.partner_picture(feed.partner), payload, PICTURE_QOS, False)
        if full:
            self.send(topics.partner_snapshot(feed.partner), payload, PICTURE_QOS, True)
        return 1

    def _view(self, fusion: GroupFusion, live: GroupTables, rules: PartnerRules) -> View:
        tables: GroupTables | None = live
        if rules.delay_s > 0.0:
            history = self.histories.get(fusion.group.sensors)
            tables = history.at(live.t - rules.delay_s) if history is not None else None
        if tables is None:
            tables = empty_tables(len(self.pipeline.config.sensors), live.t - rules.delay_s)
        view = partner_view(self.encoder, tables, rules, self.labeller)
        self.counters["release_unlabelled"] += view.unlabelled
        return view

    def _remember(self, fusion: GroupFusion, live: GroupTables) -> None:
        """Keep the group's tables for partners whose rules delay their picture."""
        policy = self.pipeline.policy
        delay = max(policy.partners[p].delay_s for p in fusion.group.partners)
        if delay <= 0.0:
            self.histories.pop(fusion.group.sensors, None)
            return
        step = max(HISTORY_STEP_S, self.settings.interval_s)
        history = self.histories.setdefault(fusion.group.sensors, History(step, delay + step))
        history.horizon_s = delay + step
        history.record(live)

    def reload(self, changed: list[str]) -> None:
        """Apply new rules: clear the retained snapshot of every partner in ``changed``."""
        self.labeller = Labeller(self.pipeline.policy)
        current = {fusion.group.sensors for fusion in self.pipeline.groups}
        self.histories = {k: v for k, v in self.histories.items() if k in current}
        for partner in changed:
            self.send(topics.partner_snapshot(partner), b"", PICTURE_QOS, True)
            self.feeds[partner] = PartnerFeed(partner, seq=self.feeds[partner].seq)
