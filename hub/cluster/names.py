"""Where a clustered hub keeps things on NATS: streams, buckets and subjects.

Every name carries the config's ``cluster.prefix``, so two hubs can share a
cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.config import Cluster

QOS1_KINDS = ("telemetry", "detections", "status")
"""The QoS 1 kinds of ``sensors/{id}/...`` (frames are QoS 0: live only, on core NATS)."""


@dataclass(frozen=True, slots=True)
class Names:
    """The NATS names of one clustered hub."""

    prefix: str

    @staticmethod
    def of(cluster: Cluster) -> Names:
        return Names(cluster.prefix)

    @property
    def inputs_stream(self) -> str:
        """What changes fusion, in the one order every fusion worker applies it."""
        return f"{self.prefix}_inputs".upper()

    @property
    def item_subject(self) -> str:
        """A validated item (a sensor's scan, a platform's fix) with its receive time."""
        return f"{self.prefix}.in.item"

    @property
    def tick_subject(self) -> str:
        """A fusion step: what the reorder window releases at its time."""
        return f"{self.prefix}.in.tick"

    @property
    def status_subject(self) -> str:
        """Each worker's report (core NATS, not stored): its groups and progress."""
        return f"{self.prefix}.workers"

    @property
    def leases(self) -> str:
        """Key-value bucket of leases (groups, the clock) and live workers' heartbeats."""
        return f"{self.prefix}_leases"

    @property
    def checkpoints(self) -> str:
        """Object store of each group's checkpoint."""
        return f"{self.prefix}_checkpoints"

    @property
    def imagery_queue(self) -> str:
        """The queue group the imagery workers share frames in."""
        return f"{self.prefix}_imagery"
