"""CoT fuzz: 10,000 malformed or hostile events mixed into a good stream over a real TAK socket.

The hub's TAK server (plain TCP listener, in this loop) feeds the real
pipeline. Broken XML, entity expansion, huge attributes, wrong types, NaN or
out-of-range coordinates, another unit's uid, chat: every bad event must be
refused with its own reason code (counted exactly), every good PLI and spot
report fused, the connection still served after it all; an oversized event
closes only its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator

import msgspec
import pytest
from flood import UNLIMITED_BUDGET
from sockets import hang_up

from hub.broker.launcher import free_port
from hub.config import DEFAULT_CONFIG, HubConfig, load_config
from hub.pipeline import Pipeline
from hub.publish.cot import cot_time
from hub.publish.tak import TakSink
from hub.tak.server import TakServer

UNIT = "ken-team-1"
FUZZ = 10_000
GOOD = 600
SEED = 20_261_201


def config(**tak: float) -> HubConfig:
    """One team unit on a plain TAK port; budgets lifted unless ``tak`` sets the connection's."""
    base = load_config(DEFAULT_CONFIG)
    data = msgspec.to_builtins(base)
    data["sensors"].append({"id": UNIT, "nation": "KEN", "kind": "team", "release_to": ["ken"]})
    data["fusion"]["reorder_window_s"] = 0.0
    data["tak"] = {"host": "127.0.0.1", "tls_port": 0, "tcp_port": free_port(),
                   "tcp_partner": "ken", "events_per_s": 1e6, "bytes_per_s": 1e9,
                   "max_event_bytes": 65_536, **tak}
    data["ingest"]["budget"] = UNLIMITED_BUDGET  # ten thousand events at once: not a flood test
    return msgspec.convert(data, HubConfig)


def event(uid: str, kind: str, t: float, lat: str = "-1.30", lon: str = "36.80",
          attrs: str = "", detail: str = "") -> bytes:
    return (f'<?xml version="1.0"?><event version="2.0" uid="{uid}" type="{kind}" how="h-e" '
            f'time="{cot_time(t)}" start="{cot_time(t)}" stale="{cot_time(t + 60)}"{attrs}>'
            f'<point lat="{lat}" lon="{lon}" hae="1650" ce="8" le="9999999"/>'
            f"<detail>{detail}</detail></event>").encode()


def hostile(rng: random.Random, t: float) -> tuple[bytes, str]:
    """One event the hub must refuse, and the code it must give."""
    roll = rng.randrange(10)
    if roll == 0:
        return event(UNIT, "a-f-G", t)[: rng.randrange(20, 120)] + b"</event>", "undecodable"
    if roll == 1:
        bomb = ('<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "' + "a" * 50 + '">'
                + "".join(f'<!ENTITY a{k} "&a;&a;&a;&a;">' for k in range(8))
                + ']><event uid="x">&a7;</event>')
        return bomb.encode(), "undecodable"
    if roll == 2:
        return event(UNIT, "a-f-G", t, attrs=f' junk="{"x" * 40_000}"', lat="nan"), "schema"
    if roll == 3:
        return event(UNIT, "a-f-G", t, lat=rng.choice(["nan", "inf", "-inf", "91", "1e309"])), \
            "schema"
    if roll == 4:
        return event(UNIT, "a-h-G", t, lon=rng.choice(["181", "abc", ""])), "schema"
    if roll == 5:
        return event(rng.choice(["bra-uav-1", "nld-uav-1", "someone"]), "a-f-A", t), "identity"
    if roll == 6:
        return event(UNIT, rng.choice(["b-t-f", "b-a-o-tbl", "b-f-t-r", "t-x-c-t", "u-d-p"]),
                     t), "unsupported"
    if roll == 7:
        return b'<?xml version="1.0"?><chat>hello</chat></event>', "undecodable"
    if roll == 8:
        return event(UNIT, "a-f-G", t).replace(b'time="', b'time="not-a-time'), "schema"
    return event(UNIT, "a-f-G", t).replace(b"<point", b"<nopoint"), "schema"


def good(i: int, t: float) -> bytes:
    """A PLI of the unit (moving), or every third one a spot report."""
    if i % 3 == 2:
        return event(f"marker-{i % 7}", "a-h-G-U-C-I", t, lat=f"{-1.31 - i * 1e-5:.6f}")
    return event(UNIT, "a-f-G-U-C-I", t, lat=f"{-1.30 + i * 1e-5:.6f}",
                 detail='<track course="10" speed="1.5"/>')


@pytest.fixture
async def served() -> AsyncIterator[tuple[Pipeline, TakServer]]:
    async with serving(config()) as both:
        yield both


@contextlib.asynccontextmanager
async def serving(cfg: HubConfig) -> AsyncIterator[tuple[Pipeline, TakServer]]:
    """A pipeline and the TAK server of ``cfg`` feeding it, on this loop."""
    assert cfg.tak is not None
    pipeline = Pipeline(cfg)
    sink = TakSink(["ken"], 15.0, 32)
    server = TakServer(cfg, cfg.tak, sink,
                       lambda topic, payload: pipeline.handle(topic, payload, time.time()),
                       lambda where, size, code, reason: pipeline.reject(
                           where, size, code, reason, time.time()))
    await server.start()
    try:
        yield pipeline, server
    finally:
        await server.stop()
        pipeline.close()


async def send(port: int, chunks: list[bytes]) -> tuple[asyncio.StreamReader,
                                                           asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for k in range(0, len(chunks), 200):
        writer.write(b"".join(chunks[k:k + 200]))
        await writer.drain()
    return reader, writer


async def test_ten_thousand_hostile_events_are_refused_by_code_and_the_good_all_fused(
        served: tuple[Pipeline, TakServer]) -> None:
    pipeline, server = served
    rng = random.Random(SEED)
    start = time.time() - 120.0
    # The plain port binds a connection to the registered uid it first reports under.
    stream: list[bytes] = [good(0, start)]
    expected: Counter[str] = Counter()
    goods = 1
    for k in range(1, FUZZ + GOOD):
        t = start + k * 0.01
        if rng.random() < GOOD / (FUZZ + GOOD) and goods < GOOD:
            stream.append(good(goods, t))
            goods += 1
        else:
            bad, code = hostile(rng, t)
            stream.append(bad)
            expected[code] += 1
    port = server.settings.tcp_port
    assert port is not None
    _, writer = await send(port, stream)
    refused = sum(expected.values())

    def settled() -> bool:
        return (pipeline.counters["rejected"] >= refused
                and pipeline.counters["received"] >= goods)

    async with asyncio.timeout(60):
        while not settled():
            await asyncio.sleep(0.05)
    pipeline.finish()
    assert {c: pipeline.counters[f"rejected.{c}"] for c in expected} == dict(expected)
    assert pipeline.counters["rejected"] == refused
    counters = pipeline.router.counters
    assert counters["telemetry"] + counters["detection_batches"] == goods
    assert pipeline.counters["fused"] == goods and pipeline.counters["late"] == 0
    # Still served: one more position goes through on the same connection.
    writer.write(event(UNIT, "a-f-G", time.time()))
    await writer.drain()
    async with asyncio.timeout(10):
        while pipeline.counters["received"] < goods + 1:
            await asyncio.sleep(0.05)
    await hang_up(writer)


async def test_an_oversized_event_closes_only_its_connection(
        served: tuple[Pipeline, TakServer]) -> None:
    pipeline, server = served
    port = server.settings.tcp_port
    assert port is not None
    _, steady = await send(port, [event(UNIT, "a-f-G", time.time() - 5)])
    reader, writer = await send(port, [b"<event>" + b"x" * 70_000])
    async with asyncio.timeout(10):
        while await reader.read(65536):
            pass  # the hub sends its offer, then closes this connection
    assert pipeline.counters["rejected.too_large"] == 1
    steady.write(event(UNIT, "a-f-G", time.time()))
    await steady.drain()
    async with asyncio.timeout(10):
        while pipeline.counters["received"] < 2:
            await asyncio.sleep(0.05)
    steady.close()
    await hang_up(writer)


@pytest.mark.parametrize("budget", [{"events_per_s": 5.0}, {"bytes_per_s": 1_000.0}],
                         ids=["events", "bytes"])
async def test_a_connection_beyond_its_budget_is_refused_before_parsing(
        budget: dict[str, float]) -> None:
    start = time.time() - 10.0
    positions = [event(UNIT, "a-f-G-U-C-I", start + 0.01 * k) for k in range(50)]
    size = len(positions[0])
    async with serving(config(**budget)) as (pipeline, server):
        assert server.settings.tcp_port is not None
        _, writer = await send(server.settings.tcp_port, positions)
        async with asyncio.timeout(10):
            while pipeline.counters["received"] + pipeline.counters["rejected"] < 50:
                await asyncio.sleep(0.05)
        await hang_up(writer)
    taken = pipeline.counters["received"]
    assert pipeline.counters["rejected"] == pipeline.counters["rejected.rate"] == 50 - taken
    # Two seconds' worth at once (ingest.budget.burst_s), and whatever came in meanwhile.
    if "events_per_s" in budget:
        assert 10 <= taken <= 11
    else:  # taken while the 2,000 bytes are not in debt: one event more than fits
        assert 2_000 <= taken * size < 2_000 + size + 100
    assert pipeline.dead_letters[0].code == "rate"
