"""Builders shared by the release-rule tests: a small registry and hand-made track tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hub.config import HubConfig, parse_config
from hub.fusion.tracks import CONFIRMED, Covariances, TrackTable
from hub.geo import EnuFrame
from hub.messages import CLASSES

ORIGIN = (-1.0, 36.0)
T0 = 1_800_000_000.0
FRAME = EnuFrame(ORIGIN[0], ORIGIN[1], 0.0)
SENSORS = [("s1", "KEN", "radar"), ("s2", "GHA", "radar"), ("s3", "NLD", "uav")]


def config_with(releases: Sequence[dict[str, Any]], **extra: Any) -> HubConfig:
    """Partners a, b, c; sensors s1 (KEN), s2 (GHA), s3 (NLD) released by ``releases``."""
    return parse_config({
        "mission": {"origin": {"lat": ORIGIN[0], "lon": ORIGIN[1]}},
        "partners": [{"id": p, "name": p.upper()} for p in ("a", "b", "c")],
        "sensors": [{"id": i, "nation": n, "kind": k, "platform": False} for i, n, k in SENSORS],
        "releases": list(releases),
        **extra,
    })


def latlon_ring(east_north: Sequence[tuple[float, float]]) -> list[list[float]]:
    """A release area given in mission metres, as the [lat, lon] corners a config holds."""
    east, north = np.array(east_north, dtype=float).T
    lat, lon, _ = FRAME.to_geodetic(east, north, 0.0)
    return [[float(a), float(b)] for a, b in zip(lat, lon, strict=True)]


def table_of(rows: Sequence[tuple[float, float, str, Sequence[str]]], t: float = T0
             ) -> TrackTable:
    """Confirmed tracks 1..N at (east, north) of class ``cls`` with contributing sensors."""
    n = len(rows)
    sensor_ids = [s[0] for s in SENSORS]
    probs = np.full((n, len(CLASSES)), 0.02)
    sources = np.zeros((n, len(SENSORS)), dtype=bool)
    for i, (_, _, cls, contributors) in enumerate(rows):
        probs[i, CLASSES.index(cls)] = 1.0
        sources[i, [sensor_ids.index(s) for s in contributors]] = True
    p = np.tile(np.diag([25.0, 25.0, 4.0, 4.0]), (n, 1, 1))
    return TrackTable(
        t=t, q=1.0, id=np.arange(1, n + 1, dtype=np.int64),
        x=np.array([[e, nn, 1.0, -2.0] for e, nn, _, _ in rows], dtype=float).reshape(n, 4),
        cov=Covariances(p), status=np.full(n, CONFIRMED, np.int8),
        cls_probs=probs / probs.sum(axis=1, keepdims=True), first_seen=np.full(n, t - 10.0),
        last_update=np.full(n, t), updates=np.full(n, 5, np.int64), sources=sources)
