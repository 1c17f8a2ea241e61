"""Replay a recording through the live ingest and fusion code, as fast as possible.

The receive times recorded in the file stand in for the clock, so the same
file and config always give the same tracks. Pictures are taken every
``publish.interval_s`` of measurement time (every fused item when it is 0).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgspec
import numpy as np

from hub.cli.arguments import UsageError
from hub.config import HubConfig
from hub.fusion.tracks import TENTATIVE, TrackTable, publishable_rows
from hub.geo import EnuFrame
from hub.pipeline import Pipeline
from hub.publish.pictures import CLASS_NAMES, PARTS, STATUS_NAMES
from hub.recording import Damage, Record, RecordingReader
from hub.release.groups import MISSION, group_of, release_groups
from hub.release.view import ReleaseView


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did, for the command line and the benchmarks."""

    messages: int
    rejected: int
    detections: int
    pictures: int
    tracks_final: int
    confirmed_final: int
    seconds: float
    groups: int = 1
    """Release groups fused (one unless ``--all-groups``)."""
    damage: Damage | None = None
    """Where the recording was damaged: the replay stopped there (None: it was whole)."""

    def describe(self) -> str:
        """One line a person can read."""
        rate = self.detections / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.messages} messages ({self.rejected} rejected), {self.detections} "
                f"detections in {self.seconds:.2f} s = {rate:,.0f} detections/s; "
                f"{self.pictures} pictures; final picture: {self.confirmed_final} confirmed "
                f"of {self.tracks_final} tracks; {self.groups} release "
                f"group{'s' if self.groups != 1 else ''} fused")


class TrackRow(msgspec.Struct):
    """One JSON Lines record of ``--tracks-out``."""

    t: float
    track_id: str
    lat: float
    lon: float
    vn: float
    ve: float
    status: str
    cls: str
    affiliation: str
    picture: str


Tables = tuple[TrackTable, ...]
"""A picture's tables: fused tracks, then friend platforms (hub.release.groups.GroupTables)."""


def picture_rows(frame: EnuFrame, tables: Tables, t: float, picture: str) -> list[TrackRow]:
    """The publishable rows of ``tables`` as records, built column by column.

    Both tables' positions go through one geodetic conversion: its twenty-odd
    numpy calls cost more than their arithmetic on a picture's few hundred rows.
    """
    kept = [publishable_rows(table) for table in tables]
    x = np.concatenate([table.x[keep] for table, keep in zip(tables, kept, strict=True)])
    lat, lon, _ = frame.to_geodetic(x[:, 0], x[:, 1], 0.0)
    ids: list[str] = []
    status: list[str] = []
    classes: list[str] = []
    affiliations: list[str] = []
    for table, keep, (affiliation, prefix) in zip(tables, kept, PARTS, strict=True):
        ids += [f"{prefix}{i}" for i in table.id[keep].tolist()]
        status += STATUS_NAMES[table.status[keep]].tolist()
        classes += CLASS_NAMES[table.cls_probs[keep].argmax(axis=1)].tolist()
        affiliations += [affiliation] * keep.shape[0]
    when = round(t, 3)
    columns = zip(ids, lat.tolist(), lon.tolist(), x[:, 3].tolist(), x[:, 2].tolist(), status,
                  classes, affiliations, strict=True)
    return [TrackRow(when, i, la, lo, vn, ve, s, c, a, picture)
            for i, la, lo, vn, ve, s, c, a in columns]


def picture_source(pipeline: Pipeline, picture: str) -> Callable[[], Tables]:
    """What ``picture`` holds now: every mission track, or what the partner may see.

    ``picture`` is known to the config (``picture_group`` checked it).
    """
    view = ReleaseView(pipeline)
    if picture == MISSION:
        return lambda: view.mission().tables
    return lambda: tuple(part.table for part in view.picture(picture).parts)


def picture_group(config: HubConfig, picture: str) -> str:
    """The key of the release group whose tracks ``picture`` shows (hub.release.groups)."""
    groups = release_groups(config)
    if picture == MISSION:
        return groups[0].key
    try:
        return groups[group_of(groups, picture)].key
    except KeyError:
        raise UsageError(f"--picture: no partner {picture!r} in the config") from None


def replay(records: Iterable[Record], config: HubConfig, tracks_out: BinaryIO | None = None,
           picture: str = MISSION, progress: Callable[[int], None] | None = None,
           all_groups: bool = False) -> ReplaySummary:
    """Feed ``records`` through a fresh pipeline; write the chosen picture as JSON Lines.

    ``tracks_out`` is a binary file: the rows of each picture are encoded in
    one call (msgspec), not one ``json.dumps`` per track. Only the picture's
    own release group is fused unless ``all_groups``: no group's tracks depend
    on another's (each is, bit for bit, what it would be alone), so the
    others' would only be thrown away. ``all_groups`` fuses every group, as
    the live hub does (its load, for timing; a check of every group).
    """
    # Frames wait for their worker: nothing is dropped, so every replay is the same.
    group = picture_group(config, picture)  # refuses an unknown partner, with or without all
    pipeline = Pipeline(config, groups=None if all_groups else [group])
    try:
        return _replay(pipeline, records, config, tracks_out, picture, progress)
    finally:
        pipeline.close()


def _replay(pipeline: Pipeline, records: Iterable[Record], config: HubConfig,
            tracks_out: BinaryIO | None, picture: str,
            progress: Callable[[int], None] | None) -> ReplaySummary:
    tables_now = picture_source(pipeline, picture)
    writer = PictureWriter(pipeline.frame, picture, tracks_out)
    interval = config.publish.interval_s
    next_picture = float("-inf")
    pictures = 0
    started = time.perf_counter()
    for count, (t_received, topic, payload) in enumerate(records, 1):
        if topic.startswith("sensors/"):
            pipeline.handle(topic, payload, t_received)
            if pipeline.flush(t_received) and pipeline.fusion_time >= next_picture:
                pictures += writer.write(tables_now, pipeline.fusion_time)
                next_picture = pipeline.fusion_time + interval
        if progress is not None and count % 10_000 == 0:
            progress(count)
    if pipeline.finish():
        pictures += writer.write(tables_now, pipeline.fusion_time)
    final = [table.status[publishable_rows(table)] for table in tables_now()]
    counters = pipeline.counters + pipeline.router.counters
    return ReplaySummary(
        messages=counters["received"], rejected=counters["rejected"],
        detections=counters["detections"], pictures=pictures,
        tracks_final=sum(status.shape[0] for status in final),
        confirmed_final=sum(int(np.count_nonzero(status != TENTATIVE)) for status in final),
        seconds=time.perf_counter() - started, groups=len(pipeline.groups))


class PictureWriter:
    """Writes each picture's rows to ``--tracks-out`` (or only takes it, without one)."""

    def __init__(self, frame: EnuFrame, picture: str, out: BinaryIO | None) -> None:
        self.frame, self.picture, self.out = frame, picture, out
        self._encoder = msgspec.json.Encoder()

    def write(self, tables_now: Callable[[], Tables], t: float) -> int:
        """Take the picture at ``t`` and write its rows; return 1 (pictures taken)."""
        # A partner's picture is taken even when not written: its delay needs the history.
        if self.out is not None or self.picture != MISSION:
            tables = tables_now()
            if self.out is not None:
                self.out.write(self._encoder.encode_lines(
                    picture_rows(self.frame, tables, t, self.picture)))
        return 1


def replay_file(path: str | Path, config: HubConfig, tracks_out: str | Path | None = None,
                picture: str = MISSION, progress: Callable[[int], None] | None = None,
                all_groups: bool = False) -> ReplaySummary:
    """Replay the recording at ``path`` up to any damage, writing tracks to ``tracks_out``."""
    reader = RecordingReader(path)
    if tracks_out is None:
        summary = replay(reader, config, None, picture, progress, all_groups)
    else:
        with open(tracks_out, "wb") as out:
            summary = replay(reader, config, out, picture, progress, all_groups)
    return dataclasses.replace(summary, damage=reader.damage)
