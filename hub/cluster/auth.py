"""NATS users and permissions from the broker identities: the cluster's ``authorization``.

``hub broker-config --nats`` writes ``nats-auth.conf`` (mode 0600) next to the
files of ``hub.broker.files``, from the same identities (``hub.broker.acl``) and
the same passwords (``credentials.toml``): every node's config includes it. Each
identity's MQTT topic patterns become subject permissions
(``hub.cluster.subjects``), and anything not allowed is denied. What nats-server
2.9.10 does with them, checked by tests/integration/test_nats_auth.py:

- a refused login gets CONNACK "not authorized"; a denied publish is still
  acknowledged (PUBACK) but dropped, and logged as a "Publish Violation"; a denied
  subscription gets a failure code in the SUBACK; the connection stays open;
- a QoS 1 subscription is a JetStream consumer delivering to ``$MQTT.sub.<id>``, so
  every reader needs ``$MQTT.sub.>``. A NATS client with that permission would read
  every MQTT session's deliveries (other partners' pictures); an MQTT client cannot
  subscribe to ``$MQTT/...``. So every identity but the hub may connect only
  through MQTT (``allowed_connection_types``);
- the cluster's own subjects (``cluster.prefix``, ``hub`` by default) share the
  ``hub/#`` tree the monitor reads: they are denied to everyone but the hub, or a
  monitor subscribed to ``hub/#`` would read every validated item (and anyone
  allowed to write there could forge one).

Passwords are bcrypt ``$2a$`` hashes (nats-server takes those, or plain text,
which it warns about); nothing here logs one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hub.broker.acl import Identity, hub_identity
from hub.broker.files import BrokerFiles, write_private
from hub.cluster.names import Names
from hub.cluster.subjects import mqtt_filter_to_subjects
from hub.config import HubConfig
from hub.errors import ConfigError

AUTH_CONF = "nats-auth.conf"
BCRYPT_COST = 11
"""nats CLI's default: 0.15-0.2 s of a node's CPU per login on this machine."""
MQTT_DELIVERIES = "$MQTT.sub.>"
MQTT_ONLY = ("MQTT",)
HUB_CONNECTIONS = ("STANDARD", "MQTT")


@dataclass(frozen=True, slots=True)
class Permissions:
    """One NATS user's subjects: what it may publish and subscribe to, and never."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny: tuple[str, ...]
    connections: tuple[str, ...]


def permissions(identity: Identity, names: Names) -> Permissions:
    """``identity``'s ACL rules as NATS permissions; the hub's also cover the workers."""
    publish = _subjects(identity, ("write", "readwrite"))
    subscribe = _subjects(identity, ("read", "readwrite"))
    if subscribe:
        subscribe.append(MQTT_DELIVERIES)
    if identity.role != "hub":
        return Permissions(_once(publish), _once(subscribe), names.internal, MQTT_ONLY)
    # What the workers use over NATS itself: JetStream's API, acks and flow control (an
    # ordered consumer answers it, or stalls), the lease bucket, the checkpoint store,
    # the cluster's subjects, and replies.
    workers = [f"{names.prefix}.>", "_INBOX.>"]
    publish += ["$JS.API.>", "$JS.ACK.>", "$JS.FC.>", f"$KV.{names.leases}.>",
                f"$O.{names.checkpoints}.>", *workers]
    subscribe += workers
    return Permissions(_once(publish), _once(subscribe), (), HUB_CONNECTIONS)


def nats_hash(password: str, cost: int = BCRYPT_COST) -> str:
    """A bcrypt ``$2a$`` hash of ``password``, the form nats-server checks."""
    import bcrypt  # only `hub broker-config --nats` and the cluster demo need it

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost, prefix=b"2a")).decode()


def authorization(files: BrokerFiles, names: Names, cost: int = BCRYPT_COST) -> str:
    """Return nats-server's ``authorization`` block: every identity, its hash and permissions."""
    lines = ["# Written by `hub broker-config --nats` from the registry; edits are overwritten.",
             "# Include it in every node's config; anything not allowed below is denied.",
             "authorization {", "  users = ["]
    for identity in files.identities:
        lines += _user(identity, nats_hash(files.password(identity.name), cost),
                       permissions(identity, names))
    return "\n".join([*lines, "  ]", "}"]) + "\n"


def write_nats_auth(files: BrokerFiles, names: Names, cost: int = BCRYPT_COST) -> Path:
    """Write ``nats-auth.conf`` (0600) into the directory of ``files``; return its path."""
    path = files.directory / AUTH_CONF
    write_private(path, authorization(files, names, cost))
    return path


def cluster_names(config: HubConfig) -> Names:
    """The names of ``config``'s cluster; ConfigError if it has none or a user not the hub."""
    cluster = config.cluster
    if cluster is None:
        raise ConfigError("$.cluster: --nats needs a [cluster] section (its prefix names "
                          "the hub's streams and subjects)")
    hub = hub_identity(config)
    if cluster.username not in (None, hub):
        raise ConfigError(f"$.cluster.username: {cluster.username!r} is not the hub's identity "
                          f"{hub!r}; the workers log in to NATS and to its MQTT as that one user")
    return Names.of(cluster)


def _once(subjects: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(subjects))


def _subjects(identity: Identity, accesses: tuple[str, ...]) -> list[str]:
    return [subject for rule in identity.rules if rule.access in accesses
            for subject in mqtt_filter_to_subjects(rule.topic)]


def _user(identity: Identity, hashed: str, allowed: Permissions) -> list[str]:
    return [
        f"    # {identity.role}",
        f'    {{user: "{identity.name}", password: "{hashed}",',
        f"     allowed_connection_types: {_list(allowed.connections)},",
        "     permissions: {",
        f"       publish: {_rule(allowed.publish, allowed.deny)},",
        f"       subscribe: {_rule(allowed.subscribe, allowed.deny)}",
        "     }}",
    ]


def _rule(allow: tuple[str, ...], deny: tuple[str, ...]) -> str:
    # No allow list would allow everything: an identity that may do nothing is denied ">".
    if not allow:
        return '{deny: [">"]}'
    if not deny:
        return f"{{allow: {_list(allow)}}}"
    return f"{{allow: {_list(allow)}, deny: {_list(deny)}}}"


def _list(items: tuple[str, ...]) -> str:
    # Ids match [A-Za-z0-9_.-] and the rest is ours: quoting is enough.
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"
