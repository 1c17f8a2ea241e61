"""Gating and global nearest neighbour assignment on small hand-made cases."""

import numpy as np
import pytest

from hub.fusion import association
from hub.fusion.association import Gated, assign, gate

# Every d² for all pairs, or the striped sweep: each scene runs both ways.
BOTH_WAYS = pytest.mark.parametrize("dense_pairs", [0, 10**9], ids=["sweep", "all-pairs"])


def _eye(k: int, var: float) -> np.ndarray:
    return np.repeat(np.eye(2)[None] * var, k, axis=0)


def test_gate_keeps_exactly_the_pairs_within_chi2() -> None:
    pos = np.array([[0.0, 0.0], [100.0, 0.0]])
    p = _eye(2, 1.0)
    z = np.array([[3.0, 0.0], [0.0, 3.9], [100.0, 5.0], [50.0, 0.0]])
    r = _eye(4, 1.0)  # S = 2 I: d² = |y|² / 2
    g = gate(pos, p, z, r, chi2=8.0)
    pairs = sorted(zip(g.ti.tolist(), g.mi.tolist(), strict=True))
    assert pairs == [(0, 0), (0, 1)]  # (1, 2) has d² = 12.5 > 8
    np.testing.assert_allclose(np.sort(g.d2), [4.5, 3.9**2 / 2])
    np.testing.assert_allclose(g.cost, g.d2 + np.log(4.0))


def test_gate_uses_the_full_covariance_not_a_circle() -> None:
    pos = np.zeros((1, 2))
    p = np.array([[[100.0, 0.0], [0.0, 1.0]]])  # long east, short north
    z = np.array([[25.0, 0.0], [0.0, 5.0]])
    g = gate(pos, p, z, _eye(2, 1e-6), chi2=9.0)
    assert g.mi.tolist() == [0]


@BOTH_WAYS
def test_gate_matches_brute_force_on_random_scene(dense_pairs: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(association, "_DENSE_PAIRS", dense_pairs)
    rng = np.random.default_rng(3)
    pos = rng.uniform(0, 1000, size=(60, 2))
    a = rng.normal(scale=8.0, size=(60, 2, 2))
    p = a @ a.transpose(0, 2, 1) + np.eye(2)
    z = rng.uniform(0, 1000, size=(70, 2))
    z[:10, 0] = 500.0  # ties in the east sweep
    r = _eye(70, 25.0) * rng.uniform(0.1, 40.0, size=(70, 1, 1))
    g = gate(pos, p, z, r, chi2=13.8)
    brute = set()
    for t in range(60):
        for m in range(70):
            y = z[m] - pos[t]
            if y @ np.linalg.solve(p[t] + r[m], y) <= 13.8:
                brute.add((t, m))
    assert set(zip(g.ti.tolist(), g.mi.tolist(), strict=True)) == brute
    assert len(brute) > 5


@BOTH_WAYS
def test_gate_matches_brute_force_across_stripes(dense_pairs: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide scene: the north stripes, tracks outside the scene, one uncertain track."""
    monkeypatch.setattr(association, "_DENSE_PAIRS", dense_pairs)
    rng = np.random.default_rng(11)
    pos = rng.uniform(-2_000, 12_000, size=(300, 2))
    a = rng.normal(scale=10.0, size=(300, 2, 2))
    p = a @ a.transpose(0, 2, 1) + np.eye(2)
    p[7] = np.diag([4e5, 9e4])  # a lost-looking track: the stripes as wide as its radius
    z = np.concatenate((pos[:200] + rng.normal(scale=20.0, size=(200, 2)),
                        rng.uniform(0, 10_000, size=(60, 2))))
    z[:10, 1] = z[0, 1]  # ties in one stripe
    r = _eye(260, 1.0) * rng.uniform(4.0, 3600.0, size=(260, 1, 1))
    g = gate(pos, p, z, r, chi2=27.6)
    s = p[:, None] + r[None]
    y = z[None] - pos[:, None]
    d2 = np.einsum("tmi,tmi->tm", y, np.linalg.solve(s, y[..., None])[..., 0])
    ti, mi = np.nonzero(d2 <= 27.6)
    brute = set(zip(ti.tolist(), mi.tolist(), strict=True))
    pairs = list(zip(g.ti.tolist(), g.mi.tolist(), strict=True))
    assert len(pairs) == len(set(pairs))  # no pair found twice
    assert set(pairs) == brute
    assert len(brute) > 200
    np.testing.assert_allclose(g.d2, d2[g.ti, g.mi], rtol=1e-9)


def test_cluster_where_greedy_is_wrong() -> None:
    # Track 0 sees m0 (cost 1) and m1 (cost 2); track 1 sees only m0 (cost 1.5).
    # Greedy takes the cheapest pair (0, 0) and leaves track 1 empty;
    # GNN assigns both: (0, 1) and (1, 0), total 3.5.
    g = Gated(ti=np.array([0, 0, 1]), mi=np.array([0, 1, 0]), d2=np.array([1.0, 2.0, 1.5]),
              cost=np.array([1.0, 2.0, 1.5]))
    ti, mi = assign(g, n_tracks=2, n_meas=2)
    assert sorted(zip(ti.tolist(), mi.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_minimum_cost_when_cardinality_ties_and_singletons_pass_through() -> None:
    # Cluster {t1, t2} x {m1, m2}: crossing costs 1 + 1 beat straight 0.5 + 4.
    # Singleton cluster (t0, m0); track 3 and measurement 3 gate with nothing.
    g = Gated(ti=np.array([0, 1, 1, 2, 2]), mi=np.array([0, 1, 2, 1, 2]),
              d2=np.zeros(5), cost=np.array([7.0, 0.5, 1.0, 1.0, 4.0]))
    ti, mi = assign(g, n_tracks=4, n_meas=4)
    assert sorted(zip(ti.tolist(), mi.tolist(), strict=True)) == [(0, 0), (1, 2), (2, 1)]


def test_empty_inputs() -> None:
    g = gate(np.zeros((0, 2)), np.zeros((0, 2, 2)), np.zeros((3, 2)), _eye(3, 1.0), 9.0)
    assert g.ti.shape == (0,)
    ti, mi = assign(g, 0, 3)
    assert ti.shape == mi.shape == (0,)
