"""The live text display of ``hub demo`` and ``hub run``: one row per partner."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from hub.service import HubService


class LiveTable:
    """Print per-partner picture statistics once a second; redraw in place on a terminal."""

    def __init__(self, address: str, out: TextIO = sys.stdout) -> None:
        self.address = address
        self.out = out
        self._last_received = 0
        self._last_time = time.monotonic()
        self._redraw = out.isatty()

    def render(self, service: HubService) -> str:
        """The table for the service's current state."""
        now = time.monotonic()
        received = service.pipeline.counters["received"]
        rate = (received - self._last_received) / max(now - self._last_time, 1e-6)
        self._last_received, self._last_time = received, now
        rejected = service.pipeline.counters["rejected"]
        lines = [f"hub: {received} messages in ({rate:,.0f}/s), {rejected} dead-lettered, "
                 f"broker {service.bus.state if service.bus else 'down'}",
                 f"{'partner':<10}{'tracks':>8}{'confirmed':>11}{'friends':>9}  subscribe to"]
        for partner in service.config.partners:
            fusion = service.pipeline.group_of(partner.id)
            table = fusion.tracker.snapshot()
            friends = len(fusion.platforms.snapshot().id)
            confirmed = int((table.status > 0).sum())
            lines.append(f"{partner.id:<10}{len(table.id):>8}{confirmed:>11}{friends:>9}  "
                         f"{self.address} cop/{partner.id}/picture")
        return "\n".join(lines)

    def show(self, service: HubService) -> None:
        """Print the table (in place when the output is a terminal)."""
        text = self.render(service)
        if self._redraw:
            self.out.write("\x1b[H\x1b[J")
        self.out.write(text + "\n\n")
        self.out.flush()
