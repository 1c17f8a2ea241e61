"""A replay's ``--tracks-out``: each picture's rows as JSON Lines, written here or by a child.

A picture is taken in the replay's process as columns (``picture_columns``:
a few gathers of the tables' publishable rows); its rows are made from them
(geodetic positions, names, one record each) and encoded in bulk by msgspec.
``ChildWriter`` does that second half in a forked child, on the machine's
other core, while the replay fuses on: the file is the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import BinaryIO, Protocol

import msgspec
import numpy as np
from numpy.typing import NDArray

from hub.errors import HubError
from hub.fusion.tracks import TrackTable, publishable_rows
from hub.geo import EnuFrame
from hub.pipes import BATCH_ROWS, batch_pipe
from hub.publish.pictures import CLASS_NAMES, PARTS, STATUS_NAMES

PICTURES_PER_SEND = 16
"""Pictures a ChildWriter sends at once: one pickle and one pipe write for several (fewer
when they reach ``hub.pipes.BATCH_ROWS`` rows, so a send fits its pipe)."""

log = logging.getLogger(__name__)


class TrackRow(msgspec.Struct):
    """One JSON Lines record of ``--tracks-out``."""

    t: float
    track_id: str
    lat: float
    lon: float
    vn: float
    ve: float
    status: str
    cls: str
    affiliation: str
    picture: str


Tables = tuple[TrackTable, ...]
"""A picture's tables: fused tracks, then friend platforms (hub.release.groups.GroupTables)."""


@dataclass(frozen=True, slots=True)
class PictureColumns:
    """A picture's publishable rows, column by column, the tables' rows one after the other."""

    t: float
    x: NDArray[np.float64]
    """(N, 4) east, north, east and north velocity."""
    ids: NDArray[np.int64]
    status: NDArray[np.int8]
    cls: NDArray[np.intp]
    """Each row's most likely class (an index of CLASS_NAMES)."""
    counts: tuple[int, ...]
    """Rows of each table, in ``PARTS`` order."""


def picture_columns(tables: Tables, t: float) -> PictureColumns:
    """The columns of the publishable rows of ``tables`` (at fusion time ``t``)."""
    kept = [publishable_rows(table) for table in tables]
    pairs = list(zip(tables, kept, strict=True))
    return PictureColumns(
        t=t, x=np.concatenate([table.x[keep] for table, keep in pairs]),
        ids=np.concatenate([table.id[keep] for table, keep in pairs]),
        status=np.concatenate([table.status[keep] for table, keep in pairs]),
        cls=np.concatenate([table.cls_probs[keep].argmax(axis=1) for table, keep in pairs]),
        counts=tuple(keep.shape[0] for keep in kept))


def picture_rows(frame: EnuFrame, columns: PictureColumns, picture: str) -> list[TrackRow]:
    """The records of ``columns``, built column by column.

    All tables' positions go through one geodetic conversion: its twenty-odd
    numpy calls cost more than their arithmetic on a picture's few hundred rows.
    """
    x = columns.x
    lat, lon, _ = frame.to_geodetic(x[:, 0], x[:, 1], 0.0)
    ids: list[str] = []
    affiliations: list[str] = []
    parts = np.split(columns.ids, np.cumsum(columns.counts)[:-1])
    for part_ids, (affiliation, prefix) in zip(parts, PARTS, strict=True):
        ids += [f"{prefix}{i}" for i in part_ids.tolist()]
        affiliations += [affiliation] * part_ids.shape[0]
    when = round(columns.t, 3)
    rows = zip(ids, lat.tolist(), lon.tolist(), x[:, 3].tolist(), x[:, 2].tolist(),
               STATUS_NAMES[columns.status].tolist(), CLASS_NAMES[columns.cls].tolist(),
               affiliations, strict=True)
    return [TrackRow(when, i, la, lo, vn, ve, s, c, a, picture)
            for i, la, lo, vn, ve, s, c, a in rows]


class PictureSink(Protocol):
    """Where a replay's pictures go."""

    def write(self, columns: PictureColumns) -> None: ...

    def close(self) -> None:
        """Write what is still held; raise if any write failed."""


class WriteFailed(HubError):
    """``--tracks-out`` could not be written (one line: the file and why)."""


class PictureWriter:
    """Writes each picture's rows to ``out`` (named ``name`` in errors) in this process."""

    def __init__(self, frame: EnuFrame, picture: str, out: BinaryIO, name: str) -> None:
        self.frame, self.picture, self.out, self.name = frame, picture, out, name
        self._encoder = msgspec.json.Encoder()

    def write(self, columns: PictureColumns) -> None:
        """Make and write the rows of one picture; WriteFailed if the file refuses them."""
        rows = picture_rows(self.frame, columns, self.picture)
        with self._refused():
            self.out.write(self._encoder.encode_lines(rows))

    def close(self) -> None:
        """Flush the file (the caller closes it); WriteFailed if it refuses."""
        with self._refused():
            self.out.flush()

    @contextmanager
    def _refused(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:  # a full disk, a pipe closed
            raise WriteFailed(f"{self.name}: {exc.strerror or exc}") from exc


class ChildWriter:
    """A PictureWriter in a forked child: the columns are sent there, the rows made and written.

    ``out`` must be a real file, opened and not yet written: the child writes
    to its inherited copy, and this process must not write to it at all.
    """

    def __init__(self, frame: EnuFrame, picture: str, out: BinaryIO, name: str) -> None:
        context = multiprocessing.get_context("fork")
        child_end, self._pictures = batch_pipe(context)
        self._outcome, outcome_end = context.Pipe(duplex=False)
        self._child = context.Process(
            target=_write_pictures, name="hub-replay-writer", daemon=True,
            args=((child_end, outcome_end), (self._pictures, self._outcome), frame, picture, out,
                  name))
        self._child.start()
        child_end.close()
        outcome_end.close()
        self._held: list[PictureColumns] = []
        self._held_rows = 0

    def write(self, columns: PictureColumns) -> None:
        """Queue one picture: sent with the next ones, or raise WriteFailed if the child failed."""
        self._held.append(columns)
        self._held_rows += columns.x.shape[0]
        if len(self._held) == PICTURES_PER_SEND or self._held_rows >= BATCH_ROWS:
            self._send()

    def _send(self) -> None:
        try:
            self._pictures.send(self._held)
        except (BrokenPipeError, ConnectionResetError):
            self._wait_for_child()
        self._held, self._held_rows = [], 0

    def close(self) -> None:
        """Send the rest and wait for the child's last write; raise WriteFailed if one failed."""
        if self._held:
            self._send()
        try:
            self._pictures.send(None)
        except (BrokenPipeError, ConnectionResetError):
            self._wait_for_child()
        self._pictures.close()
        self._wait_for_child()

    def _wait_for_child(self) -> None:
        """Wait for the child's last word; raise WriteFailed unless it wrote everything."""
        try:
            problem = self._outcome.recv()
        except EOFError:
            self._child.join()
            problem = f"the tracks writer ended (exit code {self._child.exitcode})"
        self._child.join()
        if problem:
            raise WriteFailed(problem)

    def abandon(self) -> None:
        """Stop the child without waiting for its writes (the replay failed)."""
        self._child.terminate()
        self._child.join()


def _write_pictures(ends: tuple[Connection, Connection], inherited: tuple[Connection, ...],
                    frame: EnuFrame, picture: str, out: BinaryIO, name: str) -> None:
    """The child: write each picture received until the end; say "" or one line why not.

    ``inherited`` are the replay's ends of the two pipes: closed at once, so
    the pictures' pipe ends when the replay is gone (a SIGKILL) instead of
    waiting on this child's own copy of its write end.
    """
    for connection in inherited:
        connection.close()
    pictures, outcome = ends
    os.nice(10)  # the fusion is the bottleneck: where cores are short, it goes first
    writer = PictureWriter(frame, picture, out, name)
    problem = ""
    try:
        while (batch := pictures.recv()) is not None:
            for columns in batch:
                writer.write(columns)
        writer.close()
    except EOFError:
        problem = "the replay ended without closing its tracks"
    except WriteFailed as exc:
        problem = str(exc)
    except KeyboardInterrupt:
        problem = "interrupted"
    except Exception as exc:  # a bug: its traceback in the log, one line for the replay
        log.exception("writing %s failed", name)
        problem = f"writing {name} failed: {type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(OSError):  # the replay is gone: no one is left to tell
            outcome.send(problem)
        outcome.close()
