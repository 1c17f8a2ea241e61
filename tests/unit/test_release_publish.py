"""Release rules through the publisher: delay from history, reload, retained snapshots cleared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import msgspec
import numpy as np
import pytest
from publishing import mqtt_publisher
from release_fixtures import FRAME, T0, config_with

from hub import topics
from hub.config import HubConfig, load_config
from hub.messages import Picture
from hub.pipeline import Pipeline
from hub.publish.publisher import PicturePublisher
from hub.service import HubService

Sent = list[tuple[str, bytes, bool]]


def detections(t: float, seq: int) -> bytes:
    """Three targets moving east at 10 m/s, seen perfectly by one sensor."""
    east = np.array([0.0, 2000.0, 4000.0]) + 10.0 * (t - T0)
    lat, lon, _ = FRAME.to_geodetic(east, np.zeros(3), 0.0)
    return msgpack.packb({"ts": t, "seq": seq, "detections": [
        {"kind": "geo", "lat": float(a), "lon": float(b), "sigma": 5.0, "cls": "vehicle",
         "conf": 0.9} for a, b in zip(lat, lon, strict=True)]})


def run(pipeline: Pipeline, publisher: PicturePublisher, start: int, seconds: int) -> None:
    """Feed s1 and s2 once a second and publish after each second."""
    for k in range(start, start + seconds):
        t = T0 + k
        for sensor in ("s1", "s2"):
            assert pipeline.handle(topics.sensor(sensor, "detections"), detections(t, k), t)
        pipeline.flush(t)
        publisher.publish(t)


def pictures(sent: Sent, partner: str) -> list[Picture]:
    return [msgspec.msgpack.decode(payload, type=Picture) for topic, payload, _ in sent
            if topic == topics.partner_picture(partner)]


def setup(config: HubConfig) -> tuple[Pipeline, PicturePublisher, Sent]:
    sent: Sent = []
    pipeline = Pipeline(config)
    publisher = mqtt_publisher(pipeline, lambda topic, payload, qos, retain: sent.append(
        (topic, payload, retain)))
    return pipeline, publisher, sent


def test_delayed_partner_gets_the_picture_as_of_delay_seconds_ago() -> None:
    config = config_with([{"by": "KEN", "to": ["a"]}, {"by": "KEN", "to": ["b"], "delay_s": 5.0}],
                         fusion={"reorder_window_s": 0.0}, publish={"full_every_s": 0.5})
    pipeline, publisher, sent = setup(config)
    run(pipeline, publisher, 0, 30)
    live = pictures(sent, "a")
    delayed = pictures(sent, "b")
    assert len(delayed) == 30 and delayed[-1].tracks
    for picture in delayed:
        earlier = [p for p in live if p.ts <= picture.ts - 5.0]
        if not earlier:
            assert not picture.tracks  # the history does not reach back yet
            continue
        twin = earlier[-1]
        assert [(t.id, t.ts, t.lat, t.lon) for t in picture.tracks] == [
            (t.id, t.ts, t.lat, t.lon) for t in twin.tracks]
        assert all(picture.ts - 6.0 < t.ts <= picture.ts - 5.0 for t in picture.tracks)


def write(path: Path, releases: list[dict[str, Any]]) -> str:
    partners = "\n".join(f'[[partners]]\nid = "{p}"\nname = "{p}"\n' for p in "abc")
    sensors = "\n".join(f'[[sensors]]\nid = "{i}"\nnation = "{n}"\nkind = "radar"\n'
                        for i, n in (("s1", "KEN"), ("s2", "GHA"), ("s3", "NLD")))
    rules = "\n".join("[[releases]]\n" + "\n".join(
        f"{k} = {v!r}".replace("'", '"') for k, v in r.items()) + "\n" for r in releases)
    path.write_text(f'[mission]\norigin = {{ lat = -1.0, lon = 36.0 }}\n[fusion]\n'
                    f'reorder_window_s = 0.0\n{partners}\n{sensors}\n{rules}')
    return str(path)


LOOSE = [{"by": "KEN", "to": ["a", "b"]}, {"by": "GHA", "to": ["a", "b"]}]
TIGHT = [{"by": "KEN", "to": ["a", "b"]}, {"by": "GHA", "to": ["a"]}]


def test_tightened_rule_applies_to_the_next_picture_and_clears_the_snapshot(
        tmp_path: Path) -> None:
    path = write(tmp_path / "hub.toml", LOOSE)
    service = HubService(load_config(path))
    pipeline, publisher, sent = setup(service.config)
    service.pipeline, service.publisher = pipeline, publisher
    run(pipeline, publisher, 0, 10)
    assert {s for p in pictures(sent, "b") for t in p.tracks for s in t.sources} == {"s1", "s2"}
    write(tmp_path / "hub.toml", TIGHT)
    sent.clear()
    assert service.reload(path)
    assert sent == [(topics.partner_snapshot("b"), b"", True)]  # b's retained picture cleared
    run(pipeline, publisher, 10, 10)
    after = pictures(sent, "b")
    assert after[0].full  # b now has a fresh tracker fed by s1 alone: it confirms anew
    assert after[-1].tracks and all(t.sources == ["s1"] for p in after for t in p.tracks)
    assert {s for p in pictures(sent, "a") for t in p.tracks for s in t.sources} == {"s1", "s2"}
    assert not any(topic == topics.partner_snapshot("a") and not payload
                   for topic, payload, _ in sent)  # a's rules did not change


@pytest.mark.parametrize("broken", ['[[releases]]\nby = "KEN"\nto = ["nobody"]\n',
                                    "not toml [", '[[sensors]]\nid = "s9"\nnation = "KEN"\n'
                                    'kind = "radar"\n'])
def test_an_invalid_file_changes_nothing(tmp_path: Path, broken: str) -> None:
    path = write(tmp_path / "hub.toml", TIGHT)
    service = HubService(load_config(path))
    before = service.pipeline.policy
    with open(path, "a") as f:
        f.write(broken)
    assert not service.reload(path)
    assert service.pipeline.policy is before
    assert service.status().counters["reload_failures"] == 1


def test_reload_keeps_command_line_overrides_out_of_the_changes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "hub.toml", LOOSE)
    started = load_config(path)
    moved = msgspec.structs.replace(started.broker, port=started.broker.port + 1)

    def like_the_command_line(config: HubConfig) -> HubConfig:
        return msgspec.structs.replace(config, broker=moved)

    service = HubService(like_the_command_line(started))
    write(tmp_path / "hub.toml", TIGHT)
    assert service.reload(path, like_the_command_line)
    assert "restarts" not in caplog.text and service.config.broker.port == moved.port
    assert service.reload(path)  # without the override the port differs: said, not applied
    assert "not applied until the hub restarts: $.broker" in caplog.text
    assert service.config.broker.port == moved.port
