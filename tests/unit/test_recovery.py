"""Crash recovery: a hub killed at any point comes back exactly where it was.

The killed hub runs in a forked child that ends with ``os._exit`` (no
shutdown, no last checkpoint: what SIGKILL leaves). The restarted hub then
takes the rest of the input, and its trackers must equal those of a hub that
was never killed: same ids for the same objects, same states to the bit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest
from publishing import mqtt_publisher

from hub.config import HubConfig, config_toml, parse_config
from hub.errors import ConfigError
from hub.geo import EnuFrame
from hub.pipeline import Pipeline
from hub.publish.publisher import PicturePublisher
from hub.recovery.journal import segment_path, segments
from hub.recovery.store import RecoveryStore

T0 = 1_800_000_000.0
ORIGIN = (-1.0, 36.0)
SECONDS = 60
CHECKPOINT_EVERY = 7
Record = tuple[float, str, bytes]


def config(directory: Path, sensors: tuple[str, ...] = ("radar", "drone")) -> HubConfig:
    return parse_config({
        "mission": {"origin": {"lat": ORIGIN[0], "lon": ORIGIN[1]}},
        "fusion": {"reorder_window_s": 1.5},
        "recovery": {"dir": str(directory)},
        "partners": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        "sensors": [{"id": s, "nation": "KEN", "kind": "uav" if s == "uav" else "radar",
                     "release_to": ["a", "b"]} for s in sensors],
    })


def records(frame: EnuFrame) -> list[Record]:
    """Two sensors, five movers, clutter; a new mover every 10 s so tracks are born late too."""
    rng = np.random.default_rng(7)
    out: list[Record] = []
    for k in range(SECONDS):
        for sensor, lag in (("radar", 0.1), ("drone", 0.9)):
            t = T0 + k + lag / 2
            movers = [(500.0 * i + 8.0 * k, 300.0 * i) for i in range(5 + k // 10)]
            points = np.array(movers + rng.uniform(-9e3, 9e3, (3, 2)).tolist())
            points += rng.normal(0.0, 5.0, points.shape)
            lat, lon, _ = frame.to_geodetic(points[:, 0], points[:, 1], 0.0)
            payload = msgpack.packb({"ts": t, "seq": k, "detections": [
                {"kind": "geo", "lat": float(a), "lon": float(o), "sigma": 5.0,
                 "cls": "vehicle", "conf": 0.8} for a, o in zip(lat, lon, strict=True)]})
            out.append((t + lag, f"sensors/{sensor}/detections", payload))
    return sorted(out)


def feed(pipeline: Pipeline, part: list[Record], store: RecoveryStore | None,
         publisher: PicturePublisher) -> None:
    for i, (t, topic, payload) in enumerate(part):
        pipeline.handle(topic, payload, t)
        pipeline.flush(t)
        if store is not None and i % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
            store.checkpoint(pipeline, publisher)


def hub(cfg: HubConfig) -> tuple[Pipeline, RecoveryStore, PicturePublisher]:
    pipeline = Pipeline(cfg)
    publisher = mqtt_publisher(pipeline, lambda *message: None)
    store = RecoveryStore(cfg)
    store.start(pipeline, publisher)
    return pipeline, store, publisher


def killed_after(cfg: HubConfig, part: list[Record]) -> None:
    """Run ``part`` in a child that dies without any shutdown."""

    def child() -> None:
        pipeline, store, publisher = hub(cfg)
        feed(pipeline, part, store, publisher)
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0


def assert_same_trackers(got: Pipeline, want: Pipeline) -> None:
    for mine, theirs in zip(got.groups, want.groups, strict=True):
        a, b = mine.tracker.snapshot(), theirs.tracker.snapshot()
        assert a.id.tolist() == b.id.tolist()
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.status, b.status)
    assert got.counters["fused"] == want.counters["fused"]


@pytest.mark.parametrize("killed_at", [5, 49, 56, 83])
def test_a_hub_killed_anywhere_comes_back_exactly_where_it_was(tmp_path: Path,
                                                              killed_at: int) -> None:
    cfg = config(tmp_path / "state")
    inputs = records(cfg.mission.origin.frame())
    never_killed = Pipeline(cfg)
    feed(never_killed, inputs, None, mqtt_publisher(never_killed, lambda *m: None))
    killed_after(cfg, inputs[:killed_at])
    pipeline, store, publisher = hub(cfg)
    feed(pipeline, inputs[killed_at:], store, publisher)
    store.close(pipeline, publisher)
    assert len(never_killed.groups[0].tracker.snapshot()) >= 5
    assert_same_trackers(pipeline, never_killed)


def test_partner_picture_numbers_go_on_after_a_restart(tmp_path: Path) -> None:
    cfg = config(tmp_path / "state")
    pipeline, store, publisher = hub(cfg)
    feed(pipeline, records(cfg.mission.origin.frame())[:20], store, publisher)
    publisher.publish(T0 + 10)
    seq = publisher.feeds["a"].seq
    store.close(pipeline, publisher)
    pipeline, store, publisher = hub(cfg)
    publisher.publish(T0 + 11)
    store.close(pipeline, publisher)
    assert seq >= 1 and publisher.feeds["a"].seq == seq + 1


def test_ids_are_never_given_again_when_the_checkpoint_cannot_be_restored(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "state"
    cfg = config(directory)
    pipeline, store, publisher = hub(cfg)
    feed(pipeline, records(cfg.mission.origin.frame()), store, publisher)
    given = max(int(i) for g in pipeline.groups for i in g.tracker.snapshot().id)
    store.close(pipeline, publisher)
    # The registry changed: tracker rows no longer fit, so nothing is restored...
    other = config(directory, sensors=("radar", "drone", "sonar"))
    with caplog.at_level(logging.WARNING):
        pipeline, store, publisher = hub(other)
    assert "another registry" in caplog.text
    assert all(len(g.tracker.snapshot()) == 0 for g in pipeline.groups)
    # ...but the next track's id is above every id given before.
    assert all(g.tracker.next_id > given for g in pipeline.groups)
    store.close(pipeline, publisher)


def restarted_with_tail(tmp_path: Path, caplog: pytest.LogCaptureFixture, tail: bytes
                        ) -> tuple[Pipeline, RecoveryStore, PicturePublisher]:
    """A hub killed after 10 messages, ``tail`` appended to its journal, started again."""
    cfg = config(tmp_path / "state")
    killed_after(cfg, records(cfg.mission.origin.frame())[:10])
    directory = tmp_path / "state"
    with segment_path(directory, segments(directory)[-1]).open("ab") as journal:
        journal.write(tail)
    with caplog.at_level(logging.WARNING):
        return hub(cfg)


def test_a_torn_journal_is_replayed_up_to_the_damage(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A record cut short by a power cut.
    pipeline, store, publisher = restarted_with_tail(tmp_path, caplog, b"\x94\xa1m\xcb")
    assert "torn record" in caplog.text
    assert pipeline.counters["received"] == 10
    store.close(pipeline, publisher)


def test_records_of_no_known_form_are_skipped_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    odd = (["x", 1.0], ["m", "not a time", "t", b""], ["s", 2.0, "not a scan"])
    tail = b"".join(msgpack.packb(record) for record in odd)
    pipeline, store, publisher = restarted_with_tail(tmp_path, caplog, tail)
    assert "3 records of no known form skipped" in caplog.text
    assert store.counters["journal_skipped"] == 3
    assert pipeline.counters["received"] == 10
    store.close(pipeline, publisher)


def test_a_full_disk_costs_durability_but_not_the_picture(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "state"
    cfg = config(directory)
    inputs = records(cfg.mission.origin.frame())
    never_full = Pipeline(cfg)
    feed(never_full, inputs, None, mqtt_publisher(never_full, lambda *m: None))
    pipeline, store, publisher = hub(cfg)
    assert store.journal is not None
    # The next segment and the checkpoint both land on a device that is always full.
    full = (segment_path(directory, store.journal.segment + 1),
            directory / "checkpoint.npz.tmp")
    for path in full:
        path.symlink_to("/dev/full")
    with caplog.at_level(logging.ERROR):
        feed(pipeline, inputs[:40], store, publisher)
    assert "cannot write (No space left on device)" in caplog.text
    assert "cannot checkpoint (No space left on device)" in caplog.text
    # The messages between two checkpoints, and their fusion steps.
    assert store.counters["journal_failed"] >= CHECKPOINT_EVERY
    assert store.counters["checkpoint_failed"] == 40 // CHECKPOINT_EVERY
    for path in full:
        path.unlink()
    feed(pipeline, inputs[40:], store, publisher)
    store.close(pipeline, publisher)
    assert_same_trackers(pipeline, never_full)
    restarted, store, publisher = hub(cfg)
    assert_same_trackers(restarted, never_full)
    store.close(restarted, publisher)


def test_a_second_hub_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path / "state")
    pipeline, store, publisher = hub(cfg)
    with pytest.raises(ConfigError, match=r"^\$\.recovery\.dir: .* in use by another hub"):
        RecoveryStore(cfg).start(Pipeline(cfg), publisher)
    store.close(pipeline, publisher)


FRIEND_IDS = """
import sys
from hub.config import load_config
from hub.fusion.platforms import PlatformTable
from hub.messages import Telemetry
from hub.recovery.store import with_recovery_key

config = with_recovery_key(load_config(sys.argv[1]))
table = PlatformTable(config, config.mission.origin.frame())
table.update(1, Telemetry(ts=1.8e9, seq=0, lat=-1.0, lon=36.0, alt=100.0, heading=0.0,
                          pitch=0.0, roll=0.0))
print(table.snapshot().id.tolist())
"""


def test_friend_ids_hold_across_restarts_by_a_key_kept_with_the_state(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(config_toml(config(tmp_path / "state", sensors=("radar", "uav"))))

    def friend_ids() -> str:  # in a new process each time, as a restarted hub
        return subprocess.run([sys.executable, "-c", FRIEND_IDS, str(path)], check=True,
                              capture_output=True, text=True).stdout

    assert friend_ids() == friend_ids() != "[]\n"
    assert (tmp_path / "state" / "id.key").stat().st_mode & 0o777 == 0o600
