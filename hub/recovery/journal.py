"""The journal: every input that changes the pipeline, appended before it is acknowledged.

Segments ``journal-<n>.msgpack`` hold one MessagePack array per record:
``["m", t_received, topic, payload]`` an accepted message, ``["s", t, scan]``
a frame's scan, ``["f", t]`` a fusion step. A record is one ``os.write`` on a
file opened for appending, so it is in the kernel before the handler returns
and the broker gets its acknowledgement: a killed hub (SIGKILL, an
out-of-memory kill) loses none. It is not fsynced per record (that would cost
a disk flush per message): a power cut can lose the last second or so, which
the checkpoint's fsync bounds.

A journal that cannot be written (a full disk) costs durability, never data:
the message is still fused and acknowledged, the failure is counted
(``journal_failed``) and logged at most once per 10 s, and a record torn by the
failure ends its segment (the next record starts a new one), so a replay
loses only what was never written.

A new segment starts at each checkpoint, which then names the first segment
to replay; older segments are deleted once it is safely written.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from hub.fusion.measurements import Scan
from hub.metrics import RateLimitedLog
from hub.recovery.codec import encode_scan

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"journal-(\d{12})\.msgpack")
READ_BYTES = 1 << 20


def segment_path(directory: Path, number: int) -> Path:
    """The file of segment ``number``."""
    return directory / f"journal-{number:012d}.msgpack"


def segments(directory: Path) -> list[int]:
    """The numbers of the segments in ``directory``, oldest first."""
    found = (_SEGMENT.fullmatch(p.name) for p in directory.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


class Journal:
    """Appends records to the current segment of ``directory``."""

    def __init__(self, directory: Path, segment: int,
                 counters: Counter[str] | None = None) -> None:
        self.directory = directory
        self.counters = Counter[str]() if counters is None else counters
        """``journal_failed``: records the disk refused (fused all the same)."""
        self.segment = segment
        self.records = 0
        """Records written since the hub started."""
        self._packer = msgpack.Packer(use_bin_type=True)
        self._fd = self._open(segment)
        self._torn = False
        self._errors = RateLimitedLog(log)

    def _open(self, segment: int) -> int:
        return os.open(segment_path(self.directory, segment),
                       os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def message(self, t_received: float, topic: str, payload: bytes) -> None:
        """An accepted message, with the time it was received."""
        self._write(["m", t_received, topic, payload])

    def scan(self, t_received: float, scan: Scan) -> None:
        """A frame's scan, queued at ``t_received``."""
        self._write(["s", t_received, encode_scan(scan)])

    def fused(self, t_received: float) -> None:
        """A fusion step: what the window released at ``t_received`` was fused."""
        self._write(["f", t_received])

    def _write(self, record: list[object]) -> None:
        data = memoryview(self._packer.pack(record))
        size = len(data)
        try:
            if self._torn:
                self.rotate()
                self._torn = False
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            self.counters["journal_failed"] += 1
            self._torn = self._torn or len(data) < size
            self._errors.error("journal %s: cannot write (%s): messages are fused but a "
                               "crash now would lose them", self.directory, exc.strerror)
            return
        self.records += 1

    def rotate(self) -> int:
        """Start the next segment; return its number (what a checkpoint replays from).

        The next segment is opened before the current one is closed: a directory
        that cannot take it leaves the journal writing where it was.
        """
        fd = self._open(self.segment + 1)
        os.close(self._fd)
        self._fd, self.segment = fd, self.segment + 1
        return self.segment

    def close(self) -> None:
        """Close the current segment."""
        os.close(self._fd)


def read_segment(path: Path) -> Iterator[list[Any]]:
    """The records of one segment; a torn or damaged tail ends it with a warning."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64 * READ_BYTES)
    good = 0
    with path.open("rb") as file:
        while chunk := file.read(READ_BYTES):
            unpacker.feed(chunk)
            try:
                for record in unpacker:
                    if not isinstance(record, list) or not record:
                        raise ValueError(f"a record is a {type(record).__name__}")
                    good = unpacker.tell()
                    yield record
            except ValueError as exc:
                log.warning("journal %s damaged at byte %d (%s): replayed up to there",
                            path.name, good, exc)
                return
    try:
        unpacker.read_bytes(1)  # refused while a record is incomplete
    except ValueError:
        log.warning("journal %s ends in a torn record at byte %d: replayed up to there",
                    path.name, good)
