"""The reconnect delay (hub.lifecycle.backoff_delay): exponential, bounded, jittered."""

from hub.lifecycle import backoff_delay


def test_delay_grows_exponentially_within_half_to_full_ceiling() -> None:
    for attempt in range(6):
        ceiling = 0.1 * 2**attempt
        delays = [backoff_delay(attempt, 0.1, 100.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10, "jitter spreads the delays"


def test_delay_is_capped_even_after_many_attempts() -> None:
    assert all(5.0 <= backoff_delay(a, 0.1, 10.0) <= 10.0 for a in (20, 100, 10_000))
