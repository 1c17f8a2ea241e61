"""hub.security: password hashes, ACL lines and credentials written by ``hub broker-config``."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import msgspec
import pytest

from hub.broker.acl import acl_file, identities
from hub.broker.files import (
    CONF,
    describe_generated,
    read_credentials,
    write_auth_files,
    write_broker_config,
)
from hub.broker.passwords import hash_password, parse_password_file, verify_password
from hub.config import DEFAULT_CONFIG, HubConfig, load_config, parse_config
from hub.errors import ConfigError

ORIGIN = {"origin": {"lat": 1.0, "lon": 2.0}}


def independent_check(password: str, encoded: str) -> bool:
    """PBKDF2-HMAC-SHA512 as Mosquitto 2.0 checks a ``$7$`` line, written out by hand."""
    _, version, iterations, salt, key = encoded.split("$")
    assert version == "7" and iterations == "101"
    salt_bytes, key_bytes = base64.b64decode(salt), base64.b64decode(key)
    assert (len(salt_bytes), len(key_bytes)) == (12, 64)
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt_bytes, 101) == key_bytes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def config() -> HubConfig:
    return load_config(DEFAULT_CONFIG)


def test_hash_matches_an_independent_pbkdf2_and_rejects_other_passwords() -> None:
    encoded = hash_password("s3cret")
    assert independent_check("s3cret", encoded)
    assert not independent_check("s3creT", encoded)
    assert verify_password("s3cret", encoded) and not verify_password("s3cret ", encoded)
    assert hash_password("s3cret") != encoded, "every hash has its own salt"


def test_verify_accepts_a_line_mosquitto_passwd_wrote() -> None:
    # `mosquitto_passwd -b FILE alice secret` (Mosquitto 2.0.11)
    line = ("alice:$7$101$ZEVRG0sHDeXJU0m6$7dyXQ7vb+khgRHoT8OGtPWsrgt+OK+HF3OpZqaPZtdh2Mnzf"
            "iXEkyEPTvie5XDxDoirui3nKRZALpaVT8Y5DEQ==")
    encoded = parse_password_file(line)["alice"]
    assert verify_password("secret", encoded) and not verify_password("Secret", encoded)


def test_acl_confines_every_identity(config: HubConfig) -> None:
    text = acl_file(identities(config))
    blocks: dict[str, list[str]] = {}
    for chunk in text.split("\n\n")[1:]:
        lines = [line for line in chunk.splitlines() if not line.startswith("#")]
        blocks[lines[0].removeprefix("user ")] = lines[1:]
    assert not any(line.startswith("topic") for line in text.split("\n\n")[0].splitlines())
    assert blocks["hub"] == ["topic read sensors/#", "topic read sim/truth", "topic write cop/#",
                             "topic readwrite hub/#"]
    for sensor in config.sensors:
        assert blocks[sensor.id] == [f"topic write sensors/{sensor.id}/#"]
    for partner in config.partners:
        assert blocks[partner.id] == [f"topic read cop/{partner.id}/#"]
    assert blocks["sim-truth"] == ["topic write sim/truth"]
    assert blocks["hub-recorder"] == ["topic read sensors/#", "topic read sim/truth"]
    assert blocks["hub-monitor"] == ["topic read hub/#"]
    assert blocks["hub-operator"] == ["topic read hub/#"]  # the console's identity
    assert len(blocks) == 5 + len(config.sensors) + len(config.partners)
    readers = [user for user, lines in blocks.items()
               if any(ln.startswith(("topic read sensors", "topic readwrite sensors"))
                      for ln in lines)]
    assert readers == ["hub", "hub-recorder"]
    writers = [user for user, lines in blocks.items()
               if any(ln.startswith("topic write") or ln.startswith("topic readwrite")
                      for ln in lines) and user in ("hub-recorder", "hub-monitor", "hub-operator")]
    assert writers == [], "the recorder, the monitor and the operator only read"


def test_passwd_holds_every_identity_and_credentials_are_private_and_kept(
        config: HubConfig, tmp_path: Path) -> None:
    files = write_auth_files(config, tmp_path / "auth")
    names = [i.name for i in files.identities]
    assert files.generated == tuple(names)
    hashes = parse_password_file(files.auth.password_file.read_text())
    assert sorted(hashes) == sorted(names)
    assert all(independent_check(files.password(n), hashes[n]) for n in names)
    for path in (files.credentials, files.auth.password_file, files.auth.acl_file):
        assert mode(path) == 0o600, path
    assert mode(tmp_path / "auth") == 0o700
    assert read_credentials(files.credentials) == files.passwords
    again = write_auth_files(config, tmp_path / "auth")
    assert again.generated == () and again.passwords == files.passwords
    assert "unchanged" in describe_generated(again)
    shown = describe_generated(files, roles=("partner",))
    assert all(files.password(p.id) in shown for p in config.partners)
    assert files.password("hub") not in shown
    assert files.password("hub") not in repr(files)


def test_secrets_from_the_environment_are_hashed_not_stored(
        config: HubConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEN_PW", "from-env")
    monkeypatch.setenv("HUB_PW", "hub-env")
    (tmp_path / "gha.pw").write_text("from-file\n")
    data = msgspec.to_builtins(config)
    data["broker"]["password_env"] = "HUB_PW"
    data["broker_server"] = {"passwords": {"ken": {"env": "KEN_PW"},
                                           "gha": {"file": str(tmp_path / "gha.pw")}}}
    files = write_auth_files(parse_config(data), tmp_path / "auth")
    hashes = parse_password_file(files.auth.password_file.read_text())
    assert independent_check("from-env", hashes["ken"])
    assert independent_check("from-file", hashes["gha"])
    assert independent_check("hub-env", hashes["hub"])
    stored = read_credentials(files.credentials)
    assert not {"ken", "gha", "hub"} & set(stored) and "nld" in stored
    assert "from-env" not in files.credentials.read_text()


@pytest.mark.parametrize(("server", "expected"), [
    ({"passwords": {"nobody": {"env": "X"}}}, "unknown identities ['nobody']"),
    ({"passwords": {"ken": {}}}, "$.broker_server.passwords.ken: give exactly one"),
    ({"passwords": {"ken": {"env": "HUB_TEST_UNSET_VARIABLE"}}}, "is not set"),
    ({"tls": {"cafile": "ca"}}, "$.broker_server.tls"),
    ({"colour": "red"}, "unknown field `colour`"),
])
def test_bad_broker_server_settings_are_refused(tmp_path: Path, server: dict[str, object],
                                                expected: str) -> None:
    data = {"mission": ORIGIN, "partners": [{"id": "ken", "name": "Kenya"}],
            "broker_server": server}
    with pytest.raises(ConfigError) as info:
        write_auth_files(parse_config(data), tmp_path)
    assert expected in str(info.value)


def test_an_id_shared_by_a_sensor_and_a_partner_is_refused() -> None:
    config = parse_config({"mission": ORIGIN, "partners": [{"id": "ken", "name": "K"}],
                           "sensors": [{"id": "ken", "nation": "KEN", "kind": "radar"}]})
    with pytest.raises(ConfigError, match="'ken' is both a sensor and a partner"):
        identities(config)


def test_conf_has_auth_on_and_an_optional_tls_listener(config: HubConfig,
                                                       tmp_path: Path) -> None:
    files = write_broker_config(config, tmp_path / "plain")
    conf = (files.directory / CONF).read_text().splitlines()
    assert conf[0] == f"listener {config.broker.port} {config.broker.host}"
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf
    assert f"password_file {files.auth.password_file}" in conf
    assert f"acl_file {files.auth.acl_file}" in conf
    assert {"set_tcp_nodelay true", "persistence true"} <= set(conf)
    # No identity can take over another's connection; no packet beyond a frame's size.
    assert "use_username_as_clientid true" in conf
    assert f"max_packet_size {config.ingest.max_frame_bytes + 64 * 1024}" in conf
    assert not any(line.startswith("cafile") for line in conf)
    data = msgspec.to_builtins(config)
    data["broker_server"] = {"persistence": False, "tls": {
        "port": 8884, "cafile": "/etc/ca.pem", "certfile": "/etc/s.pem", "keyfile": "/etc/s.key"}}
    files = write_broker_config(parse_config(data), tmp_path / "tls")
    conf = (files.directory / CONF).read_text().splitlines()
    tls = conf[conf.index(f"listener 8884 {config.broker.host}"):]
    assert tls[1:] == ["cafile /etc/ca.pem", "certfile /etc/s.pem", "keyfile /etc/s.key",
                       "tls_version tlsv1.2", "require_certificate true",
                       "use_identity_as_username true", "use_username_as_clientid true"]
    assert "persistence false" in conf
