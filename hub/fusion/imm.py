"""Interacting multiple model (IMM) filter of constant-velocity models, vectorised over tracks.

Both models are the CV model of hub.fusion.models, each with its own
acceleration spectral density ``q[j]``: a quiet one for targets going straight and a loud
one for turns and speed changes. Each track carries one state per model
``xm`` (K, J, 4), ``pm`` (K, J, 4, 4) and the model probabilities ``mu``
(K, J); its estimate is the moment-matched mixture (``combine``).

Cycle. Every scan predicts every model of every track (``predict``); only
the tracks the scan updates are mixed (``mix``, with the Markov switching
probabilities over the time since their last update) and updated
(``update``: each model's Kalman update, then the model probabilities from
the models' measurement likelihoods). Mixing once per update rather than
once per scan of any sensor keeps the per-scan cost near that of a single
filter; because both models share F, mixing predicted states gives the same
means as predicting mixed ones, and the covariances differ only in which
model's Q the switched share was predicted with. The switching matrix comes
from a continuous-time Markov chain with exit rate ``rate[j]`` per second,
so it is right for any interval between updates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def switching(tau: Array, rate: Array) -> Array:
    """Return the (K, J, J) model transition matrices over intervals ``tau`` (K,) s.

    Model ``j`` is left with probability 1 - exp(-rate[j] tau), to the other
    models in equal shares.
    """
    j = rate.shape[0]
    leave = 1.0 - np.exp(-tau[:, None] * rate[None, :])  # (K, J)
    pi = np.repeat((leave / max(j - 1, 1))[:, :, None], j, axis=2)
    diag = np.arange(j)
    pi[:, diag, diag] = 1.0 - leave
    return pi


def predict(xm: Array, pm: Array, dt: float | Array, q: Array) -> tuple[Array, Array]:
    """Predict every model state (K, J, 4) and covariance (K, J, 4, 4) by ``dt`` s, in place.

    ``dt`` is one step for all or a (K,) array, one per track (the tracker
    keeps each track at the time of its last update and predicts from there).
    F P Fᵀ is two row and two column additions, since F = [[I, dt I], [0, I]].
    The arithmetic runs on copies with the tracks last (``_predict_tracks_last``):
    a per-track step broadcast over the tiny trailing axes cost numpy some 30
    ns an entry, ten times the copies.
    """
    steps = np.asarray(dt, dtype=np.float64)
    xt, pt = np.moveaxis(xm, 0, -1).copy(), np.moveaxis(pm, 0, -1).copy()
    _predict_tracks_last(xt, pt, steps, q)
    xm[...] = np.moveaxis(xt, -1, 0)
    pm[...] = np.moveaxis(pt, -1, 0)
    return xm, pm


def _predict_tracks_last(xt: Array, pt: Array, tau: Array, q: Array) -> None:
    """``predict`` of states (J, 4, K), covariances (J, 4, 4, K) by ``tau`` (K,) or (), in place."""
    xt[:, 0:2] += tau * xt[:, 2:4]
    pt[:, 0:2, :] += tau * pt[:, 2:4, :]
    pt[:, :, 0:2] += tau * pt[:, :, 2:4]
    # The white-acceleration Q of each model, its non-zero entries added in place
    # (no zero-filled array): q dt³/3, q dt²/2 and q dt per axis.
    qj = q[:, None]  # (J, 1) against tau (K,)
    d3, d2, d1 = qj * tau**3 / 3.0, qj * tau**2 / 2.0, qj * tau
    for i in (0, 1):
        pt[:, i, i] += d3
        pt[:, i, i + 2] += d2
        pt[:, i + 2, i] += d2
        pt[:, i + 2, i + 2] += d1


def mix(xm: Array, pm: Array, mu: Array, tau: Array, rate: Array
        ) -> tuple[Array, Array, Array]:
    """Mix the two model states after intervals ``tau`` (K,); return (xm, pm, predicted mu).

    With two models the spread of the means about model j's mixed mean is
    w0j w1j (x0 - x1)(x0 - x1)ᵀ, so no (K, J, J, 4, 4) array is built.
    """
    pi = switching(tau, rate)
    c = mu[:, 0, None] * pi[:, 0] + mu[:, 1, None] * pi[:, 1]  # predicted probabilities
    w = mu[:, :, None] * pi / c[:, None, :]  # w[k, i, j] = P(model i before | j now)
    x0 = w[:, 0, :, None] * xm[:, 0, None] + w[:, 1, :, None] * xm[:, 1, None]
    delta = xm[:, 0] - xm[:, 1]
    outer = delta[:, :, None] * delta[:, None, :]
    p0 = (w[:, 0, :, None, None] * pm[:, 0, None] + w[:, 1, :, None, None] * pm[:, 1, None]
          + (w[:, 0] * w[:, 1])[:, :, None, None] * outer[:, None])
    return x0, p0, c


def update(xm: Array, pm: Array, mu: Array, z: Array, r: Array) -> tuple[Array, Array, Array]:
    """Update every model of K tracks with positions z (K, 2), R (K, 2, 2); new mu too.

    The covariance update is P - K H P, symmetrised: a third of the Joseph
    form's matrix products, and float64 keeps it positive definite here.
    """
    s = pm[..., 0:2, 0:2] + r[:, None]
    a, b, c, d = s[..., 0, 0], s[..., 0, 1], s[..., 1, 0], s[..., 1, 1]
    det = a * d - b * c
    s_inv = np.stack((np.stack((d, -b), axis=-1), np.stack((-c, a), axis=-1)), axis=-2)
    s_inv /= det[..., None, None]
    y = z[:, None, :] - xm[..., 0:2]
    u = np.stack((s_inv[..., 0, 0] * y[..., 0] + s_inv[..., 0, 1] * y[..., 1],
                  s_inv[..., 1, 0] * y[..., 0] + s_inv[..., 1, 1] * y[..., 1]), axis=-1)
    d2 = (y * u).sum(axis=-1)
    x_out = xm + pm[..., :, 0] * u[..., 0:1] + pm[..., :, 1] * u[..., 1:2]
    gain = pm[..., :, 0:2] @ s_inv  # P Hᵀ S⁻¹, (K, J, 4, 2)
    p_out = pm - gain @ pm[..., 0:2, :]
    p_out = 0.5 * (p_out + np.swapaxes(p_out, -1, -2))
    # Likelihoods relative to the best model of each track, so none underflows.
    log_l = -0.5 * (d2 + np.log(det))
    post = mu * np.exp(log_l - log_l.max(axis=1, keepdims=True))
    return x_out, p_out, post / post.sum(axis=1, keepdims=True)


def combine(xm: Array, pm: Array, mu: Array) -> tuple[Array, Array]:
    """Return the moment-matched mixture states (K, 4) and covariances (K, 4, 4)."""
    x = np.einsum("kj,kjd->kd", mu, xm)
    dx = xm - x[:, None, :]
    p = np.einsum("kj,kjab->kab", mu, pm + dx[..., :, None] * dx[..., None, :])
    return x, p


def mix_update(xm: Array, pm: Array, mu: Array, tau: Array, rate: Array, z: Array, r: Array
               ) -> tuple[Array, Array, Array]:
    """Return ``update(*mix(xm, pm, mu, tau, rate), z, r)`` for two models, in fewer numpy calls.

    Same algebra, written for the tiny stacks of one scan (a few to a few
    dozen tracks), where each numpy call costs more than its arithmetic: the
    mixing weights come from one (K, 2, 2) product, the mixed covariances
    from P1 + w0 (P0 - P1 + w1 δδᵀ), S⁻¹ is the 2x2 adjugate over det, and
    the Kalman products are written out entry by entry.
    """
    stay = np.exp(np.multiply.outer(tau, -rate))  # (K, 2): P(model i kept over tau)
    # Row i of a: mu_i times [stay_i, leave_i], i.e. mu_i pi[i, j] in j order for
    # i = 0 and in reversed j order for i = 1.
    a = mu[:, :, None] * np.stack((stay, 1.0 - stay), axis=-1)
    c_mu = a[:, 0] + a[:, 1, ::-1]  # predicted model probabilities (K, 2)
    w0 = a[:, 0] / c_mu  # P(model 0 before | model j now)
    x1, p1 = xm[:, 1, None], pm[:, 1, None]
    delta = xm[:, 0] - xm[:, 1]
    x = x1 + w0[:, :, None] * delta[:, None]
    spread = (1.0 - w0)[:, :, None, None] * (delta[:, :, None] * delta[:, None, :])[:, None]
    p = p1 + w0[:, :, None, None] * ((pm[:, 0] - pm[:, 1])[:, None] + spread)
    # Kalman update of both models: S = H P Hᵀ + R, gain P Hᵀ S⁻¹, every 2x2
    # and 4x2 product written out (numpy's matmul over a stack of tiny
    # matrices costs far more per matrix than its arithmetic).
    s = p[..., 0:2, 0:2] + r[:, None]
    a, b, c, d = s[..., 0, 0], s[..., 0, 1], s[..., 1, 0], s[..., 1, 1]
    det = a * d - b * c
    y0, y1 = z[:, None, 0] - x[..., 0], z[:, None, 1] - x[..., 1]
    # u = S⁻¹ y with S⁻¹ = [[d, -b], [-c, a]] / det
    u0, u1 = (d * y0 - b * y1) / det, (a * y1 - c * y0) / det
    ph0, ph1 = p[..., :, 0], p[..., :, 1]  # P Hᵀ, (K, 2, 4) each
    x_out = x + ph0 * u0[..., None] + ph1 * u1[..., None]
    # Gain columns: P Hᵀ S⁻¹.
    g0 = (ph0 * d[..., None] - ph1 * c[..., None]) / det[..., None]
    g1 = (ph1 * a[..., None] - ph0 * b[..., None]) / det[..., None]
    p_out = p - g0[..., :, None] * p[..., 0, None, :] - g1[..., :, None] * p[..., 1, None, :]
    p_out = 0.5 * (p_out + np.swapaxes(p_out, -1, -2))
    # Likelihoods relative to the best model of each track, so none underflows.
    log_l = -0.5 * ((y0 * u0 + y1 * u1) + np.log(det))
    post = c_mu * np.exp(log_l - log_l.max(axis=1, keepdims=True))
    return x_out, p_out, post / post.sum(axis=1, keepdims=True)
