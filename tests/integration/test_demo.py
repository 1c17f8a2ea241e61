"""``hub demo`` as a user runs it: live table, clean end by --duration and by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.broker.files import read_credentials

HUB = [sys.executable, "-m", "hub.cli"]




def demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*HUB, "demo", "--workdir", str(tmp_path / "demo"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def assert_no_strays(tmp_path: Path, out: str) -> None:
    """No broker (its config is in the workdir) and no simulator (--port P) outlives the demo."""
    match = re.search(r"broker: mqtt://127\.0\.0\.1:(\d+)", out)
    assert match, out
    marks = (str(tmp_path / "demo"), f"--port {match.group(1)}")
    time.sleep(0.5)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            assert not any(mark in cmdline for mark in marks), f"stray process: {cmdline}"
    assert "Traceback" not in (tmp_path / "demo" / "simulators.log").read_text()


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_demo_runs_for_a_duration_and_shows_every_partner(tmp_path: Path, broker: str) -> None:
    process = demo(tmp_path, "--duration", "8", "--broker", broker)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    assert "Traceback" not in out
    assert re.search(r"broker: mqtt://127\.0\.0\.1:\d+ \(MQTT (5|3\.1\.1)\)", out)
    final = out.rsplit("stopped; final picture:", 1)[1]
    rows = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
        r"^(ken|gha|nld|bra)\s+(\d+)\s+(\d+)\s+\d+\s+[\d.]+\s+mqtt://\S+ cop/\1/picture$",
        final, re.MULTILINE)}
    assert set(rows) == {"ken", "gha", "nld", "bra"}
    assert all(confirmed >= 10 for _, confirmed in rows.values()), rows
    assert_secure_by_default(tmp_path, out, broker)
    assert_no_strays(tmp_path, out)


def assert_secure_by_default(tmp_path: Path, out: str, broker: str) -> None:
    """Mosquitto: auth on, partner passwords shown once, no other secret printed or logged."""
    directory = tmp_path / "demo" / "broker"
    if broker == "amqtt":
        assert "access: ANONYMOUS" in out
        return
    assert "allow_anonymous false" in (directory / "mosquitto.conf").read_text()
    passwords = read_credentials(directory / "credentials.toml")
    assert all(passwords[p] in out for p in ("ken", "gha", "nld", "bra"))
    logs = (tmp_path / "demo" / "simulators.log").read_text() + out
    assert not any(passwords[n] in logs for n in ("hub", "ken-radar-1", "sim-truth"))


def test_ctrl_c_ends_the_demo_cleanly(tmp_path: Path) -> None:
    process = demo(tmp_path)
    time.sleep(6)
    os.kill(process.pid, signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert "Traceback" not in out and "stopped; final picture:" in out
    assert_no_strays(tmp_path, out)
