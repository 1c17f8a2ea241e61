"""The data that flows from ingest into the trackers: one sensor scan as arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Scan:
    """Position measurements from one sensor at one measurement time, in mission ENU.

    Attributes:
        t: measurement time, epoch seconds.
        sensor: index of the sensor in the config's ``sensors`` list.
        z: (N, 2) east, north in metres.
        R: (N, 2, 2) measurement covariance in m².
        cls: (N,) index into ``hub.messages.CLASSES``.
        conf: (N,) classifier confidence in [0, 1].
    """

    t: float
    sensor: int
    z: NDArray[np.float64]
    R: NDArray[np.float64]
    cls: NDArray[np.int16]
    conf: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def take(self, rows: NDArray[np.intp]) -> Scan:
        """The scan of measurements ``rows`` of this one, in that order."""
        return Scan(self.t, self.sensor, self.z[rows], self.R[rows], self.cls[rows],
                    self.conf[rows])
