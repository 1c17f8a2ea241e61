"""Typed hub configuration, loaded from TOML and closed to unknown keys.

A bad file raises ConfigError naming the key path (``$.sensors[2].nation``)
and the problem. Secrets are never in the file itself: the broker password is
read from the environment variable or file the config names.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from hub.errors import ConfigError
from hub.geo import EnuFrame
from hub.messages import CLASSES
from hub.topics import ID_PATTERN

Id = Annotated[str, Meta(pattern=f"^{ID_PATTERN.pattern}$")]
Nation = Annotated[str, Meta(pattern="^[A-Z]{2,3}$")]
Marking = Annotated[str, Meta(pattern="^[A-Z0-9][A-Z0-9 _/-]{0,63}$")]
SensorKind = Literal["radar", "uav", "camera", "acoustic", "ground"]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0)]
LatLon = tuple[Latitude, Longitude]
# The upper bounds keep inf (valid TOML) out; NaN fails every bound.
Positive = Annotated[float, Meta(gt=0.0, le=1e9)]
NonNegative = Annotated[float, Meta(ge=0.0, le=1e9)]

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "hub.toml"
DEFAULT_SCENARIO = DEFAULT_CONFIG.parent / "scenarios" / "default.toml"


class Base(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Config section: frozen and closed to unknown keys."""


class Origin(Base, frozen=True, kw_only=True):
    """Mission origin: the centre of the local East-North-Up frame."""

    lat: Latitude
    lon: Longitude
    alt: Annotated[float, Meta(ge=-1_000.0, le=100_000.0)] = 0.0

    def frame(self) -> EnuFrame:
        """The mission's local East-North-Up frame, centred here."""
        return EnuFrame(self.lat, self.lon, self.alt)


class Mission(Base, frozen=True, kw_only=True):
    """What the mission is called and where it is."""

    name: str = "mission"
    origin: Origin


class ClientTls(Base, frozen=True, kw_only=True):
    """TLS to the broker with a client certificate; the broker's host name is checked.

    ``certfile`` and ``keyfile`` may hold ``{id}``, replaced by each client's id (the
    simulators run one unit per certificate).
    """

    cafile: str
    certfile: str
    keyfile: str


class Broker(Base, frozen=True, kw_only=True):
    """How to reach the MQTT broker."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 1883
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: Id = "hub"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    keepalive: Annotated[int, Meta(ge=5, le=3600)] = 30
    session_expiry: Annotated[int, Meta(ge=0)] = 3600
    max_queued_messages: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000
    tls: ClientTls | None = None

    def password(self) -> str | None:
        """Read the broker password from the configured environment variable or file."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"$.broker.password_env: variable {self.password_env} is not set")
            return value
        if self.password_file:
            try:
                return Path(self.password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"$.broker.password_file: cannot read: {exc.strerror}") from exc
        return None


class SecretSource(Base, frozen=True, kw_only=True):
    """Where one broker identity's password comes from: an environment variable or a file."""

    env: str | None = None
    file: str | None = None

    def read(self, where: str) -> str:
        """Return the secret; ``where`` names the key in errors (never the value)."""
        if (self.env is None) == (self.file is None):
            raise ConfigError(f"{where}: give exactly one of env or file")
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"{where}.env: variable {self.env} is not set")
            return value
        try:
            return Path(str(self.file)).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}.file: cannot read: {exc.strerror}") from exc


class BrokerTls(Base, frozen=True, kw_only=True):
    """A TLS listener whose clients present certificates signed by ``cafile``."""

    port: Annotated[int, Meta(ge=1, le=65535)] = 8883
    host: str | None = None
    cafile: str
    certfile: str
    keyfile: str
    tls_version: Literal["tlsv1.2", "tlsv1.3"] = "tlsv1.2"
    use_identity_as_username: bool = True


class BrokerServer(Base, frozen=True, kw_only=True):
    """The Mosquitto that ``hub broker-config`` writes a config for (docs/ARCHITECTURE.md)."""

    persistence: bool = True
    truth_identity: Id = "sim-truth"
    recorder_identity: Id = "hub-recorder"
    monitor_identity: Id = "hub-monitor"
    passwords: dict[str, SecretSource] = {}
    tls: BrokerTls | None = None


class Ingest(Base, frozen=True, kw_only=True):
    """Limits applied to inbound messages."""

    max_payload_bytes: Annotated[int, Meta(ge=1024)] = 1_048_576
    max_frame_bytes: Annotated[int, Meta(ge=1024)] = 16_777_216
    max_future_s: NonNegative = 5.0
    max_age_s: Positive = 86_400.0


class Fusion(Base, frozen=True, kw_only=True):
    """Tracker parameters (see docs/ARCHITECTURE.md for their meaning)."""

    reorder_window_s: NonNegative = 0.5
    process_noise: Positive = 3.0
    quiet_noise: Positive = 0.3
    model_switch_rate: Positive = 0.03
    init_speed_sigma: Positive = 15.0
    gate_chi2: Positive = 13.8
    confirm_m: Annotated[int, Meta(ge=1)] = 3
    confirm_n: Annotated[int, Meta(ge=1, le=32)] = 5
    tentative_max_misses: Annotated[int, Meta(ge=1)] = 3
    delete_after_s: Positive = 8.0
    max_position_sigma: Positive = 300.0
    friend_timeout_s: Positive = 10.0


class Publish(Base, frozen=True, kw_only=True):
    """When pictures go out."""

    interval_s: NonNegative = 1.0
    full_every_s: Positive = 10.0
    status_every_s: Positive = 5.0


class Labels(Base, frozen=True, kw_only=True):
    """The mission's marking scheme, in the spirit of STANAG 4774."""

    policy: Marking = "MISSION"
    classifications: list[Marking] = msgspec.field(default_factory=lambda: [
        "UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET"])
    """Lowest first: a fused track carries the highest of its sources' levels."""


class SourceLabel(Base, frozen=True, kw_only=True):
    """The marking of one source's data (default: the lowest classification)."""

    classification: Marking | None = None
    caveats: list[Marking] = []


class CameraNoise(Base, frozen=True, kw_only=True):
    """One-sigma errors of a camera's reported pose (``hub.ingest.camera.PoseNoise``).

    Pixels, angles in degrees, platform altitude in metres. In ``[imagery.pose_noise]``
    every field has a default; in a sensor's ``[sensors.camera]`` only the fields
    given override the mission-wide ones, so each unit's covariance stays honest.
    """

    sigma_px: Positive | None = None
    sigma_heading: NonNegative | None = None
    sigma_pitch: NonNegative | None = None
    sigma_roll: NonNegative | None = None
    sigma_az: NonNegative | None = None
    sigma_el: NonNegative | None = None
    sigma_alt: NonNegative | None = None

    def over(self, base: CameraNoise) -> CameraNoise:
        """Return ``base`` with every field this one sets replaced."""
        given = {f: getattr(self, f) for f in self.__struct_fields__
                 if getattr(self, f) is not None}
        return msgspec.structs.replace(base, **given)


DEFAULT_CAMERA_NOISE = CameraNoise(sigma_px=1.0, sigma_heading=0.5, sigma_pitch=0.2,
                                   sigma_roll=0.2, sigma_az=0.2, sigma_el=0.2, sigma_alt=5.0)


class Imagery(Base, frozen=True, kw_only=True):
    """Camera frames to detections: the worker pool and the georeferencing defaults."""

    workers: Annotated[int, Meta(ge=0, le=256)] | None = None
    """Worker processes; None: cores - 1 (at least 1); 0: in the hub's process (debugging)."""
    max_pixels: Annotated[int, Meta(ge=1, le=16_384 * 16_384)] = 3840 * 2160
    reduce: Literal[1, 2, 4, 8] = 2
    terrain_height: Annotated[float, Meta(ge=-1_000.0, le=10_000.0)] | None = None
    """Ground height, metres above the WGS84 ellipsoid; None: the mission origin's."""
    max_range_m: Positive = 20_000.0
    queue_per_sensor: Annotated[int, Meta(ge=1, le=1_000)] = 1
    pose_noise: CameraNoise = DEFAULT_CAMERA_NOISE

    def worker_count(self) -> int:
        """Worker processes to start: the configured number or cores - 1, at least 1."""
        if self.workers is not None:
            return self.workers
        return max((os.cpu_count() or 2) - 1, 1)

    def noise_for(self, sensor: Sensor) -> CameraNoise:
        """The pose noise of ``sensor``'s camera: its overrides, the mission's, the defaults."""
        noise = self.pose_noise.over(DEFAULT_CAMERA_NOISE)
        return noise if sensor.camera is None else sensor.camera.over(noise)


class Sensor(Base, frozen=True, kw_only=True):
    """A registered field unit and the partners its data is released to."""

    id: Id
    nation: Nation
    kind: SensorKind
    release_to: list[Id] = []
    """Shorthand for an unrestricted release by the sensor's nation (partners or groups)."""
    label: SourceLabel = SourceLabel()
    platform: bool | None = None
    camera: CameraNoise | None = None

    @property
    def is_platform(self) -> bool:
        """Whether this unit's telemetry makes a friend track (UAVs by default)."""
        return self.kind == "uav" if self.platform is None else self.platform


class Partner(Base, frozen=True, kw_only=True):
    """A partner nation or organisation that subscribes to a picture."""

    id: Id
    name: str
    nation: Nation | None = None
    clearance: Marking | None = None
    """Highest classification the partner may receive (default: all of them)."""


class Release(Base, frozen=True, kw_only=True):
    """A contributing nation's rule: which of its sources go to whom, and how.

    For a (sensor, partner) pair the first release of the sensor's nation that
    selects the sensor and names the partner applies; a partner's view of a
    fused track is the intersection of the rules of every source in it.
    """

    by: Nation
    to: list[Id]
    sensors: list[Id] = []
    kinds: list[SensorKind] = []
    precision_m: Annotated[float, Meta(ge=0.0, le=100_000.0)] = 0.0
    delay_s: Annotated[float, Meta(ge=0.0, le=3_600.0)] = 0.0
    area: list[LatLon] = []
    hide_classes: list[str] = []
    strip_attribution: bool = False

    def selects(self, sensor: Sensor) -> bool:
        """Whether this release covers ``sensor`` (its nation's, by id or kind; all if neither)."""
        if sensor.nation != self.by:
            return False
        if not (self.sensors or self.kinds):
            return True
        return sensor.id in self.sensors or sensor.kind in self.kinds


class HubConfig(Base, frozen=True, kw_only=True):
    """The whole hub configuration."""

    mission: Mission
    broker: Broker = Broker()
    broker_server: BrokerServer = BrokerServer()
    ingest: Ingest = Ingest()
    fusion: Fusion = Fusion()
    publish: Publish = Publish()
    imagery: Imagery = Imagery()
    sensors: list[Sensor] = []
    partners: list[Partner] = []
    labels: Labels = Labels()
    groups: dict[Id, list[Id]] = {}
    """Named sets of partners (``UN``, ``AU``, ``NATO``) a release may name."""
    releases: list[Release] = []

    def sensor_index(self) -> dict[str, int]:
        """Map each sensor id to its position in ``sensors``."""
        return {s.id: i for i, s in enumerate(self.sensors)}


def _registry_problems(config: HubConfig) -> list[str]:
    problems: list[str] = []
    partner_ids = {p.id for p in config.partners}
    for what, ids in (("sensors", [s.id for s in config.sensors]),
                      ("partners", [p.id for p in config.partners])):
        seen: set[str] = set()
        for i, item_id in enumerate(ids):
            if item_id in seen:
                problems.append(f"$.{what}[{i}].id: duplicate id {item_id!r}")
            seen.add(item_id)
    if "mission" in partner_ids:
        problems.append("$.partners: 'mission' is reserved for the mission picture")
    return problems + _label_problems(config) + _release_problems(config)


def _audience_problems(where: str, names: list[str], config: HubConfig) -> list[str]:
    known = {p.id for p in config.partners} | set(config.groups)
    return [f"{where}[{j}]: unknown partner or group {name!r}"
            for j, name in enumerate(names) if name not in known]


def _label_problems(config: HubConfig) -> list[str]:
    levels = config.labels.classifications
    problems = [] if levels and len(set(levels)) == len(levels) else [
        "$.labels.classifications: needs at least one level, each named once"]
    partner_ids = {p.id for p in config.partners}
    for name, members in config.groups.items():
        if name in partner_ids:
            problems.append(f"$.groups.{name}: a group may not share a partner's id")
        problems += [f"$.groups.{name}[{j}]: unknown partner {m!r}"
                     for j, m in enumerate(members) if m not in partner_ids]
    for i, sensor in enumerate(config.sensors):
        problems += _audience_problems(f"$.sensors[{i}].release_to", sensor.release_to, config)
        level = sensor.label.classification
        if level is not None and level not in levels:
            problems.append(f"$.sensors[{i}].label.classification: unknown level {level!r}; "
                            f"expected one of {', '.join(levels)}")
    for i, partner in enumerate(config.partners):
        if partner.clearance is not None and partner.clearance not in levels:
            problems.append(f"$.partners[{i}].clearance: unknown level {partner.clearance!r}; "
                            f"expected one of {', '.join(levels)}")
    return problems


def _release_problems(config: HubConfig) -> list[str]:
    problems: list[str] = []
    nation_of = {s.id: s.nation for s in config.sensors}
    for i, release in enumerate(config.releases):
        where = f"$.releases[{i}]"
        problems += _audience_problems(f"{where}.to", release.to, config)
        for j, sensor_id in enumerate(release.sensors):
            if sensor_id not in nation_of:
                problems.append(f"{where}.sensors[{j}]: unknown sensor {sensor_id!r}")
            elif nation_of[sensor_id] != release.by:
                problems.append(f"{where}.sensors[{j}]: {sensor_id} belongs to "
                                f"{nation_of[sensor_id]}, and a nation releases only its own")
        problems += [f"{where}.hide_classes[{j}]: unknown class {c!r}"
                     for j, c in enumerate(release.hide_classes) if c not in CLASSES]
        if release.area and (len(release.area) < 3 or _ring_area(release.area) == 0.0):
            problems.append(f"{where}.area: a polygon needs at least 3 corners enclosing an area")
        selected = [s for s in config.sensors if release.selects(s)]
        if not selected:
            problems.append(f"{where}: selects no sensor of {release.by}")
        problems += [f"{where}: {s.id} has release_to as well; give its release in one place"
                     for s in selected if s.release_to]
    return problems


def _ring_area(ring: list[tuple[float, float]]) -> float:
    """Twice the signed area of a lat/lon ring (shoelace), 0 for a degenerate one."""
    lat = [p[0] for p in ring]
    lon = [p[1] for p in ring]
    return sum(lon[k - 1] * lat[k] - lon[k] * lat[k - 1] for k in range(len(ring)))


S = TypeVar("S", bound=Struct)


def convert_checked(data: dict[str, object], kind: type[S],
                    problems: Callable[[S], list[str]]) -> S:
    """Validate ``data`` as ``kind``, then run the cross-field ``problems`` check."""
    try:
        value = msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise ConfigError(error_with_key_path(str(exc))) from exc
    found = problems(value)
    if found:
        raise ConfigError("\n".join(found))
    return value


def load_toml(path: str | Path, parse: Callable[[dict[str, object]], S]) -> S:
    """Read a TOML file and ``parse`` it; every error names the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def parse_config(data: dict[str, object]) -> HubConfig:
    """Validate an already-parsed TOML document as a HubConfig."""
    return convert_checked(data, HubConfig, _registry_problems)


def load_config(path: str | Path) -> HubConfig:
    """Load and validate a TOML config file, raising ConfigError naming key and problem."""
    return load_toml(path, parse_config)


def error_with_key_path(message: str) -> str:
    """Turn msgspec's 'problem - at `$.key`' into '$.key: problem'."""
    problem, sep, where = message.rpartition(" - at ")
    return f"{where.strip('`')}: {problem}" if sep else message
