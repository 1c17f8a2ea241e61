"""The inputs stream's records: validated items with their receive time, and fusion steps.

The stream holds, in one order, everything that changes fusion: each item an
ingest or imagery worker validated (``item_record``) and each fusion step the
clock took (``tick_record``). A fusion worker applies them in stream order
(``apply``), so every worker that applies the same records holds the same
state, bit for bit: the single process's journal replay, across processes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from hub.config import HubConfig
from hub.fusion.measurements import Scan
from hub.ingest.router import InboundItem
from hub.pipeline import Pipeline
from hub.recovery.codec import decode_item, encode_item

log = logging.getLogger(__name__)
_encoder = msgspec.msgpack.Encoder()


def item_record(item: InboundItem, t_received: float) -> bytes:
    """An item's record: [receive time, the item as ``hub.recovery.codec`` encodes it]."""
    return _encoder.encode([t_received, encode_item(item)])


def tick_record(t: float) -> bytes:
    """A fusion step at time ``t``: the reorder window releases what it has passed by then."""
    return _encoder.encode(t)


Record = tuple[bool, bytes]
"""(is a fusion step, data): one record of the inputs stream, as ``apply`` takes it."""


def records_of(config: HubConfig, messages: Iterable[tuple[float, str, bytes]],
               tick_s: float) -> list[Record]:
    """The records one ingest worker and the clock would store for ``messages``.

    ``messages`` are (receive time, topic, payload) in receive order; a fusion
    step every ``tick_s`` of receive time. For tests and benchmarks: the
    stream a live cluster would hold, without the cluster.
    """
    ingest = Pipeline(config, groups=())
    out: list[Record] = []

    def take(item: InboundItem, t_received: float) -> bool:
        out.append((False, item_record(item, t_received)))
        return True

    ingest.on_item = take
    next_tick: float | None = None
    for t, topic, payload in messages:
        next_tick = t if next_tick is None else next_tick
        while next_tick <= t:
            out.append((True, tick_record(next_tick)))
            next_tick += tick_s
        ingest.handle(topic, payload, t)
    return out


class RecordError(ValueError):
    """A record that is not one of ours (only hub workers may write the stream)."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A record read: an item with its receive time, or a fusion step (``item`` None) at ``t``."""

    t: float
    item: InboundItem | None


def decode(is_tick: bool, data: bytes) -> Decoded:
    """Read one record; RecordError when it is not one of ours.

    A scan's arrays are made read-only: a worker applies one decoded record to
    every group it owns, so no group may change what the others read.
    """
    try:
        record: Any = msgspec.msgpack.decode(data)
        if is_tick:
            return Decoded(float(record), None)
        t_received, fields = record
        item = decode_item(fields)
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise RecordError(f"not an inputs record: {exc}") from exc
    if isinstance(item, Scan):
        for array in (item.z, item.R, item.cls, item.conf):
            array.flags.writeable = False
    return Decoded(float(t_received), item)


def read(seq: int, is_tick: bool, data: bytes) -> Decoded | None:
    """``decode`` of the record at stream sequence ``seq``; None (and logged) if not ours."""
    try:
        return decode(is_tick, data)
    except RecordError as exc:
        log.error("record %d skipped: %s", seq, exc)
        return None


def apply(pipeline: Pipeline, is_tick: bool, data: bytes) -> int:
    """Apply one record to ``pipeline``; return how many items it fused (a step) or 0."""
    return apply_decoded(pipeline, decode(is_tick, data))


def apply_decoded(pipeline: Pipeline, record: Decoded) -> int:
    """Apply a record read by ``decode``; return how many items it fused (a step) or 0."""
    if record.item is None:
        return pipeline.fuse_ready(record.t)
    pipeline.queue(record.item, record.t)
    return 0
