"""The inputs stream's records: validated items with their receive time, and fusion steps.

The stream holds, in one order, everything that changes fusion: each item an
ingest or imagery worker validated (``item_record``) and each fusion step the
clock took (``tick_record``). A fusion worker applies them in stream order
(``apply``), so every worker that applies the same records holds the same
state, bit for bit: the single process's journal replay, across processes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from hub.config import HubConfig
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
