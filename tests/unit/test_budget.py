"""Budgets (hub.bucket, hub.ingest.budget) and dead-letter summaries (hub.ingest.deadletters)."""

from __future__ import annotations

from collections import Counter

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.bucket import Bucket
from hub.config import DEFAULT_CONFIG, ByteRates, HubConfig, MessageRates, load_config, parse_config
from hub.errors import ConfigError
from hub.ingest.budget import SensorBudgets
from hub.ingest.deadletters import DeadLetters
from hub.pipeline import Pipeline
from hub.service import HubService
from hub.web.metrics import HubMetrics

T = 1.8e9
UAV = "bra-uav-1"
RADAR = "ken-radar-1"


# --- the bucket ------------------------------------------------------------------------------

def test_a_bucket_admits_its_burst_then_its_rate() -> None:
    bucket = Bucket(10.0, 1e6, 2.0, T)
    assert sum(bucket.take(100, T) for _ in range(50)) == 20
    assert sum(bucket.take(100, T + 0.5) for _ in range(50)) == 5
    assert sum(bucket.take(100, T + 10.0) for _ in range(50)) == 20  # refilled to the burst


def test_an_outage_is_credited_beyond_the_burst_until_spent() -> None:
    bucket = Bucket(10.0, 1e9, burst_s=2.0, now=0.0)
    bucket.credit(5.0)  # the hub could not hear the sender for 5 s: 50 more, at once
    assert sum(bucket.take(1, 0.0) for _ in range(100)) == 20 + 50
    assert sum(bucket.take(1, 10.0) for _ in range(100)) == 20  # then the burst, as before


def test_a_credit_adds_to_the_rate_while_a_backlog_drains() -> None:
    bucket = Bucket(10.0, 1e9, burst_s=2.0, now=0.0)
    bucket.credit(5.0)
    # 15 a second for 10 s: the burst, the rate and the credit allow 20 + 100 + 50.
    admitted = sum(bucket.take(1, k / 15) for k in range(150))
    assert admitted == 150


def test_a_refused_message_costs_nothing() -> None:
    bucket = Bucket(1.0, 1e6, 1.0, T)
    assert bucket.take(10, T)
    assert not any(bucket.take(10, T + 0.1 * k) for k in range(1, 10))
    assert bucket.take(10, T + 1.0)  # a second after the last admitted, whatever came between


def test_bytes_are_charged_and_one_large_message_passes_then_is_repaid() -> None:
    bucket = Bucket(1e6, 1_000.0, 2.0, T)
    assert [bucket.take(600, T) for _ in range(5)] == [True, True, True, True, False]
    assert bucket.bytes == pytest.approx(-400.0)  # in debt: the 4th was let through whole
    assert not bucket.take(1, T + 0.3)
    assert bucket.take(50_000, T + 0.5)  # larger than the whole allowance: once
    assert not bucket.take(1, T + 40.0)
    assert bucket.take(1, T + 50.5)


def test_a_clock_that_steps_back_refills_nothing() -> None:
    bucket = Bucket(1.0, 1e6, 1.0, T)
    assert bucket.take(1, T)
    assert not bucket.take(1, T - 100.0)
    assert not bucket.take(1, T + 0.5)
    assert bucket.take(1, T + 1.0)


def test_a_rate_below_one_per_burst_still_admits_one() -> None:
    bucket = Bucket(0.1, 1e6, 2.0, T)
    assert bucket.take(1, T) and not bucket.take(1, T + 1.0)
    assert bucket.take(1, T + 10.0)


# --- per sensor ------------------------------------------------------------------------------

def config_with(**budget: object) -> HubConfig:
    return parse_config({"mission": {"origin": {"lat": 1.0, "lon": 2.0}},
                         "ingest": {"budget": budget}})


def test_each_sensor_has_the_budget_of_its_kind() -> None:
    budgets = SensorBudgets(load_config(DEFAULT_CONFIG), Counter())
    assert budgets.reason(UAV) == (
        f"over sensor {UAV}'s budget of 300 messages/s, 33,554,432 bytes/s")
    assert budgets.reason(RADAR).startswith(f"over sensor {RADAR}'s budget of 100 messages/s")


def test_kinds_not_configured_keep_their_defaults() -> None:
    config = config_with(burst_s=1.0, messages_per_s={"uav": 5.0}, bytes_per_s={"radar": 9.0})
    budget = config.ingest.budget
    assert budget.of("uav") == (5.0, ByteRates().uav)
    assert budget.of("radar") == (MessageRates().radar, 9.0)
    assert budget.of("team") == (MessageRates().team, ByteRates().team) == (20.0, 262_144.0)


@pytest.mark.parametrize(("budget", "problem"), [
    ({"messages_per_s": {"tank": 5.0}},
     "$.ingest.budget.messages_per_s: Object contains unknown field `tank`"),
    ({"bytes_per_s": {"uav": 0.0}}, "$.ingest.budget.bytes_per_s.uav"),
    ({"burst_s": -1.0}, "$.ingest.budget.burst_s"),
    ({"messages_per_s": {"uav": float("inf")}}, "$.ingest.budget.messages_per_s.uav"),
])
def test_a_bad_budget_names_its_key(budget: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_with(**budget)
    assert str(info.value).startswith(problem)


def test_a_sensor_over_budget_is_counted_and_the_others_pass() -> None:
    counters: Counter[str] = Counter()
    budgets = SensorBudgets(load_config(DEFAULT_CONFIG), counters)
    over = [budgets.over(f"sensors/{UAV}/telemetry", 100, T) for _ in range(1_000)]
    assert over.count(None) == 600 and set(over[600:]) == {UAV}  # 300/s, 2 s of burst
    assert budgets.over(f"sensors/{RADAR}/detections", 100, T) is None
    assert budgets.over("sensors/nobody/detections", 100, T) is None  # the router's to refuse
    assert budgets.over("not/a/sensor/topic", 100, T) is None
    assert counters == {"over_budget": 400, f"over_budget.{UAV}": 400}


# --- in the pipeline -------------------------------------------------------------------------

def batch(seq: int, ts: float = T) -> bytes:
    payload: bytes = msgpack.packb({"ts": ts, "seq": seq, "detections": []})
    return payload


def test_over_budget_is_dropped_before_decoding_and_summarised() -> None:
    pipeline = Pipeline(load_config(DEFAULT_CONFIG))
    topic = f"sensors/{UAV}/detections"
    payloads = [batch(k) if k % 2 else b"\xc1" for k in range(2_000)]
    accepted = [pipeline.handle(topic, payload, T) for payload in payloads]
    assert accepted == [k % 2 == 1 for k in range(600)] + [False] * 1_400  # 2 s of 300/s
    counters = pipeline.counters
    assert counters["rejected"] == counters["rejected.undecodable"] == 300
    assert counters["over_budget"] == counters[f"over_budget.{UAV}"] == 1_400
    assert counters["received"] == 2_000
    letters = pipeline.take_dead_letters(T + 1.0)
    assert [(d.code, d.count) for d in letters] == [
        ("undecodable", 1), ("rate", 1), ("undecodable", 299), ("rate", 1_399)]
    assert letters[-1].size == sum(len(p) for p in payloads[601:])
    assert pipeline.take_dead_letters(T + 2.0) == []


def test_status_and_metrics_count_over_budget_by_sensor() -> None:
    service = HubService(load_config(DEFAULT_CONFIG))
    for k in range(700):
        service.pipeline.handle(f"sensors/{UAV}/detections", batch(k), T)
    counters = service.status().counters
    assert counters["over_budget"] == counters[f"over_budget.{UAV}"] == 100
    assert counters["dead_letters_summarized"] == 99
    metrics = HubMetrics()
    metrics.watch(service.status, dict)
    text, _ = metrics.exposition("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert families["hub_over_budget"].samples[0].value == 100
    assert [(s.labels, s.value) for s in families["hub_over_budget_by_sensor"].samples] == [
        ({"sensor": UAV}, 100.0)]


# --- dead-letter summaries -------------------------------------------------------------------

def test_the_first_refusal_goes_alone_the_rest_of_its_second_as_one_summary() -> None:
    counters: Counter[str] = Counter()
    letters = DeadLetters(counters, backlog=100)
    for k in range(10):
        letters.add("s1", "sensors/s1/telemetry", 10 + k, "schema", f"bad {k}", T + 0.05 * k)
    letters.add("s1", "sensors/s1/telemetry", 5, "stale", "old", T + 0.5)
    letters.add("s2", "sensors/s2/telemetry", 5, "schema", "bad", T + 0.5)
    assert [(d.topic, d.code, d.count) for d in letters.ready] == [
        ("sensors/s1/telemetry", "schema", 1), ("sensors/s1/telemetry", "stale", 1),
        ("sensors/s2/telemetry", "schema", 1)]
    letters.close(T + 0.99)
    assert len(letters.ready) == 3  # the window is still open
    letters.close(T + 1.0)
    summary = letters.ready[-1]
    assert (summary.code, summary.count, summary.size, summary.ts) == (
        "schema", 9, sum(range(11, 20)), T + 0.05 * 9)
    assert summary.reason == "9 more within 1 s; the last: bad 9"
    assert counters["dead_letters_summarized"] == 9
    assert sum(d.count for d in letters.ready) == 12


def test_a_refusal_after_the_window_starts_a_new_one() -> None:
    letters = DeadLetters(Counter(), backlog=100)
    for t in (T, T + 0.3, T + 0.5, T + 1.2, T + 1.3, T + 5.0):
        letters.add("s1", "sensors/s1/detections", 1, "schema", "bad", t)
    # Without a close between: a new window first sends the summary of the last.
    assert [(d.count, d.ts) for d in letters.ready] == [
        (1, T), (2, T + 0.5), (1, T + 1.2), (1, T + 1.3), (1, T + 5.0)]
    assert [d.reason.startswith("1 more") for d in letters.ready] == [
        False, False, False, True, False]


def test_a_full_backlog_drops_the_oldest_and_counts_it() -> None:
    counters: Counter[str] = Counter()
    letters = DeadLetters(counters, backlog=3)
    for k in range(5):
        letters.add(f"s{k}", "sensors/x/detections", 1, "schema", "bad", T)
    assert len(letters.ready) == 3 and counters["dead_letters_dropped"] == 2
