"""Typed simulation scenarios, loaded from TOML and closed to unknown keys.

Geometry of the target area and of UAV patterns is in metres east and north of
the mission origin; fixed sensors (radars) stand at surveyed lat/lon/alt. A bad
file raises ConfigError naming the key path (``$.radars[1].pd``) and the problem,
exactly like the hub's own config (hub/config.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from hub.config import Base, Id, NonNegative, Origin, Positive, convert_checked, load_toml
from hub.errors import ConfigError
from hub.ingest.camera import PoseNoise
from hub.messages import CLASSES

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "config" / "scenarios"

Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Range = tuple[NonNegative, NonNegative]


class EastNorth(Base, frozen=True, kw_only=True):
    """A point in metres east and north of the mission origin."""

    east: float = 0.0
    north: float = 0.0


class Area(Base, frozen=True, kw_only=True):
    """The rectangle targets live in, centred ``east, north`` of the origin."""

    east: float = 0.0
    north: float = 0.0
    half_width: Positive = 5_000.0
    half_height: Positive = 5_000.0


class ClassSpec(Base, frozen=True, kw_only=True):
    """How targets of one class move; ``weight`` is its share of the population."""

    weight: NonNegative = 1.0
    speed: Range = (1.0, 2.0)
    alt: Range = (0.0, 0.0)
    turn_rate: Annotated[float, Meta(ge=0.0, le=90.0)] = 10.0
    turn_probability: NonNegative = 0.05
    turn_duration: Range = (3.0, 10.0)


class Targets(Base, frozen=True, kw_only=True):
    """The truth population: initial count, class mix, births and deaths."""

    count: Annotated[int, Meta(ge=0, le=100_000)]
    classes: dict[str, ClassSpec]
    area: Area = Area()
    birth_rate: NonNegative = 0.0
    death_rate: NonNegative = 0.0


class Position(Base, frozen=True, kw_only=True):
    """A surveyed WGS84 position."""

    lat: Annotated[float, Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, Meta(ge=-180.0, le=180.0)]
    alt: float = 0.0


class Radar(Base, frozen=True, kw_only=True):
    """A ground surveillance radar reporting polar detections once per scan."""

    id: Id
    position: Position
    scan_period_s: Positive = 1.0
    min_range: NonNegative = 50.0
    max_range: Positive = 8_000.0
    sigma_range: Positive = 10.0
    sigma_bearing: Annotated[float, Meta(gt=0.0, le=45.0)] = 0.3
    pd: Probability = 0.9
    clutter_mean: NonNegative = 1.0
    classify_probability: Probability = 0.1
    class_conf: Probability = 0.4


class Orbit(Base, tag_field="kind", tag="orbit", frozen=True, kw_only=True):
    """A circular orbit around ``center``."""

    center: EastNorth = EastNorth()
    radius: Positive = 1_000.0
    clockwise: bool = True
    start_angle: float = 0.0


class Lawnmower(Base, tag_field="kind", tag="lawnmower", frozen=True, kw_only=True):
    """East-west survey legs ``spacing`` apart over a box, flown back and forth."""

    west: float
    south: float
    east: float
    north: float
    spacing: Positive | None = None


_NOISE = PoseNoise()
Sigma = Annotated[float, Meta(ge=0.0, le=90.0)]


class CameraPoseNoise(Base, frozen=True, kw_only=True):
    """One-sigma errors of the pose a frame reports (``hub.ingest.camera.PoseNoise`` names)."""

    sigma_heading: Sigma = _NOISE.sigma_heading
    sigma_pitch: Sigma = _NOISE.sigma_pitch
    sigma_roll: Sigma = _NOISE.sigma_roll
    sigma_az: Sigma = _NOISE.sigma_az
    sigma_el: Sigma = _NOISE.sigma_el
    sigma_alt: Annotated[float, Meta(ge=0.0, le=1_000.0)] = _NOISE.sigma_alt

    def pose_noise(self) -> PoseNoise:
        """The same sigmas as the camera model's ``PoseNoise``."""
        return PoseNoise(**msgspec.structs.asdict(self))


class CameraGimbal(Base, frozen=True, kw_only=True):
    """Gimbal angles in degrees: ``az`` right of the nose, ``el`` negative down (-90 nadir)."""

    az: Annotated[float, Meta(ge=-360.0, le=360.0)] = 0.0
    el: Annotated[float, Meta(ge=-180.0, le=180.0)] = -90.0


class UavCamera(Base, frozen=True, kw_only=True):
    """A UAV's camera: rendered EO or IR frames on ``sensors/{id}/frames``."""

    band: Literal["eo", "ir"] = "ir"
    hfov: Annotated[float, Meta(gt=0.0, lt=180.0)] = 60.0
    width: Annotated[int, Meta(ge=16, le=16_384)] = 1280
    height: Annotated[int, Meta(ge=16, le=16_384)] = 720
    rate_hz: Annotated[float, Meta(gt=0.0, le=30.0)] = 5.0
    format: Literal["jpeg", "png"] = "jpeg"
    quality: Annotated[int, Meta(ge=1, le=100)] = 80
    gimbal: CameraGimbal = CameraGimbal()
    pose_noise: CameraPoseNoise = CameraPoseNoise()


class Uav(Base, frozen=True, kw_only=True):
    """A UAV flying a pattern, with an on-board detector, a camera, or both.

    ``detector = false`` makes a camera-only UAV: telemetry and frames, no
    detection batches (the hub must find the targets in the frames itself).
    """

    id: Id
    pattern: Orbit | Lawnmower
    altitude: Positive = 300.0
    speed: Positive = 25.0
    footprint_shape: Literal["circle", "square"] = "circle"
    footprint_radius: Positive = 250.0
    pd: Probability = 0.85
    sigma: Positive = 8.0
    confusion: Probability = 0.1
    clutter_mean: NonNegative = 0.2
    telemetry_rate: Annotated[float, Meta(gt=0.0, le=100.0)] = 5.0
    detection_rate: Annotated[float, Meta(gt=0.0, le=100.0)] = 2.0
    battery_drain_per_hour: NonNegative = 20.0
    detector: bool = True
    camera: UavCamera | None = None


class Scenario(Base, frozen=True, kw_only=True):
    """A whole simulation: where, how long, what moves and who looks at it."""

    name: str
    seed: Annotated[int, Meta(ge=0)] = 0
    duration_s: Positive
    origin: Origin
    targets: Targets
    radars: list[Radar] = msgspec.field(default_factory=list)
    uavs: list[Uav] = msgspec.field(default_factory=list)
    truth_rate: Annotated[float, Meta(gt=0.0, le=100.0)] = 1.0

    @property
    def sensor_ids(self) -> list[str]:
        """Every sensor id, radars first."""
        return [r.id for r in self.radars] + [u.id for u in self.uavs]

    def with_duration(self, duration_s: float) -> Scenario:
        """This scenario cut short to at most ``duration_s`` seconds."""
        if not duration_s > 0.0:
            raise ConfigError(f"duration must be positive, not {duration_s}")
        return msgspec.structs.replace(self, duration_s=min(duration_s, self.duration_s))


def _range_problems(path: str, value: tuple[float, float]) -> list[str]:
    return [f"{path}: minimum {value[0]} exceeds maximum {value[1]}"] if value[0] > value[1] else []


def _problems(s: Scenario) -> list[str]:
    problems: list[str] = []
    for name, spec in s.targets.classes.items():
        where = f"$.targets.classes.{name}"
        if name not in CLASSES:
            problems.append(f"{where}: unknown class; expected one of {', '.join(CLASSES)}")
        for key in ("speed", "alt", "turn_duration"):
            problems += _range_problems(f"{where}.{key}", getattr(spec, key))
    if not s.targets.classes or sum(c.weight for c in s.targets.classes.values()) <= 0.0:
        problems.append("$.targets.classes: needs at least one class with a positive weight")
    for i, radar in enumerate(s.radars):
        if radar.min_range >= radar.max_range:
            problems.append(f"$.radars[{i}].max_range: must exceed min_range")
    for i, uav in enumerate(s.uavs):
        p = uav.pattern
        if isinstance(p, Lawnmower) and (p.west >= p.east or p.south >= p.north):
            problems.append(f"$.uavs[{i}].pattern: box needs west < east and south < north")
        if not uav.detector and uav.camera is None:
            problems.append(f"$.uavs[{i}].detector: a UAV without a detector needs a camera")
    seen: set[str] = set()
    for i, sensor_id in enumerate(s.sensor_ids):
        where = f"$.radars[{i}]" if i < len(s.radars) else f"$.uavs[{i - len(s.radars)}]"
        if sensor_id in seen:
            problems.append(f"{where}.id: duplicate sensor id {sensor_id!r}")
        seen.add(sensor_id)
    return problems


def parse_scenario(data: dict[str, object]) -> Scenario:
    """Validate an already-parsed TOML document as a Scenario."""
    return convert_checked(data, Scenario, _problems)


def resolve_scenario(name_or_path: str | Path) -> Path:
    """Return the file for a path, or for a bare name in config/scenarios/."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    return SCENARIO_DIR / f"{path}.toml"


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file (or a name in config/scenarios/)."""
    return load_toml(resolve_scenario(path), parse_scenario)
