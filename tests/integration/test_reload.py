"""``hub reload`` against a running ``hub run`` and ``hub sim`` on a real Mosquitto."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_peer import WAIT_S, Peer, unique

from hub import messages, topics
from hub.broker.launcher import BrokerHandle
from hub.config import DEFAULT_CONFIG
from hub.messages import HubStatus, Picture

HUB = [sys.executable, "-m", "hub.cli"]
# In the default registry KEN releases its radar to every UN partner; tightened, not to BRA.
LOOSE = 'by = "KEN"\nkinds = ["radar"]\nto = ["UN"]\n'
TIGHT = 'by = "KEN"\nkinds = ["radar"]\nto = ["AU", "NATO"]\n'


def write_config(path: Path, broker: BrokerHandle, ken_release: str, extra: str = "") -> None:
    text = DEFAULT_CONFIG.read_text()
    assert LOOSE in text
    text = text.replace(LOOSE, ken_release).replace('port = 1883', f"port = {broker.port}")
    path.write_text(text.replace("[publish]\n", "[publish]\nstatus_every_s = 0.5\n") + extra)


@pytest.fixture
def hub_and_sim(mosquitto: BrokerHandle, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    config, pid = tmp_path / "hub.toml", tmp_path / "hub.pid"
    write_config(config, mosquitto, LOOSE)
    hub = subprocess.Popen([*HUB, "run", "-c", str(config), "--pid-file", str(pid), "--quiet",
                            "--duration", "60"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    sim = subprocess.Popen([*HUB, "sim", "-c", str(config), "-s", "default", "--speed", "4",
                            "--duration", "200", "--no-progress"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield config, pid
    finally:
        sim.terminate()
        hub.terminate()
        out, _ = hub.communicate(timeout=30)
        sim.wait(timeout=30)
        assert "Traceback" not in out, out


def snapshot_sources(peer: Peer, partner: str, wait_s: float) -> set[str] | None:
    """Sources in ``partner``'s next non-empty snapshot, None if none came in ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            topic, payload, _ = peer.messages.get(timeout=0.2)
        except queue.Empty:
            continue
        if topic == topics.partner_snapshot(partner) and payload:
            picture = messages.decode(payload, Picture, 1 << 24)
            if picture.tracks:
                return {s for t in picture.tracks for s in t.sources}
    return None


def reload_count(peer: Peer) -> tuple[int, int]:
    """(reloads, reload_failures) from the hub's next status."""
    while True:
        topic, payload, _ = peer.messages.get(timeout=WAIT_S)
        if topic == topics.HUB_STATUS:
            counters = messages.decode(payload, HubStatus, 1 << 20).counters
            return counters["reloads"], counters["reload_failures"]


def test_reload_tightens_a_partners_picture_and_refuses_a_bad_file(
        hub_and_sim: tuple[Path, Path], mosquitto: BrokerHandle,
        peer_factory: Callable[[BrokerHandle, str, str], Peer]) -> None:
    config, pid = hub_and_sim
    watcher = peer_factory(mosquitto, "5", unique("watch"))
    watcher.subscribe(topics.partner_snapshot("bra"))
    # Friend platforms come first (from their first fix); radar tracks once confirmed.
    deadline = time.monotonic() + 40.0
    while "ken-radar-1" not in (snapshot_sources(watcher, "bra", 5.0) or set()):
        assert time.monotonic() < deadline, "bra never saw a track of ken-radar-1"

    broken = config.with_suffix(".bad.toml")
    write_config(broken, mosquitto, LOOSE, '\n[[releases]]\nby = "KEN"\nto = ["nobody"]\n')
    bad = subprocess.run([*HUB, "reload", "-c", str(broken), "--pid-file", str(pid)],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and re.search(
        r"\$\.releases\[\d+\]\.to\[0\]: unknown partner or group 'nobody'", bad.stderr)

    write_config(config, mosquitto, TIGHT)
    done = subprocess.run([*HUB, "reload", "-c", str(config), "--pid-file", str(pid)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    status = peer_factory(mosquitto, "5", unique("status"))
    status.subscribe(topics.HUB_STATUS)
    deadline = time.monotonic() + WAIT_S
    while reload_count(status) != (1, 0):
        assert time.monotonic() < deadline, "the hub did not count the reload"
    # A new subscriber now finds no retained picture holding KEN's radar, and the pictures
    # that follow never hold it.
    late = peer_factory(mosquitto, "5", unique("late"))
    late.subscribe(topics.partner_snapshot("bra"))
    late.subscribe(topics.partner_picture("bra"))
    seen: set[str] = set()
    pictures = 0
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline and pictures < 5:
        try:
            _, payload, _ = late.messages.get(timeout=0.5)
        except queue.Empty:
            continue
        if payload:
            picture = messages.decode(payload, Picture, 1 << 24)
            seen.update(s for t in picture.tracks for s in t.sources)
            pictures += 1
    assert pictures >= 3 and "ken-radar-1" not in seen and "bra-uav-1" in seen
