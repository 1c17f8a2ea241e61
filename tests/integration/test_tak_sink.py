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
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from relay import Relay
from sink_contract import Delivery, SinkContract, contract_config
from sockets import hang_up

from hub.broker.launcher import free_port
from hub.config import Tak
from hub.messages import Label, Picture, Track
from hub.publish.tak import TakSink
from hub.release.policy import MISSION
from hub.tak.server import TakServer

QUEUE_BOUND = 4
WAIT_S = 15.0
BATCH_GAP_S = 0.05


def link_uid(event: ET.Element) -> str:
    link = event.find("detail/link")
    return "" if link is None else link.get("uid", "")


def track_of(event: ET.Element, partner: str) -> Track:
    """The Track a CoT event stands for (what the contract compares)."""
    point = event.find("point")
    assert point is not None
    label = event.find("detail/__cop_label")
    remarks = event.findtext("detail/remarks") or ""
    sources = remarks.split("sources: ", 1)[1]
    return Track(
        id=event.get("uid", "").removeprefix(f"hub.{partner}."), ts=0.0,
        lat=float(point.get("lat", "nan")), lon=float(point.get("lon", "nan")), vn=0.0, ve=0.0,
        cov=(0.0, 0.0, 0.0), status="confirmed", cls="unknown", cls_probs={},
        affiliation="unknown", sidc="", first_seen=0.0, updates=0, nations=[],
        sources=[] if sources == "not released" else sources.split(", "),
        label=None if label is None else Label(
            policy=label.get("policy", ""), classification=label.get("classification", ""),
            releasable_to=label.get("releasable_to", "").split(),
            caveats=label.get("caveats", "").split()))


class TakHarness:
    """The TAK listener with the sink, and one certificate-holding client per partner."""

    def __init__(self, sink: TakSink, relay: Relay) -> None:
        self.sink = sink
        self.bound = QUEUE_BOUND
        self.sequenced = False
        self.relay = relay
        self.received: dict[str, list[Delivery]] = {}

    async def read(self, partner: str, reader: asyncio.StreamReader) -> None:
        """Events into deliveries: a batch's events share ``time``; a pause ends a batch too."""
        held: set[str] = set()
        batch: list[ET.Element] = []
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                try:
                    async with asyncio.timeout(BATCH_GAP_S):
                        raw = await reader.readuntil(b"</event>")
                except TimeoutError:
                    self._deliver(partner, batch, held)
                    batch = []
                    continue
                event = ET.fromstring(raw.split(b"?>", 1)[1])
                if not event.get("type", "").startswith(("a-", "t-x-d-d")):
                    continue  # the offer of TAK Protocol v1
                if batch and event.get("time") != batch[0].get("time"):
                    self._deliver(partner, batch, held)
                    batch = []
                batch.append(event)

    def _deliver(self, partner: str, batch: list[ET.Element], held: set[str]) -> None:
        if not batch:
            return
        tracks = [track_of(e, partner) for e in batch if e.get("type", "").startswith("a-")]
        removed = [link_uid(e).removeprefix(f"hub.{partner}.") for e in batch
                   if e.get("type") == "t-x-d-d"]
        if held and not tracks and set(removed) == held:  # everything it held, deleted
            delivery = Delivery(None)
            held.clear()
        else:
            held.difference_update(removed)
            held.update(t.id for t in tracks)
            delivery = Delivery(Picture(ts=0.0, seq=-1, partner=partner, full=False,
                                        tracks=tracks, removed=removed))
        self.received.setdefault(partner, []).append(delivery)

    async def deliveries(self, partner: str, count: int) -> list[Delivery]:
        deadline = time.monotonic() + WAIT_S
        while len(self.received.get(partner, [])) < count:
            assert time.monotonic() < deadline, (partner, self.received.get(partner), count)
            await asyncio.sleep(0.01)
        return list(self.received.get(partner, []))

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
