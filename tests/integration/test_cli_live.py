"""``hub run`` and ``hub sim`` as separate processes against a real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from mqtt_peer import Peer, unique

from hub import messages, topics
from hub.broker.launcher import BrokerHandle
from hub.messages import HubStatus, Picture

HUB = [sys.executable, "-m", "hub.cli"]


def test_hub_run_and_hub_sim_make_a_picture(
        mosquitto: BrokerHandle, peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
    where = ["--host", mosquitto.host, "--port", str(mosquitto.port)]
    hub = subprocess.Popen([*HUB, "run", *where, "--duration", "12", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sim = subprocess.run([*HUB, "sim", "-s", "default", *where, "--duration", "30", "--speed",
                          "6", "--no-progress"], capture_output=True, text=True, timeout=60)
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
