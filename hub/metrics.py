"""Counters turned into rates for the live table and hub/status."""

from __future__ import annotations

import logging
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


class RateLimitedLog:
    """Log at most one record per interval on ``logger`` and say how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0,
                 level: int = logging.ERROR) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.level = level
        self._last = -float("inf")
        self._suppressed = 0

    def error(self, message: str, *args: object, exc_info: bool = False) -> None:
        """Log ``message`` unless one was logged less than ``interval_s`` ago."""
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" ({self._suppressed} similar suppressed)"
        self._last, self._suppressed = now, 0
        self.logger.log(self.level, message, *args, exc_info=exc_info)
