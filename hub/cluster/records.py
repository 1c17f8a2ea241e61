"""The inputs stream's records: validated items with their receive time, and fusion steps.

The stream holds, in one order, everything that changes fusion: each item an
ingest or imagery worker validated (``item_record``) and each fusion step the
clock took (``tick_record``). A fusion worker applies them in stream order
(``apply``), so every worker that applies the same records holds the same
state, bit for bit: the single process's journal replay, across processes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hub.ingest.router import InboundItem
from hub.pipeline import Pipeline
from hub.recovery.codec import decode_item, encode_item

_encoder = msgspec.msgpack.Encoder()


def item_record(item: InboundItem, t_received: float) -> bytes:
    """An item's record: [receive time, the item as ``hub.recovery.codec`` encodes it]."""
    return _encoder.encode([t_received, encode_item(item)])


def tick_record(t: float) -> bytes:
    """A fusion step at time ``t``: the reorder window releases what it has passed by then."""
    return _encoder.encode(t)


class RecordError(ValueError):
    """A record that is not one of ours (only hub workers may write the stream)."""


def apply(pipeline: Pipeline, is_tick: bool, data: bytes) -> int:
    """Apply one record to ``pipeline``; return how many items it fused (a tick) or 0."""
    try:
        record: Any = msgspec.msgpack.decode(data)
        if is_tick:
            return pipeline.fuse_ready(float(record))
        t_received, fields = record
        pipeline.queue(decode_item(fields), float(t_received))
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise RecordError(f"not an inputs record: {exc}") from exc
    return 0
