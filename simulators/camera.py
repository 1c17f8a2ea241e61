"""A UAV's camera: frames of the truth rendered at the UAV's pose, reporting a noisy pose.

The true camera pose is the UAV's (the same position and attitude as its
telemetry) with the scenario's gimbal angles; targets are placed at the ENU
point of their true WGS84 position, so a hub georeferencing onto ground at the
mission origin's height is as right as the reported pose lets it be.

Each frame draws from its own random stream, seeded by the scenario seed, the
sensor id and the frame's ``seq``: a frame is a pure function of those and of
the truth, so a publisher that skips a frame it has no time for changes no other.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

import numpy as np

from hub.ingest.camera import Intrinsics, Pose
from hub.messages import Camera
from simulators.render import RenderedFrame, frame_payload, render_frame
from simulators.scenario import UavCamera
from simulators.targets import Snapshot
from simulators.uav import UavSim

_FRAME_STREAM: Final = 0x46524D  # "FRM": keeps frame streams apart from the sensor's own


class CameraSim:
    """The camera of one UAV: its intrinsics, its gimbal and its frames."""

    def __init__(self, uav: UavSim, spec: UavCamera, seed: int) -> None:
        self.uav, self.spec = uav, spec
        self.intrinsics = Intrinsics.from_camera(Camera(hfov=spec.hfov), spec.width, spec.height)
        self.noise = spec.pose_noise.pose_noise()
        self._seed = [seed, zlib.crc32(uav.spec.id.encode()), _FRAME_STREAM]

    def pose(self, t: float) -> Pose:
        """The true camera pose ``t`` seconds into the scenario."""
        p = self.uav.pose(t)
        lat, lon, alt = self.uav.position(p)
        g = self.spec.gimbal
        return Pose.at(self.uav.frame, lat, lon, alt, p.heading, 0.0, p.roll, g.az, g.el)

    def render(self, t: float, seq: int, snap: Snapshot) -> RenderedFrame:
        """Render frame ``seq`` of the truth ``snap`` at scenario time ``t``."""
        lat, lon, alt = snap.geodetic
        targets = np.stack(self.uav.frame.to_enu(lat, lon, alt), axis=-1).reshape(-1, 3)
        classes = [snap.class_names[c] for c in snap.cls.tolist()]
        s = self.spec
        return render_frame(self.intrinsics, self.pose(t), targets, classes, s.band,
                            np.random.default_rng([*self._seed, seq]), width=s.width,
                            height=s.height, quality=s.quality, image_format=s.format,
                            pose_noise=self.noise)

    def payload(self, ts: float, seq: int, t: float, snap: Snapshot) -> dict[str, Any]:
        """The ``sensors/{id}/frames`` message of frame ``seq``."""
        frame = self.render(t, seq, snap)
        return frame_payload(frame, ts, seq, self.spec.hfov, self.uav.frame)
