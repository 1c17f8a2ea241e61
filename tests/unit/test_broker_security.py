"""hub.security: password hashes, ACL lines and credentials written by ``hub broker-config``."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import msgspec
import pytest

from hub.broker.acl import acl_file, identities
from hub.broker.files import (
    CONF,
    as_hub_identity,
    describe_generated,
    hand_over,
    hub_login,
    read_credentials,
    write_auth_files,
    write_broker_config,
)
from hub.broker.limits import broker_limits, inflight_window
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
    assert [line for line in tls[1:] if not line.startswith("#")] == [
        f"max_connections {2 * len(files.identities) + 16}",
        "cafile /etc/ca.pem", "certfile /etc/s.pem", "keyfile /etc/s.key",
        "tls_version tlsv1.2", "require_certificate true",
        "use_identity_as_username true", "use_username_as_clientid true"]
    assert "persistence false" in conf


BOUNDS = ("max_packet_size", "max_inflight_messages", "max_inflight_bytes",
          "max_queued_messages", "max_queued_bytes", "persistent_client_expiration",
          "max_keepalive", "max_connections")


def test_conf_bounds_every_client_and_says_why(config: HubConfig, tmp_path: Path) -> None:
    files = write_broker_config(config, tmp_path / "bounded")
    conf = (files.directory / CONF).read_text().splitlines()
    settings = dict(line.split(" ", 1) for line in conf if line and not line.startswith("#"))
    limits = broker_limits(config)
    assert {key: settings[key] for key in BOUNDS} == {
        "max_packet_size": str(config.ingest.max_frame_bytes + 64 * 1024),
        "max_inflight_messages": "1000",  # 2,000 msg/s x the 0.5 s reorder window
        "max_inflight_bytes": str(limits.max_packet_size),
        "max_queued_messages": "10000",
        "max_queued_bytes": "40960000",
        "persistent_client_expiration": "1h",
        "max_keepalive": "300",
        "max_connections": str(2 * len(files.identities) + 16)}
    for key in BOUNDS:
        at = next(i for i, line in enumerate(conf) if line.startswith(f"{key} "))
        above = next(line for line in reversed(conf[:at]) if not line.startswith("max_"))
        assert above.startswith("# "), f"{key} comes without its reason"
    under_listener = next(line for line in conf[1:] if not line.startswith("#"))
    assert under_listener.startswith("max_connections "), "a listener's own setting"
    assert f"persistence_location {files.data}/" in conf and files.data.is_dir()
    assert f"pid_file {files.data / 'mosquitto.pid'}" in conf


@pytest.mark.parametrize(("window_s", "inflight"), [(0.5, 1000), (0.0, 200), (2.0, 4000),
                                                    (1e6, 65_535)])
def test_the_inflight_window_carries_the_design_rate_at_the_reorder_window(
        window_s: float, inflight: int) -> None:
    assert inflight_window(window_s) == inflight


def test_a_longer_hub_keepalive_raises_max_keepalive(config: HubConfig) -> None:
    slow = msgspec.structs.replace(config, broker=msgspec.structs.replace(
        config.broker, keepalive=900))
    assert broker_limits(slow).max_keepalive_s == 900


def test_the_hub_logs_in_with_its_kept_password(config: HubConfig, tmp_path: Path) -> None:
    files = write_auth_files(config, tmp_path / "auth")
    login, password = hub_login(config, files.credentials)
    assert config.broker.username is None
    assert login.broker.username == "hub" and password == files.password("hub")
    assert as_hub_identity(config) == login


def test_the_hub_logs_in_with_its_configured_password_first(
        config: HubConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PW", "hub-env")
    data = msgspec.to_builtins(config)
    data["broker"].update(password_env="HUB_PW", username="fusion")
    own = parse_config(data)
    files = write_auth_files(own, tmp_path / "auth")
    login, password = hub_login(own, files.credentials)
    assert (login.broker.username, password) == ("fusion", "hub-env")


def test_a_hub_login_without_its_password_names_the_file(config: HubConfig,
                                                          tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "credentials.toml"
    with pytest.raises(ConfigError, match=f"{missing}: no such file"):
        hub_login(config, missing)
    other = tmp_path / "credentials.toml"
    other.write_text('[passwords]\n"ken" = "x"\n')
    with pytest.raises(ConfigError, match="no password for the hub's identity 'hub'"):
        hub_login(config, other)


def test_without_the_brokers_user_the_files_stay_and_the_line_says_why(
        config: HubConfig, tmp_path: Path) -> None:
    files = write_broker_config(config, tmp_path / "nobody")
    owner = files.auth.password_file.stat().st_uid
    said = hand_over(files, user="no-such-broker-user")
    assert said.startswith("no user no-such-broker-user here")
    assert files.auth.password_file.stat().st_uid == owner == os.geteuid()
    assert mode(files.directory) == 0o700
