"""Bayesian class fusion over ``hub.messages.CLASSES``, vectorised over tracks.

A report of class ``k`` with confidence ``c`` has likelihood ``c`` for true class
``k`` and ``(1 - c) / (C - 1)`` for every other class. Two guards keep the
posterior usable: confidence is clipped to [CONF_MIN, CONF_MAX] so no class is
ever ruled out for good by one overconfident report, and a report of class
``unknown`` carries no evidence (a radar that cannot classify says nothing
about what the target is), so it leaves the probabilities unchanged.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from hub.messages import CLASSES

N_CLASSES = len(CLASSES)
UNKNOWN = CLASSES.index("unknown")
CONF_MIN = 0.01
CONF_MAX = 0.99


def uniform(k: int) -> NDArray[np.float64]:
    """Return the (k, C) uniform prior."""
    return np.full((k, N_CLASSES), 1.0 / N_CLASSES)


def fuse(probs: NDArray[np.float64], cls: NDArray[np.integer],
         conf: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the posteriors (K, C) after one report per row.

    A row whose report is ``unknown`` keeps its probabilities as they were,
    bit for bit (a radar's scan, all of it: no arithmetic at all).
    """
    known = cls != UNKNOWN
    if not known.all():
        posteriors = probs.copy()
        if known.any():
            posteriors[known] = fuse(probs[known], cls[known], conf[known])
        return posteriors
    # The likelihood is (1 - c) / (C - 1) but for c at the reported class:
    # every entry scaled by the first, then the reported one's product redone.
    # minimum/maximum rather than np.clip: same values without clip's Python-level dispatch.
    c = np.minimum(np.maximum(conf, CONF_MIN), CONF_MAX)
    post = probs * ((1.0 - c) / (N_CLASSES - 1))[:, None]
    reported = (np.arange(cls.shape[0]), cls)
    post[reported] = probs[reported] * c
    normalised: NDArray[np.float64] = post / np.add.reduce(post, axis=1, keepdims=True)
    return normalised
