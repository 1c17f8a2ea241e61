"""The MQTT sink: deltas on ``cop/{p}/picture``; full pictures there and retained on ``snapshot``.

A partner whose rules changed has its retained snapshot cleared at once (an
empty retained message), so nothing it may no longer see lingers on the broker.
The transport (``send``, the hub's Bus) bounds its own queue: a picture it
refuses, while the broker is away and the queue is full, is counted as dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from hub import topics
from hub.messages import Picture, encode
from hub.publish.sink import SinkStats

Send = Callable[[str, bytes, int, bool], bool]
"""Send ``payload`` to ``topic`` with ``qos`` and ``retain``; False when the transport refused."""

PICTURE_QOS = 1


class MqttPictureSink:
    """Partner pictures as MessagePack on each partner's own topics."""

    name = "mqtt"
    serves_mission = False  # the mission picture is for the operators' console only

    def __init__(self, send: Send) -> None:
        self.send = send
        self.stats = SinkStats()

    def picture(self, partner: str, picture: Picture) -> None:
        """Publish the picture; a full one is the partner's retained snapshot as well."""
        payload = encode(picture)
        taken = self.send(topics.partner_picture(partner), payload, PICTURE_QOS, False)
        if picture.full:
            retained = self.send(topics.partner_snapshot(partner), payload, PICTURE_QOS, True)
            taken = taken and retained
        if taken:
            self.stats.delivered += 1
        else:
            self.stats.dropped += 1

    def withdraw(self, partner: str) -> None:
        """Clear the partner's retained snapshot."""
        self.send(topics.partner_snapshot(partner), b"", PICTURE_QOS, True)

    async def close(self) -> None:
        """Nothing to release: snapshots stay retained; hub/status says the hub is offline."""
