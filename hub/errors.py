"""The hub's error tree; library errors are translated into these at the boundary."""


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class PayloadError(HubError, ValueError):
    """An inbound message is malformed, out of range or not allowed.

    ``reason`` is a short, log-safe explanation that goes into the dead letter.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(HubError, ValueError):
    """A configuration or scenario file is invalid; the message names the key."""


class BrokerUnavailable(HubError, ConnectionError):
    """The MQTT broker cannot be reached or refused the connection."""
