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
when the link is back, and is no flood. Credit is a second allowance, spent
after the bucket's own and never refilled: while a backlog drains, the sender
still has its rate besides (a credit that stopped the refill until spent would
refuse the tail of a slow catch-up).
"""

from __future__ import annotations


class Bucket:
    """``messages_per_s`` and ``bytes_per_s``, in bursts of ``burst_s`` seconds of each."""

    __slots__ = ("byte_burst", "byte_rate", "bytes", "credit_bytes", "credit_messages",
                 "message_burst", "message_rate", "messages", "stamp")

    def __init__(self, messages_per_s: float, bytes_per_s: float, burst_s: float,
                 now: float = 0.0) -> None:
        self.message_rate = messages_per_s
        self.byte_rate = bytes_per_s
        # At least one message, or a rate under 1/burst_s would admit nothing at all.
        self.message_burst = max(messages_per_s * burst_s, 1.0)
        self.byte_burst = bytes_per_s * burst_s
        self.messages = self.message_burst
        self.bytes = self.byte_burst
        self.credit_messages = 0.0
        self.credit_bytes = 0.0
        self.stamp = now

    def take(self, size: int, now: float) -> bool:
        """Charge one message of ``size`` bytes at ``now``; False (and no charge) if over."""
        elapsed = now - self.stamp
        if elapsed > 0.0:
            self.stamp = now
            self.messages = min(self.messages + elapsed * self.message_rate, self.message_burst)
            self.bytes = min(self.bytes + elapsed * self.byte_rate, self.byte_burst)
        if self.messages >= 1.0 and self.bytes >= 0.0:
            self.messages -= 1.0
            self.bytes -= size
            return True
        if self.credit_messages >= 1.0 and self.credit_bytes >= size:
            self.credit_messages -= 1.0
            self.credit_bytes -= size
            return True
        return False

    def credit(self, seconds: float) -> None:
        """Allow what ``seconds`` of sending would have, besides the rate, until it is spent."""
        self.credit_messages += max(seconds, 0.0) * self.message_rate
        self.credit_bytes += max(seconds, 0.0) * self.byte_rate
