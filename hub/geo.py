"""WGS84 geodesy: a local East-North-Up frame at the mission origin, vectorised.

Forward (geodetic → ENU) is closed form; the inverse uses one step of
Bowring's method, accurate to well under a millimetre at mission scales.
tests/unit/test_geo.py checks both against pymap3d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

A = 6_378_137.0
F = 1.0 / 298.257_223_563
B = A * (1.0 - F)
E2 = F * (2.0 - F)
EP2 = E2 / (1.0 - E2)

Array = NDArray[np.float64]


def geodetic_to_ecef(lat: ArrayLike, lon: ArrayLike, alt: ArrayLike) -> tuple[Array, Array, Array]:
    """Convert WGS84 latitude, longitude (degrees) and height (m) to ECEF metres."""
    phi, lam = np.radians(lat), np.radians(lon)
    h = np.asarray(alt, dtype=np.float64)
    sin_phi = np.sin(phi)
    n = A / np.sqrt(1.0 - E2 * sin_phi**2)
    x = (n + h) * np.cos(phi) * np.cos(lam)
    y = (n + h) * np.cos(phi) * np.sin(lam)
    z = (n * (1.0 - E2) + h) * sin_phi
    return x, y, z


def ecef_to_geodetic(x: ArrayLike, y: ArrayLike, z: ArrayLike) -> tuple[Array, Array, Array]:
    """Convert ECEF metres to WGS84 latitude, longitude (degrees) and height (m).

    Bowring's formula from the parametric latitude of the point's projection:
    one step is within 3 µm of the converged latitude for points within 200 km
    of a mission origin and heights of -3 to 9 km (a second step changes
    nothing a metre can see, at the cost of six more trigonometric calls).
    """
    x, y, z = (np.asarray(v, dtype=np.float64) for v in (x, y, z))
    p = np.hypot(x, y)
    beta = np.arctan2(A * z, B * p)
    sin_beta, cos_beta = np.sin(beta), np.cos(beta)
    phi = np.arctan2(z + EP2 * B * (sin_beta * sin_beta * sin_beta),
                     p - E2 * A * (cos_beta * cos_beta * cos_beta))
    sin_phi = np.sin(phi)
    n = A / np.sqrt(1.0 - E2 * sin_phi**2)
    h = p * np.cos(phi) + (z + E2 * n * sin_phi) * sin_phi - n
    return np.degrees(phi), np.degrees(np.arctan2(y, x)), h


@dataclass(frozen=True)
class EnuFrame:
    """A local East-North-Up frame whose origin is a WGS84 point."""

    lat0: float
    lon0: float
    alt0: float = 0.0
    _rotation: Array = field(init=False, repr=False, compare=False)
    _origin_ecef: Array = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        phi, lam = np.radians(self.lat0), np.radians(self.lon0)
        sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
        rotation = np.array([[-sl, cl, 0.0], [-sp * cl, -sp * sl, cp], [cp * cl, cp * sl, sp]])
        object.__setattr__(self, "_rotation", rotation)
        origin = np.array(geodetic_to_ecef(self.lat0, self.lon0, self.alt0))
        object.__setattr__(self, "_origin_ecef", origin)

    def to_enu(self, lat: ArrayLike, lon: ArrayLike, alt: ArrayLike = 0.0
               ) -> tuple[Array, Array, Array]:
        """Geodetic degrees and metres to east, north, up metres in this frame."""
        ecef = np.stack(np.broadcast_arrays(*geodetic_to_ecef(lat, lon, alt)))
        d = ecef - self._origin_ecef.reshape((3,) + (1,) * (ecef.ndim - 1))
        e, n, u = np.tensordot(self._rotation, d, axes=1)
        return e, n, u

    def point_to_enu(self, lat: float, lon: float, alt: float = 0.0
                     ) -> tuple[float, float, float]:
        """One geodetic point to east, north, up metres: ``to_enu`` in plain floats, for speed."""
        phi, lam = math.radians(lat), math.radians(lon)
        sin_phi, cos_phi = math.sin(phi), math.cos(phi)
        n = A / math.sqrt(1.0 - E2 * sin_phi * sin_phi)
        ox, oy, oz = self._origin_ecef.tolist()
        dx = (n + alt) * cos_phi * math.cos(lam) - ox
        dy = (n + alt) * cos_phi * math.sin(lam) - oy
        dz = (n * (1.0 - E2) + alt) * sin_phi - oz
        (a, b, c), (d, e, f), (g, h, i) = self._rotation.tolist()
        return a * dx + b * dy + c * dz, d * dx + e * dy + f * dz, g * dx + h * dy + i * dz

    def to_geodetic(self, east: ArrayLike, north: ArrayLike, up: ArrayLike = 0.0
                    ) -> tuple[Array, Array, Array]:
        """East, north, up metres in this frame to geodetic degrees and metres."""
        enu = np.stack(np.broadcast_arrays(*(np.asarray(v, dtype=np.float64)
                                             for v in (east, north, up))))
        ecef = np.tensordot(self._rotation.T, enu, axes=1)
        ecef += self._origin_ecef.reshape((3,) + (1,) * (ecef.ndim - 1))
        return ecef_to_geodetic(*ecef)
