"""``hub record``: write every inbound sensor message and the simulators' truth to a file."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import msgspec

from hub import topics
from hub.bus import Bus
from hub.config import HubConfig
from hub.lifecycle import stop_event
from hub.recording import RecordingWriter

RECORDED = ((topics.SENSORS_ALL, 1), (topics.TRUTH, 1))


async def record(config: HubConfig, path: Path, duration: float | None,
                 password: str | None = None) -> int:
    """Record until ``duration`` passes or a signal arrives; return the records written."""
    stop = stop_event(duration)
    broker = msgspec.structs.replace(config.broker, client_id=f"{config.broker.client_id}-rec")
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
