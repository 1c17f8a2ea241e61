"""Fusion workers: each release group's tracker owned by one worker at a time.

A worker holds a lease (hub.cluster.lease) for each group it fuses. It
restores the group's last checkpoint from the object store, applies the
inputs stream from the sequence after it (hub.cluster.records), publishes the
group's partners' pictures (on MQTT, and on NATS for the publish processes:
hub.cluster.pictures), and checkpoints the group with the sequence it
has applied every ``cluster.checkpoint_every_s``. When it dies its leases
expire and the workers still up share its groups out (``assignment``); when a
worker joins, the groups it should now own are handed over to it (a last
checkpoint, then the lease given up). Replay is deterministic, so the new
owner's state is what the old one's would have been: no record is lost or
applied twice, and track ids run on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from hub.cluster import records
from hub.cluster.lease import FUSION, GROUP, Leases, Shares
from hub.cluster.names import Names
from hub.cluster.pictures import NatsPictureSink
from hub.config import HubConfig
from hub.lifecycle import every, run_until, within
from hub.metrics import RateLimitedLog
from hub.pipeline import Pipeline
from hub.publish.mqtt import MqttPictureSink, Send
from hub.publish.publisher import PicturePublisher
from hub.publish.sink import PartnerSink
from hub.recovery import checkpoint
from hub.release.groups import MISSION, release_groups
from hub.release.view import ReleaseView

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from hub.cluster.streams import Link

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
HAND_OVER_S = 10.0
"""How long a stopping worker hands its groups over; past it their leases just expire."""
JOIN_WAIT_S = 15.0
"""How long a starting worker waits for the lease bucket to answer (it may just be created)."""


class GroupRunner:
    """One release group fused here: its pipeline, its partners' feeds, its place in the stream."""

    def __init__(self, config: HubConfig, key: str, send: Send,
                 pictures: NatsPictureSink | None = None) -> None:
        self.key = key
        self.pipeline = Pipeline(config, groups=[key])
        self.pictures = pictures
        """The publish processes' copy of the pictures (none in a replay)."""
        sinks: list[PartnerSink] = [MqttPictureSink(send)]
        if pictures is not None:
            sinks.append(pictures)
        self.publisher = PicturePublisher(ReleaseView(self.pipeline), sinks)
        self.applied = 0
        """The stream sequence of the last record applied (0: none)."""
        self.bad_records = 0
        self.taken_at = time.time()
        """When this worker took the group (wall clock): a takeover's end, in the report."""

    def restore(self, data: bytes) -> bool:
        """Take the state of a checkpoint; False (and the state untouched) if it does not fit."""
        saved = checkpoint.parse(data)
        if saved.meta.get("fingerprint") != checkpoint.fingerprint(self.pipeline):
            log.warning("group %s: checkpoint of another registry or grouping, not restored",
                        self.key)
            return False
        checkpoint.restore(saved, self.pipeline, self.publisher)
        self.applied = int(saved.meta["segment"])
        return True

    def checkpoint(self) -> bytes:
        """The group's state now, with the sequence applied (in the ``segment`` field)."""
        return checkpoint.dump(checkpoint.capture(self.pipeline, self.publisher, self.applied))

    def apply(self, seq: int, is_tick: bool, data: bytes) -> None:
        """Apply the record at stream sequence ``seq`` once (a repeat is ignored)."""
        self.apply_decoded(seq, records.read(seq, is_tick, data))

    def apply_decoded(self, seq: int, record: records.Decoded | None) -> int:
        """``apply`` of a record already read (None: not one of ours, skipped and counted).

        Returns how many items it fused (a fusion step), else 0.
        """
        if seq <= self.applied:
            return 0
        self.applied = seq
        if record is None:
            self.bad_records += 1
            return 0
        return records.apply_decoded(self.pipeline, record)


class FusionWorker:
    """Take the release groups this worker should own, fuse them, hand them on."""

    def __init__(self, config: HubConfig, cluster: Link, worker_id: str, send: Send) -> None:
        assert config.cluster is not None
        self.config = config
        self.settings = config.cluster
        self.names = Names.of(config.cluster)
        self.cluster = cluster
        self.worker_id = worker_id
        self.send = send
        self.keys = [group.key for group in release_groups(config)]
        self.leases = Leases(cluster, worker_id, config.cluster.lease_ttl_s)
        self.shares = Shares(self.leases, FUSION, GROUP, self.keys, self._start, self._stop)
        self.owned: dict[str, GroupRunner] = {}
        self._consumer: asyncio.Task[None] | None = None
        self._following = asyncio.Lock()
        self._unsaved = RateLimitedLog(log, level=logging.WARNING)
        self._event_driven = config.publish.interval_s == 0
        """``publish.interval_s = 0``: pictures after each fusion step, as the single process."""

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``; then hand every group over, so a standby need not wait."""
        await self.shares.join(JOIN_WAIT_S)
        loops = [*self.shares.loops(),
                 every(self.settings.checkpoint_every_s, self._checkpoint_all),
                 every(STATUS_EVERY_S, self._report)]
        if not self._event_driven:
            loops.append(every(self.config.publish.interval_s, self._publish))
        try:
            await run_until(stop, loops)
        finally:
            await within(HAND_OVER_S, self.shares.leave(), "stop: handing the groups over")

    async def _start(self, key: str) -> bool:
        """Restore ``key``'s checkpoint and follow the stream from it; False if NATS is silent."""
        from nats.errors import Error as NatsError

        started = time.monotonic()
        # A feed of its own: a delta of the previous owner's never follows one of ours.
        pictures = NatsPictureSink(self.names, f"{self.worker_id}/{time.time_ns()}",
                                   serves_mission=key == MISSION)
        runner = GroupRunner(self.config, key, self.send, pictures)
        try:
            restored = await self._restore(runner)
            self.owned[key] = runner
            await self._follow()
        except NatsError as exc:
            self.owned.pop(key, None)
            log.warning("group %s: not started (%s); trying again", key, type(exc).__name__)
            return False
        log.warning("took group %s (%s), applying the stream from %d (%.2f s)", key,
                    "checkpoint restored" if restored else "no checkpoint", runner.applied + 1,
                    time.monotonic() - started)
        return True

    async def _stop(self, key: str, in_order: bool) -> None:
        """Stop fusing ``key``; handed over in order, checkpoint it where it stopped."""
        runner = self.owned.pop(key, None)
        if runner is None:
            return
        if not self.owned:
            await self._unfollow()
        if in_order:
            await self._save(runner)
            log.warning("handed group %s over at %d", key, runner.applied)

    async def _restore(self, runner: GroupRunner) -> bool:
        data = await self._saved(runner.key)
        return data is not None and runner.restore(data)

    async def _follow(self) -> None:
        """(Re)start the worker's one consumer of the stream, from the least applied group on.

        One consumer for all the groups here: each record is delivered and read
        once and applied to each group that has not applied it yet.
        """
        from nats.js.api import ConsumerConfig, DeliverPolicy

        async with self._following:  # groups start side by side: one consumer at a time
            await self._unfollow()
            if not self.owned:
                return
            first = min(runner.applied for runner in self.owned.values()) + 1
            subscription = await self.cluster.js.subscribe(
                f"{self.names.prefix}.in.>", stream=self.names.inputs_stream,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                      opt_start_seq=first))
            self._consumer = asyncio.create_task(self._consume(subscription))

    async def _unfollow(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
            self._consumer = None

    async def _saved(self, key: str) -> bytes | None:
        from nats.js.errors import NotFoundError, ObjectNotFoundError

        try:
            result = await self.cluster.store.get(key)
        except (NotFoundError, ObjectNotFoundError):
            return None
        return result.data

    async def _consume(self, subscription: JetStreamContext.PushSubscription) -> None:
        tick = self.names.tick_subject
        try:
            async for msg in subscription.messages:
                seq = msg.metadata.sequence.stream
                record = records.read(seq, msg.subject == tick, msg.data)
                # Event-driven, a step's pictures go at once, but only once caught up:
                # a takeover's replay of old steps must not send partners old pictures.
                live = self._event_driven and not msg.metadata.num_pending
                for runner in list(self.owned.values()):
                    if runner.apply_decoded(seq, record) and live:
                        await self._publish_group(runner, time.time())
        finally:
            await subscription.unsubscribe()

    async def _save(self, runner: GroupRunner) -> None:
        from nats.errors import Error as NatsError

        if GROUP + runner.key not in self.leases.held:  # a worker whose lease lapsed keeps quiet
            return
        try:
            await self.cluster.store.put(runner.key, runner.checkpoint())
        except NatsError as exc:  # the last one stands: a takeover replays more
            self._unsaved.error("group %s: checkpoint not stored (%s)", runner.key,
                                type(exc).__name__)

    async def _checkpoint_all(self) -> None:
        for runner in list(self.owned.values()):
            await self._save(runner)

    async def _publish(self) -> None:
        now = time.time()
        for runner in list(self.owned.values()):
            await self._publish_group(runner, now)

    async def _publish_group(self, runner: GroupRunner, now: float) -> None:
        """``runner``'s partners' pictures: on MQTT, and on NATS for the publish processes."""
        runner.publisher.publish(now)
        if runner.pictures is not None:
            await runner.pictures.flush(self.cluster.nc)

    async def _report(self) -> None:
        groups = {key: {"applied": r.applied, "fused": r.pipeline.counters["fused"],
                        "bad_records": r.bad_records, "taken_at": r.taken_at}
                  for key, r in self.owned.items()}
        report = {"worker": self.worker_id, "role": "fusion", "t": time.time(), "groups": groups}
        await self.cluster.nc.publish(self.names.status_subject, json.dumps(report).encode())
