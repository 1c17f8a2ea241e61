"""Leases in a JetStream key-value bucket whose entries expire unless renewed.

A lease is a key created by its holder (``create`` fails while another holds
it) and renewed by updating it at the revision the holder last wrote, so a
holder that was paused past the bucket's TTL finds its lease gone when it
next renews, and stops. Live workers announce themselves the same way, under
``worker.<id>``. A dead holder's keys expire after the TTL; then another may
create them.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

WORKER = "worker."
GROUP = "group."


class Leases:
    """The leases one worker holds in ``kv``, and its own heartbeat."""

    def __init__(self, kv: KeyValue, owner: str) -> None:
        self.kv = kv
        self.owner = owner
        self.held: dict[str, int] = {}
        """Key → the revision this worker last wrote."""

    async def take(self, key: str) -> bool:
        """Create ``key`` as this worker's; False when someone holds it."""
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            self.held[key] = await self.kv.create(key, self.owner.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def renew(self) -> list[str]:
        """Renew every lease held (the heartbeat too); return the keys that were lost."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        lost = []
        for key, revision in list(self.held.items()):
            try:
                self.held[key] = await self.kv.update(key, self.owner.encode(), last=revision)
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                del self.held[key]
                lost.append(key)
        return lost

    async def give_up(self, key: str) -> None:
        """Release ``key`` now (a hand-over), so the next holder need not wait for the TTL."""
        from nats.js.errors import KeyWrongLastSequenceError

        revision = self.held.pop(key, None)
        if revision is not None:
            try:
                await self.kv.delete(key, last=revision)
            except KeyWrongLastSequenceError:
                log.warning("lease %s was already taken over", key)

    async def live_workers(self) -> list[str]:
        """Ids of the workers whose heartbeat has not expired."""
        from nats.js.errors import NoKeysError

        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        return sorted(k.removeprefix(WORKER) for k in keys if k.startswith(WORKER))


def assignment(keys: list[str], workers: list[str]) -> dict[str, str]:
    """Which worker should hold each of ``keys``: balanced, and stable as workers come and go.

    Each key ranks the workers by a hash of (key, worker) (rendezvous hashing)
    and goes to the first in its ranking with room, room being an even share
    (rounded up). Without the room, four groups on two workers could all rank
    the same worker first; with it, a worker that joins takes about its share
    and one that leaves hands over only its own.
    """
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
