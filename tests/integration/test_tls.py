"""TLS with client certificates on the listener ``hub broker-config`` writes, on a real Mosquitto.

Certificates come from ``trustme``: one CA signs the broker's certificate (for
127.0.0.1) and one client certificate per identity, CN = the identity; Mosquitto
takes the CN as the user name (``use_identity_as_username``), so the ACL applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import trustme
from mqtt_peer import until
from secured import Secured, client_tls, registry, start_secured
from tls_material import (
    HOST,
    MQTT_ACCEPTED,
    client_context,
    probe,
    tls_settings,
    write_certificates,
)

from hub import topics
from hub.broker.launcher import free_port
from hub.mqtt.bus import Bus
from simulators.publisher import run
from simulators.scenario import load_scenario

Message = tuple[str, bytes]


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Secured, int, Path]]:
    """Mosquitto with the generated plain and TLS listeners; client certificates in a dir."""
    certs = tmp_path_factory.mktemp("certs")
    config = registry()
    write_certificates(certs, "hub", "sim-truth", *(s.id for s in config.sensors))
    tls_port = free_port()
    config = registry(broker_server={"persistence": False, "tls": {
        "port": tls_port, "cafile": str(certs / "ca.pem"), "certfile": str(certs / "server.pem"),
        "keyfile": str(certs / "server.key")}})
    secured = start_secured(config, tmp_path_factory.mktemp("tls-broker"))
    try:
        yield secured, tls_port, certs
    finally:
        secured.handle.stop()


@pytest.fixture
async def hub_bus(tls_broker: tuple[Secured, int, Path], mqtt_protocol: str
                  ) -> AsyncIterator[tuple[Bus, list[Message]]]:
    _, tls_port, certs = tls_broker
    got: list[Message] = []
    bus = Bus(tls_settings(tls_port, certs, mqtt_protocol, "hub"),
              subscriptions=[(topics.SENSORS_TREE, 1)],
              handler=lambda t, p: got.append((t, p)), will=None)
    async with bus:
        await bus.wait_connected(15.0)
        yield bus, got


async def test_a_sensor_reaches_the_hub_only_on_its_own_topics(
        tls_broker: tuple[Secured, int, Path], hub_bus: tuple[Bus, list[Message]],
        mqtt_protocol: str) -> None:
    _, tls_port, certs = tls_broker
    _, got = hub_bus
    sensor = Bus(tls_settings(tls_port, certs, mqtt_protocol, "ken-radar-1"), subscriptions=[],
                 handler=None, will=None)
    async with sensor:
        await sensor.wait_connected(15.0)
        # One connection delivers in order: the forged message would arrive before the own one.
        for victim in ("gha-radar-1", "nld-uav-1"):
            sensor.publish(topics.sensor(victim, "detections"), b"forged", qos=1)
        own = (topics.sensor("ken-radar-1", "detections"), b"own")
        sensor.publish(*own, qos=1)
        await until(lambda: own in got, "the sensor's own message at the hub")
    assert got == [own]


async def test_the_simulators_publish_over_tls_one_certificate_per_unit(
        tls_broker: tuple[Secured, int, Path], hub_bus: tuple[Bus, list[Message]],
        mqtt_protocol: str) -> None:
    secured, tls_port, certs = tls_broker
    _, got = hub_bus
    scenario = load_scenario("default").with_duration(3.0)
    sent = await asyncio.to_thread(run, scenario, HOST, tls_port, protocol=mqtt_protocol,
                                   speed=30.0, progress=False, tls=client_tls(certs))
    status_count = 2 * len(secured.config.sensors)  # online and offline statuses are retained
    await until(lambda: len(got) >= sent - 3 - status_count, "the simulated stream")
    senders = {topics.parse_sensor_topic(t)[0] for t, _ in got}
    assert senders == {s.id for s in secured.config.sensors}


@pytest.mark.parametrize("client", ["own CA", "no certificate", "another CA", "plain TCP"])
def test_only_certificates_of_the_ca_get_in(tls_broker: tuple[Secured, int, Path],
                                            client: str) -> None:
    _, tls_port, certs = tls_broker
    context = {"own CA": client_context(certs, certs / "hub.pem"),
               "no certificate": client_context(certs, None),
               "another CA": client_context(certs, certs / "other" / "hub.pem"),
               "plain TCP": None}[client]
    answer = probe(tls_port, context)
    if client == "own CA":  # the control: the probe can tell an accepted login
        assert answer == MQTT_ACCEPTED, answer
    else:
        assert answer == b"", answer


async def test_the_bus_refuses_a_broker_it_cannot_verify(
        tls_broker: tuple[Secured, int, Path], tmp_path: Path) -> None:
    _, tls_port, certs = tls_broker
    other = trustme.CA()
    other.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    for name in ("hub.pem", "hub.key"):
        (tmp_path / name).write_bytes((certs / name).read_bytes())
    settings = msgspec.structs.replace(tls_settings(tls_port, certs, "5", "hub"),
                                       tls=client_tls(tmp_path))
    bus = Bus(settings, subscriptions=[], handler=None, will=None, backoff=(0.05, 0.1))
    async with bus:
        await until(lambda: bus.last_error is not None, "a failed connect")
        assert not bus.connected.is_set()
        assert "CERTIFICATE_VERIFY_FAILED" in bus.last_error or "certificate" in bus.last_error
