"""The bounds the generated Mosquitto config puts on each client, and why each is what it is.

Mosquitto 2.0 has one set of queue and in-flight bounds for every client
(``max_inflight_*``, ``max_queued_*``, ``persistent_client_expiration`` and
``max_keepalive`` are global; only ``max_connections`` is per listener). The
same numbers must serve the hub, one subscriber taking every sensor's messages
(hundreds a second, each ~0.2-4 KB), and a partner, a picture a second (~10-110
KB). So the counts are sized for the hub, and the bytes are what stop a partner
that parks a persistent session: before these bounds Mosquitto queued 100,000
pictures for it, about 1 GiB, and kept them for ever.

Every figure is derived in ``broker_limits`` from the registry and the hub's
config, and ``conf_lines`` writes each with the comment that says why.
docs/ARCHITECTURE.md (*Broker bounds*) has the reasoning at length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hub.broker.acl import identities
from hub.config import HubConfig

# Room above the largest payload for the fixed header, a topic and MQTT 5 properties.
PACKET_OVERHEAD = 64 * 1024
# The inbound rate the hub is sized for, messages/s: about what it fuses of 33-detection
# batches on one core (bench_e2e: 2,156 msg/s); telemetry goes ten times faster and is
# acknowledged as fast, so it never waits on the window.
INBOUND_RATE = 2_000
# The hub acknowledges a message when its handler has queued it; the longest it may take
# is a stall of its event loop. A stall longer than the reorder window already makes
# measurements late, so the window is the acknowledgement delay the hub is sized to bear;
# with no window (latency-first configs), this one.
MIN_ACK_DELAY_S = 0.1
# Seconds of the hub's inbound the broker holds while the hub is away or behind: longer and
# the picture it would build is too stale to be worth the backlog.
BACKLOG_S = 5.0
# A typical inbound message: a 33-detection batch is 3.3 KB, telemetry ~170 bytes.
MESSAGE_BYTES = 4 * 1024
# Mosquitto counts persistent_client_expiration in hours at the finest; one hour is also
# the session the hub asks for itself (broker.session_expiry, 3600 s).
SESSION_EXPIRY_H = 1
# MQTT 5 clients asking for no keepalive, or a longer one, are told to ping this often, so
# a vanished one is dropped within 1.5x this and its session starts to expire (raised to
# the hub's own broker.keepalive if that is longer).
MAX_KEEPALIVE_S = 300
# Connections beyond two per identity: logins being refused, a port scan.
CONNECTION_SLACK = 16
MQTT_MAX_INFLIGHT = 65_535


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """What one client may cost the broker; each figure's reason is at its constant above."""

    max_packet_size: int
    max_inflight_messages: int
    max_inflight_bytes: int
    max_queued_messages: int
    max_queued_bytes: int
    session_expiry_h: int
    max_keepalive_s: int
    max_connections: int

    def listener_lines(self) -> list[str]:
        """Lines that belong under each ``listener`` line."""
        return [
            "# Each identity holds one connection (its user name is its client id); twice",
            "# that for units reconnecting before their old connection is noticed dead,",
            f"# plus {CONNECTION_SLACK} for logins being refused. (Mosquitto 2.0.11 frees a",
            "# place too many for each closed connection, so there the bound loosens with",
            "# time; 2.0.12 fixed it.)",
            f"max_connections {self.max_connections}",
        ]

    def conf_lines(self) -> list[str]:
        """The global bounds, each with the reason for its figure (Mosquitto applies them
        to every client alike)."""
        return [
            "# A packet larger than the largest payload the hub accepts (+64 KiB of",
            "# headers) disconnects its sender.",
            f"max_packet_size {self.max_packet_size}",
            "# Unacknowledged QoS 1 messages in flight to one client. The hub takes every",
            f"# sensor's messages ({INBOUND_RATE} msg/s by design) and acknowledges each within",
            "# the reorder window at worst: window / delay is the rate a client can get,",
            "# so this never holds the hub back. A client that stops reading holds this",
            "# many at most, and no more than max_inflight_bytes (one message larger",
            "# than that still goes, alone).",
            f"max_inflight_messages {self.max_inflight_messages}",
            f"max_inflight_bytes {self.max_inflight_bytes}",
            "# Queued for one client beyond those, connected or parked; the first bound",
            f"# reached holds. Messages: {BACKLOG_S:g} s of the hub's inbound. Bytes: as",
            f"# many {MESSAGE_BYTES // 1024} KiB messages; for a partner, about an hour of the",
            "# demo mission's pictures (41 MiB/h). A parked partner cost up to 1 GiB",
            "# without these.",
            "# Mosquitto drops what comes beyond: the partner sees a seq gap and takes",
            "# the next full picture.",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_queued_bytes {self.max_queued_bytes}",
            "# A persistent session (clean session false, or a longer MQTT 5 session",
            "# expiry) disconnected this long is deleted with its queue: a partner back",
            "# later starts from the retained snapshot. Hours are Mosquitto's finest unit.",
            f"persistent_client_expiration {self.session_expiry_h}h",
            "# MQTT 5 clients asking for no keepalive, or a longer one, get this one, so",
            "# a vanished client is dropped and its session starts to expire. Mosquitto",
            "# 2.0.12 and later refuse such MQTT 3.1.1 clients instead.",
            f"max_keepalive {self.max_keepalive_s}",
        ]


def max_packet_size(config: HubConfig) -> int:
    """The broker's packet limit: the largest payload the hub accepts, plus headers."""
    ingest = config.ingest
    return max(ingest.max_frame_bytes, ingest.max_payload_bytes) + PACKET_OVERHEAD


def inflight_window(reorder_window_s: float) -> int:
    """In-flight messages per client so that the hub's subscription is never held back.

    The broker sends a client at most this many unacknowledged messages, so a client
    acknowledging within ``d`` seconds receives at most ``window / d`` a second: the hub,
    acknowledging within the reorder window, gets ``INBOUND_RATE`` at that delay.
    """
    delay = max(reorder_window_s, MIN_ACK_DELAY_S)
    return min(math.ceil(INBOUND_RATE * delay), MQTT_MAX_INFLIGHT)


def broker_limits(config: HubConfig) -> BrokerLimits:
    """The bounds for the registry and the hub's settings in ``config``."""
    packet = max_packet_size(config)
    queued = math.ceil(INBOUND_RATE * BACKLOG_S)
    return BrokerLimits(
        max_packet_size=packet,
        max_inflight_messages=inflight_window(config.fusion.reorder_window_s),
        # The hub's window of small messages is ~4 MiB; one message larger than this
        # still goes, alone.
        max_inflight_bytes=packet,
        max_queued_messages=queued,
        max_queued_bytes=queued * MESSAGE_BYTES,
        session_expiry_h=SESSION_EXPIRY_H,
        max_keepalive_s=max(MAX_KEEPALIVE_S, config.broker.keepalive),
        max_connections=2 * len(identities(config)) + CONNECTION_SLACK,
    )
