"""The live hub: the bus in, the pipeline, pictures and health out.

Message handling is synchronous on paho's callback (decode and queue only);
fusion runs on the flush tick, pictures on the publish tick, so a burst of
input never waits behind a picture being encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from hub import __version__, topics
from hub.config import HubConfig, load_config
from hub.errors import REFUSAL_CODES, ConfigError, RefusalCode
from hub.ingest.frame_pool import FramePool
from hub.lifecycle import every
from hub.messages import HubStatus, encode
from hub.metrics import Rates
from hub.mqtt.bus import Bus
from hub.outputs import Outputs, audiences_of, tak_sink, web_sink
from hub.pipeline import Pipeline
from hub.publish.mqtt import MqttPictureSink
from hub.publish.publisher import PicturePublisher
from hub.publish.sink import PartnerSink
from hub.recovery.store import RecoveryStore, with_recovery_key
from hub.release.policy import MISSION, describe_audience
from hub.release.reload import restart_needed
from hub.release.view import ReleaseView
from hub.web.metrics import HubMetrics

log = logging.getLogger(__name__)

SUBSCRIPTIONS = (
    ("sensors/+/telemetry", 1),
    ("sensors/+/detections", 1),
    ("sensors/+/frames", 0),
    ("sensors/+/status", 1),
)
FLUSH_TICK_S = 0.02
MIN_FLUSH_TICK_S = 0.002
FIRST_CHECKPOINT_S = 0.5
"""Seconds after start to the first checkpoint: after the first picture, not before it."""
FRAME_COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "frames_rejected",
                  "frames_late")
RATED = ("received", "rejected", "over_budget", "detections", "fused", *FRAME_COUNTERS)
ALWAYS_REPORTED = (*RATED, "late", "duplicates", "seq_gaps", "seq_late", "reloads",
                   "reload_failures",
                   "release_unlabelled", "release_refused", "dead_letters_summarized",
                   "dead_letters_dropped",
                   *(f"rejected.{code}" for code in REFUSAL_CODES))


class HubService:
    """Run the pipeline against a broker until told to stop."""

    def __init__(self, config: HubConfig, password: str | None = None) -> None:
        config = with_recovery_key(config)
        self.config = config
        self.password = password
        # Live: frames go to worker processes, latest wins per sensor when they are busy.
        self.pipeline = Pipeline(config, frames=FramePool(config, wait=False))
        self.bus: Bus | None = None
        self.recovery = RecoveryStore(config) if config.recovery.enabled else None
        view = ReleaseView(self.pipeline)
        self.outputs = Outputs(config, web_sink(config, audiences_of(config), self._delay_of),
                               tak_sink(config, audiences_of(config)))
        sinks: list[PartnerSink] = [MqttPictureSink(self._send)]
        sinks += [s for s in (self.outputs.web_sink, self.outputs.tak_sink) if s is not None]
        self.publisher = PicturePublisher(view, sinks)
        self.metrics = HubMetrics()
        self.publisher.on_delivered = self.metrics.picture_delivered
        self.started = time.time()
        self._flush_pending = False
        self._link_lost_at: float | None = None
        self._status_rates = Rates()
        self._event_driven = config.publish.interval_s == 0
        self.reloads: Counter[str] = Counter()
        self.metrics.watch(self.status, self.outputs.clients)

    def _on_message(self, topic: str, payload: bytes) -> None:
        self.pipeline.handle(topic, payload, time.time())
        if self._event_driven and not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush_and_publish)

    def _flush_and_publish(self) -> None:
        self._flush_pending = False
        now = time.time()
        self._watch_link(now)
        if self._fuse(now):
            self.publisher.publish(now)
        self._send_dead_letters()

    def _fuse(self, now: float) -> int:
        """Fuse what the reorder window released; time the step when it did anything."""
        started = time.perf_counter()
        fused = self.pipeline.flush(now)
        if fused:
            self.metrics.fusion_step.observe(time.perf_counter() - started)
        return fused

    def _delay_of(self, audience: str) -> float:
        """How late ``audience``'s picture runs (its rules' delay; the mission's is 0)."""
        if audience == MISSION:
            return 0.0
        return self.pipeline.policy.partners[audience].delay_s

    def rules_of(self, audience: str) -> list[str]:
        """What ``audience`` sees and under which rules, as ``hub config check`` says it."""
        return [describe_audience(self.config, audience)]

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        return self.bus is not None and self.bus.publish(topic, payload, qos=qos, retain=retain)

    def _send_dead_letters(self) -> None:
        for letter in self.pipeline.take_dead_letters(time.time()):
            self._send(topics.DEADLETTER, encode(letter), 0, False)

    def status(self, online: bool = True) -> HubStatus:
        """The hub's health report as published on ``hub/status``."""
        counters: Counter[str] = Counter(dict.fromkeys(ALWAYS_REPORTED, 0))
        counters.update(self.pipeline.counters)
        counters.update(self.pipeline.router.counters)
        counters.update(self.reloads)
        counters.update(self.publisher.view.counters)
        counters.update(self.publisher.counters)
        counters.update(self.publisher.sink_counters())
        counters.update(self.outputs.counters())
        if self.recovery is not None:
            counters.update(self.recovery.counters)
        frames = self.pipeline.frames
        queues = {"reorder": len(self.pipeline.reorder), "frames_pending": frames.pending,
                  "frames_in_flight": frames.in_flight,
                  "mqtt_out": self.bus.queued if self.bus is not None else 0}
        broker = self.bus.state if self.bus is not None else "down"
        rates = self._status_rates.update({k: counters[k] for k in RATED})
        return HubStatus(ts=time.time(), online=online, version=__version__,
                         uptime=time.time() - self.started, counters=dict(counters),
                         rates=rates, queues=queues, broker=broker)

    def reload(self, path: str,
               adjust: Callable[[HubConfig], HubConfig] | None = None) -> bool:
        """Adopt the release rules of the config at ``path``; keep the current ones if it is bad.

        ``adjust`` applies what the hub was started with on top of the file
        (the command line's broker address), so it is not taken for a change.
        Partners whose rules changed have their retained snapshot cleared and
        get a full picture under the new rules on the next publish.
        """
        try:
            config = load_config(path)
            if adjust is not None:
                config = adjust(config)
            config = with_recovery_key(config)
            pending = restart_needed(self.config, config)
        except ConfigError as exc:
            self.reloads["reload_failures"] += 1
            log.error("reload of %s refused, rules unchanged: %s", path, exc)
            return False
        changed = self.pipeline.reload_rules(config)
        self.config = self.pipeline.config
        self.publisher.rules_changed(changed)
        self.reloads["reloads"] += 1
        log.warning("reloaded release rules from %s; partners whose view changed: %s", path,
                    ", ".join(changed) or "none")
        if pending:
            log.warning("not applied until the hub restarts: %s", ", ".join(pending))
        return True

    async def run(self, stop: asyncio.Event,
                  on_tick: Callable[[HubService], Awaitable[None] | None] | None = None) -> None:
        """Serve until ``stop`` is set; ``on_tick`` is called once a second (demo display)."""
        will = (topics.HUB_STATUS, encode(self.status(online=False)), True)
        self.bus = Bus(self.config.broker, subscriptions=SUBSCRIPTIONS, handler=self._on_message,
                       will=will, password=self.password)
        self._recover()
        try:
            await self.outputs.start(self.status, self.rules_of, self.metrics, self._on_message,
                                     self._refuse_cot)
            await self._serve(stop, on_tick)
        finally:
            await self.outputs.stop()
            self.pipeline.close()
            if self.recovery is not None:
                self.recovery.close(self.pipeline, self.publisher)

    def _recover(self) -> None:
        """Bring the pipeline back to where the last run left it (before any message comes)."""
        if self.recovery is None:
            return
        restored = self.recovery.start(self.pipeline, self.publisher)
        if restored.heard_at is not None:  # what the sensors sent meanwhile comes at once
            self._credit_outage(time.time() - restored.heard_at)
        if restored.checkpoint_age_s is None and not restored.replayed:
            log.info("recovery: nothing to recover in %s", self.recovery.directory)
            return
        age = ("no checkpoint" if restored.checkpoint_age_s is None
               else f"a checkpoint {restored.checkpoint_age_s:.1f} s old")
        log.warning("recovered from %s and %d journal records in %.2f s (%s)", age,
                    restored.replayed, restored.seconds, self.recovery.directory)

    def _credit_outage(self, seconds: float) -> None:
        """Let every sensor's backlog of ``seconds`` through its budget: it is no flood."""
        self.pipeline.budgets.credit(min(seconds, self.config.ingest.max_age_s))

    def _watch_link(self, now: float) -> None:
        """Note when the broker went away; when it is back, credit the time it was away."""
        if self.bus is None:
            return
        if not self.bus.connected.is_set():
            self._link_lost_at = self._link_lost_at or now
        elif self._link_lost_at is not None:
            self._credit_outage(now - self._link_lost_at)
            self._link_lost_at = None

    def _checkpoint(self) -> None:
        if self.recovery is not None:
            self.recovery.checkpoint(self.pipeline, self.publisher)

    def _refuse_cot(self, where: str, size: int, code: RefusalCode, reason: str) -> None:
        self.pipeline.reject(where, size, code, reason, time.time())

    async def _serve(self, stop: asyncio.Event,
                     on_tick: Callable[[HubService], Awaitable[None] | None] | None) -> None:
        assert self.bus is not None
        async with self.bus:
            loops = [every(self._flush_tick(), self._flush_and_publish
                                 if self._event_driven else self._flush),
                     every(self.config.publish.status_every_s, self._publish_status)]
            if not self._event_driven:
                loops.append(every(self.config.publish.interval_s, self._publish))
            if self.recovery is not None:
                # The first soon after the first picture: it supersedes the replayed journal.
                loops.append(every(self.config.recovery.checkpoint_every_s,
                                         self._checkpoint, first=FIRST_CHECKPOINT_S))
            if on_tick is not None:
                loops.append(every(1.0, lambda: on_tick(self)))
            tasks = [asyncio.create_task(loop) for loop in loops]
            # At once, not a period later: a restarted hub's picture and status are due.
            self._publish_status()
            if not self._event_driven:
                self._publish()
            # Workers boot (import numpy, OpenCV) only now: beside the recovery they
            # took the CPU it needed, and a restarted hub's picture came seconds later.
            boot = asyncio.create_task(self.pipeline.frames.boot())
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(boot, *tasks, return_exceptions=True)
                with contextlib.suppress(Exception):
                    self._send(topics.HUB_STATUS, encode(self.status(online=False)), 1, True)

    def _flush_tick(self) -> float:
        """Seconds between flushes of what the reorder window has released.

        Event-driven, a measurement waits the window and then up to one tick:
        a quarter of the window keeps that wait short for little CPU.
        """
        if not self._event_driven:
            return FLUSH_TICK_S
        window = self.config.fusion.reorder_window_s
        return min(FLUSH_TICK_S, max(MIN_FLUSH_TICK_S, window / 4))

    def _flush(self) -> None:
        now = time.time()
        self._watch_link(now)
        self._fuse(now)
        self._send_dead_letters()

    def _publish(self) -> None:
        self.publisher.publish(time.time())

    def _publish_status(self) -> None:
        self._send(topics.HUB_STATUS, encode(self.status()), 1, True)
