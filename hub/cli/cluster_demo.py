"""``hub demo --cluster``: the hub as several processes on a local 3-node NATS cluster.

A private cluster (``hub.cluster.nats_server``), one ingest worker (ingest
and imagery), two fusion workers and a publish worker serving the console
and TAK as ``hub demo`` does (``hub run --role``, each a process of its
own), and the simulators against node 0's MQTT listener. Every second
it prints which worker owns which release group, so a user who kills a
worker (``kill -9 PID``) or a node sees its groups move. Every child ends
with the demo, however it dies.

Secure as ``hub demo`` is: the demo writes the ``hub broker-config --nats``
files into ``WORKDIR/broker`` (``credentials.toml``, ``nats-auth.conf``), every
node includes them, and the workers (``--credentials``), the simulated units
and the demo's own watcher log in as themselves, each confined to its subjects;
each partner's console password is printed once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from hub.broker.acl import hub_identity
from hub.broker.files import BrokerFiles, as_hub_identity, describe_generated, write_auth_files
from hub.children import exit_with_parent
from hub.cli.demo import Simulators, stop_process, with_console, with_tak
from hub.cluster.auth import write_nats_auth
from hub.cluster.names import Names
from hub.cluster.nats_server import NatsCluster, start_nats_cluster
from hub.config import Cluster, HubConfig, config_toml
from hub.lifecycle import stop_event

WORKERS = (("in1", "ingest,imagery"), ("fa", "fusion"), ("fb", "fusion"), ("pub1", "publish"))
PREFIX = "hub"
REPORT_EVERY_S = 1.0
STALE_S = 3.0
"""A worker silent for longer is shown as gone."""


def clustered(config: HubConfig, cluster: NatsCluster) -> HubConfig:
    """``config`` as a hub on ``cluster``: pictures and ingest through node 0, the rest failover."""
    host = "127.0.0.1"
    broker = msgspec.structs.replace(
        config.broker, host=host, port=cluster.mqtt_ports[0], protocol="3.1.1", username=None,
        password_env=None, password_file=None, tls=None,
        failover=[f"{host}:{port}" for port in cluster.mqtt_ports[1:]])
    settings = Cluster(servers=cluster.urls, replicas=len(cluster.urls), prefix=PREFIX)
    return msgspec.structs.replace(config, broker=broker, cluster=settings)


def start_worker(path: Path, worker_id: str, roles: str, log: Path,
                 credentials: Path | None = None) -> subprocess.Popen[bytes]:
    """``hub run --role [--credentials]``: a child in its own session, ending with this one."""
    login = [] if credentials is None else ["--credentials", str(credentials)]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "-c", str(path), "--role", roles,
             "--worker-id", worker_id, *login, "-q"],
            stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=exit_with_parent())


class Ownership:
    """The workers' reports on the status subject: who is up, who owns which group."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}

    async def take(self, msg: Any) -> None:
        report = json.loads(msg.data)
        self.latest[report["worker"]] = report

    def line(self, now: float) -> str:
        live = {w: r for w, r in self.latest.items() if now - r["t"] < STALE_S}
        owners = sorted((group, worker) for worker, r in live.items()
                        for group in r.get("groups", {}))
        slots = sum(len(r.get("slots", [])) for r in live.values())
        applied = max((g["applied"] for r in live.values() for g in r.get("groups", {}).values()),
                      default=0)
        groups = "  ".join(f"{g}→{w}" for g, w in owners) or "(none owned yet)"
        return (f"{time.strftime('%H:%M:%S')}  workers up: {', '.join(sorted(live)) or '-'}  "
                f"ingest slots served: {slots}  groups: {groups}  stream at {applied}")


async def watch(cluster: NatsCluster, config: HubConfig, files: BrokerFiles,
                duration: float | None, each_second: Callable[[], None]) -> None:
    """Print the ownership line every second until Ctrl-C or ``duration``."""
    from hub.cluster.connect import connect_nats

    assert config.cluster is not None
    stop = stop_event(duration)
    # The workers' reports are the hub's own subjects: the watcher logs in as the hub.
    name = hub_identity(config)
    nc = await connect_nats(cluster.urls, name="hub-demo-watch", user=name,
                            password=files.password(name))
    ownership = Ownership()
    await nc.subscribe(Names.of(config.cluster).status_subject, cb=ownership.take)
    try:
        while not stop.is_set():
            await asyncio.sleep(REPORT_EVERY_S)
            each_second()
            print(ownership.line(time.time()), flush=True)
    finally:
        await nc.close()


def print_outputs(config: HubConfig) -> None:
    """Where the publish worker serves the console and TAK."""
    assert config.web is not None
    print(f"console: http://{config.web.host}:{config.web.port}/ (log in as a partner, "
          f"or as {config.broker_server.operator_identity} for the mission picture; "
          "served by pub1)", flush=True)
    if config.tak is not None and config.tak.tcp_port is not None:
        print(f"TAK: tcp://{config.tak.host}:{config.tak.tcp_port} streams "
              f"{config.tak.tcp_partner}'s picture as CoT (plain TCP, loopback)", flush=True)


def run_cluster_demo(config: HubConfig, scenario: Path, duration: float | None, speed: float,
                     workdir: Path) -> int:
    """Run the clustered demo until ``duration`` passes or Ctrl-C; return an exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = write_auth_files(config, workdir / "broker")
    config = with_tak(with_console(config, files, workdir / "web"))
    authorization = write_nats_auth(files, Names(PREFIX))
    with start_nats_cluster(3, workdir=workdir / "nats", dies_with_parent=True,
                            authorization=authorization) as cluster:
        config = as_hub_identity(clustered(config, cluster))
        path = workdir / "cluster.toml"
        path.write_text(config_toml(config))
        print(f"NATS cluster: {', '.join(cluster.urls)}; MQTT on ports "
              f"{', '.join(map(str, cluster.mqtt_ports))}; config {path}", flush=True)
        print(f"access: a NATS user and permissions per identity, anonymous off "
              f"({authorization}); passwords in {files.credentials}", flush=True)
        workers = {worker_id: start_worker(path, worker_id, roles, workdir / f"{worker_id}.log",
                                           files.credentials)
                   for worker_id, roles in WORKERS}
        for worker_id, roles in WORKERS:
            print(f"worker {worker_id} ({roles}): pid {workers[worker_id].pid}, log "
                  f"{workdir / (worker_id + '.log')}", flush=True)
        print_outputs(config)
        print(describe_generated(files, roles=("partner", "operator")), flush=True)
        nodes = ", ".join(f"n{i} {cluster.node(i).pid}" for i in range(len(cluster.urls)))
        print(f"try: kill -9 {workers['fa'].pid} (a fusion worker: its groups move to fb), or "
              f"kill -9 a NATS node's pid ({nodes}): the rest elect, and the simulators and "
              "workers on it go on at another", flush=True)
        sims = Simulators(scenario, "127.0.0.1", cluster.mqtt_ports[0], "3.1.1", speed,
                          workdir / "simulators.log", files.credentials,
                          failover=config.broker.failover)
        try:
            asyncio.run(watch(cluster, config, files, duration, sims.keep_running))
        finally:
            sims.stop()
            for process in workers.values():
                stop_process(process, timeout=10.0)
    print(f"stopped: workers, simulators and the NATS cluster are down; logs in {workdir}")
    return 0
