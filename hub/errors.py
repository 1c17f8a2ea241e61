"""The hub's error tree; library errors are translated into these at the boundary."""

from __future__ import annotations

from typing import Final, Literal

RefusalCode = Literal["topic", "unknown_sensor", "too_large", "undecodable", "schema", "future",
                      "stale", "image", "pose", "unsupported", "identity", "rate", "internal"]
"""Why an inbound message was refused, as a stable code (docs/PROTOCOL.md lists them)."""
REFUSAL_CODES: Final[tuple[RefusalCode, ...]] = (
    "topic", "unknown_sensor", "too_large", "undecodable", "schema", "future", "stale", "image",
    "pose", "unsupported", "identity", "rate", "internal")


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class PayloadError(HubError, ValueError):
    """An inbound message is malformed, out of range or not allowed.

    ``code`` says why in a word programs can count on; ``reason`` is a short,
    log-safe explanation for people. Both go into the dead letter.
    """

    def __init__(self, code: RefusalCode, reason: str) -> None:
        super().__init__(reason)
        self.code: RefusalCode = code
        self.reason = reason

    def __reduce__(self) -> tuple[type[PayloadError], tuple[RefusalCode, str]]:
        return type(self), (self.code, self.reason)


class ConfigError(HubError, ValueError):
    """A configuration or scenario file is invalid; the message names the key."""


class BrokerUnavailable(HubError, ConnectionError):
    """The MQTT broker cannot be reached or refused the connection."""
