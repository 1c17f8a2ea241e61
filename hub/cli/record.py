"""``hub record``: write every inbound sensor message and the simulators' truth to a file."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import msgspec

from hub import topics
from hub.config import HubConfig
from hub.errors import ConfigError
from hub.lifecycle import stop_event
from hub.mqtt.bus import Bus
from hub.recording import RecordingWriter

RECORDED = ((topics.SENSORS_ALL, 1), (topics.TRUTH, 1))


def recorder_login(config: HubConfig, credentials: dict[str, str]) -> tuple[HubConfig, str]:
    """The config and password to record as ``broker_server.recorder_identity``.

    A broker written by ``hub broker-config`` takes the user name as client id, so
    recording under the hub's identity would disconnect the hub.
    """
    name = config.broker_server.recorder_identity
    if name not in credentials:
        raise ConfigError(f"$.broker_server.recorder_identity: no credentials for {name!r}")
    broker = msgspec.structs.replace(config.broker, username=name, client_id=name)
    return msgspec.structs.replace(config, broker=broker), credentials[name]


async def record(config: HubConfig, path: Path, duration: float | None,
                 password: str | None = None) -> int:
    """Record until ``duration`` passes or a signal arrives; return the records written."""
    stop = stop_event(duration)
    client_id = config.broker.client_id
    if client_id != config.broker_server.recorder_identity:
        client_id += "-rec"
    broker = msgspec.structs.replace(config.broker, client_id=client_id)
    with RecordingWriter(path) as writer:
        def keep(topic: str, payload: bytes) -> None:
            writer.write(time.time(), topic, payload)

        async with Bus(broker, subscriptions=RECORDED, handler=keep, will=None,
                       password=password):
            while not stop.is_set():
                with_timeout = asyncio.wait_for(stop.wait(), timeout=1.0)
                try:
                    await with_timeout
                except TimeoutError:
                    print(f"\rrecorded {writer.count} messages", end="", file=sys.stderr)
        print(f"\rrecorded {writer.count} messages to {path}", file=sys.stderr)
        return writer.count
