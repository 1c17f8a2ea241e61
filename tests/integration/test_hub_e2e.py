"""Simulators → Mosquitto → hub → partner subscribers, all real, in one event loop.

The broker runs the files ``hub broker-config`` writes for a test registry: the hub
logs in as the hub, each simulated unit as itself, each partner as itself, dead
letters are read by the monitor identity.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgpack
import msgspec
import numpy as np
import pytest
from mqtt_peer import Peer, until
from secured import CANARY, ROGUE, Secured

from hub import messages, topics
from hub.broker.files import read_credentials
from hub.geo import EnuFrame
from hub.messages import DeadLetter, HubStatus, Picture
from hub.release.groups import MISSION
from hub.service import HubService
from simulators.publisher import run
from simulators.scenario import load_scenario

MAX = 64 << 20
SIM_SECONDS = 40.0
SPEED = 8.0
# Every partner listens on its own tree and tries the others: all must stay silent.
WIDE = ("#", topics.COP_TREE, topics.SENSORS_TREE)


@dataclass
class Running:
    service: HubService
    peer: Peer  # the monitor: hub/deadletter
    partners: dict[str, Peer]
    sims: asyncio.Task[int]


def login(secured: Secured, protocol: str, identity: str) -> Peer:
    return Peer(secured.handle, protocol, identity, identity, secured.password(identity))


@pytest.fixture
async def running_hub(secured_broker: Secured, mqtt_protocol: str) -> AsyncIterator[Running]:
    secured = secured_broker
    config = secured.hub_config(mqtt_protocol, client_id="hub")
    config = msgspec.structs.replace(config, publish=msgspec.structs.replace(
        config.publish, interval_s=0.5, full_every_s=2.0))
    service = HubService(config, password=secured.password("hub"))
    stop = asyncio.Event()
    hub_task = asyncio.create_task(service.run(stop))
    await until(lambda: service.bus is not None and service.bus.connected.is_set(), "hub online")
    monitor = login(secured, mqtt_protocol, "hub-monitor")
    monitor.subscribe(topics.DEADLETTER)
    partners = {}
    for partner in config.partners:
        partners[partner.id] = peer = login(secured, mqtt_protocol, partner.id)
        for topic in (topics.partner_all(partner.id), *WIDE,
                      *(topics.partner_all(p.id) for p in config.partners if p != partner)):
            peer.subscribe(topic)
    scenario = load_scenario("default").with_duration(SIM_SECONDS)
    sims = asyncio.create_task(asyncio.to_thread(
        run, scenario, secured.handle.host, secured.handle.port, protocol=mqtt_protocol,
        speed=SPEED, progress=False, credentials=read_credentials(secured.files.credentials)))
    try:
        yield Running(service, monitor, partners, sims)
    finally:
        await sims
        stop.set()
        await hub_task
        for peer in [monitor, *partners.values()]:
            peer.close()


def drain(peer: Peer) -> list[tuple[str, bytes]]:
    got = []
    while not peer.messages.empty():
        topic, payload, _ = peer.messages.get_nowait()
        got.append((topic, payload))
    return got


def pictures_of(running: Running) -> dict[str, list[Picture]]:
    """Every picture each partner received; fails on any message outside its own tree."""
    pictures: dict[str, list[Picture]] = {}
    for partner, peer in running.partners.items():
        # Overlapping filters each deliver a copy under MQTT 5: keep distinct messages.
        for topic, payload in dict.fromkeys(drain(peer)):
            assert topic.startswith(f"cop/{partner}/"), (partner, topic)
            if topic.endswith("/picture"):
                picture = messages.decode(payload, Picture, MAX)
                assert picture.partner == partner
                pictures.setdefault(partner, []).append(picture)
    return pictures


async def test_partners_receive_pictures_with_only_released_sources(running_hub: Running
                                                                     ) -> None:
    await running_hub.sims
    await asyncio.sleep(1.5)
    pictures = pictures_of(running_hub)
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
        running_hub: Running, secured_broker: Secured, mqtt_protocol: str) -> None:
    await running_hub.sims
    await asyncio.sleep(2.5)
    # A partner's second connection would replace its first (client id = user name).
    running_hub.partners.pop("nld").close()
    late = login(secured_broker, mqtt_protocol, "nld")
    try:
        late.subscribe(topics.partner_snapshot("nld"))
        (_topic, payload, retained), = await late.receive(1)
    finally:
        late.close()
    snapshot = messages.decode(payload, Picture, MAX)
    assert retained and snapshot.full and snapshot.partner == "nld"
    assert sum(t.status != "tentative" for t in snapshot.tracks) >= 10


CANARY_ENU = np.array([[7000.0, 7000.0], [7300.0, 7000.0], [7000.0, 7400.0]])


def canary_batches(frame: EnuFrame, count: int, start: float, step: float) -> list[bytes]:
    """Detections of three still targets away from the scenario's area, as a radar sends."""
    lat, lon, _ = frame.to_geodetic(CANARY_ENU[:, 0], CANARY_ENU[:, 1])
    return [msgpack.packb({"ts": start + i * step, "seq": i, "detections": [
        {"kind": "geo", "lat": float(a), "lon": float(b), "sigma": 5.0, "cls": "vehicle"}
        for a, b in zip(lat, lon, strict=True)]}) for i in range(count)]


async def test_a_canary_released_to_nobody_reaches_no_partner(
        running_hub: Running, secured_broker: Secured, mqtt_protocol: str) -> None:
    service = running_hub.service
    await running_hub.sims  # the canary's timestamps follow the simulated stream's end
    canary = login(secured_broker, mqtt_protocol, CANARY)
    try:
        for payload in canary_batches(service.pipeline.frame, 16, time.time(), 0.25):
            canary.publish(topics.sensor(CANARY, "detections"), payload)
            await asyncio.sleep(0.25)
    finally:
        canary.close()
    index = service.config.sensor_index()[CANARY]
    mission = service.pipeline.groups[0]
    assert MISSION in mission.group.key

    def canary_tracks() -> int:
        table = mission.tracker.snapshot()
        return int(((table.status > 0) & table.sources[:, index]).sum())

    await until(lambda: canary_tracks() == len(CANARY_ENU), "canary tracks in the mission")
    # Two full pictures after that: a leaked canary track would be in them.
    fulls_before = {p: 0 for p in running_hub.partners}
    await asyncio.sleep(2 * service.config.publish.full_every_s + 1.0)
    pictures = pictures_of(running_hub)
    for partner in running_hub.partners:
        fulls_before[partner] = sum(p.full for p in pictures.get(partner, []))
        assert fulls_before[partner] >= 2, partner
    canary_ll = service.pipeline.frame.to_geodetic(CANARY_ENU[:, 0], CANARY_ENU[:, 1])
    for partner, received in pictures.items():
        for picture in received:
            for track in picture.tracks:
                assert CANARY not in track.sources and "ZZZ" not in track.nations, partner
                e, n, _ = service.pipeline.frame.to_enu(track.lat, track.lon, 0.0)
                near = np.hypot(CANARY_ENU[:, 0] - e, CANARY_ENU[:, 1] - n).min()
                assert near > 500.0, (partner, track.id, canary_ll)
    assert service.pipeline.router.counters.get("rejected", 0) == 0


def bad_inputs() -> list[tuple[str, bytes]]:
    """Bad messages from a registered unit on its own topics (others are refused by the ACL)."""
    telemetry = {"ts": 0.0, "seq": 10**6, "lat": 0.0, "lon": 36.8, "alt": 100.0, "heading": 0.0,
                 "pitch": 0.0, "roll": 0.0}
    return [(topics.sensor(ROGUE, kind), payload) for kind, payload in [
        ("detections", b"\xc1\xff not msgpack"),
        ("detections", msgpack.packb({"ts": "x", "seq": 1, "detections": []})),
        ("detections", msgpack.packb({"ts": math.nan, "seq": 1, "detections": []})),
        ("telemetry", msgpack.packb(telemetry)),
        ("telemetry", msgpack.packb({**telemetry, "lat": 123.0})),
        ("frames", msgpack.packb({"ts": 1.9e9, "band": "uv"})),
        ("status", msgpack.packb([1, 2, 3])),
        ("detections", b"\x00" * (10 << 20)),
    ]]


async def test_bad_input_on_every_topic_is_dead_lettered_and_traffic_flows(
        running_hub: Running, secured_broker: Secured, mqtt_protocol: str) -> None:
    pipeline = running_hub.service.pipeline
    await until(lambda: pipeline.counters["fused"] > 20, "fusion under way")
    rejected_before = pipeline.counters["rejected"]
    fused_before = pipeline.counters["fused"]
    attacker = login(secured_broker, mqtt_protocol, ROGUE)
    bad = bad_inputs()
    try:
        for topic, payload in bad:
            await asyncio.to_thread(attacker.publish, topic, payload)
    finally:
        attacker.close()
    await until(lambda: pipeline.counters["rejected"] - rejected_before >= len(bad),
                "every bad message rejected")
    await running_hub.sims
    await asyncio.sleep(1.0)
    assert pipeline.counters["rejected"] - rejected_before == len(bad)
    assert pipeline.counters["fused"] > fused_before + 50, "good traffic stopped"
    letters = [messages.decode(p, DeadLetter, MAX) for t, p in drain(running_hub.peer)
               if t == topics.DEADLETTER]
    # The first of each code alone; the rest of its second in a summary (the last's topic).
    assert {letter.topic for letter in letters} <= {t for t, _ in bad}, letters
    assert sum(letter.count for letter in letters) == len(bad), letters
    assert {letter.code for letter in letters} == {"undecodable", "schema", "too_large"}
    by_size = {letter.size: letter.reason for letter in letters}
    assert "exceeds" in by_size[10 << 20]
    running_hub.peer.subscribe(topics.HUB_STATUS)
    (_, payload, _), = await running_hub.peer.receive(1)
    status = messages.decode(payload, HubStatus, MAX)
    assert status.online and status.counters["rejected"] >= len(bad)
