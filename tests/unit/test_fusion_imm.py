"""IMM of CV models: each model matches the single Kalman filter; mixing and model probabilities."""

import numpy as np
import pytest
import scipy.linalg

from hub.fusion import imm, models


def _random_states(rng: np.random.Generator, k: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(k, j, 4)) * 10.0
    a = rng.normal(size=(k, j, 4, 4))
    return x, a @ np.swapaxes(a, -1, -2) + np.eye(4)


def test_each_model_predicts_and_updates_like_the_single_filter() -> None:
    rng = np.random.default_rng(3)
    xm, pm = _random_states(rng, 5, 2)
    q = np.array([0.09, 9.0])
    xp, pp = imm.predict(xm.copy(), pm.copy(), 1.5, q)
    for j in range(2):
        x1, p1 = models.predict(xm[:, j], pm[:, j], 1.5, q[j])
        np.testing.assert_allclose(xp[:, j], x1)
        np.testing.assert_allclose(pp[:, j], p1)
    z = rng.normal(size=(5, 2)) * 10.0
    r = np.broadcast_to(np.diag([25.0, 100.0]), (5, 2, 2)).copy()
    mu = np.full((5, 2), 0.5)
    xu, pu, _ = imm.update(xp, pp, mu, z, r)
    for j in range(2):
        x1, p1 = models.update(xp[:, j], pp[:, j], z, r)
        np.testing.assert_allclose(xu[:, j], x1)
        np.testing.assert_allclose(pu[:, j], p1, rtol=1e-9, atol=1e-9)


def test_model_probabilities_follow_the_likelihoods() -> None:
    # Same mean, model 1 twice as wide: a measurement at the mean favours the
    # sharp model, one far away the wide model, in the ratio of the Gaussians.
    xm = np.zeros((2, 2, 4))
    pm = np.stack([np.eye(4), 3.0 * np.eye(4)])[None].repeat(2, axis=0)
    r = np.eye(2)[None].repeat(2, axis=0)  # S = 2 I and 4 I
    z = np.array([[0.0, 0.0], [6.0, 0.0]])
    _, _, mu = imm.update(xm, pm, np.full((2, 2), 0.5), z, r)

    def gauss(d2: float, s: float) -> float:
        return float(np.exp(-0.5 * d2 / s) / (2 * np.pi * s))

    for row, d2 in enumerate((0.0, 36.0)):
        l0, l1 = gauss(d2, 2.0), gauss(d2, 4.0)
        np.testing.assert_allclose(mu[row], [l0 / (l0 + l1), l1 / (l0 + l1)])
    assert mu[0, 0] > 0.5 > mu[1, 0]


def test_switching_is_the_matrix_exponential_of_the_chain() -> None:
    switching = imm.Switching(stop_rate=0.01, switch_rate=0.2)
    g = switching.generator
    assert np.allclose(g.sum(axis=1), 0.0) and g[imm.STATIONARY, imm.MANOEUVRE] == 0.0
    tau = np.array([0.0, 0.5, 3.0, 40.0])
    pi = switching.over(tau)
    for k, t in enumerate(tau):
        np.testing.assert_allclose(pi[k], scipy.linalg.expm(g * t), atol=1e-12)
    np.testing.assert_allclose(pi[0], np.eye(imm.N_MODELS), atol=1e-12)
    np.testing.assert_allclose(pi.sum(axis=2), 1.0)
    assert (pi > -1e-12).all()
    # Chapman-Kolmogorov: 0.5 s then 3 s is 3.5 s.
    np.testing.assert_allclose(pi[1] @ pi[2], switching.over(np.array([3.5]))[0], atol=1e-12)
    # Over a short step a moving target stops at stop_rate, never turns while parked.
    short = switching.over(np.array([1e-3]))[0]
    assert short[imm.QUIET, imm.STATIONARY] == pytest.approx(1e-5, rel=1e-3)
    assert short[imm.SLOW, imm.STATIONARY] == pytest.approx(1e-5, rel=1e-3)
    assert short[imm.STATIONARY, imm.MANOEUVRE] < 1e-6
    # The quiet models are one model born two ways: no edge between them.
    assert g[imm.SLOW, imm.QUIET] == g[imm.QUIET, imm.SLOW] == 0.0
    assert short[imm.SLOW, imm.QUIET] < 1e-6


def test_the_two_quiet_models_lumped_are_the_three_model_chain() -> None:
    # Stationary ⇄ quiet ⇄ manoeuvre as a birth-death chain of three states: the
    # four-model chain with its quiet models summed moves exactly like it.
    stop, s = 0.01, 0.2
    three = np.array([[-s, s, 0.0], [stop, -stop - s, s], [0.0, s, -s]])
    lump = np.zeros((imm.N_MODELS, 3))
    lump[[imm.STATIONARY, imm.SLOW, imm.QUIET, imm.MANOEUVRE], [0, 1, 1, 2]] = 1.0
    tau = np.array([0.3, 2.0, 50.0])
    pi = imm.Switching(stop, s).over(tau)
    for k, t in enumerate(tau):
        want = scipy.linalg.expm(three * t)
        for i, lumped in ((imm.STATIONARY, 0), (imm.SLOW, 1), (imm.QUIET, 1), (imm.MANOEUVRE, 2)):
            np.testing.assert_allclose(pi[k, i] @ lump, want[lumped], atol=1e-12)


def test_switching_holds_where_the_chains_rates_coincide() -> None:
    # As stop_rate goes to 0 two of the generator's eigenvalues meet (-s twice)
    # and the equilibrium's weights spread over eleven orders of magnitude.
    switching = imm.Switching(stop_rate=1e-12, switch_rate=0.5)
    tau = np.array([1.0, 7.0])
    for k, t in enumerate(tau):
        np.testing.assert_allclose(switching.over(tau)[k],
                                   scipy.linalg.expm(switching.generator * t), atol=1e-9)


def test_mixing_keeps_the_mixtures_position_and_puts_the_stationary_model_at_rest() -> None:
    rng = np.random.default_rng(4)
    xm, pm = _random_states(rng, 3, imm.N_MODELS)
    mu = np.array([[0.1, 0.4, 0.4, 0.1], [0.3, 0.2, 0.2, 0.3], [0.05, 0.1, 0.05, 0.8]])
    pi = imm.Switching(0.05, 0.1).over(np.array([0.0, 2.0, 10.0]))
    x0, p0, c = imm.mix(xm, pm, mu, pi)
    np.testing.assert_allclose(c, np.einsum("ki,kij->kj", mu, pi))
    np.testing.assert_allclose(c.sum(axis=1), 1.0)
    # Mixing redistributes: the mixture's position mean and covariance stay
    # (only the stationary model's velocity, which it must not have, is dropped).
    xa, pa = imm.combine(xm, pm, mu)
    xb, pb = imm.combine(x0, p0, c)
    np.testing.assert_allclose(xa[:, 0:2], xb[:, 0:2])
    np.testing.assert_allclose(pa[:, 0:2, 0:2], pb[:, 0:2, 0:2], rtol=1e-9)
    assert (x0[:, imm.STATIONARY, 2:4] == 0.0).all()
    assert (p0[:, imm.STATIONARY, 2:4, :] == 0.0).all()
    assert (p0[:, imm.STATIONARY, :, 2:4] == 0.0).all()
    # With no time to switch, the moving models are not mixed.
    np.testing.assert_allclose(x0[0, 1:], xm[0, 1:])
    np.testing.assert_allclose(p0[0, 1:], pm[0, 1:])


def test_the_stationary_model_is_the_running_mean_of_its_measurements() -> None:
    # Without switching, the stationary model is a Kalman filter of a fixed
    # point: after n measurements with equal R its position is their mean and
    # its covariance R / n, and the prediction leaves both where they are.
    rng = np.random.default_rng(6)
    r = np.array([[[100.0, 20.0], [20.0, 400.0]]])
    z = rng.normal(size=(12, 2)) * 15.0 + [300.0, -50.0]
    q = imm.noises(0.05, 2.0)
    j = imm.N_MODELS
    xm = np.zeros((1, j, 4))
    xm[0, :, 0:2] = z[0]
    xm[0, 1:, 2:4] = 5.0  # the moving models believe in a velocity
    pm = np.zeros((1, j, 4, 4))
    pm[0, :, 0:2, 0:2] = r[0]
    pm[0, 1:, 2, 2] = pm[0, 1:, 3, 3] = 64.0
    mu = np.full((1, j), 1 / j)
    no_switching = np.eye(j)[None]
    for zk in z[1:]:
        xm, pm = imm.predict(xm, pm, 1.0, q)
        xm, pm, mu = imm.mix_update(xm, pm, mu, no_switching, zk[None], r)
    np.testing.assert_allclose(xm[0, imm.STATIONARY, 0:2], z.mean(axis=0))
    np.testing.assert_allclose(xm[0, imm.STATIONARY, 2:4], 0.0)
    np.testing.assert_allclose(pm[0, imm.STATIONARY, 0:2, 0:2], r[0] / len(z))
    assert mu[0, imm.STATIONARY] > 0.5  # the point does stand still


def test_combine_is_the_moment_matched_mixture() -> None:
    xm = np.array([[[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 2.0, 0.0]]])
    pm = np.eye(4)[None, None].repeat(2, axis=1)
    x, p = imm.combine(xm, pm, np.array([[0.75, 0.25]]))
    np.testing.assert_allclose(x[0], [2.5, 0.0, 0.5, 0.0])
    # Spread of the means: 0.75·0.25·(10)² on east, 0.75·0.25·2² on ve, 0.75·0.25·20 between.
    np.testing.assert_allclose(p[0, 0, 0], 1.0 + 18.75)
    np.testing.assert_allclose(p[0, 2, 2], 1.0 + 0.75)
    np.testing.assert_allclose(p[0, 0, 2], 3.75)


@pytest.mark.parametrize("k", [5, 120, 400])
def test_switching_gives_each_interval_the_bits_it_has_alone(k: int) -> None:
    # A scan's intervals repeat (its tracks were last updated by a few scans):
    # whether over() computes each distinct one once or every one, the floats
    # are those of the interval alone.
    rng = np.random.default_rng(k)
    switching = imm.Switching(0.01, 0.003)
    tau = rng.choice(rng.uniform(0.0, 30.0, size=6), size=k)
    together = switching.over(tau)
    for i in range(k):
        assert np.array_equal(together[i], switching.over(tau[i:i + 1])[0])


def test_fused_mix_update_equals_mix_then_update() -> None:
    rng = np.random.default_rng(5)
    switching = imm.Switching(0.02, 0.3)
    for k in (1, 7):
        xm, pm = _random_states(rng, k, imm.N_MODELS)
        mu = rng.dirichlet(np.ones(imm.N_MODELS), size=k)
        pi = switching.over(rng.uniform(0.0, 5.0, size=k))
        z = rng.normal(size=(k, 2)) * 10.0
        r = np.broadcast_to(np.array([[25.0, 5.0], [5.0, 100.0]]), (k, 2, 2)).copy()
        expected = imm.update(*imm.mix(xm, pm, mu, pi), z, r)
        for got, want in zip(imm.mix_update(xm, pm, mu, pi, z, r), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_a_step_per_track_predicts_each_track_like_its_own_scalar_step() -> None:
    rng = np.random.default_rng(5)
    xm, pm = _random_states(rng, 4, 2)
    q = np.array([0.09, 9.0])
    dt = np.array([0.0, 0.5, 1.5, 7.25])
    xp, pp = imm.predict(xm.copy(), pm.copy(), dt, q)
    for k in range(4):
        x1, p1 = imm.predict(xm[k:k + 1].copy(), pm[k:k + 1].copy(), float(dt[k]), q)
        assert np.array_equal(xp[k], x1[0]) and np.array_equal(pp[k], p1[0])


def test_mix_update_gives_each_track_the_bits_it_has_alone() -> None:
    # The tracker updates a row in scans of any number of tracks (and the
    # groups' twins once for all): a track's result must not depend on the
    # others it is batched with, to the bit.
    rng = np.random.default_rng(9)
    switching = imm.Switching(1e-4, 0.003)
    k = 300
    xm, pm = _random_states(rng, k, imm.N_MODELS)
    mu = rng.dirichlet(np.ones(imm.N_MODELS), size=k)
    pi = switching.over(rng.uniform(0.0, 30.0, size=k))
    z = xm[:, imm.MANOEUVRE, 0:2] + rng.normal(size=(k, 2)) * 10.0
    r = np.broadcast_to(np.array([[25.0, 5.0], [5.0, 100.0]]), (k, 2, 2)).copy()
    together = imm.mix_update(xm, pm, mu, pi, z, r)
    for i in (0, 1, 7, 150, 299):
        alone = imm.mix_update(xm[i:i + 1], pm[i:i + 1], mu[i:i + 1], pi[i:i + 1], z[i:i + 1],
                               r[i:i + 1])
        for got, want in zip(together, alone, strict=True):
            assert np.array_equal(got[i], want[0])


@pytest.mark.parametrize("k", [1, 2, 300])
def test_mixing_adds_each_model_s_term_in_order(k: int) -> None:
    # Σᵢ w[i, j] a[i] as the models' terms added one at a time, to the bit,
    # whatever the number of tracks: a track's mixture must not depend on its stack.
    rng = np.random.default_rng(k)
    w = rng.dirichlet(np.ones(imm.N_MODELS), size=(imm.N_MODELS, k)).transpose(0, 2, 1).copy()
    for shape in ((4,), (4, 4)):
        a = rng.normal(size=(imm.N_MODELS, *shape, k))
        weights = w.reshape(imm.N_MODELS, imm.N_MODELS, *(1,) * len(shape), k)
        expected = weights[0] * a[0]
        for i in range(1, imm.N_MODELS):
            expected += weights[i] * a[i]
        assert np.array_equal(imm._mixed(w, a), expected)
