"""Dead letters: every refusal reported, a flood of them summarised.

The first refusal of a source (a sensor, a TAK connection) with a reason code
goes out as its own letter, as it always did. The next ones of that source
and code within ``WINDOW_S`` are folded into one summary letter, sent once the
window has passed, whose ``count`` says how many it stands for (its ``size``
is their bytes together). A source sending thousands of bad messages a second
so costs two letters a second, not thousands, and none is lost unsaid: the
counts of all letters add up to the refusals.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from hub.messages import DeadLetter

WINDOW_S = 1.0


@dataclass(slots=True)
class _Window:
    """The refusals of one source and code folded since ``start``."""

    start: float
    count: int = 0
    size: int = 0
    ts: float = 0.0
    topic: str = ""
    reason: str = ""


class DeadLetters:
    """Letters ready to send (``ready``), and the open summaries of each source and code."""

    def __init__(self, counters: Counter[str], backlog: int, window_s: float = WINDOW_S) -> None:
        self.ready: deque[DeadLetter] = deque(maxlen=backlog)
        self.counters = counters
        """Where ``dead_letters_summarized`` and ``dead_letters_dropped`` are counted."""
        self.window_s = window_s
        self._windows: dict[tuple[str, str], _Window] = {}

    def add(self, source: str, topic: str, size: int, code: str, reason: str,
            now: float) -> None:
        """Report one refusal of ``source`` (a sensor id, a connection's label)."""
        key = (source, code)
        window = self._windows.get(key)
        if window is not None and now < window.start + self.window_s:
            window.count += 1
            window.size += size
            window.ts, window.topic, window.reason = now, topic, reason
            self.counters["dead_letters_summarized"] += 1
            return
        if window is not None:
            self._summarise(code, window)
        self._windows[key] = _Window(now)
        self._send(DeadLetter(ts=now, topic=topic[:256], reason=reason[:300], size=size,
                              code=code))

    def close(self, now: float) -> None:
        """Queue the summary of every window that has passed by ``now``."""
        ended = [key for key, w in self._windows.items() if now >= w.start + self.window_s]
        for key in ended:
            self._summarise(key[1], self._windows.pop(key))

    def _summarise(self, code: str, window: _Window) -> None:
        if window.count:
            self._send(DeadLetter(
                ts=window.ts, topic=window.topic[:256], size=window.size, code=code,
                count=window.count,
                reason=(f"{window.count} more within {self.window_s:g} s; the last: "
                        f"{window.reason}")[:300]))

    def _send(self, letter: DeadLetter) -> None:
        if len(self.ready) == self.ready.maxlen:
            # Only more sources and codes than the backlog within one send interval get here.
            self.counters["dead_letters_dropped"] += 1
        self.ready.append(letter)
