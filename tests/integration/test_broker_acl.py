"""The generated broker config on a real Mosquitto: who may connect, publish and read what.

Every check that "nothing arrives" is ordered, never timed: a message the broker
would deliver is queued before a later marker from the same publisher (or before
the PUBACK of a later publish on the same connection), so once the marker or
PUBACK is in, anything forbidden would already have been received.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_peer import Client

from hub import topics
from hub.broker.files import BrokerFiles, write_auth_files
from hub.broker.launcher import BrokerHandle, find_mosquitto, start_broker
from hub.broker.passwords import parse_password_file, verify_password
from hub.config import DEFAULT_CONFIG, HubConfig, load_config


@pytest.fixture(scope="module")
def registry() -> HubConfig:
    return load_config(DEFAULT_CONFIG)


@pytest.fixture(scope="module")
def secured(registry: HubConfig, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[tuple[BrokerHandle, BrokerFiles]]:
    """A Mosquitto enforcing the password file and ACL that ``hub broker-config`` writes."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto", pytrace=False)
    directory = tmp_path_factory.mktemp("secured")
    files = write_auth_files(registry, directory)
    with start_broker(prefer="mosquitto", workdir=directory, auth=files.auth) as handle:
        yield handle, files


@pytest.fixture
def connect(secured: tuple[BrokerHandle, BrokerFiles], mqtt_protocol: str,
            ) -> Iterator[Callable[[str], Client]]:
    handle, files = secured
    clients: list[Client] = []

    def make(name: str) -> Client:
        client = Client(handle, mqtt_protocol, name, files.password(name))
        assert not client.reason.is_failure, f"{name}: {client.reason}"
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_partners_receive_only_their_own_picture(registry: HubConfig,
                                                 connect: Callable[[str], Client]) -> None:
    partners = [p.id for p in registry.partners]
    hub = connect("hub")
    sensor = connect(registry.sensors[0].id)
    listeners = {}
    for partner in partners:
        listeners[partner] = client = connect(partner)
        # Every other partner's topics, the whole cop tree and the sensors: all must stay silent.
        client.subscribe(topics.partner_all(partner), topics.COP_TREE, topics.SENSORS_TREE,
                         topics.TRUTH, "#",
                         *(topics.partner_all(other) for other in partners if other != partner))
    sensor.publish(topics.sensor(registry.sensors[0].id, "detections"), b"sensor-canary")
    for other in partners:
        hub.publish(topics.partner_picture(other), f"canary for {other}".encode())
        hub.publish(topics.partner_snapshot(other), f"snapshot for {other}".encode())
    markers = {p: (topics.partner_picture(p), f"marker for {p}".encode()) for p in partners}
    for partner in partners:
        hub.publish(*markers[partner])
    for partner, client in listeners.items():
        # Overlapping filters may each deliver a copy (MQTT 5): compare distinct messages.
        got = set(client.take_until(markers[partner]))
        assert got == {(topics.partner_picture(partner), f"canary for {partner}".encode()),
                       (topics.partner_snapshot(partner), f"snapshot for {partner}".encode()),
                       markers[partner]}, partner


def test_a_sensor_cannot_publish_as_another(registry: HubConfig,
                                            connect: Callable[[str], Client]) -> None:
    sensors = [s.id for s in registry.sensors]
    hub = connect("hub")
    hub.subscribe(topics.SENSORS_TREE)
    for sensor in sensors:
        client = connect(sensor)
        client.subscribe(topics.SENSORS_TREE)
        for victim in sensors:
            if victim == sensor:
                continue
            for kind in topics.INBOUND_KINDS:
                reason = client.publish(topics.sensor(victim, kind), f"forged by {sensor}".encode())
                assert reason is None or reason.is_failure, (sensor, victim, kind, reason)
        own = (topics.sensor(sensor, "detections"), f"own from {sensor}".encode())
        assert not (client.publish(*own) or mqtt.ReasonCode(mqtt.PacketTypes.PUBACK)).is_failure
        # The hub sees the sensor's own message and nothing it forged before it.
        assert hub.take_until(own) == [own]
        # The PUBACK came after anything the broker would have sent this sensor.
        assert client.received() == [], "a sensor read sensors/#"


def test_the_truth_identity_writes_only_truth(connect: Callable[[str], Client]) -> None:
    hub = connect("hub")
    hub.subscribe(topics.TRUTH, topics.SENSORS_TREE)
    truth = connect("sim-truth")
    reason = truth.publish(topics.sensor("ken-radar-1", "detections"), b"forged")
    assert reason is None or reason.is_failure
    truth.publish(topics.TRUTH, b"truth")
    assert hub.take_until((topics.TRUTH, b"truth")) == [(topics.TRUTH, b"truth")]


@pytest.mark.parametrize("credentials", ["anonymous", "wrong password", "unknown user"])
def test_connections_without_valid_credentials_are_refused(
        secured: tuple[BrokerHandle, BrokerFiles], mqtt_protocol: str, credentials: str) -> None:
    handle, files = secured
    username, password = {"anonymous": (None, None),
                          "wrong password": ("hub", files.password("hub") + "x"),
                          "unknown user": ("mallory", "guess")}[credentials]
    client = Client(handle, mqtt_protocol, username, password)
    try:
        assert client.reason.is_failure, client.reason
    finally:
        client.close()


def test_mosquitto_passwd_hashes_verify_with_our_checker(tmp_path: Path) -> None:
    binary = shutil.which("mosquitto_passwd")
    if binary is None:
        pytest.fail("mosquitto_passwd is not installed (package mosquitto)", pytrace=False)
    path = tmp_path / "passwd"
    path.touch()
    subprocess.run([binary, "-b", str(path), "alice", "pa55 word"], check=True)
    encoded = parse_password_file(path.read_text())["alice"]
    assert verify_password("pa55 word", encoded) and not verify_password("pa55word", encoded)
