"""The generated NATS authorization on a real 3-node cluster: who may connect, publish, read.

The cluster's counterpart of test_broker_acl.py: every node includes the
``nats-auth.conf`` of ``hub broker-config --nats`` for a test registry. Checks
that "nothing arrives" are ordered, as there: a forbidden message would reach
the subscriber before a later marker from the same publisher, or before the
PUBACK of a later publish on the same connection.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nats
import pytest
from cluster_hub import Workers, wait_for
from mqtt_peer import WAIT_S, Client, mqtt_of
from secured import registry
from tls_material import nats_login

from hub import topics
from hub.broker.files import BrokerFiles, as_hub_identity, write_auth_files
from hub.cli.cluster_demo import PREFIX, clustered
from hub.cli.demo import Simulators
from hub.cluster.auth import write_nats_auth
from hub.cluster.names import Names
from hub.cluster.nats_server import NatsCluster, start_nats_cluster
from hub.config import DEFAULT_SCENARIO, HubConfig, config_toml
from hub.messages import Picture, decode
from hub.mqtt.bus import Bus

pytestmark = pytest.mark.timeout(180)
START_S = 45.0
"""An ingest and a fusion worker up on a loaded 2-core machine (test_cluster.py's bound)."""
MAX_PICTURE_BYTES = 16 << 20
AUTH_REFUSED = "-ERR 'Authorization Violation'"


@dataclass
class SecuredCluster:
    """A NATS cluster enforcing the registry's generated users and permissions."""

    cluster: NatsCluster
    config: HubConfig
    """The registry as a hub on the cluster, logging in as its identity."""
    files: BrokerFiles
    authorization: Path

    def connect(self, name: str, node: int = 0, password: str | None = None) -> Client:
        """An MQTT 3.1.1 client logged in as ``name`` on ``node``; it must be let in."""
        client = Client(mqtt_of(self.cluster, node), "3.1.1", name,
                        password if password is not None else self.files.password(name))
        assert not client.reason.is_failure, f"{name}: {client.reason}"
        return client

    def logs(self) -> str:
        """What every node has logged or printed."""
        return "".join((node.directory / name).read_text(errors="replace")
                       for node in self.cluster.nodes for name in ("nats.log", "nats.out"))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    directory = tmp_path_factory.mktemp("nats-auth")
    config = registry()
    files = write_auth_files(config, directory / "broker")
    authorization = write_nats_auth(files, Names(PREFIX))
    with start_nats_cluster(3, workdir=directory / "nats",
                            authorization=authorization) as cluster:
        yield SecuredCluster(cluster, as_hub_identity(clustered(config, cluster)), files,
                             authorization)


@pytest.fixture
def connect(secured: SecuredCluster) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(name: str, node: int = 0) -> Client:
        clients.append(client := secured.connect(name, node))
        return client

    yield make
    for client in clients:
        client.close()


def test_a_sensor_cannot_publish_under_another_sensor_s_topic(
        secured: SecuredCluster, connect: Callable[..., Client]) -> None:
    sensors = [s.id for s in secured.config.sensors]
    hub = connect("hub")
    hub.subscribe(topics.SENSORS_TREE)
    for sensor in sensors:
        client = connect(sensor)
        [code] = client.subscribe(topics.SENSORS_TREE)
        assert code.is_failure, f"{sensor} may read sensors/#"
        for victim in (v for v in sensors if v != sensor):
            for kind in topics.INBOUND_KINDS:
                # NATS acknowledges a denied publish and drops it: the PUBACK says nothing.
                client.publish(topics.sensor(victim, kind), f"forged by {sensor}".encode())
        own = (topics.sensor(sensor, "detections"), f"own from {sensor}".encode())
        client.publish(*own)
        assert hub.take_until(own) == [own]
    assert "Publish Violation" in secured.logs()


def test_partners_receive_only_their_own_picture(
        secured: SecuredCluster, connect: Callable[..., Client]) -> None:
    partners = [p.id for p in secured.config.partners]
    hub = connect("hub")
    listeners = {}
    for partner in partners:
        listeners[partner] = client = connect(partner, 1)  # another node than the hub's
        others = [topics.partner_all(other) for other in partners if other != partner]
        # $MQTT/sub/# would be every session's QoS 1 deliveries, were it allowed.
        codes = client.subscribe(topics.partner_all(partner), topics.COP_TREE,
                                 topics.SENSORS_TREE, topics.TRUTH, "#", "$MQTT/sub/#", *others)
        assert [code.is_failure for code in codes] == [False] + [True] * (len(codes) - 1)
        # Were it let through, a partner would read back its own forgery below.
        client.publish(topics.partner_picture(partner), b"forged by a partner")
    for other in partners:
        hub.publish(topics.partner_picture(other), f"canary for {other}".encode())
    markers = {p: (topics.partner_picture(p), f"marker for {p}".encode()) for p in partners}
    for partner in partners:
        hub.publish(*markers[partner])
    for partner, client in listeners.items():
        assert client.take_until(markers[partner]) == [
            (topics.partner_picture(partner), f"canary for {partner}".encode()),
            markers[partner]], partner


async def test_the_monitor_reads_hub_status_but_not_the_cluster_s_items_nor_pictures(
        secured: SecuredCluster, connect: Callable[..., Client]) -> None:
    names = Names(PREFIX)
    monitor = connect(secured.config.broker_server.monitor_identity)
    [code] = monitor.subscribe(topics.HUB_TREE)
    assert not code.is_failure
    nc = await nats.connect(secured.cluster.urls, user="hub",
                            password=secured.files.password("hub"))
    try:
        # The prefix `hub` puts the workers' subjects under MQTT's hub/#: one connection,
        # so the item would arrive before the marker.
        await nc.publish(names.item_subject, b"a validated item")
        await nc.publish(names.status_subject, b"a worker's report")
        await nc.publish(names.picture_subject("ken", True), b"ken's picture")
        await nc.publish("hub.status", b"marker")
        await nc.flush()
    finally:
        await nc.close()
    assert monitor.take_until((topics.HUB_STATUS, b"marker")) == [(topics.HUB_STATUS, b"marker")]


@pytest.mark.parametrize("credentials", ["anonymous", "wrong password", "unknown user"])
def test_mqtt_logins_without_valid_credentials_are_refused(
        secured: SecuredCluster, credentials: str) -> None:
    username, password = {"anonymous": (None, None),
                          "wrong password": ("hub", secured.files.password("hub") + "x"),
                          "unknown user": ("mallory", "guess")}[credentials]
    client = Client(mqtt_of(secured.cluster, 0), "3.1.1", username, password)
    try:
        assert client.reason.is_failure, client.reason
    finally:
        client.close()


@pytest.mark.parametrize(("login", "answer"), [
    ("the hub", "PONG"), ("a partner", AUTH_REFUSED), ("the hub, wrong password", AUTH_REFUSED),
    ("anonymous", AUTH_REFUSED)])
def test_on_nats_itself_only_the_hub_logs_in(secured: SecuredCluster, login: str,
                                             answer: str) -> None:
    # A partner on NATS itself could subscribe to $MQTT.sub.>: only MQTT lets it in.
    user, password = {"the hub": ("hub", secured.files.password("hub")),
                      "a partner": ("ken", secured.files.password("ken")),
                      "the hub, wrong password": ("hub", "guess"),
                      "anonymous": (None, None)}[login]
    node = secured.cluster.node(0)
    assert nats_login(node.host, node.ports.client, user, password) == answer


async def test_workers_logged_in_as_the_hub_ingest_and_fuse(
        secured: SecuredCluster, tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(config_toml(secured.config))
    workers = Workers(path, tmp_path, secured.files.credentials)
    partner = secured.connect("ken", 1)
    partner.subscribe(topics.partner_picture("ken"))
    workers.start("w1", "ingest,fusion")
    # Every simulated unit logs in as itself, as in `hub demo --cluster`; what they send
    # before the worker's ingest sessions are up has no taker, what follows does.
    sims = Simulators(DEFAULT_SCENARIO, "127.0.0.1", secured.cluster.mqtt_ports[0], "3.1.1",
                      4.0, tmp_path / "simulators.log", secured.files.credentials)
    try:
        await wait_for(lambda: any(sources(partner)), timeout=START_S,
                       what="a picture for ken with a fused track")
    finally:
        sims.stop()
        partner.close()
        workers.close()
    # The hub's permissions cover everything the worker does: nothing of it was denied.
    assert 'Violation - User "hub"' not in secured.logs()


def sources(partner: Client) -> list[str]:
    """The sources of the tracks in the pictures ``partner`` has received so far."""
    return [source for _, payload in partner.received()
            for track in decode(payload, Picture, MAX_PICTURE_BYTES).tracks
            for source in track.sources]


def test_no_secret_in_a_node_s_config_or_log(secured: SecuredCluster) -> None:
    assert stat.S_IMODE(secured.authorization.stat().st_mode) == 0o600
    hashes = re.findall(r'password: "([^"]+)"', secured.authorization.read_text())
    assert len(hashes) == len(secured.files.identities)
    written = secured.logs() + "".join(
        (node.directory / "nats.conf").read_text() for node in secured.cluster.nodes)
    assert "Authorization Violation" in written or "authentication error" in written
    for secret in [*secured.files.passwords.values(), *hashes]:
        assert secret not in written



async def test_a_bus_asks_again_for_a_refused_subscription_and_the_rest_flow(
        secured: SecuredCluster, connect: Callable[..., Client],
        caplog: pytest.LogCaptureFixture) -> None:
    """A node refuses a subscription while its streams elect (a node died): a bus that did
    not ask again would sit subscribed to nothing. Here the refusal is a permission."""
    node = secured.cluster.node(0)
    settings = msgspec.structs.replace(secured.config.broker, host=node.host,
                                       port=node.mqtt_port, username="ken", failover=[])
    got: list[tuple[str, bytes]] = []
    bus = Bus(settings, subscriptions=[(topics.partner_picture("ken"), 1),
                                       (topics.SENSORS_TREE, 1)],
              handler=lambda t, p: got.append((t, p)), will=None, client_id="ken",
              password=secured.files.password("ken"))
    async with bus:
        await bus.wait_connected(WAIT_S)
        await wait_for(lambda: bus.stats.resubscribed >= 1, what="the refusal asked again")
        picture = (topics.partner_picture("ken"), b"picture")
        connect("hub").publish(*picture)
        await wait_for(lambda: picture in got, what="ken's picture on its granted subscription")
    assert "subscriptions refused: ['sensors/#']; asking again" in caplog.text
