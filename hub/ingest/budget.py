"""Each registered sensor's inbound budget, charged before anything is decoded.

The hub reads every sensor on one MQTT session, so a sensor that floods
would otherwise take the loop from all the others. Here the topic is split
(no id check: the router does that for what passes), the sensor's bucket
(hub.bucket, rates by kind from ``ingest.budget``) is charged with the
payload's size, and a message over budget is dropped on the spot: invalid
messages are charged like valid ones, so decoding and refusing them cannot
starve anyone either. A drop is counted per sensor, nothing more; the
pipeline summarises drops on ``hub/deadletter``.
"""

from __future__ import annotations

from collections import Counter

from hub.bucket import Bucket
from hub.config import HubConfig

OVER_BUDGET = "over_budget"


class SensorBudgets:
    """One bucket per registered sensor; a message of any other topic passes untouched."""

    def __init__(self, config: HubConfig, counters: Counter[str]) -> None:
        budget = config.ingest.budget
        self._buckets = {s.id: Bucket(*budget.of(s.kind), budget.burst_s)
                         for s in config.sensors}
        self._counter_of = {s.id: f"{OVER_BUDGET}.{s.id}" for s in config.sensors}
        self._reasons = {i: f"over sensor {i}'s budget of {b.message_rate:,.0f} messages/s, "
                            f"{b.byte_rate:,.0f} bytes/s" for i, b in self._buckets.items()}
        self.counters = counters
        """Where ``over_budget`` and ``over_budget.{sensor_id}`` are counted."""

    def over(self, topic: str, size: int, now: float) -> str | None:
        """Charge ``topic``'s sensor for ``size`` bytes at ``now``.

        Returns None when the message may go on (within budget, or no registered
        sensor's topic: the router refuses those), else the sensor's id.
        """
        parts = topic.split("/", 2)
        if len(parts) < 3 or parts[0] != "sensors":
            return None
        bucket = self._buckets.get(parts[1])
        if bucket is None or bucket.take(size, now):
            return None
        counters = self.counters
        counters[OVER_BUDGET] += 1
        counters[self._counter_of[parts[1]]] += 1
        return parts[1]

    def reason(self, sensor_id: str) -> str:
        """Why ``sensor_id``'s message was dropped, for its dead letter."""
        return self._reasons[sensor_id]

    def credit(self, seconds: float) -> None:
        """Every sensor may send ``seconds`` more of its budget: the backlog of an outage."""
        for bucket in self._buckets.values():
            bucket.credit(seconds)
