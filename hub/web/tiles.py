"""A basemap the mission supplies: raster tiles from one MBTiles or PMTiles file.

A mission area has no internet, so the console's detailed map is a file cut
for the area beforehand (by a national mapping agency, Protomaps, MOBAC...).
``web.basemap`` names it; ``GET /tiles/{z}/{x}/{y}`` serves its tiles in the
XYZ scheme Leaflet asks for. MBTiles store rows in the TMS scheme (y counted
from the south): ``row = 2^z - 1 - y``. Only raster tiles (PNG, JPEG, WebP)
are served: vector tiles would need a renderer in the browser.
"""

from __future__ import annotations

import mmap
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hub.errors import ConfigError

WHERE = "$.web.basemap"
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
                 "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile's bytes and media type."""

    data: bytes
    content_type: str


class TileSource(Protocol):
    """Where tiles come from: ``tile`` answers None for a tile the file does not hold."""

    max_zoom: int

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        """The tile at ``z/x/y`` (XYZ scheme), if held."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class MBTiles:
    """An MBTiles 1.3 file (SQLite), opened read-only."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                       check_same_thread=False)
            meta = dict(self._db.execute("SELECT name, value FROM metadata").fetchall())
            zoom = self._db.execute("SELECT MAX(zoom_level) FROM tiles").fetchone()[0]
        except sqlite3.Error as exc:
            raise ConfigError(f"{WHERE}: {path} is not an MBTiles file: {exc}") from exc
        fmt = str(meta.get("format", "png")).lower()
        if fmt not in CONTENT_TYPES:
            raise ConfigError(f"{WHERE}: {path} holds {fmt!r} tiles; only raster "
                              f"({', '.join(sorted(CONTENT_TYPES))}) can be served")
        self.content_type = CONTENT_TYPES[fmt]
        self.max_zoom = int(zoom or 0)

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        """The tile at ``z/x/y``; the file's rows are TMS (counted from the south)."""
        row = self._db.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
            (z, x, (1 << z) - 1 - y)).fetchone()
        return None if row is None else Tile(bytes(row[0]), self.content_type)

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class PMTiles:
    """A PMTiles v3 file, memory-mapped."""

    def __init__(self, path: Path) -> None:
        from pmtiles.reader import Reader
        from pmtiles.tile import Compression, TileType

        self._file = path.open("rb")
        try:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._reader = Reader(  # type: ignore[no-untyped-call]
                lambda offset, length: self._map[offset:offset + length])
            header = self._reader.header()  # type: ignore[no-untyped-call]
        except Exception as exc:  # pmtiles raises bare Exception subclasses on a bad file
            self._file.close()
            raise ConfigError(f"{WHERE}: {path} is not a PMTiles v3 file: {exc!r}") from exc
        types = {TileType.PNG: "image/png", TileType.JPEG: "image/jpeg",
                 TileType.WEBP: "image/webp"}
        if header["tile_type"] not in types:
            self.close()
            raise ConfigError(f"{WHERE}: {path} holds {header['tile_type'].name} tiles; "
                              "only raster (PNG, JPEG, WebP) can be served")
        if header["tile_compression"] not in (Compression.NONE, Compression.UNKNOWN):
            self.close()
            raise ConfigError(f"{WHERE}: {path} compresses its tiles "
                              f"({header['tile_compression'].name}); raster tiles are not")
        self.content_type = types[header["tile_type"]]
        self.max_zoom = int(header["max_zoom"])

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        """The tile at ``z/x/y``."""
        data = self._reader.get(z, x, y)  # type: ignore[no-untyped-call]
        return None if data is None else Tile(bytes(data), self.content_type)

    def close(self) -> None:
        """Unmap and close the file."""
        if hasattr(self, "_map"):
            self._map.close()
        self._file.close()


def open_basemap(path: str) -> TileSource:
    """Open ``web.basemap`` by its suffix; every problem names the key."""
    target = Path(path)
    if not target.is_file():
        raise ConfigError(f"{WHERE}: no such file: {target}")
    if target.suffix == ".mbtiles":
        return MBTiles(target)
    if target.suffix == ".pmtiles":
        return PMTiles(target)
    raise ConfigError(f"{WHERE}: {target} is neither .mbtiles nor .pmtiles")
