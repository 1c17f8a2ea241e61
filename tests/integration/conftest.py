"""Integration fixtures: peers that talk to the test broker with plain paho."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_peer import Peer
from secured import CANARIES, Secured, registry, start_secured

from hub.broker.launcher import BrokerHandle


@pytest.fixture
def peer_factory() -> Iterator[Callable[[BrokerHandle, str, str], Peer]]:
    """Make peers that are closed after the test."""
    peers: list[Peer] = []

    def make(handle: BrokerHandle, protocol: str, client_id: str) -> Peer:
        peer = Peer(handle, protocol, client_id)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()



@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[Secured]:
    """Mosquitto running ``hub broker-config``'s files for the test registry (this test only:
    client ids are user names, so sessions must not outlive a test)."""
    handle = start_secured(registry(*CANARIES, broker_server={"persistence": False}),
                           tmp_path / "secured")
    try:
        yield handle
    finally:
        handle.handle.stop()
