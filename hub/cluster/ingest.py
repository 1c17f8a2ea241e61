"""Ingest and imagery workers: field units' messages validated into the inputs stream.

The sensors are shared out in ``cluster.ingest_slots`` slots (by a hash of
each sensor's id). A slot is one persistent MQTT session on the cluster
(client id ``{broker.client_id}-slot{k}``) subscribed at QoS 1 to its
sensors' telemetry, detections and status; NATS keeps a session's
unacknowledged messages in its replicated streams, whichever node dies.
The ingest workers lease the slots (``Shares``), validate each message as
the single process does (the pipeline's budgets and router, with no release
group of their own), publish the item it carries to the inputs stream, and
acknowledge the MQTT message only once the stream stored the item. A worker
that dies first leaves the message with the session: the slot's next
holder, connecting as the same client, gets it again, and the stream keeps
the item once (its id is a digest of the message). Imagery workers share
the frames (QoS 0, live only) in a NATS queue group and publish their scans.

We chose sessions over a stream capturing ``sensors.>``: NATS honours QoS 1
between MQTT clients only, and acknowledges a field unit's publish without
waiting for a capturing stream to store it, so what came while that stream
elected a leader (a node died) would be lost.

One ingest worker, the holder of the ``clock`` lease, publishes the fusion
steps (``tick_record``): a step is a record too, so every fusion worker
fuses the same steps and a takeover's replay is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub import topics
from hub.cluster import records
from hub.cluster.lease import INGEST, SLOT, Leases, Shares
from hub.cluster.names import QOS1_KINDS, Names
from hub.cluster.subjects import mqtt_topic_to_subject, subject_to_mqtt_topic
from hub.config import HubConfig
from hub.errors import BrokerUnavailable
from hub.ingest.frame_pool import FramePool
from hub.ingest.router import InboundItem
from hub.lifecycle import every, run_until, within
from hub.messages import encode
from hub.metrics import RateLimitedLog
from hub.mqtt.bus import Bus
from hub.pipeline import Pipeline

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from hub.cluster.streams import Link

log = logging.getLogger(__name__)

CLOCK = "clock"
STORE_WAKE_S = 0.5
"""The longest the store loop sleeps when nothing arrives (it wakes at once when something does)."""
RETRY_S = 0.2
FRAMES_EVERY_S = 0.02
STATUS_EVERY_S = 1.0
DEAD_LETTERS_EVERY_S = 1.0
JOIN_WAIT_S = 15.0
HAND_OVER_S = 10.0
"""How long a stopping worker hands its slots over; past it, what it did not acknowledge
stays with the sessions for the slots' next holders."""
SUBSCRIBE_WAIT_S = 10.0
STORE_WAIT_S = 30.0
"""How long a batch is offered to the inputs stream (an election takes seconds) before its
messages are left unacknowledged for the session to give again."""


def slots_of(config: HubConfig) -> dict[str, list[str]]:
    """Each slot's key and its sensors' ids (slots no sensor hashes to are left out)."""
    assert config.cluster is not None
    count = config.cluster.ingest_slots
    slots: dict[str, list[str]] = {}
    for sensor in config.sensors:
        k = int.from_bytes(hashlib.sha256(sensor.id.encode()).digest()[:4], "big") % count
        slots.setdefault(f"slot{k}", []).append(sensor.id)
    return slots


@dataclass
class _Slot:
    """A leased slot: its MQTT session and what came in that is not yet stored."""

    arrived: asyncio.Event
    """Set when a message comes: the worker's store loop, shared by its slots."""
    bus: Bus = field(init=False)
    inbox: list[tuple[str, bytes, float]] = field(default_factory=list)

    def receive(self, topic: str, payload: bytes) -> None:
        self.inbox.append((topic, payload, time.time()))
        self.arrived.set()


class IngestWorker:
    """Validate messages (``ingest``) and frames (``imagery``) into the inputs stream."""

    def __init__(self, config: HubConfig, cluster: Link, worker_id: str, *, ingest: bool,
                 imagery: bool, password: str | None = None) -> None:
        assert config.cluster is not None
        self.config = config
        self.settings = config.cluster
        self.names = Names.of(config.cluster)
        self.cluster = cluster
        self.worker_id = worker_id
        self.roles = (ingest, imagery)
        self.password = password
        self.pipeline = Pipeline(config, frames=FramePool(config, wait=False), groups=())
        self.pipeline.on_item = self._take
        self.leases = Leases(cluster, worker_id, config.cluster.lease_ttl_s)
        self.sensors = slots_of(config)
        self.shares = Shares(self.leases, INGEST, SLOT, sorted(self.sensors), self._open,
                             self._close)
        self.slots: dict[str, _Slot] = {}
        self._arrived = asyncio.Event()
        self._out: list[tuple[bytes, str | None]] = []
        self._message_id: str | None = None
        self._unanswered = RateLimitedLog(log, level=logging.WARNING)

    def _take(self, item: InboundItem, t_received: float) -> bool:
        """The pipeline's admitted item: to the inputs stream, keyed by its message."""
        self._out.append((records.item_record(item, t_received), self._message_id))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``; then hand the slots over, so another worker need not wait."""
        ingest, imagery = self.roles
        loops = [every(STATUS_EVERY_S, self._report),
                 every(DEAD_LETTERS_EVERY_S, self.send_dead_letters)]
        if ingest:
            await self.shares.join(JOIN_WAIT_S)
            loops += [*self.shares.loops(), every(self.settings.lease_ttl_s / 4, self._keep_clock),
                      every(0.0, self._store_arrivals),
                      every(self.settings.tick_s, self._tick)]
        if imagery:
            await self.cluster.nc.subscribe("sensors.*.frames", queue=self.names.imagery_queue,
                                            cb=self._on_frame)
            loops.append(every(FRAMES_EVERY_S, self._collect_frames))
            loops.append(self.pipeline.frames.boot())
        try:
            await run_until(stop, loops)
        finally:
            if ingest:
                await within(HAND_OVER_S, self._leave(), "stop: handing the slots over")
            self.pipeline.close()

    async def _leave(self) -> None:
        """Store and acknowledge what came, give up the slots and the clock."""
        await self.shares.leave()
        await self.leases.give_up(CLOCK)

    async def _keep_clock(self) -> None:
        """Take the clock lease when it is free (``Shares.renew`` renews it with the rest)."""
        if CLOCK not in self.leases.held and await self.leases.take(CLOCK):
            log.warning("this worker (%s) now keeps the fusion clock", self.worker_id)

    async def _open(self, key: str) -> bool:
        """Connect as slot ``key``'s session: what it holds unacknowledged comes to us."""
        slot_id = f"{self.config.broker.client_id}-{key}"[:64]
        subscriptions = [(f"sensors/{sensor}/{kind}", 1) for sensor in self.sensors[key]
                         for kind in QOS1_KINDS]
        slot = _Slot(self._arrived)
        slot.bus = Bus(self.config.broker, subscriptions=subscriptions, handler=slot.receive,
                       will=None, client_id=slot_id, password=self.password, defer_acks=True)
        await slot.bus.__aenter__()
        self.slots[key] = slot
        with contextlib.suppress(BrokerUnavailable):  # it goes on trying; say so in the log
            await slot.bus.wait_connected(SUBSCRIBE_WAIT_S)
        log.warning("ingest slot %s (%d sensors) taken", key, len(self.sensors[key]))
        return True

    async def _close(self, key: str, in_order: bool) -> None:
        slot = self.slots.pop(key)
        if in_order:  # store and acknowledge what came; the rest stays with the session
            await self._store(slot)
        await slot.bus.close()

    async def _store_arrivals(self) -> None:
        """Store what came as soon as it comes; what comes meanwhile goes in the next batch.

        One batch at a time: a slot's acknowledgements run in arrival order, so a
        later batch must never be acknowledged before an earlier one is stored.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STORE_WAKE_S):
                await self._arrived.wait()
        self._arrived.clear()
        await self._store_all()

    async def _store_all(self) -> None:
        for slot in list(self.slots.values()):
            await self._store(slot)

    async def _store(self, slot: _Slot) -> None:
        """Validate what ``slot`` received, store the items, then acknowledge the messages."""
        if not slot.inbox:
            return
        handled, inbox = slot.bus.stats.received, slot.inbox
        slot.inbox = []
        if await self.store(inbox):
            slot.bus.ack_through(handled)
        # Else none is acknowledged: the session gives them again (to us, or to the
        # slot's next holder), and what was stored is kept once.

    async def store(self, messages: list[tuple[str, bytes, float]]) -> bool:
        """Validate ``messages`` (topic, payload, receive time) and store their items.

        Returns whether every item was stored. A slot's messages come here, and
        those a publish process's TAK clients report (hub.cluster.publish).
        """
        for topic, payload, t_received in messages:
            # Keyed by content: a message the session delivers again is the same bytes.
            self._message_id = _digest(topic, payload)
            self.pipeline.handle(topic, payload, t_received)
        self._message_id = None
        return await self._publish_out()

    async def _publish_out(self, wait_s: float = STORE_WAIT_S) -> bool:
        """Store every pending item in the inputs stream, trying again for up to ``wait_s``.

        A retry is safe: the stream keeps an item of one message once. Returns
        whether every item was stored.
        """
        out, self._out = self._out, []
        deadline = time.monotonic() + wait_s
        while out:
            done = await asyncio.gather(*(self._store_item(data, msg_id) for data, msg_id in out))
            out = [record for record, stored in zip(out, done, strict=True) if not stored]
            if out and time.monotonic() > deadline:
                return False
            if out:
                await asyncio.sleep(RETRY_S)
        return True

    async def _store_item(self, data: bytes, msg_id: str | None) -> bool:
        from nats.errors import Error as NatsError

        headers = None if msg_id is None else {"Nats-Msg-Id": msg_id}
        try:
            await self.cluster.js.publish(self.names.item_subject, data,
                                          stream=self.names.inputs_stream, headers=headers)
        except NatsError as exc:
            self._unanswered.error("ingest: the inputs stream did not store an item (%s); "
                                   "trying again", type(exc).__name__)
            return False
        return True

    async def _on_frame(self, msg: Msg) -> None:
        self.pipeline.handle(subject_to_mqtt_topic(msg.subject), msg.data, time.time())

    async def _collect_frames(self) -> None:
        self.pipeline.collect_frames(time.time())
        if self._out:
            await self._publish_out()

    async def _tick(self) -> None:
        if CLOCK in self.leases.held:
            await self.cluster.nc.publish(self.names.tick_subject, records.tick_record(time.time()))

    async def send_dead_letters(self) -> None:
        """Publish the dead letters of what was refused, on ``hub/deadletter`` as the hub does."""
        subject = mqtt_topic_to_subject(topics.DEADLETTER)
        for letter in self.pipeline.take_dead_letters(time.time()):
            await self.cluster.nc.publish(subject, encode(letter))

    def _connected_slots(self) -> list[str]:
        """The slots whose session is up and subscribed (the others are connecting)."""
        return sorted(k for k, slot in self.slots.items() if slot.bus.connected.is_set())

    async def _report(self) -> None:
        counters = {**self.pipeline.counters, **self.pipeline.router.counters}
        report = {"worker": self.worker_id, "role": "ingest", "t": time.time(),
                  "clock": CLOCK in self.leases.held,
                  "slots": self._connected_slots(),
                  "counters": counters}
        await self.cluster.nc.publish(self.names.status_subject, json.dumps(report).encode())


def _digest(topic: str, payload: bytes) -> str:
    """A message's id for the inputs stream's duplicate check."""
    return hashlib.blake2b(payload, key=topic.encode()[:64], digest_size=16).hexdigest()
