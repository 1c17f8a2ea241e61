from pathlib import Path

import pytest

from hub.config import DEFAULT_CONFIG, config_toml, load_config, parse_config
from hub.errors import ConfigError

ORIGIN = {"origin": {"lat": 1.0, "lon": 2.0}}


def test_default_config_is_valid() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert {s.nation for s in config.sensors} == {"KEN", "GHA", "NLD", "BRA"}
    assert config.sensors[2].is_platform and not config.sensors[0].is_platform


@pytest.mark.parametrize(("data", "expected"), [
    ({"mission": ORIGIN, "fusion": {"gate": 3}}, "$.fusion: Object contains unknown field `gate`"),
    ({"mission": {"origin": {"lat": 91, "lon": 0}}}, "$.mission.origin.lat"),
    ({"mission": ORIGIN, "broker": {"protocol": "4"}}, "$.broker.protocol"),
    ({"mission": ORIGIN, "sensors": [{"id": "a/b", "nation": "KEN", "kind": "radar"}]},
     "$.sensors[0].id"),
    ({"mission": ORIGIN, "sensors": [{"id": "a", "nation": "KEN", "kind": "radar",
                                      "release_to": ["nobody"]}]},
     "$.sensors[0].release_to[0]: unknown partner or group 'nobody'"),
    ({"mission": ORIGIN, "partners": [{"id": "p", "name": "P"}, {"id": "p", "name": "Q"}]},
     "$.partners[1].id: duplicate id 'p'"),
    ({}, "missing required field `mission`"),
    ({"mission": ORIGIN, "broker": {"failover": ["10.0.0.2:1883", "nats-2"]}},
     "$.broker.failover[1]: 'nats-2' is not host:port"),
    ({"mission": ORIGIN, "broker": {"failover": ["nats-2:70000"]}},
     "$.broker.failover[0]: 'nats-2:70000': port 70000 is not 1-65535"),
    ({"mission": ORIGIN, "broker": {"failover": "nats-2:1883"}}, "$.broker.failover"),
    ({"mission": ORIGIN, "cluster": {"servers": ["127.0.0.1:4222"]}}, "$.cluster.servers[0]"),
    ({"mission": ORIGIN, "cluster": {"servers": []}}, "$.cluster.servers"),
    ({"mission": ORIGIN, "cluster": {"servers": ["nats://n1:4222"], "lease_ttl_s": 0.1}},
     "$.cluster.lease_ttl_s"),
    ({"mission": ORIGIN, "cluster": {"servers": ["nats://n1:4222"]},
      "sensors": [{"id": "uav.1", "nation": "KEN", "kind": "uav"}]},
     "$.sensors[0].id: 'uav.1' holds '.', which NATS 2.9's MQTT refuses"),
])
def test_bad_config_names_key_and_problem(data: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert expected in str(info.value)


def test_unreadable_and_invalid_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mission\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config({"mission": ORIGIN, "broker": {"password_env": "HUB_TEST_PW"}})
    with pytest.raises(ConfigError, match="HUB_TEST_PW is not set"):
        config.broker.password()
    monkeypatch.setenv("HUB_TEST_PW", "s3cret")
    assert config.broker.password() == "s3cret"


def test_failover_brokers_follow_the_first() -> None:
    broker = parse_config({"mission": ORIGIN, "broker": {
        "host": "n0", "port": 1883, "failover": ["n1:1884", "[::1]:1885"]}}).broker
    assert broker.endpoints() == [("n0", 1883), ("n1", 1884), ("::1", 1885)]


def test_a_config_written_as_toml_reads_back_equal(tmp_path: Path) -> None:
    config = load_config(DEFAULT_CONFIG)
    path = tmp_path / "again.toml"
    path.write_text(config_toml(config))
    assert load_config(path) == config
