"""A mission-supplied basemap: MBTiles (TMS rows), PMTiles; raster only; errors name the key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tiles_fixtures import TILES, png, write_mbtiles, write_pmtiles

from hub.errors import ConfigError
from hub.web.tiles import open_basemap


@pytest.mark.parametrize("write", [write_mbtiles, write_pmtiles], ids=["mbtiles", "pmtiles"])
def test_every_tile_is_served_at_its_xyz_address(tmp_path: Path, write: object) -> None:
    suffix = ".mbtiles" if write is write_mbtiles else ".pmtiles"
    source = open_basemap(str(write(tmp_path / f"map{suffix}")))  # type: ignore[operator]
    try:
        assert source.max_zoom == 2
        for z, x, y in TILES:
            tile = source.tile(z, x, y)
            assert tile is not None and tile.data == png(z, x, y)
            assert tile.content_type == "image/png"
        assert source.tile(2, 0, 0) is None  # not in the file
    finally:
        source.close()


def test_bad_basemaps_are_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$\.web\.basemap: no such file"):
        open_basemap(str(tmp_path / "missing.mbtiles"))
    junk = tmp_path / "junk.pmtiles"
    junk.write_bytes(b"not a pmtiles file" * 10)
    with pytest.raises(ConfigError, match=r"\$\.web\.basemap: .* not a PMTiles v3 file"):
        open_basemap(str(junk))
    vector = write_mbtiles(tmp_path / "vector.mbtiles")
    with sqlite3.connect(vector) as db:
        db.execute("UPDATE metadata SET value='pbf' WHERE name='format'")
    with pytest.raises(ConfigError, match="only raster"):
        open_basemap(str(vector))
    other = tmp_path / "map.tif"
    other.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"neither \.mbtiles nor \.pmtiles"):
        open_basemap(str(other))
