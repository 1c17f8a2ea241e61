"""Turn one inbound MQTT message into a fusion item, or reject it with a reason.

Checks, in order: topic shape and sensor id, registry membership, payload
size and schema (hub.messages), timestamp freshness against the receive time,
then sequence (duplicates dropped, gaps counted). Everything rejected raises
PayloadError so the caller can dead-letter it and go on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hub import topics
from hub.config import HubConfig
from hub.errors import PayloadError
from hub.fusion.measurements import Scan
from hub.geo import EnuFrame
from hub.ingest.detections import batch_to_scan
from hub.ingest.seen import Seen
from hub.messages import DetectionBatch, Frame, SensorStatus, Telemetry, decode


@dataclass(frozen=True, slots=True)
class PlatformFix:
    """A registered platform's own position report, for its friend track."""

    t: float
    sensor: int
    telemetry: Telemetry
    enu: tuple[float, float]
    """East, north of the fix in the mission frame, converted once for every group."""


@dataclass(frozen=True, slots=True)
class FrameJob:
    """A validated camera frame, still encoded, for the frame pool (hub.ingest.frame_pool)."""

    t: float
    sensor: int
    payload: bytes
    t_received: float
    topic: str


InboundItem = Scan | PlatformFix
_COUNTER_OF = {"gap": "seq_gaps", "restart": "seq_restarts", "late": "seq_late"}


class Router:
    """Validate inbound messages against the registry and the wire contracts."""

    def __init__(self, config: HubConfig, frame: EnuFrame) -> None:
        self.config = config
        self.frame = frame
        self.sensor_index = config.sensor_index()
        self.limits = config.ingest
        self.counters: Counter[str] = Counter()
        self.online: dict[str, bool] = {}
        self._seen: dict[tuple[int, str], Seen] = {}
        """(sensor, topic kind) → the ``seq`` taken lately."""

    def state(self) -> dict[str, object]:
        """The duplicate checks' state and who is online, as JSON-ready values."""
        return {"seen": [[sensor, kind, seen.top, seen.top_ts, seen.mask]
                         for (sensor, kind), seen in self._seen.items()],
                "online": dict(self.online)}

    def restore(self, state: dict[str, object]) -> None:
        """Take back a ``state``."""
        rows = state["seen"]
        online = state["online"]
        assert isinstance(rows, list) and isinstance(online, dict)
        self._seen = {(int(sensor), str(kind)): Seen(int(top), float(ts), int(mask))
                      for sensor, kind, top, ts, mask in rows}
        self.online = {str(k): bool(v) for k, v in online.items()}

    def route(self, topic: str, payload: bytes, t_received: float
              ) -> InboundItem | FrameJob | None:
        """Return the fusion item ``payload`` carries, None if it carries none."""
        sensor_id, kind = topics.parse_sensor_topic(topic)
        sensor = self.sensor_index.get(sensor_id)
        if sensor is None:
            raise PayloadError("unknown_sensor", f"unknown sensor id {sensor_id!r}")
        if kind == "status":
            status = decode(payload, SensorStatus, self.limits.max_payload_bytes)
            # Only the future bound: a retained status may rightly be days old.
            if status.ts is not None and status.ts > t_received + self.limits.max_future_s:
                raise PayloadError("future",
                                   f"timestamp {status.ts - t_received:.1f} s in the future")
            self.online[sensor_id] = status.online
            self.counters["status"] += 1
            return None
        if kind == "frames":
            # The message is checked here, cheaply; the image in a worker process.
            frame = decode(payload, Frame, self.limits.max_frame_bytes)
            if not self._fresh(sensor, kind, frame.ts, frame.seq, t_received):
                return None
            return FrameJob(frame.ts, sensor, payload, t_received, topic)
        if kind == "telemetry":
            telemetry = decode(payload, Telemetry, self.limits.max_payload_bytes)
            if not self._fresh(sensor, kind, telemetry.ts, telemetry.seq, t_received):
                return None
            self.counters["telemetry"] += 1
            if not self.config.sensors[sensor].is_platform:
                return None
            e, n, _ = self.frame.point_to_enu(telemetry.lat, telemetry.lon, telemetry.alt)
            return PlatformFix(telemetry.ts, sensor, telemetry, (e, n))
        batch = decode(payload, DetectionBatch, self.limits.max_payload_bytes)
        if not self._fresh(sensor, kind, batch.ts, batch.seq, t_received):
            return None
        self.counters["detection_batches"] += 1
        self.counters["detections"] += len(batch.detections)
        return batch_to_scan(batch, sensor, self.frame)

    def _check_time(self, ts: float, t_received: float) -> None:
        if ts > t_received + self.limits.max_future_s:
            raise PayloadError("future", f"timestamp {ts - t_received:.1f} s in the future")
        if ts < t_received - self.limits.max_age_s:
            raise PayloadError("stale", f"timestamp {t_received - ts:.0f} s in the past")

    def _fresh(self, sensor: int, kind: str, ts: float, seq: int, t_received: float) -> bool:
        """Check the time; drop repeats by ``seq`` (hub.ingest.seen) and count gaps."""
        self._check_time(ts, t_received)
        key = (sensor, kind)
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = Seen(seq, ts)
            return True
        verdict = seen.take(seq, ts)
        if verdict == "repeat":
            self.counters["duplicates"] += 1
            return False
        if verdict != "next":
            self.counters[_COUNTER_OF[verdict]] += 1
        return True
