"""The one interface of every output to partners, and the check in front of it.

A sink (MQTT pictures, web clients, TAK clients) receives partners' pictures
only from the PicturePublisher (hub.publish.publisher), which builds them only
from the release view (hub.release.view): full pictures and deltas carry one
``seq`` per partner, the same on every sink, and a partner whose rules changed
is withdrawn from every sink before its next (full) picture. A sink never
blocks the hub: what its consumers cannot take now it bounds, drops and counts.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

import msgspec

from hub.messages import Picture
from hub.release.policy import MISSION


@dataclass(slots=True)
class SinkStats:
    """What one sink did with the pictures it was handed."""

    delivered: int = 0
    """Pictures handed on to the sink's consumers (or its transport)."""
    dropped: int = 0
    """Pictures a consumer or the transport could not take: bounded, never queued forever."""


class PartnerSink(Protocol):
    """An output to partners: gets released pictures, never blocks, counts what it drops."""

    name: str
    """Short name for counters and logs: ``mqtt``, ``web``, ``tak``."""
    serves_mission: bool
    """Whether it also serves the mission picture (audience ``mission``, the operators)."""
    stats: SinkStats

    def picture(self, partner: str, picture: Picture) -> None:
        """Deliver ``partner``'s next picture (full or delta) without waiting on anyone."""
        ...

    def withdraw(self, partner: str) -> None:
        """``partner``'s rules changed: take back what it was shown before anything new goes."""
        ...

    async def close(self) -> None:
        """Stop delivering; release connections and tasks."""
        ...


def sink_counters(sinks: Collection[PartnerSink]) -> dict[str, int]:
    """Per sink, pictures delivered and dropped (``sink_dropped.mqtt``, ...)."""
    counters = {}
    for sink in sinks:
        counters[f"sink_delivered.{sink.name}"] = sink.stats.delivered
        counters[f"sink_dropped.{sink.name}"] = sink.stats.dropped
    return counters


def released_only(audience: str, picture: Picture, audiences: Collection[str]
                  ) -> tuple[Picture | None, int]:
    """``picture`` with only the tracks labelled releasable to ``audience``; and how many were not.

    Fail closed at the last step before any sink: an unknown audience gets
    nothing, a track without a label or whose label does not name the partner
    is dropped (the mission's operators see every labelled track). The release
    view never produces either, so the count is a tripwire, not a filter anyone
    relies on.
    """
    if audience not in audiences or picture.partner != audience:
        return None, len(picture.tracks)
    kept = [t for t in picture.tracks if t.label is not None
            and (audience == MISSION or audience in t.label.releasable_to)]
    refused = len(picture.tracks) - len(kept)
    if refused:
        picture = msgspec.structs.replace(picture, tracks=kept)
    return picture, refused
