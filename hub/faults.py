"""Exceptions the hub survived: logged where they happened, and reported here.

The hub keeps running when a bus handler, a periodic task or one message's
processing raises (a bug must cost one message, never the hub). That must
never go unnoticed: each such place calls ``survived``, and whoever listens
(the tests' autouse fixture, which fails the test) hears of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Listener = Callable[[str, BaseException], None]

_listeners: list[Listener] = []


def survived(where: str, exc: BaseException) -> None:
    """Report an exception the hub caught and went on from; ``where`` names the place."""
    for listener in tuple(_listeners):
        listener(where, exc)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call ``listener(where, exc)`` for every survived exception while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
