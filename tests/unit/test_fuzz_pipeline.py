"""The pipeline survives 10,000 fuzzed messages on every inbound topic, good traffic unaffected.

A short simulated mission is interleaved with seeded fuzz: mutated valid messages
and mangled bytes on every registered sensor's four topics, real payloads from
unknown ids, and malformed topics. Every fuzzed message must be dead-lettered,
every good one accepted, received = accepted + rejected, and the mission picture
must equal the one a replay of the good stream alone builds.
"""

from __future__ import annotations

import random

import numpy as np
from fuzzing import BAD_IDS, KINDS, refused_payload

from hub import topics
from hub.config import DEFAULT_CONFIG, load_config
from hub.pipeline import Pipeline
from hub.release.groups import MISSION
from simulators.engine import generate
from simulators.scenario import load_scenario

FUZZ_COUNT = 10_000
SEED = 20_240_607
LATENCY_S = 0.05

Record = tuple[float, str, bytes]


def good_stream(seconds: float = 40.0) -> list[Record]:
    """The default scenario's sensor messages as received, ``LATENCY_S`` after their time."""
    scenario = load_scenario("default").with_duration(seconds)
    return [(t + LATENCY_S, topic, payload) for t, topic, payload in generate(scenario)
            if topic.startswith("sensors/")]


def fuzz_message(rng: random.Random, t_received: float, sensor_ids: list[str],
                 good: list[Record]) -> tuple[str, bytes]:
    """One message the hub must refuse: a topic and its payload."""
    roll = rng.random()
    if roll < 0.08:  # a real, valid payload from a unit nobody registered
        return f"sensors/intruder-{rng.randrange(5)}/{rng.choice(list(KINDS))}", \
            rng.choice(good)[2]
    if roll < 0.14:
        topic = rng.choice([f"sensors/{rng.choice(BAD_IDS)}/telemetry", "sensors/x",
                            f"sensors/{sensor_ids[0]}/video", f"sensors/{sensor_ids[1]}/a/b",
                            "cop/ken/picture", "", "sensors/+/detections", "sensors/#",
                            "sim/truth", "/" * rng.randrange(1, 9), "x" * 70_000])
        return topic, rng.choice(good)[2]
    kind = rng.choice(list(KINDS))
    topic = topics.sensor(rng.choice(sensor_ids), kind)  # type: ignore[arg-type]
    payloads = [record[2] for record in good]
    return topic, refused_payload(rng, kind, t_received, payloads, mangle=roll >= 0.8)


def interleave(good: list[Record], count: int, seed: int) -> list[tuple[Record, bool]]:
    """``good`` with ``count`` fuzzed messages between them, each flagged fuzz or not."""
    rng = random.Random(seed)
    sensor_ids = [s.id for s in load_config(DEFAULT_CONFIG).sensors]
    slots = sorted(rng.randrange(len(good)) for _ in range(count))
    out: list[tuple[Record, bool]] = []
    k = 0
    for i, record in enumerate(good):
        out.append((record, False))
        while k < count and slots[k] == i:
            # The fuzz shares the receive time of the good message before it, so the
            # extra flushes release nothing the good-only run would not.
            topic, payload = fuzz_message(rng, record[0], sensor_ids, good)
            out.append(((record[0], topic, payload), True))
            k += 1
    return out


def run(records: list[tuple[Record, bool]]) -> tuple[Pipeline, list[bool], list[bool]]:
    """Feed every record; return the pipeline and handle()'s verdicts for good and fuzz."""
    pipeline = Pipeline(load_config(DEFAULT_CONFIG))
    verdicts: dict[bool, list[bool]] = {False: [], True: []}
    for (t_received, topic, payload), is_fuzz in records:
        accepted = pipeline.handle(topic, payload, t_received)
        verdicts[is_fuzz].append(accepted)
        # Refused for a reason, never by a failure (letters are summarised: count the codes).
        assert pipeline.counters["rejected.internal"] == 0, topic
        pipeline.flush(t_received)
    pipeline.finish()
    return pipeline, verdicts[False], verdicts[True]


def test_ten_thousand_fuzzed_messages_leave_the_picture_unchanged() -> None:
    good = good_stream()
    fuzzed, good_verdicts, fuzz_verdicts = run(interleave(good, FUZZ_COUNT, SEED))
    reference, reference_verdicts, _ = run([(record, False) for record in good])

    assert len(fuzz_verdicts) == FUZZ_COUNT and not any(fuzz_verdicts)
    assert all(good_verdicts) and good_verdicts == reference_verdicts
    counters = fuzzed.counters
    assert counters["received"] == len(good) + FUZZ_COUNT
    assert counters["received"] == sum(good_verdicts) + counters["rejected"]
    assert counters["rejected"] == FUZZ_COUNT
    # Count in = fused + dead-lettered: every good message that carries a fusion item
    # was fused, exactly as without the fuzz.
    assert counters["fused"] == reference.counters["fused"] > 0
    assert fuzzed.router.counters == reference.router.counters
    for group, ref_group in zip(fuzzed.groups, reference.groups, strict=True):
        tracks, ref_tracks = group.tracker.snapshot(), ref_group.tracker.snapshot()
        assert np.array_equal(tracks.id, ref_tracks.id)
        assert np.array_equal(tracks.x, ref_tracks.x)
        assert np.array_equal(tracks.status, ref_tracks.status)
        assert group.fused == ref_group.fused
    assert MISSION in fuzzed.groups[0].group.key
    mission = fuzzed.groups[0].tracker.snapshot()
    assert (mission.status > 0).sum() > 0, "the good stream should confirm tracks"
