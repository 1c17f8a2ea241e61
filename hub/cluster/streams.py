"""What a clustered hub keeps on NATS, declared by every worker that starts.

The inputs stream (validated items and fusion steps, in one order), the
pictures stream (each audience's last full picture), the lease bucket and the
checkpoint store. Declaring is idempotent (the same config
twice is no change), so the cluster needs no set-up step of its own and any
worker may be the first up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.cluster.connect import connect_nats
from hub.cluster.names import Names
from hub.config import Cluster
from hub.errors import BrokerUnavailable
from hub.mqtt.tls import tls_context

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import StreamConfig
    from nats.js.kv import KeyValue
    from nats.js.object_store import ObjectStore

log = logging.getLogger(__name__)

INPUTS_MAX_AGE_S = 3_600.0
"""How far back the inputs stream reaches: a group with no checkpoint replays at most this."""
DECLARE_WAIT_S = 30.0
RETRY_S = 0.5
PICTURES_MAX_AGE_S = 300.0
"""A full picture older than this is not served to a publish process that starts later."""
TLS_WHERE = "$.cluster.tls"
DUPLICATE_WINDOW_S = 120.0
"""An item stored twice within this (its ingest worker died before acknowledging) is kept once."""


@dataclass(frozen=True)
class Link:
    """A worker's handles on the cluster: the connection, JetStream, leases and checkpoints."""

    nc: Client
    js: JetStreamContext
    kv: KeyValue
    store: ObjectStore
    leases_bucket: str
    """The name of ``kv``'s bucket (its stream is ``KV_<name>``, its subjects ``$KV.<name>.>``)."""


async def connect(cluster: Cluster, name: str, password: str | None = None) -> Client:
    """A connection to any live node of ``cluster.servers``, as its user, over its TLS.

    The password is ``cluster.password_env``'s, else ``password``: the hub identity's,
    which ``hub run --credentials`` read (the workers log in to NATS and to its MQTT
    listener as that one user, ``hub.cluster.auth``). ``cluster.tls`` is checked as
    ``broker.tls`` is (``hub.mqtt.tls``); ``{id}`` in its paths becomes ``name``.
    """
    own = cluster.password()
    return await connect_nats(cluster.servers, name=name, user=cluster.username,
                              password=own if own is not None else password,
                              tls=_tls_context(cluster, name))


def _tls_context(cluster: Cluster, name: str) -> ssl.SSLContext | None:
    """The broker's TLS checks for NATS: a missing or bad file is a ConfigError naming its key."""
    if cluster.tls is None:
        return None
    return tls_context(cluster.tls, name, where=TLS_WHERE)


async def declare(nc: Client, cluster: Cluster) -> Link:
    """Create (or find) what the hub keeps on NATS; BrokerUnavailable if it never answers.

    Workers starting together on a new cluster declare the same things at once,
    and the cluster may still be electing: a request that times out is asked again.
    """
    from nats.errors import Error as NatsError

    deadline = time.monotonic() + DECLARE_WAIT_S
    while True:
        try:
            return await _declare(nc, cluster)
        except NatsError as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"NATS at {', '.join(cluster.servers)} did not create the hub's streams "
                    f"within {DECLARE_WAIT_S:g} s: {type(exc).__name__} {exc}") from exc
            log.warning("declaring the hub's streams: %s; trying again", type(exc).__name__)
            await asyncio.sleep(RETRY_S)


async def _declare(nc: Client, cluster: Cluster) -> Link:
    from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType, StreamConfig

    names = Names.of(cluster)
    js = nc.jetstream()
    replicas = cluster.replicas
    await _stream(js, StreamConfig(
        name=names.inputs_stream, subjects=[names.item_subject, names.tick_subject],
        max_age=INPUTS_MAX_AGE_S, storage=StorageType.FILE, num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S))
    await _stream(js, StreamConfig(
        name=names.pictures_stream, subjects=[names.full_pictures], max_msgs_per_subject=1,
        max_age=PICTURES_MAX_AGE_S, storage=StorageType.MEMORY, num_replicas=replicas))
    kv = await js.create_key_value(KeyValueConfig(
        bucket=names.leases, ttl=cluster.lease_ttl_s, history=1, replicas=replicas,
        storage=StorageType.MEMORY))
    store = await js.create_object_store(names.checkpoints, config=ObjectStoreConfig(
        bucket=names.checkpoints, replicas=replicas, storage=StorageType.FILE))
    return Link(nc, js, kv, store, names.leases)


async def _stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Add the stream, or adopt this config when it exists with another."""
    from nats.js.errors import BadRequestError

    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        log.info("stream %s exists (%s); updating it", config.name, exc.description)
        await js.update_stream(config)
