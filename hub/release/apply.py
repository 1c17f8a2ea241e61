"""Apply one partner's release rules to a table of tracks, once, before any output.

Per track, the rules of every contributing source apply together (their
intersection): the track must lie inside every contributor's area, its class
must be hidden by none of them, its position is rounded to the coarsest
contributor's grid, and one contributor asking for it strips the attribution.
A friend platform's track carries the id the partner knows its unit by
(``PartnerRules.friend_ids``): where its attribution is stripped, an id of
this partner's alone, so the id does not give back what stripping took.

Fail closed: a track with no recorded contributor, or with a contributor the
partner may not see, cannot be labelled; it is dropped and counted, never
published. (By construction a partner's tracker never holds such a track, so
the count is a tripwire: anything but zero is a bug.)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from hub.fusion.tracks import Covariances, TrackTable, key_bits, row_keys
from hub.messages import Label
from hub.release.policy import PartnerRules, ReleasePolicy

Floats = NDArray[np.float64]


class Released(NamedTuple):
    """What a partner may see of a table: rows transformed, their labels, and counts."""

    table: TrackTable
    labels: list[Label]
    unlabelled: int
    """Rows dropped because their label could not be evaluated (fail closed)."""
    withheld: int
    """Rows a rule withholds: outside an area or of a hidden class."""


class Labeller:
    """Labels for sets of contributing sources, cached per distinct set."""

    def __init__(self, policy: ReleasePolicy) -> None:
        self.policy = policy
        self._cache: dict[bytes, Label] = {}

    def labels(self, contributors: NDArray[np.bool_]) -> list[Label]:
        """The label of each row of a (N, n_sensors) bool array of contributors."""
        keys = row_keys(contributors)
        for key in set(keys).difference(self._cache):
            self._cache[key] = self._label(key_bits(key, contributors.shape[1]))
        return [self._cache[key] for key in keys]

    def _label(self, used: list[int]) -> Label:
        policy = self.policy
        audience = np.flatnonzero(policy.audience[used].all(axis=0)).tolist()
        caveats: set[str] = set()
        for sensor in used:
            caveats.update(policy.caveats[sensor])
        return Label(policy=policy.policy_name,
                     classification=policy.levels[int(policy.rank[used].max())],
                     releasable_to=[policy.partner_ids[p] for p in audience],
                     caveats=sorted(caveats))


def release(table: TrackTable, rows: NDArray[np.intp], rules: PartnerRules,
            labeller: Labeller, friends: bool = False) -> Released:
    """The rows ``rows`` of ``table`` as partner ``rules.partner`` may see them.

    ``friends``: the table holds friend platforms (hub.fusion.platforms), whose
    ids are replaced by the partner's ids for their units.
    """
    contributors = table.sources[rows]
    labelled = contributors.any(axis=1) & ~(contributors & ~rules.visible).any(axis=1)
    hides = (contributors.astype(np.int32) @ rules.hidden.astype(np.int32)) > 0
    shown = ~hides[np.arange(rows.shape[0]), table.cls_probs[rows].argmax(axis=1)]
    inside = np.ones(rows.shape[0], dtype=bool)
    x = table.x[rows]
    for area in rules.areas:
        bound = (contributors & area.sensors).any(axis=1)
        inside &= ~bound | area.contains(x[:, 0], x[:, 1])
    keep = labelled & shown & inside
    kept = contributors[keep]
    labels = labeller.labels(kept)
    out = table.take(rows[keep])
    out = coarsened(out, (kept * rules.precision).max(axis=1, initial=0.0))
    out = without_classes(out, hides[keep])
    if friends:
        out = renamed(out, rules.friend_ids[kept.argmax(axis=1)])
    out = stripped(out, (kept & rules.strip).any(axis=1))
    return Released(out, labels, unlabelled=int((~labelled).sum()),
                    withheld=int((labelled & ~keep).sum()))


def coarsened(table: TrackTable, grid: Floats) -> TrackTable:
    """Positions rounded to a grid of ``grid`` metres per row (0: exact), covariance widened.

    Rounding adds an error uniform over one grid cell, variance grid²/12 per
    axis, so the reported covariance stays honest about the coarser position.
    """
    on = grid > 0.0
    if not on.any():
        return table
    x, p = table.x.copy(), table.P.copy()
    step = grid[on][:, None]
    x[on, :2] = np.round(x[on, :2] / step) * step
    p[on, 0, 0] += grid[on] ** 2 / 12.0
    p[on, 1, 1] += grid[on] ** 2 / 12.0
    return dataclasses.replace(table, x=x, cov=Covariances(p))


def without_classes(table: TrackTable, hidden: NDArray[np.bool_]) -> TrackTable:
    """Class probabilities with each row's ``hidden`` classes removed and the rest rescaled."""
    if not hidden.any():
        return table
    probs = np.where(hidden, 0.0, table.cls_probs)
    total = probs.sum(axis=1, keepdims=True)
    return dataclasses.replace(table, cls_probs=probs / np.where(total > 0.0, total, 1.0))


def renamed(table: TrackTable, ids: NDArray[np.int64]) -> TrackTable:
    """The table with row ``i`` called ``ids[i]`` (a friend platform: its unit's only source)."""
    return dataclasses.replace(table, id=ids)


def stripped(table: TrackTable, strip: NDArray[np.bool_]) -> TrackTable:
    """The table with no contributing sources (hence no sensor ids or nations) on ``strip`` rows."""
    if not strip.any():
        return table
    sources = table.sources.copy()
    sources[strip] = False
    return dataclasses.replace(table, sources=sources)
