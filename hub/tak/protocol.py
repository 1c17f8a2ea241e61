"""TAK streams on the wire: inbound events split safely, TAK Protocol v1 frames, the negotiation.

A TAK stream is a run of XML events, each the XML declaration and an
``<event>``, nothing between them; a reader splits at ``</event>``. A client
may ask to switch to TAK Protocol v1 (``protocol.txt`` of the TAK protocol,
shipped with takproto): the server offers (``t-x-takp-v``), the client
requests (``t-x-takp-q``), the server answers (``t-x-takp-r``) and from then
on both sides send ``0xbf <varint length> <TakMessage>`` frames.

Refused before any parser runs: an event over the size limit, and anything
with a document type or entity declaration (entity expansion, "billion laughs").
"""

from __future__ import annotations

import re

from hub.errors import PayloadError
from hub.publish.cot import DECLARATION, cot_time

END = b"</event>"
MAGIC = 0xBF
DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
OFFER_TYPE, REQUEST_TYPE, RESPONSE_TYPE = "t-x-takp-v", "t-x-takp-q", "t-x-takp-r"


class XmlEvents:
    """Split an XML CoT stream into events; refuse oversized ones and declarations."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The events completed by ``data``; PayloadError when the stream cannot go on."""
        self._buffer += data
        events = []
        while (end := self._buffer.find(END)) >= 0:
            event = bytes(self._buffer[:end + len(END)]).strip()
            del self._buffer[:end + len(END)]
            if len(event) > self.max_bytes:
                raise PayloadError("too_large", f"CoT event of {len(event)} bytes exceeds "
                                                f"{self.max_bytes}")
            events.append(event)
        if len(self._buffer) > self.max_bytes:
            raise PayloadError("too_large", f"no </event> within {self.max_bytes} bytes")
        return events


class ProtoFrames:
    """Split a TAK Protocol v1 stream into TakMessage payloads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads completed by ``data``; PayloadError on a broken or oversized frame."""
        self._buffer += data
        payloads = []
        while self._buffer:
            if self._buffer[0] != MAGIC:
                raise PayloadError("undecodable", "TAK protobuf frame without its 0xbf magic")
            length, used = _varint(self._buffer, 1)
            if used == 0:
                break  # the length is not all here yet
            if length > self.max_bytes:
                raise PayloadError("too_large", f"TAK frame of {length} bytes exceeds "
                                                f"{self.max_bytes}")
            if len(self._buffer) < 1 + used + length:
                break
            payloads.append(bytes(self._buffer[1 + used:1 + used + length]))
            del self._buffer[:1 + used + length]
        return payloads


def _varint(data: bytearray, at: int) -> tuple[int, int]:
    """A protobuf varint at ``at``: (value, bytes used), or (0, 0) if it is not complete."""
    value = shift = 0
    for used, byte in enumerate(data[at:at + 10], 1):
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, used
        shift += 7
    if len(data) - at >= 10:
        raise PayloadError("undecodable", "TAK frame length is not a varint")
    return 0, 0


def refuse_declarations(event: bytes) -> None:
    """Refuse an event that declares a document type or entities (entity expansion)."""
    if DTD.search(event):
        raise PayloadError("undecodable", "CoT event with a DOCTYPE or ENTITY declaration")


def control_event(kind: str, body: str, uid: str, now: float) -> bytes:
    """A ``t-x-takp-*`` control event with ``<TakControl>`` ``body``."""
    stamp = cot_time(now)
    return (f'{DECLARATION}<event version="2.0" uid="{uid}" type="{kind}" how="m-g" '
            f'time="{stamp}" start="{stamp}" stale="{cot_time(now + 60.0)}">'
            f'<point lat="0.0" lon="0.0" hae="0.0" ce="9999999.0" le="9999999.0"/>'
            f"<detail><TakControl>{body}</TakControl></detail></event>").encode()


def offer(now: float) -> bytes:
    """The server's offer of TAK Protocol v1."""
    return control_event(OFFER_TYPE, '<TakProtocolSupport version="1"/>', "protouid", now)


def response(now: float, accepted: bool) -> bytes:
    """The server's answer to a client's request to switch."""
    status = "true" if accepted else "false"
    return control_event(RESPONSE_TYPE, f'<TakResponse status="{status}"/>', "protouid", now)

