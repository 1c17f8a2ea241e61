"""Constant-velocity motion model and linear position measurement, vectorised over tracks.

State ``[e, n, ve, vn]`` in mission ENU metres and m/s. The process noise is the
continuous white-acceleration model: ``q`` is the acceleration spectral density
in m²/s³ (config ``fusion.process_noise`` squared), the same on both axes.
Every function takes stacks of K states so one call serves every track, each
with its own time step. The measurement is position only (H = [I 0]); polar
detections arrive already converted (hub.ingest.detections), so every update
is linear.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def transition(dt: ArrayLike) -> Array:
    """Return F(dt), shape (K, 4, 4), for time steps ``dt`` of shape (K,)."""
    dt = np.atleast_1d(np.asarray(dt, dtype=np.float64))
    f = np.broadcast_to(np.eye(4), (dt.shape[0], 4, 4)).copy()
    f[:, 0, 2] = dt
    f[:, 1, 3] = dt
    return f


def process_noise(dt: ArrayLike, q: float) -> Array:
    """Return Q(dt), shape (K, 4, 4), of the continuous white-acceleration model."""
    dt = np.atleast_1d(np.asarray(dt, dtype=np.float64))
    out = np.zeros((dt.shape[0], 4, 4))
    d3, d2 = q * dt**3 / 3.0, q * dt**2 / 2.0
    out[:, 0, 0] = out[:, 1, 1] = d3
    out[:, 0, 2] = out[:, 2, 0] = out[:, 1, 3] = out[:, 3, 1] = d2
    out[:, 2, 2] = out[:, 3, 3] = q * dt
    return out


def predict(x: Array, p: Array, dt: ArrayLike, q: float) -> tuple[Array, Array]:
    """Predict states (K, 4) and covariances (K, 4, 4) forward by ``dt`` (scalar or (K,))."""
    return predict_mean(x, dt), predict_covariance(p, dt, q)


def predict_mean(x: Array, dt: ArrayLike) -> Array:
    """States (K, 4) moved by ``dt`` (scalar or (K,)): F x, a copy."""
    # No broadcast_to: its Python-level checks cost more than the arithmetic of a
    # picture's few hundred rows, and a scalar multiplies every row alike.
    steps = np.asarray(dt, dtype=np.float64)
    x_out = x.copy()
    x_out[:, 0:2] += (steps[:, None] if steps.ndim else steps) * x[:, 2:4]
    return x_out


def predict_covariance(p: Array, dt: ArrayLike, q: float) -> Array:
    """Covariances (K, 4, 4) predicted by ``dt`` (scalar or (K,)): F P Fᵀ + Q, a copy.

    F P Fᵀ is done by block arithmetic instead of two batched matmuls: with
    F = [[I, dt I], [0, I]] it is two row and two column additions.
    """
    steps = np.broadcast_to(np.asarray(dt, dtype=np.float64), (p.shape[0],))
    p_out = p.copy()
    p_out[:, 0:2, :] += steps[:, None, None] * p_out[:, 2:4, :]
    p_out[:, :, 0:2] += steps[:, None, None] * p_out[:, :, 2:4]
    p_out += process_noise(steps, q)
    return p_out


def inv2(m: Array) -> tuple[Array, Array]:
    """Return the inverses and determinants of a stack of 2x2 matrices (K, 2, 2)."""
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - b * c
    inv = np.empty_like(m)
    inv[:, 0, 0] = d / det
    inv[:, 0, 1] = -b / det
    inv[:, 1, 0] = -c / det
    inv[:, 1, 1] = a / det
    return inv, det


def update(x: Array, p: Array, z: Array, r: Array) -> tuple[Array, Array]:
    """Kalman-update states (K, 4), covariances (K, 4, 4) with positions z (K, 2), R (K, 2, 2).

    Uses the Joseph form, which stays symmetric positive definite in float64
    even after many updates with small R.
    """
    s = p[:, 0:2, 0:2] + r
    s_inv, _ = inv2(s)
    gain = p[:, :, 0:2] @ s_inv  # P Hᵀ S⁻¹, (K, 4, 2)
    innovation = z - x[:, 0:2]
    x_out = x + np.einsum("kij,kj->ki", gain, innovation)
    # (I - K H) P (I - K H)ᵀ + K R Kᵀ
    ikh = np.broadcast_to(np.eye(4), p.shape).copy()
    ikh[:, :, 0:2] -= gain
    p_out = ikh @ p @ ikh.transpose(0, 2, 1) + gain @ r @ gain.transpose(0, 2, 1)
    return x_out, p_out
