"""``hub run`` and ``hub sim`` as separate processes against a real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
from mqtt_peer import Peer, unique
from web_hub import config_file

from hub import messages, topics
from hub.broker.launcher import BrokerHandle
from hub.config import DEFAULT_CONFIG, load_config
from hub.messages import HubStatus, Picture

HUB = [sys.executable, "-m", "hub.cli"]
COUNTED = ("received", "fused", "late", "duplicates")


def test_hub_run_and_hub_sim_make_a_picture(
        mosquitto: BrokerHandle, peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
    where = ["--host", mosquitto.host, "--port", str(mosquitto.port)]
    hub = subprocess.Popen([*HUB, "run", *where, "--duration", "9", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sim = subprocess.run([*HUB, "sim", "-s", "default", *where, "--duration", "30", "--speed",
                          "8", "--no-progress"], capture_output=True, text=True, timeout=60)
    assert sim.returncode == 0, sim.stderr
    assert "sent " in sim.stderr
    out, _ = hub.communicate(timeout=30)
    assert hub.returncode == 0 and "Traceback" not in out, out
    peer = peer_factory(mosquitto, "5", unique("console"))
    peer.subscribe(topics.partner_snapshot("ken"))
    peer.subscribe(topics.HUB_STATUS)
    got = {topic: payload for topic, payload, _ in peer.take(2)}
    snapshot = messages.decode(got[topics.partner_snapshot("ken")], Picture, 1 << 24)
    assert snapshot.full and sum(t.status != "tentative" for t in snapshot.tracks) >= 10
    status = messages.decode(got[topics.HUB_STATUS], HubStatus, 1 << 20)
    assert not status.online, "the hub's last word on hub/status is offline"
    assert status.counters["received"] > 100 and status.counters["rejected"] == 0


def status_of(peer: Peer) -> HubStatus:
    """The next ``hub/status`` the peer receives."""
    _, payload, _ = peer.take(1)[0]
    return messages.decode(payload, HubStatus, 1 << 20)


def settled(peer: Peer) -> dict[str, int]:
    """The hub's counters once three status reports in a row show them unchanged."""
    seen: list[dict[str, int]] = []
    while len(seen) < 3 or seen[-1] != seen[-3]:
        counters = status_of(peer).counters
        seen.append({name: counters.get(name, 0) for name in COUNTED})
    return seen[-1]


def test_a_second_simulator_run_is_fused_like_the_first(
        fresh_mosquitto: BrokerHandle, peer_factory: Callable[[BrokerHandle, str, str], Peer],
        tmp_path: Path) -> None:
    config = load_config(DEFAULT_CONFIG)
    config = msgspec.structs.replace(config, publish=msgspec.structs.replace(
        config.publish, status_every_s=0.5))
    where = ["--host", fresh_mosquitto.host, "--port", str(fresh_mosquitto.port)]
    peer = peer_factory(fresh_mosquitto, "5", unique("status"))
    peer.subscribe(topics.HUB_STATUS)
    hub = subprocess.Popen([*HUB, "run", "-c", str(config_file(config, tmp_path / "hub.toml")),
                            *where, "--quiet"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        while not status_of(peer).online:
            pass
        before = settled(peer)
        runs = []
        for _ in range(2):
            # Back to back, fast: the second run's units restart their seq at 0.
            sim = subprocess.run([*HUB, "sim", "-s", "default", *where, "--duration", "30",
                                  "--speed", "8", "--no-progress"], capture_output=True,
                                 text=True, timeout=60)
            assert sim.returncode == 0, sim.stderr
            after = settled(peer)
            runs.append({name: after[name] - before[name] for name in COUNTED})
            before = after
    finally:
        hub.terminate()
        out, _ = hub.communicate(timeout=30)
    assert hub.returncode == 0 and "Traceback" not in out, out
    first, second = runs
    assert first["received"] > 300 and first["late"] <= 0.01 * first["received"], runs
    assert abs(second["fused"] - first["fused"]) <= 0.05 * first["fused"], runs
    assert second["late"] <= 0.01 * second["received"] and second["duplicates"] == 0, runs
