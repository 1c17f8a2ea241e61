"""``hub run`` with a console, ``hub sim`` and a canary, on a secured Mosquitto: real processes.

The registry is the secured test registry (secured.py) with its canary sensor,
released to nobody, whose three still targets lie 10 km from the scenario's
area. The hub runs as ``hub run -c FILE`` from a config file written here, so
the console is tested exactly as a user starts it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import numpy as np
import tomli_w
from mqtt_peer import Peer
from secured import CANARIES, CANARY, Secured, registry, start_secured

from hub import topics
from hub.broker.launcher import free_port
from hub.config import HubConfig

HUB = [sys.executable, "-m", "hub.cli"]
CANARY_ENU = np.array([[10_000.0, 10_000.0], [10_300.0, 10_000.0], [10_000.0, 10_400.0]])
IDENTITIES = ("ken", "gha", "nld", "bra", "hub-operator")
PARTNER_IDS = ("ken", "gha", "nld", "bra")


def config_file(config: HubConfig, path: Path) -> Path:
    """Write ``config`` as the TOML a user would (None values left out)."""

    def without_none(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_none(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [without_none(v) for v in value]
        return value

    path.write_text(tomli_w.dumps(without_none(msgspec.to_builtins(config))))
    return path


@dataclass
class WebHub:
    """A running hub with its console, and everything needed to reach and restart it."""

    secured: Secured
    config: HubConfig
    config_path: Path
    directory: Path
    port: int
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    canary_stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def password(self, identity: str) -> str:
        return self.secured.password(identity)

    def start_hub(self) -> None:
        with (self.directory / "hub.log").open("a") as log:
            self.processes["hub"] = subprocess.Popen(
                [*HUB, "run", "-c", str(self.config_path), "--quiet"], stdout=log,
                stderr=subprocess.STDOUT, text=True)
        wait_ready(self.url, self.processes["hub"], self.hub_log)

    def stop_hub(self, kill: bool = False) -> None:
        process = self.processes.pop("hub")
        if kill:
            process.kill()
        else:
            process.terminate()
        process.wait(timeout=30)

    def start_sims(self, speed: float = 1.0, duration: float = 900.0) -> None:
        """``hub sim`` in real time: its timestamps then run with the canary's wall clock."""
        credentials = self.secured.files.credentials
        self.processes["sim"] = subprocess.Popen(
            [*HUB, "sim", "-c", str(self.config_path), "-s", "default", "--speed", str(speed),
             "--duration", str(duration), "--no-progress", "--credentials", str(credentials)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)

    def stop_sims(self) -> None:
        process = self.processes.pop("sim", None)
        if process is not None:
            process.terminate()
            process.wait(timeout=30)

    def hub_log(self) -> str:
        return (self.directory / "hub.log").read_text()

    def close(self) -> None:
        self.canary_stop.set()
        slow = []
        for name, process in list(self.processes.items()):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                slow.append(name)
                process.kill()
                process.wait()
        self.processes.clear()
        self.secured.handle.stop()
        assert not slow, f"{slow} did not stop within 20 s of SIGTERM:\n{self.hub_log()[-3000:]}"


def wait_ready(url: str, process: subprocess.Popen[str], log: Callable[[], str],
               timeout: float = 30.0) -> None:
    """Wait until the console answers ``/livez``; fail with the log if the hub exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"hub run exited {process.returncode}:\n{log()}")
        try:
            with urllib.request.urlopen(f"{url}/livez", timeout=1.0) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the console at {url} did not come up")
        time.sleep(0.1)


def canary_loop(hub: WebHub) -> None:
    """The canary radar reports its three targets twice a second until told to stop."""
    frame = hub.config.mission.origin.frame()
    lat, lon, _ = frame.to_geodetic(CANARY_ENU[:, 0], CANARY_ENU[:, 1])
    peer = Peer(hub.secured.handle, "5", CANARY, CANARY, hub.password(CANARY))
    seq = 0
    try:
        while not hub.canary_stop.wait(0.5):
            payload = msgpack.packb({"ts": time.time(), "seq": seq, "detections": [
                {"kind": "geo", "lat": float(a), "lon": float(b), "sigma": 5.0, "cls": "vehicle"}
                for a, b in zip(lat, lon, strict=True)]})
            with contextlib.suppress(RuntimeError):  # the broker is down for a test: go on
                peer.publish(topics.sensor(CANARY, "detections"), payload)
            seq += 1
    finally:
        peer.close()


@contextlib.contextmanager
def web_hub(directory: Path, *, tak: dict[str, Any] | None = None,
            units: tuple[dict[str, Any], ...] = (), **web: Any) -> Iterator[WebHub]:
    """Start Mosquitto, ``hub run`` with a console (and ``tak``), ``hub sim`` and the canary.

    ``units`` are registered besides the scenario's sensors and the canaries (TAK devices).
    """
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    base = registry(*CANARIES, *units, broker_server={"persistence": False})
    secured = start_secured(base, directory / "broker")
    password_file = directory / "hub.password"
    password_file.write_text(secured.password("hub"))
    password_file.chmod(0o600)
    config = msgspec.convert({
        **msgspec.to_builtins(base),
        "broker": {**msgspec.to_builtins(base.broker), "username": "hub",
                   "password_file": str(password_file), "keepalive": 10},
        "publish": {"interval_s": 0.5, "full_every_s": 2.0, "status_every_s": 1.0},
        "web": {"host": "127.0.0.1", "port": port,
                "passwd_file": str(secured.files.auth.password_file),
                "session_secret_file": str(directory / "session.key"), **web},
        **({} if tak is None else {"tak": tak}),
    }, HubConfig)
    hub = WebHub(secured, config, config_file(config, directory / "hub.toml"), directory, port)
    try:
        hub.start_hub()
        hub.start_sims()
        threading.Thread(target=canary_loop, args=(hub,), daemon=True).start()
        yield hub
    finally:
        hub.close()
