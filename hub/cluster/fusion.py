"""Fusion workers: each release group's tracker owned by one worker at a time.

A worker holds a lease (hub.cluster.lease) for each group it fuses. It
restores the group's last checkpoint from the object store, applies the
inputs stream from the sequence after it (hub.cluster.records), publishes the
group's partners' pictures, and checkpoints the group with the sequence it
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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.cluster import records
from hub.cluster.lease import GROUP, WORKER, Leases, assignment
from hub.cluster.names import Names
from hub.config import HubConfig
from hub.lifecycle import every
from hub.pipeline import Pipeline
from hub.publish.mqtt import MqttPictureSink, Send
from hub.publish.publisher import PicturePublisher
from hub.recovery import checkpoint
from hub.release.groups import release_groups
from hub.release.view import ReleaseView

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from hub.cluster.streams import Link

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0


class GroupRunner:
    """One release group fused here: its pipeline, its partners' feeds, its place in the stream."""

    def __init__(self, config: HubConfig, key: str, send: Send) -> None:
        self.key = key
        self.pipeline = Pipeline(config, groups=[key])
        self.publisher = PicturePublisher(ReleaseView(self.pipeline), [MqttPictureSink(send)])
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
        if seq <= self.applied:
            return
        self.applied = seq
        try:
            records.apply(self.pipeline, is_tick, data)
        except records.RecordError as exc:
            self.bad_records += 1
            log.error("group %s: record %d skipped: %s", self.key, seq, exc)


@dataclass
class _Owned:
    runner: GroupRunner
    task: asyncio.Task[None]


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
        self.leases = Leases(cluster.kv, worker_id)
        self.owned: dict[str, _Owned] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``; then hand every group over, so a standby need not wait."""
        if not await self.leases.take(WORKER + self.worker_id):
            raise RuntimeError(f"a worker named {self.worker_id} is already up")
        ttl = self.settings.lease_ttl_s
        loops = [every(ttl / 4, self._manage),
                 every(self.settings.checkpoint_every_s, self._checkpoint_all),
                 every(max(self.config.publish.interval_s, self.settings.tick_s), self._publish),
                 every(STATUS_EVERY_S, self._report)]
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for key in list(self.owned):
                await self._hand_over(key)
            await self.leases.give_up(WORKER + self.worker_id)

    async def _manage(self) -> None:
        """Renew the leases, drop what was lost, take and hand over as the assignment says."""
        for key in await self.leases.renew():
            if key.startswith(GROUP):
                log.error("lost the lease of group %s to another worker", key)
                await self._drop(key.removeprefix(GROUP))
            elif not await self.leases.take(key):  # our heartbeat lapsed while we were paused
                log.error("worker id %s is taken by another worker", self.worker_id)
        wanted = assignment(self.keys, await self.leases.live_workers())
        for key in self.keys:
            mine = wanted.get(key) == self.worker_id
            if mine and key not in self.owned and await self.leases.take(GROUP + key):
                await self._start(key)
            elif not mine and key in self.owned:
                await self._hand_over(key)

    async def _start(self, key: str) -> None:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        started = time.monotonic()
        runner = GroupRunner(self.config, key, self.send)
        data = await self._saved(key)
        restored = data is not None and runner.restore(data)
        policy = (ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                 opt_start_seq=runner.applied + 1) if restored
                  else ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        subscription = await self.cluster.js.subscribe(
            f"{self.names.prefix}.in.>", stream=self.names.inputs_stream, ordered_consumer=True,
            config=policy)
        self.owned[key] = _Owned(runner, asyncio.create_task(self._consume(runner, subscription)))
        log.warning("took group %s (%s), applying the stream from %d (%.2f s)", key,
                    "checkpoint restored" if restored else "no checkpoint", runner.applied + 1,
                    time.monotonic() - started)

    async def _saved(self, key: str) -> bytes | None:
        from nats.js.errors import NotFoundError, ObjectNotFoundError

        try:
            result = await self.cluster.store.get(key)
        except (NotFoundError, ObjectNotFoundError):
            return None
        return result.data

    async def _consume(self, runner: GroupRunner,
                       subscription: JetStreamContext.PushSubscription) -> None:
        tick = self.names.tick_subject
        try:
            async for msg in subscription.messages:
                runner.apply(msg.metadata.sequence.stream, msg.subject == tick, msg.data)
        finally:
            await subscription.unsubscribe()

    async def _drop(self, key: str) -> None:
        owned = self.owned.pop(key, None)
        if owned is not None:
            owned.task.cancel()
            await asyncio.gather(owned.task, return_exceptions=True)

    async def _hand_over(self, key: str) -> None:
        """Stop fusing ``key``, checkpoint it where it stopped, and give up its lease."""
        owned = self.owned.get(key)
        await self._drop(key)
        if owned is not None:
            await self._save(owned.runner)
        await self.leases.give_up(GROUP + key)
        log.warning("handed group %s over at %d", key, owned.runner.applied if owned else 0)

    async def _save(self, runner: GroupRunner) -> None:
        if GROUP + runner.key in self.leases.held:  # a worker whose lease lapsed keeps quiet
            await self.cluster.store.put(runner.key, runner.checkpoint())

    async def _checkpoint_all(self) -> None:
        for owned in list(self.owned.values()):
            await self._save(owned.runner)

    def _publish(self) -> None:
        now = time.time()
        for owned in self.owned.values():
            owned.runner.publisher.publish(now)

    async def _report(self) -> None:
        groups = {key: {"applied": o.runner.applied, "fused": o.runner.pipeline.counters["fused"],
                        "bad_records": o.runner.bad_records, "taken_at": o.runner.taken_at}
                  for key, o in self.owned.items()}
        report = {"worker": self.worker_id, "role": "fusion", "t": time.time(), "groups": groups}
        await self.cluster.nc.publish(self.names.status_subject, json.dumps(report).encode())
