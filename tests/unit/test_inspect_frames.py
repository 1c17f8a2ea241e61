"""``hub frames inspect`` on generated recordings and payload files, through cli.main."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import msgpack
import pytest

from hub import messages, topics
from hub.cli import main as cli
from hub.geo import EnuFrame
from hub.recording import read_recording
from simulators.engine import write_recording
from simulators.scenario import load_scenario

SENSOR = "nld-uav-1"  # EO, oblique, about six targets per frame in camera.toml


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inspect") / "camera.mpk"
    write_recording(load_scenario("camera").with_duration(2.0), path)
    return path


def _truth(recording: Path, ts: float) -> list[tuple[float, float]]:
    for t, topic, payload in read_recording(recording):
        if topic == topics.TRUTH and t == ts:
            truth = messages.decode(payload, messages.Truth, 1 << 24)
            return [(x.lat, x.lon) for x in truth.targets]
    raise AssertionError("no truth at the frame's time")


def test_inspect_writes_a_png_of_the_frame_and_prints_the_detections(
        recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "frame.png"
    assert cli.main(["frames", "inspect", str(recording), "--sensor", SENSOR, "--index", "0",
                     "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (720, 1280, 3)
    assert f"frame 0 of {SENSOR}: eo 1280x720 jpeg" in printed and f"wrote {out}" in printed
    count = int(re.search(r"^(\d+) detections$", printed, re.MULTILINE).group(1))  # type: ignore
    rows = re.findall(r"^\s*\d+\s+[\d.]+\s+[\d.]+\s+\d+\s+[\d.]+\s+(-?[\d.]+)\s+(-?[\d.]+)\s",
                      printed, re.MULTILINE)
    assert count >= 3 and len(rows) == count
    # Every detection lies near a true target: within 60 m (oblique, 40 deg down, 0.2 deg noise).
    frame = EnuFrame(-1.2921, 36.8219, 1650.0)
    ts = float(re.search(r"ts ([\d.]+)", printed).group(1))  # type: ignore[union-attr]
    truth = _truth(recording, ts)
    te, tn, _ = frame.to_enu([a for a, _ in truth], [b for _, b in truth], 1650.0)
    for lat, lon in rows:
        e, n, _ = frame.to_enu(float(lat), float(lon), 1650.0)
        assert min(((te - e) ** 2 + (tn - n) ** 2) ** 0.5) < 60.0


def test_inspect_a_raw_payload_file_with_the_default_output(
        recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    payload = next(p for _, t, p in read_recording(recording) if t.endswith("/frames"))
    raw = tmp_path / "one.msgpack"
    raw.write_bytes(payload)
    assert cli.main(["frames", "inspect", str(raw)]) == 0
    assert (tmp_path / "one.frame0.png").exists()
    assert "frame 0:" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--index", "999"], "frame index 999 out of range: 24 frames"),
    (["--sensor", "ken-radar-1"], "no frames of sensor 'ken-radar-1'"),
])
def test_inspect_errors(recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        args: list[str], message: str) -> None:
    assert cli.main(["frames", "inspect", str(recording), *args,
                     "-o", str(tmp_path / "x.png")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_inspect_a_recording_without_frames(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "radars.mpk"
    write_recording(load_scenario("targets50").with_duration(2.0), path)
    assert cli.main(["frames", "inspect", str(path)]) == 2
    assert "no frames in the recording" in capsys.readouterr().err


def test_inspect_an_undecodable_frame(recording: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    payload = next(p for _, t, p in read_recording(recording) if t.endswith("/frames"))
    broken = msgpack.unpackb(payload)
    broken["data"] = b"\xff\xd8 not a jpeg at all"
    raw = tmp_path / "broken.msgpack"
    raw.write_bytes(msgpack.packb(broken, use_bin_type=True))
    assert cli.main(["frames", "inspect", str(raw)]) == 2
    assert "error: frame data" in capsys.readouterr().err
    not_a_frame = tmp_path / "truth.msgpack"
    not_a_frame.write_bytes(msgpack.packb({"ts": 1.0, "targets": []}))
    assert cli.main(["frames", "inspect", str(not_a_frame)]) == 2
    assert "frame not decodable" in capsys.readouterr().err
