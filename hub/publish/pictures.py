"""Pictures: Track messages from released tables, and per-partner deltas.

One ``GroupPicture`` per released picture (hub.release.view) and publish holds
its rows (fused tracks, then friend platforms) and turns rows into Track
structs on demand, column by column, each row at most once however many
partners share it. One ``PartnerFeed`` per partner remembers the (id,
updates, status) of the rows it was sent, so a delta is found by comparing
arrays and only the new or changed rows are ever built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress

import numpy as np
from numpy.typing import NDArray

from hub.config import HubConfig
from hub.fusion.tracks import STATUS_NAMES as TRACK_STATUS_NAMES
from hub.fusion.tracks import TrackTable, key_bits, publishable_rows, row_keys
from hub.geo import EnuFrame
from hub.messages import CLASSES, Label, Picture, Track
from hub.release.groups import GroupTables
from hub.release.view import ReleasedPicture

__all__ = ["CLASS_NAMES", "PARTS", "STATUS_NAMES", "GroupPicture", "PartnerFeed", "TableRows",
           "TrackEncoder", "group_picture", "group_tracks", "partner_picture",
           "publishable_rows", "sidc"]

DIMENSION_OF_CLASS = {"person": "G", "vehicle": "G", "uav": "A", "aircraft": "A", "vessel": "S"}
AFFILIATION_CODE = {"friend": "F", "hostile": "H", "neutral": "N", "unknown": "U"}
PARTS = (("unknown", "T"), ("friend", "F"))
"""Affiliation and track id prefix of each table of a picture: fused tracks, friend platforms."""
MIN_REPORTED_PROB = 0.01
PROB_DECIMALS = 4

CLASS_NAMES = np.array(CLASSES, dtype=object)
"""Class names by index: ``CLASS_NAMES[indices]`` names a column of classes at once."""
STATUS_NAMES = np.array(TRACK_STATUS_NAMES, dtype=object)
"""Status names by status code, likewise."""


def sidc(affiliation: str, cls: str) -> str:
    """A 15-character MIL-STD-2525C symbol code for an affiliation and class."""
    dimension = DIMENSION_OF_CLASS.get(cls, "G")
    return f"S{AFFILIATION_CODE[affiliation]}{dimension}P" + "-" * 11


class TrackEncoder:
    """Build Track structs from track tables of one release group."""

    def __init__(self, config: HubConfig, frame: EnuFrame) -> None:
        self.frame = frame
        self.sensor_ids = [s.id for s in config.sensors]
        self.sensor_nations = [s.nation for s in config.sensors]
        # (sources, nations) per packed sources row: a mission has few distinct combinations.
        self._provenance: dict[bytes, tuple[list[str], list[str]]] = {}
        self._sidc = {(a, c): sidc(a, c) for a in AFFILIATION_CODE for c in CLASSES}

    def tracks(self, table: TrackTable, affiliation: str, prefix: str,
               include_tentative: bool = False) -> list[Track]:
        """Tracks of ``table`` (confirmed and coasting unless ``include_tentative``)."""
        return self.build(table, publishable_rows(table, include_tentative), affiliation, prefix)

    def build(self, table: TrackTable, rows: NDArray[np.intp], affiliation: str,
              prefix: str, labels: Sequence[Label] | None = None) -> list[Track]:
        """Track structs for ``rows`` of ``table``, in that order, built column by column.

        ``labels`` are the rows' release labels (none in the mission picture).
        Rows with the same sources share their ``sources`` and ``nations`` lists:
        treat them as read-only.
        """
        if rows.size == 0:
            return []
        x, p = table.x[rows], table.P[rows]
        lat, lon, _ = self.frame.to_geodetic(x[:, 0], x[:, 1], 0.0)
        probs = table.cls_probs[rows]
        classes = CLASS_NAMES[probs.argmax(axis=1)].tolist()
        reported = [dict(compress(zip(CLASSES, rounded, strict=True), keep))
                    for rounded, keep in zip(np.round(probs, PROB_DECIMALS).tolist(),
                                             (probs >= MIN_REPORTED_PROB).tolist(), strict=True)]
        sidcs = [self._sidc[affiliation, c] for c in classes]
        ts = table.t
        columns = zip(
            table.id[rows].tolist(), lat.tolist(), lon.tolist(), x[:, 2].tolist(),
            x[:, 3].tolist(), p[:, 0, 0].tolist(), p[:, 0, 1].tolist(), p[:, 1, 1].tolist(),
            STATUS_NAMES[table.status[rows]].tolist(), classes, reported, sidcs,
            self._provenances(table.sources[rows]), table.first_seen[rows].tolist(),
            table.updates[rows].tolist(), table.last_update[rows].tolist(),
            [None] * rows.shape[0] if labels is None else labels, strict=True)
        return [
            Track(id=f"{prefix}{i}", ts=ts, lat=la, lon=lo, ve=ve, vn=vn, cov=(ee, en, nn),
                  status=status, cls=cls, cls_probs=cls_probs,
                  affiliation=affiliation, sidc=code, sources=sources, nations=nations,
                  first_seen=first, updates=updates, last_update=last, label=label)
            for (i, la, lo, ve, vn, ee, en, nn, status, cls, cls_probs, code,
                 (sources, nations), first, updates, last, label) in columns
        ]

    def _provenances(self, sources: NDArray[np.bool_]) -> list[tuple[list[str], list[str]]]:
        """(sensor ids, sorted nations) of each row of a (N, n_sensors) bool array."""
        keys = row_keys(sources)
        cache = self._provenance
        for key in set(keys).difference(cache):
            used = key_bits(key, sources.shape[1])
            cache[key] = ([self.sensor_ids[s] for s in used],
                          sorted({self.sensor_nations[s] for s in used}))
        return [cache[key] for key in keys]


@dataclass(frozen=True, eq=False)
class Sent:
    """Identity and version of the rows of one table a partner was last sent."""

    ids: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    updates: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    status: NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))


class TableRows:
    """The publishable rows of one table at one publish; each row built at most once."""

    def __init__(self, encoder: TrackEncoder, table: TrackTable, affiliation: str,
                 prefix: str, labels: Sequence[Label] | None = None) -> None:
        self.encoder, self.table = encoder, table
        self.affiliation, self.prefix = affiliation, prefix
        self.labels = labels
        self.rows = publishable_rows(table)
        self.now = Sent(table.id[self.rows], table.updates[self.rows], table.status[self.rows])
        self._built: list[Track | None] = [None] * self.rows.shape[0]

    def tracks(self, positions: NDArray[np.intp] | None = None) -> list[Track]:
        """Tracks at ``positions`` among the publishable rows (all of them when None)."""
        wanted = (range(self.rows.shape[0]) if positions is None else positions.tolist())
        built = self._built
        missing = [k for k in wanted if built[k] is None]
        if missing:
            rows = self.rows[missing]
            labels = None if self.labels is None else [self.labels[r] for r in rows.tolist()]
            new = self.encoder.build(self.table, rows, self.affiliation, self.prefix, labels)
            for k, track in zip(missing, new, strict=True):
                built[k] = track
        return [built[k] for k in wanted]  # type: ignore[misc]

    def changed_since(self, sent: Sent) -> NDArray[np.intp]:
        """Positions of the rows that are new or whose updates or status differ from ``sent``."""
        now = self.now
        if sent.ids.size == 0 or now.ids.size == 0:
            return np.arange(now.ids.shape[0], dtype=np.intp)
        order = np.argsort(sent.ids, kind="stable")
        at = np.minimum(np.searchsorted(sent.ids, now.ids, sorter=order), order.shape[0] - 1)
        j = order[at]
        same = ((sent.ids[j] == now.ids) & (sent.updates[j] == now.updates)
                & (sent.status[j] == now.status))
        return np.flatnonzero(~same)

    def removed_since(self, sent: Sent) -> list[str]:
        """Ids, in the order they were sent, of the rows in ``sent`` that are gone now."""
        if sent.ids.size == 0:
            return []
        gone = sent.ids[~np.isin(sent.ids, self.now.ids)]
        return [f"{self.prefix}{i}" for i in gone.tolist()]


class GroupPicture:
    """One release group's publishable tracks at one publish, shared by its partners."""

    def __init__(self, parts: Sequence[TableRows]) -> None:
        self.parts = tuple(parts)

    def tracks(self) -> list[Track]:
        """Every publishable track: fused tracks, then friend platforms."""
        return [track for part in self.parts for track in part.tracks()]


def group_picture(encoder: TrackEncoder, tables: GroupTables) -> GroupPicture:
    """The publishable rows of a group's tables, unlabelled: the mission's own picture."""
    return GroupPicture([TableRows(encoder, table, affiliation, prefix)
                         for table, (affiliation, prefix) in zip(tables.tables, PARTS,
                                                                 strict=True)])


def group_tracks(encoder: TrackEncoder, tables: GroupTables) -> list[Track]:
    """Every publishable track of a group's tables: fused tracks, then friend platforms."""
    return group_picture(encoder, tables).tracks()


def partner_picture(encoder: TrackEncoder, released: ReleasedPicture) -> GroupPicture:
    """A released picture (hub.release.view) as rows of labelled tracks."""
    return GroupPicture([TableRows(encoder, part.table, affiliation, prefix, part.labels)
                         for part, (affiliation, prefix) in zip(released.parts, PARTS,
                                                                strict=True)])


@dataclass
class PartnerFeed:
    """What one partner has been sent: deltas carry only what changed since."""

    partner: str
    seq: int = 0
    last_full: float = float("-inf")
    sent: tuple[Sent, ...] = ()

    def picture(self, group: GroupPicture, t: float, full: bool) -> Picture | None:
        """The next picture (None when a delta would be empty)."""
        sent = self.sent or tuple(Sent() for _ in group.parts)
        tracks: list[Track] = []
        removed: list[str] = []
        for part, before in zip(group.parts, sent, strict=True):
            tracks += part.tracks(None if full else part.changed_since(before))
            removed += part.removed_since(before)
        if not (full or tracks or removed):
            return None
        self.sent = tuple(part.now for part in group.parts)
        self.seq += 1
        if full:
            self.last_full = t
        return Picture(ts=t, seq=self.seq, partner=self.partner, full=full, tracks=tracks,
                       removed=removed)

