"""No duplicate tracks on one target: a turning target keeps its one track, neighbours get two.

Duplicates came from two places (hub.fusion.tracker, Association and
Initiation): a measurement just outside the gate of a track whose target
turned started a new track, and a tentative track took a confirmed track's
measurement. These cases pin both fixes and that real neighbours still get a
track each.
"""

import numpy as np

from hub.config import Fusion
from hub.fusion import imm
from hub.fusion.measurements import Scan
from hub.fusion.tracker import INIT_EXCLUSION, Tracker
from hub.fusion.tracks import CONFIRMED

T0 = 1.8e9
VAR = 25.0  # measurement variance, m² (σ 5 m)
SPEED = 10.0  # m/s east


def _scan(t: float, z: list[list[float]]) -> Scan:
    za = np.array(z, dtype=float).reshape(-1, 2)
    k = za.shape[0]
    return Scan(t=T0 + t, sensor=0, z=za, R=np.repeat(np.eye(2)[None] * VAR, k, axis=0),
                cls=np.zeros(k, np.int16), conf=np.ones(k))


def _confirmed_track(params: Fusion, scans: int = 6) -> Tracker:
    """Return a tracker holding one confirmed track going east at SPEED, updated at t = 0..5."""
    tracker = Tracker(params, n_sensors=1)
    for k in range(scans):
        tracker.process(_scan(k, [[SPEED * k, 0.0]]))
    assert tracker.snapshot().status.tolist() == [CONFIRMED]
    return tracker


def _north_at_d2(tracker: Tracker, t: float, d2: float) -> list[float]:
    """Return the point north of the track's prediction at ``t`` at Mahalanobis ``d2``."""
    tracker.advance(T0 + t)
    # The gate's covariance: the manoeuvre model's (the last) predicted from the
    # track's last update (where the tracker stores it) to t, plus R.
    rows = tracker.rows
    _, pm = imm.predict(rows._xm[:1].copy(), rows._pm[:1].copy(), T0 + t - rows._last[0],
                        rows.model_q)
    s_inv = np.linalg.inv(pm[0, -1, 0:2, 0:2] + np.eye(2) * VAR)
    x = tracker.snapshot().x[0]
    return [float(x[0]), float(x[1] + np.sqrt(d2 / s_inv[1, 1]))]


def test_a_turn_just_outside_the_gate_starts_no_second_track() -> None:
    params = Fusion()
    tracker = _confirmed_track(params)
    d2 = 0.5 * (1.0 + INIT_EXCLUSION) * params.gate_chi2  # outside the gate, inside the wide one
    turned = _north_at_d2(tracker, 6.0, d2)
    tracker.process(_scan(6.0, [turned]))
    table = tracker.snapshot()
    assert table.id.tolist() == [1] and table.updates.tolist() == [6]  # missed, no new track
    # The covariance grown by the miss, the track takes the next measurement of the turn.
    tracker.process(_scan(7.0, [_north_at_d2(tracker, 7.0, 0.5 * params.gate_chi2)]))
    table = tracker.snapshot()
    assert table.id.tolist() == [1] and table.updates.tolist() == [7]


def test_a_neighbour_outside_the_gate_of_an_updated_track_gets_its_own_track() -> None:
    params = Fusion()
    tracker = _confirmed_track(params)
    d2 = 0.5 * (1.0 + INIT_EXCLUSION) * params.gate_chi2
    neighbour = _north_at_d2(tracker, 6.0, d2)
    for k in range(6, 10):
        # Both report every scan; the neighbour drifts north away from the target.
        tracker.process(_scan(k, [[SPEED * k, 0.0], [neighbour[0] + SPEED * (k - 6),
                                                     neighbour[1] + 2.0 * (k - 6)]]))
    table = tracker.snapshot()
    assert table.id.tolist() == [1, 2]
    assert table.status.tolist() == [CONFIRMED, CONFIRMED]
    assert table.updates.tolist() == [10, 4]


def test_crossing_targets_keep_two_confirmed_tracks() -> None:
    tracker = Tracker(Fusion(), n_sensors=1)
    for k in range(21):
        # One goes east, one north-east; they cross at (100, 0) at t = 10.
        a = [SPEED * k, 0.0]
        b = [100.0 + SPEED * (k - 10), SPEED * (k - 10)]
        tracker.process(_scan(k, [a, b]))
        table = tracker.snapshot()
        if k >= 2:
            assert len(table) == 2 and (table.status == CONFIRMED).all()
    end = tracker.snapshot().x[:, 0:2]
    truth = np.array([[200.0, 0.0], [200.0, 100.0]])
    d = np.linalg.norm(end[:, None] - truth[None], axis=2)
    assert d.min(axis=0).max() < 20.0  # each target has a track on it


def test_a_confirmed_track_wins_a_measurement_over_a_nearer_tentative_one() -> None:
    # The geometry below (60 m, 30 m) was drawn for these gates: a manoeuvre noise of
    # 3 m/s² and a tentative speed sigma of 15 m/s (the defaults before issue 12);
    # the rule under test does not depend on them.
    tracker = _confirmed_track(Fusion(process_noise=3.0, init_speed_sigma=15.0))
    # Clutter 60 m north of the target at t = 5.5 starts a tentative track, at
    # rest with a wide velocity sigma, so its gate grows fast.
    tracker.process(_scan(5.5, [[55.0, 60.0]]))
    assert len(tracker.snapshot()) == 2
    # At t = 6 the target is seen 30 m north of its prediction (it turned):
    # nearer the tentative track in likelihood, yet inside the confirmed gate.
    tracker.process(_scan(6.0, [[60.0, 30.0]]))
    table = tracker.snapshot()
    assert table.updates.tolist()[0] == 7  # the confirmed track took it
