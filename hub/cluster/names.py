"""Where a clustered hub keeps things on NATS: streams, buckets, subjects, and MQTT topics.

Every name carries the config's ``cluster.prefix``, so two hubs can share a
cluster. Field units publish MQTT to a node; NATS maps each MQTT topic to a
subject (``/`` becomes ``.``, a ``.`` inside a level becomes ``//``), and the
raw stream captures the sensors' subjects from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.config import Cluster

RAW_KINDS = ("telemetry", "detections", "status")
"""What the raw stream keeps of ``sensors/+/...``: QoS 1 kinds (frames are QoS 0, live only)."""


@dataclass(frozen=True, slots=True)
class Names:
    """The NATS names of one clustered hub."""

    prefix: str

    @staticmethod
    def of(cluster: Cluster) -> Names:
        return Names(cluster.prefix)

    @property
    def raw_stream(self) -> str:
        """Field units' messages as they came, until an ingest worker took each."""
        return f"{self.prefix}_raw".upper()

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
    def ingest_durable(self) -> str:
        """The durable consumer the ingest workers share."""
        return f"{self.prefix}_ingest"

    @property
    def imagery_queue(self) -> str:
        """The queue group the imagery workers share frames in."""
        return f"{self.prefix}_imagery"


def raw_subjects() -> list[str]:
    """The subjects the raw stream captures."""
    return [f"sensors.*.{kind}" for kind in RAW_KINDS]


def topic_of(subject: str) -> str:
    """The MQTT topic NATS mapped to ``subject``: levels split at ``.``, ``//`` back to ``.``."""
    return "/".join(level.replace("//", ".") for level in subject.split("."))


def subject_of(topic: str) -> str:
    """The NATS subject of MQTT ``topic`` (``topic_of``'s inverse)."""
    return ".".join(level.replace(".", "//") for level in topic.split("/"))
