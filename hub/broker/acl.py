"""Broker identities from the registry and the Mosquitto ACL that confines each one.

Every identity gets only the patterns below; Mosquitto denies anything no
pattern allows, so "nobody else reads ``sensors/#``" needs no rule of its own:

| identity            | may read              | may write                |
|---------------------|-----------------------|--------------------------|
| the hub             | ``sensors/#``, ``hub/#``, ``sim/truth`` | ``cop/#``, ``hub/#`` |
| sensor X            | nothing               | ``sensors/X/#``          |
| partner P           | ``cop/P/#``           | nothing                  |
| the simulator truth | nothing               | ``sim/truth``            |
| the recorder        | ``sensors/#``, ``sim/truth`` | nothing           |
| the monitor         | ``hub/#``             | nothing                  |
| the operator        | ``hub/#``             | nothing                  |

The broker takes each user name as the client id (``use_username_as_clientid``), so
every process needs its own identity: ``hub record`` logs in as the recorder, a
dashboard as the monitor, and neither can disconnect the hub. The operator's broker
rights are the monitor's; its password is what matters: it logs in to the web console
and sees the mission picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hub import topics
from hub.config import HubConfig
from hub.errors import ConfigError

Access = Literal["read", "write", "readwrite"]
Role = Literal["hub", "sensor", "partner", "truth", "recorder", "monitor", "operator"]
DEFAULT_HUB_IDENTITY = "hub"


@dataclass(frozen=True, slots=True)
class Rule:
    """One ACL line: ``topic ACCESS FILTER``."""

    access: Access
    topic: str


@dataclass(frozen=True, slots=True)
class Identity:
    """A broker user name, what it is, and the topics it may touch."""

    name: str
    role: Role
    rules: tuple[Rule, ...]


def hub_identity(config: HubConfig) -> str:
    """The hub's own broker user: ``broker.username``, else ``hub``."""
    return config.broker.username or DEFAULT_HUB_IDENTITY


def identities(config: HubConfig) -> list[Identity]:
    """Every identity of the registry with its rules; ConfigError if two share a name."""
    found = [Identity(hub_identity(config), "hub", (
        Rule("read", topics.SENSORS_TREE), Rule("read", topics.TRUTH),
        Rule("write", topics.COP_TREE), Rule("readwrite", topics.HUB_TREE)))]
    found += [Identity(s.id, "sensor", (Rule("write", topics.sensor_all(s.id)),))
              for s in config.sensors]
    found += [Identity(p.id, "partner", (Rule("read", topics.partner_all(p.id)),))
              for p in config.partners]
    server = config.broker_server
    found += [Identity(server.truth_identity, "truth", (Rule("write", topics.TRUTH),)),
              Identity(server.recorder_identity, "recorder",
                       (Rule("read", topics.SENSORS_TREE), Rule("read", topics.TRUTH))),
              Identity(server.monitor_identity, "monitor", (Rule("read", topics.HUB_TREE),)),
              Identity(server.operator_identity, "operator", (Rule("read", topics.HUB_TREE),))]
    seen: dict[str, Role] = {}
    for identity in found:
        topics.check_id(identity.name, f"{identity.role} identity")
        if identity.name in seen:
            raise ConfigError(f"broker identity {identity.name!r} is both a "
                              f"{seen[identity.name]} and a {identity.role}: rename one")
        seen[identity.name] = identity.role
    return found


def acl_file(found: list[Identity]) -> str:
    """Return a Mosquitto ACL file granting each identity its rules and nothing else."""
    lines = ["# Written by `hub broker-config` from the registry; edits are overwritten.",
             "# No rule before the first `user` line: anonymous clients get nothing."]
    for identity in found:
        lines += ["", f"# {identity.role}", f"user {identity.name}"]
        lines += [f"topic {rule.access} {rule.topic}" for rule in identity.rules]
    return "\n".join(lines) + "\n"
