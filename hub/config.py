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
from hub.topics import ID_PATTERN

Id = Annotated[str, Meta(pattern=f"^{ID_PATTERN.pattern}$")]
Nation = Annotated[str, Meta(pattern="^[A-Z]{2,3}$")]
# The upper bounds keep inf (valid TOML) out; NaN fails every bound.
Positive = Annotated[float, Meta(gt=0.0, le=1e9)]
NonNegative = Annotated[float, Meta(ge=0.0, le=1e9)]

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "hub.toml"


class Base(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Config section: frozen and closed to unknown keys."""


class Origin(Base, frozen=True, kw_only=True):
    """Mission origin: the centre of the local East-North-Up frame."""

    lat: Annotated[float, Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, Meta(ge=-180.0, le=180.0)]
    alt: Annotated[float, Meta(ge=-1_000.0, le=100_000.0)] = 0.0


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


class Sensor(Base, frozen=True, kw_only=True):
    """A registered field unit and the partners its data is released to."""

    id: Id
    nation: Nation
    kind: Literal["radar", "uav", "camera", "acoustic", "ground"]
    release_to: list[Id] = []
    platform: bool | None = None

    @property
    def is_platform(self) -> bool:
        """Whether this unit's telemetry makes a friend track (UAVs by default)."""
        return self.kind == "uav" if self.platform is None else self.platform


class Partner(Base, frozen=True, kw_only=True):
    """A partner nation or organisation that subscribes to a picture."""

    id: Id
    name: str
    nation: Nation | None = None


class HubConfig(Base, frozen=True, kw_only=True):
    """The whole hub configuration."""

    mission: Mission
    broker: Broker = Broker()
    broker_server: BrokerServer = BrokerServer()
    ingest: Ingest = Ingest()
    fusion: Fusion = Fusion()
    publish: Publish = Publish()
    sensors: list[Sensor] = []
    partners: list[Partner] = []

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
    for i, sensor in enumerate(config.sensors):
        for j, partner in enumerate(sensor.release_to):
            if partner not in partner_ids:
                problems.append(f"$.sensors[{i}].release_to[{j}]: unknown partner {partner!r}")
    if "mission" in partner_ids:
        problems.append("$.partners: 'mission' is reserved for the mission picture")
    return problems


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
