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

from hub.broker.acl import identities
from hub.broker.files import read_credentials
from hub.config import DEFAULT_CONFIG, load_config

HUB = [sys.executable, "-m", "hub.cli"]




def demo(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*HUB, "demo", "--workdir", str(tmp_path / "demo"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def assert_no_strays(tmp_path: Path, out: str) -> None:
    """No broker (its config is in the workdir) and no simulator (--port P) outlives the demo."""
    match = re.search(r"broker: mqtt://127\.0\.0\.1:(\d+)", out)
    assert match, out
    assert_none_running((str(tmp_path / "demo"), f"--port {match.group(1)}"))
    assert "Traceback" not in (tmp_path / "demo" / "simulators.log").read_text()


def assert_none_running(marks: tuple[str, ...]) -> None:
    """No process whose command line holds one of ``marks`` outlives the demo."""
    time.sleep(0.5)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            assert not any(mark in cmdline for mark in marks), f"stray process: {cmdline}"


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


def test_the_cluster_demo_goes_on_when_a_fusion_worker_is_killed(tmp_path: Path) -> None:
    process = demo(tmp_path, "--cluster", "--duration", "22")
    assert process.stdout is not None
    lines: list[str] = []
    victim = None
    for line in process.stdout:
        lines.append(line)
        if victim is None and (hint := re.search(r"try: kill -9 (\d+)", line)):
            victim = int(hint.group(1))
        if victim is not None and re.search(r"groups: .*mission→fa", line):
            os.kill(victim, signal.SIGKILL)
            killed_at = len(lines)
            break
    else:
        process.communicate(timeout=60)  # closes the pipe: a later test must not find it open
        pytest.fail("the fusion worker fa never owned the mission group:\n" + "".join(lines))
    out = "".join(lines) + process.communicate(timeout=60)[0]
    assert process.returncode == 0, out
    assert "Traceback" not in out
    assert_cluster_secure(tmp_path, out)
    assert re.search(r"console: http://127\.0\.0\.1:\d+/", out), out
    # Each worker was up at some point (in1 may come after fa was killed, on a loaded machine).
    ups = " ".join(line.split("workers up:")[1].split("ingest slots")[0]
                   for line in out.splitlines() if "workers up:" in line)
    assert {"fa", "fb", "in1", "pub1"} <= set(re.findall(r"[a-z0-9]+", ups)), out
    after = out.splitlines()[killed_at:]
    taken = [i for i, line in enumerate(after)
             if re.search(r"groups: g1→fb  g2→fb  g3→fb  mission→fb", line)]
    assert taken and taken[0] <= 8, "\n".join(after)  # a line a second; 3 s of it is staleness
    stream = [int(m.group(1)) for line in after[taken[0]:] if (m := re.search(r"at (\d+)$", line))]
    assert stream[-1] > stream[0], "no input fused after the takeover"
    mqtt = re.search(r"MQTT on ports (\d+)", out)
    assert mqtt, out
    assert_none_running((str(tmp_path / "demo"), f"--port {mqtt.group(1)} "))


def assert_cluster_secure(tmp_path: Path, out: str) -> None:
    """Every node includes the NATS users; no password in the output or any log."""
    workdir = tmp_path / "demo"
    assert "access: a NATS user and permissions per identity, anonymous off" in out
    nodes = sorted((workdir / "nats").glob("n*/nats.conf"))
    assert len(nodes) == 3 and all("include " in node.read_text() for node in nodes)
    passwords = read_credentials(workdir / "broker" / "credentials.toml")
    logs = [path.read_text(errors="replace")
            for path in [*workdir.glob("*.log"), *workdir.glob("nats/n*/nats.log")]]
    assert not any(secret in log for secret in passwords.values() for log in logs)
    # The console's logins are printed once, as `hub demo` prints them; no other secret.
    consoles = {i.name for i in identities(load_config(DEFAULT_CONFIG))
                if i.role in ("partner", "operator")}
    printed = {name: out.count(secret) for name, secret in passwords.items() if secret in out}
    assert set(printed) <= consoles and set(printed.values()) <= {1}, sorted(printed)
