"""Recording files: consecutive MessagePack arrays ``[t_received, topic, payload_bytes]``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


def read_recording(path: str | Path) -> Iterator[Record]:
    """Yield the records of a recording file in file order."""
    with open(path, "rb") as file:
        unpacker = msgpack.Unpacker(file, raw=False, use_list=True, max_buffer_size=64 << 20)
        for index, item in enumerate(unpacker):
            if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[1], str)
                    or not isinstance(item[2], bytes) or not isinstance(item[0], int | float)):
                raise PayloadError("schema",
                                   f"{path}: record {index} is not [t_received, topic, payload]")
            yield float(item[0]), item[1], item[2]
