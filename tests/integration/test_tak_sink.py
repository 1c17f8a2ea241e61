"""The TAK sink held to the shared sink contract: the real TAK listener, TLS client certificates.

Each partner's consumer is a TAK client logged in by its certificate (CN = the
partner), through a relay the test can pause. CoT has no ``seq`` and no full
pictures: the consumer groups the events of one batch (they share ``time``)
into a delivery, and a batch that deletes every track it holds is the
withdrawal of its view.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from partner_consumers import TakConsumer
from relay import Relay
from sink_contract import SinkContract, contract_config
from sockets import hang_up

from hub.broker.launcher import free_port
from hub.config import Tak
from hub.publish.tak import TakSink
from hub.release.policy import MISSION
from hub.tak.server import TakServer

QUEUE_BOUND = 4


class TakHarness(TakConsumer):
    """The TAK listener with the sink, and one certificate-holding client per partner."""

    def __init__(self, sink: TakSink, relay: Relay) -> None:
        super().__init__()
        self.sink = sink
        self.bound = QUEUE_BOUND
        self.sequenced = False
        self.relay = relay

    async def starve(self) -> None:
        self.relay.paused.set()

    def backlog(self) -> int:
        return self.sink.backlog()


class TestTakSink(SinkContract):
    @pytest.fixture(autouse=True)
    def _pki(self, tmp_path: Path) -> None:
        self.ca = trustme.CA()
        self.directory = tmp_path
        server = self.ca.issue_cert("127.0.0.1", common_name="hub")
        server.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
        self.ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    def client_context(self, partner: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.directory / "ca.pem"))
        self.ca.issue_cert(f"{partner}.test", common_name=partner).configure_cert(context)
        return context

    @contextlib.asynccontextmanager
    async def harness(self) -> AsyncIterator[TakHarness]:
        config = contract_config()
        settings = Tak(tls_port=free_port(), cafile=str(self.directory / "ca.pem"),
                       certfile=str(self.directory / "server.pem"),
                       keyfile=str(self.directory / "server.pem"), client_queue=QUEUE_BOUND,
                       send_timeout_s=60.0)
        sink = TakSink(["a", "b", "c", MISSION], stale_s=15.0, client_queue=QUEUE_BOUND)
        server = TakServer(config, settings, sink, lambda topic, payload: None,
                           lambda where, size, code, reason: None)
        await server.start()
        relay = Relay(settings.tls_port)
        port = await relay.start()
        harness = TakHarness(sink, relay)
        readers, writers = [], []
        try:
            for partner in ("a", "b", "c"):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=self.client_context(partner),
                    server_hostname="127.0.0.1")
                writers.append(writer)
                readers.append(asyncio.create_task(harness.read(partner, reader)))
            while sum(sink.clients().values()) < 3:
                await asyncio.sleep(0.01)
            yield harness
        finally:
            for task in readers:
                task.cancel()
            for writer in writers:
                await hang_up(writer)
            await relay.close()
            await server.stop()
