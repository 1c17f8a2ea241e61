"""Release groups: one picture (one tracker) per distinct set of visible sources.

A partner may see the sources whose nations grant it a release
(hub.release.policy). Partners who may
see the same set share a picture; the mission picture sees every source. Data
from a source outside a group's set never enters that group's tracker, so a
partner's picture cannot contain, move or confirm a track because of data the
partner may not see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hub.config import HubConfig
from hub.fusion.tracks import TrackTable
from hub.release.policy import MISSION, ReleasePolicy, visible_sensors

__all__ = ["FRIENDS", "MISSION", "GroupTables", "ReleaseGroup", "group_of", "release_groups",
           "visible_sensors"]


@dataclass(frozen=True)
class ReleaseGroup:
    """A set of visible sensors and the partners whose picture it is."""

    key: str
    sensors: frozenset[str]
    mask: NDArray[np.bool_]
    partners: tuple[str, ...]

    def sees(self, sensor: int) -> bool:
        """Whether this group's tracker may use data from sensor index ``sensor``."""
        return bool(self.mask[sensor])


FRIENDS = 1
"""Index of the friend platforms' table in ``GroupTables.tables``."""


@dataclass(frozen=True)
class GroupTables:
    """A release group's tables at fusion time ``t``: fused tracks, then friend platforms."""

    t: float
    tables: tuple[TrackTable, ...]


def group_of(groups: list[ReleaseGroup], partner_id: str) -> int:
    """Index in ``groups`` of the group whose picture ``partner_id`` receives."""
    for index, group in enumerate(groups):
        if partner_id in group.partners:
            return index
    raise KeyError(partner_id)


def release_groups(config: HubConfig, policy: ReleasePolicy | None = None
                   ) -> list[ReleaseGroup]:
    """The mission group first, then one group per other distinct visible set.

    Pass the compiled ``policy`` when there is one, so grants are not worked out twice.
    """
    everything = frozenset(s.id for s in config.sensors)
    by_set: dict[frozenset[str], list[str]] = {everything: []}
    for partner in config.partners:
        seen = (policy.visible_sensors(partner.id) if policy is not None
                else visible_sensors(config, partner.id))
        by_set.setdefault(seen, []).append(partner.id)
    groups = []
    for number, (sensors, partners) in enumerate(by_set.items()):
        mask = np.array([s.id in sensors for s in config.sensors], dtype=bool)
        key = MISSION if sensors == everything else f"g{number}"
        groups.append(ReleaseGroup(key, sensors, mask, tuple(partners)))
    return groups
