"""Simulators → Mosquitto → hub → partner subscribers, all real, in one event loop."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import msgpack
import msgspec
import pytest
from mqtt_peer import Peer, unique, until

from hub import messages, topics
from hub.broker import BrokerHandle
from hub.config import DEFAULT_CONFIG, HubConfig, load_config
from hub.messages import DeadLetter, HubStatus, Picture
from hub.service import HubService
from simulators.publisher import run
from simulators.scenario import load_scenario

MAX = 64 << 20
SIM_SECONDS = 40.0
SPEED = 5.0


def hub_config(handle: BrokerHandle, protocol: str) -> HubConfig:
    config = load_config(DEFAULT_CONFIG)
    broker = msgspec.structs.replace(config.broker, host=handle.host, port=handle.port,
                                     protocol=protocol, client_id=unique("hub-e2e"))
    publish = msgspec.structs.replace(config.publish, interval_s=0.5, full_every_s=2.0)
    return msgspec.structs.replace(config, broker=broker, publish=publish)


@dataclass
class Running:
    service: HubService
    peer: Peer
    sims: asyncio.Task[int]


@pytest.fixture
async def running_hub(mosquitto: BrokerHandle, mqtt_protocol: str,
                      peer_factory: Callable[[BrokerHandle, str, str], Peer]
                      ) -> AsyncIterator[Running]:
    service = HubService(hub_config(mosquitto, mqtt_protocol))
    stop = asyncio.Event()
    hub_task = asyncio.create_task(service.run(stop))
    await until(lambda: service.bus is not None and service.bus.connected.is_set(), "hub online")
    peer = peer_factory(mosquitto, mqtt_protocol, unique("partners"))
    peer.subscribe("cop/+/picture")
    peer.subscribe(topics.DEADLETTER)
    scenario = load_scenario("default").with_duration(SIM_SECONDS)
    sims = asyncio.create_task(asyncio.to_thread(
        run, scenario, mosquitto.host, mosquitto.port, protocol=mqtt_protocol, speed=SPEED,
        progress=False))
    try:
        yield Running(service, peer, sims)
    finally:
        await sims
        stop.set()
        await hub_task


def drain(peer: Peer) -> list[tuple[str, bytes]]:
    got = []
    while not peer.messages.empty():
        topic, payload, _ = peer.messages.get_nowait()
        got.append((topic, payload))
    return got


async def test_partners_receive_pictures_with_only_released_sources(running_hub: Running
                                                                     ) -> None:
    await running_hub.sims
    await asyncio.sleep(1.5)
    pictures: dict[str, list[Picture]] = {}
    for topic, payload in drain(running_hub.peer):
        if topic.endswith("/picture"):
            picture = messages.decode(payload, Picture, MAX)
            assert topic == topics.partner_picture(picture.partner)
            pictures.setdefault(picture.partner, []).append(picture)
    assert set(pictures) == {"ken", "gha", "nld", "bra"}
    for partner, received in pictures.items():
        seqs = [p.seq for p in received]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), partner
    ken_ids = {t.id for p in pictures["ken"] for t in p.tracks if t.status == "confirmed"}
    assert len(ken_ids) >= 15, "ken sees two radars and a UAV over ~30 targets"
    # gha may not see bra-uav-1: no track of it, no source of it, no BRA anywhere.
    for picture in pictures["gha"]:
        for track in picture.tracks:
            assert "bra-uav-1" not in track.sources and "BRA" not in track.nations
    friends = {t.id for p in pictures["bra"] for t in p.tracks if t.affiliation == "friend"}
    gha_friends = {t.id for p in pictures["gha"] for t in p.tracks if t.affiliation == "friend"}
    # Friends: nld-uav-1 and ken-uav-2 (camera-only) everywhere, bra-uav-1 for bra only.
    assert len(friends) == 3 and len(gha_friends) == 2


async def test_late_subscriber_gets_the_retained_snapshot(
        running_hub: Running, mosquitto: BrokerHandle, mqtt_protocol: str,
        peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
    await running_hub.sims
    await asyncio.sleep(2.5)
    late = peer_factory(mosquitto, mqtt_protocol, f"late-{mqtt_protocol}")
    late.subscribe(topics.partner_snapshot("nld"))
    (_topic, payload, retained), = await late.receive(1)
    snapshot = messages.decode(payload, Picture, MAX)
    assert retained and snapshot.full and snapshot.partner == "nld"
    assert sum(t.status != "tentative" for t in snapshot.tracks) >= 10


def bad_inputs() -> list[tuple[str, bytes]]:
    telemetry = {"ts": 0.0, "seq": 10**6, "lat": 0.0, "lon": 36.8, "alt": 100.0, "heading": 0.0,
                 "pitch": 0.0, "roll": 0.0}
    return [
        ("sensors/ken-radar-1/detections", b"\xc1\xff not msgpack"),
        ("sensors/ken-radar-1/detections", msgpack.packb({"ts": "x", "seq": 1,
                                                          "detections": []})),
        ("sensors/ken-radar-1/detections", msgpack.packb({"ts": math.nan, "seq": 1,
                                                          "detections": []})),
        ("sensors/nld-uav-1/telemetry", msgpack.packb(telemetry)),
        ("sensors/nld-uav-1/telemetry", msgpack.packb({**telemetry, "lat": 123.0})),
        ("sensors/nld-uav-1/frames", msgpack.packb({"ts": 1.9e9, "band": "uv"})),
        ("sensors/nld-uav-1/status", msgpack.packb([1, 2, 3])),
        ("sensors/intruder-1/detections", msgpack.packb({"ts": 1.9e9, "seq": 1,
                                                         "detections": []})),
        ("sensors/gha-radar-1/detections", b"\x00" * (10 << 20)),
    ]


async def test_bad_input_on_every_topic_is_dead_lettered_and_traffic_flows(
        running_hub: Running, mosquitto: BrokerHandle, mqtt_protocol: str,
        peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
    pipeline = running_hub.service.pipeline
    await until(lambda: pipeline.counters["fused"] > 20, "fusion under way")
    rejected_before = pipeline.counters["rejected"]
    fused_before = pipeline.counters["fused"]
    attacker = peer_factory(mosquitto, mqtt_protocol, f"bad-{mqtt_protocol}")
    bad = bad_inputs()
    for topic, payload in bad:
        attacker.publish(topic, payload)
    await until(lambda: pipeline.counters["rejected"] - rejected_before >= len(bad),
                "every bad message rejected")
    await running_hub.sims
    await asyncio.sleep(1.0)
    assert pipeline.counters["rejected"] - rejected_before == len(bad)
    assert pipeline.counters["fused"] > fused_before + 50, "good traffic stopped"
    letters = [messages.decode(p, DeadLetter, MAX) for t, p in drain(running_hub.peer)
               if t == topics.DEADLETTER]
    assert sorted(letter.topic for letter in letters) == sorted(t for t, _ in bad), letters
    by_size = {letter.size: letter.reason for letter in letters}
    assert "exceeds" in by_size[10 << 20]
    assert any("unknown sensor id 'intruder-1'" in letter.reason for letter in letters)
    status_peer = peer_factory(mosquitto, mqtt_protocol, f"status-{mqtt_protocol}")
    status_peer.subscribe(topics.HUB_STATUS)
    (_, payload, _), = await status_peer.receive(1)
    status = messages.decode(payload, HubStatus, MAX)
    assert status.online and status.counters["rejected"] >= len(bad)
