"""Bayesian class fusion."""

import numpy as np

from hub.fusion import classify
from hub.messages import CLASSES

C = len(CLASSES)
VEHICLE, PERSON, UNKNOWN = CLASSES.index("vehicle"), CLASSES.index("person"), 0


def test_one_report_from_uniform_prior_gives_its_likelihood() -> None:
    post = classify.fuse(classify.uniform(1), np.array([VEHICLE]), np.array([0.8]))
    expected = np.full(C, 0.2 / (C - 1))
    expected[VEHICLE] = 0.8
    np.testing.assert_allclose(post[0], expected)


def test_reports_accumulate_and_conflicts_resolve_by_evidence() -> None:
    probs = classify.uniform(2)
    for _ in range(3):
        probs = classify.fuse(probs, np.array([VEHICLE, PERSON]), np.array([0.7, 0.6]))
    probs = classify.fuse(probs, np.array([PERSON, VEHICLE]), np.array([0.7, 0.6]))
    assert probs[0].argmax() == VEHICLE and probs[1].argmax() == PERSON
    # Hand check of row 0: vehicle 0.7³·0.06, person 0.06³·0.7, others 0.06⁴.
    v, p, o = 0.7**3 * 0.06, 0.06**3 * 0.7, 0.06**4
    np.testing.assert_allclose(probs[0, VEHICLE], v / (v + p + (C - 2) * o))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_unknown_reports_carry_no_evidence_and_certainty_is_clipped() -> None:
    prior = classify.fuse(classify.uniform(1), np.array([VEHICLE]), np.array([0.9]))
    after = classify.fuse(prior, np.array([UNKNOWN]), np.array([1.0]))
    np.testing.assert_allclose(after, prior)
    certain = classify.fuse(classify.uniform(1), np.array([PERSON]), np.array([1.0]))
    assert 0.0 < certain[0, VEHICLE] < 0.01
    recovered = certain
    for _ in range(3):
        recovered = classify.fuse(recovered, np.array([VEHICLE]), np.array([1.0]))
    assert recovered[0].argmax() == VEHICLE


def test_a_mixed_batch_fuses_the_known_reports_and_keeps_the_unknown_rows_exactly() -> None:
    prior = classify.fuse(classify.uniform(3), np.array([VEHICLE, PERSON, VEHICLE]),
                          np.array([0.7, 0.6, 0.55]))
    cls, conf = np.array([UNKNOWN, VEHICLE, UNKNOWN]), np.array([0.9, 0.8, 0.9])
    after = classify.fuse(prior, cls, conf)
    assert after[[0, 2]].tobytes() == prior[[0, 2]].tobytes()
    alone = classify.fuse(prior[1:2], cls[1:2], conf[1:2])
    assert after[1].tobytes() == alone[0].tobytes()
    assert after[1, VEHICLE] > prior[1, VEHICLE]
