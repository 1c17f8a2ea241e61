"""``/metrics``: the hub's counters in the Prometheus text format, with prometheus-client.

Counters are not kept twice: at each scrape a collector reads ``hub/status``
(the same numbers MQTT monitors see) and the web sink's streams. A counter
``name.key`` (``rejected.schema``, ``frames_dropped.nld-uav-1``) becomes one
labelled family (``hub_rejected_by_code_total{code="schema"}``). Two histograms
are observed as things happen: the time of each fusion step, and the age of
the freshest data in each picture when it reaches the sinks (sensor to sink).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from hub.messages import HubStatus, Picture

LABEL_OF = {"rejected": "code", "frames_received": "sensor", "frames_processed": "sensor",
            "frames_dropped": "sensor", "frames_rejected": "sensor", "sink_delivered": "sink",
            "sink_dropped": "sink", "web_disconnects": "reason", "web_connects": "kind",
            "over_budget": "sensor"}
"""The label a counter's ``.key`` suffix becomes."""
STEP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class HubCollector:
    """Metric families read from ``hub/status`` and the web streams at each scrape."""

    def __init__(self, status: Callable[[], HubStatus], clients: Callable[[], dict[str, int]]
                 ) -> None:
        self.status = status
        self.clients = clients

    def collect(self) -> Iterator[Metric]:
        """Yield every family (prometheus-client's collector protocol)."""
        status = self.status()
        yield from counter_families(status.counters)
        queues = GaugeMetricFamily("hub_queue_length", "Items waiting in a queue now",
                                   labels=["queue"])
        for name, length in sorted(status.queues.items()):
            queues.add_metric([name], length)
        yield queues
        yield GaugeMetricFamily("hub_uptime_seconds", "Seconds since the hub started",
                                value=status.uptime)
        yield GaugeMetricFamily("hub_broker_connected", "1 while the hub's MQTT session is up",
                                value=float(status.broker == "connected"))
        clients = GaugeMetricFamily("hub_web_clients", "Console streams connected now",
                                    labels=["audience"])
        for audience, count in sorted(self.clients().items()):
            clients.add_metric([audience], count)
        yield clients


def counter_families(counters: dict[str, int]) -> Iterator[CounterMetricFamily]:
    """One family per plain counter, one labelled family per ``name.key`` group."""
    labelled: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, value in sorted(counters.items()):
        base, dot, key = name.partition(".")
        if dot:
            labelled[base].append((key, value))
        else:
            yield CounterMetricFamily(f"hub_{_safe(name)}", f"hub/status counter {name}",
                                      value=value)
    for base, values in labelled.items():
        label = LABEL_OF.get(base, "key")
        family = CounterMetricFamily(f"hub_{_safe(base)}_by_{label}",
                                     f"hub/status counter {base}, by {label}", labels=[label])
        for key, value in values:
            family.add_metric([key], value)
        yield family


def _safe(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


class HubMetrics:
    """The registry behind ``/metrics`` and the histograms the hub observes into."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.fusion_step = Histogram(
            "hub_fusion_step_seconds", "Time of one fusion step (what the reorder window "
            "released, through every group's tracker)", buckets=STEP_BUCKETS,
            registry=self.registry)
        self.sensor_to_sink = Histogram(
            "hub_sensor_to_sink_seconds", "Age of the freshest measurement in a picture when "
            "it reaches the sinks (measurement time to delivery)", ["audience"],
            buckets=LATENCY_BUCKETS, registry=self.registry)

    def watch(self, status: Callable[[], HubStatus], clients: Callable[[], dict[str, int]]
              ) -> None:
        """Read ``status`` and the web ``clients`` at each scrape."""
        self.registry.register(HubCollector(status, clients))

    def picture_delivered(self, audience: str, picture: Picture) -> None:
        """Observe the sensor-to-sink latency of a picture handed to the sinks."""
        times = [t.last_update for t in picture.tracks if t.last_update is not None]
        if times:
            self.sensor_to_sink.labels(audience).observe(max(time.time() - max(times), 0.0))

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The text to answer a scrape with, in the format ``accept`` asks for."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
