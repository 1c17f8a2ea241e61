"""Mosquitto running the files of ``hub broker-config`` for a test registry, and TLS material.

Test registries are built here, not read from config/hub.toml, so a sensor added to
the default registry changes no test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hub.broker.files import CONF, BrokerFiles, write_broker_config
from hub.broker.launcher import BrokerHandle, find_mosquitto, free_port, mosquitto_handle
from hub.config import Broker, ClientTls, HubConfig, parse_config

PARTNERS = [{"id": "ken", "name": "Kenya", "nation": "KEN"},
            {"id": "gha", "name": "Ghana", "nation": "GHA"},
            {"id": "nld", "name": "Netherlands", "nation": "NLD"},
            {"id": "bra", "name": "Brazil", "nation": "BRA"}]
# The units of config/scenarios/default.toml and what they release to whom.
SENSORS = [{"id": "ken-radar-1", "nation": "KEN", "kind": "radar",
            "release_to": ["ken", "gha", "nld", "bra"]},
           {"id": "gha-radar-1", "nation": "GHA", "kind": "radar", "release_to": ["gha", "ken"]},
           {"id": "nld-uav-1", "nation": "NLD", "kind": "uav",
            "release_to": ["nld", "ken", "gha", "bra"]},
           {"id": "bra-uav-1", "nation": "BRA", "kind": "uav", "release_to": ["bra"]},
           {"id": "ken-uav-2", "nation": "KEN", "kind": "uav",
            "release_to": ["ken", "gha", "nld", "bra"]}]
# Released to nobody: only the mission picture may ever hold their data.
CANARY = "canary-1"
# A registered unit that no simulator runs: the "compromised sensor" of the tests.
ROGUE = "ken-radar-9"
CANARIES = [{"id": CANARY, "nation": "ZZZ", "kind": "radar", "release_to": []},
            {"id": ROGUE, "nation": "KEN", "kind": "radar", "release_to": ["ken"]}]
ORIGIN = {"lat": -1.2921, "lon": 36.8219, "alt": 1650.0}


def registry(*extra_sensors: dict[str, Any], **sections: Any) -> HubConfig:
    """The default scenario's registry, plus ``extra_sensors`` and config ``sections``."""
    port = free_port()
    data: dict[str, Any] = {"mission": {"name": "test", "origin": ORIGIN},
                            "broker": {"host": "127.0.0.1", "port": port},
                            "partners": PARTNERS, "sensors": [*SENSORS, *extra_sensors],
                            **sections}
    return parse_config(data)


@dataclass
class Secured:
    """A Mosquitto enforcing a registry's generated config, and how to log in to it."""

    handle: BrokerHandle
    config: HubConfig
    files: BrokerFiles

    def password(self, identity: str) -> str:
        """The generated password of ``identity``."""
        return self.files.password(identity)

    def hub_config(self, protocol: str, **broker: Any) -> HubConfig:
        """The registry with the hub logging in as itself over ``protocol``."""
        settings = msgspec.structs.replace(self.config.broker, protocol=protocol,
                                           username="hub", keepalive=10, **broker)
        return msgspec.structs.replace(self.config, broker=settings)

    def broker(self, protocol: str, identity: str, **fields: Any) -> Broker:
        """Bus settings logging in as ``identity`` (client id = identity)."""
        return Broker(host=self.handle.host, port=self.handle.port,
                      protocol=protocol, client_id=identity,  # type: ignore[arg-type]
                      username=identity, keepalive=10, **fields)


def start_secured(config: HubConfig, directory: Path) -> Secured:
    """Run ``hub broker-config`` for ``config`` into ``directory`` and start its Mosquitto."""
    binary = find_mosquitto()
    if binary is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto", pytrace=False)
    files = write_broker_config(config, directory)
    text = (directory / CONF).read_text()
    handle = mosquitto_handle(binary, text, config.broker.host, config.broker.port, directory)
    handle.start()
    return Secured(handle, config, files)


def client_tls(directory: Path) -> ClientTls:
    """Client TLS settings whose certificate paths hold ``{id}``."""
    return ClientTls(cafile=str(directory / "ca.pem"), certfile=str(directory / "{id}.pem"),
                     keyfile=str(directory / "{id}.key"))
