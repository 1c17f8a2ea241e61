"""A small MQTT 3.1.1 broker (amqtt) for machines without Mosquitto.

Run as ``python -m hub.broker.embedded --port N``; ``hub.broker.launcher.start_broker``
does that in a child process. It stops on SIGTERM or SIGINT, and by itself when
the process that started it (``--parent-pid``) is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable
from typing import Any

from hub.lifecycle import first_of, stop_event

PARENT_POLL_S = 1.0


def broker_config(host: str, port: int) -> dict[str, Any]:
    """Return the amqtt config: one TCP listener, anonymous access, no $SYS topics."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def _parent_gone(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_POLL_S)


async def serve(host: str, port: int, parent_pid: int | None) -> None:
    """Serve MQTT on ``host:port`` until a stop signal or the parent's death."""
    from amqtt.broker import Broker  # imported here: slow, and only the child needs it

    broker = Broker(broker_config(host, port))
    await broker.start()
    endings: list[Awaitable[object]] = [stop_event().wait()]
    if parent_pid is not None:
        endings.append(_parent_gone(parent_pid))
    try:
        await first_of(*endings)
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args.host, args.port, args.parent_pid))


if __name__ == "__main__":
    main()
