"""A clustered hub's fusion: the inputs stream's records, groups moved between workers.

What a takeover relies on, without a cluster: records applied in stream
order give each group, bit for bit, the state the single process gives it;
a group checkpointed at any record and restored on another worker goes on as
if it never moved; the lease assignment is balanced and moves little.
"""

from __future__ import annotations

import numpy as np
import pytest

from hub.cluster import records
from hub.cluster.fusion import GroupRunner
from hub.cluster.lease import assignment
from hub.cluster.records import Record
from hub.config import DEFAULT_CONFIG, HubConfig, load_config
from hub.pipeline import Pipeline
from hub.release.groups import release_groups
from simulators import generate, load_scenario

TICK_S = 0.05


@pytest.fixture(scope="module")
def config() -> HubConfig:
    return load_config(DEFAULT_CONFIG)


@pytest.fixture(scope="module")
def stream(config: HubConfig) -> list[Record]:
    """What ingest workers and the clock would put in the inputs stream for 40 s of the demo."""
    messages = generate(load_scenario("default").with_duration(40.0), part="rest")
    out = records.records_of(config, ((t, topic, payload) for t, topic, payload in messages
                                      if topic.startswith("sensors/")), TICK_S)
    assert sum(not is_tick for is_tick, _ in out) > 500
    return out


def single_process(config: HubConfig, stream: list[Record]) -> Pipeline:
    pipeline = Pipeline(config)
    for is_tick, data in stream:
        records.apply(pipeline, is_tick, data)
    return pipeline


def run(runner: GroupRunner, stream: list[Record], first: int, last: int) -> None:
    for seq in range(first, last + 1):
        runner.apply(seq, *stream[seq - 1])


def assert_same_group(runner: GroupRunner, want: Pipeline) -> None:
    got = runner.pipeline.groups[0]
    theirs = next(g for g in want.groups if g.group.key == runner.key)
    mine, other = got.tracker.state(), theirs.tracker.state()
    assert mine.keys() == other.keys()
    for name in mine:
        np.testing.assert_array_equal(mine[name], other[name], err_msg=name)
    assert got.tracker.next_id == theirs.tracker.next_id
    assert runner.pipeline.counters["fused"] == want.counters["fused"]


def test_each_group_from_the_stream_is_the_single_process_group_bit_for_bit(
        config: HubConfig, stream: list[Record]) -> None:
    want = single_process(config, stream)
    assert len(want.groups) == 4
    # As a worker applies them: each record read once, applied to every group it owns.
    runners = [GroupRunner(config, group.key, lambda *message: True)
               for group in release_groups(config)]
    for seq, (is_tick, data) in enumerate(stream, start=1):
        record = records.decode(is_tick, data)
        for runner in runners:
            runner.apply_decoded(seq, record)
    for runner in runners:
        assert runner.applied == len(stream)
        assert len(runner.pipeline.groups[0].tracker.snapshot().id) > 0
        assert_same_group(runner, want)


@pytest.mark.parametrize("share", [0.0, 0.45, 0.9])
def test_a_group_moved_to_another_worker_goes_on_as_if_it_never_moved(
        config: HubConfig, stream: list[Record], share: float) -> None:
    want = single_process(config, stream)
    moved_at = max(1, int(share * len(stream)))
    for key in ("mission", "g2"):
        first = GroupRunner(config, key, lambda *message: True)
        run(first, stream, 1, moved_at)
        saved = first.checkpoint()
        # The new owner restores it; records it already applied come again (redelivery).
        second = GroupRunner(config, key, lambda *message: True)
        assert second.restore(saved)
        assert second.applied == moved_at
        run(second, stream, max(1, moved_at - 50), len(stream))
        assert_same_group(second, want)
        ids_before = set(first.pipeline.groups[0].tracker.snapshot().id.tolist())
        ids_after = set(second.pipeline.groups[0].tracker.snapshot().id.tolist())
        assert ids_before & ids_after or not ids_before  # objects keep their ids


def test_a_checkpoint_of_another_group_is_not_restored(config: HubConfig,
                                                        stream: list[Record]) -> None:
    first = GroupRunner(config, "g1", lambda *message: True)
    run(first, stream, 1, 500)
    other = GroupRunner(config, "g2", lambda *message: True)
    assert not other.restore(first.checkpoint())
    assert other.applied == 0


def test_a_record_that_is_not_ours_is_skipped_and_counted(config: HubConfig,
                                                          stream: list[Record]) -> None:
    runner = GroupRunner(config, "mission", lambda *message: True)
    runner.apply(1, False, b"\x93garbage")
    runner.apply(2, True, b"not a time")
    run(runner, stream, 3, 200)
    assert runner.bad_records == 2
    assert runner.applied == 200


def test_the_groups_spread_evenly_and_a_joining_worker_moves_only_its_share() -> None:
    keys = ["mission", *(f"g{i}" for i in range(1, 11))]
    two = assignment(keys, ["a", "b"])
    assert sorted(list(two.values()).count(w) for w in "ab") == [5, 6]
    three = assignment(keys, ["a", "b", "c"])
    assert max(list(three.values()).count(w) for w in "abc") == 4
    moved = [k for k in keys if two[k] != three[k]]
    assert all(three[k] == "c" for k in moved)  # only to the newcomer
    assert len(moved) <= 5
    assert assignment(keys, ["b", "a"]) == two  # the order workers are listed in is no matter
    assert assignment(keys, ["a", "b", "a"]) == two  # nor a worker listed twice
