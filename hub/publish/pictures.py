"""Partner pictures: Track messages from a release group's state, and deltas.

One ``GroupTracks`` per release group turns its tracker and friend platforms
into Track structs (once per publish, whatever the number of partners in the
group); one ``PartnerFeed`` per partner remembers what that partner was sent,
so a delta carries only new or changed tracks and the ids that went away.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hub.config import HubConfig
from hub.fusion.tracks import STATUS_NAMES, TrackTable
from hub.geo import EnuFrame
from hub.messages import CLASSES, Picture, Track
from hub.pipeline import GroupFusion

DIMENSION_OF_CLASS = {"person": "G", "vehicle": "G", "uav": "A", "aircraft": "A", "vessel": "S"}
AFFILIATION_CODE = {"friend": "F", "hostile": "H", "neutral": "N", "unknown": "U"}
MIN_REPORTED_PROB = 0.01


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

    def tracks(self, table: TrackTable, affiliation: str, prefix: str,
               include_tentative: bool = False) -> list[Track]:
        """Tracks of ``table`` (confirmed and coasting unless ``include_tentative``)."""
        keep = np.ones(len(table.id), bool) if include_tentative else table.status > 0
        index = np.flatnonzero(keep)
        if index.size == 0:
            return []
        x, cov = table.x[index], table.P[index]
        lat, lon, _ = self.frame.to_geodetic(x[:, 0], x[:, 1], 0.0)
        best = table.cls_probs[index].argmax(axis=1)
        return [
            self._track(table, int(i), f"{prefix}{table.id[i]}", float(la), float(lo), x[k],
                        cov[k], CLASSES[int(best[k])], affiliation)
            for k, (i, la, lo) in enumerate(zip(index, lat, lon, strict=True))
        ]

    def _track(self, table: TrackTable, i: int, track_id: str, lat: float, lon: float,
               x: np.ndarray, cov: np.ndarray, cls: str, affiliation: str) -> Track:
        sources = np.flatnonzero(table.sources[i])
        probs = table.cls_probs[i]
        return Track(
            id=track_id, ts=table.t, lat=lat, lon=lon,
            ve=float(x[2]), vn=float(x[3]),
            cov=(float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])),
            status=STATUS_NAMES[int(table.status[i])], cls=cls,
            cls_probs={CLASSES[c]: round(float(p), 4) for c, p in enumerate(probs)
                       if p >= MIN_REPORTED_PROB},
            affiliation=affiliation, sidc=sidc(affiliation, cls),
            sources=[self.sensor_ids[s] for s in sources],
            nations=sorted({self.sensor_nations[s] for s in sources}),
            first_seen=float(table.first_seen[i]), updates=int(table.updates[i]),
        )


@dataclass
class PartnerFeed:
    """What one partner has been sent: deltas carry only what changed since."""

    partner: str
    seq: int = 0
    last_full: float = float("-inf")
    sent: dict[str, tuple[int, str]] = field(default_factory=dict)

    def picture(self, tracks: list[Track], t: float, full: bool) -> Picture | None:
        """The next picture (None when a delta would be empty)."""
        current = {track.id: (track.updates, track.status) for track in tracks}
        removed = [track_id for track_id in self.sent if track_id not in current]
        changed = tracks if full else [t for t in tracks if self.sent.get(t.id) != current[t.id]]
        if not (full or changed or removed):
            return None
        self.sent = current
        self.seq += 1
        if full:
            self.last_full = t
        return Picture(ts=t, seq=self.seq, partner=self.partner, full=full, tracks=changed,
                       removed=removed)


def group_tracks(encoder: TrackEncoder, fusion: GroupFusion) -> list[Track]:
    """Every publishable track of a release group: fused tracks, then friend platforms."""
    return (encoder.tracks(fusion.tracker.snapshot(), "unknown", "T")
            + encoder.tracks(fusion.platforms.snapshot(), "friend", "F"))
