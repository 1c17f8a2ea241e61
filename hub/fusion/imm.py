"""Interacting multiple model (IMM) filter of four motion models, vectorised over tracks.

Four models share the state ``[e, n, ve, vn]`` and the CV transition of
hub.fusion.models, each with its own acceleration spectral density
``q[j]`` (``noises``): a *stationary* one (``STATIONARY``: velocity held at
zero, no process noise, for parked vehicles and people standing), two
*quiet* ones for targets going straight (``SLOW`` and ``QUIET``, the same
model), and a loud *manoeuvre* one (the last) for turns and speed changes.
Each track carries one state per model ``xm`` (K, J, 4), ``pm`` (K, J, 4, 4)
and the model probabilities ``mu`` (K, J); its estimate is the
moment-matched mixture (``combine``).

The stationary model is the CV model with zero velocity, zero velocity
covariance and q = 0, so the common prediction leaves it where it is; only
mixing must put it back there: its mixed state keeps the mixed position and
drops the velocity (``mix``). A parked target's position is then the running
average of its measurements (its error falls as 1/√n), where a CV model keeps
wandering with the velocity it believes in.

The two quiet models differ only in the velocity a new track's starts from
(``speed_priors``): ``SLOW`` at rest within a walker's speed, ``QUIET``
within a vehicle's. Together they are a two-component prior on a new
track's velocity. One zero-mean Gaussian wide enough for vehicles (the
model of a single quiet model) pulls a vehicle's estimated speed towards
rest until many measurements outweigh it, and gives a walker a velocity far
noisier than its speed; each component fits one of them, and the
likelihoods pick which within a few updates. Once the velocity is observed
the two hold the same estimate.

Cycle. Every scan predicts every model of every track (``predict``); only
the tracks the scan updates are mixed (``mix``, with the Markov switching
probabilities over the time since their last update) and updated
(``update``: each model's Kalman update, then the model probabilities from
the models' measurement likelihoods). Mixing once per update rather than
once per scan of any sensor keeps the per-scan cost near that of a single
filter; because the models share F, mixing predicted states gives the same
means as predicting mixed ones, and the covariances differ only in which
model's Q the switched share was predicted with. The switching matrix comes
from a continuous-time Markov chain (``Switching``: stationary ⇄ quiet ⇄
manoeuvre, either quiet model), so it is right for any interval between
updates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


STATIONARY, SLOW, QUIET, MANOEUVRE = 0, 1, 2, 3
"""Model indices; the manoeuvre model is the widest and is used for gating."""
N_MODELS = 4
NEW_TRACK_MU = (0.01, 0.45, 0.45, 0.09)
"""A new track's model probabilities: most targets go straight, as slowly as
a walker or as fast as a vehicle alike; few stand or turn."""


def noises(quiet_noise: float, manoeuvre_noise: float) -> Array:
    """Each model's acceleration spectral density q (m²/s³) from its noise in m/s²."""
    return np.array([0.0, quiet_noise**2, quiet_noise**2, manoeuvre_noise**2])


def speed_priors(slow_sigma: float, speed_sigma: float) -> Array:
    """Each model's velocity variance per axis in a new track (m²/s²); none when stationary."""
    return np.array([0.0, slow_sigma**2, speed_sigma**2, speed_sigma**2])


_TINY = np.finfo(np.float64).tiny
_DISTINCT_FROM = 90
"""``Switching.over`` looks for repeated intervals from this many on: below, the matrices of
all of them cost less than the sort (the two meet at 80 to 100 intervals, 3 to 8 distinct)."""


class Switching:
    """The models' Markov chain in continuous time: stationary ⇄ quiet ⇄ manoeuvre.

    A moving target stops at ``stop_rate`` per second (either quiet model to
    stationary); every other change (starting, starting or ending a
    manoeuvre) happens at ``switch_rate``, split evenly between the two quiet
    models where it enters them. A stationary target never turns without
    first moving, so the chain has no stationary ⇄ manoeuvre edge, and no
    target changes from one quiet model to the other (they differ only in
    how a track began). With the quiet models lumped the chain is the
    birth-death chain stationary ⇄ quiet ⇄ manoeuvre. It is reversible, so
    its generator G is similar to a symmetric matrix, D^½ G D^-½ for the
    diagonal D of its equilibrium, whose eigendecomposition (real, even
    where eigenvalues coincide) gives the transition matrix over ``tau``,
    exp(G tau), once.
    """

    def __init__(self, stop_rate: float, switch_rate: float) -> None:
        s, h = switch_rate, switch_rate / 2.0
        self.generator = np.array([[-s, h, h, 0.0],
                                   [stop_rate, -stop_rate - s, 0.0, s],
                                   [stop_rate, 0.0, -stop_rate - s, s],
                                   [0.0, h, h, -s]])
        # The equilibrium by detailed balance: p_quiet / p_stationary = (s/2) / stop,
        # p_manoeuvre / p_quiet = s / (s/2).
        quiet = h / stop_rate
        root = np.sqrt(np.array([1.0, quiet, quiet, 2.0 * quiet]))
        symmetric = self.generator * root[:, None] / root[None, :]
        rates, vectors = np.linalg.eigh(0.5 * (symmetric + symmetric.T))
        self._rates = rates
        self._v = vectors / root[:, None]
        self._v_inv = vectors.T * root[None, :]

    def over(self, tau: Array) -> Array:
        """Return the (K, J, J) transition matrices over intervals ``tau`` (K,) s.

        ``pi[k, i, j]``: the probability of being in model j after ``tau[k]``
        when in model i before. A scan's tracks were mostly last updated by
        the same few scans: from ``_DISTINCT_FROM`` tracks on, each distinct
        interval's matrix is computed once (a stack of a radar scan's hundreds
        of tiny matrix products costs more than the sort that finds them), and
        each is the same floats as if computed alone.
        """
        if tau.shape[0] < _DISTINCT_FROM:
            return self._over(tau)
        taus, of = np.unique(tau, return_inverse=True)
        # take, not indexing: one copy of each 4x4 block instead of numpy's general gather.
        pi: Array = np.take(self._over(taus), of, axis=0)
        return pi

    def _over(self, tau: Array) -> Array:
        decay = np.exp(np.multiply.outer(tau, self._rates))  # (K, J)
        pi: Array = (self._v * decay[:, None, :]) @ self._v_inv
        return pi


def predict(xm: Array, pm: Array, dt: float | Array, q: Array) -> tuple[Array, Array]:
    """Predict every model state (K, J, 4) and covariance (K, J, 4, 4) by ``dt`` s, in place.

    ``dt`` is one step for all or a (K,) array, one per track (the tracker
    keeps each track at the time of its last update and predicts from there).
    F P Fᵀ is two row and two column additions, since F = [[I, dt I], [0, I]].
    The arithmetic runs on copies with the tracks last (``predict_tracks_last``):
    a per-track step broadcast over the tiny trailing axes cost numpy some 30
    ns an entry, ten times the copies.
    """
    steps = np.asarray(dt, dtype=np.float64)
    xt, pt = _tracks_last(xm), _tracks_last(pm)
    predict_tracks_last(xt, pt, steps, q)
    xm[...] = np.moveaxis(xt, -1, 0)
    pm[...] = np.moveaxis(pt, -1, 0)
    return xm, pm


def predict_tracks_last(xt: Array, pt: Array, tau: Array, q: Array) -> None:
    """``predict`` of states (J, 4, K), covariances (J, 4, 4, K) by ``tau`` (K,) or (), in place.

    The same floats as ``predict``, for a caller that holds its tracks last already.
    """
    xt[:, 0:2] += tau * xt[:, 2:4]
    pt[:, 0:2, :] += tau * pt[:, 2:4, :]
    pt[:, :, 0:2] += tau * pt[:, :, 2:4]
    # The white-acceleration Q of each model, its non-zero entries added in place
    # (no zero-filled array): q dt³/3, q dt²/2 and q dt per axis.
    qj = q[:, None]  # (J, 1) against tau (K,)
    tau2 = tau * tau  # products, not powers: numpy's power calls pow() per entry for a cube
    d3, d2, d1 = qj * (tau2 * tau) / 3.0, qj * tau2 / 2.0, qj * tau
    for i in (0, 1):
        pt[:, i, i] += d3
        pt[:, i, i + 2] += d2
        pt[:, i + 2, i] += d2
        pt[:, i + 2, i + 2] += d1


def mix(xm: Array, pm: Array, mu: Array, pi: Array) -> tuple[Array, Array, Array]:
    """Mix the model states with transition matrices ``pi`` (K, J, J); return (xm, pm, mu).

    The returned ``mu`` is the predicted model probabilities. The spread of
    the means about model j's mixed mean is Σᵢ wᵢⱼ yᵢ yᵢᵀ - ȳⱼ ȳⱼᵀ with the
    means y taken from the manoeuvre model's (small numbers, no cancellation).
    The stationary model's mixed state is put back at rest (velocity and its
    covariance zero): mixing is where the moving models' velocities would
    leak into it.
    """
    x0, p0, c = _mix_tracks_last(_tracks_last(xm), _tracks_last(pm), mu, pi)
    return _tracks_first(x0), _tracks_first(p0), _tracks_first(c)


def _mix_tracks_last(xt: Array, pt: Array, mu: Array, pi: Array) -> tuple[Array, Array, Array]:
    """``mix`` of states (J, 4, K) and covariances (J, 4, 4, K) with the tracks last.

    Returns the mixed states, covariances and predicted mu (J, K), the tracks last.

    Every step runs with the tracks last, where numpy's elementwise loops run
    along the tracks, and every sum over models is written out
    (``_sum_over_models``) or one ``einsum`` (``_mixed``) instead of a stack
    of tiny matrix products (one BLAS call per track and product: 0.9M of a
    radar scan's 1.65M instructions of mixing).
    """
    # joint[i, j]: P(i before and j now), laid out with the tracks last (numpy
    # would otherwise keep the tracks-first order of its inputs).
    joint = np.multiply(mu.T[:, None, :], pi.transpose(1, 2, 0), order="C")
    # A model no track can be in (probability 0 after underflow) gets weight 0, not 0/0.
    c = np.maximum(_sum_over_models(joint), _TINY)
    w = joint / c  # w[i, j]: P(i before | j now)
    ref = xt[MANOEUVRE]
    y = xt - ref
    second = pt + _outer(y)
    y0 = _mixed(w, y)
    p0 = _mixed(w, second)
    p0 -= _outer(y0)
    x0 = ref + y0
    x0[STATIONARY, 2:4] = 0.0
    p0[STATIONARY, 2:4, :] = 0.0
    p0[STATIONARY, :, 2:4] = 0.0
    return x0, p0, c


def _sum_over_models(terms: Array) -> Array:
    """Σᵢ terms[i], added in the models' order (the same bits for a track alone or in a stack)."""
    total: Array = terms[0] + terms[1]
    for term in terms[2:]:
        total += term
    return total


def _mixed(w: Array, a: Array) -> Array:
    """Σᵢ w[i, j] a[i] for each model j, w (I, J, K), a (I, ..., K), in the models' order.

    One ``einsum``: its loop adds each entry's terms in the models' order
    along the tracks, with no temporary per term: the same bits as adding
    one model's product at a time, for a track alone or in any stack
    (tests/unit/test_fusion_imm.py), in one numpy call where that took
    seven: faster for a few tracks, about as fast for a radar scan's 260.
    """
    mixed: Array = np.einsum("ijk,i...k->j...k", w, a)
    return mixed


def _outer(yt: Array) -> Array:
    """The outer products y yᵀ (J, 4, 4, K) of vectors y (J, 4, K), the tracks last."""
    yy: Array = yt[:, :, None] * yt[:, None, :]
    return yy


def _tracks_last(a: Array) -> Array:
    """A contiguous copy of ``a`` (K, ...) with the tracks on the last axis (..., K)."""
    return a.transpose((*range(1, a.ndim), 0)).copy()


def _tracks_first(a: Array) -> Array:
    """A contiguous copy of ``a`` (..., K) with the tracks back on the first axis (K, ...)."""
    return np.ascontiguousarray(a.transpose((a.ndim - 1, *range(a.ndim - 1))))


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


def mix_update(xm: Array, pm: Array, mu: Array, pi: Array, z: Array, r: Array
               ) -> tuple[Array, Array, Array]:
    """Return ``update(*mix(xm, pm, mu, pi), z, r)``, in fewer numpy calls.

    Same algebra, written for the tiny stacks of one scan (a few to a few
    hundred tracks), where each numpy call costs more than its arithmetic:
    S⁻¹ is the 2x2 adjugate over det, and the Kalman products are written out
    entry by entry. The arithmetic runs with the tracks last
    (``mix_update_tracks_last``), as ``predict``'s does, without numpy
    broadcasting a per-track operand over the tiny trailing axes.
    """
    x_out, p_out, mu_out = mix_update_tracks_last(_tracks_last(xm), _tracks_last(pm), mu, pi,
                                                  z, r)
    return _tracks_first(x_out), _tracks_first(p_out), _tracks_first(mu_out)


def mix_update_tracks_last(xt: Array, pt: Array, mu: Array, pi: Array, z: Array, r: Array
                           ) -> tuple[Array, Array, Array]:
    """``mix_update`` of states (J, 4, K) and covariances (J, 4, 4, K) held with the tracks last.

    ``mu`` (K, J), ``pi`` (K, J, J), z (K, 2) and R (K, 2, 2) as in
    ``mix_update``; returns the states (J, 4, K), covariances (J, 4, 4, K) and
    model probabilities (J, K), the tracks last.
    """
    x, p, c_mu = _mix_tracks_last(xt, pt, mu, pi)
    # The small inputs as transposed views: elementwise arithmetic gives the
    # same bits at any stride.
    return _update_tracks_last(x, p, c_mu, z.T, r.transpose(1, 2, 0))


def _update_tracks_last(x: Array, p: Array, c_mu: Array, z: Array, r: Array
                        ) -> tuple[Array, Array, Array]:
    """``mix_update``'s Kalman update of mixed states (J, 4, K), covariances (J, 4, 4, K).

    ``c_mu`` (J, K): the predicted model probabilities; z (2, K), R (2, 2, K).
    """
    # Kalman update of every model: S = H P Hᵀ + R, gain P Hᵀ S⁻¹, every 2x2
    # and 4x2 product written out (numpy's matmul over a stack of tiny
    # matrices costs far more per matrix than its arithmetic).
    s = p[:, 0:2, 0:2] + r
    a, b, c, d = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
    det = a * d - b * c
    y0, y1 = z[0] - x[:, 0], z[1] - x[:, 1]
    # u = S⁻¹ y with S⁻¹ = [[d, -b], [-c, a]] / det
    u0, u1 = (d * y0 - b * y1) / det, (a * y1 - c * y0) / det
    ph0, ph1 = p[:, :, 0], p[:, :, 1]  # P Hᵀ, (J, 4, K) each
    x_out = x + ph0 * u0[:, None] + ph1 * u1[:, None]
    # Gain columns: P Hᵀ S⁻¹.
    g0 = (ph0 * d[:, None] - ph1 * c[:, None]) / det[:, None]
    g1 = (ph1 * a[:, None] - ph0 * b[:, None]) / det[:, None]
    # In place where the order of operations allows: each temporary the size of
    # P is another pass over memory.
    p_out = p - g0[:, :, None] * p[:, None, 0]
    p_out -= g1[:, :, None] * p[:, None, 1]
    p_out = p_out + np.swapaxes(p_out, 1, 2)
    p_out *= 0.5
    # Likelihoods relative to the best model of each track, so none underflows.
    log_l = -0.5 * ((y0 * u0 + y1 * u1) + np.log(det))
    post = c_mu * np.exp(log_l - log_l.max(axis=0))
    return x_out, p_out, post / post.sum(axis=0)
