"""What the web app needs from the hub, handed in by the service (the web never imports it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hub.config import HubConfig, Web
from hub.messages import HubStatus
from hub.publish.web import WebSink
from hub.release.policy import MISSION
from hub.web.auth import Credentials, LoginLimiter, Sessions
from hub.web.metrics import HubMetrics
from hub.web.tiles import TileSource

HEALTH_KEYS = ("version", "uptime", "online", "broker")
"""What every audience may know of the hub itself; the rest of hub/status is the operator's."""


@dataclass
class WebContext:
    """The hub as the web app sees it."""

    config: HubConfig
    settings: Web
    sink: WebSink
    credentials: Credentials
    sessions: Sessions
    limiter: LoginLimiter
    status: Callable[[], HubStatus]
    rules_of: Callable[[str], list[str]]
    """The lines ``hub config check`` prints for an audience: what it sees, under which rules."""
    metrics: HubMetrics
    tiles: TileSource | None

    def status_for(self, audience: str) -> dict[str, Any]:
        """``GET /api/v1/status`` for ``audience``: health, its picture, its rules.

        A partner learns the hub's health and its own picture, not the hub-wide
        counters and rates: those count traffic of sources not released to it.
        """
        status = self.status()
        hub: dict[str, Any] = {key: getattr(status, key) for key in HEALTH_KEYS}
        if audience == MISSION:
            hub.update(rates=status.rates, counters=status.counters, queues=status.queues)
        state = self.sink.audiences[audience]
        picture = {"seq": state.seq, "ts": state.ts, "tracks": len(state.features)}
        return {"hub": hub, "audience": audience, "picture": picture,
                "rules": self.rules_of(audience),
                "clients": len(state.streams)}


CONTEXT = web.AppKey("context", WebContext)
