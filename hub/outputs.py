"""The partner outputs a process serves from its sinks: the web console, TAK listener and pushes.

The single process (hub.service) and a cluster's publish worker
(hub.cluster.publish) start them the same way: the sinks are filled by
whoever holds the pictures; these serve them. aiohttp and the TAK modules
are imported only when the config asks for them (0.3 s of start-up each).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub.config import HubConfig
from hub.messages import HubStatus
from hub.publish.tak import TakSink
from hub.publish.web import WebSink
from hub.release.policy import MISSION
from hub.web.metrics import HubMetrics

if TYPE_CHECKING:
    from hub.tak.server import Ingest, Refuse, TakServer
    from hub.web.server import WebServer

log = logging.getLogger(__name__)


def web_sink(config: HubConfig, audiences: list[str],
             delay_of: Callable[[str], float]) -> WebSink | None:
    """The web sink of ``[web]`` for ``audiences``, or None without it."""
    return None if config.web is None else WebSink(config.web, audiences, delay_of)


def tak_sink(config: HubConfig, audiences: list[str]) -> TakSink | None:
    """The TAK sink of ``[tak]`` for ``audiences`` (stale after 3 publishes at least), or None."""
    if config.tak is None:
        return None
    stale_s = max(config.tak.stale_s, 3 * config.publish.interval_s)
    return TakSink(audiences, stale_s, config.tak.client_queue)


def audiences_of(config: HubConfig) -> list[str]:
    """Every partner and the mission's operators: who a console or TAK client may log in as."""
    return [*(p.id for p in config.partners), MISSION]


@dataclass
class Outputs:
    """The web server and the TAK server and pushes over the sinks, once started."""

    config: HubConfig
    web_sink: WebSink | None
    tak_sink: TakSink | None
    web: WebServer | None = None
    tak: TakServer | None = None
    _pushes: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, status: Callable[[], HubStatus], rules_of: Callable[[str], list[str]],
                    metrics: HubMetrics, ingest: Ingest, refuse: Refuse) -> None:
        """Serve the console (``[web]``) and TAK (``[tak]``); ConfigError naming a bad key."""
        await self._start_web(status, rules_of, metrics)
        await self._start_tak(ingest, refuse)

    async def _start_web(self, status: Callable[[], HubStatus],
                         rules_of: Callable[[str], list[str]], metrics: HubMetrics) -> None:
        if self.config.web is None or self.web_sink is None:
            return
        from hub.web.server import WebServer, web_context

        context = web_context(self.config, self.config.web, self.web_sink, status, rules_of,
                              metrics)
        self.web = WebServer(context)
        await self.web.start()
        log.info("console: %s", self.web.url)

    async def _start_tak(self, ingest: Ingest, refuse: Refuse) -> None:
        if self.config.tak is None or self.tak_sink is None:
            return
        from hub.tak.push import push_forever
        from hub.tak.server import TakServer

        self.tak = TakServer(self.config, self.config.tak, self.tak_sink, ingest, refuse)
        await self.tak.start()
        self._pushes = [asyncio.create_task(push_forever(server, self.tak_sink,
                                                         self.config.tak.send_timeout_s))
                        for server in self.config.tak.servers]

    def counters(self) -> Counter[str]:
        """What the sinks and the TAK server counted (connects, drops, inbound reports)."""
        counters: Counter[str] = Counter()
        for extra in (self.web_sink, self.tak_sink, self.tak):
            if extra is not None:
                counters.update(extra.counters)
        return counters

    def clients(self) -> dict[str, int]:
        """Web streams connected now, per audience (the metrics' gauge)."""
        return {} if self.web_sink is None else self.web_sink.clients()

    async def stop(self) -> None:
        """End the pushes, close every client and the listeners."""
        for task in self._pushes:
            task.cancel()
        await asyncio.gather(*self._pushes, return_exceptions=True)
        self._pushes = []
        if self.tak is not None:
            await self.tak.stop()
        if self.web is not None:
            await self.web.stop()
