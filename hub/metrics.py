"""Counters turned into rates for the live table and hub/status."""

from __future__ import annotations

import time


class Rates:
    """Per-second rates of growing counters, between two calls."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._last_time = time.monotonic()

    def update(self, counters: dict[str, int]) -> dict[str, float]:
        """Rates of each counter since the previous call."""
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-6)
        rates = {k: (v - self._last.get(k, v)) / elapsed for k, v in counters.items()}
        self._last, self._last_time = dict(counters), now
        return rates
