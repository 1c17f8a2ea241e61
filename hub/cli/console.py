"""The live text display of ``hub demo`` and ``hub run``: one row per partner."""

from __future__ import annotations

import sys
from typing import TextIO

from hub.metrics import Rates
from hub.service import HubService


class LiveTable:
    """Print per-partner picture statistics once a second; redraw in place on a terminal."""

    def __init__(self, address: str, out: TextIO = sys.stdout) -> None:
        self.address = address
        self.out = out
        self._rates = Rates()
        self._redraw = out.isatty()

    def render(self, service: HubService) -> str:
        """The table: totals, then per partner its picture and the rate of its sources."""
        pipeline = service.pipeline
        counters = {"received": pipeline.counters["received"]}
        counters.update({g.group.key: g.fused for g in pipeline.groups})
        rates = self._rates.update(counters)
        lines = [f"hub: {counters['received']} messages in ({rates['received']:,.0f}/s), "
                 f"{pipeline.counters['rejected']} dead-lettered, "
                 f"frames {pipeline.counters['frames_processed']} processed "
                 f"({pipeline.counters['frames_dropped']} dropped), "
                 f"broker {service.bus.state if service.bus else 'down'}",
                 f"{'partner':<10}{'tracks':>8}{'confirmed':>11}{'friends':>9}{'msg in/s':>10}"
                 "  subscribe to"]
        for partner in service.config.partners:
            fusion = pipeline.group_of(partner.id)
            table = fusion.tracker.snapshot()
            friends = len(fusion.platforms.snapshot().id)
            confirmed = int((table.status > 0).sum())
            lines.append(f"{partner.id:<10}{len(table.id):>8}{confirmed:>11}{friends:>9}"
                         f"{rates[fusion.group.key]:>10.1f}  "
                         f"{self.address} cop/{partner.id}/picture")
        return "\n".join(lines)

    def show(self, service: HubService) -> None:
        """Print the table (in place when the output is a terminal)."""
        text = self.render(service)
        if self._redraw:
            self.out.write("\x1b[H\x1b[J")
        self.out.write(text + "\n\n")
        self.out.flush()
