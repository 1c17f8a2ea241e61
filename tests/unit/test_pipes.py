"""A replay's pipes to its children hold a whole batch: the sender does not wait for the reader.

And what goes through them is cut into batches that fit, however large the scans or pictures.
"""

from __future__ import annotations

import fcntl
import io
import multiprocessing
import pickle
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from hub.cli.replay_ingest import BATCH, FIRST_BATCH, batches, pack
from hub.cli.tracks_out import PICTURES_PER_SEND, ChildWriter, PictureColumns, PictureWriter
from hub.cluster.records import Decoded
from hub.config import DEFAULT_CONFIG, load_config
from hub.fusion.measurements import Scan
from hub.ingest.router import PlatformFix
from hub.messages import MAX_DETECTIONS_PER_BATCH, Telemetry
from hub.pipes import PIPE_BYTES, batch_pipe


def test_a_batch_goes_in_at_once_with_no_one_reading() -> None:
    reader, writer = batch_pipe(multiprocessing.get_context("fork"))
    assert fcntl.fcntl(writer.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
    batch = bytes(range(256)) * (PIPE_BYTES // 2 // 256)  # ten times a default pipe
    # In a thread: through a default pipe the send would wait for ever for a reader.
    sending = threading.Thread(target=writer.send_bytes, args=(batch,), daemon=True)
    sending.start()
    sending.join(timeout=10.0)
    assert not sending.is_alive(), "the send waited for a reader"
    assert reader.recv_bytes() == batch
    reader.close()
    writer.close()


def _steps_of_large_scans() -> list[Decoded]:
    """Steps as a dense recording makes them: scans near a message's most detections, fixes."""
    rng = np.random.default_rng(3)
    fix = PlatformFix(0.0, 1, Telemetry(ts=0.0, seq=1, lat=1.0, lon=2.0, alt=3.0, heading=0.0,
                                        pitch=0.0, roll=0.0), (1.0, 2.0))
    steps: list[Decoded] = []
    for i, n in enumerate([4096, 4095, MAX_DETECTIONS_PER_BATCH, 3, 0, 700] * 6):
        scan = Scan(float(i), i % 5, rng.normal(size=(n, 2)), rng.normal(size=(n, 2, 2)),
                    np.zeros(n, np.int16), rng.random(n))
        steps += [Decoded(float(i), scan), Decoded(float(i), fix), Decoded(float(i), None)]
    return steps + [Decoded(99.0, None)] * (3 * BATCH)


def test_every_batch_of_steps_fits_its_pipe_however_large_the_scans() -> None:
    steps = _steps_of_large_scans()
    sent = list(batches(steps))
    assert [step for batch in sent for step in batch] == steps
    assert len(sent[0]) <= FIRST_BATCH and max(len(batch) for batch in sent) == BATCH
    sizes = [len(pickle.dumps(pack(batch))) for batch in sent]
    assert max(sizes) < PIPE_BYTES
    assert max(sizes) > PIPE_BYTES // 2  # the large scans did end batches early, near the bound


class _Sizes:
    """A connection's stand-in that notes each message's pickled size and passes it on."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.sizes: list[int] = []

    def send(self, message: object) -> None:
        self.sizes.append(len(pickle.dumps(message)))
        self.connection.send(message)

    def close(self) -> None:
        self.connection.close()


def _picture(t: float, rows: int) -> PictureColumns:
    rng = np.random.default_rng(rows)
    return PictureColumns(t, rng.normal(scale=1000.0, size=(rows, 4)),
                          np.arange(rows, dtype=np.int64), np.ones(rows, np.int8),
                          np.zeros(rows, np.intp), (rows, 0))


def test_pictures_of_thousands_of_tracks_go_to_the_writer_in_sends_that_fit_its_pipe(
        tmp_path: Path) -> None:
    pictures = [_picture(float(t), 3_000) for t in range(20)]
    frame = load_config(DEFAULT_CONFIG).mission.origin.frame()
    with open(tmp_path / "child.jsonl", "wb") as out:
        writer = ChildWriter(frame, "mission", out, "child.jsonl")
        sizes = _Sizes(writer._pictures)
        writer._pictures = sizes  # type: ignore[assignment]  # sends noted, then made
        for picture in pictures:
            writer.write(picture)
        writer.close()
    alone = io.BytesIO()
    in_process = PictureWriter(frame, "mission", alone, "alone")
    for picture in pictures:
        in_process.write(picture)
    assert (tmp_path / "child.jsonl").read_bytes() == alone.getvalue()
    assert len(sizes.sizes) > 20 // PICTURES_PER_SEND + 2  # the rows ended sends early
    assert max(sizes.sizes) < PIPE_BYTES
