"""hub.cluster.auth: the NATS users and permissions ``hub broker-config --nats`` writes.

What nats-server makes of them is tests/integration/test_nats_auth.py; here, that each
identity gets exactly its subjects and nothing of the cluster's own.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import bcrypt
import msgspec
import pytest

from hub.broker.acl import Identity, identities
from hub.broker.files import as_hub_identity, write_auth_files
from hub.cluster.auth import cluster_names, permissions, write_nats_auth
from hub.cluster.names import Names
from hub.cluster.subjects import mqtt_filter_to_subjects
from hub.config import DEFAULT_CONFIG, Cluster, HubConfig, load_config
from hub.errors import ConfigError

NAMES = Names("hub")


@pytest.fixture(scope="module")
def registry() -> HubConfig:
    config = load_config(DEFAULT_CONFIG)
    return msgspec.structs.replace(config, cluster=Cluster(servers=["nats://127.0.0.1:4222"]))


@pytest.mark.parametrize(("topic_filter", "subjects"), [
    ("sensors/x/#", ["sensors.x", "sensors.x.>"]),  # MQTT's # matches its parent level too
    ("#", [">"]),
    ("sim/truth", ["sim.truth"]),
    ("sensors/+/detections", ["sensors.*.detections"]),
    ("a//b", ["a./.b"]),
])
def test_an_mqtt_filter_is_the_subjects_nats_subscribes_it_to(topic_filter: str,
                                                              subjects: list[str]) -> None:
    assert mqtt_filter_to_subjects(topic_filter) == subjects


def by_name(config: HubConfig, name: str) -> Identity:
    return next(i for i in identities(config) if i.name == name)


def test_a_sensor_publishes_only_its_own_subjects_and_reads_nothing(registry: HubConfig) -> None:
    allowed = permissions(by_name(registry, "ken-radar-1"), NAMES)
    assert allowed.publish == ("sensors.ken-radar-1", "sensors.ken-radar-1.>")
    assert allowed.subscribe == ()
    assert allowed.connections == ("MQTT",)


def test_a_partner_reads_only_its_own_pictures_and_publishes_nothing(registry: HubConfig
                                                                     ) -> None:
    allowed = permissions(by_name(registry, "gha"), NAMES)
    assert allowed.publish == ()
    assert allowed.subscribe == ("cop.gha", "cop.gha.>", "$MQTT.sub.>")
    assert allowed.connections == ("MQTT",)


def test_only_the_hub_touches_the_cluster_s_own_subjects(registry: HubConfig) -> None:
    for identity in identities(registry):
        allowed = permissions(identity, NAMES)
        if identity.role == "hub":
            assert allowed.deny == () and "STANDARD" in allowed.connections
            assert {"hub.>", "$JS.API.>", "$KV.hub_leases.>", "$O.hub_checkpoints.>"} <= set(
                allowed.publish)
        else:
            assert set(allowed.deny) == {"hub.in.item", "hub.in.tick", "hub.workers",
                                         "hub.picture.>"}


def test_the_file_holds_a_checkable_hash_per_identity_and_is_private(
        registry: HubConfig, tmp_path: Path) -> None:
    files = write_auth_files(registry, tmp_path)
    path = write_nats_auth(files, NAMES, cost=4)
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = dict(re.findall(r'user: "([^"]+)", password: "([^"]+)"', text))
    assert sorted(users) == sorted(i.name for i in files.identities)
    for name, hashed in users.items():
        assert hashed.startswith("$2a$04$") and bcrypt.checkpw(
            files.password(name).encode(), hashed.encode())
        assert files.password(name) not in text
    # No identity may do what it is not given: an empty side is denied outright.
    assert text.count('subscribe: {deny: [">"]}') == len(files.names("sensor")) + 1  # + truth


def test_the_workers_log_in_to_nats_as_the_hub(registry: HubConfig) -> None:
    assert as_hub_identity(registry).cluster == msgspec.structs.replace(
        registry.cluster, username="hub")


@pytest.mark.parametrize(("cluster", "named"), [
    (None, "$.cluster: --nats needs a [cluster] section"),
    (Cluster(servers=["nats://h:1"], username="ops"), "$.cluster.username: 'ops'"),
])
def test_a_config_the_authorization_cannot_serve_is_refused(
        registry: HubConfig, cluster: Cluster | None, named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        cluster_names(msgspec.structs.replace(registry, cluster=cluster))
