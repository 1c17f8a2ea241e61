"""Tracks as RFC 7946 GeoJSON: one Feature per track, positions ``[lon, lat]`` in WGS84.

A Feature carries the Track's fields as ``properties``, plus what a map needs
and would otherwise compute: speed and course, the one-sigma error along the
covariance ellipse's major axis, and the time after which the track is to be
shown stale. Structs are encoded by msgspec in one pass; a message built here
is encoded once and sent to every client of its audience.
"""

from __future__ import annotations

import math

import msgspec
from msgspec import Struct

from hub.messages import Label, Track

COORD_DECIMALS = 7
"""About 1 cm: more would claim a precision no track has (RFC 7946, section 11.2)."""

_encoder = msgspec.json.Encoder()


class Point(Struct, frozen=True, tag="Point", tag_field="type"):
    """A GeoJSON Point: ``[lon, lat]``."""

    coordinates: tuple[float, float]


class LineString(Struct, frozen=True, tag="LineString", tag_field="type"):
    """A GeoJSON LineString: ``[[lon, lat], ...]``."""

    coordinates: list[tuple[float, float]]


class TrackProperties(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The Track's fields, and what a map needs of them."""

    ts: float
    status: str
    cls: str
    cls_probs: dict[str, float]
    affiliation: str
    sidc: str
    sources: list[str]
    nations: list[str]
    first_seen: float
    updates: int
    vn: float
    ve: float
    cov: tuple[float, float, float]
    speed_mps: float
    course_deg: float
    ce_m: float
    stale: float
    last_update: float | None = None
    alt: float | None = None
    label: Label | None = None


class Feature(Struct, frozen=True, tag="Feature", tag_field="type"):
    """One track as a GeoJSON Feature."""

    id: str
    geometry: Point
    properties: TrackProperties


class TrailProperties(Struct, frozen=True):
    """The time of each vertex of a trail, epoch seconds."""

    times: list[float]


class TrailFeature(Struct, frozen=True, tag="Feature", tag_field="type"):
    """One track's past positions as a GeoJSON LineString Feature."""

    id: str
    geometry: LineString
    properties: TrailProperties


class FeatureCollection(Struct, frozen=True, kw_only=True, tag="FeatureCollection",
                        tag_field="type", omit_defaults=True):
    """Features, with the picture they belong to as foreign members."""

    features: list[Feature] | list[TrailFeature]
    audience: str | None = None
    seq: int | None = None
    ts: float | None = None


def feature(track: Track, stale_after_s: float) -> Feature:
    """``track`` as a Feature, stale ``stale_after_s`` after its last update."""
    ee, en, nn = track.cov
    last = track.ts if track.last_update is None else track.last_update
    properties = TrackProperties(
        ts=track.ts, status=track.status, cls=track.cls, cls_probs=track.cls_probs,
        affiliation=track.affiliation, sidc=track.sidc, sources=track.sources,
        nations=track.nations, first_seen=track.first_seen, updates=track.updates,
        vn=track.vn, ve=track.ve, cov=track.cov, speed_mps=math.hypot(track.ve, track.vn),
        course_deg=math.degrees(math.atan2(track.ve, track.vn)) % 360.0,
        ce_m=major_sigma(ee, en, nn), stale=last + stale_after_s,
        last_update=track.last_update, alt=track.alt, label=track.label)
    return Feature(id=track.id, geometry=Point(lon_lat(track.lon, track.lat)),
                   properties=properties)


def major_sigma(ee: float, en: float, nn: float) -> float:
    """One sigma along the major axis of the 2x2 covariance ``[[ee, en], [en, nn]]``, metres."""
    half_trace = (ee + nn) / 2.0
    largest = half_trace + math.sqrt(max(((ee - nn) / 2.0) ** 2 + en * en, 0.0))
    return math.sqrt(max(largest, 0.0))


def lon_lat(lon: float, lat: float) -> tuple[float, float]:
    """A GeoJSON position, rounded to ``COORD_DECIMALS``."""
    return round(lon, COORD_DECIMALS), round(lat, COORD_DECIMALS)


def collection(features: list[Feature], audience: str | None = None, seq: int | None = None,
               ts: float | None = None) -> FeatureCollection:
    """A FeatureCollection of ``features`` with the picture's foreign members."""
    return FeatureCollection(features=features, audience=audience, seq=seq, ts=ts)


def trail(track_id: str, points: list[tuple[float, float, float]]) -> TrailFeature:
    """A trail Feature from ``(t, lon, lat)`` points, oldest first."""
    return TrailFeature(id=track_id,
                        geometry=LineString([lon_lat(lon, lat) for _, lon, lat in points]),
                        properties=TrailProperties([t for t, _, _ in points]))


def encode(message: Struct) -> bytes:
    """JSON bytes of a GeoJSON struct (or any message built of them)."""
    return _encoder.encode(message)

