"""Shared fixtures: a real Mosquitto (or NATS cluster) per test module, MQTT 3.1.1 / 5, no
silent failures.

Broker tests ask for ``broker_settings`` (or ``mqtt_protocol``) and run once
per protocol version. A missing ``mosquitto`` binary fails those tests with the
install command; it never skips them silently.

Every test fails when the hub survived an exception it only logged (a bus
handler raised, a periodic task failed, the pipeline or a frame worker took its
internal-error path: ``hub.faults``) or asyncio logged one (a connection
handler that raised, a task exception never retrieved), unless the test asks
for ``internal_errors`` and so takes them on (and asserts on them).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub import faults
from hub.broker.launcher import BrokerHandle, find_mosquitto, start_broker
from hub.cluster.nats_server import NatsCluster, find_nats_server, start_nats_cluster
from hub.config import Broker

PROTOCOLS = ("3.1.1", "5")
_client_ids = itertools.count()


def _start_mosquitto(workdir: Path) -> BrokerHandle:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto "
                    "(integration tests need the real broker)", pytrace=False)
    return start_broker(prefer="mosquitto", workdir=workdir)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerHandle]:
    """A Mosquitto shared by one test module, config in a temp dir, on a free port."""
    handle = _start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[BrokerHandle]:
    """A Mosquitto of this test alone, for tests that restart or kill it."""
    handle = _start_mosquitto(tmp_path / "mosquitto")
    try:
        yield handle
    finally:
        handle.stop()


def _start_nats(workdir: Path) -> NatsCluster:
    if find_nats_server() is None:
        pytest.fail("nats-server is not installed: apt-get install nats-server "
                    "(cluster tests need the real server)", pytrace=False)
    return start_nats_cluster(3, workdir=workdir)


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A 3-node NATS cluster (JetStream, MQTT on every node) shared by one test module.

    Ready in about 3 s: JetStream elects in 0.4 s, the first MQTT session creates NATS's
    replicated MQTT streams in the rest.
    """
    cluster = _start_nats(tmp_path_factory.mktemp("nats"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fresh_nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A 3-node NATS cluster of this test alone, for tests that kill or restart nodes."""
    cluster = _start_nats(tmp_path / "nats")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=PROTOCOLS, ids=lambda p: f"mqtt{p.replace('.', '')}")
def mqtt_protocol(request: pytest.FixtureRequest) -> str:
    """The MQTT protocol version under test: every broker test runs under both."""
    protocol: str = request.param
    return protocol


def unique_client_id(prefix: str = "test") -> str:
    """Return a client id no other test in this run uses."""
    return f"{prefix}-{next(_client_ids)}"


def settings_for(handle: BrokerHandle, protocol: str, client_id: str | None = None) -> Broker:
    """Return hub broker settings that reach ``handle`` with ``protocol``."""
    assert protocol in PROTOCOLS
    return Broker(host=handle.host, port=handle.port, protocol=protocol,  # type: ignore[arg-type]
                  client_id=client_id or unique_client_id("hub"), keepalive=10)


SettingsFor = Callable[..., Broker]


@pytest.fixture
def broker_settings_for() -> SettingsFor:
    """``settings_for(handle, protocol, client_id=None)`` for tests with their own broker."""
    return settings_for


@pytest.fixture
def broker_settings(mosquitto: BrokerHandle, mqtt_protocol: str) -> Broker:
    """Settings for the module's Mosquitto under the protocol being tested."""
    return settings_for(mosquitto, mqtt_protocol)


Survived = list[tuple[str, BaseException]]


class _AsyncioErrors(logging.Handler):
    """Errors asyncio logged: an exception nobody awaited, a connection callback that raised."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True, scope="module")
def _module_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A module's shared hubs (module fixtures) keep their recovery state to the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield


@pytest.fixture(autouse=True)
def _own_state_dir(_module_state_dir: None, tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's own hubs (in process or not) keep their recovery state apart from others'."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(autouse=True)
def _survived(request: pytest.FixtureRequest) -> Iterator[Survived]:
    """Fail the test if the hub survived an exception it only logged, or asyncio logged one."""
    caught: Survived = []
    asyncio_errors = _AsyncioErrors()
    logging.getLogger("asyncio").addHandler(asyncio_errors)
    try:
        with faults.listening(lambda where, exc: caught.append((where, exc))):
            yield caught
    finally:
        logging.getLogger("asyncio").removeHandler(asyncio_errors)
    for record in asyncio_errors.records:
        exc = record.exc_info[1] if record.exc_info else None
        caught.append((f"asyncio: {record.getMessage()[:200]}",
                       exc if isinstance(exc, BaseException) else RuntimeError(record.msg)))
    if caught and "internal_errors" not in request.fixturenames:
        where, exc = caught[0]
        pytest.fail(f"the hub survived {len(caught)} exception(s) it only logged; the first, "
                    f"in {where}: {exc!r}", pytrace=False)


@pytest.fixture
def internal_errors(_survived: Survived) -> Survived:
    """The exceptions the hub survived during this test, for a test that provokes them."""
    return _survived
