"""Checkpoints: the pipeline's state (and each partner's picture ``seq``) in one file.

An ``.npz`` archive, read with ``allow_pickle=False``: each group's tracker
and friend table as arrays, the reorder window's queued items as one
MessagePack blob, and the rest (marks, duplicate checks, sequence numbers,
counters, so the totals on ``hub/status`` run on across restarts) as JSON in
``meta``. It is written to a temporary file, fsynced and renamed, so a crash
mid-write leaves the previous checkpoint whole.

A checkpoint fits only the registry and release groups it was taken with
(tracker arrays are indexed by sensor): ``fingerprint`` says which, and a
checkpoint of another is not restored.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgpack
import numpy as np
from numpy.typing import NDArray

from hub.ingest.reorder import Marks
from hub.pipeline import Pipeline
from hub.publish.publisher import PicturePublisher
from hub.recovery.codec import decode_item, encode_item

FORMAT = 4
"""2: a tracker keeps each track at the time of its last update, not all at its time.
3: three IMM models per track (stationary added) and a count of radar misses.
4: four IMM models per track (the quiet model twice: born slow and born fast)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A pipeline's state as saved: named arrays and JSON-ready meta."""

    arrays: dict[str, NDArray[Any]]
    meta: dict[str, Any]


def fingerprint(pipeline: Pipeline) -> str:
    """What a checkpoint must match: the sensors in order and each group's sources."""
    shape = [[s.id for s in pipeline.config.sensors],
             [sorted(fusion.group.sensors) for fusion in pipeline.groups]]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def capture(pipeline: Pipeline, publisher: PicturePublisher, segment: int) -> Checkpoint:
    """The state of ``pipeline`` now; the journal from ``segment`` on follows it."""
    arrays: dict[str, NDArray[Any]] = {}
    for i, fusion in enumerate(pipeline.groups):
        arrays.update({f"g{i}.tracker.{k}": v for k, v in fusion.tracker.state().items()})
        arrays.update({f"g{i}.platforms.{k}": v for k, v in fusion.platforms.state().items()})
    queued, marks = pipeline.reorder.state()
    blob = msgpack.packb([[t, encode_item(item)] for t, item in queued], use_bin_type=True)
    arrays["reorder"] = np.frombuffer(blob, dtype=np.uint8)
    meta = {"format": FORMAT, "fingerprint": fingerprint(pipeline), "segment": segment,
            "fusion_time": pipeline.fusion_time, "marks": list(marks),
            "router": pipeline.router.state(),
            "counters": {"pipeline": dict(pipeline.counters),
                         "router": dict(pipeline.router.counters)},
            "next_ids": [fusion.tracker.next_id for fusion in pipeline.groups],
            "seq": {partner: feed.seq for partner, feed in publisher.feeds.items()}}
    return Checkpoint(arrays, meta)


def restore(checkpoint: Checkpoint, pipeline: Pipeline, publisher: PicturePublisher) -> None:
    """Put ``checkpoint`` back into ``pipeline`` and the publisher's sequence numbers."""
    arrays, meta = checkpoint.arrays, checkpoint.meta
    for i, fusion in enumerate(pipeline.groups):
        fusion.tracker.restore(_prefixed(arrays, f"g{i}.tracker."))
        fusion.platforms.restore(_prefixed(arrays, f"g{i}.platforms."))
    queued = msgpack.unpackb(arrays["reorder"].tobytes(), raw=False)
    pipeline.reorder.restore([(float(t), decode_item(item)) for t, item in queued],
                             Marks(*meta["marks"]))
    pipeline.router.restore(meta["router"])
    pipeline.fusion_time = float(meta["fusion_time"])
    pipeline.counters.update(meta["counters"]["pipeline"])
    pipeline.router.counters.update(meta["counters"]["router"])
    for partner, seq in meta["seq"].items():
        if partner in publisher.feeds:
            publisher.feeds[partner].seq = int(seq)


def _prefixed(arrays: dict[str, NDArray[Any]], prefix: str) -> dict[str, NDArray[Any]]:
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` whole or not at all (temporary file, fsync, rename)."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        _write(file, checkpoint)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def dump(checkpoint: Checkpoint) -> bytes:
    """``checkpoint`` as the bytes ``save`` writes (a cluster keeps them in an object store)."""
    buffer = io.BytesIO()
    _write(buffer, checkpoint)
    return buffer.getvalue()


def _write(file: IO[bytes], checkpoint: Checkpoint) -> None:
    entries: dict[str, Any] = {"meta": np.array(json.dumps(checkpoint.meta)), **checkpoint.arrays}
    np.savez(file, **entries)


def load(path: Path | IO[bytes]) -> Checkpoint:
    """Read a checkpoint; ValueError (or OSError) naming the problem when it cannot be used."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ValueError(f"not a checkpoint: {exc}") from exc
    meta = json.loads(str(arrays.pop("meta")))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("a checkpoint of another format")
    return Checkpoint(arrays, meta)


def parse(data: bytes) -> Checkpoint:
    """The checkpoint ``dump`` gave ``data`` for; ValueError when it is none."""
    return load(io.BytesIO(data))
