"""Publish partner pictures: deltas on ``cop/{p}/picture``, retained full ones on ``snapshot``."""

from __future__ import annotations

from collections.abc import Callable

from hub import topics
from hub.messages import encode
from hub.pipeline import Pipeline
from hub.publish.pictures import PartnerFeed, TrackEncoder, group_picture

PublishFn = Callable[[str, bytes, int, bool], None]
"""Send ``payload`` to ``topic`` with ``qos`` and ``retain``."""

PICTURE_QOS = 1


class PicturePublisher:
    """Turn the pipeline's release groups into per-partner picture messages."""

    def __init__(self, pipeline: Pipeline, send: PublishFn) -> None:
        self.pipeline = pipeline
        self.send = send
        self.settings = pipeline.config.publish
        self.encoder = TrackEncoder(pipeline.config, pipeline.frame)
        self.feeds = {p.id: PartnerFeed(p.id) for p in pipeline.config.partners}
        self.published = 0

    def publish(self, now: float) -> int:
        """Send every partner's next picture; ``now`` paces the full pictures."""
        sent = 0
        for fusion in self.pipeline.groups:
            if not fusion.group.partners:
                continue
            group = group_picture(self.encoder, fusion)
            for partner in fusion.group.partners:
                feed = self.feeds[partner]
                full = now - feed.last_full >= self.settings.full_every_s
                picture = feed.picture(group, self.pipeline.fusion_time, full)
                if picture is None:
                    continue
                payload = encode(picture)
                self.send(topics.partner_picture(partner), payload, PICTURE_QOS, False)
                if full:
                    self.send(topics.partner_snapshot(partner), payload, PICTURE_QOS, True)
                sent += 1
        self.published += sent
        return sent
