"""The one place where MQTT topics are built and parsed.

Ids that would change a topic's structure (``/ + # $``, NUL) or exceed 64
characters are refused, so no sensor or partner id can reach another's topics.
"""

import re
from typing import Literal

from hub.errors import PayloadError

ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")

InboundKind = Literal["telemetry", "detections", "frames", "status"]
INBOUND_KINDS: tuple[InboundKind, ...] = ("telemetry", "detections", "frames", "status")

SENSORS_ALL = "sensors/+/+"
SENSORS_TREE = "sensors/#"
COP_TREE = "cop/#"
HUB_TREE = "hub/#"
TRUTH = "sim/truth"
HUB_STATUS = "hub/status"
DEADLETTER = "hub/deadletter"


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid sensor or partner id, else raise PayloadError."""
    if not ID_PATTERN.fullmatch(value):
        raise PayloadError("topic",
                           f"invalid {what} {value[:80]!r}: must match [A-Za-z0-9_.-]{{1,64}}")
    return value


def sensor(sensor_id: str, kind: InboundKind) -> str:
    """Topic on which sensor ``sensor_id`` publishes messages of ``kind``."""
    return f"sensors/{check_id(sensor_id, 'sensor id')}/{kind}"


def sensor_all(sensor_id: str) -> str:
    """Filter of everything sensor ``sensor_id`` publishes (its ACL pattern)."""
    return f"sensors/{check_id(sensor_id, 'sensor id')}/#"


def partner_picture(partner_id: str) -> str:
    """Topic of partner ``partner_id``'s picture deltas."""
    return f"cop/{check_id(partner_id, 'partner id')}/picture"


def partner_snapshot(partner_id: str) -> str:
    """Retained topic of partner ``partner_id``'s full picture."""
    return f"cop/{check_id(partner_id, 'partner id')}/snapshot"


def partner_all(partner_id: str) -> str:
    """Subscription filter for everything published to partner ``partner_id``."""
    return f"cop/{check_id(partner_id, 'partner id')}/#"


def parse_sensor_topic(topic: str) -> tuple[str, InboundKind]:
    """Split ``sensors/{id}/{kind}`` into its id and kind, or raise PayloadError."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "sensors":
        raise PayloadError("topic", f"not a sensor topic: {topic[:120]!r}")
    sensor_id, kind = check_id(parts[1], "sensor id"), parts[2]
    if kind not in INBOUND_KINDS:
        raise PayloadError("topic", f"unknown message kind {kind[:40]!r}")
    return sensor_id, kind
