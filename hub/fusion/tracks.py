"""TrackTable: an immutable snapshot of many tracks as numpy arrays."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hub.fusion import models

TENTATIVE, CONFIRMED, COASTING = 0, 1, 2
STATUS_NAMES = ("tentative", "confirmed", "coasting")


class Covariances:
    """A table's (N, 4, 4) state covariances, worked out when first read.

    A snapshot's covariances cost more than the rest of it (each track's
    models predicted and moment-matched), and many pictures never read them
    (``hub replay --tracks-out`` writes positions); ``compute`` is called
    once, on the first ``array()``, and dropped.
    """

    __slots__ = ("_array", "_compute")

    def __init__(self, array: NDArray[np.float64] | None = None,
                 compute: Callable[[], NDArray[np.float64]] | None = None) -> None:
        if (array is None) == (compute is None):
            raise ValueError("Covariances takes one of an array and a way to compute it")
        self._array = array
        self._compute = compute

    def array(self) -> NDArray[np.float64]:
        """The covariances, computed now if not yet."""
        if self._array is None:
            assert self._compute is not None
            self._array, self._compute = self._compute(), None
        return self._array

    def take(self, rows: NDArray[np.intp]) -> Covariances:
        """Those of ``rows``, in that order (still not computed if these were not)."""
        if self._array is not None:
            return Covariances(self._array[rows])
        return Covariances(compute=lambda: self.array()[rows])


@dataclass(frozen=True, slots=True)
class TrackTable:
    """Tracks at one common time ``t``; row i of every array is track ``id[i]``.

    Attributes:
        t: time of ``x`` and ``P``, epoch seconds.
        q: process-noise spectral density the states were predicted with (m²/s³).
        id: (N,) int64, unique within the tracker, never reused.
        x: (N, 4) state [e, n, ve, vn], mission ENU metres and m/s.
        cov: the (N, 4, 4) state covariances (``P`` reads them).
        status: (N,) int8, TENTATIVE, CONFIRMED or COASTING.
        cls_probs: (N, C) class probabilities over ``hub.messages.CLASSES``.
        first_seen: (N,) time of the first measurement.
        last_update: (N,) time of the last measurement.
        updates: (N,) number of measurements used.
        sources: (N, n_sensors) bool, sensors that contributed a measurement.
    """

    t: float
    q: float
    id: NDArray[np.int64]
    x: NDArray[np.float64]
    cov: Covariances
    status: NDArray[np.int8]
    cls_probs: NDArray[np.float64]
    first_seen: NDArray[np.float64]
    last_update: NDArray[np.float64]
    updates: NDArray[np.int64]
    sources: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.id.shape[0])

    @property
    def P(self) -> NDArray[np.float64]:
        """(N, 4, 4) state covariance."""
        return self.cov.array()

    def take(self, rows: NDArray[np.intp]) -> TrackTable:
        """The table of rows ``rows`` of this one, in that order."""
        return dataclasses.replace(
            self, id=self.id[rows], x=self.x[rows], cov=self.cov.take(rows),
            status=self.status[rows], cls_probs=self.cls_probs[rows],
            first_seen=self.first_seen[rows], last_update=self.last_update[rows],
            updates=self.updates[rows], sources=self.sources[rows])

    def predict_to(self, t: float) -> TrackTable:
        """Return the table with ``x`` and ``P`` predicted to time ``t`` (no-op if t ≤ self.t)."""
        if t <= self.t or len(self) == 0:
            return self
        x, p = models.predict(self.x, self.P, t - self.t, self.q)
        return dataclasses.replace(self, t=t, x=x, cov=Covariances(p))

    @staticmethod
    def empty(n_sensors: int, n_classes: int, t: float = 0.0, q: float = 1.0) -> TrackTable:
        """Return a table with no tracks."""
        return TrackTable(
            t=t, q=q, id=np.zeros(0, np.int64), x=np.zeros((0, 4)),
            cov=Covariances(np.zeros((0, 4, 4))),
            status=np.zeros(0, np.int8), cls_probs=np.zeros((0, n_classes)),
            first_seen=np.zeros(0), last_update=np.zeros(0), updates=np.zeros(0, np.int64),
            sources=np.zeros((0, n_sensors), bool))


def publishable_rows(table: TrackTable, include_tentative: bool = False) -> NDArray[np.intp]:
    """Rows of ``table`` fit to show: confirmed and coasting (all if ``include_tentative``)."""
    if include_tentative:
        return np.arange(len(table), dtype=np.intp)
    return np.flatnonzero(table.status > 0)


def row_keys(mask: NDArray[np.bool_]) -> list[bytes]:
    """One hashable key per row of a (N, K) bool array: equal rows, equal keys.

    Sources rows repeat a lot (a mission has few distinct combinations), so
    whatever is derived from them is computed once per key and cached.
    """
    if mask.shape[0] == 0:
        return []
    packed = np.ascontiguousarray(np.packbits(mask, axis=1))
    keys: list[bytes] = packed.view(f"V{packed.shape[1]}").ravel().tolist()
    return keys


def key_bits(key: bytes, width: int) -> list[int]:
    """Indices of the set bits of a ``row_keys`` key of a row ``width`` long."""
    bits = np.unpackbits(np.frombuffer(key, np.uint8))[:width]
    used: list[int] = np.flatnonzero(bits).tolist()
    return used
