"""The scenario runner: every message of a scenario, in time order, without a broker.

``generate`` is a pure function of the scenario, the seed, ``start_ts`` and
``speed``: the same inputs give the same bytes, camera frames included. Each sensor draws from
its own random stream (seeded by the scenario seed and a hash of its id), so
adding a sensor does not change what the others see. Payloads are encoded with the plain ``msgpack``
package, as a third-party field unit would.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import msgpack
import numpy as np

from hub import topics
from hub.geo import EnuFrame
from hub.recording import RecordingWriter
from simulators.camera import CameraSim
from simulators.radar import RadarSim
from simulators.scenario import Scenario
from simulators.targets import DECISION_PERIOD_S, Snapshot, TargetField
from simulators.uav import UavSim

DEFAULT_START_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a fixed default keeps runs repeatable

Message = tuple[float, str, bytes]
Emit = Callable[[float, int, float, Snapshot], dict[str, Any]]
Part = Literal["all", "frames", "rest"]
"""Which messages a stream holds: all, only camera frames, or all but frames."""


@dataclass(frozen=True)
class Source:
    """A periodic publisher: its topic, its rate (Hz) and phase, and its message builder."""

    topic: str
    rate: float
    phase: float
    emit: Emit

    @property
    def is_frames(self) -> bool:
        """Whether this source publishes camera frames."""
        return self.topic.endswith("/frames")


@dataclass(frozen=True)
class Pending:
    """A message due at ``ts`` whose payload is built only when ``build`` is called.

    ``period`` is the time to the same source's next message (0 for one-off
    messages), so a publisher running late can tell a frame that is already stale.
    Both are on the clock of the messages' timestamps.
    """

    ts: float
    topic: str
    period: float
    build: Callable[[], bytes]


def pack(message: dict[str, Any]) -> bytes:
    """Encode one message as MessagePack with the plain msgpack package."""
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def sensor_rng(seed: int, sensor_id: str) -> np.random.Generator:
    """The random stream of one sensor, independent of every other sensor's."""
    return np.random.default_rng([seed, zlib.crc32(sensor_id.encode())])


def _truth(ts: float, seq: int, t: float, snap: Snapshot) -> dict[str, Any]:
    lat, lon, alt = snap.geodetic
    names = snap.class_names
    targets = [
        {"id": i, "lat": la, "lon": lo, "alt": al, "vn": vn, "ve": ve, "cls": names[c]}
        for i, la, lo, al, ve, vn, c in zip(
            snap.ids.tolist(), lat.tolist(), lon.tolist(), alt.tolist(),
            snap.vel[:, 0].tolist(), snap.vel[:, 1].tolist(), snap.cls.tolist(), strict=True)
    ]
    return {"ts": ts, "targets": targets}


def _radar_emit(radar: RadarSim) -> Emit:
    def emit(ts: float, seq: int, t: float, snap: Snapshot) -> dict[str, Any]:
        return radar.batch(ts, seq, radar.measure(snap))
    return emit


def _uav_detections_emit(uav: UavSim) -> Emit:
    def emit(ts: float, seq: int, t: float, snap: Snapshot) -> dict[str, Any]:
        return uav.batch(ts, seq, t, uav.detect(t, snap))
    return emit


def _uav_telemetry_emit(uav: UavSim) -> Emit:
    def emit(ts: float, seq: int, t: float, snap: Snapshot) -> dict[str, Any]:
        return uav.telemetry(ts, seq, t)
    return emit


def build_sources(scenario: Scenario, seed: int, frame: EnuFrame) -> list[Source]:
    """Every periodic publisher of the scenario, truth first."""
    sources = [Source(topics.TRUTH, scenario.truth_rate, 0.0, _truth)]
    for radar in scenario.radars:
        rng = sensor_rng(seed, radar.id)
        # Radars start their scans at unrelated phases, as independent units would.
        phase = float(rng.uniform(0.0, radar.scan_period_s))
        sources.append(Source(topics.sensor(radar.id, "detections"),
                              1.0 / radar.scan_period_s, phase, _radar_emit(RadarSim(radar, rng))))
    for spec in scenario.uavs:
        uav = UavSim(spec, frame, scenario.origin.alt, sensor_rng(seed, spec.id))
        sources.append(Source(topics.sensor(spec.id, "telemetry"), spec.telemetry_rate,
                              0.0, _uav_telemetry_emit(uav)))
        if spec.detector:
            sources.append(Source(topics.sensor(spec.id, "detections"), spec.detection_rate,
                                  0.0, _uav_detections_emit(uav)))
        if spec.camera is not None:
            camera = CameraSim(uav, spec.camera, seed)
            sources.append(Source(topics.sensor(spec.id, "frames"), spec.camera.rate_hz,
                                  0.0, camera.payload))
    return sources


def schedule(sources: list[Source], duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Times and source indices of every event before ``duration``, in order."""
    times, owners = [], []
    for index, source in enumerate(sources):
        # k / rate rather than a running sum: no drift, and 3 / 5 is exactly 0.6.
        count = int(np.ceil((duration - source.phase) * source.rate)) + 1
        t = source.phase + np.arange(max(count, 0)) / source.rate
        t = t[t < duration]
        times.append(t)
        owners.append(np.full(t.size, index))
    t_all, o_all = np.concatenate(times), np.concatenate(owners)
    order = np.lexsort((o_all, t_all))
    return t_all[order], o_all[order]


class World:
    """The target population, advanced to each event time with decisions on the way.

    The field itself only ever stands at decision ticks; a snapshot at ``t``
    moves it from the last tick in one step and back. So the truth at ``t`` does
    not depend on which other times were sampled: the stream without frames, the
    frames alone and both together all see the same targets, to the bit.
    """

    def __init__(self, scenario: Scenario, seed: int, frame: EnuFrame) -> None:
        self.field = TargetField(scenario.targets, np.random.default_rng(seed))
        self.frame = frame
        self.origin_alt = scenario.origin.alt
        self.now = 0.0
        self._tick = 0.0
        self._decisions = 1

    def advance_to(self, t: float) -> None:
        """Move the truth to scenario time ``t``, deciding at every decision tick passed."""
        while self._decisions * DECISION_PERIOD_S <= t:
            tick = self._decisions * DECISION_PERIOD_S
            self.field.advance(tick - self._tick)
            self.field.decide(DECISION_PERIOD_S)
            self._tick = tick
            self._decisions += 1
        self.now = t

    def snapshot(self) -> Snapshot:
        """The truth as it stands now."""
        f = self.field
        at_tick = f.pos, f.vel, f.omega
        f.advance(self.now - self._tick)  # rebinds the arrays, never writes into them
        try:
            return Snapshot(f, self.frame, self.origin_alt)
        finally:
            f.pos, f.vel, f.omega = at_tick


def status_messages(scenario: Scenario, ts: float, online: bool = True) -> list[Message]:
    """The retained status message of every sensor."""
    kinds = [(r.id, "radar") for r in scenario.radars] + [(u.id, "uav") for u in scenario.uavs]
    return [(ts, topics.sensor(sensor_id, "status"),
             pack({"ts": ts, "online": online, "kind": kind})) for sensor_id, kind in kinds]


VELOCITY_KEYS = ("vn", "ve", "vu")


def faster(message: dict[str, Any], speed: float) -> dict[str, Any]:
    """``message`` of a world ``speed`` times faster: its velocities (and truth's) times ``speed``.

    A stream stamped ``speed`` times faster than scenario time moves every target
    and platform that much faster; the velocities it reports must agree with its
    positions, or a friend track extrapolated from them would fall behind.
    """
    if speed == 1.0:
        return message

    def scaled(fields: dict[str, Any]) -> dict[str, Any]:
        return {k: v * speed if k in VELOCITY_KEYS else v for k, v in fields.items()}

    out = scaled(message)
    if "targets" in out:
        out["targets"] = [scaled(target) for target in out["targets"]]
    return out


def _build(emit: Emit, ts: float, seq: int, t: float, snap: Snapshot, speed: float) -> bytes:
    return pack(faster(emit(ts, seq, t, snap), speed))


def _constant(payload: bytes) -> bytes:
    return payload


def pending(scenario: Scenario, seed: int | None = None, start_ts: float = DEFAULT_START_TS,
            part: Part = "all", speed: float = 1.0) -> Iterator[Pending]:
    """Yield every message of the scenario in time order, each built only on demand.

    ``part`` selects the messages: ``"frames"`` and ``"rest"`` split the stream in
    two that merge back into ``"all"`` (each part keeps its own truth, advanced the
    same way, so a frame sees the same targets whichever stream renders it).
    ``speed`` is scenario seconds per second of the timestamps: scenario time
    ``t`` is stamped ``start_ts + t / speed``, and velocities are scaled to match.
    """
    seed = scenario.seed if seed is None else seed
    o = scenario.origin
    frame = EnuFrame(o.lat, o.lon, o.alt)
    world = World(scenario, seed, frame)
    sources = [s for s in build_sources(scenario, seed, frame)
               if part == "all" or s.is_frames == (part == "frames")]
    if part != "frames":
        for ts, topic, payload in status_messages(scenario, start_ts):
            yield Pending(ts, topic, 0.0, partial(_constant, payload))
    if not sources:
        return
    seqs = [0] * len(sources)
    snap, snap_t = world.snapshot(), 0.0
    times, owners = schedule(sources, scenario.duration_s)
    for t, owner in zip(times.tolist(), owners.tolist(), strict=True):
        if t != snap_t:
            world.advance_to(t)
            snap, snap_t = world.snapshot(), t
        source = sources[owner]
        ts = start_ts + t / speed
        yield Pending(ts, source.topic, 1.0 / (source.rate * speed),
                      partial(_build, source.emit, ts, seqs[owner], t, snap, speed))
        seqs[owner] += 1


def generate(scenario: Scenario, seed: int | None = None,
             start_ts: float = DEFAULT_START_TS, part: Part = "all",
             speed: float = 1.0) -> Iterator[Message]:
    """Yield ``(time, topic, payload)`` for the whole scenario in time order.

    ``time`` is the epoch time of the message (``start_ts`` plus scenario time over
    ``speed``), equal to the ``ts`` inside the payload.
    """
    for message in pending(scenario, seed, start_ts, part, speed):
        yield message.ts, message.topic, message.build()


def write_recording(scenario: Scenario, path: str | Path, seed: int | None = None,
                    start_ts: float = DEFAULT_START_TS) -> int:
    """Write the generated stream to a recording with ``t_received`` = message time."""
    with RecordingWriter(path) as writer:
        writer.write_all(generate(scenario, seed, start_ts))
        return writer.count
