"""A clustered hub for tests: its workers as processes, their reports, its stream and checkpoints.

The workers are real ``hub run --role`` processes on a real NATS cluster
(the ``fresh_nats_cluster`` fixture); the test reads what they report on
the status subject and, at the end, the inputs stream and each group's
checkpoint, to compare with the single process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from hub.cli.cluster_demo import clustered
from hub.cluster.names import Names
from hub.cluster.nats_server import NatsCluster
from hub.config import HubConfig, config_toml
from hub.mqtt.tls import tls_context
from hub.release.groups import release_groups

WAIT_S = 20.0
T = TypeVar("T")


def cluster_config(directory: Path, config: HubConfig, cluster: NatsCluster) -> Path:
    """``config`` as a hub on ``cluster`` (as the demo runs it), quick leases and checkpoints."""
    live = clustered(config, cluster)
    assert live.cluster is not None
    live = msgspec.structs.replace(live, cluster=msgspec.structs.replace(
        live.cluster, lease_ttl_s=2.0, checkpoint_every_s=1.0))
    path = directory / "cluster.toml"
    path.write_text(config_toml(live))
    return path


@dataclass
class Workers:
    """``hub run --role`` processes of one config; each one's log in ``directory``."""

    config: Path
    directory: Path
    credentials: Path | None = None
    """``credentials.toml`` of ``hub broker-config``: the workers log in as the hub."""
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, worker_id: str, roles: str, config: Path | None = None) -> None:
        """Start ``worker_id`` with ``roles``, on its own ``config`` if given."""
        login = [] if self.credentials is None else ["--credentials", str(self.credentials)]
        with (self.directory / f"{worker_id}.log").open("wb") as log:
            self.running[worker_id] = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "run", "-c", str(config or self.config),
                 "--role", roles, "--worker-id", worker_id, "-q", *login],
                stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def kill(self, worker_id: str) -> float:
        """SIGKILL ``worker_id``; return when."""
        process = self.running.pop(worker_id)
        process.kill()
        at = time.time()
        process.wait(WAIT_S)
        return at

    def stop_all(self) -> None:
        """SIGTERM every worker (each hands its groups over) and wait for them."""
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        for worker_id, process in self.running.items():
            assert process.wait(WAIT_S) == 0, self.log(worker_id)
        self.running.clear()

    async def stacks(self) -> str:
        """Where each running worker's tasks wait (they log it on SIGUSR1): their logs' ends."""
        for process in self.running.values():
            process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(1.0)
        return "\n".join(f"--- {w}:\n{self.log(w, 12000)}" for w in self.running)

    def log(self, worker_id: str, chars: int = 3000) -> str:
        return (self.directory / f"{worker_id}.log").read_text(errors="replace")[-chars:]

    def close(self) -> None:
        for process in self.running.values():
            process.kill()
            process.wait(WAIT_S)


class Reports:
    """The latest report of each worker on the status subject, kept on a thread's loop."""

    def __init__(self, urls: list[str], config: HubConfig) -> None:
        assert config.cluster is not None
        self.config = config
        self.subject = Names.of(config.cluster).status_subject
        self.latest: dict[str, dict[str, Any]] = {}
        self.urls = urls

    async def collect(self, until: asyncio.Event) -> None:
        import nats

        nc = await nats.connect(self.urls)

        async def take(msg: Any) -> None:
            report = json.loads(msg.data)
            self.latest[report["worker"]] = report

        try:
            await nc.subscribe(self.subject, cb=take)
            await until.wait()
        finally:  # a test that failed cancels us: no connection left for another test's GC
            await nc.close()

    def counters(self, worker: str) -> dict[str, int]:
        """``worker``'s counters as it last reported them, only those that are not 0."""
        return {k: v for k, v in self.latest.get(worker, {}).get("counters", {}).items() if v}

    def owners(self) -> dict[str, str]:
        """Group → the worker that reported it last (a killed worker's reports are dropped)."""
        return {group: worker for worker, report in self.latest.items()
                for group in report.get("groups", {})}


async def wait_for(condition: Any, timeout: float = WAIT_S, what: str = "",
                   workers: Workers | None = None) -> float:
    """Poll ``condition()`` until true; return when (wall clock).

    Fails naming ``what``, with where ``workers``' tasks wait when given.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            stacks = "" if workers is None else await workers.stacks()
            raise AssertionError(f"timed out waiting for {what}\n{stacks}")
        await asyncio.sleep(0.05)
    return time.time()


async def stream_records(urls: list[str], config: HubConfig) -> list[tuple[int, bool, bytes]]:
    """Every record of the inputs stream: (sequence, is a tick, data)."""
    return await patiently(lambda: _read_stream(urls, config))


async def _read_stream(urls: list[str], config: HubConfig) -> list[tuple[int, bool, bytes]]:
    assert config.cluster is not None
    names = Names.of(config.cluster)
    nc = await connect_to(urls, config)
    try:
        js = nc.jetstream(timeout=WAIT_S)  # a node may have died: the stream elects a leader
        last = (await js.stream_info(names.inputs_stream)).state.last_seq
        out = []
        subscription = await js.subscribe(f"{names.prefix}.in.>", stream=names.inputs_stream,
                                          ordered_consumer=True)
        while len(out) < last:
            msg = await subscription.next_msg(timeout=WAIT_S)
            out.append((msg.metadata.sequence.stream, msg.subject == names.tick_subject,
                        msg.data))
    finally:
        await nc.close()
    return out


async def checkpoints(urls: list[str], config: HubConfig) -> dict[str, bytes]:
    """Each release group's checkpoint in the object store (the groups that have one).

    Asked for by name: the store's listing (a consumer) came back partial once
    right after a node's restart.
    """
    from nats.js.errors import NotFoundError, ObjectNotFoundError

    assert config.cluster is not None
    nc = await connect_to(urls, config)
    store = await nc.jetstream(timeout=WAIT_S).object_store(Names.of(config.cluster).checkpoints)
    found = {}
    for group in release_groups(config):
        try:
            found[group.key] = (await patiently(lambda k=group.key: store.get(k))).data
        except (NotFoundError, ObjectNotFoundError):
            continue
    await nc.close()
    return {name: data for name, data in found.items() if data is not None}


async def connect_to(urls: list[str], config: HubConfig) -> Any:
    """A nats-py connection to ``urls``, with ``config``'s ``[cluster].tls`` if it has one."""
    import nats

    assert config.cluster is not None
    tls = config.cluster.tls
    return await nats.connect(urls, tls=None if tls is None else tls_context(tls))


async def patiently(call: Callable[[], Awaitable[T]], wait_s: float = 60.0) -> T:
    """``call()``, asked again while it times out, for up to ``wait_s``.

    After a node's death, the first object-store read can stall past its
    timeout while the store's stream elects a leader; the next one answers.
    """
    import nats.errors

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await call()
        except nats.errors.TimeoutError:
            if time.monotonic() > deadline:
                raise
