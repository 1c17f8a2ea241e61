"""Recording files: consecutive MessagePack arrays ``[t_received, topic, payload_bytes]``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgpack

from hub.errors import PayloadError

Record = tuple[float, str, bytes]


class RecordingWriter:
    """Append records to a recording file; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._packer = msgpack.Packer(use_bin_type=True)
        self.count = 0

    def write(self, t_received: float, topic: str, payload: bytes) -> None:
        """Append one record."""
        self._file.write(self._packer.pack([t_received, topic, payload]))
        self.count += 1

    def write_all(self, records: Iterable[Record]) -> None:
        """Append every record of ``records``."""
        for record in records:
            self.write(*record)

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _record(item: object) -> Record | None:
    """``item`` as a record, or None when it is not ``[t_received, topic, payload]``."""
    if (isinstance(item, list) and len(item) == 3 and isinstance(item[0], int | float)
            and isinstance(item[1], str) and isinstance(item[2], bytes)):
        return float(item[0]), item[1], item[2]
    return None


@dataclass(frozen=True)
class Damage:
    """Where a recording stops being readable: the bytes before ``offset`` are whole records."""

    path: str
    offset: int
    size: int
    records: int
    problem: str

    def __str__(self) -> str:
        return (f"{self.path}: damaged at byte {self.offset} of {self.size} ({self.problem}) "
                f"after {self.records} records")


_CUT_OFF = "a record cut off: the file ends before the length its header gives"


class RecordingReader:
    """The records of a recording file in file order, up to the first damage.

    Iterate once; then ``damage`` says where reading stopped and why, or is None
    when the file ends on a record boundary. A file cut short (a copy or a recorder
    killed mid-write) ends in a partial record; a length prefix claiming more than
    the file holds looks the same, and both are damage, never an early clean end.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.records = 0
        self.damage: Damage | None = None

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            unpacker = msgpack.Unpacker(file, raw=False, use_list=True,
                                        max_buffer_size=64 << 20)
            offset, problem = 0, _CUT_OFF
            while True:
                try:
                    record = _record(next(unpacker))
                except StopIteration:
                    break
                except (ValueError, msgpack.UnpackException) as exc:  # not MessagePack there
                    problem = f"not MessagePack: {exc}"
                    break
                if record is None:
                    problem = "not a [t_received, topic, payload] record"
                    break
                self.records += 1
                offset = unpacker.tell()
                yield record
        if offset < size:
            self.damage = Damage(str(self.path), offset, size, self.records, problem)


def read_recording(path: str | Path) -> Iterator[Record]:
    """Yield the records of a recording file in file order; raise PayloadError at damage."""
    reader = RecordingReader(path)
    yield from reader
    if reader.damage is not None:
        raise PayloadError("undecodable", str(reader.damage))
