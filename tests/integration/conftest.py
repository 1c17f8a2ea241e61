"""Integration fixtures: peers that talk to the test broker with plain paho."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from mqtt_peer import Peer

from hub.broker import BrokerHandle


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

