"""Release policy: which partner may see which source, and under which rules.

A contributing nation writes releases ("KEN releases its UAVs to UN with 500 m
precision"). For a (sensor, partner) pair the first release of the sensor's
nation that selects the sensor and names the partner (or a group holding it)
is the grant; a sensor's own ``release_to`` is an unrestricted grant; no grant,
or a source classified above the partner's clearance, means the partner never
sees that source. The policy is compiled once per config into arrays indexed
by sensor, so applying it to a picture is a few numpy operations per partner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hub.config import HubConfig, Partner, Sensor
from hub.fusion.platforms import friend_ids, mission_key
from hub.geo import EnuFrame
from hub.messages import CLASSES

LatLonRing = tuple[tuple[float, float], ...]

MISSION = "mission"
"""The audience of the picture built from every source: the mission's own operators."""


@dataclass(frozen=True)
class Grant:
    """What one release lets one partner see of one source."""

    precision_m: float = 0.0
    delay_s: float = 0.0
    area: LatLonRing = ()
    hidden: frozenset[str] = frozenset()
    strip: bool = False


UNRESTRICTED = Grant()


def members(config: HubConfig, names: Iterable[str]) -> frozenset[str]:
    """Partner ids named by ``names``: partner ids as they are, groups expanded."""
    found: set[str] = set()
    for name in names:
        found.update(config.groups.get(name, (name,)))
    return frozenset(found)


def cleared(config: HubConfig, sensor: Sensor, partner: Partner) -> bool:
    """Whether ``partner``'s clearance covers ``sensor``'s classification."""
    if partner.clearance is None:
        return True
    return classification_rank(config, sensor) <= config.labels.classifications.index(
        partner.clearance)


def classification_rank(config: HubConfig, sensor: Sensor) -> int:
    """Position of ``sensor``'s classification in the mission's levels (0: the lowest)."""
    level = sensor.label.classification
    return 0 if level is None else config.labels.classifications.index(level)


def grant(config: HubConfig, sensor: Sensor, partner: Partner) -> Grant | None:
    """The rule under which ``partner`` sees ``sensor``'s data, None if it may not."""
    if not cleared(config, sensor, partner):
        return None
    if partner.id in members(config, sensor.release_to):
        return UNRESTRICTED
    for release in config.releases:
        if release.selects(sensor) and partner.id in members(config, release.to):
            return Grant(precision_m=release.precision_m, delay_s=release.delay_s,
                         area=tuple(release.area), hidden=frozenset(release.hide_classes),
                         strip=release.strip_attribution)
    return None


def visible_sensors(config: HubConfig, partner_id: str) -> frozenset[str]:
    """Ids of the sensors whose data is released to ``partner_id``."""
    partner = next(p for p in config.partners if p.id == partner_id)
    return frozenset(s.id for s in config.sensors if grant(config, s, partner) is not None)


@dataclass(frozen=True, eq=False)
class Area:
    """A release area in mission metres and the sensors whose grants carry it."""

    ring: NDArray[np.float64]
    """(K, 2) east, north corners."""
    sensors: NDArray[np.bool_]

    def contains(self, east: NDArray[np.float64], north: NDArray[np.float64]
                 ) -> NDArray[np.bool_]:
        """Even-odd test of each point against the ring, vectorised over points and edges."""
        x0, y0 = self.ring[:, 0][:, None], self.ring[:, 1][:, None]
        x1, y1 = np.roll(self.ring[:, 0], -1)[:, None], np.roll(self.ring[:, 1], -1)[:, None]
        straddles = (y0 > north) != (y1 > north)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x0 + (north - y0) * (x1 - x0) / (y1 - y0)
        crossings: NDArray[np.bool_] = (straddles & (east < x_cross)).sum(axis=0) % 2 == 1
        return crossings


@dataclass(frozen=True, eq=False)
class PartnerRules:
    """One partner's grants, compiled into arrays indexed by sensor."""

    partner: str
    grants: tuple[Grant | None, ...]
    visible: NDArray[np.bool_]
    precision: NDArray[np.float64]
    strip: NDArray[np.bool_]
    hidden: NDArray[np.bool_]
    """(n_sensors, n_classes): classes a source's grant hides."""
    areas: tuple[Area, ...]
    delay_s: float
    """The largest delay of any visible source: the whole picture is that old."""
    friend_ids: NDArray[np.int64]
    """(n_sensors,): the id of each unit's friend track in this partner's picture."""

    def sharing_key(self) -> tuple[object, ...]:
        """What partners must have in common to be sent one released picture."""
        return self.grants, self.friend_ids.tobytes()


def partner_friend_ids(key: bytes, units: list[str], partner_id: str,
                       grants: tuple[Grant | None, ...]) -> NDArray[np.int64]:
    """Each unit's friend id as ``partner_id`` sees it: its own where attribution is stripped.

    A stripped unit's friend id is keyed by the partner too, so it matches no
    id of another picture (the mission's, an attributed partner's, another
    stripped partner's), and the partner cannot map it back to the unit.
    """
    audiences = [partner_id if g is not None and g.strip else None for g in grants]
    return friend_ids(key, units, audiences)


def compile_rules(partner_id: str, grants: tuple[Grant | None, ...], frame: EnuFrame,
                  friends: NDArray[np.int64]) -> PartnerRules:
    """Turn one partner's per-sensor grants (and its units' friend ids) into arrays."""
    given = [g or UNRESTRICTED for g in grants]
    hidden = np.array([[c in g.hidden for c in CLASSES] for g in given], dtype=bool)
    hidden = hidden.reshape(len(grants), len(CLASSES))
    rings = sorted({g.area for g in given if g.area})
    areas = tuple(Area(_ring_enu(ring, frame),
                       np.array([g is not None and g.area == ring for g in grants], dtype=bool))
                  for ring in rings)
    delays = [g.delay_s for g in grants if g is not None]
    return PartnerRules(
        partner=partner_id, grants=grants,
        visible=np.array([g is not None for g in grants], dtype=bool),
        precision=np.array([g.precision_m for g in given], dtype=np.float64),
        strip=np.array([g.strip for g in given], dtype=bool),
        hidden=hidden, areas=areas, delay_s=max(delays, default=0.0), friend_ids=friends)


def _ring_enu(ring: LatLonRing, frame: EnuFrame) -> NDArray[np.float64]:
    east, north, _ = frame.to_enu([p[0] for p in ring], [p[1] for p in ring], 0.0)
    return np.stack([east, north], axis=1)


class ReleasePolicy:
    """Every partner's compiled rules and every source's label parts, for one config."""

    def __init__(self, config: HubConfig, frame: EnuFrame) -> None:
        self.config = config
        self.levels = list(config.labels.classifications)
        self.policy_name = config.labels.policy
        self.sensor_ids = [s.id for s in config.sensors]
        self.partner_ids = [p.id for p in config.partners]
        self.rank = np.array([classification_rank(config, s) for s in config.sensors],
                             dtype=np.int64)
        self.caveats = [tuple(s.label.caveats) for s in config.sensors]
        key = mission_key(config)
        self.partners = {}
        for p in config.partners:
            grants = tuple(grant(config, s, p) for s in config.sensors)
            self.partners[p.id] = compile_rules(
                p.id, grants, frame, partner_friend_ids(key, self.sensor_ids, p.id, grants))
        self.mission = compile_rules(MISSION, tuple(UNRESTRICTED for _ in config.sensors),
                                     frame, friend_ids(key, self.sensor_ids))
        """The mission picture's rules: every source, as it is (labels still computed)."""
        self.audience = np.stack([self.partners[p].visible for p in self.partner_ids], axis=1
                                 ) if self.partner_ids else np.zeros((len(config.sensors), 0),
                                                                     dtype=bool)
        """(n_sensors, n_partners): who may see each source."""

    def visible_sensors(self, partner_id: str) -> frozenset[str]:
        """Ids of the sensors released to ``partner_id``."""
        mask = self.partners[partner_id].visible
        return frozenset(s for s, seen in zip(self.sensor_ids, mask.tolist(), strict=True)
                         if seen)


def describe_grant(sensor_id: str, grant: Grant) -> str:
    """One source as a partner sees it: ``nld-uav-1 (100 m, no attribution)``."""
    terms = [f"{grant.precision_m:g} m" if grant.precision_m else "",
             f"{grant.delay_s:g} s late" if grant.delay_s else "",
             "in an area" if grant.area else "",
             f"without {', '.join(sorted(grant.hidden))}" if grant.hidden else "",
             "no attribution" if grant.strip else ""]
    shown = ", ".join(t for t in terms if t)
    return f"{sensor_id} ({shown})" if shown else sensor_id


def describe(config: HubConfig) -> list[str]:
    """Per partner, the sources it sees and under which rules (for ``hub config check``)."""
    return [f"  {describe_audience(config, partner.id)}" for partner in config.partners]


def describe_audience(config: HubConfig, audience: str) -> str:
    """What ``audience`` sees: ``gha sees ken-radar-1, nld-uav-1 (100 m, no attribution)``."""
    if audience == MISSION:
        return (f"{MISSION} sees {', '.join(s.id for s in config.sensors) or 'nothing'} "
                "(every source, no release rules)")
    partner = next(p for p in config.partners if p.id == audience)
    seen = [describe_grant(s.id, g) for s in config.sensors
            if (g := grant(config, s, partner)) is not None]
    return f"{partner.id} sees {', '.join(seen) if seen else 'nothing'}"
