"""A NATS connection with the hub's failover settings, for the roles that run on the cluster.

nats-py is imported here, inside the call, not at the top: it costs 0.35 s of start-up
(tests/unit/test_startup.py), which a hub without ``[cluster]`` never needs.

Given every node's URL the client moves to the next node when its node dies and keeps
trying for ever (nats-py's default gives up after 60 attempts); a reconnect retries the
first node after ``reconnect_wait``. Its errors go to the hub's rate-limited log as
warnings: a node's death is an event the cluster rides out, not a fault of the hub.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hub.errors import BrokerUnavailable
from hub.metrics import RateLimitedLog

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
RECONNECT_WAIT_S = 0.2
FIRST_CONNECT_S = 10.0


async def connect_nats(servers: Sequence[str], *, name: str,
                       first_connect: float = FIRST_CONNECT_S,
                       connect_timeout: float = CONNECT_TIMEOUT_S,
                       reconnect_wait: float = RECONNECT_WAIT_S,
                       randomize: bool = True, user: str | None = None,
                       password: str | None = None, tls: ssl.SSLContext | None = None
                       ) -> Client:
    """Connect to a node of ``servers``; raise BrokerUnavailable if none answers in time.

    Args:
        servers: ``nats://host:port`` of every node (the client learns others from them).
        name: the connection's name in the servers' monitoring (``/connz``).
        first_connect: seconds to keep trying the nodes before giving up.
        connect_timeout: seconds for each node's TCP and NATS handshake.
        reconnect_wait: seconds before a node is tried again after it failed.
        randomize: try the nodes in random order (spreads clients); False: in order.
        user, password: the NATS user, if the servers require one.
        tls: TLS to the servers (``tls://`` URLs), with a client certificate.
    """
    import nats  # start-up cost, see the module docstring

    events = RateLimitedLog(log, level=logging.WARNING)
    connected: list[Client] = []

    async def on_error(exc: Exception) -> None:
        events.error("nats %s: %s", name, exc)

    async def on_disconnect() -> None:
        if not (connected and connected[0].is_closed):  # closed on purpose: no event
            events.error("nats %s: disconnected", name)

    try:
        async with asyncio.timeout(first_connect):
            client: Client = await nats.connect(
                list(servers), name=name, error_cb=on_error, disconnected_cb=on_disconnect,
                connect_timeout=connect_timeout,
                reconnect_time_wait=reconnect_wait,
                max_reconnect_attempts=-1, dont_randomize=not randomize, user=user,
                password=password, tls=tls)
            connected.append(client)
    except TimeoutError as exc:
        raise BrokerUnavailable(f"no NATS server of {', '.join(servers)} answered "
                                f"within {first_connect:g} s") from exc
    return client
