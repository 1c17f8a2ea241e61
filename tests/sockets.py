"""Closing a test's asyncio connection for good before its loop ends."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

HANG_UP_S = 2.0


async def hang_up(writer: asyncio.StreamWriter) -> None:
    """Close ``writer`` and wait until its transport is gone (a peer that already left is fine).

    ``close()`` alone only schedules it: a loop that ends first leaves the socket
    to the garbage collector, which warns during whichever test runs next.
    """
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(HANG_UP_S):
            await writer.wait_closed()
