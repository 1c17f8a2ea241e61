"""A small MQTT 3.1.1 broker (amqtt) for machines without Mosquitto.

Run as ``python -m hub.embedded_broker --port N``; ``hub.broker.start_broker``
does that in a child process. It stops on SIGTERM or SIGINT, and by itself when
the process that started it (``--parent-pid``) is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    waiters: list[asyncio.Task[object]] = [asyncio.create_task(stop.wait())]
    if parent_pid is not None:
        waiters.append(asyncio.create_task(_parent_gone(parent_pid)))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
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
