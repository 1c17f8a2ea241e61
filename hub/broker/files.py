"""``hub broker-config``: a Mosquitto configuration, password file and ACL from the registry.

Writes into one directory:

- ``passwd``: one ``$7$`` PBKDF2-SHA512 hash per identity (see ``passwords``);
- ``acl``: each identity's topic patterns (see ``acl``);
- ``credentials.toml`` (mode 0600): the passwords generated here, kept across runs
  so regenerating never locks out a running unit;
- ``mosquitto.conf``: the configured listener with anonymous access off, and a
  TLS listener with client certificates when ``[broker_server.tls]`` asks for it.

A password comes from, in order: the hub's ``broker.password_env`` /
``password_file`` (hub identity only), ``[broker_server.passwords.NAME]`` (an
environment variable or a file), ``credentials.toml`` from an earlier run, or a
new random one. Only the last two are stored in ``credentials.toml``. Nothing
here logs a password; callers print the generated ones once.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hub.broker.acl import Identity, Role, acl_file, hub_identity, identities
from hub.broker.launcher import BrokerAuth, mosquitto_config
from hub.broker.passwords import new_secret, password_file
from hub.config import HubConfig
from hub.errors import ConfigError

CONF = "mosquitto.conf"
PASSWD = "passwd"
ACL = "acl"
CREDENTIALS = "credentials.toml"
# Room above the largest payload for the fixed header, a topic and MQTT 5 properties.
PACKET_OVERHEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """What was written, and every identity's password (never shown by ``repr``)."""

    directory: Path
    auth: BrokerAuth
    credentials: Path
    identities: tuple[Identity, ...]
    generated: tuple[str, ...]
    passwords: dict[str, str] = field(repr=False)

    def password(self, name: str) -> str:
        """The password of identity ``name``."""
        return self.passwords[name]

    def names(self, role: Role) -> list[str]:
        """The identities of one role, in registry order."""
        return [i.name for i in self.identities if i.role == role]


def read_credentials(path: Path) -> dict[str, str]:
    """Map identity to password from a ``credentials.toml``; empty if there is none."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read credentials: {exc}") from exc
    table = data.get("passwords", {})
    if not isinstance(table, dict) or not all(
            isinstance(v, str) for v in table.values()):
        raise ConfigError(f"{path}: [passwords] must map identities to strings")
    return dict(table)


def write_auth_files(config: HubConfig, directory: Path) -> BrokerFiles:
    """Write ``passwd``, ``acl`` and ``credentials.toml`` into ``directory``."""
    found = identities(config)
    unknown = set(config.broker_server.passwords) - {i.name for i in found}
    if unknown:
        raise ConfigError(f"$.broker_server.passwords: unknown identities {sorted(unknown)}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials = directory / CREDENTIALS
    stored = read_credentials(credentials)
    passwords: dict[str, str] = {}
    kept: dict[str, str] = {}
    generated: list[str] = []
    for identity in found:
        given = _configured_secret(config, identity.name)
        if given is not None:
            passwords[identity.name] = given
            continue
        if identity.name not in stored:
            stored[identity.name] = new_secret()
            generated.append(identity.name)
        passwords[identity.name] = kept[identity.name] = stored[identity.name]
    auth = BrokerAuth(directory / PASSWD, directory / ACL)
    _write_private(credentials, _credentials_toml(kept))
    _write_private(auth.password_file, password_file(passwords))
    _write_private(auth.acl_file, acl_file(found))
    return BrokerFiles(directory, auth, credentials, tuple(found), tuple(generated), passwords)


def write_broker_config(config: HubConfig, directory: Path) -> BrokerFiles:
    """Write the auth files and a ``mosquitto.conf`` for the configured listener(s)."""
    files = write_auth_files(config, directory)
    _write_private(directory / CONF, broker_conf(config, files))
    return files


def max_packet_size(config: HubConfig) -> int:
    """The broker's packet limit: the largest payload the hub accepts, plus headers."""
    ingest = config.ingest
    return max(ingest.max_frame_bytes, ingest.max_payload_bytes) + PACKET_OVERHEAD


def broker_conf(config: HubConfig, files: BrokerFiles) -> str:
    """Return the Mosquitto config: the broker's listener, then the optional TLS listener."""
    server, broker = config.broker_server, config.broker
    text = mosquitto_config(broker.host, broker.port, files.directory, server.persistence,
                            files.auth, max_packet_size(config))
    tls = server.tls
    if tls is None:
        return text
    lines = [
        "",
        "# Clients authenticate with a certificate signed by cafile; its CN is the user name.",
        f"listener {tls.port} {tls.host or broker.host}",
        f"cafile {tls.cafile}",
        f"certfile {tls.certfile}",
        f"keyfile {tls.keyfile}",
        f"tls_version {tls.tls_version}",
        "require_certificate true",
        f"use_identity_as_username {'true' if tls.use_identity_as_username else 'false'}",
        "use_username_as_clientid true",
    ]
    return text + "\n".join(lines) + "\n"


def describe_generated(files: BrokerFiles, roles: tuple[Role, ...] | None = None) -> str:
    """The passwords generated in this run (of ``roles``), to print once, never to log."""
    shown = [i for i in files.identities
             if i.name in files.generated and (roles is None or i.role in roles)]
    if not shown:
        return f"broker credentials unchanged: {files.credentials} (mode 0600)"
    width = max(len(i.name) for i in shown)
    rows = [f"  {i.name:<{width}}  {i.role:<7}  {files.password(i.name)}" for i in shown]
    return "\n".join([f"new broker credentials (shown once; kept in {files.credentials}, "
                      "mode 0600):", *rows])


def _configured_secret(config: HubConfig, name: str) -> str | None:
    if name == hub_identity(config):
        own = config.broker.password()
        if own is not None:
            return own
    source = config.broker_server.passwords.get(name)
    return None if source is None else source.read(f"$.broker_server.passwords.{name}")


def _credentials_toml(passwords: dict[str, str]) -> str:
    lines = ["# Broker passwords generated by `hub broker-config`. Keep private (mode 0600).",
             "[passwords]"]
    # Names match [A-Za-z0-9_.-] and secrets are URL-safe base64: quoting is enough.
    lines += [f'"{name}" = "{secret}"' for name, secret in passwords.items()]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only, replacing ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    os.replace(tmp, path)
