"""Every refusal carries a stable reason code: on the dead letter, in hub/status, in the docs."""

from __future__ import annotations

import pickle
from pathlib import Path

import msgpack
import numpy as np
import pytest
from frames_scene import CAMERA_ID, Scene, camera_config, enu_of

from hub import topics
from hub.config import DEFAULT_CONFIG, load_config
from hub.errors import REFUSAL_CODES, PayloadError
from hub.pipeline import Pipeline
from hub.service import HubService

T = 1_800_000_000.0
PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def detections(ts: float) -> bytes:
    return msgpack.packb({"ts": ts, "seq": 1, "detections": []})


CASES = [
    ("sensors/ken-radar-1/weather", detections(T), "topic"),
    ("sensors/bad$id/detections", detections(T), "topic"),
    ("sensors/nobody/detections", detections(T), "unknown_sensor"),
    ("sensors/ken-radar-1/detections", b"\x90" * ((1 << 20) + 1), "too_large"),
    ("sensors/ken-radar-1/detections", b"\xc1", "undecodable"),
    ("sensors/ken-radar-1/detections", msgpack.packb({"ts": "noon", "seq": 1}), "schema"),
    ("sensors/ken-radar-1/detections", detections(T + 600.0), "future"),
    ("sensors/ken-radar-1/detections", detections(T - 2 * 86_400.0), "stale"),
]


@pytest.mark.parametrize(("topic", "payload", "code"), CASES,
                         ids=[f"{c}-{i}" for i, (_, _, c) in enumerate(CASES)])
def test_a_refused_message_carries_its_code(topic: str, payload: bytes, code: str) -> None:
    pipeline = Pipeline(load_config(DEFAULT_CONFIG))
    assert not pipeline.handle(topic, payload, T)
    letter = pipeline.dead_letters[-1]
    assert (letter.code, letter.topic, letter.size) == (code, topic, len(payload))
    assert letter.reason
    assert pipeline.counters[f"rejected.{code}"] == pipeline.counters["rejected"] == 1


def frame_payload(scene: Scene, **changes: object) -> bytes:
    _, payload = scene.message(T, 0, np.random.default_rng(0), width=320, height=180)
    message = msgpack.unpackb(payload)
    message.update(changes)
    return msgpack.packb(message)


@pytest.mark.parametrize(("changes", "code"), [
    ({"data": b"not a jpeg at all"}, "image"),
    ({"gimbal": {"az": 0.0, "el": 30.0}, "platform": {
        "lat": -1.3, "lon": 36.8, "alt": 2000.0, "heading": 0.0, "pitch": 0.0, "roll": 0.0}},
     "pose"),
])
def test_a_frame_a_worker_refuses_carries_its_code(changes: dict[str, object], code: str) -> None:
    config = camera_config(workers=0)
    scene = Scene(enu_of(config), T)
    pipeline = Pipeline(config)
    topic = topics.sensor(CAMERA_ID, "frames")
    assert pipeline.handle(topic, frame_payload(scene, **changes), T)
    pipeline.flush(T + 1.0)
    letter = pipeline.dead_letters[-1]
    assert letter.code == code and letter.topic == topic
    assert pipeline.counters[f"rejected.{code}"] == 1


def test_hub_status_counts_every_code_from_zero() -> None:
    service = HubService(load_config(DEFAULT_CONFIG))
    service.pipeline.handle("sensors/nobody/detections", detections(T), T)
    counters = service.status().counters
    assert {f"rejected.{c}" for c in REFUSAL_CODES} <= set(counters)
    assert counters["rejected.unknown_sensor"] == 1 and counters["rejected.schema"] == 0


def test_the_code_survives_the_trip_from_a_worker_process() -> None:
    again = pickle.loads(pickle.dumps(PayloadError("image", "frame data is not a JPEG")))
    assert (again.code, again.reason) == ("image", "frame data is not a JPEG")


def test_protocol_md_lists_every_code() -> None:
    text = PROTOCOL_MD.read_text()
    assert all(f"| `{code}` |" in text for code in REFUSAL_CODES)
