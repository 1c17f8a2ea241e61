"""A replay's ingest and tracks writer in child processes beside the fusion: the same bytes.

``hub replay`` runs them there when a second core is free (hub.cli.replay_ingest,
hub.cli.tracks_out); everything else replays in one process. Each test here
sets the two side by side, or breaks a child and reads the one line it gives.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from frames_scene import Scene, camera_config, enu_of, frame_records

from hub.cli.main import main
from hub.cli.replay import fuse, replay
from hub.cli.replay_ingest import ChildIngest, IngestFailed, pack, unpack
from hub.cli.tracks_out import ChildWriter
from hub.cluster.records import Decoded
from hub.config import DEFAULT_CONFIG, HubConfig, config_toml, load_config
from hub.fusion.measurements import Scan
from hub.ingest.router import PlatformFix
from hub.messages import Telemetry
from hub.recording import RecordingWriter, read_recording
from simulators.engine import write_recording
from simulators.scenario import load_scenario


def beside(recording: Path, config: HubConfig, tracks: Path, picture: str = "mission") -> bytes:
    """The tracks of ``recording`` with both children, whatever the machine's cores."""
    with open(tracks, "wb") as out:
        writer = ChildWriter(config.mission.origin.frame(), picture, out, str(tracks))
        fuse(ChildIngest(recording, config), config, writer, picture)
    return tracks.read_bytes()


def inline(recording: Path, config: HubConfig, picture: str = "mission") -> bytes:
    out = io.BytesIO()
    replay(read_recording(recording), config, out, picture)
    return out.getvalue()


@pytest.mark.parametrize("picture", ["mission", "gha"])
def test_the_children_write_the_bytes_one_process_writes(tmp_path: Path, picture: str) -> None:
    recording = tmp_path / "rec.mpk"
    write_recording(load_scenario("default").with_duration(40.0), recording, seed=11)
    config = load_config(DEFAULT_CONFIG)
    alone = inline(recording, config, picture)
    assert beside(recording, config, tmp_path / "tracks.jsonl", picture) == alone
    assert alone.count(b'"confirmed"') > 20


CAMERA = camera_config(workers=1)


@pytest.fixture(scope="module")
def camera_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames of a camera UAV (4.5 MB: the command replays it with its children)."""
    recording = tmp_path_factory.mktemp("camera") / "frames.mpk"
    with RecordingWriter(recording) as writer:
        for record in frame_records(Scene(enu_of(CAMERA), 1.8e9), 4.0):
            writer.write(*record)
    return recording


def test_camera_frames_go_to_workers_where_opencv_was_loaded_before(
        camera_recording: Path, tmp_path: Path) -> None:
    # This process has used OpenCV: a forked child must not (its thread pool is gone).
    assert "cv2" in sys.modules
    alone = inline(camera_recording, CAMERA)
    assert beside(camera_recording, CAMERA, tmp_path / "tracks.jsonl") == alone
    assert alone.count(b'"confirmed"') > 0


def without_friend_ids(tracks: bytes) -> bytes:
    """Friend ids are keyed per process (without ``mission.id_key_file``): set them apart."""
    return re.sub(rb'"track_id":"F[0-9]+"', b'"track_id":"F"', tracks)


def test_hub_replay_reads_camera_frames_in_its_ingest_child(camera_recording: Path,
                                                            tmp_path: Path) -> None:
    config, tracks = tmp_path / "camera.toml", tmp_path / "tracks.jsonl"
    config.write_text(config_toml(CAMERA))
    subprocess.run([sys.executable, "-m", "hub.cli", "replay", "-c", str(config),
                    str(camera_recording), "--tracks-out", str(tracks)],
                   check=True, capture_output=True, timeout=120)
    alone = inline(camera_recording, CAMERA)
    assert without_friend_ids(tracks.read_bytes()) == without_friend_ids(alone)
    assert alone.count(b'"confirmed"') > 0


def test_a_full_disk_is_one_line_naming_the_file(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    recording = tmp_path / "rec.mpk"
    write_recording(load_scenario("default").with_duration(30.0), recording)
    assert main(["replay", str(recording), "--tracks-out", "/dev/full"]) == 1
    assert capsys.readouterr().err == "error: /dev/full: No space left on device\n"
    assert not multiprocessing.active_children()


def test_an_ingest_child_that_cannot_read_says_so(tmp_path: Path) -> None:
    with pytest.raises(IngestFailed, match=f"^{tmp_path}: Is a directory$"):
        list(ChildIngest(tmp_path, load_config(DEFAULT_CONFIG)).steps())


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """targets300 for 180 s: 15 MB, about a second of replay."""
    recording = tmp_path_factory.mktemp("long") / "rec.mpk"
    write_recording(load_scenario("targets300").with_duration(180.0), recording)
    return recording


def test_an_ingest_child_killed_midway_fails_the_replay(long_recording: Path) -> None:
    steps = ChildIngest(long_recording, load_config(DEFAULT_CONFIG)).steps()
    next(steps)
    (child,) = multiprocessing.active_children()
    assert child.name == "hub-replay-ingest" and child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(IngestFailed, match=r"ingest process ended \(exit code -9\) before "):
        for _ in steps:
            pass
    assert not multiprocessing.active_children()


def children_of(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(line) for line in found.stdout.split()}


def test_the_children_end_when_the_replay_is_killed(long_recording: Path, tmp_path: Path) -> None:
    replay_process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "replay", str(long_recording), "--tracks-out",
         str(tmp_path / "tracks.jsonl")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30.0
    while len(children := children_of(replay_process.pid)) < 2:
        assert replay_process.poll() is None and time.monotonic() < deadline, "no children"
        time.sleep(0.005)
    replay_process.kill()
    replay_process.wait()
    deadline = time.monotonic() + 10.0
    while alive := {pid for pid in children if Path(f"/proc/{pid}").exists()
                    and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]}:
        assert time.monotonic() < deadline, f"children {alive} outlived the replay"
        time.sleep(0.05)
    assert replay_process.stderr is not None
    with replay_process.stderr:
        assert replay_process.stderr.read() == b""


def test_a_packed_batch_gives_back_its_steps_empty_scans_and_fixes_included() -> None:
    def scan(t: float, n: int) -> Scan:
        rng = np.random.default_rng(n)
        return Scan(t, n % 3, rng.normal(size=(n, 2)), rng.normal(size=(n, 2, 2)),
                    np.arange(n, dtype=np.int16), rng.random(n))

    fix = PlatformFix(5.0, 1, Telemetry(ts=5.0, seq=1, lat=1.0, lon=2.0, alt=3.0, heading=0.0,
                                        pitch=0.0, roll=0.0),
                      (10.0, 20.0))
    steps = [Decoded(1.0, scan(0.5, 3)), Decoded(1.0, None), Decoded(2.0, scan(1.5, 0)),
             Decoded(2.5, fix), Decoded(3.0, scan(2.5, 4)), Decoded(3.0, None)]
    back = unpack(pickle.loads(pickle.dumps(pack(steps))))
    assert [(s.t, type(s.item)) for s in back] == [(s.t, type(s.item)) for s in steps]
    for got, sent in zip(back, steps, strict=True):
        if isinstance(sent.item, Scan):
            assert isinstance(got.item, Scan) and (got.item.t, got.item.sensor) == (
                sent.item.t, sent.item.sensor)
            for name in ("z", "R", "cls", "conf"):
                a, b = getattr(got.item, name), getattr(sent.item, name)
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        else:
            assert got.item == sent.item
    assert unpack(pack([])) == []
