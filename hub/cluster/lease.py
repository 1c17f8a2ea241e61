"""Leases in a JetStream key-value bucket whose entries expire unless renewed.

A lease is a key created by its holder (``create`` fails while another holds
it) and renewed by updating it at the revision the holder last wrote, so a
holder that was paused past the bucket's TTL finds its lease gone when it
next renews, and stops. Live workers announce themselves the same way, under
their role's prefix (``fusion.<id>``, ``ingest.<id>``). A dead holder's keys
expire after the TTL; then another may create them. While the cluster elects
a leader (a node died) the bucket does not answer: a renewal that fails so is
not a lost lease, only one that finds another holder is; the TTL decides the
rest (an election longer than the TTL costs every lease, and the workers then
take them again, each group from its checkpoint).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING

from hub.errors import HubError
from hub.lifecycle import every
from hub.metrics import RateLimitedLog

if TYPE_CHECKING:
    from hub.cluster.streams import Link

log = logging.getLogger(__name__)

RETRY_S = 0.2
FUSION = "fusion."
"""A fusion worker's heartbeat: ``fusion.<id>``."""
INGEST = "ingest."
"""An ingest worker's heartbeat: ``ingest.<id>``."""
GROUP = "group."
"""A release group's lease: ``group.<key>``."""
SLOT = "slot."
"""An ingest slot's lease (a share of the sensors, one MQTT session): ``slot.<k>``."""


class Leases:
    """The leases one worker holds in ``kv``, and its own heartbeat."""

    def __init__(self, link: Link, owner: str, ttl_s: float) -> None:
        self.kv = link.kv
        self.js = link.js
        self._stream = f"KV_{link.leases_bucket}"
        self._subjects = f"$KV.{link.leases_bucket}."
        self.kv_ttl = ttl_s
        """Seconds an entry lives unless renewed (the bucket's TTL)."""
        self.owner = owner
        self.held: dict[str, int] = {}
        """Key → the revision this worker last wrote."""
        self._unanswered = RateLimitedLog(log, level=logging.WARNING)

    def _no_answer(self, what: str, exc: Exception) -> None:
        self._unanswered.error("leases: %s got no answer (%s); trying again", what,
                               type(exc).__name__)

    async def take(self, key: str, wait_s: float = 0.0) -> bool:
        """Create ``key`` as this worker's; False when someone holds it.

        A bucket that does not answer (just created, or electing) is asked
        again for up to ``wait_s``; then False.
        """
        from nats.errors import Error as NatsError
        from nats.js.errors import KeyWrongLastSequenceError

        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.held[key] = await self.kv.create(key, self.owner.encode())
            except KeyWrongLastSequenceError:
                return False
            except NatsError as exc:
                self._no_answer(f"taking {key}", exc)
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(RETRY_S)
                continue
            return True

    async def renew(self) -> list[str]:
        """Renew every lease held (the heartbeat too); return the keys that were lost."""
        from nats.errors import Error as NatsError
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        lost = []
        for key, revision in list(self.held.items()):
            try:
                renewed = await self.kv.update(key, self.owner.encode(), last=revision)
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                self.held.pop(key, None)
                lost.append(key)
            except NatsError as exc:
                self._no_answer(f"renewing {key}", exc)
            else:
                await self._keep(key, renewed)
        return lost

    async def _keep(self, key: str, revision: int) -> None:
        """Note ``key``'s new revision, unless it was given up while it was being renewed.

        Then the give-up's delete named the old revision and failed: without this,
        the renewal would hold the key again, and nobody could ever take it.
        """
        given_up = key not in self.held
        self.held[key] = revision
        if given_up:
            await self.give_up(key)

    async def give_up(self, key: str) -> None:
        """Release ``key`` now (a hand-over), so the next holder need not wait for the TTL."""
        from nats.errors import Error as NatsError
        from nats.js.errors import KeyWrongLastSequenceError

        revision = self.held.pop(key, None)
        if revision is not None:
            try:
                await self.kv.delete(key, last=revision)
            except KeyWrongLastSequenceError:
                log.warning("lease %s was already taken over", key)
            except NatsError as exc:  # it expires after the TTL instead
                self._no_answer(f"giving up {key}", exc)

    async def live_workers(self, role: str) -> list[str] | None:
        """Ids of ``role``'s workers (a prefix) whose heartbeat has not expired.

        None when the bucket is silent. The keys come from the bucket stream's
        subjects (one request to its leader), not from nats-py's ``keys()``: that
        one makes a consumer for each listing, and after a node's death those
        timed out for minutes, leaving a subscription behind each time.
        """
        from nats.errors import Error as NatsError

        try:
            info = await self.js.stream_info(self._stream,
                                             subjects_filter=f"{self._subjects}{role}>")
            listed = [s.removeprefix(self._subjects) for s in info.state.subjects or {}]
            live = [key for key in listed if await self._live(key)]
        except NatsError as exc:
            self._no_answer("listing workers", exc)
            return None
        return sorted(key.removeprefix(role) for key in live)

    async def _live(self, key: str) -> bool:
        """Whether ``key`` holds a value: a heartbeat given up leaves a marker until it expires."""
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        try:
            await self.kv.get(key)
        except (KeyDeletedError, KeyNotFoundError):
            return False
        return True


Start = Callable[[str], Awaitable[bool]]
"""Begin serving a key just leased; False when it could not (it is tried again)."""
Stop = Callable[[str, bool], Awaitable[None]]
"""Stop serving a key: handed over in order (True), or lost (False: do not write anything)."""


class Shares:
    """The keys one worker should serve among its role's live workers: taken, kept, handed on.

    Every worker of a role renews its leases (its heartbeat among them) every
    quarter of the lease TTL and stops serving what it lost; as often, it takes
    or hands over keys as ``assignment`` over the live workers says.
    """

    def __init__(self, leases: Leases, role: str, kind: str, keys: list[str], start: Start,
                 stop: Stop) -> None:
        self.leases = leases
        self.heartbeat = role + leases.owner
        self.role, self.kind, self.keys = role, kind, keys
        self._start, self._stop = start, stop
        self.serving: set[str] = set()

    async def join(self, wait_s: float) -> None:
        """Announce this worker; HubError when its name is taken or the cluster is silent."""
        if not await self.leases.take(self.heartbeat, wait_s=wait_s):
            raise HubError(f"worker id {self.leases.owner}: another worker of that name is up, "
                           "or the cluster did not answer")

    def loops(self) -> list[Coroutine[object, object, None]]:
        """The two periodic tasks of a worker's shares: renewing, and (re)balancing.

        Apart, so a slow start (a restore, a session that takes seconds to
        connect while the cluster elects) never holds a renewal back past the TTL.
        """
        period = self.leases.kv_ttl / 4
        return [every(period, self.renew), every(period, self.rebalance)]

    async def renew(self) -> None:
        """Renew every lease held; stop serving what was lost."""
        for key in await self.leases.renew():
            if key == self.heartbeat:
                if not await self.leases.take(key):  # lapsed while we were paused
                    log.error("worker id %s is taken by another worker", self.leases.owner)
            elif key.removeprefix(self.kind) in self.serving:
                await self._lost(key)

    async def _lost(self, key: str) -> None:
        """A served key whose renewal failed: expired in an election (taken again), or taken."""
        if await self.leases.take(key):
            # Nobody took it while the bucket was silent: this worker's state is still the
            # stream's, so it goes on serving, with no restore and no gap.
            log.warning("the lease of %s expired while the cluster elected; taken again", key)
            return
        log.warning("lost the lease of %s to another worker; dropping it", key)
        await self._drop(key.removeprefix(self.kind))

    async def rebalance(self) -> None:
        """Take the keys the assignment gives this worker; hand over those it gives others."""
        workers = await self.leases.live_workers(self.role)
        if workers is None:
            return
        wanted = assignment(self.keys, workers)
        taken = []
        for key in self.keys:
            mine = wanted.get(key) == self.leases.owner
            if mine and key not in self.serving and await self._lease(key):
                taken.append(key)
            elif not mine and key in self.serving:
                await self.hand_over(key)
            elif not mine and self.kind + key in self.leases.held:
                # Leased for a start that failed (NATS silent), and someone else's now:
                # kept, it would be renewed for ever and its new owner never get it.
                await self.leases.give_up(self.kind + key)
        # Started side by side: a start may take seconds (a session, a restore).
        await asyncio.gather(*(self._begin(key) for key in taken))

    async def _begin(self, key: str) -> None:
        if await self._start(key):
            self.serving.add(key)
        if self.kind + key not in self.leases.held:  # lost while starting
            await self._drop(key)

    async def _drop(self, key: str) -> None:
        if key in self.serving:
            self.serving.discard(key)
            await self._stop(key, False)

    async def _lease(self, key: str) -> bool:
        """Hold ``key``'s lease: already (a start that failed), or take it now."""
        return self.kind + key in self.leases.held or await self.leases.take(self.kind + key)

    async def hand_over(self, key: str) -> None:
        """Stop serving ``key`` in order, then give its lease up for the next holder."""
        self.serving.discard(key)
        await self._stop(key, True)
        await self.leases.give_up(self.kind + key)

    async def leave(self) -> None:
        """Hand every key over and take this worker's heartbeat away (a clean stop)."""
        for key in sorted(self.serving):
            await self.hand_over(key)
        await self.leases.give_up(self.heartbeat)


def assignment(keys: list[str], workers: list[str]) -> dict[str, str]:
    """Which worker should hold each of ``keys``: balanced, and stable as workers come and go.

    Each key ranks the workers by a hash of (key, worker) (rendezvous hashing)
    and goes to the first in its ranking with room, room being an even share
    (rounded up). Without the room, four groups on two workers could all rank
    the same worker first; with it, a worker that joins takes about its share
    and one that leaves hands over only its own.
    """
    workers = sorted(set(workers))  # a listing may name one twice
    if not workers:
        return {}
    room = -(-len(keys) // len(workers))
    load = dict.fromkeys(workers, 0)
    owners = {}
    for key in sorted(keys):
        ranked = sorted(workers, key=lambda w: hashlib.sha256(f"{key}\0{w}".encode()).digest(),
                        reverse=True)
        owner = next(w for w in ranked if load[w] < room)
        load[owner] += 1
        owners[key] = owner
    return owners
