"""Hardening in the generated config, on a real Mosquitto: no client-id takeover, a packet limit.

Also the processes that share the broker each log in as themselves: ``hub record``
as the recorder, ``hub sim --credentials`` one identity per unit.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_peer import until
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from secured import Secured, registry, start_secured

from hub import topics
from hub.broker.files import read_credentials
from hub.broker.limits import max_packet_size
from hub.cli.record import record, recorder_login
from hub.mqtt.bus import Bus
from hub.recording import read_recording

HUB = [sys.executable, "-m", "hub.cli"]
Message = tuple[str, bytes]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    # A small frame limit, so the packet limit is cheap to cross.
    config = registry(ingest={"max_frame_bytes": 200_000, "max_payload_bytes": 100_000},
                      broker_server={"persistence": False})
    handle = start_secured(config, tmp_path_factory.mktemp("hardened"))
    try:
        yield handle
    finally:
        handle.handle.stop()


@pytest.fixture
async def hub(secured: Secured, mqtt_protocol: str) -> AsyncIterator[tuple[Bus, list[Message]]]:
    got: list[Message] = []
    bus = Bus(secured.broker(mqtt_protocol, "hub"), subscriptions=[(topics.SENSORS_TREE, 1)],
              handler=lambda t, p: got.append((t, p)), will=None, password=secured.password("hub"))
    async with bus:
        await bus.wait_connected(15.0)
        yield bus, got


def paho_client(secured: Secured, protocol: str, username: str, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=(
        MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311))
    client.username_pw_set(username, secured.password(username))
    return client


async def publish_own(secured: Secured, protocol: str, sensor: str, payload: bytes,
                      got: list[Message]) -> None:
    """Publish as ``sensor`` on its own topic and wait until the hub has it."""
    unit = Bus(secured.broker(protocol, sensor), subscriptions=[], handler=None, will=None,
               password=secured.password(sensor))
    async with unit:
        await unit.wait_connected(15.0)
        message = (topics.sensor(sensor, "detections"), payload)
        unit.publish(*message, qos=1)
        await until(lambda: message in got, f"{payload!r} at the hub")


async def test_a_client_using_the_hubs_client_id_does_not_take_over(
        secured: Secured, hub: tuple[Bus, list[Message]], mqtt_protocol: str) -> None:
    bus, got = hub
    intruder = paho_client(secured, mqtt_protocol, "ken-radar-1", client_id="hub")
    connected = asyncio.Event()
    loop = asyncio.get_running_loop()
    intruder.on_connect = lambda *a: loop.call_soon_threadsafe(connected.set)
    intruder.connect(secured.handle.host, secured.handle.port, keepalive=10)
    intruder.loop_start()
    try:
        await asyncio.wait_for(connected.wait(), 15.0)
        await publish_own(secured, mqtt_protocol, "gha-radar-1", b"after the intruder", got)
    finally:
        intruder.disconnect()
        intruder.loop_stop()
    # The hub was never disconnected: it received on its first connection throughout.
    assert bus.stats.reconnects == 0 and bus.connected.is_set()
    assert "Client hub already connected" not in secured.handle.log_tail(200)


async def test_a_packet_over_the_limit_is_dropped_at_the_broker(
        secured: Secured, hub: tuple[Bus, list[Message]], mqtt_protocol: str) -> None:
    _, got = hub
    limit = max_packet_size(secured.config)
    sender = paho_client(secured, mqtt_protocol, "nld-uav-1", "nld-uav-1")
    loop = asyncio.get_running_loop()
    connected, dropped = asyncio.Event(), asyncio.Event()
    sender.on_connect = lambda *a: loop.call_soon_threadsafe(connected.set)
    sender.on_disconnect = lambda *a: loop.call_soon_threadsafe(dropped.set)
    sender.connect(secured.handle.host, secured.handle.port, keepalive=10)
    sender.loop_start()
    try:
        await asyncio.wait_for(connected.wait(), 15.0)
        # QoS 0, so paho does not send it again after reconnecting.
        sender.publish(topics.sensor("nld-uav-1", "frames"), b"\x00" * limit, qos=0)
        await asyncio.wait_for(dropped.wait(), 15.0)
    finally:
        sender.disconnect()
        sender.loop_stop()
    # The broker handled the big packet before it closed that connection, so had it passed
    # it would reach the hub before this frame-sized one, which still gets through.
    fits = secured.config.ingest.max_frame_bytes
    await publish_own(secured, mqtt_protocol, "nld-uav-1", b"\x01" * fits, got)
    assert all(len(payload) < limit for _, payload in got)


async def test_record_logs_in_as_the_recorder_beside_the_hub(
        secured: Secured, hub: tuple[Bus, list[Message]], mqtt_protocol: str,
        tmp_path: Path) -> None:
    bus, got = hub
    config, password = recorder_login(secured.hub_config(mqtt_protocol),
                                      read_credentials(secured.files.credentials))
    assert config.broker.username == config.broker.client_id == "hub-recorder"
    path = tmp_path / "rec.mpk"
    recorder = asyncio.create_task(record(config, path, duration=None, password=password))
    try:
        # The recorder is subscribed once a message it must see reaches the hub after it.
        await asyncio.sleep(1.0)
        await publish_own(secured, mqtt_protocol, "ken-radar-1", b"recorded", got)
    finally:
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)
    assert (topics.sensor("ken-radar-1", "detections"), b"recorded") in [
        (t, p) for _, t, p in read_recording(path)]
    assert bus.stats.reconnects == 0, "recording took the hub's connection"


def test_hub_sim_logs_each_unit_in_with_credentials(secured: Secured, tmp_path: Path) -> None:
    where = ["--host", secured.handle.host, "--port", str(secured.handle.port)]
    common = [*HUB, "sim", "-s", "default", *where, "--duration", "2", "--speed", "20",
              "--no-progress"]
    refused = subprocess.run(common, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "refused" in refused.stderr, refused.stderr
    ok = subprocess.run([*common, "--credentials", str(secured.files.credentials)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "sent " in ok.stderr, ok.stderr
    (tmp_path / "empty.toml").write_text("[passwords]\n")
    empty = subprocess.run([*common, "--credentials", str(tmp_path / "empty.toml")],
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "no broker credentials" in empty.stderr, empty.stderr

