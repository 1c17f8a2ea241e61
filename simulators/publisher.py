"""Publish a scenario to a real MQTT broker, in real time or faster.

Each sensor is its own paho-mqtt client (client id = sensor id) with its own
will message, so a killed simulator shows every unit offline; ground truth goes
out from one more client.

Timestamps are the wall clock at any ``speed``: each message goes out at the
time it is stamped with, and ``speed`` makes the world that much faster (scenario
time ``t`` is stamped ``start + t / speed``; targets, platforms and sensor rates
are ``speed`` times the scenario's, reported velocities too). So a run is
never in the future (the hub refuses that) nor in the past: a second run
against the same hub follows the first, as a unit switched on again would.
Stamping the scenario's own seconds at ``speed`` > 1 would mean anchoring the
run in the past, and a second run would then start before the end of the
first: behind what the hub had already fused, so mostly dropped as late (68 %
at ``speed`` 4). For scenario-exact time faster than real time, record
(``--record-to``) and ``hub replay``.

Camera frames are rendered and published by a thread of their own, on the same
clock, so a slow render never delays telemetry, detections or truth. Frames go
out at QoS 0, latest wins: a frame whose successor is already due when its turn
comes is skipped, never rendered, and counted. The end of a run reports frames
sent and skipped, the mean render time, and how late each stream fell behind.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from hub import topics
from hub.config import ClientTls
from hub.errors import BrokerUnavailable, ConfigError, PayloadError
from hub.mqtt.tls import tls_context
from simulators.engine import Pending, pack, pending
from simulators.scenario import Scenario, load_scenario

TRUTH_CLIENT_ID = "sim-truth"
CONNECT_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 1.0
BEHIND_WARNING_S = 1.0  # a stream later than this says so at the end of the run
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 4
"""A unit with other brokers to go to tries again this soon (paho's own: 1 s doubling to 120)."""


class _Unit:
    """One MQTT client: a sensor (with its will message) or the truth publisher."""

    def __init__(self, client_id: str, kind: str | None, protocol: str,
                 username: str | None, password: str | None,
                 tls: ClientTls | None = None) -> None:
        version = MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=version)
        self.client_id, self.kind, self.v5 = client_id, kind, protocol == "5"
        self.connected = threading.Event()
        self.refused: str | None = None
        self.last: mqtt.MQTTMessageInfo | None = None
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            # One certificate per unit when the paths hold {id}: the broker takes its CN
            # as the unit's identity.
            self.client.tls_set_context(tls_context(tls, client_id))
        if kind is not None:
            will = pack({"online": False, "kind": kind})
            self.client.will_set(self.status_topic, will, qos=1, retain=True)
        self.client.on_connect = self._on_connect

    @property
    def status_topic(self) -> str:
        return topics.sensor(self.client_id, "status")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason: object, properties: object) -> None:
        if getattr(reason, "is_failure", False):
            self.refused = str(reason)
        self.connected.set()

    def connect(self, addresses: Sequence[tuple[str, int]]) -> None:
        """Connect to the first address and start paho's network thread.

        Raises BrokerUnavailable on failure. A connection lost later is taken
        up again at the next address (``follow_failover``).
        """
        host, port = addresses[0]
        follow_failover(self.client, addresses)
        try:
            if self.v5:
                self.client.connect(host, port, keepalive=30, clean_start=True)
            else:
                self.client.connect(host, port, keepalive=30)
        except OSError as exc:  # ssl.SSLError included: a refused certificate
            raise BrokerUnavailable(f"{self.client_id}: cannot reach {host}:{port}: {exc}") from exc
        self.client.loop_start()
        if not self.connected.wait(CONNECT_TIMEOUT_S) or self.refused:
            self.stop()
            raise BrokerUnavailable(f"{self.client_id}: broker {host}:{port} refused or did not "
                                    f"answer: {self.refused or 'timeout'}")

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        self.last = self.client.publish(topic, payload, qos=qos, retain=retain)

    def close(self, ts: float) -> None:
        """Say goodbye: a retained offline status, wait for what is in flight, disconnect."""
        if self.kind is not None and self.client.is_connected():
            self.publish(self.status_topic, pack({"ts": ts, "online": False, "kind": self.kind}),
                         qos=1, retain=True)
        if self.last is not None and self.client.is_connected():
            # Raised when the message can no longer be sent: nothing more to wait for.
            with contextlib.suppress(RuntimeError, ValueError):
                self.last.wait_for_publish(DRAIN_TIMEOUT_S)
        self.client.disconnect()
        self.stop()

    def stop(self) -> None:
        self.client.loop_stop()


def follow_failover(client: mqtt.Client, addresses: Sequence[tuple[str, int]]) -> None:
    """Aim each of paho's reconnects after a lost connection or a failed try at the next address.

    A clustered hub's nodes all speak MQTT: a field unit whose node died goes
    on at the next one, and paho sends what was not acknowledged again there.
    """
    if len(addresses) < 2:
        return
    turn = itertools.count(1)

    def next_address(client: mqtt.Client, *_: object) -> None:
        # paho 2.1's host/port setters refuse while its state says "connection lost",
        # though the socket is closed and its loop's next reconnect reads these two.
        client._host, client._port = addresses[next(turn) % len(addresses)]

    client.on_disconnect = next_address
    client.on_connect_fail = next_address
    # Not paho's 1-120 s: a node refuses while the cluster elects, for seconds.
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)


@dataclass
class PublishStats:
    """What a run sent: messages (frames included), frames skipped, render time, lateness."""

    sent: int = 0
    frames_sent: int = 0
    frames_skipped: int = 0
    render_s: float = 0.0
    late_s: float = 0.0
    frames_late_s: float = 0.0

    @property
    def render_ms(self) -> float:
        """Mean wall-clock milliseconds to render and encode one frame."""
        return 1e3 * self.render_s / max(self.frames_sent, 1)

    def describe(self) -> str:
        """One line for the end of a run; says so when a stream fell behind."""
        text = f"sent {self.sent} messages"
        if self.frames_sent or self.frames_skipped:
            text += (f", {self.frames_sent} frames ({self.render_ms:.1f} ms each to render), "
                     f"{self.frames_skipped} skipped")
        behind = [f"{name} up to {late:.1f} s" for name, late in
                  (("messages", self.late_s), ("frames", self.frames_late_s))
                  if late > BEHIND_WARNING_S]
        if behind or self.frames_skipped:
            text += "; WARNING: the publisher fell behind"
            text += f" ({', '.join(behind)})" if behind else " (frames skipped)"
        return text


class _Progress:
    """Counts of a run, and a one-line display of them on stderr about once a second."""

    def __init__(self, enabled: bool, span: float, speed: float) -> None:
        self.enabled, self.span, self.speed = enabled, span, speed
        self.stats = PublishStats()
        self.started = self.shown = time.monotonic()

    def update(self, elapsed: float, final: bool = False) -> None:
        """Show the counts ``elapsed`` seconds of the clock into the run."""
        sim_t = min(elapsed * self.speed, self.span)
        now = time.monotonic()
        if not self.enabled or (not final and now - self.shown < PROGRESS_EVERY_S):
            return
        self.shown = now
        stats = self.stats
        rate = stats.sent / max(now - self.started, 1e-9)
        frames = (f"  {stats.frames_sent} frames, {stats.frames_skipped} skipped"
                  if stats.frames_sent or stats.frames_skipped else "")
        sys.stderr.write(f"\rsim {sim_t:7.1f}/{self.span:.0f} s  {stats.sent:8d} msgs  "
                         f"{rate:8.0f} msg/s{frames}" + ("\n" if final else ""))
        sys.stderr.flush()


def _login(client_id: str, username: str | None, password: str | None,
           credentials: Mapping[str, str] | None) -> tuple[str | None, str | None]:
    """One identity per unit (user name = client id) when ``credentials`` are given."""
    if credentials is None:
        return username, password
    if client_id not in credentials:
        raise ConfigError(f"no broker credentials for {client_id!r} (is it in the registry?)")
    return client_id, credentials[client_id]


def _connect_all(scenario: Scenario, addresses: Sequence[tuple[str, int]], protocol: str,
                 username: str | None, password: str | None,
                 credentials: Mapping[str, str] | None,
                 tls: ClientTls | None) -> dict[str, _Unit]:
    kinds = [(r.id, "radar") for r in scenario.radars] + [(u.id, "uav") for u in scenario.uavs]
    units: dict[str, _Unit] = {}
    try:
        for client_id, kind in [*kinds, (TRUTH_CLIENT_ID, None)]:
            unit = _Unit(client_id, kind, protocol,
                         *_login(client_id, username, password, credentials), tls)
            unit.connect(addresses)
            units[client_id] = unit
    except (BrokerUnavailable, ConfigError):
        for unit in units.values():
            unit.close(time.time())
        raise
    return units


def _unit_for(units: dict[str, _Unit], topic: str) -> _Unit:
    if topic == topics.TRUTH:
        return units[TRUTH_CLIENT_ID]
    try:
        return units[topics.parse_sensor_topic(topic)[0]]
    except (PayloadError, KeyError) as exc:
        raise ValueError(f"no simulated unit publishes on {topic!r}") from exc


class _Clock:
    """The wall clock from ``start_ts``: a message stamped ``ts`` is due at ``ts``."""

    def __init__(self, start_ts: float, stop: threading.Event) -> None:
        self.start_ts, self.stop = start_ts, stop
        self.wall0 = time.monotonic()

    def lag(self, ts: float) -> float:
        """Seconds the clock is past ``ts`` (negative: ``ts`` is still to come)."""
        return time.monotonic() - self.wall0 - (ts - self.start_ts)

    def wait_for(self, ts: float, progress: _Progress | None = None) -> bool:
        """Sleep until ``ts``; False when stopped."""
        while (delay := -self.lag(ts)) > 0.0:
            if self.stop.wait(min(delay, 0.25)):
                return False
            if progress is not None:
                progress.update(ts - self.start_ts)
        return not self.stop.is_set()


def _pace(messages: Iterable[Pending], units: dict[str, _Unit], clock: _Clock,
          progress: _Progress) -> None:
    """Publish each message when its time comes, counting them in ``progress``."""
    stats = progress.stats
    for message in messages:
        if not clock.wait_for(message.ts, progress):
            return
        stats.late_s = max(stats.late_s, clock.lag(message.ts))
        # QoS 1: truth is what runs are scored against, so it must not be lost.
        unit = _unit_for(units, message.topic)
        unit.publish(message.topic, message.build(), qos=1,
                     retain=message.topic.endswith("/status"))
        stats.sent += 1
        progress.update(message.ts - clock.start_ts)


def _pace_frames(frames: Iterable[Pending], units: dict[str, _Unit], clock: _Clock,
                 stats: PublishStats) -> None:
    """Render and publish each frame when due at QoS 0; skip one already superseded."""
    for frame in frames:
        if not clock.wait_for(frame.ts):
            return
        late = clock.lag(frame.ts)
        stats.frames_late_s = max(stats.frames_late_s, late)
        if late >= frame.period:  # its successor is due: latest wins
            stats.frames_skipped += 1
            continue
        started = time.perf_counter()
        payload = frame.build()
        stats.render_s += time.perf_counter() - started
        _unit_for(units, frame.topic).publish(frame.topic, payload, qos=0)
        stats.frames_sent += 1
        stats.sent += 1


class _FrameThread(threading.Thread):
    """``_pace_frames`` on its own thread; an error in it is raised again by ``join_checked``."""

    def __init__(self, frames: Iterable[Pending], units: dict[str, _Unit], clock: _Clock,
                 stats: PublishStats) -> None:
        super().__init__(name="sim-frames", daemon=True)
        self.args = (frames, units, clock, stats)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            _pace_frames(*self.args)
        except BaseException as exc:  # handed to the main thread, which it stops
            self.error = exc
            self.args[2].stop.set()

    def join_checked(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def run(scenario: Scenario | str | Path, host: str, port: int, *, protocol: str = "5",
        speed: float = 1.0, duration: float | None = None, progress: bool = True,
        username: str | None = None, password: str | None = None,
        credentials: Mapping[str, str] | None = None, seed: int | None = None,
        tls: ClientTls | None = None, failover: Sequence[tuple[str, int]] = ()) -> int:
    """Publish ``scenario`` like ``publish`` and return the number of messages sent."""
    return publish(scenario, host, port, protocol=protocol, speed=speed, duration=duration,
                   progress=progress, username=username, password=password,
                   credentials=credentials, seed=seed, tls=tls, failover=failover).sent


def publish(scenario: Scenario | str | Path, host: str, port: int, *, protocol: str = "5",
            speed: float = 1.0, duration: float | None = None, progress: bool = True,
            username: str | None = None, password: str | None = None,
            credentials: Mapping[str, str] | None = None, seed: int | None = None,
            tls: ClientTls | None = None,
            failover: Sequence[tuple[str, int]] = ()) -> PublishStats:
    """Publish ``scenario`` to the broker at ``host:port``; return what was sent.

    Args:
        scenario: a Scenario, a scenario file, or a name in config/scenarios/.
        protocol: "5" or "3.1.1".
        speed: scenario seconds per wall-clock second: the world as the timestamps show
            it runs that much faster (module docstring).
        duration: stop after this many scenario seconds (default: the whole scenario).
        progress: show a progress line on stderr, and the summary at the end.
        username, password: one login shared by every unit.
        credentials: instead, a password per unit, each logging in as its own client id
            (``credentials.toml`` from ``hub broker-config``).
        tls: connect over TLS with a client certificate; ``{id}`` in its paths becomes
            each unit's id (``[broker.tls]`` of the hub config).
        failover: more brokers (a clustered hub's other nodes): a unit that loses its
            connection goes on at the next.

    Ctrl-C (KeyboardInterrupt) ends the run like its end does: each sensor publishes a
    retained offline status and disconnects; the counts so far are returned.
    """
    if protocol not in ("5", "3.1.1"):
        raise ValueError(f"protocol must be '5' or '3.1.1', not {protocol!r}")
    if not speed > 0.0:
        raise ValueError(f"speed must be positive, not {speed}")
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if duration is not None:
        scenario = scenario.with_duration(duration)
    span = scenario.duration_s
    units = _connect_all(scenario, [(host, port), *failover], protocol, username, password,
                         credentials, tls)
    shown = _Progress(progress, span, speed)
    stop = threading.Event()
    start_ts = time.time()  # once connected: each message goes out when it is stamped
    clock = _Clock(start_ts, stop)
    frames = _FrameThread(pending(scenario, seed, start_ts, "frames", speed), units, clock,
                          shown.stats)
    frames.start()
    try:
        _pace(pending(scenario, seed, start_ts, "rest", speed), units, clock, shown)
        frames.join_checked()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        frames.join()
        end_ts = time.time()
        for unit in units.values():
            unit.close(end_ts)
        shown.update(end_ts - start_ts, final=True)
        if progress:
            print(shown.stats.describe(), file=sys.stderr)
    return shown.stats
