"""The hub's picture path as the service builds it, with the MQTT sink's messages captured."""

from __future__ import annotations

from collections.abc import Callable

from hub.pipeline import Pipeline
from hub.publish.mqtt import MqttPictureSink
from hub.publish.publisher import PicturePublisher
from hub.release.view import ReleaseView


def mqtt_publisher(pipeline: Pipeline, send: Callable[[str, bytes, int, bool], object]
                   ) -> PicturePublisher:
    """The publisher of ``pipeline``'s pictures whose MQTT sink hands every message to ``send``."""

    def taken(topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        send(topic, payload, qos, retain)
        return True

    return PicturePublisher(ReleaseView(pipeline), [MqttPictureSink(taken)])
