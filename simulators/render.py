"""Synthetic camera frames: targets drawn where the tested camera model projects them.

A frame is a grey-level image (one channel, as the hub's detector reads it): a
ground texture of coarse noise upsampled with ``cv2.resize`` plus fine per-pixel
noise, with each target at the pixel ``hub.ingest.camera.project`` gives. A
target's size in pixels is its class's size in metres divided by the ground
sample distance at its range (``range / fx``), never below ``min_px`` so it stays
detectable. EO targets are dark or bright ellipses on a mid-grey texture; IR
targets are warm Gaussian blobs on a cooler, noisier background.

The frame reports the true pose plus Gaussian attitude and altitude noise
(``PoseNoise``, the same one-sigma figures the hub's covariance uses), so
georeferencing a rendered frame is as wrong as a real one. The texture is drawn
afresh each frame, not fixed to the ground: it is clutter for the detector, not
scenery to match.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import cv2
import msgpack
import numpy as np
from numpy.typing import NDArray

from hub import topics
from hub.geo import EnuFrame
from hub.ingest.camera import Intrinsics, Pose, PoseNoise, project

Array = NDArray[np.float64]
Band = Literal["eo", "ir"]
ImageFormat = Literal["jpeg", "png"]

# Footprint (width, length) in metres of each class, as seen from above.
TARGET_SIZE_M: Final[dict[str, tuple[float, float]]] = {
    "person": (0.5, 1.8),
    "vehicle": (2.0, 4.5),
    "uav": (1.0, 1.0),
    "vessel": (4.0, 12.0),
    "aircraft": (10.0, 12.0),
    "unknown": (1.0, 1.0),
}
# IR contrast above the background, grey levels: engines run hotter than people.
_IR_HEAT: Final[dict[str, float]] = {"person": 90.0, "vehicle": 130.0, "uav": 100.0}
_IR_DEFAULT_HEAT = 100.0
_COARSE_CELL_PX = 16  # coarse texture: one random value per 16 x 16 pixels


@dataclass(frozen=True)
class Look:
    """Grey levels of one band: background mean, coarse and fine texture sigmas."""

    mean: float
    coarse: float
    fine: float


LOOKS: Final[dict[str, Look]] = {"eo": Look(128.0, 14.0, 6.0), "ir": Look(60.0, 8.0, 8.0)}
EO_DARK, EO_BRIGHT = 30, 230


@dataclass(frozen=True)
class RenderedFrame:
    """An encoded frame, where its targets are, and the pose it reports.

    ``pixels`` ``(N, 2)`` holds each target's true ``(u, v)`` (NaN behind the
    camera); ``drawn`` says which targets reached the image.
    """

    data: bytes
    format: ImageFormat
    band: Band
    width: int
    height: int
    pixels: Array
    drawn: NDArray[np.bool_]
    reported: Pose


def render_frame(intrinsics: Intrinsics, pose: Pose, targets_enu: Array, classes: list[str],
                 band: Band, rng: np.random.Generator, *, width: int = 1280,
                 height: int = 720, quality: int = 85, image_format: ImageFormat = "jpeg",
                 pose_noise: PoseNoise | None = None, min_px: float = 4.0) -> RenderedFrame:
    """Render the targets ``(N, 3)`` ENU seen from ``pose`` and encode the image."""
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise ValueError(f"intrinsics are for {intrinsics.width}x{intrinsics.height}, "
                         f"not {width}x{height}")
    reported = noisy_pose(pose, PoseNoise() if pose_noise is None else pose_noise, rng)
    image = _background(LOOKS[band], height, width, rng)
    targets = np.asarray(targets_enu, dtype=np.float64).reshape(-1, 3)
    u, v, valid = project(intrinsics, pose, targets)
    ranges = np.linalg.norm(targets - pose.position(), axis=-1)
    semi = _semi_axes(classes, ranges, intrinsics.fx, min_px)
    reach = semi.max(axis=1) * 3.0
    drawn = valid & (u > -reach) & (u < width + reach) & (v > -reach) & (v < height + reach)
    index = np.flatnonzero(drawn)
    if band == "ir":
        pixels = _draw_ir(image, u[index], v[index], semi[index],
                          [classes[i] for i in index], rng)
    else:
        pixels = _draw_eo(image, u[index], v[index], semi[index], rng)
    return RenderedFrame(_encode(pixels, image_format, quality), image_format, band, width,
                         height, np.stack([u, v], axis=-1), drawn, reported)


def noisy_pose(pose: Pose, noise: PoseNoise, rng: np.random.Generator) -> Pose:
    """Return ``pose`` with Gaussian errors of ``noise``'s sigmas on angles and altitude."""
    sigmas = {"heading": noise.sigma_heading, "pitch": noise.sigma_pitch,
              "roll": noise.sigma_roll, "az": noise.sigma_az, "el": noise.sigma_el,
              "up": noise.sigma_alt}
    errors = rng.normal(0.0, 1.0, len(sigmas)) * np.array(list(sigmas.values()))
    moved: dict[str, Any] = {name: float(np.asarray(getattr(pose, name))) + float(err)
                             for name, err in zip(sigmas, errors, strict=True)}
    return replace(pose, **moved)


def frame_payload(frame: RenderedFrame, ts: float, seq: int, hfov: float,
                  enu: EnuFrame) -> dict[str, Any]:
    """The ``sensors/{id}/frames`` message of ``frame`` as a plain dict (DESIGN.md)."""
    p = frame.reported
    lat, lon, alt = (float(x) for x in enu.to_geodetic(*(float(np.asarray(c))
                                                         for c in (p.east, p.north, p.up))))
    angle = {name: float(np.asarray(getattr(p, name))) for name in
             ("heading", "pitch", "roll", "az", "el")}
    return {
        "ts": ts, "seq": seq, "band": frame.band, "format": frame.format, "data": frame.data,
        "width": frame.width, "height": frame.height, "camera": {"hfov": hfov},
        "platform": {"lat": lat, "lon": lon, "alt": alt, "heading": angle["heading"] % 360.0,
                     "pitch": angle["pitch"], "roll": angle["roll"]},
        "gimbal": {"az": angle["az"] % 360.0, "el": angle["el"]},
    }


def frame_message(sensor_id: str, frame: RenderedFrame, ts: float, seq: int, hfov: float,
                  enu: EnuFrame) -> tuple[str, bytes]:
    """Topic and MessagePack payload of ``frame`` published by sensor ``sensor_id``."""
    payload = msgpack.packb(frame_payload(frame, ts, seq, hfov, enu), use_bin_type=True)
    return topics.sensor(sensor_id, "frames"), bytes(payload)


def _background(look: Look, height: int, width: int,
                rng: np.random.Generator) -> NDArray[np.float32]:
    """Coarse noise upsampled to the frame plus fine per-pixel noise, float32."""
    coarse_shape = (-(-height // _COARSE_CELL_PX) + 1, -(-width // _COARSE_CELL_PX) + 1)
    # Uniform bytes are several times cheaper to draw than normals; a uniform
    # on [0, 255] scaled to the wanted sigma looks the same after JPEG.
    scale = look.fine / (255.0 / np.sqrt(12.0))
    coarse = rng.standard_normal(coarse_shape, dtype=np.float32) * np.float32(look.coarse)
    coarse += np.float32(look.mean - 127.5 * scale)  # centre the fine noise's mean on 0
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    fine = rng.integers(0, 256, (height, width), dtype=np.uint8)
    textured = np.asarray(cv2.scaleAdd(fine.astype(np.float32), scale, image), np.float32)
    return textured


def _semi_axes(classes: list[str], ranges: Array, fx: float, min_px: float) -> Array:
    """Ellipse semi-axes ``(N, 2)`` in pixels: class size over ground sample distance."""
    size_m = np.array([TARGET_SIZE_M.get(c, TARGET_SIZE_M["unknown"]) for c in classes],
                      dtype=np.float64).reshape(-1, 2)
    gsd = ranges / fx  # metres per pixel across the line of sight
    with np.errstate(invalid="ignore", divide="ignore"):
        semi: Array = np.maximum(size_m / 2.0 / gsd[:, None], min_px / 2.0)
    return semi


def _draw_ir(image: NDArray[np.float32], u: Array, v: Array, semi: Array, classes: list[str],
             rng: np.random.Generator) -> NDArray[np.uint8]:
    """Add a warm Gaussian blob per target, then quantise."""
    heat = np.array([_IR_HEAT.get(c, _IR_DEFAULT_HEAT) for c in classes])
    heat = heat * rng.uniform(0.8, 1.2, heat.shape)
    height, width = image.shape
    for x, y, (sx, sy), amp in zip(u, v, semi, heat, strict=True):
        sx, sy = max(sx / 1.5, 1.0), max(sy / 1.5, 1.0)  # the semi-axis sits at 1.5 sigma
        x0, x1 = max(int(x - 3 * sx), 0), min(int(x + 3 * sx) + 2, width)
        y0, y1 = max(int(y - 3 * sy), 0), min(int(y + 3 * sy) + 2, height)
        if x0 >= x1 or y0 >= y1:
            continue
        # Pixel (i, j) covers [i, i+1): its centre is i + 0.5 in continuous coordinates.
        gx = np.exp(-0.5 * ((np.arange(x0, x1) + 0.5 - x) / sx) ** 2)
        gy = np.exp(-0.5 * ((np.arange(y0, y1) + 0.5 - y) / sy) ** 2)
        image[y0:y1, x0:x1] += np.float32(amp) * np.outer(gy, gx).astype(np.float32)
    quantised: NDArray[np.uint8] = np.clip(image, 0, 255).astype(np.uint8)
    return quantised


def _draw_eo(image: NDArray[np.float32], u: Array, v: Array, semi: Array,
             rng: np.random.Generator) -> NDArray[np.uint8]:
    """Draw each target as a dark or bright filled ellipse, anti-aliased."""
    out: NDArray[np.uint8] = np.clip(image, 0, 255).astype(np.uint8)
    shades = np.where(rng.random(len(u)) < 0.5, EO_DARK, EO_BRIGHT)
    shift = 4  # sub-pixel centres: coordinates in 1/16 pixel
    one = 1 << shift
    for x, y, (sx, sy), shade in zip(u, v, semi, shades, strict=True):
        centre = (round((x - 0.5) * one), round((y - 0.5) * one))
        axes = (round(sx * one), round(sy * one))
        cv2.ellipse(out, centre, axes, 0.0, 0.0, 360.0, int(shade), -1, cv2.LINE_AA, shift)
    return out


def _encode(image: NDArray[np.uint8], image_format: ImageFormat, quality: int) -> bytes:
    """Encode a grey image as JPEG (``quality`` 0..100) or PNG."""
    if image_format == "jpeg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    else:
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image_format} image")
    return buf.tobytes()
