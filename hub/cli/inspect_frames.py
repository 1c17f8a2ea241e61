"""``hub frames inspect``: one frame, its detections drawn and put on the ground, for a tester.

The input is a raw ``sensors/{id}/frames`` payload (one MessagePack map) or a
recording (``hub record``, ``python -m simulators --record-to``); from a
recording, ``index`` picks the N-th frame (counted over frames only, or over
one sensor's frames with ``sensor``). The frame goes through the hub's own
imagery path (``hub.ingest.imagery.frame_detections``: decode, detect,
georeference with covariance); the picture shows each detection's box, its
number, latitude, longitude and one-sigma ground error (the semi-major axis of
its east/north covariance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from hub import topics
from hub.cli.arguments import UsageError
from hub.errors import PayloadError
from hub.geo import EnuFrame
from hub.ingest.camera import LevelTerrain, PoseNoise
from hub.ingest.imagery import (
    ON_GROUND,
    BandDetector,
    GroundDetections,
    HeightPrior,
    frame_detections,
)
from hub.messages import Frame, decode
from hub.recording import read_recording

Array = NDArray[np.float64]
MAX_FRAME_BYTES = 64 << 20
MAX_PIXELS = 3840 * 2160
_MSGPACK_MAPS = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])
_GREEN, _YELLOW = (80, 255, 80), (0, 230, 255)


@dataclass(frozen=True)
class FoundFrame:
    """A frame read from a file: which one, and the sensor that sent it (None if unknown)."""

    frame: Frame
    index: int
    sensor: str | None


@dataclass(frozen=True)
class Inspection:
    """A frame's detections on the ground: positions, one-sigma errors, pixels."""

    found: FoundFrame
    ground: GroundDetections
    lat: Array
    lon: Array
    alt: Array
    sigma_m: Array

    def table(self) -> str:
        """The detections as a fixed-width text table."""
        f = self.found.frame
        p, g = f.platform, f.gimbal
        head = (f"frame {self.found.index}" + (f" of {self.found.sensor}" if self.found.sensor
                                               else "")
                + f": {f.band} {f.width}x{f.height} {f.format}, ts {f.ts:.3f}, platform "
                f"{p.lat:.6f} {p.lon:.6f} {p.alt:.1f} m, heading {p.heading:.1f} pitch "
                f"{p.pitch:.1f} roll {p.roll:.1f}, gimbal az {g.az:.1f} el {g.el:.1f}")
        rows = [head, f"{len(self.lat)} detections",
                f"{'#':>3} {'u':>8} {'v':>8} {'area':>7} {'score':>5} {'lat':>12} "
                f"{'lon':>12} {'alt':>8} {'sigma_m':>8}"]
        b = self.ground.blobs
        for i in range(len(self.lat)):
            rows.append(f"{i:>3} {b.u[i]:8.1f} {b.v[i]:8.1f} {b.area[i]:7.0f} {b.score[i]:5.2f} "
                        f"{self.lat[i]:12.7f} {self.lon[i]:12.7f} "
                        f"{self.alt[i]:8.1f} {self.sigma_m[i]:8.1f}")
        return "\n".join(rows)


def read_frame(path: str | Path, index: int = 0, sensor: str | None = None) -> FoundFrame:
    """Read frame ``index`` (of ``sensor`` if given) from a payload file or a recording."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            first = file.read(1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc
    if not first:
        raise UsageError(f"{path}: empty file, no frames")
    if first[0] in _MSGPACK_MAPS:  # one payload: a map; a recording starts with an array
        if index != 0 or sensor is not None:
            raise UsageError(f"{path}: a single frame payload has only frame 0, no sensor")
        return FoundFrame(_decode(path.read_bytes(), f"{path}"), 0, None)
    return _from_recording(path, index, sensor)


def _from_recording(path: Path, index: int, sensor: str | None) -> FoundFrame:
    if index < 0:
        raise UsageError(f"frame index must be 0 or more, not {index}")
    seen, hit = 0, None
    try:
        for _, topic, payload in read_recording(path):
            if not topic.endswith("/frames"):
                continue
            sensor_id = topics.parse_sensor_topic(topic)[0]
            if sensor is not None and sensor_id != sensor:
                continue
            if seen == index:
                hit = sensor_id, payload
                break
            seen += 1
    except ValueError as exc:  # PayloadError and msgpack's errors on a mangled file
        raise UsageError(f"{path}: neither a frames payload nor a recording: {exc}") from exc
    whose = f" of sensor {sensor!r}" if sensor is not None else ""
    if hit is None and seen == 0:
        raise UsageError(f"{path}: no frames{whose} in the recording")
    if hit is None:
        raise UsageError(f"{path}: frame index {index} out of range: {seen} frames{whose}")
    return FoundFrame(_decode(hit[1], f"{path}: frame {index}{whose}"), index, hit[0])


def _decode(payload: bytes, where: str) -> Frame:
    try:
        return decode(payload, Frame, MAX_FRAME_BYTES)
    except PayloadError as exc:
        raise PayloadError("image", f"frame not decodable ({where}): {exc.reason}") from exc


def inspect(found: FoundFrame, enu: EnuFrame, *, terrain_alt: float | None = None,
            noise: PoseNoise | None = None, max_pixels: int = MAX_PIXELS,
            reduce: int = 2, height: HeightPrior = ON_GROUND) -> Inspection:
    """Detect and georeference ``found``'s objects as the hub does.

    Ground is at WGS84 height ``terrain_alt`` (default: the mission origin's);
    objects are ``height`` above it (default: on it).
    Raises ``PayloadError`` for a frame that does not decode or sees no ground.
    """
    terrain = LevelTerrain(enu, enu.alt0 if terrain_alt is None else terrain_alt)
    ground = frame_detections(found.frame, BandDetector(), terrain,
                              PoseNoise() if noise is None else noise, enu,
                              max_pixels=max_pixels, reduce=reduce, height=height)
    lat, lon, alt = enu.to_geodetic(ground.enu[:, 0], ground.enu[:, 1], ground.enu[:, 2])
    # One sigma along the worst direction: the semi-major axis of the error ellipse.
    sigma = np.sqrt(np.linalg.eigvalsh(ground.cov)[:, -1]) if len(ground.cov) else np.empty(0)
    return Inspection(found, ground, np.atleast_1d(lat), np.atleast_1d(lon),
                      np.atleast_1d(alt), sigma)


def draw(inspection: Inspection) -> NDArray[np.uint8]:
    """The frame at full size in colour, each detection boxed and labelled."""
    frame = inspection.found.frame
    grey = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise PayloadError("image", f"frame data does not decode as {frame.format}")
    image = np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    b = inspection.ground.blobs
    for i in range(len(inspection.lat)):
        half = max(6.0, 1.5 * float(np.sqrt(b.area[i])))
        x, y = float(b.u[i]) - 0.5, float(b.v[i]) - 0.5  # continuous -> pixel-index centre
        top_left = (round(x - half), round(y - half))
        bottom_right = (round(x + half), round(y + half))
        cv2.rectangle(image, top_left, bottom_right, _GREEN, 1, cv2.LINE_AA)
        cv2.drawMarker(image, (round(x), round(y)), _GREEN, cv2.MARKER_CROSS, 6, 1)
        label = (f"{i}: {inspection.lat[i]:.6f}, {inspection.lon[i]:.6f} "
                 f"+/-{inspection.sigma_m[i]:.0f} m")
        origin = (top_left[0], max(top_left[1] - 4, 12))
        cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3,
                    cv2.LINE_AA)
        cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, _YELLOW, 1,
                    cv2.LINE_AA)
    return image


def write_png(image: NDArray[np.uint8], path: str | Path) -> None:
    """Write ``image`` as a PNG; a failure is a ``UsageError`` naming the file."""
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise UsageError(f"{path}: OpenCV could not encode the PNG")
    try:
        Path(path).write_bytes(buffer.tobytes())
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from exc


def default_output(source: str | Path, index: int, sensor: str | None) -> Path:
    """``SOURCE.frameN.png`` beside the input (``SOURCE.SENSOR.frameN.png`` for one sensor)."""
    source = Path(source)
    who = f".{sensor}" if sensor else ""
    return source.with_name(f"{source.stem}{who}.frame{index}.png")
