"""TLS with client certificates on the listener ``hub broker-config`` writes, on a real Mosquitto.

Certificates come from ``trustme``: one CA signs the broker's certificate (for
127.0.0.1) and one client certificate per identity, CN = the identity; Mosquitto
takes the CN as the user name (``use_identity_as_username``), so the ACL applies.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import trustme
from mqtt_peer import until
from secured import Secured, client_tls, registry, start_secured

from hub import topics
from hub.broker.launcher import free_port
from hub.config import Broker
from hub.mqtt.bus import Bus
from simulators.publisher import run
from simulators.scenario import load_scenario

HOST = "127.0.0.1"
Message = tuple[str, bytes]


def issue(ca: trustme.CA, directory: Path, *names: str) -> None:
    """Write ``NAME.pem`` and ``NAME.key`` for each client identity, signed by ``ca``."""
    for name in names:
        cert = ca.issue_cert(name, common_name=name)
        cert.cert_chain_pems[0].write_to_path(str(directory / f"{name}.pem"))
        cert.private_key_pem.write_to_path(str(directory / f"{name}.key"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Secured, int, Path]]:
    """Mosquitto with the generated plain and TLS listeners; client certificates in a dir."""
    certs = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    server = ca.issue_cert(HOST)
    server.cert_chain_pems[0].write_to_path(str(certs / "server.pem"))
    server.private_key_pem.write_to_path(str(certs / "server.key"))
    config = registry()
    issue(ca, certs, "hub", "sim-truth", *(s.id for s in config.sensors))
    tls_port = free_port()
    config = registry(broker_server={"persistence": False, "tls": {
        "port": tls_port, "cafile": str(certs / "ca.pem"), "certfile": str(certs / "server.pem"),
        "keyfile": str(certs / "server.key")}})
    # Another CA signs a certificate for the hub's name: it must not get in.
    other = trustme.CA()
    stranger = other.issue_cert("hub", common_name="hub")
    (certs / "other").mkdir()
    stranger.cert_chain_pems[0].write_to_path(str(certs / "other" / "hub.pem"))
    stranger.private_key_pem.write_to_path(str(certs / "other" / "hub.key"))
    secured = start_secured(config, tmp_path_factory.mktemp("tls-broker"))
    try:
        yield secured, tls_port, certs
    finally:
        secured.handle.stop()


def tls_settings(tls_port: int, certs: Path, protocol: str, identity: str) -> Broker:
    # No user name or password: the certificate is the identity.
    return Broker(host=HOST, port=tls_port, protocol=protocol,  # type: ignore[arg-type]
                  client_id=identity, keepalive=10, tls=client_tls(certs))


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


def connack(sock: socket.socket) -> bytes:
    """Send an MQTT 3.1.1 CONNECT without credentials; return what came back (b'' if closed)."""
    client_id = b"tls-probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(client_id).to_bytes(2, "big") + client_id
    try:
        sock.sendall(bytes([0x10, len(body)]) + body)
        return sock.recv(4)
    except (ssl.SSLError, ConnectionError):
        return b""


def probe(port: int, context: ssl.SSLContext | None) -> bytes:
    """Connect to ``port`` (through TLS with ``context`` when given) and try an MQTT CONNECT."""
    with socket.create_connection((HOST, port), timeout=5.0) as raw:
        if context is None:
            return connack(raw)
        try:
            with context.wrap_socket(raw, server_hostname=HOST) as sock:
                return connack(sock)
        except (ssl.SSLError, ConnectionError):
            return b""


def client_context(certs: Path, cert: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if cert is not None:
        context.load_cert_chain(str(cert), str(cert.with_suffix(".key")))
    return context


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
        assert answer == b"\x20\x02\x00\x00", answer
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
