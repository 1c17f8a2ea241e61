"""What a partner's web and TAK clients receive, as the sink contract's deliveries.

A ``WebConsumer`` reads a logged-in console stream (``/api/v1/stream``), a
``TakConsumer`` a TAK client's CoT events; both turn what arrives into
``Delivery`` items (a picture, or the withdrawal of the view), so the sink
contract (test_web_sink, test_tak_sink) and the cluster's publish processes
(test_cluster) are checked by one reading of each transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
from sink_contract import Delivery

from hub.messages import Label, Picture, Track

WAIT_S = 15.0
BATCH_GAP_S = 0.05


class Consumers:
    """Deliveries per partner, as they arrive."""

    def __init__(self) -> None:
        self.received: dict[str, list[Delivery]] = {}

    async def deliveries(self, partner: str, count: int) -> list[Delivery]:
        """Everything ``partner`` received so far, once it is at least ``count`` things."""
        deadline = time.monotonic() + WAIT_S
        while len(self.received.get(partner, [])) < count:
            assert time.monotonic() < deadline, (partner, self.received.get(partner), count)
            await asyncio.sleep(0.01)
        return list(self.received.get(partner, []))


def web_track_of(feature: dict[str, Any]) -> Track:
    """The Track a feature stands for (what the contract compares)."""
    p = feature["properties"]
    lon, lat = feature["geometry"]["coordinates"]
    return Track(id=feature["id"], ts=p["ts"], lat=lat, lon=lon, vn=p["vn"], ve=p["ve"],
                 cov=tuple(p["cov"]), status=p["status"], cls=p["cls"],  # type: ignore[arg-type]
                 cls_probs=p["cls_probs"], affiliation=p["affiliation"], sidc=p["sidc"],
                 sources=p["sources"], nations=p["nations"], first_seen=p["first_seen"],
                 updates=p["updates"], last_update=p.get("last_update"),
                 label=Label(**p["label"]) if p.get("label") else None)


def delivery_of(message: dict[str, Any], partner: str) -> Delivery | None:
    """A stream message as the contract's Delivery; None for what is not one."""
    kind = message["type"]
    if kind == "withdraw":
        return Delivery(None)
    if kind == "snapshot" and message["seq"] > 0:
        tracks = [web_track_of(f) for f in message["data"]["features"]]
        return Delivery(Picture(ts=message["ts"], seq=message["seq"], partner=partner,
                                full=True, tracks=tracks, removed=[]))
    if kind == "delta":
        data = message["data"]
        return Delivery(Picture(ts=message["ts"], seq=message["seq"], partner=partner,
                                full=False, tracks=[web_track_of(f) for f in data["upserts"]],
                                removed=data["deletes"]))
    return None  # hello, the empty snapshot at connect, status, heartbeat


class WebConsumer(Consumers):
    """Logged-in console streams, one per partner."""

    async def read(self, partner: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            delivery = delivery_of(json.loads(msg.data), partner)
            if delivery is not None:
                self.received.setdefault(partner, []).append(delivery)


def link_uid(event: ET.Element) -> str:
    link = event.find("detail/link")
    return "" if link is None else link.get("uid", "")


def tak_track_of(event: ET.Element, partner: str) -> Track:
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


class TakConsumer(Consumers):
    """TAK clients, one per partner, each logged in by its certificate."""

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
        tracks = [tak_track_of(e, partner) for e in batch if e.get("type", "").startswith("a-")]
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
