"""MQTT topics as NATS subjects, as nats-server 2.9 maps them between its MQTT and NATS clients.

Checked against the real server (tests/integration/test_nats_cluster.py):

- each MQTT level is one NATS token: ``sensors/x/detections`` is ``sensors.x.detections``;
- an empty MQTT level is the token ``/``: ``a//b`` is ``a./.b``;
- a topic with ``.`` or a space in a level is refused: the node logs "characters ' ' and
  '.' not supported for MQTT topics" and closes the client's connection (2.10 maps ``.``
  to ``//``; 2.9, the Debian package, does not). The hub's ids allow ``.``
  (``hub.topics.ID_PATTERN``), so a sensor or partner whose id holds one cannot use MQTT
  on a NATS 2.9 node.
"""

from __future__ import annotations

from hub.errors import PayloadError

EMPTY_LEVEL = "/"
REFUSED = (".", " ")
WILDCARDS = ("+", "#")


def mqtt_topic_to_subject(topic: str) -> str:
    """The NATS subject a message published on MQTT ``topic`` arrives on.

    Raises PayloadError for what a NATS 2.9 node refuses (``.`` or a space), for an empty
    topic and for wildcards (a topic, not a filter).
    """
    if not topic:
        raise PayloadError("topic", "empty MQTT topic")
    for char in (*REFUSED, *WILDCARDS):
        if char in topic:
            raise PayloadError("topic", f"MQTT topic {topic[:120]!r} holds {char!r}, "
                               "which a NATS 2.9 node cannot map to a subject")
    return ".".join(level or EMPTY_LEVEL for level in topic.split("/"))


def subject_to_mqtt_topic(subject: str) -> str:
    """The MQTT topic an MQTT subscriber sees for a message published on NATS ``subject``."""
    return "/".join("" if token == EMPTY_LEVEL else token for token in subject.split("."))


def mqtt_filter_to_subjects(topic_filter: str) -> list[str]:
    """The NATS subjects an MQTT subscription to ``topic_filter`` takes (for permissions).

    ``+`` is the token wildcard ``*``; ``a/#`` is ``a`` and ``a.>``, since MQTT's ``#``
    also matches its parent level (nats-server subscribes to both); ``#`` alone is ``>``.
    """
    levels = topic_filter.split("/")
    tail = levels[-1] == "#"
    tokens = ["*" if level == "+" else (level or EMPTY_LEVEL)
              for level in (levels[:-1] if tail else levels)]
    if not tail:
        return [".".join(tokens)]
    if not tokens:
        return [">"]
    return [".".join(tokens), ".".join([*tokens, ">"])]
