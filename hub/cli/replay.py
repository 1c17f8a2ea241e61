"""Replay a recording through the live ingest and fusion code, as fast as possible.

The receive times recorded in the file stand in for the clock, so the same
file and config always give the same tracks. Pictures are taken every
``publish.interval_s`` of measurement time (every fused item when it is 0).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from hub.cli.arguments import UsageError
from hub.cli.replay_ingest import ChildIngest, Ingest, InlineIngest
from hub.cli.tracks_out import ChildWriter, PictureSink, PictureWriter, Tables, picture_columns
from hub.config import HubConfig
from hub.fusion.tracks import TENTATIVE, publishable_rows
from hub.pipeline import Pipeline
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
    sink = None if tracks_out is None else PictureWriter(
        config.mission.origin.frame(), picture, tracks_out, "--tracks-out")
    return fuse(InlineIngest(records, config, progress), config, sink, picture, all_groups)


def fuse(ingest: Ingest, config: HubConfig, sink: PictureSink | None = None,
         picture: str = MISSION, all_groups: bool = False) -> ReplaySummary:
    """Fuse the steps of ``ingest`` in a fresh pipeline, its pictures to ``sink`` (closed here)."""
    # Frames wait for their worker: nothing is dropped, so every replay is the same.
    pipeline = Pipeline(config, groups=None if all_groups else [picture_group(config, picture)])
    try:
        summary = _replay(pipeline, ingest, config, sink, picture)
        if sink is not None:
            sink.close()
        return summary
    finally:
        pipeline.close()


def _replay(pipeline: Pipeline, ingest: Ingest, config: HubConfig, sink: PictureSink | None,
            picture: str) -> ReplaySummary:
    tables_now = picture_source(pipeline, picture)

    def take_picture() -> int:
        # A partner's picture is taken even when not written: its delay needs the history.
        if sink is not None or picture != MISSION:
            tables = tables_now()
            if sink is not None:
                sink.write(picture_columns(tables, pipeline.fusion_time))
        return 1

    interval = config.publish.interval_s
    next_picture = float("-inf")
    pictures = 0
    started = time.perf_counter()
    for step in ingest.steps():
        if step.item is not None:
            pipeline.queue(step.item, step.t)
        elif pipeline.fuse_ready(step.t) and pipeline.fusion_time >= next_picture:
            pictures += take_picture()
            next_picture = pipeline.fusion_time + interval
    if pipeline.finish():
        pictures += take_picture()
    final = [table.status[publishable_rows(table)] for table in tables_now()]
    assert ingest.result is not None, "an ingest's result follows its last step"
    counters = ingest.result.counters
    return ReplaySummary(
        messages=counters["received"], rejected=counters["rejected"],
        detections=counters["detections"], pictures=pictures,
        tracks_final=sum(status.shape[0] for status in final),
        confirmed_final=sum(int(np.count_nonzero(status != TENTATIVE)) for status in final),
        seconds=time.perf_counter() - started, groups=len(pipeline.groups),
        damage=ingest.result.damage)


BESIDE_FROM_BYTES = 2 << 20
"""Recordings smaller than this replay in one process: in well under 0.2 s, where starting
and ending the two children (about 40 ms) would cost more than they save."""


def children_pay_off(path: str | Path) -> bool:
    """Whether a replay of ``path`` should run its ingest and writer beside the fusion.

    Not with one core (a child only adds its pickling), nor for a small file.
    """
    return len(os.sched_getaffinity(0)) > 1 and os.path.getsize(path) >= BESIDE_FROM_BYTES


def replay_file(path: str | Path, config: HubConfig, tracks_out: str | Path | None = None,
                picture: str = MISSION, progress: Callable[[int], None] | None = None,
                all_groups: bool = False) -> ReplaySummary:
    """Replay the recording at ``path`` up to any damage, writing tracks to ``tracks_out``.

    With a second core free and a recording worth it (``children_pay_off``),
    the ingest and the writing of the tracks run in child processes beside
    the fusion (hub.cli.replay_ingest, hub.cli.tracks_out): the same tracks,
    in about the fusion's time alone.
    """
    picture_group(config, picture)  # an unknown partner is refused before anything starts
    beside = children_pay_off(path)
    ingest = ChildIngest(path, config, progress) if beside else InlineIngest(
        RecordingReader(path), config, progress)
    if tracks_out is None:
        return fuse(ingest, config, None, picture, all_groups)
    frame = config.mission.origin.frame()
    with open(tracks_out, "wb") as out:
        sink: PictureSink = (ChildWriter(frame, picture, out, str(tracks_out)) if beside
                             else PictureWriter(frame, picture, out, str(tracks_out)))
        try:
            return fuse(ingest, config, sink, picture, all_groups)
        except BaseException:
            if isinstance(sink, ChildWriter):
                sink.abandon()
            raise
