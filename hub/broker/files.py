"""``hub broker-config``: a Mosquitto configuration, password file and ACL from the registry.

Writes into one directory:

- ``passwd``: one ``$7$`` PBKDF2-SHA512 hash per identity (see ``passwords``);
- ``acl``: each identity's topic patterns (see ``acl``);
- ``credentials.toml`` (mode 0600): the passwords generated here, kept across runs
  so regenerating never locks out a running unit;
- ``mosquitto.conf``: the configured listener with anonymous access off, a TLS
  listener with client certificates when ``[broker_server.tls]`` asks for it, and
  the bounds of ``hub.broker.limits`` on what each client may cost;
- ``data/``: Mosquitto's persistence, log and pid file.

Mosquitto started as root drops to the ``mosquitto`` user before it reads the
password file and ACL or writes ``data/``: ``hand_over`` gives it those (when run
as root) or says the command that does. ``credentials.toml`` is never given away:
``hub run --credentials`` reads the hub's own password from it.

A password comes from, in order: the hub's ``broker.password_env`` /
``password_file`` (hub identity only), ``[broker_server.passwords.NAME]`` (an
environment variable or a file), ``credentials.toml`` from an earlier run, or a
new random one. Only the last two are stored in ``credentials.toml``. Nothing
here logs a password; callers print the generated ones once.
"""

from __future__ import annotations

import os
import pwd
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from hub.broker.acl import Identity, Role, acl_file, hub_identity, identities
from hub.broker.launcher import DATA, BrokerAuth, mosquitto_config
from hub.broker.limits import broker_limits
from hub.broker.passwords import new_secret, password_file
from hub.config import HubConfig
from hub.errors import ConfigError

CONF = "mosquitto.conf"
PASSWD = "passwd"
ACL = "acl"
CREDENTIALS = "credentials.toml"
PID = "mosquitto.pid"
# The user Debian's and Mosquitto's own packages run the broker as.
BROKER_USER = "mosquitto"


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

    @property
    def data(self) -> Path:
        """Mosquitto's own directory: persistence, log, pid file."""
        return self.directory / DATA

    def broker_reads(self) -> list[Path]:
        """What Mosquitto, once it has dropped root, must read or write."""
        return [self.directory / CONF, self.auth.password_file, self.auth.acl_file, self.data]


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
    write_private(credentials, _credentials_toml(kept))
    write_private(auth.password_file, password_file(passwords))
    write_private(auth.acl_file, acl_file(found))
    return BrokerFiles(directory, auth, credentials, tuple(found), tuple(generated), passwords)


def write_broker_config(config: HubConfig, directory: Path) -> BrokerFiles:
    """Write the auth files, ``data/`` and a ``mosquitto.conf`` for the configured listener(s)."""
    files = write_auth_files(config, directory)
    files.data.mkdir(mode=0o700, exist_ok=True)
    write_private(directory / CONF, broker_conf(config, files))
    return files


def broker_conf(config: HubConfig, files: BrokerFiles) -> str:
    """Return the Mosquitto config: the broker's listener, then the optional TLS listener."""
    server, broker = config.broker_server, config.broker
    limits = broker_limits(config)
    text = mosquitto_config(broker.host, broker.port, files.data, server.persistence,
                            files.auth, limits)
    text += "\n".join(["# `kill -HUP` it to re-read passwd and acl after `hub broker-config`.",
                       f"pid_file {files.data / PID}"]) + "\n"
    tls = server.tls
    if tls is None:
        return text
    lines = [
        "",
        "# Clients authenticate with a certificate signed by cafile; its CN is the user name.",
        f"listener {tls.port} {tls.host or broker.host}",
        *limits.listener_lines(),
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


def hand_over(files: BrokerFiles, user: str = BROKER_USER) -> str:
    """Give Mosquitto what it must read once it has dropped root, or say how; one line to print.

    As root, with ``user`` present: ``broker_reads()`` become ``user``'s, and the
    directory ``root:user`` 0750 so it may enter but not write; ``credentials.toml``
    stays root's. Otherwise the files stay the caller's and the line says the exact
    command that gives them away (or to run Mosquitto as the caller).
    """
    try:
        account: pwd.struct_passwd | None = pwd.getpwnam(user)
    except KeyError:
        account = None
    names = ", ".join(p.name for p in files.broker_reads())
    if os.geteuid() == 0 and account is not None:
        for path in files.broker_reads():
            os.chown(path, account.pw_uid, account.pw_gid)
        os.chown(files.directory, 0, account.pw_gid)
        os.chmod(files.directory, 0o750)
        return (f"gave {names} to user {user} (Mosquitto started as root runs as {user}; "
                f"{files.credentials.name} stays root's){_closed_parent(files.directory)}")
    run_as_me = f"mosquitto -c {shlex.quote(str(files.directory / CONF))}"
    if account is None and os.geteuid() == 0:
        return (f"no user {user} here, so Mosquitto started as root would run as nobody and "
                f"could not read these 0600 files: create it (adduser --system --group "
                f"--no-create-home {user}) and run hub broker-config again")
    if account is None:
        return f"no user {user} here: start Mosquitto as yourself ({run_as_me})"
    paths = " ".join(shlex.quote(str(p)) for p in files.broker_reads())
    directory = shlex.quote(str(files.directory))
    return (f"Mosquitto started as root runs as user {user}, who cannot read these 0600 "
            f"files until given them: sudo chown {user}: {paths} && sudo chgrp {user} "
            f"{directory} && sudo chmod 750 {directory} (or start it as yourself: {run_as_me})")


def _closed_parent(directory: Path) -> str:
    """A warning when a parent of ``directory`` keeps other users (Mosquitto) out."""
    for parent in directory.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            return (f"; but {parent} is closed to other users, so Mosquitto cannot reach "
                    f"its files: chmod o+x {shlex.quote(str(parent))} or choose another -o")
    return ""


def hub_login(config: HubConfig, credentials: Path) -> tuple[HubConfig, str]:
    """The config and password for the hub to log in as itself (``hub run --credentials``).

    The password is the one ``hub broker-config`` hashed: the config's own
    (``broker.password_env``/``password_file``), else the one kept in ``credentials``.
    """
    name = hub_identity(config)
    password = config.broker.password()
    if password is None:
        if not credentials.is_file():
            raise ConfigError(f"{credentials}: no such file (`hub broker-config -o DIR` "
                              f"writes DIR/{CREDENTIALS})")
        stored = read_credentials(credentials)
        if name not in stored:
            raise ConfigError(f"{credentials}: no password for the hub's identity {name!r}; "
                              "run `hub broker-config` with this config")
        password = stored[name]
    return as_hub_identity(config), password


def as_hub_identity(config: HubConfig) -> HubConfig:
    """``config`` with the hub logging in under its broker identity (on a cluster, to NATS too).

    A ``cluster.username`` of its own stays: ``hub broker-config --nats`` refuses one
    that is not the hub's identity.
    """
    name = hub_identity(config)
    broker = msgspec.structs.replace(config.broker, username=name)
    cluster = config.cluster
    if cluster is not None and cluster.username is None:
        cluster = msgspec.structs.replace(cluster, username=name)
    return msgspec.structs.replace(config, broker=broker, cluster=cluster)


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


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only, replacing ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    os.replace(tmp, path)
