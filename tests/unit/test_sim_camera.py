"""Camera UAVs in the simulators: scenario schema, seeded frames, recordings with frames."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from hub import messages, topics
from hub.errors import ConfigError
from hub.recording import read_recording
from simulators.engine import generate, pending, write_recording
from simulators.scenario import SCENARIO_DIR, Scenario, load_scenario, parse_scenario

MAX = 64 << 20


@pytest.fixture(scope="module")
def camera() -> Scenario:
    return load_scenario("camera").with_duration(4.0)


def _doc() -> dict[str, object]:
    return tomllib.loads((SCENARIO_DIR / "default.toml").read_text())


def _cam(doc: dict[str, object]) -> dict[str, object]:
    uavs = doc["uavs"]
    assert isinstance(uavs, list)
    return uavs[2]["camera"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("change", "key"), [
    (lambda d: _cam(d).update(band="uv"), "$.uavs[2].camera.band"),
    (lambda d: _cam(d).update(quality=101), "$.uavs[2].camera.quality"),
    (lambda d: _cam(d).update(rate_hz=0.0), "$.uavs[2].camera.rate_hz"),
    (lambda d: _cam(d).update(format="gif"), "$.uavs[2].camera.format"),
    (lambda d: _cam(d).update(width=20_000), "$.uavs[2].camera.width"),
    (lambda d: _cam(d).update(lens="wide"), "$.uavs[2].camera"),
    (lambda d: _cam(d).update(gimbal={"az": 0.0, "el": -200.0}), "$.uavs[2].camera.gimbal.el"),
    (lambda d: _cam(d)["pose_noise"].update(sigma_yaw=1.0),  # type: ignore[attr-defined]
     "$.uavs[2].camera.pose_noise"),
    (lambda d: _cam(d)["pose_noise"].update(sigma_alt=-1.0),  # type: ignore[attr-defined]
     "$.uavs[2].camera.pose_noise.sigma_alt"),
    (lambda d: d["uavs"][2].pop("camera"), "$.uavs[2].detector"),  # type: ignore[index]
    (lambda d: d["uavs"][0].update(detector="no"), "$.uavs[0].detector"),  # type: ignore[index]
])
def test_camera_errors_name_the_key(change: object, key: str) -> None:
    doc = _doc()
    change(doc)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        parse_scenario(doc)
    assert key in str(info.value)


def test_camera_defaults_and_pose_noise_names() -> None:
    doc = _doc()
    doc["uavs"][2]["camera"] = {}  # type: ignore[index]
    cam = parse_scenario(doc).uavs[2].camera
    assert cam is not None
    assert (cam.band, cam.width, cam.height, cam.rate_hz, cam.format) == ("ir", 1280, 720,
                                                                          5.0, "jpeg")
    assert (cam.gimbal.az, cam.gimbal.el) == (0.0, -90.0)  # nadir
    noise = cam.pose_noise.pose_noise()
    assert noise.sigma_heading == 0.5 and noise.sigma_alt == 5.0


def test_frames_are_seeded_and_deterministic(camera: Scenario) -> None:
    a, b = list(generate(camera)), list(generate(camera))
    assert a == b
    frames = [m for m in a if m[1].endswith("/frames")]
    per_uav = {u.id: u.camera.rate_hz * camera.duration_s for u in camera.uavs if u.camera}
    for sensor_id, count in per_uav.items():
        assert sum(t == topics.sensor(sensor_id, "frames") for _, t, _ in frames) == count
    other = [m for m in generate(camera, seed=camera.seed + 1) if m[1].endswith("/frames")]
    assert [m[2] for m in other] != [m[2] for m in frames]


def test_camera_only_uavs_send_no_detections(camera: Scenario) -> None:
    kinds = {topics.parse_sensor_topic(t)[1] for _, t, _ in generate(camera)
             if t != topics.TRUTH}
    assert kinds == {"status", "telemetry", "frames"}


def test_a_frame_does_not_depend_on_which_frames_were_built(camera: Scenario) -> None:
    """A publisher that skips frames changes no other frame, and the parts split the whole."""
    everything = list(generate(camera))
    wanted = {m[0:2]: m[2] for m in everything if m[1].endswith("/frames")}
    built = {}
    for i, p in enumerate(pending(camera, part="frames")):
        if i % 3 == 1:  # every third frame only, as a publisher far behind would
            built[(p.ts, p.topic)] = p.build()
    assert built and all(wanted[key] == payload for key, payload in built.items())
    rest = list(generate(camera, part="rest"))
    assert not any(t.endswith("/frames") for _, t, _ in rest)
    assert sorted(rest + list(generate(camera, part="frames"))) == sorted(everything)


def test_recording_with_frames_round_trips(camera: Scenario, tmp_path: Path) -> None:
    path = tmp_path / "camera.mpk"
    count = write_recording(camera, path)
    records = list(read_recording(path))
    assert len(records) == count and records == list(generate(camera))
    frames = [messages.decode(p, messages.Frame, MAX) for _, t, p in records
              if t.endswith("/frames")]
    assert {(f.band, f.format) for f in frames} == {("ir", "jpeg"), ("eo", "jpeg"),
                                                    ("ir", "png")}
    assert all(f.ts == t for f, (t, topic, _) in zip(
        frames, [r for r in records if r[1].endswith("/frames")], strict=True))


def test_frames_report_the_telemetry_position_with_pose_noise(camera: Scenario) -> None:
    """Position as the telemetry's; attitude and altitude off by about the configured sigmas."""
    telemetry, errors = {}, []
    for ts, topic, payload in generate(camera.with_duration(4.0)):
        if topic == topics.sensor("bra-uav-1", "telemetry"):
            telemetry[ts] = messages.decode(payload, messages.Telemetry, MAX)
        elif topic == topics.sensor("bra-uav-1", "frames"):
            if ts not in telemetry:  # 2 Hz frames meet 5 Hz telemetry once a second
                continue
            f = messages.decode(payload, messages.Frame, MAX)
            fix = telemetry[ts]
            assert f.platform.lat == pytest.approx(fix.lat, abs=1e-7)
            assert f.platform.lon == pytest.approx(fix.lon, abs=1e-7)
            heading = (f.platform.heading - fix.heading + 180.0) % 360.0 - 180.0
            errors.append((heading, f.platform.alt - fix.alt, f.gimbal.el + 90.0))
    spec = next(u for u in camera.uavs if u.id == "bra-uav-1").camera
    assert spec is not None and len(errors) >= 3
    noise = spec.pose_noise
    for (h, alt, el) in errors:
        # 5 sigma: a wrong sign or unit would be far off; noise this size never is.
        assert abs(h) < 5 * noise.sigma_heading and abs(alt) < 5 * noise.sigma_alt + 0.5
        assert abs(el) < 5 * noise.sigma_el
    assert any(abs(h) > 0.01 for h, _, _ in errors)  # the noise is there at all
    assert math.isfinite(np.mean([a for _, a, _ in errors]))
