"""Inbound items (a sensor's scan, a platform's fix) as MessagePack-ready lists, and back."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from hub.fusion.measurements import Scan
from hub.ingest.router import InboundItem, PlatformFix
from hub.messages import Telemetry

_telemetry = msgspec.msgpack.Decoder(Telemetry)
_encoder = msgspec.msgpack.Encoder()


def encode_scan(scan: Scan) -> list[object]:
    """``scan`` as [t, sensor, z, R, cls, conf], the arrays as raw little-endian bytes."""
    return [scan.t, scan.sensor,
            np.ascontiguousarray(scan.z, "<f8").tobytes(),
            np.ascontiguousarray(scan.R, "<f8").tobytes(),
            np.ascontiguousarray(scan.cls, "<i2").tobytes(),
            np.ascontiguousarray(scan.conf, "<f8").tobytes()]


def decode_scan(fields: list[Any]) -> Scan:
    """The Scan ``encode_scan`` gave ``fields`` for; ValueError when they do not fit."""
    t, sensor, z, r, cls, conf = fields
    if not all(isinstance(b, bytes) for b in (z, r, cls, conf)):
        raise ValueError("scan arrays must be bytes")
    z_array = np.frombuffer(z, "<f8").reshape(-1, 2).astype(np.float64)
    n = z_array.shape[0]
    return Scan(t=float(t), sensor=int(sensor), z=z_array,
                R=np.frombuffer(r, "<f8").reshape(n, 2, 2).astype(np.float64),
                cls=np.frombuffer(cls, "<i2").reshape(n).astype(np.int16),
                conf=np.frombuffer(conf, "<f8").reshape(n).astype(np.float64))


def encode_item(item: InboundItem) -> list[object]:
    """A reorder window's item as ["scan", ...] or ["fix", t, sensor, telemetry, east, north]."""
    if isinstance(item, Scan):
        return ["scan", *encode_scan(item)]
    return ["fix", item.t, item.sensor, _encoder.encode(item.telemetry), *item.enu]


def decode_item(fields: list[Any]) -> InboundItem:
    """The item ``encode_item`` gave ``fields`` for; ValueError when they do not fit."""
    kind, *rest = fields
    if kind == "scan":
        return decode_scan(rest)
    if kind == "fix":
        t, sensor, telemetry, east, north = rest
        if not isinstance(telemetry, bytes):
            raise ValueError("a fix's telemetry must be bytes")
        return PlatformFix(float(t), int(sensor), _telemetry.decode(telemetry),
                           (float(east), float(north)))
    raise ValueError(f"unknown item kind {kind!r}")
