"""Publish workers: the web console and TAK outputs, on any node, from the fusion workers' pictures.

``hub run --role publish`` follows every audience's pictures on NATS
(hub.cluster.pictures): it first reads each audience's last full picture
from the pictures stream, then applies what comes live, through a relay, to
its own web and TAK sinks, and serves them as the single process does
(hub.outputs): the console and API on ``[web]``, TAK clients on ``[tak]``
and the pushes to partners' TAK Servers. Any number of publish processes
may run; each holds every audience's picture, so a console that loses one
reconnects to another.

What TAK clients report (a unit's position, a spot report) is validated as
an ingest worker validates a field unit's message and stored in the inputs
stream, keyed by its content, so fusion takes it as it takes MQTT.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING

from hub import __version__
from hub.cluster.ingest import DEAD_LETTERS_EVERY_S, IngestWorker
from hub.cluster.names import Names
from hub.cluster.pictures import FEED_HEADER, PictureRelay, subject_parts
from hub.config import HubConfig
from hub.errors import ConfigError, RefusalCode
from hub.lifecycle import every, run_until
from hub.messages import HubStatus
from hub.outputs import Outputs, audiences_of, tak_sink, web_sink
from hub.publish.sink import PartnerSink, sink_counters
from hub.release.policy import MISSION, ReleasePolicy, describe_audience
from hub.web.metrics import HubMetrics

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from hub.cluster.streams import Link

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
STORE_EVERY_S = 0.05
CATCH_UP_WAIT_S = 5.0


def check_publishable(config: HubConfig) -> None:
    """ConfigError unless the config has something for a publish worker to serve."""
    if config.web is None and config.tak is None:
        raise ConfigError("$.web: the publish role serves the console ([web]) and TAK "
                          "([tak]); the config has neither")


class PublishWorker:
    """Relay the pictures to web and TAK sinks and serve them; store what TAK units report."""

    def __init__(self, config: HubConfig, cluster: Link, worker_id: str,
                 password: str | None = None) -> None:
        assert config.cluster is not None
        check_publishable(config)
        self.config = config
        self.names = Names.of(config.cluster)
        self.cluster = cluster
        self.worker_id = worker_id
        self.policy = ReleasePolicy(config, config.mission.origin.frame())
        audiences = audiences_of(config)
        self.outputs = Outputs(config, web_sink(config, audiences, self._delay_of),
                               tak_sink(config, audiences))
        sinks: list[PartnerSink] = [s for s in (self.outputs.web_sink, self.outputs.tak_sink)
                                    if s is not None]
        self.relay = PictureRelay(audiences, sinks)
        self.inbound = IngestWorker(config, cluster, worker_id, ingest=False, imagery=False,
                                    password=password)
        """TAK units' reports, validated and stored as an ingest worker's are."""
        self.reports: list[tuple[str, bytes, float]] = []
        self.metrics = HubMetrics()
        self.metrics.watch(self.status, self.outputs.clients)
        self.started = time.time()

    def _delay_of(self, audience: str) -> float:
        return 0.0 if audience == MISSION else self.policy.partners[audience].delay_s

    def rules_of(self, audience: str) -> list[str]:
        """What ``audience`` sees and under which rules, as ``hub config check`` says it."""
        return [describe_audience(self.config, audience)]

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the pictures and serve them until ``stop``."""
        subscription = await self.cluster.nc.subscribe(self.names.pictures, cb=self._on_picture)
        try:
            await self._catch_up()
            await self.outputs.start(self.status, self.rules_of, self.metrics, self._on_report,
                                     self._refuse)
            if self.outputs.web is not None:
                log.warning("console: %s", self.outputs.web.url)
            loops = [every(STATUS_EVERY_S, self._report), every(STORE_EVERY_S, self._store),
                     every(DEAD_LETTERS_EVERY_S, self.inbound.send_dead_letters)]
            await run_until(stop, loops)
        finally:
            await self.outputs.stop()
            await subscription.unsubscribe()
            self.inbound.pipeline.close()

    async def _on_picture(self, msg: Msg) -> None:
        parts = subject_parts(self.names, msg.subject)
        if parts is None:
            return
        feed = (msg.headers or {}).get(FEED_HEADER, "")
        self.relay.take(*parts, feed, msg.data)

    async def _catch_up(self) -> None:
        """Each audience's last full picture, from the pictures stream (a late start)."""
        from nats.errors import Error as NatsError
        from nats.js.errors import NotFoundError

        js = self.cluster.nc.jetstream(timeout=CATCH_UP_WAIT_S)

        async def last(audience: str) -> None:
            try:
                msg = await js.get_last_msg(self.names.pictures_stream,
                                            self.names.picture_subject(audience, True))
            except NotFoundError:
                return
            except NatsError as exc:  # the next full picture comes within full_every_s
                log.warning("no stored picture of %s (%s); waiting for the next",
                            audience, type(exc).__name__)
                return
            feed = (msg.headers or {}).get(FEED_HEADER, "")
            self.relay.take(audience, True, feed, msg.data or b"", stored=True)

        await asyncio.gather(*(last(audience) for audience in self.relay.audiences))

    def _on_report(self, topic: str, payload: bytes) -> None:
        """A TAK client's report, as if it had come on ``topic`` over MQTT."""
        self.reports.append((topic, payload, time.time()))

    async def _store(self) -> None:
        if self.reports:
            reports, self.reports = self.reports, []
            if not await self.inbound.store(reports):
                log.warning("%d TAK reports not stored: the inputs stream did not answer",
                            len(reports))

    def _refuse(self, where: str, size: int, code: RefusalCode, reason: str) -> None:
        self.inbound.pipeline.reject(where, size, code, reason, time.time())

    def status(self) -> HubStatus:
        """This process's health: its NATS link, the relay's and the sinks' counters."""
        counters: Counter[str] = Counter(self.relay.counters)
        counters.update(self.outputs.counters())
        counters.update(sink_counters(self.relay.sinks))
        counters.update(self.inbound.pipeline.counters)
        nc = self.cluster.nc
        return HubStatus(ts=time.time(), online=True, version=__version__,
                         uptime=time.time() - self.started, counters=dict(counters),
                         queues={"audiences_waiting": len(self.relay.waiting())},
                         broker="connected" if nc.is_connected else "down")

    async def _report(self) -> None:
        report = {"worker": self.worker_id, "role": "publish", "t": time.time(),
                  "waiting": self.relay.waiting(), "clients": self.outputs.clients(),
                  "counters": dict(self.relay.counters)}
        await self.cluster.nc.publish(self.names.status_subject, json.dumps(report).encode())
