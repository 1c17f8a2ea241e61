"""Scenario families from a generator independent of simulators.targets, radar and uav.

The hub's defaults were tuned on its own simulator; this module writes
recordings from different motion and sensor models, so that tuning can be
checked against scenes it was not fitted to (issue 12). Nothing here imports
the other simulators: targets move by their own rules (near-constant velocity
with a small random-walk acceleration, rare coordinated turns, walking
persons whose heading wanders, parked vehicles), radars have their own error
model (a minimum detectable radial speed for GMTI, long-range geometry,
uniform clutter), and UAV cameras look straight down with a class confusion
matrix. Only the geodesy (hub.geo) and the recording format are shared.

A recording holds what field units send (docs/PROTOCOL.md): status, polar
detection batches of the radars, telemetry and geo detection batches of the
UAVs, plus ``sim/truth`` once a second. The sensor ids are those registered in
config/hub.toml, so ``hub replay -c config/hub.toml`` and ``hub score`` take it
unchanged. A family's recording is a pure function of the family and the seed.

Run: ``python -m simulators.families quiet /tmp/quiet.rec --seed 3``
"""

from __future__ import annotations

import argparse
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from numpy.typing import NDArray

from hub import topics
from hub.geo import EnuFrame
from hub.recording import RecordingWriter

Array = NDArray[np.float64]
ORIGIN = (-1.2921, 36.8219, 1650.0)  # config/hub.toml's mission origin
START_TS = 1_767_225_600.0
STEP_S = 0.1  # truth integration step; every sensor period is a multiple of it
CLASSES = ("vehicle", "person")


@dataclass(frozen=True)
class Motion:
    """How one family's targets move.

    ``jitter`` is the standard deviation of the random-walk acceleration
    (m/s², along and across the heading): near zero is near-constant velocity.
    Turns start at ``turn_rate_per_s`` (per target per second), last
    ``turn_s`` seconds at a rate drawn from ``turn_deg_s``; persons' headings
    wander by ``person_wander`` deg/√s instead of turning.
    """

    vehicle_speed: tuple[float, float] = (6.0, 15.0)
    person_speed: tuple[float, float] = (0.8, 1.6)
    jitter: float = 0.05
    turn_rate_per_s: float = 0.005
    turn_deg_s: tuple[float, float] = (3.0, 8.0)
    turn_s: tuple[float, float] = (5.0, 15.0)
    speed_change_per_s: float = 0.0
    person_wander: float = 4.0


@dataclass(frozen=True)
class Population:
    """The targets: count, class shares, area (half-side, m, centred on the origin), churn."""

    count: int = 12
    person_share: float = 0.3
    parked_share: float = 0.0
    half_side: float = 2_500.0
    birth_rate: float = 0.0
    death_rate: float = 0.0


@dataclass(frozen=True)
class RadarUnit:
    """A ground radar at ``east, north`` of the origin (m), scanning every ``period`` s."""

    id: str
    east: float
    north: float
    period: float = 1.0
    sigma_range: float = 8.0
    sigma_bearing: float = 0.25  # degrees
    pd: float = 0.9
    clutter: float = 1.0  # false alarms per scan, uniform over the coverage
    min_range: float = 100.0
    max_range: float = 8_000.0
    mdv: float = 0.0  # minimum detectable radial speed, m/s (GMTI); 0: sees everything


@dataclass(frozen=True)
class UavUnit:
    """A UAV orbiting ``east, north`` with a nadir camera and an on-board detector."""

    id: str
    east: float
    north: float
    orbit_radius: float = 800.0
    altitude: float = 350.0
    speed: float = 22.0
    half_fov_deg: float = 30.0
    pd: float = 0.85
    sigma: float = 6.0
    confusion: float = 0.15  # probability that a vehicle is called a person or vice versa
    clutter: float = 0.1  # false detections per frame
    rate: float = 1.0  # detection batches per second
    telemetry_rate: float = 2.0

    @property
    def footprint(self) -> float:
        """Radius of the nadir camera's ground footprint, m."""
        return self.altitude * math.tan(math.radians(self.half_fov_deg))


@dataclass(frozen=True)
class Family:
    """One family of scenarios: targets, how they move, who looks at them."""

    name: str
    summary: str
    population: Population = Population()
    motion: Motion = Motion()
    radars: tuple[RadarUnit, ...] = ()
    uavs: tuple[UavUnit, ...] = ()
    duration_s: float = 120.0
    seed: int = 1


_NEAR = (RadarUnit("ken-radar-1", -3_000.0, -2_000.0),
         RadarUnit("gha-radar-1", 3_000.0, 2_500.0, period=2.0, sigma_range=12.0,
                   sigma_bearing=0.3, pd=0.85))
_UAVS = (UavUnit("nld-uav-1", 800.0, -600.0), UavUnit("bra-uav-1", -900.0, 900.0))


def _far(unit: RadarUnit, east: float, north: float) -> RadarUnit:
    return replace(unit, east=east, north=north, min_range=5_000.0, max_range=30_000.0,
                   sigma_range=15.0, sigma_bearing=0.15)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("quiet", "near-constant velocity vehicles and persons, two radars, two UAVs",
           radars=_NEAR, uavs=_UAVS),
    Family("manoeuvring", "frequent coordinated turns (8-20 deg/s) and speed changes",
           motion=Motion(vehicle_speed=(8.0, 18.0), jitter=0.3, turn_rate_per_s=0.05,
                         turn_deg_s=(8.0, 20.0), turn_s=(3.0, 8.0), speed_change_per_s=0.03),
           radars=_NEAR, uavs=_UAVS, seed=2),
    Family("persons_parked", "40 % walking persons, 30 % parked vehicles",
           population=Population(count=14, person_share=0.4, parked_share=0.3),
           radars=_NEAR, uavs=_UAVS, seed=3),
    Family("gmti", "GMTI radars blind below 1.5 m/s radial: parked and tangential movers vanish",
           population=Population(count=14, person_share=0.3, parked_share=0.2),
           radars=tuple(replace(r, mdv=1.5) for r in _NEAR), uavs=_UAVS, seed=4),
    Family("long_range", "radars 18-22 km out: cross-range sigma 50-60 m",
           radars=(_far(_NEAR[0], -15_000.0, -12_000.0), _far(_NEAR[1], 20_000.0, 6_000.0)),
           uavs=_UAVS, seed=5),
    Family("dense_clutter", "25 and 15 false alarms per radar scan, 1 per UAV frame",
           radars=(replace(_NEAR[0], clutter=25.0), replace(_NEAR[1], clutter=15.0)),
           uavs=tuple(replace(u, clutter=1.0) for u in _UAVS), seed=6),
    Family("uav_cameras", "UAV cameras only over slow targets: 30 % class confusion",
           population=Population(count=14, person_share=0.5, half_side=700.0),
           motion=Motion(vehicle_speed=(2.0, 6.0)),
           uavs=(replace(_UAVS[0], east=300.0, north=-200.0, orbit_radius=350.0,
                         altitude=550.0, confusion=0.3, pd=0.8),
                 replace(_UAVS[1], east=-300.0, north=250.0, orbit_radius=350.0,
                         altitude=550.0, confusion=0.3, pd=0.8, rate=2.0)), seed=7),
    Family("births_deaths", "targets appear and vanish: 0.1 births/s, 1 %/s deaths",
           population=Population(count=10, birth_rate=0.1, death_rate=0.01),
           radars=_NEAR, uavs=_UAVS, seed=8),
)}


# ---------------------------------------------------------------------------------------
# Targets


@dataclass
class Targets:
    """The live targets as parallel arrays (mission ENU, m and m/s)."""

    ids: NDArray[np.int64]
    cls: NDArray[np.int64]  # index into CLASSES
    parked: NDArray[np.bool_]
    pos: Array  # (K, 2)
    speed: Array
    heading: Array  # radians, clockwise from north
    turn: Array  # current turn rate, rad/s
    turn_left: Array  # seconds of turn left
    goal: Array  # speed a target is accelerating to (NaN: none)
    next_id: int = 0

    @property
    def vel(self) -> Array:
        """East and north velocity (K, 2)."""
        return np.stack((self.speed * np.sin(self.heading), self.speed * np.cos(self.heading)), 1)


def _spawn(rng: np.random.Generator, pop: Population, motion: Motion, k: int,
           first_id: int) -> Targets:
    person = rng.random(k) < pop.person_share
    parked = ~person & (rng.random(k) < pop.parked_share / max(1.0 - pop.person_share, 1e-9))
    lo = np.where(person, motion.person_speed[0], motion.vehicle_speed[0])
    hi = np.where(person, motion.person_speed[1], motion.vehicle_speed[1])
    speed = np.where(parked, 0.0, rng.uniform(lo, hi))
    return Targets(ids=np.arange(first_id, first_id + k), cls=person.astype(np.int64),
                   parked=parked, pos=rng.uniform(-pop.half_side, pop.half_side, (k, 2)),
                   speed=speed, heading=rng.uniform(0.0, 2.0 * math.pi, k),
                   turn=np.zeros(k), turn_left=np.zeros(k), goal=np.full(k, np.nan),
                   next_id=first_id + k)


def _concat(a: Targets, b: Targets) -> Targets:
    def cat(name: str) -> Any:
        return np.concatenate([getattr(a, name), getattr(b, name)])
    return Targets(**{n: cat(n) for n in ("ids", "cls", "parked", "pos", "speed", "heading",
                                          "turn", "turn_left", "goal")}, next_id=b.next_id)


def _keep(t: Targets, keep: NDArray[np.bool_]) -> Targets:
    return Targets(t.ids[keep], t.cls[keep], t.parked[keep], t.pos[keep], t.speed[keep],
                   t.heading[keep], t.turn[keep], t.turn_left[keep], t.goal[keep], t.next_id)


def _move(t: Targets, m: Motion, rng: np.random.Generator, dt: float) -> None:
    """Advance every target by ``dt``: turns, wander, speed random walk, then position."""
    k = t.ids.shape[0]
    moving = ~t.parked
    person = t.cls == 1
    vehicle = moving & ~person
    start = vehicle & (t.turn_left <= 0.0) & (rng.random(k) < m.turn_rate_per_s * dt)
    rate = np.radians(rng.uniform(*m.turn_deg_s, k)) * rng.choice((-1.0, 1.0), k)
    t.turn = np.where(start, rate, np.where(t.turn_left > 0.0, t.turn, 0.0))
    t.turn_left = np.where(start, rng.uniform(*m.turn_s, k), t.turn_left - dt)
    wander = np.radians(m.person_wander) * math.sqrt(dt) * rng.standard_normal(k)
    # Arc of the turn: move along the mean heading of the step.
    heading_new = t.heading + t.turn * dt + np.where(person & moving, wander, 0.0)
    mean_heading = 0.5 * (t.heading + heading_new)
    jitter = m.jitter * math.sqrt(dt) * rng.standard_normal(k)
    # A speed change accelerates at 1.5 m/s² towards a new speed, not a jump.
    change = vehicle & (rng.random(k) < m.speed_change_per_s * dt)
    t.goal = np.where(change, rng.uniform(*m.vehicle_speed, k), t.goal)
    step = np.clip(np.nan_to_num(t.goal - t.speed), -1.5 * dt, 1.5 * dt)
    t.speed = np.where(moving, np.maximum(t.speed + step + jitter, 0.0), 0.0)
    t.goal = np.where(np.abs(t.goal - t.speed) < 1.5 * dt, np.nan, t.goal)
    t.pos += dt * np.stack((t.speed * np.sin(mean_heading), t.speed * np.cos(mean_heading)), 1)
    t.heading = heading_new


# ---------------------------------------------------------------------------------------
# Sensors


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), 0xFA11])


@dataclass
class Radar:
    """A radar's geometry and random stream."""

    unit: RadarUnit
    frame: EnuFrame
    origin: Array  # its east, north in the mission frame
    rng: np.random.Generator
    position: dict[str, float] = field(default_factory=dict)
    seq: int = 0

    def scan(self, ts: float, t: Targets, mission: EnuFrame) -> dict[str, Any]:
        """One scan's polar detection batch: targets above the MDV, and clutter."""
        u, rng = self.unit, self.rng
        lat, lon, alt = mission.to_geodetic(t.pos[:, 0], t.pos[:, 1], 0.0)
        e, n, _ = self.frame.to_enu(lat, lon, alt)
        rng_m = np.hypot(e, n)
        radial = np.abs((t.vel * np.stack((e, n), 1)).sum(1)) / np.maximum(rng_m, 1.0)
        seen = ((rng_m >= u.min_range) & (rng_m <= u.max_range) & (radial >= u.mdv)
                & (rng.random(rng_m.shape[0]) < u.pd))
        r = rng_m[seen] + u.sigma_range * rng.standard_normal(int(seen.sum()))
        b = np.degrees(np.arctan2(e[seen], n[seen])) + u.sigma_bearing * rng.standard_normal(
            r.shape[0])
        k = int(rng.poisson(u.clutter))
        r = np.concatenate([r, np.sqrt(rng.uniform(u.min_range**2, u.max_range**2, k))])
        b = np.concatenate([b, rng.uniform(0.0, 360.0, k)]) % 360.0
        order = np.argsort(b, kind="stable")
        dets = [{"kind": "polar", "range": float(abs(rr)), "bearing": float(bb),
                 "sigma_range": u.sigma_range, "sigma_bearing": u.sigma_bearing}
                for rr, bb in zip(r[order].tolist(), b[order].tolist(), strict=True)]
        self.seq += 1
        return {"ts": ts, "seq": self.seq - 1, "sensor": self.position, "detections": dets}


@dataclass
class Uav:
    """A UAV's orbit, camera and random stream."""

    unit: UavUnit
    rng: np.random.Generator
    det_seq: int = 0
    tel_seq: int = 0

    def where(self, time_s: float) -> tuple[float, float, float, float]:
        """East, north, east and north velocity at scenario time ``time_s``."""
        u = self.unit
        w = u.speed / u.orbit_radius
        a = w * time_s
        return (u.east + u.orbit_radius * math.sin(a), u.north + u.orbit_radius * math.cos(a),
                u.speed * math.cos(a), -u.speed * math.sin(a))

    def telemetry(self, ts: float, time_s: float, mission: EnuFrame) -> dict[str, Any]:
        """One telemetry message (a registered platform's position report)."""
        e, n, ve, vn = self.where(time_s)
        lat, lon, alt = mission.to_geodetic(e, n, self.unit.altitude)
        self.tel_seq += 1
        return {"ts": ts, "seq": self.tel_seq - 1, "lat": float(lat), "lon": float(lon),
                "alt": float(alt), "heading": math.degrees(math.atan2(ve, vn)) % 360.0,
                "pitch": 0.0, "roll": 0.0, "vn": vn, "ve": ve, "vu": 0.0}

    def frame(self, ts: float, time_s: float, t: Targets, mission: EnuFrame) -> dict[str, Any]:
        """One camera frame's geo detections: footprint, confusion, clutter."""
        u, rng = self.unit, self.rng
        e, n, _, _ = self.where(time_s)
        d = np.hypot(t.pos[:, 0] - e, t.pos[:, 1] - n)
        seen = (d <= u.footprint) & (rng.random(d.shape[0]) < u.pd)
        k_hit = int(seen.sum())
        pos = t.pos[seen] + u.sigma * rng.standard_normal((k_hit, 2))
        confused = rng.random(k_hit) < u.confusion
        cls = np.where(confused, 1 - t.cls[seen], t.cls[seen])
        conf = np.where(confused, rng.uniform(0.4, 0.6, k_hit), rng.uniform(0.6, 0.9, k_hit))
        k = int(rng.poisson(u.clutter))
        rho, phi = u.footprint * np.sqrt(rng.random(k)), rng.uniform(0.0, 2.0 * math.pi, k)
        pos = np.concatenate([pos, np.stack((e + rho * np.sin(phi), n + rho * np.cos(phi)), 1)])
        cls = np.concatenate([cls, rng.integers(0, 2, k)])
        conf = np.concatenate([conf, rng.uniform(0.3, 0.5, k)])
        lat, lon, alt = mission.to_geodetic(pos[:, 0], pos[:, 1], 0.0)
        dets = [{"kind": "geo", "lat": la, "lon": lo, "alt": al, "sigma": u.sigma,
                 "cls": CLASSES[c], "conf": p}
                for la, lo, al, c, p in zip(np.atleast_1d(lat).tolist(),
                                            np.atleast_1d(lon).tolist(),
                                            np.atleast_1d(alt).tolist(), cls.tolist(),
                                            conf.tolist(), strict=True)]
        ulat, ulon, ualt = mission.to_geodetic(e, n, u.altitude)
        self.det_seq += 1
        return {"ts": ts, "seq": self.det_seq - 1,
                "sensor": {"lat": float(ulat), "lon": float(ulon), "alt": float(ualt)},
                "detections": dets}


def _radar(unit: RadarUnit, seed: int, mission: EnuFrame) -> Radar:
    lat, lon, alt = mission.to_geodetic(unit.east, unit.north, 5.0)
    position = {"lat": float(lat), "lon": float(lon), "alt": float(alt)}
    frame = EnuFrame(position["lat"], position["lon"], position["alt"])
    return Radar(unit, frame, np.array([unit.east, unit.north]), _rng(seed, unit.id), position)


# ---------------------------------------------------------------------------------------
# The stream


def _pack(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def _every(period: float) -> int:
    """A period in integration steps."""
    return max(1, round(period / STEP_S))


def messages(family: Family, seed: int | None = None) -> Iterator[tuple[float, str, bytes]]:
    """Yield ``(ts, topic, payload)`` of the family's whole scenario, in time order."""
    seed = family.seed if seed is None else seed
    mission = EnuFrame(*ORIGIN)
    rng = _rng(seed, "targets")
    pop = family.population
    targets = _spawn(rng, pop, family.motion, pop.count, 0)
    radars = [_radar(u, seed, mission) for u in family.radars]
    uavs = [Uav(u, _rng(seed, u.id)) for u in family.uavs]
    for sensor_id, kind in [(r.id, "radar") for r in family.radars] + [
            (u.id, "uav") for u in family.uavs]:
        yield START_TS, topics.sensor(sensor_id, "status"), _pack(
            {"ts": START_TS, "online": True, "kind": kind})
    # Each radar starts at its own phase, a whole number of steps into its period.
    phases = [int(_rng(seed, r.unit.id + "/phase").integers(0, _every(r.unit.period)))
              for r in radars]
    for step in range(round(family.duration_s / STEP_S)):
        time_s = step * STEP_S
        ts = START_TS + time_s
        if step % _every(1.0) == 0:
            yield ts, topics.TRUTH, _pack(_truth(ts, targets, mission))
        for radar, phase in zip(radars, phases, strict=True):
            if step % _every(radar.unit.period) == phase:
                yield ts, topics.sensor(radar.unit.id, "detections"), _pack(
                    radar.scan(ts, targets, mission))
        for uav in uavs:
            if step % _every(1.0 / uav.unit.telemetry_rate) == 0:
                yield ts, topics.sensor(uav.unit.id, "telemetry"), _pack(
                    uav.telemetry(ts, time_s, mission))
            if step % _every(1.0 / uav.unit.rate) == 0:
                yield ts, topics.sensor(uav.unit.id, "detections"), _pack(
                    uav.frame(ts, time_s, targets, mission))
        targets = _churn(targets, pop, family.motion, rng, STEP_S)
        _move(targets, family.motion, rng, STEP_S)


def _churn(t: Targets, pop: Population, motion: Motion, rng: np.random.Generator,
           dt: float) -> Targets:
    """Kill targets at ``death_rate`` and add new ones at ``birth_rate`` (Poisson)."""
    if pop.death_rate > 0.0:
        alive = np.asarray(rng.random(t.ids.shape[0]) >= pop.death_rate * dt, dtype=np.bool_)
        t = _keep(t, alive)
    births = int(rng.poisson(pop.birth_rate * dt)) if pop.birth_rate > 0.0 else 0
    if births:
        t = _concat(t, _spawn(rng, pop, motion, births, t.next_id))
    return t


def _truth(ts: float, t: Targets, mission: EnuFrame) -> dict[str, Any]:
    lat, lon, alt = mission.to_geodetic(t.pos[:, 0], t.pos[:, 1], 0.0)
    vel = t.vel
    return {"ts": ts, "targets": [
        {"id": i, "lat": la, "lon": lo, "alt": al, "ve": ve, "vn": vn, "cls": CLASSES[c]}
        for i, la, lo, al, ve, vn, c in zip(
            t.ids.tolist(), np.atleast_1d(lat).tolist(), np.atleast_1d(lon).tolist(),
            np.atleast_1d(alt).tolist(), vel[:, 0].tolist(), vel[:, 1].tolist(),
            t.cls.tolist(), strict=True)]}


def write_family(family: Family | str, path: str | Path, seed: int | None = None) -> int:
    """Write the family's recording (``t_received`` = message time); return the message count."""
    fam = FAMILIES[family] if isinstance(family, str) else family
    with RecordingWriter(path) as writer:
        writer.write_all(messages(fam, seed))
        return writer.count


def main(argv: list[str] | None = None) -> int:
    """Write one family's recording."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=sorted(FAMILIES))
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    count = write_family(args.family, args.out, args.seed)
    print(f"{args.out}: {count} messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
