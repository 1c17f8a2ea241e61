"""A replay's ingest: a recording's messages made into fusion steps, here or in a child process.

The ingest (budgets, decoding, validation, each sensor's conversion to
mission ENU, imagery) turns the records into steps, in order: each item it
admits, with the message's receive time, then a fusion step at that time
(``hub.cluster.records.Decoded``, as a cluster's inputs stream holds them).
The fusion applies the steps in that order wherever they were made, so the
tracks are the same bytes either way. Made in a child process
(``ChildIngest``), they are ready on the machine's other core while this one
fuses, and a replay takes about as long as its fusion alone.

The child is forked, not spawned: a spawned one would import the hub again
(0.2 s of a replay's 0.25 s start-up). The replay command runs no thread to
fork under. The child ends with the replay however it ends: a closed pipe
fails its next send, and a child that is still running when the replay stops
early is terminated.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from hub.cluster.records import Decoded
from hub.config import HubConfig
from hub.errors import HubError
from hub.fusion.measurements import Scan
from hub.ingest.frame_pool import FramePool
from hub.ingest.router import InboundItem, PlatformFix
from hub.messages import Telemetry
from hub.pipeline import Pipeline
from hub.pipes import BATCH_ROWS, batch_pipe
from hub.recording import Damage, Record, RecordingReader

BATCH = 512
"""Steps per send to the fusion: one pickle and one pipe write for many small items."""
FIRST_BATCH = 16
"""The first send's steps: the fusion waits for them; each next batch is twice as large."""

PROGRESS_EVERY = 10_000
"""Messages between two calls of a replay's progress callback."""

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestResult:
    """What the ingest counted (received, rejected, detections...) and where the file broke."""

    counters: Counter[str]
    damage: Damage | None


class Ingest(Protocol):
    """Steps for the fusion, then (once they are all taken) the ingest's result."""

    result: IngestResult | None

    def steps(self) -> Iterator[Decoded]: ...


class IngestFailed(HubError):
    """The child process making a replay's steps failed or died."""


class InlineIngest:
    """The ingest in this process, one message at a time as the fusion takes its steps."""

    def __init__(self, records: Iterable[Record], config: HubConfig,
                 progress: Progress | None = None, frame_workers: int | None = None) -> None:
        self.records, self.config, self.progress = records, config, progress
        self.frame_workers = frame_workers
        """Frame worker processes (``imagery.workers`` unless given; 0: frames run here)."""
        self.result: IngestResult | None = None

    def steps(self) -> Iterator[Decoded]:
        """Each message's admitted items (frames' scans included), then its fusion step."""
        frames = FramePool(self.config, wait=True, workers=self.frame_workers)
        ingest = Pipeline(self.config, frames=frames, groups=())
        admitted: list[Decoded] = []

        def admit(item: InboundItem, t_received: float) -> bool:
            admitted.append(Decoded(t_received, item))
            return True  # whether it is late is for the fusion's reorder window to say

        ingest.on_item = admit
        try:
            for count, (t_received, topic, payload) in enumerate(self.records, 1):
                if topic.startswith("sensors/"):
                    ingest.handle(topic, payload, t_received)
                    ingest.collect_frames(t_received)
                    admitted.append(Decoded(t_received, None))
                    yield from admitted
                    admitted.clear()
                if self.progress is not None and count % PROGRESS_EVERY == 0:
                    self.progress(count)
        finally:
            ingest.close()  # a frame still out is collected here, and queued by the fusion's end
        yield from admitted
        damage = self.records.damage if isinstance(self.records, RecordingReader) else None
        self.result = IngestResult(ingest.counters + ingest.router.counters, damage)


class ChildIngest:
    """The ingest of the recording at ``path`` in a forked child, its steps sent here in batches."""

    def __init__(self, path: str | Path, config: HubConfig,
                 progress: Progress | None = None) -> None:
        self.path, self.config, self.progress = path, config, progress
        self.result: IngestResult | None = None

    def steps(self) -> Iterator[Decoded]:
        """The child's steps as they arrive; IngestFailed if it fails or dies first."""
        context = multiprocessing.get_context("fork")
        receiver, sender = batch_pipe(context)
        # Not a daemon: a daemon may not start frame workers, which it may need (_make_steps).
        child = context.Process(target=_make_steps, name="hub-replay-ingest",
                                args=(sender, receiver, self.path, self.config, self.progress))
        child.start()
        sender.close()  # the child holds the only write end: its exit is our end of file
        try:
            while self.result is None:
                yield from self._receive(receiver, child)
        finally:
            receiver.close()
            if self.result is None:  # the fusion stopped early, or the child failed
                child.terminate()
            child.join()

    def _receive(self, receiver: Connection, child: multiprocessing.process.BaseProcess,
                 ) -> list[Decoded]:
        try:
            message = receiver.recv()
        except EOFError:
            child.join()
            raise IngestFailed(f"the replay's ingest process ended (exit code "
                               f"{child.exitcode}) before the end of {self.path}") from None
        if isinstance(message, IngestResult):
            self.result = message
            return []
        if isinstance(message, str):
            raise IngestFailed(message)
        return unpack(message)


def _make_steps(sender: Connection, receiver: Connection, path: str | Path, config: HubConfig,
                progress: Progress | None) -> None:
    """The child: send the steps of ``path`` in batches, then the result (or one line why not).

    ``receiver`` is the replay's end of the pipe, inherited: closed at once,
    so a send fails when the replay is gone (a SIGKILL) instead of blocking.
    """
    receiver.close()
    try:
        os.nice(10)  # the fusion is the bottleneck: where cores are short, it goes first
        ingest = InlineIngest(RecordingReader(path), config, progress, _frame_workers())
        for batch in batches(ingest.steps()):
            sender.send(pack(batch))
        sender.send(ingest.result)
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the replay has stopped: there is no one to tell
    except OSError as exc:
        _tell(sender, f"{exc.filename or path}: {exc.strerror or exc}")
    except Exception as exc:  # a bug: its traceback in the log, one line for the replay
        log.exception("replay ingest of %s failed", path)
        _tell(sender, f"replay ingest of {path} failed: {type(exc).__name__}: {exc}")
    finally:
        sender.close()


def batches(steps: Iterable[Decoded]) -> Iterator[list[Decoded]]:
    """``steps`` in batches for the pipe: the last one possibly empty, every one sent.

    ``FIRST_BATCH`` steps first (the fusion waits for them), then twice as
    many each time up to ``BATCH``; a batch ends early at ``hub.pipes.BATCH_ROWS``
    detections, so it fits its pipe however large the scans.
    """
    batch: list[Decoded] = []
    size, rows = FIRST_BATCH, 0
    for step in steps:
        batch.append(step)
        if isinstance(step.item, Scan):
            rows += len(step.item)
        if len(batch) == size or rows >= BATCH_ROWS:
            yield batch
            batch, size, rows = [], min(2 * size, BATCH), 0
    yield batch


def _tell(sender: Connection, line: str) -> None:
    """Send the replay the line saying why its ingest failed, unless it has gone."""
    with contextlib.suppress(OSError):
        sender.send(line)


@dataclass(frozen=True, slots=True)
class Packed:
    """A batch of steps as a few arrays and lists: cheap to pickle, unlike a dataclass each.

    Pickling a frozen dataclass calls two Python functions per object, and
    unpickling a scan's four arrays costs more than fusing a small scan: the
    scans' arrays go concatenated, and come back as views of them.
    """

    kinds: bytes
    """Per step: ``_TICK``, ``_SCAN`` or ``_FIX``."""
    t: list[float]
    """Each step's receive time."""
    scans: list[tuple[float, int, int]]
    """Each scan's measurement time, sensor and number of rows."""
    z: NDArray[np.float64]
    r: NDArray[np.float64]
    cls: NDArray[np.int16]
    conf: NDArray[np.float64]
    fixes: list[tuple[float, int, Telemetry, tuple[float, float]]]


_TICK, _SCAN, _FIX = 0, 1, 2


def pack(steps: list[Decoded]) -> Packed:
    """``steps`` for the pipe."""
    kinds = bytearray()
    scans: list[Scan] = []
    fixes: list[tuple[float, int, Telemetry, tuple[float, float]]] = []
    for step in steps:
        item = step.item
        if isinstance(item, Scan):
            kinds.append(_SCAN)
            scans.append(item)
        elif isinstance(item, PlatformFix):
            kinds.append(_FIX)
            fixes.append((item.t, item.sensor, item.telemetry, item.enu))
        else:
            kinds.append(_TICK)

    def joined(arrays: list[NDArray[Any]], shape: tuple[int, ...], dtype: type) -> NDArray[Any]:
        return np.concatenate(arrays) if arrays else np.zeros(shape, dtype)

    return Packed(bytes(kinds), [step.t for step in steps],
                  [(scan.t, scan.sensor, len(scan)) for scan in scans],
                  joined([scan.z for scan in scans], (0, 2), np.float64),
                  joined([scan.R for scan in scans], (0, 2, 2), np.float64),
                  joined([scan.cls for scan in scans], (0,), np.int16),
                  joined([scan.conf for scan in scans], (0,), np.float64), fixes)


def unpack(packed: Packed) -> list[Decoded]:
    """The steps ``pack`` was given."""
    scans, fixes = iter(packed.scans), iter(packed.fixes)
    steps: list[Decoded] = []
    start = 0
    for kind, t_received in zip(packed.kinds, packed.t, strict=True):
        item: InboundItem | None = None
        if kind == _SCAN:
            t, sensor, n = next(scans)
            rows = slice(start, start + n)
            start += n
            item = Scan(t, sensor, packed.z[rows], packed.r[rows], packed.cls[rows],
                        packed.conf[rows])
        elif kind == _FIX:
            item = PlatformFix(*next(fixes))
        steps.append(Decoded(t_received, item))
    return steps


def _frame_workers() -> int | None:
    """Frame workers for this forked child: none (frames run here) where that is safe.

    This child is already beside the fusion and a replay waits for each
    frame, so a worker process only adds its round trip (the default
    scenario, 300 s, 600 frames: 7.3 s with one, 3.8 s without). But a
    process that loaded OpenCV before it forked us (a program, or a test,
    that used it before replaying) left us an OpenCV whose thread pool did
    not survive the fork, and OpenCV waits for that pool for ever: then the
    frames go to worker processes (``imagery.workers``) through a fork server
    of our own. ``hub replay`` itself never loads OpenCV before the fork.
    """
    if "cv2" not in sys.modules:
        return 0
    _forget_inherited_fork_server()
    return None


def _forget_inherited_fork_server() -> None:
    """Let this forked child start a fork server of its own for its frame workers.

    multiprocessing keeps the fork server of the process that forked us (one
    that already ran frame workers, as a test's may have) and would wait for
    it as for its own child: ECHILD. Our copy of its "alive" pipe is closed,
    so it still ends when its owner lets it go.
    """
    server: Any = multiprocessing.forkserver._forkserver
    with server._lock:
        if server._forkserver_alive_fd is not None:
            os.close(server._forkserver_alive_fd)
        server._forkserver_pid = server._forkserver_address = None
        server._forkserver_alive_fd = None
