"""MQTT topics ⇄ NATS subjects as nats-server 2.9 maps them (the server itself is asked in
tests/integration/test_nats_cluster.py)."""

from __future__ import annotations

import pytest

from hub.cluster.subjects import mqtt_topic_to_subject, subject_to_mqtt_topic
from hub.errors import PayloadError


@pytest.mark.parametrize(("topic", "subject"), [
    ("sensors/x/detections", "sensors.x.detections"),
    ("a//b", "a./.b"),
    ("x/", "x./"),
    ("cop/p-1/snapshot", "cop.p-1.snapshot"),
])
def test_levels_become_tokens_and_empty_levels_slashes(topic: str, subject: str) -> None:
    assert mqtt_topic_to_subject(topic) == subject
    assert subject_to_mqtt_topic(subject) == topic


@pytest.mark.parametrize("topic", ["sensors/radar.1/detections", "a b", "sensors/+/x", "#", ""])
def test_what_a_nats_2_9_node_cannot_map_is_refused(topic: str) -> None:
    with pytest.raises(PayloadError) as caught:
        mqtt_topic_to_subject(topic)
    assert caught.value.code == "topic"


def test_a_slash_inside_a_token_reaches_mqtt_as_a_level_separator() -> None:
    assert subject_to_mqtt_topic("sensors.c/d.x") == "sensors/c/d/x"
