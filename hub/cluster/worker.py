"""One process of a clustered hub: the roles it runs, on one NATS connection.

``hub run -c CONFIG --role ingest,imagery,fusion,publish`` with a
``[cluster]`` section: any number of such processes on any machines make one
hub. Fusion publishes the partners' pictures through an MQTT connection to a
node (``[broker]``, MQTT 3.1.1: NATS speaks no 5), so they are retained there
as on Mosquitto, and on NATS for the publish processes, which serve the web
console and TAK (hub.cluster.publish).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import Iterable

from hub.cluster.fusion import FusionWorker
from hub.cluster.ingest import IngestWorker
from hub.cluster.publish import PublishWorker, check_publishable
from hub.cluster.streams import connect, declare
from hub.config import HubConfig
from hub.errors import ConfigError
from hub.lifecycle import dump_tasks_on
from hub.mqtt.bus import Bus

ROLES = ("ingest", "imagery", "fusion", "publish")
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_-]")


def parse_roles(text: str) -> frozenset[str]:
    """The roles named in ``text`` (comma-separated); ValueError naming any unknown one."""
    roles = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(roles - set(ROLES))
    if unknown or not roles:
        raise ValueError(f"unknown role {', '.join(unknown) or '(none)'}: choose from "
                         f"{', '.join(ROLES)}")
    return roles


def default_roles(config: HubConfig) -> frozenset[str]:
    """Every role this config can run: publish only when it has ``[web]`` or ``[tak]``."""
    serves = config.web is not None or config.tak is not None
    return frozenset(r for r in ROLES if r != "publish" or serves)


def default_worker_id() -> str:
    """This host's name and this process's id: unique while the process lives."""
    return _NOT_IN_ID.sub("-", f"{socket.gethostname()}-{os.getpid()}")[-48:]


def check_worker_id(worker_id: str) -> str:
    """``worker_id`` if it can name a lease and an MQTT client; ValueError otherwise."""
    if not worker_id or len(worker_id) > 48 or _NOT_IN_ID.search(worker_id):
        raise ValueError(f"worker id {worker_id!r}: use 1-48 letters, digits, '-' or '_'")
    return worker_id


async def run_worker(config: HubConfig, roles: Iterable[str], worker_id: str,
                     stop: asyncio.Event, password: str | None = None) -> None:
    """Run ``roles`` of the clustered hub ``config`` until ``stop``."""
    roles = frozenset(roles)
    dump_tasks_on(signal.SIGUSR1)
    if config.cluster is None:
        raise ConfigError("$.cluster: roles need a [cluster] section")
    if roles & {"ingest", "fusion"} and config.broker.protocol != "3.1.1":
        raise ConfigError('$.broker.protocol: NATS speaks MQTT 3.1.1 only; set "3.1.1" '
                          "(ingest and fusion reach the field units and partners through it)")
    if "publish" in roles:
        check_publishable(config)
    nc = await connect(config.cluster, f"{config.cluster.prefix}-{worker_id}", password)
    try:
        link = await declare(nc, config.cluster)
        jobs = []
        if roles & {"ingest", "imagery"}:
            ingest = IngestWorker(config, link, worker_id, ingest="ingest" in roles,
                                  imagery="imagery" in roles, password=password)
            jobs.append(ingest.run(stop))
        if "publish" in roles:
            jobs.append(PublishWorker(config, link, worker_id, password=password).run(stop))
        if "fusion" not in roles:
            await asyncio.gather(*jobs)
            return
        client_id = f"{config.broker.client_id}-{worker_id}"[:64]
        async with Bus(config.broker, subscriptions=(), handler=None, will=None,
                       client_id=client_id, password=password) as bus:
            def send(topic: str, payload: bytes, qos: int, retain: bool) -> bool:
                return bus.publish(topic, payload, qos=qos, retain=retain)

            fusion = FusionWorker(config, link, worker_id, send)
            await asyncio.gather(fusion.run(stop), *jobs)
    finally:
        await nc.close()
