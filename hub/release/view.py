"""A partner's view of its release group's picture: delayed, released, labelled.

A group's tables (fused tracks, friend platforms) are taken once per publish.
Each distinct set of partner rules then gets one view of them: the tables as
of the rules' delay (from a short history), passed through the release rules
(hub.release.apply) before any Track is built, so no output path can skip them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hub.fusion.tracks import TrackTable
from hub.messages import CLASSES
from hub.pipeline import GroupFusion
from hub.publish.pictures import GroupPicture, TableRows, TrackEncoder, publishable_rows
from hub.release.apply import Labeller, release
from hub.release.policy import PartnerRules

PARTS = (("unknown", "T"), ("friend", "F"))
"""Affiliation and track id prefix of each table of a group: fused tracks, friend platforms."""


@dataclass(frozen=True)
class GroupTables:
    """A release group's tables at fusion time ``t``."""

    t: float
    tables: tuple[TrackTable, ...]


def group_tables(fusion: GroupFusion, t: float) -> GroupTables:
    """Snapshot a group's tracker and friend platforms."""
    return GroupTables(t, (fusion.tracker.snapshot(), fusion.platforms.snapshot()))


def empty_tables(n_sensors: int, t: float) -> GroupTables:
    """Tables with no tracks: a delayed view before the history reaches back far enough."""
    empty = TrackTable.empty(n_sensors, len(CLASSES), t)
    return GroupTables(t, tuple(empty for _ in PARTS))


class History:
    """A group's recent tables, one every ``step_s``, kept for ``horizon_s``."""

    def __init__(self, step_s: float, horizon_s: float) -> None:
        self.step_s = step_s
        self.horizon_s = horizon_s
        self._entries: deque[GroupTables] = deque()

    def record(self, tables: GroupTables) -> None:
        """Keep ``tables`` if a step has passed since the last kept; forget what is too old."""
        entries = self._entries
        if not entries or tables.t - entries[-1].t >= self.step_s:
            entries.append(tables)
        while len(entries) > 1 and entries[1].t <= tables.t - self.horizon_s:
            entries.popleft()

    def at(self, t: float) -> GroupTables | None:
        """The newest tables no later than ``t``; None if the history does not reach back."""
        for entry in reversed(self._entries):
            if entry.t <= t:
                return entry
        return None


@dataclass(frozen=True)
class View:
    """One partner-rules view of a group at one publish."""

    picture: GroupPicture
    unlabelled: int
    withheld: int


def partner_view(encoder: TrackEncoder, tables: GroupTables, rules: PartnerRules,
                 labeller: Labeller) -> View:
    """The picture a partner with ``rules`` may see of ``tables``."""
    parts: list[TableRows] = []
    unlabelled = withheld = 0
    for table, (affiliation, prefix) in zip(tables.tables, PARTS, strict=True):
        released = release(table, publishable_rows(table), rules, labeller)
        parts.append(TableRows(encoder, released.table, affiliation, prefix, released.labels))
        unlabelled += released.unlabelled
        withheld += released.withheld
    return View(GroupPicture(parts), unlabelled, withheld)
