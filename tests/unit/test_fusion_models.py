"""Constant-velocity model and Kalman update against closed-form values."""

import numpy as np

from hub.fusion import models


def test_transition_and_process_noise_for_known_dt() -> None:
    f = models.transition([2.0])[0]
    expected_f = np.array([[1, 0, 2, 0], [0, 1, 0, 2], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    np.testing.assert_array_equal(f, expected_f)
    q = models.process_noise([2.0], q=0.5)[0]
    # q·[[dt³/3, dt²/2], [dt²/2, dt]] per axis with dt = 2, q = 0.5
    a, b, c = 0.5 * 8 / 3, 0.5 * 4 / 2, 0.5 * 2
    expected_q = np.array([[a, 0, b, 0], [0, a, 0, b], [b, 0, c, 0], [0, b, 0, c]])
    np.testing.assert_allclose(q, expected_q)


def test_predict_equals_f_p_ft_plus_q_with_per_track_dt() -> None:
    rng = np.random.default_rng(1)
    dt = np.array([0.0, 0.5, 3.0])
    x = rng.normal(size=(3, 4))
    a = rng.normal(size=(3, 4, 4))
    p = a @ a.transpose(0, 2, 1) + np.eye(4)
    x1, p1 = models.predict(x, p, dt, q=2.0)
    f = models.transition(dt)
    np.testing.assert_allclose(x1, np.einsum("kij,kj->ki", f, x))
    np.testing.assert_allclose(p1, f @ p @ f.transpose(0, 2, 1) + models.process_noise(dt, 2.0))


def test_two_predictions_compose_to_one() -> None:
    x = np.array([[0.0, 0.0, 1.0, 2.0]])
    p = np.eye(4)[None] * 4.0
    xa, pa = models.predict(*models.predict(x, p, 1.5, 0.3), 2.5, 0.3)
    xb, pb = models.predict(x, p, 4.0, 0.3)
    np.testing.assert_allclose(xa, xb)
    np.testing.assert_allclose(pa, pb)


def test_one_kalman_update_against_hand_computed_numbers() -> None:
    # P = diag(4, 4, 1, 1), R = diag(1, 1): S = 5 I, K = [[0.8, 0], [0, 0.8], [0, 0], [0, 0]].
    x = np.array([[10.0, 20.0, 1.0, -1.0]])
    p = np.diag([4.0, 4.0, 1.0, 1.0])[None]
    z = np.array([[15.0, 10.0]])
    r = np.eye(2)[None]
    x1, p1 = models.update(x, p, z, r)
    np.testing.assert_allclose(x1[0], [14.0, 12.0, 1.0, -1.0])
    np.testing.assert_allclose(p1[0], np.diag([0.8, 0.8, 1.0, 1.0]), atol=1e-12)


def test_update_with_position_velocity_correlation() -> None:
    # 1-D per axis: P = [[2, 1], [1, 1]], R = 2 -> S = 4, K = [0.5, 0.25].
    x = np.array([[0.0, 0.0, 0.0, 0.0]])
    p = np.array([[[2.0, 0, 1, 0], [0, 2, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]])
    z = np.array([[4.0, -8.0]])
    r = 2.0 * np.eye(2)[None]
    x1, p1 = models.update(x, p, z, r)
    np.testing.assert_allclose(x1[0], [2.0, -4.0, 1.0, -2.0])
    # P - K S Kᵀ per axis: [[2-1, 1-0.5], [1-0.5, 1-0.25]]
    np.testing.assert_allclose(p1[0][np.ix_([0, 2], [0, 2])], [[1.0, 0.5], [0.5, 0.75]])
    assert abs(p1[0, 0, 1]) < 1e-12
