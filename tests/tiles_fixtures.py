"""Small raster basemaps the tests write: an MBTiles and a PMTiles file with known tiles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cv2
import numpy as np
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

TILES = [(0, 0, 0), (1, 1, 0), (2, 2, 1)]
"""z, x, y (XYZ, y from the north) of the tiles each file holds."""


def png(z: int, x: int, y: int) -> bytes:
    """A 256 px PNG whose colour encodes its address, so a wrong row shows."""
    image = np.full((256, 256, 3), (z * 40, x * 40, y * 40), np.uint8)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def write_mbtiles(path: Path) -> Path:
    """An MBTiles 1.3 file; rows stored TMS (from the south) as the spec says."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metadata (name text, value text)")
        db.execute("CREATE TABLE tiles (zoom_level integer, tile_column integer, "
                   "tile_row integer, tile_data blob)")
        db.executemany("INSERT INTO metadata VALUES (?, ?)",
                       [("name", "test"), ("format", "png"), ("minzoom", "0"), ("maxzoom", "2")])
        db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                       [(z, x, (1 << z) - 1 - y, png(z, x, y)) for z, x, y in TILES])
    return path


def write_pmtiles(path: Path) -> Path:
    """A PMTiles v3 file of raster PNG tiles."""
    with path.open("wb") as f:
        writer = Writer(f)
        for z, x, y in sorted(TILES, key=lambda t: zxy_to_tileid(*t)):
            writer.write_tile(zxy_to_tileid(z, x, y), png(z, x, y))
        writer.finalize({"tile_type": TileType.PNG, "tile_compression": Compression.NONE,
                         "min_zoom": 0, "max_zoom": 2, "min_lon_e7": -1800000000,
                         "min_lat_e7": -850000000, "max_lon_e7": 1800000000,
                         "max_lat_e7": 850000000, "center_zoom": 0, "center_lon_e7": 0,
                         "center_lat_e7": 0}, {"name": "test"})
    return path
