"""The delay history: a release group's recent tables, for partners whose picture runs late.

A release may delay a partner's picture (``delay_s``). Fused data is not
separable by source, so the whole picture is delayed: the partner gets the
group's tables as they were ``delay_s`` ago, from a history kept every
``step_s`` for as long as the largest delay of the group's partners needs.
"""

from __future__ import annotations

from collections import deque

from hub.release.groups import GroupTables

STEP_S = 0.5
"""Default spacing of kept tables: a delayed picture is at most this much older than asked."""


class History:
    """A group's recent tables, one every ``step_s``, kept for ``horizon_s``."""

    def __init__(self, step_s: float, horizon_s: float) -> None:
        self.step_s = step_s
        self.horizon_s = horizon_s
        self._entries: deque[GroupTables] = deque()

    def record(self, tables: GroupTables) -> None:
        """Keep ``tables`` if a step has passed since the last kept; forget what is too old."""
        entries = self._entries
        if not entries or tables.t - entries[-1].t >= self.step_s:
            for table in tables.tables:
                # Kept as covariances, not as the rows a snapshot computes them
                # from when read (six times the memory, for as long as the delay).
                table.cov.array()
            entries.append(tables)
        while len(entries) > 1 and entries[1].t <= tables.t - self.horizon_s:
            entries.popleft()

    def at(self, t: float) -> GroupTables | None:
        """The newest tables no later than ``t``; None if the history does not reach back."""
        for entry in reversed(self._entries):
            if entry.t <= t:
                return entry
        return None
