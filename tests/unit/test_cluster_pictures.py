"""Pictures across a cluster without NATS: what a group's owner queues, what a relay applies.

And which roles a process runs by default (publish only with something to serve).

The relay's rules: a full picture, then only the deltas that follow it in the
same feed (a gap or another owner's feed waits for the next full picture); a
withdrawal reaches every sink; every picture is checked by ``released_only``
again (fail closed); a stored picture read at start only fills an audience
that still waits.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from sink_contract import Hub, contract_config, labelled

from hub.cluster.fusion import GroupRunner
from hub.cluster.names import Names
from hub.cluster.pictures import NatsPictureSink, PictureRelay, subject_parts
from hub.cluster.worker import ROLES, default_roles, parse_roles
from hub.config import Web
from hub.messages import Picture, Track, encode
from hub.publish.sink import SinkStats
from hub.release.groups import release_groups
from hub.release.policy import MISSION

NAMES = Names("hub")
AUDIENCES = ["a", "b", "c", MISSION]


class Recorder:
    """A sink that keeps what it was handed: (audience, picture), None for a withdrawal."""

    name = "recorder"
    serves_mission = True

    def __init__(self) -> None:
        self.stats = SinkStats()
        self.got: list[tuple[str, Picture | None]] = []

    def picture(self, partner: str, picture: Picture) -> None:
        self.got.append((partner, picture))

    def withdraw(self, partner: str) -> None:
        self.got.append((partner, None))

    async def close(self) -> None:
        pass

    def seqs(self, audience: str) -> list[int | None]:
        return [None if p is None else p.seq for a, p in self.got if a == audience]


def picture(seq: int, full: bool, partner: str = "a",
            tracks: list[Track] | None = None) -> bytes:
    return encode(Picture(ts=float(seq), seq=seq, partner=partner, full=full,
                          tracks=[labelled(f"T{seq}", ["a"])] if tracks is None else tracks,
                          removed=[]))


def relay() -> tuple[PictureRelay, Recorder]:
    recorder = Recorder()
    return PictureRelay(AUDIENCES, [recorder]), recorder


def test_deltas_follow_their_full_picture_and_a_gap_waits_for_the_next_one() -> None:
    relay_, sink = relay()
    assert not relay_.take("a", False, "w1", picture(4, False))  # nothing to apply it to yet
    for seq, full in ((5, True), (6, False), (7, False), (9, False), (10, False), (11, True),
                      (12, False)):
        relay_.take("a", full, "w1", picture(seq, full))
    assert sink.seqs("a") == [5, 6, 7, 11, 12]  # 8 lost: 9 and 10 wait for the full 11
    assert relay_.counters["relay_gaps"] == 1 and relay_.counters["relay_skipped"] == 2


def test_a_moved_group_s_deltas_wait_for_the_new_owner_s_full_picture() -> None:
    relay_, sink = relay()
    relay_.take("a", True, "w1", picture(5, True))
    relay_.take("a", False, "w2", picture(6, False))  # the new owner's, on another base
    relay_.take("a", True, "w2", picture(4, True))  # its checkpoint was older: seq runs back
    relay_.take("a", False, "w2", picture(5, False))
    relay_.take("a", False, "w1", picture(6, False))  # the old owner, paused, wakes up
    assert sink.seqs("a") == [5, 4, 5]


def test_a_withdrawal_reaches_every_sink_and_the_next_full_picture_starts_again() -> None:
    relay_, sink = relay()
    relay_.take("a", True, "w1", picture(1, True))
    relay_.take("a", True, "w1", b"")
    relay_.take("a", False, "w1", picture(2, False))
    relay_.take("a", True, "w1", picture(3, True))
    assert sink.seqs("a") == [1, None, 3]


def test_every_picture_passes_released_only_again_fail_closed() -> None:
    relay_, sink = relay()
    forged = [labelled("T1", None), labelled("T2", ["b"]), labelled("T3", ["a"])]
    relay_.take("a", True, "w1", picture(1, True, tracks=forged))
    relay_.take("b", True, "w1", picture(1, True, partner="a"))  # a's picture on b's subject
    relay_.take("zzz", True, "w1", picture(1, True, partner="zzz"))
    relay_.take("c", True, "w1", b"\xc1 not msgpack")
    relay_.take("c", False, "w1", picture(2, True, partner="c"))  # a full one as a delta
    [(audience, got)] = sink.got
    assert audience == "a" and got is not None and [t.id for t in got.tracks] == ["T3"]
    assert relay_.counters["release_refused"] == 2 + 1
    assert relay_.counters["relay_unknown"] == 1 and relay_.counters["relay_bad"] == 2
    assert relay_.waiting() == ["b", "c", MISSION]


def test_a_stored_full_picture_fills_only_an_audience_that_still_waits() -> None:
    relay_, sink = relay()
    relay_.take("a", True, "w1", picture(7, True))
    relay_.take("a", False, "w1", picture(8, False))
    assert not relay_.take("a", True, "w1", picture(5, True), stored=True)  # older than live
    assert relay_.take("b", True, "w1", picture(3, True, partner="b", tracks=[]), stored=True)
    assert not relay_.take("c", True, "w1", b"", stored=True)  # stored withdrawal: nothing shown
    assert sink.seqs("a") == [7, 8] and sink.seqs("b") == [3] and sink.seqs("c") == []
    assert relay_.counters["relay_stored"] == 1


def test_subjects_name_their_audience_and_kind() -> None:
    assert subject_parts(NAMES, NAMES.picture_subject("a", True)) == ("a", True)
    assert subject_parts(NAMES, NAMES.picture_subject(MISSION, False)) == (MISSION, False)
    for other in ("hub.picture.a.b.full", "hub.picture.a.other", "hub.in.item", "x.picture.a.full"):
        assert subject_parts(NAMES, other) is None, other


@pytest.mark.parametrize("key", [g.key for g in release_groups(contract_config())])
async def test_a_group_s_owner_publishes_its_partners_and_only_the_mission_s_owner_the_mission(
        key: str) -> None:
    """Through the real pipeline: every picture queued for NATS reaches a relay's sink intact."""
    config = contract_config()
    group = next(g for g in release_groups(config) if g.key == key)
    nats = NatsPictureSink(NAMES, "w1", serves_mission=key == MISSION)
    runner = GroupRunner(config, key, lambda *message: True, nats)
    hub = Hub(config, nats)  # the contract's scene and pace, this group's pipeline
    hub.pipeline, hub.publisher = runner.pipeline, runner.publisher
    runner.publisher.on_delivered = lambda partner, p: hub.handed.setdefault(partner, []).append(p)
    await hub.run(8)
    relay_, sink = relay()
    for subject, payload in nats.outbox:
        parts = subject_parts(NAMES, subject)
        assert parts is not None
        assert relay_.take(*parts, "w1", payload)
    wanted = {*group.partners, *([MISSION] if key == MISSION else [])}
    assert set(hub.handed) == wanted
    for audience in wanted:
        got = [p for a, p in sink.got if a == audience]
        assert got == hub.handed[audience]  # every picture, decoded as it was built
        assert len(got) >= 5 and got[0] is not None and got[0].full
    if key == MISSION:
        assert any(t.sources == ["s3"] for p in hub.handed[MISSION] for t in p.tracks)


def test_a_queue_nats_does_not_take_is_bounded() -> None:
    nats = NatsPictureSink(NAMES, "w1", serves_mission=False)
    payload = msgspec.msgpack.decode(picture(1, True))
    for _ in range(1100):
        nats.picture("a", msgspec.convert(payload, Picture))
    assert len(nats.outbox) == 1024 and nats.stats.dropped == 1100 - 1024


def test_the_default_roles_publish_only_what_the_config_serves(tmp_path: Path) -> None:
    config = contract_config()
    assert default_roles(config) == {"ingest", "imagery", "fusion"}
    with_web = msgspec.structs.replace(config, web=Web(passwd_file=str(tmp_path / "passwd")))
    assert default_roles(with_web) == set(ROLES) == parse_roles("publish,fusion,ingest,imagery")
    with pytest.raises(ValueError, match="unknown role sorting"):
        parse_roles("publish,sorting")
