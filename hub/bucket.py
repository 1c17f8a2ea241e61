"""The one token bucket of the hub: what a sensor or a connection may send.

A bucket holds two allowances, messages and bytes, each refilled at its rate
a second up to ``burst_s`` seconds' worth. A message is admitted while at
least one message is left and the bytes are not in debt: a single message
larger than the whole byte allowance still passes once (its bytes are owed
and repaid before the next), so the long-run rate holds without refusing
what the size limits allow. A refused message costs nothing.

Time is the caller's (``now``): the pipeline passes the receive time, so a
replay decides as the live hub did; a clock that steps back refills nothing.

``credit`` gives a sender the allowance of a time the hub could not hear it
(the hub restarting, the broker away): what it sent then arrives at once
when the link is back, and is no flood. Credit above the burst is kept until
spent; refills only top up to the burst.
"""

from __future__ import annotations


class Bucket:
    """``messages_per_s`` and ``bytes_per_s``, in bursts of ``burst_s`` seconds of each."""

    __slots__ = ("byte_burst", "byte_rate", "bytes", "message_burst", "message_rate",
                 "messages", "stamp")

    def __init__(self, messages_per_s: float, bytes_per_s: float, burst_s: float,
                 now: float = 0.0) -> None:
        self.message_rate = messages_per_s
        self.byte_rate = bytes_per_s
        # At least one message, or a rate under 1/burst_s would admit nothing at all.
        self.message_burst = max(messages_per_s * burst_s, 1.0)
        self.byte_burst = bytes_per_s * burst_s
        self.messages = self.message_burst
        self.bytes = self.byte_burst
        self.stamp = now

    def take(self, size: int, now: float) -> bool:
        """Charge one message of ``size`` bytes at ``now``; False (and no charge) if over."""
        elapsed = now - self.stamp
        if elapsed > 0.0:
            self.stamp = now
            self.messages = max(self.messages, min(self.messages + elapsed * self.message_rate,
                                                   self.message_burst))
            self.bytes = max(self.bytes, min(self.bytes + elapsed * self.byte_rate,
                                             self.byte_burst))
        if self.messages < 1.0 or self.bytes < 0.0:
            return False
        self.messages -= 1.0
        self.bytes -= size
        return True

    def credit(self, seconds: float) -> None:
        """Allow what ``seconds`` of sending would have, beyond the burst, until it is spent."""
        self.messages += max(seconds, 0.0) * self.message_rate
        self.bytes += max(seconds, 0.0) * self.byte_rate
