"""What partner P may see now: the one place that answers it, for every output.

For a partner the view takes its release group's tables (so its tracker: data
from a source not released to it never entered that tracker, hub.release.groups),
as of the partner's delay (hub.release.history), through the partner's per-track
rules and labels (hub.release.apply), failing closed. Outputs (hub.publish) get
partners' pictures only from here, never from a tracker, so no output can skip
a rule. Partners of one group under the same rules share one released picture.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.config import HubConfig
from hub.fusion.tracks import TrackTable, publishable_rows
from hub.messages import CLASSES, Label
from hub.release.apply import Labeller, release
from hub.release.groups import FRIENDS, MISSION, GroupTables, ReleaseGroup, group_of
from hub.release.history import STEP_S, History
from hub.release.policy import PartnerRules, ReleasePolicy


class FusedGroup(Protocol):
    """One release group's fused state, as the view reads it (hub.pipeline.GroupFusion)."""

    @property
    def group(self) -> ReleaseGroup: ...

    def tables(self, t: float) -> GroupTables:
        """The group's fused tracks and friend platforms at fusion time ``t``."""
        ...


class FusionState(Protocol):
    """Every group's fusion and the rules it was formed under (hub.pipeline.Pipeline)."""

    @property
    def config(self) -> HubConfig: ...

    @property
    def policy(self) -> ReleasePolicy: ...

    @property
    def groups(self) -> Sequence[FusedGroup]: ...

    @property
    def fusion_time(self) -> float: ...


@dataclass(frozen=True, eq=False)
class ReleasedTable:
    """Rows a partner may see of one table, transformed by its rules, and their labels."""

    table: TrackTable
    labels: list[Label]


@dataclass(frozen=True, eq=False)
class ReleasedPicture:
    """What partners under one set of rules may see of their group at time ``t``."""

    t: float
    parts: tuple[ReleasedTable, ...]
    """Fused tracks, then friend platforms, as in GroupTables."""
    unlabelled: int
    """Rows dropped because their label could not be evaluated (fail closed)."""
    withheld: int
    """Rows a rule withholds: outside an area or of a hidden class."""


def released_picture(tables: GroupTables, rules: PartnerRules, labeller: Labeller
                     ) -> ReleasedPicture:
    """The publishable rows of ``tables`` as a partner with ``rules`` may see them."""
    parts = []
    unlabelled = withheld = 0
    for part, table in enumerate(tables.tables):
        released = release(table, publishable_rows(table), rules, labeller,
                           friends=part == FRIENDS)
        parts.append(ReleasedTable(released.table, released.labels))
        unlabelled += released.unlabelled
        withheld += released.withheld
    return ReleasedPicture(tables.t, tuple(parts), unlabelled, withheld)


def empty_tables(n_sensors: int, t: float, parts: int = 2) -> GroupTables:
    """Tables with no tracks: a delayed view before the history reaches back far enough."""
    empty = TrackTable.empty(n_sensors, len(CLASSES), t)
    return GroupTables(t, tuple(empty for _ in range(parts)))


class ReleaseView:
    """Every partner's released picture of the fusion ``state``, now."""

    def __init__(self, state: FusionState) -> None:
        self.state = state
        self.counters: Counter[str] = Counter()
        self._labeller = Labeller(state.policy)
        self._histories: dict[frozenset[str], History] = {}
        """Recent tables per group, by its set of sources (stable across reloads)."""

    @property
    def partners(self) -> list[str]:
        """Ids of every registered partner."""
        return [p.id for p in self.state.config.partners]

    def group_of(self, partner: str) -> FusedGroup:
        """The fusion of the release group whose picture ``partner`` receives."""
        groups = self.state.groups
        return groups[group_of([g.group for g in groups], partner)]

    def rules_of(self, partner: str) -> PartnerRules:
        """``partner``'s compiled rules (KeyError for an unknown partner: nothing to see)."""
        return self.state.policy.partners[partner]

    def pictures(self) -> list[tuple[tuple[str, ...], ReleasedPicture]]:
        """Every partner's picture now, once per distinct set of rules: (its partners, it)."""
        t = self.state.fusion_time
        out = []
        for fused in self.state.groups:
            if not fused.group.partners:
                continue
            live = fused.tables(t)
            self._remember(fused.group, live)
            sharing: dict[object, list[str]] = {}
            for partner in fused.group.partners:
                sharing.setdefault(self.rules_of(partner).sharing_key(), []).append(partner)
            for partners in sharing.values():
                out.append((tuple(partners),
                            self._release(fused.group, live, self.rules_of(partners[0]))))
        return out

    def picture(self, partner: str) -> ReleasedPicture:
        """What ``partner`` may see now."""
        fused = self.group_of(partner)
        live = fused.tables(self.state.fusion_time)
        self._remember(fused.group, live)
        return self._release(fused.group, live, self.rules_of(partner))

    def mission(self) -> GroupTables:
        """The mission picture's tables now: every source, no partner's rules."""
        return self._mission_group().tables(self.state.fusion_time)

    def mission_picture(self) -> ReleasedPicture:
        """The mission picture, labelled, for the mission's own operators."""
        return released_picture(self.mission(), self.state.policy.mission, self._labeller)

    def _mission_group(self) -> FusedGroup:
        for fused in self.state.groups:
            if fused.group.key == MISSION:
                return fused
        raise KeyError(MISSION)

    def reload(self) -> None:
        """Adopt the state's new rules: labels anew, histories of groups now gone forgotten."""
        self._labeller = Labeller(self.state.policy)
        current = {fused.group.sensors for fused in self.state.groups}
        self._histories = {k: v for k, v in self._histories.items() if k in current}

    def _release(self, group: ReleaseGroup, live: GroupTables, rules: PartnerRules
                 ) -> ReleasedPicture:
        tables: GroupTables | None = live
        if rules.delay_s > 0.0:
            history = self._histories.get(group.sensors)
            tables = history.at(live.t - rules.delay_s) if history is not None else None
        if tables is None:
            tables = empty_tables(len(self.state.config.sensors), live.t - rules.delay_s,
                                  len(live.tables))
        released = released_picture(tables, rules, self._labeller)
        self.counters["release_unlabelled"] += released.unlabelled
        return released

    def _remember(self, group: ReleaseGroup, live: GroupTables) -> None:
        """Keep the group's tables for partners whose rules delay their picture."""
        policy = self.state.policy
        delay = max(policy.partners[p].delay_s for p in group.partners)
        if delay <= 0.0:
            self._histories.pop(group.sensors, None)
            return
        step = max(STEP_S, self.state.config.publish.interval_s)
        history = self._histories.setdefault(group.sensors, History(step, delay + step))
        history.horizon_s = delay + step
        history.record(live)
