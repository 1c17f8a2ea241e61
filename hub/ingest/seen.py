"""Which ``seq`` of one sensor's topic the hub has taken lately, to drop repeats exactly.

A repeat is a message taken before: QoS 1 resends it when an acknowledgement
was lost, a broker after its restart, a hub's journal replay. Comparing with
the last ``seq`` alone is not enough: after a broker restart the messages it
had queued and those the sensor resends can arrive out of order, so a lower
``seq`` may be one never taken. The last ``WINDOW`` numbers below the highest
are kept as a bitmask: a lower ``seq`` is a restart of the sensor's counter
if its time is newer than the highest's (a repeat carries its original, older
time), a repeat if its bit is set, and otherwise a late arrival (the reorder
window then decides whether it can still be fused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WINDOW = 4096
"""How far below the highest ``seq`` a repeat is still told from a late arrival."""
_FULL = (1 << WINDOW) - 1

Verdict = Literal["next", "gap", "repeat", "restart", "late"]


@dataclass(slots=True)
class Seen:
    """The highest ``seq`` taken, its time, and bit i set when ``top - i`` was taken."""

    top: int
    top_ts: float
    mask: int = 1

    def take(self, seq: int, ts: float) -> Verdict:
        """Note ``seq`` (measured at ``ts``) and say what it is; a repeat changes nothing."""
        if seq > self.top:
            step = seq - self.top
            self.mask = ((self.mask << step) | 1) & _FULL if step < WINDOW else 1
            self.top, self.top_ts = seq, ts
            return "gap" if step > 1 else "next"
        if ts > self.top_ts:  # a lower number at a newer time: the counter started again
            self.top, self.top_ts, self.mask = seq, ts, 1
            return "restart"
        behind = self.top - seq
        if behind >= WINDOW or self.mask >> behind & 1:  # taken, or too far back to tell
            return "repeat"
        self.mask |= 1 << behind
        return "late"
