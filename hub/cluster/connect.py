"""Connecting a worker to the NATS cluster, and making sure its streams and buckets exist.

Every worker declares what it needs at start (idempotent: the same config
twice is no change), so the cluster needs no set-up step of its own and any
worker may be the first up.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.cluster.names import Names, raw_subjects
from hub.config import Cluster
from hub.errors import BrokerUnavailable

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import StreamConfig
    from nats.js.kv import KeyValue
    from nats.js.object_store import ObjectStore

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
INPUTS_MAX_AGE_S = 3_600.0
"""How far back the inputs stream reaches: a group with no checkpoint replays at most this."""
RAW_MAX_AGE_S = 600.0
"""How long field units' messages wait for an ingest worker (all of them down)."""
DUPLICATE_WINDOW_S = 120.0
"""An item an ingest worker publishes twice (it died before its ack) within this is kept once."""


async def connect(cluster: Cluster, name: str) -> Client:
    """A NATS connection to any of ``cluster.servers``; BrokerUnavailable naming them if none."""
    import nats

    tls = _tls_context(cluster)
    try:
        return await nats.connect(
            servers=list(cluster.servers), name=name, user=cluster.username,
            password=cluster.password(), tls=tls, connect_timeout=CONNECT_TIMEOUT_S,
            allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            error_cb=_log_error)
    except Exception as exc:
        servers = ", ".join(cluster.servers)
        raise BrokerUnavailable(f"cannot reach NATS at {servers}: {exc}") from exc


async def _log_error(exc: Exception) -> None:
    log.warning("NATS: %s", exc)


def _tls_context(cluster: Cluster) -> ssl.SSLContext | None:
    if cluster.tls is None:
        return None
    context = ssl.create_default_context(cafile=cluster.tls.cafile)
    context.load_cert_chain(cluster.tls.certfile, cluster.tls.keyfile)
    return context


@dataclass(frozen=True)
class Link:
    """A worker's handles on the cluster: the connection, JetStream, leases and checkpoints."""

    nc: Client
    js: JetStreamContext
    kv: KeyValue
    store: ObjectStore


async def declare(nc: Client, cluster: Cluster) -> Link:
    """Create (or find) the streams, the lease bucket and the checkpoint store."""
    from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType, StreamConfig

    names = Names.of(cluster)
    js = nc.jetstream()
    replicas = cluster.replicas
    await _stream(js, StreamConfig(
        name=names.raw_stream, subjects=raw_subjects(), max_age=RAW_MAX_AGE_S,
        storage=StorageType.FILE, num_replicas=replicas, duplicate_window=DUPLICATE_WINDOW_S))
    await _stream(js, StreamConfig(
        name=names.inputs_stream, subjects=[names.item_subject, names.tick_subject],
        max_age=INPUTS_MAX_AGE_S, storage=StorageType.FILE, num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S))
    kv = await js.create_key_value(KeyValueConfig(
        bucket=names.leases, ttl=cluster.lease_ttl_s, history=1, replicas=replicas,
        storage=StorageType.MEMORY))
    store = await js.create_object_store(names.checkpoints, config=ObjectStoreConfig(
        bucket=names.checkpoints, replicas=replicas, storage=StorageType.FILE))
    return Link(nc, js, kv, store)


async def _stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Add the stream, or adopt this config when it exists with another."""
    from nats.js.errors import BadRequestError

    try:
        await js.add_stream(config)
    except BadRequestError as exc:  # exists with another config: adopt ours
        log.info("stream %s exists (%s); updating it", config.name, exc.description)
        await js.update_stream(config)
