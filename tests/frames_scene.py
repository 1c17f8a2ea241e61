"""A camera-only UAV orbiting a few targets, rendered by simulators/render.py, for tests.

The UAV flies a clockwise orbit of ``RADIUS_M`` at ``HEIGHT_M`` above the
ground around ``CENTRE``, its camera turned right (``az = 90``) and down onto
the centre; the targets stand or drive slowly near the centre. Frames report
the pose with the renderer's default noise (``PoseNoise()``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
import numpy as np
from numpy.typing import NDArray

from hub.config import DEFAULT_CONFIG, HubConfig, Imagery, Sensor, load_config
from hub.geo import EnuFrame
from hub.ingest.camera import Intrinsics, LevelTerrain, Pose
from hub.messages import Camera
from simulators.render import Band, frame_message, render_frame

CAMERA_ID = "ken-cam-1"
CENTRE = np.array([400.0, 300.0])
RADIUS_M, HEIGHT_M = 300.0, 400.0
ORBIT_S = 120.0
HFOV = 60.0
W, H = 1280, 720
# East, north offsets from the centre (m), velocity east, north (m/s), class.
TARGETS = [((-60.0, 20.0), (0.0, 0.0), "vehicle"), ((50.0, -40.0), (0.0, 0.0), "vehicle"),
           ((10.0, 70.0), (0.0, 0.0), "vehicle"), ((-30.0, -60.0), (3.0, 1.0), "vehicle")]


def camera_config(workers: int = 0, **imagery: object) -> HubConfig:
    """The default config plus a camera-only UAV released to ``ken``."""
    config = load_config(DEFAULT_CONFIG)
    cam = Sensor(id=CAMERA_ID, nation="KEN", kind="camera", release_to=["ken"], platform=False)
    return msgspec.structs.replace(config, sensors=[*config.sensors, cam],
                                   imagery=Imagery(workers=workers, **imagery))  # type: ignore[arg-type]


def enu_of(config: HubConfig) -> EnuFrame:
    """The mission frame of ``config``."""
    o = config.mission.origin
    return EnuFrame(o.lat, o.lon, o.alt)


@dataclass(frozen=True)
class Scene:
    """Where the targets and the UAV are at any time ``t`` (epoch seconds)."""

    enu: EnuFrame
    t0: float

    def targets(self, t: float) -> NDArray[np.float64]:
        """Target positions ``(N, 3)`` in ENU on the ground at ``t``."""
        dt = t - self.t0
        en = np.array([[CENTRE[0] + p[0] + v[0] * dt, CENTRE[1] + p[1] + v[1] * dt]
                       for p, v, _ in TARGETS])
        up = LevelTerrain(self.enu, self.enu.alt0).height(en[:, 0], en[:, 1])
        return np.column_stack([en, up])

    def pose(self, t: float) -> Pose:
        """The UAV's true pose at ``t``: on the orbit, camera on the centre."""
        theta = 2.0 * math.pi * (t - self.t0) / ORBIT_S
        east = CENTRE[0] + RADIUS_M * math.sin(theta)
        north = CENTRE[1] + RADIUS_M * math.cos(theta)
        heading = (math.degrees(theta) + 90.0) % 360.0
        el = -math.degrees(math.atan2(HEIGHT_M, RADIUS_M))
        return Pose(east, north, HEIGHT_M, heading, 0.0, 0.0, 90.0, el)

    def message(self, t: float, seq: int, rng: np.random.Generator, band: Band = "ir",
                width: int = W, height: int = H) -> tuple[str, bytes]:
        """The frames topic and payload the UAV publishes at ``t``."""
        intrinsics = Intrinsics.from_camera(Camera(hfov=HFOV), width, height)
        rendered = render_frame(intrinsics, self.pose(t), self.targets(t),
                                [c for _, _, c in TARGETS], band, rng, width=width,
                                height=height)
        return frame_message(CAMERA_ID, rendered, t, seq, HFOV, self.enu)


def frame_records(scene: Scene, seconds: float, rate_hz: float = 5.0, seed: int = 1,
                  latency_s: float = 0.05) -> list[tuple[float, str, bytes]]:
    """A recording's records ``(t_received, topic, payload)`` of the UAV's frames."""
    rng = np.random.default_rng(seed)
    out = []
    for seq in range(int(seconds * rate_hz)):
        t = scene.t0 + seq / rate_hz
        topic, payload = scene.message(t, seq, rng)
        out.append((t + latency_s, topic, payload))
    return out
