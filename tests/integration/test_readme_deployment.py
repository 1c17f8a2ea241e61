"""README, *A secured deployment, step by step*, followed as written, on this machine.

The test reads the ``sh`` blocks of that section and runs each line in order with
bash, changing only what a test must:

- ``/etc/feedhub`` becomes a new directory under /tmp, open to other users as /etc
  is, so Mosquitto's own user can reach the files;
- ``config/hub.toml`` becomes a copy whose ``[broker] port`` is a free port, and
  ``-p 1883`` that port;
- ``sudo`` is dropped: the test runs as root (as anyone else, every process runs as
  the caller, Mosquitto included);
- ``.venv/bin/`` becomes the directory of this interpreter (the same virtualenv).

Mosquitto, ``hub run`` and ``hub sim`` run in the background, as the README has them
in terminals of their own; every other line must finish. The machine set-up the
prose asks for (``make test``, stopping Debian's Mosquitto service) is this test
machine's already and is not run.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mqtt_peer import Peer
from secured import registry

from hub import messages, topics
from hub.broker.files import CONF, hand_over, read_credentials, write_broker_config
from hub.broker.launcher import BrokerHandle, find_mosquitto, free_port
from hub.errors import BrokerUnavailable
from hub.messages import Picture

ROOT = Path(__file__).resolve().parents[2]
SECTION = "### A secured deployment, step by step"
BROKER_DIR = "/etc/feedhub/broker"
README_PORT = 1883
BACKGROUND = {("mosquitto",), ("hub", "run"), ("hub", "sim")}
STEP_TIMEOUT_S = 90.0
PICTURE_WAIT_S = 90.0


def readme_lines() -> list[str]:
    """The shell lines of the section's ``sh`` blocks, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


@dataclass
class Machine:
    """This machine as the README's reader has it: the paths, the port, the processes."""

    etc: Path
    config: Path
    port: int
    log_dir: Path
    env: dict[str, str]
    background: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def broker_dir(self) -> Path:
        return self.etc / "broker"

    def adapt(self, line: str) -> str:
        """The README line with this machine's paths and port."""
        line = line.replace("sudo ", "").replace(".venv/bin/", f"{Path(sys.executable).parent}/")
        line = line.replace("/etc/feedhub", str(self.etc)).replace("config/hub.toml",
                                                                   str(self.config))
        return line.replace(f"-p {README_PORT} ", f"-p {self.port} ").removesuffix("&").strip()

    def start(self, name: str, line: str) -> None:
        """Run ``line`` in the background, as in a terminal of its own."""
        output = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (the child's)
        self.background[name] = subprocess.Popen(
            ["bash", "-c", f"exec {line}"], cwd=ROOT, env=self.env, stdout=output,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        output.close()

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", line], cwd=ROOT, env=self.env, text=True,
                              capture_output=True, timeout=STEP_TIMEOUT_S, check=False)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """End what the README started: the hub and the simulators first, then the broker."""
        for name, process in self.background.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM if name == "mosquitto" else signal.SIGINT)
        for process in self.background.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    if find_mosquitto() is None or shutil.which("mosquitto_sub") is None:
        pytest.fail("the README needs mosquitto and mosquitto_sub: apt-get install mosquitto "
                    "mosquitto-clients", pytrace=False)
    etc = Path(tempfile.mkdtemp(prefix="feedhub-etc-"))
    etc.chmod(0o755)
    port = free_port()
    shipped = (ROOT / "config" / "hub.toml").read_text()
    assert shipped.count(f"\nport = {README_PORT}\n") == 1, "the README's port is the config's"
    config = tmp_path / "hub.toml"
    config.write_text(shipped.replace(f"\nport = {README_PORT}\n", f"\nport = {port}\n"))
    env = dict(os.environ, TMPDIR=str(tmp_path))  # the hub's pid file stays the test's
    found = Machine(etc, config, port, tmp_path, env)
    try:
        yield found
    finally:
        found.stop()
        shutil.rmtree(etc, ignore_errors=True)


def program(line: str) -> tuple[str, ...]:
    """The program a line runs: ``("hub", SUBCOMMAND)`` or ``(NAME,)``."""
    words = shlex.split(line, comments=True)
    name = Path(words[0]).name
    return (name, words[1]) if name == "hub" else (name,)


def wait_for_broker(machine: Machine) -> None:
    """Mosquitto answers on its port, or the test fails with what it said."""
    deadline = time.monotonic() + 15.0
    process = machine.background["mosquitto"]
    while True:
        assert process.poll() is None, (f"mosquitto exited with {process.returncode}:\n"
                                        f"{machine.log('mosquitto')}\n{broker_log(machine)}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", machine.port)) == 0:
                return
        assert time.monotonic() < deadline, "mosquitto is not listening"
        time.sleep(0.1)


def broker_log(machine: Machine) -> str:
    path = machine.broker_dir / "data" / "mosquitto.log"
    return path.read_text(errors="replace") if path.exists() else ""


def check_step(line: str, done: subprocess.CompletedProcess[str]) -> None:
    """What the README says each finishing command does."""
    said = done.stdout + done.stderr
    if program(line) == ("mosquitto_sub",) and "-u" in shlex.split(line):
        assert done.returncode == 0, said
        assert re.fullmatch(r"cop/ken/picture \d+ bytes\n", done.stdout), said
    elif program(line) == ("mosquitto_sub",):
        assert done.returncode != 0 and "not authorised" in said, said
    else:
        assert done.returncode == 0, said


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]


def mosquitto_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("mosquitto")
    except KeyError:
        return None


def test_the_readme_secured_deployment_works_as_written(machine: Machine) -> None:
    lines = [machine.adapt(line) for line in readme_lines()]
    assert [program(line) for line in lines] == [
        ("hub", "broker-config"), ("mosquitto",), ("hub", "run"), ("hub", "sim"),
        ("mosquitto_sub",), ("mosquitto_sub",)], "the README's steps changed: follow them here"
    for line in lines:
        step = program(line)
        if step in BACKGROUND:
            machine.start(step[-1], line)
            if step == ("mosquitto",):
                wait_for_broker(machine)
            continue
        check_step(line, machine.run(line))
    broker = machine.background["mosquitto"]
    user = mosquitto_user()
    if os.geteuid() == 0 and user is not None:
        assert uid_of(broker.pid) == user.pw_uid, "Mosquitto dropped root and read its files"
    for name, process in machine.background.items():
        assert process.poll() is None, f"{name} stopped:\n{machine.log(name)}"
    assert_tracks_reach_the_partner(machine)
    machine.stop()
    hub = machine.background["run"]
    assert hub.returncode == 0 and "Traceback" not in machine.log("run"), machine.log("run")


def assert_tracks_reach_the_partner(machine: Machine) -> None:
    """Partner ken's pictures carry the simulated targets: units and hub logged in."""
    password = read_credentials(machine.broker_dir / "credentials.toml")["ken"]
    handle = BrokerHandle("mosquitto", "127.0.0.1", machine.port, [], machine.log_dir, False)
    peer = Peer(handle, "5", "ken", username="ken", password=password)
    try:
        peer.subscribe(topics.partner_picture("ken"))
        deadline = time.monotonic() + PICTURE_WAIT_S
        while time.monotonic() < deadline:
            _, payload, _ = peer.take(1, PICTURE_WAIT_S)[0]
            if messages.decode(payload, Picture, 1 << 24).tracks:
                return
        pytest.fail(f"no track in ken's pictures:\n{machine.log('sim')}\n{machine.log('run')}")
    finally:
        peer.close()


def test_run_as_anyone_else_it_prints_the_chown_that_lets_mosquitto_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's other promise: not run as root, the exact command is printed."""
    user = mosquitto_user()
    if os.geteuid() != 0 or user is None:
        pytest.skip("needs root and a mosquitto user to start Mosquitto as root")
    etc = Path(tempfile.mkdtemp(prefix="feedhub-etc-"))
    etc.chmod(0o755)
    try:
        config = registry(broker_server={"persistence": False})
        files = write_broker_config(config, etc / "broker")
        with monkeypatch.context() as pretend:
            pretend.setattr(os, "geteuid", lambda: 1000)
            said = hand_over(files)
        command = said.split("until given them: ", 1)[1].split(" (or start it", 1)[0]
        broker = BrokerHandle("mosquitto", config.broker.host, config.broker.port,
                              [str(find_mosquitto()), "-c", str(files.directory / CONF)],
                              tmp_path, False)
        with pytest.raises(BrokerUnavailable, match="exited with code"):
            broker.start(timeout=5.0)  # as the issue found it: Mosquitto cannot read them
        subprocess.run(["bash", "-c", command.replace("sudo ", "")], check=True)
        broker.start()
        assert broker.pid is not None and uid_of(broker.pid) == user.pw_uid
        broker.stop()
    finally:
        shutil.rmtree(etc, ignore_errors=True)
