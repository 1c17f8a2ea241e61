"""The behaviour every output to partners must have: one contract, subclassed per sink.

FastStream's ``tests/brokers/base/`` is the model: each sink's test module
subclasses ``SinkContract`` and supplies ``harness``, an async context manager
that yields the sink wired to its real transport and a consumer reading what a
partner would receive. The pictures come from the hub's own pipeline, release
view and publisher, so what is checked is the whole path from fusion to the
partner's side of the transport.

Scene (release_fixtures): partners a, b, c; KEN's s1 released to all three,
GHA's s2 to a alone, NLD's s3 a canary released to nobody. Each sees one target
of its own, far apart, once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import NamedTuple, Protocol

import msgpack
from release_fixtures import FRAME, T0, config_with

from hub import topics
from hub.config import HubConfig
from hub.messages import Label, Picture, Track
from hub.pipeline import Pipeline
from hub.publish.publisher import PicturePublisher
from hub.publish.sink import PartnerSink
from hub.release.view import ReleaseView

TARGETS = {"s1": (0.0, 0.0), "s2": (3000.0, 0.0), "s3": (-3000.0, 2000.0)}
"""Where each sensor's own target starts (east, north, metres); each moves east at 10 m/s."""
RELEASES = [{"by": "KEN", "to": ["a", "b", "c"]}, {"by": "GHA", "to": ["a"]}]
PACE_S = 0.005
STARVE_CAP = 1000
"""Pictures published to a starved consumer before the sink must have dropped one."""
TIGHTER = [{"by": "KEN", "to": ["a", "c"]}, {"by": "GHA", "to": ["a"]}]
"""KEN's radar no longer goes to b."""


class Delivery(NamedTuple):
    """One thing a partner's consumer received: a picture, or the withdrawal of its view."""

    picture: Picture | None


class SinkHarness(Protocol):
    """A sink on its real transport, and a consumer on the partners' side of it."""

    sink: PartnerSink
    bound: int
    """The most pictures the sink may hold for a consumer that takes nothing."""
    sequenced: bool
    """Whether the transport carries ``seq`` and full pictures (MQTT, web; not CoT, whose
    consumer sees one delivery per non-empty picture and a withdrawal as deletions)."""

    async def deliveries(self, partner: str, count: int) -> list[Delivery]:
        """Everything ``partner`` received so far, once it is at least ``count`` things."""
        ...

    async def starve(self) -> None:
        """Make the consumer (or the transport to it) take nothing more."""
        ...

    def backlog(self) -> int:
        """Pictures the sink holds now for consumers that have not taken them."""
        ...


def contract_config(releases: list[dict[str, object]] = RELEASES) -> HubConfig:
    """The scene's registry, fused without a reorder wait and a full picture every 4 s."""
    return config_with(releases, fusion={"reorder_window_s": 0.0},
                       publish={"full_every_s": 4.0})


def detections(sensor: str, t: float, seq: int, t0: float = T0) -> bytes:
    """``sensor``'s own target, seen perfectly; it started at ``t0``."""
    east, north = TARGETS[sensor]
    lat, lon, _ = FRAME.to_geodetic(east + 10.0 * (t - t0), north, 0.0)
    return msgpack.packb({"ts": t, "seq": seq, "detections": [
        {"kind": "geo", "lat": float(lat), "lon": float(lon), "sigma": 5.0, "cls": "vehicle",
         "conf": 0.9}]})


class Hub:
    """The hub's picture path for one sink: pipeline, release view, publisher."""

    def __init__(self, config: HubConfig, sink: PartnerSink, sequenced: bool = True) -> None:
        self.pipeline = Pipeline(config)
        self.publisher = PicturePublisher(ReleaseView(self.pipeline), [sink])
        self.second = 0
        self.sequenced = sequenced
        self.handed: dict[str, list[Picture]] = {}
        """Every picture the publisher handed the sink, per partner."""
        publisher = self.publisher
        publisher.on_delivered = lambda partner, picture: self.handed.setdefault(
            partner, []).append(picture)

    async def run(self, seconds: int, silent: frozenset[str] = frozenset()) -> None:
        """Every sensor but the ``silent`` reports once a second; a picture after each second.

        The loop runs between publishes, as it does live, so the transport can send.
        """
        for _ in range(seconds):
            await asyncio.sleep(PACE_S)
            t = T0 + self.second
            for sensor in sorted(TARGETS.keys() - silent):
                assert self.pipeline.handle(topics.sensor(sensor, "detections"),
                                            detections(sensor, t, self.second), t)
            self.pipeline.flush(t)
            self.publisher.publish(t)
            self.second += 1

    def sent(self, partner: str) -> int:
        """What ``partner``'s consumer must have received: every picture, or (a transport
        without sequence) every picture with something in it."""
        handed = self.handed.get(partner, [])
        if self.sequenced:
            return len(handed)
        return sum(1 for p in handed if p.tracks or p.removed)

    def reload(self, config: HubConfig) -> list[str]:
        """Adopt ``config``'s rules as ``hub reload`` does; the partners whose view changed."""
        changed = self.pipeline.reload_rules(config)
        self.publisher.rules_changed(changed)
        return changed


def pictures(deliveries: list[Delivery]) -> list[Picture]:
    return [d.picture for d in deliveries if d.picture is not None]


def labelled(track_id: str, releasable_to: list[str] | None) -> Track:
    """A hand-made track; ``None``: without a label."""
    label = None if releasable_to is None else Label(
        policy="MISSION", classification="UNCLASSIFIED", releasable_to=releasable_to)
    return Track(id=track_id, ts=T0, lat=0.0, lon=0.0, vn=0.0, ve=0.0, cov=(1.0, 0.0, 1.0),
                 status="confirmed", cls="vehicle", cls_probs={"vehicle": 1.0},
                 affiliation="unknown", sidc="SUGP-----------", sources=[], nations=[],
                 first_seen=T0, updates=1, label=label)


class SinkContract:
    """Subclass with a ``harness`` for one sink; every test here then runs against it."""

    def harness(self) -> contextlib.AbstractAsyncContextManager[SinkHarness]:
        raise NotImplementedError

    async def test_nothing_reaches_a_sink_before_release(self) -> None:
        async with self.harness() as harness:
            hub = Hub(contract_config(), harness.sink, harness.sequenced)
            await hub.run(8)
            for partner, visible in (("a", {"s1", "s2"}), ("b", {"s1"}), ("c", {"s1"})):
                got = pictures(await harness.deliveries(partner, hub.sent(partner)))
                assert len(got) == hub.sent(partner) >= 5
                sources = {s for p in got for t in p.tracks for s in t.sources}
                assert sources == visible, partner  # what is released arrives, nothing else
                canary = [t for p in got for t in p.tracks
                          if FRAME.to_enu(t.lat, t.lon, 0.0)[0] < -1000.0]
                assert not canary, f"{partner} got a track of the canary's target"

    async def test_unknown_or_unlabelled_is_dropped(self) -> None:
        async with self.harness() as harness:
            hub = Hub(contract_config(), harness.sink, harness.sequenced)
            forged = [labelled("T900", None), labelled("T901", ["b"]), labelled("T902", ["a"])]
            hub.publisher.deliver("a", Picture(ts=T0, seq=1, partner="a", full=True,
                                               tracks=forged, removed=[]))
            hub.publisher.deliver("zzz", Picture(ts=T0, seq=1, partner="zzz", full=True,
                                                 tracks=[labelled("T903", ["zzz"])],
                                                 removed=[]))
            hub.publisher.deliver("b", Picture(ts=T0, seq=1, partner="a", full=True,
                                               tracks=[labelled("T904", ["a", "b"])],
                                               removed=[]))
            await hub.run(1)  # a real picture after the forged ones: they would have arrived first
            got = await harness.deliveries("a", 2)
            assert [t.id for t in got[0].picture.tracks] == ["T902"]  # type: ignore[union-attr]
            b = pictures(await harness.deliveries("b", hub.sent("b")))
            assert all(t.id != "T904" for p in b for t in p.tracks)  # a's picture, not b's
            assert not await harness.deliveries("zzz", 0)
            assert hub.publisher.counters["release_refused"] == 2 + 1 + 1

    async def test_full_pictures_and_deltas_share_one_seq(self) -> None:
        async with self.harness() as harness:
            hub = Hub(contract_config(), harness.sink, harness.sequenced)
            await hub.run(6)
            await hub.run(16, silent=frozenset({"s2"}))  # its target's track ends
            got = pictures(await harness.deliveries("a", hub.sent("a")))
            if harness.sequenced:
                assert [p.seq for p in got] == list(range(1, hub.sent("a") + 1))
                assert got[0].full and sum(p.full for p in got) >= 3
            state: dict[str, int] = {}
            for picture in got:
                updates = {t.id: t.updates for t in picture.tracks}
                if picture.full:
                    # The deltas since the last full picture carried every new track and every
                    # removal: they rebuild its set of tracks, none of them newer than it.
                    assert set(state) == set(updates), picture.seq
                    assert all(state[i] <= n for i, n in updates.items()), picture.seq
                    state = {}
                for track_id in picture.removed:
                    state.pop(track_id)
                state.update(updates)
            assert [p.removed for p in got if p.removed] == [["T2"]]
            assert list(state) == ["T1"]

    async def test_a_rules_change_withdraws_the_old_view_before_anything_new(self) -> None:
        async with self.harness() as harness:
            hub = Hub(contract_config(), harness.sink, harness.sequenced)
            await hub.run(6)
            before = hub.sent("b")
            assert hub.reload(contract_config(TIGHTER)) == ["b"]
            await hub.run(6)
            got = await harness.deliveries("b", hub.sent("b") + 1)
            withdrawn = [i for i, d in enumerate(got) if d.picture is None]
            assert withdrawn == [before], "one withdrawal, right after the old view"
            after = pictures(got[before + 1:])
            if harness.sequenced:
                assert after and after[0].full
            assert all(not p.tracks for p in after)  # b sees no source now: no track at all
            untouched = await harness.deliveries("a", hub.sent("a"))
            assert all(d.picture is not None for d in untouched)

    async def test_a_consumer_that_cannot_keep_up_is_bounded_and_counted(self) -> None:
        async with self.harness() as harness:
            hub = Hub(contract_config(), harness.sink, harness.sequenced)
            await hub.run(2)
            await harness.deliveries("a", hub.sent("a"))
            await harness.starve()
            # Whatever the transport buffers first (a socket's kernel and library buffers),
            # the sink must start dropping, and then hold no more than its bound.
            for _ in range(STARVE_CAP):
                if harness.sink.stats.dropped:
                    break
                await hub.run(1)
            await hub.run(3 * harness.bound)
            assert harness.backlog() <= harness.bound
            assert harness.sink.stats.dropped > 0
            assert harness.sink.stats.delivered + harness.sink.stats.dropped == sum(
                hub.sent(p) for p in "abc")  # each picture delivered or dropped, once
