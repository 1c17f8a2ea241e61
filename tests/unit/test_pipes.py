"""A replay's pipes to its children hold a whole batch: the sender does not wait for the reader."""

from __future__ import annotations

import fcntl
import multiprocessing
import pickle
import threading

import numpy as np

from hub.cli.replay_ingest import BATCH, FIRST_BATCH, batches, pack
from hub.cluster.records import Decoded
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
