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
    def pictures_stream(self) -> str:
        """The last full picture (or withdrawal) of each audience, for a publish process that
        starts later (``max_msgs_per_subject`` 1)."""
        return f"{self.prefix}_pictures".upper()

    def picture_subject(self, audience: str, full: bool) -> str:
        """Where ``audience``'s full pictures (stored) or deltas (core NATS only) go."""
        return f"{self.prefix}.picture.{audience}.{'full' if full else 'delta'}"

    @property
    def pictures(self) -> str:
        """Every audience's pictures, full and delta: what a publish process follows."""
        return f"{self.prefix}.picture.>"

    @property
    def full_pictures(self) -> str:
        """Every audience's full pictures and withdrawals: the pictures stream's subjects."""
        return f"{self.prefix}.picture.*.full"

    @property
    def internal(self) -> tuple[str, ...]:
        """The subjects only the hub's workers may use: items, steps, reports, pictures.

        With the default prefix ``hub`` they sit under MQTT's ``hub/#``, which a
        monitor may read: a partner's pictures or a validated item must not reach it.
        """
        return (self.item_subject, self.tick_subject, self.status_subject, self.pictures)

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
