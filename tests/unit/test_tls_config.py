"""``[broker.tls]``: the client SSL context checks the broker and names the key on errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from hub.config import ClientTls, parse_config
from hub.errors import ConfigError
from hub.mqtt.tls import tls_context


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    for name in ("hub", "other"):
        cert = ca.issue_cert(name, common_name=name)
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / f"{name}.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
    return tmp_path


def tls(certs: Path, **changes: str) -> ClientTls:
    paths = {"cafile": "ca.pem", "certfile": "{id}.pem", "keyfile": "{id}.key", **changes}
    return ClientTls(**{k: str(certs / v) for k, v in paths.items()})


def test_the_context_verifies_the_broker_and_its_host_name(certs: Path) -> None:
    context = tls_context(tls(certs), "hub")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize(("changes", "key"), [
    ({"cafile": "missing.pem"}, "$.broker.tls.cafile: cannot read"),
    ({"cafile": "hub.key"}, "$.broker.tls.cafile: not a CA certificate"),
    ({"certfile": "nobody.pem"}, "$.broker.tls.certfile: cannot read"),
    ({"keyfile": "other.key"}, "$.broker.tls.keyfile: does not fit $.broker.tls.certfile"),
])
def test_errors_name_the_key(certs: Path, changes: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        tls_context(tls(certs, **changes), "hub")
    assert key in str(info.value)


def test_the_config_section_is_closed_and_complete() -> None:
    base = {"mission": {"origin": {"lat": 0.0, "lon": 0.0}}}
    config = parse_config({**base, "broker": {"tls": {"cafile": "a", "certfile": "b",
                                                      "keyfile": "c"}}})
    assert config.broker.tls == ClientTls(cafile="a", certfile="b", keyfile="c")
    with pytest.raises(ConfigError, match=r"\$\.broker\.tls"):
        parse_config({**base, "broker": {"tls": {"cafile": "a", "certfile": "b"}}})
    with pytest.raises(ConfigError, match="insecure"):
        parse_config({**base, "broker": {"tls": {"cafile": "a", "certfile": "b", "keyfile": "c",
                                                 "insecure": True}}})
