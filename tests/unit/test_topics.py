import pytest

from hub import topics
from hub.errors import PayloadError


@pytest.mark.parametrize("bad", ["a/b", "+", "#", "x#", "$SYS", "a\x00b", "", "x" * 65, "é"])
def test_ids_that_would_change_a_topic_are_refused(bad: str) -> None:
    with pytest.raises(PayloadError):
        topics.sensor(bad, "telemetry")
    with pytest.raises(PayloadError):
        topics.partner_picture(bad)


def test_topics_round_trip() -> None:
    topic = topics.sensor("ken-radar-1", "detections")
    assert topic == "sensors/ken-radar-1/detections"
    assert topics.parse_sensor_topic(topic) == ("ken-radar-1", "detections")
    assert topics.partner_snapshot("ken") == "cop/ken/snapshot"


@pytest.mark.parametrize("bad", ["sensors/a", "sensors/a/b/c", "cop/a/picture",
                                 "sensors/a/video", "sensors/$x/telemetry"])
def test_parse_rejects_other_shapes(bad: str) -> None:
    with pytest.raises(PayloadError):
        topics.parse_sensor_topic(bad)
