"""A bad ``[tak]`` section names its key and the problem."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hub.config import DEFAULT_CONFIG, load_config, parse_config
from hub.errors import ConfigError


def with_tak(**tak: Any) -> dict[str, Any]:
    data = msgspec.to_builtins(load_config(DEFAULT_CONFIG))
    data["tak"] = tak
    return data


@pytest.mark.parametrize(("tak", "message"), [
    ({}, r"\$\.tak\.cafile: required with tls_port"),
    ({"tls_port": 0, "tcp_port": 8087}, r"\$\.tak\.tcp_partner: required with tcp_port"),
    ({"tls_port": 0, "tcp_port": 8087, "tcp_partner": "zzz"},
     r"\$\.tak\.tcp_partner: unknown partner 'zzz'"),
    ({"tls_port": 0}, r"\$\.tak: no tls_port, tcp_port or servers"),
    ({"tls_port": 0, "servers": [{"host": "h", "partner": "nobody"}]},
     r"\$\.tak\.servers\[0\]\.partner: unknown partner 'nobody'"),
    ({"tls_port": 0, "servers": [{"host": "h", "partner": "ken", "certfile": "c"}]},
     r"\$\.tak\.servers\[0\]: give both certfile and keyfile"),
    ({"tls_port": 70000}, r"\$\.tak\.tls_port"),
])
def test_a_bad_tak_section_names_the_key(tak: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(with_tak(**tak))


def test_a_plain_lab_listener_and_a_push_are_enough() -> None:
    config = parse_config(with_tak(tls_port=0, tcp_port=8087, tcp_partner="mission",
                                   servers=[{"host": "tak.example", "partner": "nld"}]))
    assert config.tak is not None and config.tak.tcp_partner == "mission"
