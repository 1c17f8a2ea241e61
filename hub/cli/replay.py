"""Replay a recording through the live ingest and fusion code, as fast as possible.

The receive times recorded in the file stand in for the clock, so the same
file and config always give the same tracks. Pictures are taken every
``publish.interval_s`` of measurement time (every fused item when it is 0).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from hub.cli.arguments import UsageError
from hub.config import HubConfig
from hub.messages import Track
from hub.pipeline import Pipeline
from hub.publish.pictures import TrackEncoder, group_tracks, partner_picture
from hub.recording import Damage, Record, RecordingReader
from hub.release.groups import MISSION
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
    damage: Damage | None = None
    """Where the recording was damaged: the replay stopped there (None: it was whole)."""

    def describe(self) -> str:
        """One line a person can read."""
        rate = self.detections / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.messages} messages ({self.rejected} rejected), {self.detections} "
                f"detections in {self.seconds:.2f} s = {rate:,.0f} detections/s; "
                f"{self.pictures} pictures; final picture: {self.confirmed_final} confirmed "
                f"of {self.tracks_final} tracks")


def track_line(track: Track, t: float, picture: str) -> str:
    """One JSON Lines record of ``--tracks-out``."""
    return json.dumps({"t": round(t, 3), "track_id": track.id, "lat": track.lat, "lon": track.lon,
                       "vn": track.vn, "ve": track.ve, "status": track.status, "cls": track.cls,
                       "affiliation": track.affiliation, "picture": picture})


def picture_source(pipeline: Pipeline, picture: str) -> Callable[[], list[Track]]:
    """What ``picture`` holds now: every mission track, or what the partner may see."""
    view = ReleaseView(pipeline)
    encoder = TrackEncoder(pipeline.config, pipeline.frame)
    if picture == MISSION:
        return lambda: group_tracks(encoder, view.mission())
    if picture not in view.partners:
        raise UsageError(f"--picture: no partner {picture!r} in the config")
    return lambda: partner_picture(encoder, view.picture(picture)).tracks()


def replay(records: Iterable[Record], config: HubConfig, tracks_out: TextIO | None = None,
           picture: str = MISSION, progress: Callable[[int], None] | None = None
           ) -> ReplaySummary:
    """Feed ``records`` through a fresh pipeline; write the chosen picture as JSON Lines."""
    # Frames wait for their worker: nothing is dropped, so every replay is the same.
    pipeline = Pipeline(config)
    try:
        return _replay(pipeline, records, config, tracks_out, picture, progress)
    finally:
        pipeline.close()


def _replay(pipeline: Pipeline, records: Iterable[Record], config: HubConfig,
            tracks_out: TextIO | None, picture: str,
            progress: Callable[[int], None] | None) -> ReplaySummary:
    tracks_now = picture_source(pipeline, picture)
    interval = config.publish.interval_s
    next_picture = float("-inf")
    pictures = 0
    started = time.perf_counter()
    for count, (t_received, topic, payload) in enumerate(records, 1):
        if topic.startswith("sensors/"):
            pipeline.handle(topic, payload, t_received)
            if pipeline.flush(t_received) and pipeline.fusion_time >= next_picture:
                pictures += _write_picture(tracks_now, pipeline.fusion_time, picture,
                                           tracks_out)
                next_picture = pipeline.fusion_time + interval
        if progress is not None and count % 10_000 == 0:
            progress(count)
    if pipeline.finish():
        pictures += _write_picture(tracks_now, pipeline.fusion_time, picture, tracks_out)
    final = tracks_now()
    counters = pipeline.counters + pipeline.router.counters
    return ReplaySummary(
        messages=counters["received"], rejected=counters["rejected"],
        detections=counters["detections"], pictures=pictures, tracks_final=len(final),
        confirmed_final=sum(t.status != "tentative" for t in final),
        seconds=time.perf_counter() - started)


def _write_picture(tracks_now: Callable[[], list[Track]], t: float, picture: str,
                   out: TextIO | None) -> int:
    # A partner's picture is taken even when not written: its delay needs the history.
    if out is not None or picture != MISSION:
        tracks = tracks_now()
        if out is not None:
            out.writelines(track_line(track, t, picture) + "\n" for track in tracks)
    return 1


def replay_file(path: str | Path, config: HubConfig, tracks_out: str | Path | None = None,
                picture: str = MISSION, progress: Callable[[int], None] | None = None
                ) -> ReplaySummary:
    """Replay the recording at ``path`` up to any damage, writing tracks to ``tracks_out``."""
    reader = RecordingReader(path)
    if tracks_out is None:
        summary = replay(reader, config, None, picture, progress)
    else:
        with open(tracks_out, "w") as out:
            summary = replay(reader, config, out, picture, progress)
    return dataclasses.replace(summary, damage=reader.damage)
