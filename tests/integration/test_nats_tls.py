"""The clustered hub over TLS with client certificates, on a real 3-node NATS cluster.

Every node requires TLS and a client certificate of the test CA on its client
and MQTT listeners and on its routes (``start_nats_cluster(tls=...)``). An
ingest worker (``hub run --role ingest``) logs in with ``[cluster].tls`` and
``[broker].tls``; a field unit's QoS 1 detection, over MQTT TLS to another
node, must become an item of the inputs stream. Clients without a certificate
of the CA get in on neither port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from cluster_hub import Workers, stream_records
from nats.js.errors import NotFoundError
from sink_contract import contract_config, detections
from tls_material import (
    MQTT_ACCEPTED,
    client_context,
    nats_login,
    probe,
    tls_settings,
    write_certificates,
)

from hub import topics
from hub.cli.cluster_demo import clustered
from hub.cluster import records
from hub.cluster.nats_server import NatsCluster, start_nats_cluster
from hub.config import ClientTls, HubConfig, config_toml
from hub.fusion.measurements import Scan
from hub.ingest.router import InboundItem
from hub.mqtt.bus import Bus

pytestmark = pytest.mark.timeout(120)
START_S = 45.0
"""An ingest worker up on a loaded 2-core machine (test_nats_auth.py's bound)."""
SENSOR = "s1"
PUBLISH_EVERY_S = 0.5


@dataclass
class TlsCluster:
    """A NATS cluster requiring client certificates, and the hub's config for it."""

    cluster: NatsCluster
    certs: Path
    config: HubConfig
    """The sink contract's registry as a hub on the cluster, over TLS on NATS and MQTT."""


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    certs = tmp_path_factory.mktemp("certs")
    server = write_certificates(certs, "hub", SENSOR)
    with start_nats_cluster(3, workdir=tmp_path_factory.mktemp("nats-tls"),
                            tls=server) as cluster:
        yield TlsCluster(cluster, certs, over_tls(clustered(contract_config(), cluster), certs))


def over_tls(config: HubConfig, certs: Path) -> HubConfig:
    """``config`` showing the hub's certificate to NATS and to its MQTT listeners."""
    assert config.cluster is not None
    tls = ClientTls(cafile=str(certs / "ca.pem"), certfile=str(certs / "hub.pem"),
                    keyfile=str(certs / "hub.key"))
    return msgspec.structs.replace(
        config, broker=msgspec.structs.replace(config.broker, tls=tls),
        cluster=msgspec.structs.replace(config.cluster, tls=tls))


async def test_a_field_unit_s_detection_over_tls_becomes_an_item_of_the_stream(
        tls_cluster: TlsCluster, tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(config_toml(tls_cluster.config))
    workers = Workers(path, tmp_path)
    workers.start("w1", "ingest")
    unit = Bus(tls_settings(tls_cluster.cluster.mqtt_ports[1], tls_cluster.certs, "3.1.1",
                            SENSOR), subscriptions=[], handler=None, will=None)
    try:
        async with unit:
            await unit.wait_connected(15.0)
            items = await stored_items(tls_cluster, unit, workers)
    finally:
        workers.close()
    sensors = tls_cluster.config.sensors
    assert {sensors[item.sensor].id for item in items if isinstance(item, Scan)} == {SENSOR}
    assert all(isinstance(item, Scan) for item in items), items


async def stored_items(tls: TlsCluster, unit: Bus, workers: Workers) -> list[InboundItem]:
    """Publish a detection every PUBLISH_EVERY_S (those before the worker's session is up
    have no taker) until the inputs stream holds an item; return its items."""
    t0 = time.time()  # the hub refuses what is timed in the future
    for seq in range(int(START_S / PUBLISH_EVERY_S)):
        unit.publish(topics.sensor(SENSOR, "detections"),
                     detections(SENSOR, time.time(), seq, t0), qos=1)
        await asyncio.sleep(PUBLISH_EVERY_S)
        try:
            stored = await stream_records(tls.cluster.urls, tls.config)
        except NotFoundError:  # the worker has not declared the stream yet
            continue
        items = [records.decode(False, data).item for _, tick, data in stored if not tick]
        if items:
            return [item for item in items if item is not None]
    raise AssertionError(f"no item in the inputs stream\n{workers.log('w1')}")


@pytest.mark.parametrize("client", ["own CA", "no certificate", "another CA", "plain TCP"])
@pytest.mark.parametrize("listener", ["nats", "mqtt"])
def test_only_certificates_of_the_ca_get_in(tls_cluster: TlsCluster, listener: str,
                                            client: str) -> None:
    certs = tls_cluster.certs
    context = {"own CA": client_context(certs, certs / "hub.pem"),
               "no certificate": client_context(certs, None),
               "another CA": client_context(certs, certs / "other" / "hub.pem"),
               "plain TCP": None}[client]
    node = tls_cluster.cluster.node(2)
    if listener == "mqtt":
        answer: object = probe(node.mqtt_port, context)
        accepted = answer == MQTT_ACCEPTED
    else:
        answer = nats_login(node.host, node.ports.client, tls=context)
        accepted = answer == "PONG"
    # "own CA" is the control: the probe can tell an accepted login.
    assert accepted == (client == "own CA"), answer
