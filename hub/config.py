"""Typed hub configuration, loaded from TOML and closed to unknown keys.

A bad file raises ConfigError naming the key path (``$.sensors[2].nation``)
and the problem. Secrets are never in the file itself: the broker password is
read from the environment variable or file the config names.
"""

from __future__ import annotations

import os
import secrets
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
SensorKind = Literal["radar", "uav", "camera", "acoustic", "ground", "team"]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0)]
LatLon = tuple[Latitude, Longitude]
# The upper bounds keep inf (valid TOML) out; NaN fails every bound.
Positive = Annotated[float, Meta(gt=0.0, le=1e9)]
NonNegative = Annotated[float, Meta(ge=0.0, le=1e9)]


def doc(text: str) -> Meta:
    """A field's one-line description: shown by ``hub config docs`` and in docs/CONFIG.md."""
    return Meta(description=text)


DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "hub.toml"
DEFAULT_SCENARIO = DEFAULT_CONFIG.parent / "scenarios" / "default.toml"


class Base(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Config section: frozen and closed to unknown keys."""


class Origin(Base, frozen=True, kw_only=True):
    """Mission origin: the centre of the local East-North-Up frame."""

    lat: Annotated[Latitude, doc("Latitude of the origin, degrees (WGS84).")]
    lon: Annotated[Longitude, doc("Longitude of the origin, degrees (WGS84).")]
    alt: Annotated[float, Meta(ge=-1_000.0, le=100_000.0), doc(
        "Height of the origin above the WGS84 ellipsoid, metres.")] = 0.0

    def frame(self) -> EnuFrame:
        """The mission's local East-North-Up frame, centred here."""
        return EnuFrame(self.lat, self.lon, self.alt)


class Mission(Base, frozen=True, kw_only=True):
    """What the mission is called and where it is."""

    name: Annotated[str, doc("The mission's name, for people.")] = "mission"
    origin: Annotated[Origin, doc(
        "Centre of the local East-North-Up frame every track is fused in.")]
    id_key_file: Annotated[str | None, doc(
        "File holding the key friend track ids are derived from (created, mode 0600, if "
        "missing); none: a new key per start, so friend ids change when the hub restarts. "
        "Give every hub of the mission the same file.")] = None


class ClientTls(Base, frozen=True, kw_only=True):
    """TLS to the broker with a client certificate; the broker's host name is checked.

    ``certfile`` and ``keyfile`` may hold ``{id}``, replaced by each client's id (the
    simulators run one unit per certificate).
    """

    cafile: Annotated[str, doc("CA certificate (PEM) the broker's certificate must chain to.")]
    certfile: Annotated[str, doc(
        "This client's certificate (PEM); `{id}` becomes the client's id.")]
    keyfile: Annotated[str, doc(
        "The certificate's private key (PEM); `{id}` becomes the client's id.")]


class Broker(Base, frozen=True, kw_only=True):
    """How to reach the MQTT broker."""

    host: Annotated[str, doc("Broker host name or address.")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535), doc(
        "Broker TCP port (the TLS listener's port when `tls` is set).")] = 1883
    protocol: Annotated[Literal["5", "3.1.1"], doc("MQTT version the hub speaks.")] = "5"
    client_id: Annotated[Id, doc(
        "The hub's MQTT client id; with the generated broker config it is also its user.")] = "hub"
    username: Annotated[str | None, doc("User name the hub logs in with; none: anonymous.")] = None
    password_env: Annotated[str | None, doc(
        "Environment variable holding the hub's broker password.")] = None
    password_file: Annotated[str | None, doc(
        "File holding the hub's broker password (one line).")] = None
    keepalive: Annotated[int, Meta(ge=5, le=3600), doc(
        "Seconds between MQTT keepalive pings.")] = 30
    session_expiry: Annotated[int, Meta(ge=0), doc(
        "MQTT 5: seconds the broker keeps the hub's session (and its queued messages) "
        "after a disconnect.")] = 3600
    max_queued_messages: Annotated[int, Meta(ge=1, le=1_000_000), doc(
        "Outgoing QoS 1 messages the hub holds while the broker is away or slow (in "
        "flight and waiting); beyond it new ones are dropped and counted "
        "(`sink_dropped.mqtt`).")] = 1000
    tls: Annotated[ClientTls | None, doc(
        "Connect over TLS with a client certificate; none: plain TCP.")] = None
    failover: Annotated[list[str], doc(
        "Further brokers as `\"host:port\"` (other nodes of a cluster): each failed "
        "connect moves to the next, after `host:port`, round the list.")] = []

    def endpoints(self) -> list[tuple[str, int]]:
        """``(host, port)`` of ``host:port`` and then of every failover entry."""
        return [(self.host, self.port), *(parse_endpoint(entry) for entry in self.failover)]

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


def parse_endpoint(text: str) -> tuple[str, int]:
    """``"host:port"`` (``"[v6]:port"`` for an IPv6 address) as ``(host, port)``; ValueError."""
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or any(c.isspace() for c in host) or not port.isdigit():
        raise ValueError(f"{text!r} is not host:port")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port {port} is not 1-65535")
    return host, int(port)


def _broker_problems(config: HubConfig) -> list[str]:
    problems = []
    for i, entry in enumerate(config.broker.failover):
        try:
            parse_endpoint(entry)
        except ValueError as exc:
            problems.append(f"$.broker.failover[{i}]: {exc}")
    return problems


KEY_BYTES = 32


def key_file(path: str, where: str) -> bytes:
    """The key in ``path`` (hex, one line), written there (mode 0600) first if missing.

    ``where`` names the config key in errors; the key itself is never shown.
    """
    target = Path(path)
    try:
        key = bytes.fromhex(target.read_text().strip())
    except FileNotFoundError:
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(key.hex() + "\n")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot create {target}: {exc.strerror}") from exc
        return key
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {target}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{where}: {target} does not hold a hex key") from exc
    if len(key) < KEY_BYTES:
        raise ConfigError(f"{where}: {target} holds a key under {KEY_BYTES} bytes")
    return key


class SecretSource(Base, frozen=True, kw_only=True):
    """Where one broker identity's password comes from: an environment variable or a file."""

    env: Annotated[str | None, doc("Environment variable holding the secret.")] = None
    file: Annotated[str | None, doc("File holding the secret (one line).")] = None

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

    port: Annotated[int, Meta(ge=1, le=65535), doc("Port of the TLS listener.")] = 8883
    host: Annotated[str | None, doc(
        "Address the TLS listener binds; none: as the plain listener.")] = None
    cafile: Annotated[str, doc("CA certificate (PEM) clients' certificates must chain to.")]
    certfile: Annotated[str, doc("The broker's certificate (PEM).")]
    keyfile: Annotated[str, doc("The broker's private key (PEM).")]
    tls_version: Annotated[Literal["tlsv1.2", "tlsv1.3"], doc(
        "Lowest TLS version the listener accepts.")] = "tlsv1.2"
    use_identity_as_username: Annotated[bool, doc(
        "Take the client certificate's CN as the user name (no password on this "
        "listener).")] = True


class BrokerServer(Base, frozen=True, kw_only=True):
    """The Mosquitto that ``hub broker-config`` writes a config for (docs/ARCHITECTURE.md)."""

    persistence: Annotated[bool, doc(
        "Mosquitto keeps sessions and retained messages on disk across restarts.")] = True
    truth_identity: Annotated[Id, doc(
        "Identity that may write `sim/truth` (the simulators' ground truth).")] = "sim-truth"
    recorder_identity: Annotated[Id, doc(
        "Identity of `hub record`: reads `sensors/#` and `sim/truth`.")] = "hub-recorder"
    monitor_identity: Annotated[Id, doc(
        "Identity of dashboards: reads `hub/#` only.")] = "hub-monitor"
    operator_identity: Annotated[Id, doc(
        "Identity of the mission's operators: the web console's mission picture, built from "
        "every source; reads `hub/#` on the broker.")] = "hub-operator"
    passwords: Annotated[dict[str, SecretSource], doc(
        "Passwords of chosen identities, by identity; the others are generated into "
        "`credentials.toml`.")] = {}
    tls: Annotated[BrokerTls | None, doc(
        "Add a TLS listener whose clients log in with certificates.")] = None


MIB = 1_048_576.0


class MessageRates(Base, frozen=True, kw_only=True):
    """Messages a second one sensor may send, by its kind; well above what each sends."""

    radar: Annotated[Positive, doc("A radar: a scan a second, or a few.")] = 100.0
    uav: Annotated[Positive, doc(
        "A UAV: telemetry and detections at up to 100 Hz each, frames at up to 30 Hz.")] = 300.0
    camera: Annotated[Positive, doc("A camera post: frames at up to 30 Hz, detections.")] = 100.0
    acoustic: Annotated[Positive, doc("An acoustic sensor: its detections.")] = 100.0
    ground: Annotated[Positive, doc("A ground sensor: its detections.")] = 100.0
    team: Annotated[Positive, doc(
        "A team (a TAK device): positions and spot reports every few seconds.")] = 20.0


class ByteRates(Base, frozen=True, kw_only=True):
    """Payload bytes a second one sensor may send, by its kind; well above what each sends."""

    radar: Annotated[Positive, doc(
        "A radar: scans of thousands of detections, several a second.")] = 8 * MIB
    uav: Annotated[Positive, doc(
        "A UAV: 30 frames a second of 650 KiB (a 1280x720 PNG) and the rest.")] = 32 * MIB
    camera: Annotated[Positive, doc("A camera post: as a UAV.")] = 32 * MIB
    acoustic: Annotated[Positive, doc("An acoustic sensor.")] = 1 * MIB
    ground: Annotated[Positive, doc("A ground sensor.")] = 4 * MIB
    team: Annotated[Positive, doc("A team.")] = 0.25 * MIB


class Budget(Base, frozen=True, kw_only=True):
    """What each registered sensor may send, by its kind (hub.ingest.budget).

    A token bucket per sensor: messages and bytes a second, in bursts of ``burst_s``
    seconds' worth. A message beyond it is dropped before it is decoded, counted
    (`over_budget.{sensor_id}`) and summarised on `hub/deadletter` (code `rate`).
    """

    burst_s: Annotated[Positive, doc(
        "Seconds of its rates a sensor, a TAK connection or a console stream may send at "
        "once.")] = 2.0
    messages_per_s: Annotated[MessageRates, doc(
        "Messages a second one sensor may send, by kind.")] = MessageRates()
    bytes_per_s: Annotated[ByteRates, doc(
        "Payload bytes a second one sensor may send, by kind.")] = ByteRates()

    def of(self, kind: SensorKind) -> tuple[float, float]:
        """Messages and bytes a second a sensor of ``kind`` may send."""
        return float(getattr(self.messages_per_s, kind)), float(getattr(self.bytes_per_s, kind))


class Ingest(Base, frozen=True, kw_only=True):
    """Limits applied to inbound messages."""

    max_payload_bytes: Annotated[int, Meta(ge=1024), doc(
        "Largest telemetry, detections or status payload accepted, bytes.")] = 1_048_576
    max_frame_bytes: Annotated[int, Meta(ge=1024), doc(
        "Largest camera frame payload accepted, bytes.")] = 16_777_216
    max_future_s: Annotated[NonNegative, doc(
        "A measurement time further ahead of the receive clock is refused, seconds.")] = 5.0
    max_age_s: Annotated[Positive, doc(
        "A measurement time older than this behind the receive clock is refused, "
        "seconds.")] = 86_400.0
    budget: Annotated[Budget, doc(
        "Each sensor's messages and bytes a second, by kind: a flooding sensor is "
        "contained.")] = Budget()


class Fusion(Base, frozen=True, kw_only=True):
    """Tracker parameters (see docs/ARCHITECTURE.md for their meaning)."""

    reorder_window_s: Annotated[NonNegative, doc(
        "Seconds a measurement waits so that later-arriving earlier ones are fused first; "
        "later still are counted as late.")] = 0.5
    process_noise: Annotated[Positive, doc(
        "Acceleration noise of the manoeuvre model, m/s² (turns of vehicles and UAVs); "
        "also used for gating.")] = 2.0
    quiet_noise: Annotated[Positive, doc(
        "Acceleration noise of the quiet model, m/s² (walking, driving straight).")] = 0.05
    model_switch_rate: Annotated[Positive, doc(
        "Rate at which a track switches between the quiet and manoeuvre models and from "
        "the stationary model to the quiet one, per second.")] = 0.003
    stop_rate: Annotated[Positive, doc(
        "Rate at which a moving track switches to the stationary model (a vehicle parks, "
        "a person stands), per second.")] = 0.0001
    init_speed_sigma: Annotated[Positive, doc(
        "One-sigma speed of a new track before its velocity is observed, m/s (the quiet "
        "model born fast, and the manoeuvre model).")] = 8.0
    init_slow_speed_sigma: Annotated[Positive, doc(
        "One-sigma speed of a new track in the quiet model born slow (a walker, a vehicle "
        "pulling away), m/s; the likelihoods choose between it and `init_speed_sigma`.")] = 0.5
    gate_chi2: Annotated[Positive, doc(
        "Mahalanobis gate, chi-square with 2 degrees of freedom (13.8: 99.9 %).")] = 13.8
    confirm_m: Annotated[int, Meta(ge=1), doc(
        "M of M-of-N: updates needed to confirm a track.")] = 3
    confirm_n: Annotated[int, Meta(ge=1, le=32), doc(
        "N of M-of-N: the opportunities they must fall within.")] = 4
    tentative_max_misses: Annotated[int, Meta(ge=1), doc(
        "Consecutive misses after which a tentative track is deleted.")] = 3
    delete_after_s: Annotated[Positive, doc(
        "A track with no update for this long is deleted, seconds.")] = 8.0
    radar_miss_limit: Annotated[int, Meta(ge=0), doc(
        "A confirmed track that radars which saw it miss this many scans in a row is "
        "deleted (its target is gone); 0: only `delete_after_s` applies.")] = 6
    max_position_sigma: Annotated[Positive, doc(
        "A track whose position sigma grows past this is deleted, metres.")] = 300.0
    friend_timeout_s: Annotated[Positive, doc(
        "A friend platform silent for this long leaves the picture, seconds.")] = 10.0


class Publish(Base, frozen=True, kw_only=True):
    """When pictures go out."""

    interval_s: Annotated[NonNegative, doc(
        "Seconds between partner pictures (deltas); 0: after every fusion step.")] = 1.0
    full_every_s: Annotated[Positive, doc(
        "Seconds between full pictures, which are also the retained snapshot.")] = 10.0
    status_every_s: Annotated[Positive, doc("Seconds between `hub/status` reports.")] = 5.0


class Recovery(Base, frozen=True, kw_only=True):
    """Crash recovery: a journal of what the hub acknowledged, and checkpoints of its state.

    Every accepted message is journalled before the broker gets its
    acknowledgement; the trackers, reorder window and duplicate checks are
    checkpointed every ``checkpoint_every_s`` and at shutdown. A hub that
    starts loads the checkpoint and replays the journal after it, so a crash
    loses nothing it acknowledged and a track keeps its id.
    """

    enabled: Annotated[bool, doc(
        "Journal and checkpoint `hub run` (never `hub replay`); false: a restart starts "
        "from nothing.")] = True
    dir: Annotated[str, doc(
        "Directory of the journal and checkpoints, one per hub; empty: "
        "`$XDG_STATE_HOME/hub/<broker.client_id>` (`~/.local/state/hub/...`).")] = ""
    checkpoint_every_s: Annotated[float, Meta(ge=0.5, le=3_600.0), doc(
        "Seconds between checkpoints: a restart replays at most this much journal (a "
        "checkpoint of 1,200 tracks costs the loop about 8 ms).")] = 2.0


NatsUrl = Annotated[str, Meta(pattern=r"^(nats|tls)://[^\s/]+:[0-9]{1,5}$")]


class Cluster(Base, frozen=True, kw_only=True):
    """Run as workers of one hub on a NATS cluster (docs/SCALING.md).

    Field units and partners keep speaking MQTT, to any node's MQTT listener
    (``broker`` names the one this process publishes pictures through);
    validated scans travel in a replicated JetStream stream, and each release
    group's tracker is owned by one fusion worker at a time under a lease.
    """

    servers: Annotated[list[NatsUrl], Meta(min_length=1), doc(
        "NATS servers to connect to (`nats://host:port` or `tls://host:port`); any "
        "live one will do, the client moves to another when one dies.")]
    username: Annotated[str | None, doc("NATS user; none: no user.")] = None
    password_env: Annotated[str | None, doc(
        "Environment variable holding the NATS user's password.")] = None
    tls: Annotated[ClientTls | None, doc(
        "TLS to the NATS servers with a client certificate; none: plain TCP.")] = None
    prefix: Annotated[Id, doc(
        "Prefix of this hub's streams, buckets and subjects: two hubs on one cluster "
        "need two prefixes.")] = "hub"
    replicas: Annotated[int, Meta(ge=1, le=5), doc(
        "Copies JetStream keeps of the streams, leases and checkpoints (at most the "
        "number of nodes).")] = 3
    ingest_slots: Annotated[int, Meta(ge=1, le=256), doc(
        "Shares of the sensors, each one persistent MQTT session that one ingest worker at a "
        "time serves: at most this many ingest workers share the work.")] = 4
    lease_ttl_s: Annotated[float, Meta(ge=1.0, le=60.0), doc(
        "Seconds a dead fusion worker holds its groups before a standby may take them; "
        "renewed every third of it.")] = 2.0
    checkpoint_every_s: Annotated[float, Meta(ge=0.2, le=600.0), doc(
        "Seconds between checkpoints of each owned group: a takeover replays at most "
        "this much of the stream.")] = 2.0
    tick_s: Annotated[float, Meta(ge=0.005, le=1.0), doc(
        "Seconds between fusion steps, each one a record in the stream so that every "
        "worker fuses the same steps.")] = 0.05

    def password(self) -> str | None:
        """The NATS password from ``password_env``; ConfigError when it is unset."""
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(f"$.cluster.password_env: environment variable "
                              f"{self.password_env} is not set")
        return value


DEFAULT_LEVELS = ("UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET")


class Labels(Base, frozen=True, kw_only=True):
    """The mission's marking scheme, in the spirit of STANAG 4774."""

    policy: Annotated[Marking, doc("Name of the marking policy every label carries.")] = "MISSION"
    classifications: Annotated[list[Marking], doc(
        "Classification levels, lowest first; a fused track carries the highest of its "
        "sources'.")] = msgspec.field(default_factory=lambda: list(DEFAULT_LEVELS))


class SourceLabel(Base, frozen=True, kw_only=True):
    """The marking of one source's data (default: the lowest classification)."""

    classification: Annotated[Marking | None, doc(
        "The source's classification level; none: the lowest.")] = None
    caveats: Annotated[list[Marking], doc(
        "Caveats every track this source contributes to carries.")] = []


class CameraNoise(Base, frozen=True, kw_only=True):
    """One-sigma errors of a camera's reported pose (``hub.ingest.camera.PoseNoise``).

    Pixels, angles in degrees, platform altitude in metres. In ``[imagery.pose_noise]``
    every field has a default; in a sensor's ``[sensors.camera]`` only the fields
    given override the mission-wide ones, so each unit's covariance stays honest.
    """

    sigma_px: Annotated[Positive | None, doc(
        "One-sigma error of a blob's pixel position, pixels.")] = None
    sigma_heading: Annotated[NonNegative | None, doc(
        "One-sigma error of the reported platform heading, degrees.")] = None
    sigma_pitch: Annotated[NonNegative | None, doc(
        "One-sigma error of the reported platform pitch, degrees.")] = None
    sigma_roll: Annotated[NonNegative | None, doc(
        "One-sigma error of the reported platform roll, degrees.")] = None
    sigma_az: Annotated[NonNegative | None, doc(
        "One-sigma error of the reported gimbal azimuth, degrees.")] = None
    sigma_el: Annotated[NonNegative | None, doc(
        "One-sigma error of the reported gimbal elevation, degrees.")] = None
    sigma_alt: Annotated[NonNegative | None, doc(
        "One-sigma error of the reported platform altitude, metres.")] = None

    def over(self, base: CameraNoise) -> CameraNoise:
        """Return ``base`` with every field this one sets replaced."""
        given = {f: getattr(self, f) for f in self.__struct_fields__
                 if getattr(self, f) is not None}
        return msgspec.structs.replace(base, **given)


DEFAULT_CAMERA_NOISE = CameraNoise(sigma_px=1.0, sigma_heading=0.5, sigma_pitch=0.2,
                                   sigma_roll=0.2, sigma_az=0.2, sigma_el=0.2, sigma_alt=5.0)


class Imagery(Base, frozen=True, kw_only=True):
    """Camera frames to detections: the worker pool and the georeferencing defaults."""

    workers: Annotated[Annotated[int, Meta(ge=0, le=256)] | None, doc(
        "Frame worker processes; none: cores - 1 (at least 1); 0: in the hub's process "
        "(debugging).")] = None
    max_pixels: Annotated[int, Meta(ge=1, le=16_384 * 16_384), doc(
        "Largest frame (width x height) decoded; larger ones are refused before "
        "decoding.")] = 3840 * 2160
    reduce: Annotated[Literal[1, 2, 4, 8], doc(
        "Decode frames at 1/reduce of their size (JPEG's own reduced decoding).")] = 2
    terrain_height: Annotated[Annotated[float, Meta(ge=-1_000.0, le=10_000.0)] | None, doc(
        "Ground height, metres above the WGS84 ellipsoid; none: the mission origin's.")] = None
    max_range_m: Annotated[Positive, doc(
        "A blob whose ray meets the ground further than this from the camera is refused, "
        "metres.")] = 20_000.0
    max_object_height_m: Annotated[Annotated[float, Meta(ge=0.0, le=10_000.0)], doc(
        "Highest an object found in a frame may be above the terrain, metres (UAVs); a "
        "detection of unknown class is widened along its line of sight to cover it "
        "(sigma = a third of it); 0: everything on the terrain.")] = 300.0
    queue_per_sensor: Annotated[int, Meta(ge=1, le=1_000), doc(
        "Frames of one sensor waiting for a worker; a newer one pushes out the oldest "
        "(counted as dropped).")] = 1
    pose_noise: Annotated[CameraNoise, doc(
        "Mission-wide pose noise of cameras; a sensor's `camera` "
        "overrides fields.")] = DEFAULT_CAMERA_NOISE

    def worker_count(self) -> int:
        """Worker processes to start: the configured number or cores - 1, at least 1."""
        if self.workers is not None:
            return self.workers
        return max((os.cpu_count() or 2) - 1, 1)

    def noise_for(self, sensor: Sensor) -> CameraNoise:
        """The pose noise of ``sensor``'s camera: its overrides, the mission's, the defaults."""
        noise = self.pose_noise.over(DEFAULT_CAMERA_NOISE)
        return noise if sensor.camera is None else sensor.camera.over(noise)


class WebTls(Base, frozen=True, kw_only=True):
    """HTTPS for the console and its API."""

    certfile: Annotated[str, doc("The server's certificate chain (PEM).")]
    keyfile: Annotated[str, doc("The certificate's private key (PEM).")]


class Web(Base, frozen=True, kw_only=True):
    """The partner console and its API (docs/PROTOCOL.md, *Web*)."""

    host: Annotated[str, doc("Address the console listens on.")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535), doc("TCP port of the console.")] = 8080
    passwd_file: Annotated[str, doc(
        "The Mosquitto password file `hub broker-config` wrote: partners and the operator log "
        "in with their broker credentials.")]
    session_secret_file: Annotated[str | None, doc(
        "File holding the key that signs session cookies (created, mode 0600, if missing); "
        "none: a new key per start, so sessions end with the process.")] = None
    session_ttl_s: Annotated[float, Meta(ge=60.0, le=2_592_000.0), doc(
        "How long a login lasts, seconds.")] = 28_800.0
    login_attempts: Annotated[int, Meta(ge=1, le=1_000), doc(
        "Failed logins a minute allowed from one address or for one identity; then 429.")] = 5
    max_clients: Annotated[int, Meta(ge=1, le=100_000), doc(
        "Live streams (WebSocket and SSE) served at once; beyond it, 503.")] = 256
    client_queue: Annotated[int, Meta(ge=2, le=100_000), doc(
        "Messages a stream may fall behind before it gets a fresh snapshot instead.")] = 64
    send_timeout_s: Annotated[Positive, doc(
        "A stream that does not take a message within this long is closed, seconds.")] = 10.0
    client_messages_per_s: Annotated[Positive, doc(
        "WebSocket messages a second a console stream may send (bursts of "
        "`ingest.budget.burst_s` seconds' worth); beyond it ignored, counted "
        "(`web_over_budget`).")] = 10.0
    client_bytes_per_s: Annotated[Positive, doc(
        "WebSocket message bytes a second a console stream may send, as "
        "`client_messages_per_s`.")] = 16_384.0
    trail_s: Annotated[NonNegative, doc(
        "Seconds of each track's past positions kept for trails and history.")] = 300.0
    stale_after_s: Annotated[Positive, doc(
        "A track not updated for this long (beyond the audience's delay) is shown stale, "
        "seconds.")] = 10.0
    basemap: Annotated[str | None, doc(
        "A raster MBTiles or PMTiles file served as the basemap; none: the vendored country "
        "outlines and a graticule.")] = None
    metrics_identities: Annotated[list[Id], doc(
        "Identities besides the operator that may read `/metrics` (e.g. the monitor).")] = []
    tls: Annotated[WebTls | None, doc("Serve HTTPS with this certificate; none: HTTP.")] = None


class TakServer(Base, frozen=True, kw_only=True):
    """A partner's own TAK Server the hub pushes that partner's picture into."""

    host: Annotated[str, doc("The TAK Server's host name or address.")]
    port: Annotated[int, Meta(ge=1, le=65535), doc(
        "Its streaming port (8089 TLS, 8087 plain).")] = 8089
    partner: Annotated[Id, doc("Whose picture is pushed (a partner id, or `mission`).")]
    cafile: Annotated[str | None, doc(
        "CA certificate (PEM) its certificate must chain to; none: plain TCP.")] = None
    certfile: Annotated[str | None, doc("The hub's client certificate (PEM) for it.")] = None
    keyfile: Annotated[str | None, doc("The client certificate's private key (PEM).")] = None


class Tak(Base, frozen=True, kw_only=True):
    """TAK clients (ATAK, WinTAK, iTAK) over Cursor-on-Target (docs/PROTOCOL.md, *TAK*)."""

    host: Annotated[str, doc("Address the TAK listeners bind.")] = "127.0.0.1"
    tls_port: Annotated[int, Meta(ge=0, le=65535), doc(
        "TLS listener with client certificates (CN = a partner, the operator or a unit); "
        "0: off.")] = 8089
    cafile: Annotated[str | None, doc(
        "CA certificate (PEM) clients' certificates must chain to (TLS listener).")] = None
    certfile: Annotated[str | None, doc("The hub's server certificate (PEM).")] = None
    keyfile: Annotated[str | None, doc("The server certificate's private key (PEM).")] = None
    tcp_port: Annotated[int | None, doc(
        "Plain TCP listener for loopback and labs; none (the default): off.")] = None
    tcp_partner: Annotated[Id | None, doc(
        "Whose picture the plain listener streams (it has no certificates to tell).")] = None
    stale_s: Annotated[Positive, doc(
        "A track's CoT `stale` is its last update plus this many seconds (at least three "
        "publish intervals).")] = 15.0
    max_clients: Annotated[int, Meta(ge=1, le=100_000), doc(
        "TAK connections served at once; beyond it new ones are closed.")] = 256
    client_queue: Annotated[int, Meta(ge=2, le=100_000), doc(
        "Pictures a client may fall behind before it gets the whole picture again.")] = 32
    send_timeout_s: Annotated[Positive, doc(
        "A client that takes nothing for this long is closed, seconds.")] = 10.0
    max_event_bytes: Annotated[int, Meta(ge=1024, le=16_777_216), doc(
        "Largest inbound CoT event; a larger one is refused and its connection closed.")
    ] = 65_536
    events_per_s: Annotated[Positive, doc(
        "Inbound events a connection may send per second (bursts of "
        "`ingest.budget.burst_s` seconds' worth); beyond it refused, counted.")] = 20.0
    bytes_per_s: Annotated[Positive, doc(
        "Inbound event bytes a connection may send per second, as `events_per_s`.")
    ] = 262_144.0
    spot_sigma_m: Annotated[Positive, doc(
        "One-sigma position error of a spot report that gives no `ce`, metres.")] = 30.0
    servers: Annotated[list[TakServer], doc(
        "TAK Servers to push a partner's picture into, reconnecting with backoff.")] = []


class Sensor(Base, frozen=True, kw_only=True):
    """A registered field unit and the partners its data is released to."""

    id: Annotated[Id, doc("The unit's id, as in its topics `sensors/{id}/...`.")]
    nation: Annotated[Nation, doc(
        "Contributing nation (2-3 capital letters); only it may release the unit's data.")]
    kind: Annotated[SensorKind, doc(
        "What the unit is; releases may select by kind. A team's detections are spot "
        "reports: each counts for the track it hits, never as a miss for the others.")]
    release_to: Annotated[list[Id], doc(
        "Shorthand for an unrestricted release by the sensor's nation (partners or groups).")] = []
    label: Annotated[SourceLabel, doc("The marking of this source's data.")] = SourceLabel()
    platform: Annotated[bool | None, doc(
        "Whether its telemetry makes a friend track; none: UAVs do.")] = None
    camera: Annotated[CameraNoise | None, doc(
        "This unit's camera pose noise, over `imagery.pose_noise`.")] = None
    cot_uid: Annotated[str | None, doc(
        "The CoT `uid` the unit's TAK device reports under on the plain TCP listener; none: "
        "its id. (On TLS the certificate names the unit.)")] = None

    @property
    def is_platform(self) -> bool:
        """Whether this unit's telemetry makes a friend track (UAVs and teams by default)."""
        return self.kind in ("uav", "team") if self.platform is None else self.platform


class Partner(Base, frozen=True, kw_only=True):
    """A partner nation or organisation that subscribes to a picture."""

    id: Annotated[Id, doc("The partner's id, as in its topics `cop/{id}/...`.")]
    name: Annotated[str, doc("The partner's name, for people.")]
    nation: Annotated[Nation | None, doc("The partner's nation, if it is one.")] = None
    clearance: Annotated[Marking | None, doc(
        "Highest classification the partner may receive; none: all of them.")] = None


class Release(Base, frozen=True, kw_only=True):
    """A contributing nation's rule: which of its sources go to whom, and how.

    For a (sensor, partner) pair the first release of the sensor's nation that
    selects the sensor and names the partner applies; a partner's view of a
    fused track is the intersection of the rules of every source in it.
    """

    by: Annotated[Nation, doc("The releasing nation: a release covers only its own sensors.")]
    to: Annotated[list[Id], doc("Partner ids or group names the release is for.")]
    sensors: Annotated[list[Id], doc(
        "Sensor ids it covers; with `kinds` empty as well: all of the nation's.")] = []
    kinds: Annotated[list[SensorKind], doc("Sensor kinds it covers.")] = []
    precision_m: Annotated[float, Meta(ge=0.0, le=100_000.0), doc(
        "Positions rounded to a grid of this many metres (0: exact); covariance widened "
        "to match.")] = 0.0
    delay_s: Annotated[float, Meta(ge=0.0, le=3_600.0), doc(
        "The partner's picture is this many seconds old.")] = 0.0
    area: Annotated[list[LatLon], doc(
        "Polygon of [lat, lon] corners: tracks outside it are withheld.")] = []
    hide_classes: Annotated[list[str], doc(
        "Tracks whose most probable class is one of these are withheld.")] = []
    strip_attribution: Annotated[bool, doc(
        "No sensor ids or nations in the partner's tracks.")] = False

    def selects(self, sensor: Sensor) -> bool:
        """Whether this release covers ``sensor`` (its nation's, by id or kind; all if neither)."""
        if sensor.nation != self.by:
            return False
        if not (self.sensors or self.kinds):
            return True
        return sensor.id in self.sensors or sensor.kind in self.kinds


class HubConfig(Base, frozen=True, kw_only=True):
    """The whole hub configuration."""

    mission: Annotated[Mission, doc("The mission and its origin.")]
    broker: Annotated[Broker, doc("How the hub reaches the MQTT broker.")] = Broker()
    broker_server: Annotated[BrokerServer, doc(
        "The Mosquitto `hub broker-config` writes a config for.")] = BrokerServer()
    ingest: Annotated[Ingest, doc("Limits on inbound messages.")] = Ingest()
    fusion: Annotated[Fusion, doc("Tracker parameters.")] = Fusion()
    publish: Annotated[Publish, doc("When pictures and status go out.")] = Publish()
    imagery: Annotated[Imagery, doc("Camera frames to detections.")] = Imagery()
    recovery: Annotated[Recovery, doc("Journal and checkpoints for crash recovery.")] = (
        Recovery())
    sensors: Annotated[list[Sensor], doc(
        "The registry of field units; a message from an id not here is refused.")] = []
    partners: Annotated[list[Partner], doc(
        "Partner nations or organisations that receive a picture.")] = []
    labels: Annotated[Labels, doc("The mission's marking scheme.")] = Labels()
    groups: Annotated[dict[Id, list[Id]], doc(
        "Named sets of partners (`UN`, `AU`, `NATO`) a release may name.")] = {}
    tak: Annotated[Tak | None, doc(
        "Serve TAK clients and push to TAK Servers; none: no TAK.")] = None
    web: Annotated[Web | None, doc(
        "Serve the partner console and its API; none: no web server (`hub demo` always "
        "serves one).")] = None
    releases: Annotated[list[Release], doc(
        "Each contributing nation's releases; the first that matches a (sensor, partner) "
        "pair applies.")] = []
    cluster: Annotated[Cluster | None, doc(
        "Run as workers on a NATS cluster; none: one process on one MQTT broker.")] = None

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
    return (problems + _label_problems(config) + _release_problems(config)
            + _tak_problems(config) + _broker_problems(config) + _cluster_problems(config))


def _cluster_problems(config: HubConfig) -> list[str]:
    """What a NATS 2.9 cluster cannot carry: a ``.`` in an id that is an MQTT topic level."""
    if config.cluster is None:
        return []
    ids = (("sensors", [s.id for s in config.sensors]),
           ("partners", [p.id for p in config.partners]))
    return [f"$.{what}[{i}].id: {item_id!r} holds '.', which NATS 2.9's MQTT refuses in a "
            "topic; rename it to run on [cluster]"
            for what, listed in ids for i, item_id in enumerate(listed) if "." in item_id]


def _tak_problems(config: HubConfig) -> list[str]:
    """A TAK listener needs its certificates; a picture named must be a partner's or mission."""
    tak = config.tak
    if tak is None:
        return []
    audiences = {p.id for p in config.partners} | {"mission"}
    problems = []
    if tak.tls_port:
        problems += [f"$.tak.{key}: required with tls_port (or set tls_port = 0: off)"
                     for key in ("cafile", "certfile", "keyfile") if getattr(tak, key) is None]
    if tak.tcp_port is not None and tak.tcp_partner is None:
        problems.append("$.tak.tcp_partner: required with tcp_port: whose picture it streams")
    if tak.tcp_partner is not None and tak.tcp_partner not in audiences:
        problems.append(f"$.tak.tcp_partner: unknown partner {tak.tcp_partner!r}")
    for i, server in enumerate(tak.servers):
        if server.partner not in audiences:
            problems.append(f"$.tak.servers[{i}].partner: unknown partner {server.partner!r}")
        if (server.certfile is None) != (server.keyfile is None):
            problems.append(f"$.tak.servers[{i}]: give both certfile and keyfile, or neither")
    if not tak.tls_port and tak.tcp_port is None and not tak.servers:
        problems.append("$.tak: no tls_port, tcp_port or servers: nothing to serve")
    return problems


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


def config_toml(config: HubConfig) -> str:
    """``config`` as a TOML file that ``load_config`` reads back to an equal config.

    TOML has no null: a key whose value is None is left out, which is its default.
    """
    import tomli_w  # only the commands that write a config pay for it

    document = _without_none(msgspec.to_builtins(config))
    assert isinstance(document, dict)
    text: str = tomli_w.dumps(document)
    return text


def _without_none(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def load_config(path: str | Path) -> HubConfig:
    """Load and validate a TOML config file, raising ConfigError naming key and problem."""
    return load_toml(path, parse_config)


def error_with_key_path(message: str) -> str:
    """Turn msgspec's 'problem - at `$.key`' into '$.key: problem'."""
    problem, sep, where = message.rpartition(" - at ")
    return f"{where.strip('`')}: {problem}" if sep else message
