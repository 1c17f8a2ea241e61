"""Ingest and imagery workers: field units' messages validated into the inputs stream.

Stateless and shared: the ingest workers pull the raw stream through one
durable consumer (each message goes to one of them), validate each message
as the single process does (the pipeline's budgets and router, with no
release group of their own), publish the item it carries to the inputs
stream, and acknowledge the raw message only once the inputs stream has
stored the item. A worker that dies before its acknowledgement leaves the
message to be delivered to another, and the inputs stream keeps that item
once (its id is the raw message's sequence). Imagery workers share the
frames (QoS 0, live only) in a queue group and publish the scans.

One of the ingest workers, the holder of the ``clock`` lease, publishes the
fusion steps (``tick_record``): a step is a record too, so every fusion worker
fuses the same steps and a takeover's replay is exact.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from hub import topics
from hub.cluster import records
from hub.cluster.lease import Leases
from hub.cluster.names import Names, subject_of, topic_of
from hub.config import HubConfig
from hub.ingest.frame_pool import FramePool
from hub.ingest.router import InboundItem
from hub.lifecycle import every
from hub.messages import encode
from hub.pipeline import Pipeline

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from hub.cluster.streams import Link

log = logging.getLogger(__name__)

CLOCK = "clock"
FETCH_BATCH = 256
FETCH_WAIT_S = 0.25
ACK_WAIT_S = 30.0
FRAMES_EVERY_S = 0.02
STATUS_EVERY_S = 1.0
DEAD_LETTERS_EVERY_S = 1.0


class IngestWorker:
    """Validate messages (``ingest``) and frames (``imagery``) into the inputs stream."""

    def __init__(self, config: HubConfig, cluster: Link, worker_id: str, *, ingest: bool,
                 imagery: bool) -> None:
        assert config.cluster is not None
        self.settings = config.cluster
        self.names = Names.of(config.cluster)
        self.cluster = cluster
        self.worker_id = worker_id
        self.roles = (ingest, imagery)
        self.pipeline = Pipeline(config, frames=FramePool(config, wait=False), groups=())
        self.pipeline.on_item = self._take
        self.leases = Leases(cluster.kv, worker_id)
        self._out: list[tuple[bytes, str | None]] = []
        self._raw_seq: int | None = None

    def _take(self, item: InboundItem, t_received: float) -> bool:
        """The pipeline's admitted item: to the inputs stream, keyed by its raw message."""
        msg_id = None if self._raw_seq is None else f"raw-{self._raw_seq}"
        self._out.append((records.item_record(item, t_received), msg_id))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``."""
        ingest, imagery = self.roles
        loops = [every(STATUS_EVERY_S, self._report),
                 every(DEAD_LETTERS_EVERY_S, self._send_dead_letters)]
        if ingest:
            loops += [self._pull(stop), every(self.settings.lease_ttl_s / 4, self._keep_clock),
                      every(self.settings.tick_s, self._tick)]
        if imagery:
            await self.cluster.nc.subscribe("sensors.*.frames", queue=self.names.imagery_queue,
                                            cb=self._on_frame)
            loops.append(every(FRAMES_EVERY_S, self._collect_frames))
            asyncio.get_running_loop().create_task(self.pipeline.frames.boot())
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.leases.give_up(CLOCK)
            self.pipeline.close()

    async def _pull(self, stop: asyncio.Event) -> None:
        from nats.errors import TimeoutError as FetchTimeout
        from nats.js.api import ConsumerConfig

        subscription = await self.cluster.js.pull_subscribe(
            "sensors.>", durable=self.names.ingest_durable, stream=self.names.raw_stream,
            config=ConsumerConfig(ack_wait=ACK_WAIT_S, max_ack_pending=20 * FETCH_BATCH))
        while not stop.is_set():
            try:
                batch = await subscription.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
            except FetchTimeout:
                continue
            self._validate(batch)
            await self._publish_out()
            for msg in batch:  # only now: the items are stored
                await msg.ack()

    def _validate(self, batch: list[Msg]) -> None:
        for msg in batch:
            self._raw_seq = msg.metadata.sequence.stream
            self.pipeline.handle(topic_of(msg.subject), msg.data,
                                 msg.metadata.timestamp.timestamp())
        self._raw_seq = None

    async def _publish_out(self) -> None:
        out, self._out = self._out, []
        js, stream, subject = self.cluster.js, self.names.inputs_stream, self.names.item_subject
        await asyncio.gather(*(
            js.publish(subject, data, stream=stream,
                       headers=None if msg_id is None else {"Nats-Msg-Id": msg_id})
            for data, msg_id in out))

    async def _on_frame(self, msg: Msg) -> None:
        self.pipeline.handle(topic_of(msg.subject), msg.data, time.time())

    async def _collect_frames(self) -> None:
        self.pipeline.collect_frames(time.time())
        if self._out:
            await self._publish_out()

    async def _keep_clock(self) -> None:
        """Renew the clock lease, or take it when it is free (its holder died)."""
        await self.leases.renew()
        if CLOCK not in self.leases.held and await self.leases.take(CLOCK):
            log.warning("this worker (%s) now keeps the fusion clock", self.worker_id)

    async def _tick(self) -> None:
        if CLOCK in self.leases.held:
            await self.cluster.nc.publish(self.names.tick_subject, records.tick_record(time.time()))

    async def _send_dead_letters(self) -> None:
        subject = subject_of(topics.DEADLETTER)
        for letter in self.pipeline.take_dead_letters(time.time()):
            await self.cluster.nc.publish(subject, encode(letter))

    async def _report(self) -> None:
        counters = {**self.pipeline.counters, **self.pipeline.router.counters}
        report = {"worker": self.worker_id, "role": "ingest", "t": time.time(),
                  "clock": CLOCK in self.leases.held, "counters": counters}
        await self.cluster.nc.publish(self.names.status_subject, json.dumps(report).encode())
