"""The web sink held to the shared sink contract: the real console server, real WebSockets.

Each partner's consumer is a browser-like client that logs in with its broker
credential and reads ``/api/v1/stream``. It connects through a TCP relay the
test can pause, so "a consumer that cannot keep up" is a socket that stops
reading, and everything between (kernel buffers, aiohttp's writer) fills for
real before the sink has to drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from partner_consumers import WebConsumer
from relay import Relay
from sink_contract import SinkContract, contract_config

from hub.broker.files import write_auth_files
from hub.broker.launcher import free_port
from hub.config import Web
from hub.messages import HubStatus
from hub.publish.web import WebSink
from hub.release.policy import MISSION
from hub.web.metrics import HubMetrics
from hub.web.server import WebServer, web_context

QUEUE_BOUND = 4


class WebHarness(WebConsumer):
    """The console server with the sink, and one logged-in stream per partner."""

    def __init__(self, sink: WebSink, relay: Relay) -> None:
        super().__init__()
        self.sink = sink
        self.bound = QUEUE_BOUND
        self.sequenced = True
        self.relay = relay

    async def starve(self) -> None:
        self.relay.paused.set()

    def backlog(self) -> int:
        return self.sink.backlog()


class TestWebSink(SinkContract):
    @pytest.fixture(autouse=True)
    def _files(self, tmp_path: Path) -> None:
        self.directory = tmp_path
        self.files = write_auth_files(contract_config(), tmp_path / "auth")

    @contextlib.asynccontextmanager
    async def harness(self) -> AsyncIterator[WebHarness]:
        config = contract_config()
        settings = Web(port=free_port(), passwd_file=str(self.files.auth.password_file),
                       client_queue=QUEUE_BOUND, send_timeout_s=60.0)
        sink = WebSink(settings, ["a", "b", "c", MISSION], lambda audience: 0.0)
        context = web_context(config, settings, sink, lambda: HubStatus(
            ts=time.time(), online=True, version="test", broker="connected"),
            lambda audience: [audience], HubMetrics())
        server = WebServer(context)
        await server.start()
        relay = Relay(settings.port)
        port = await relay.start()
        harness = WebHarness(sink, relay)
        sessions, readers = [], []
        try:
            for partner in ("a", "b", "c"):
                session = aiohttp.ClientSession(f"http://127.0.0.1:{port}",
                                                cookie_jar=aiohttp.CookieJar(unsafe=True))
                sessions.append(session)
                login = await session.post("/api/v1/login", json={
                    "identity": partner, "password": self.files.password(partner)})
                assert login.status == 200
                ws = await session.ws_connect("/api/v1/stream")
                readers.append(asyncio.create_task(harness.read(partner, ws)))
            await asyncio.sleep(0.1)  # hello and the empty snapshot are in before pictures
            yield harness
        finally:
            for task in readers:
                task.cancel()
            for session in sessions:
                await session.close()
            await relay.close()
            await server.stop()
