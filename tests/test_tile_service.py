"""One tile service for vector and raster tiles: one cache (memory and disk), one ETag and
304 rule, gzip where it helps, one invalidation path (NOTIFY) for both kinds."""

from __future__ import annotations

import datetime as dt
import gzip
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box
from support import LiveServer

from api import create_app
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings, TilesSettings
from tiles.tms import TILE_MATRIX_SETS

WEST, NORTH = 112.10, 22.95
Z = 13


def _scene(path: Path, value: int, when: str) -> Path:
    """A 4-band uint16 scene of constant bands (``value`` in red) over a small square."""
    size = 256
    data = np.full((4, size, size), 1000, dtype=np.uint16)
    data[2] = value
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 4,
               "dtype": "uint16", "crs": "EPSG:4326", "nodata": 0,
               "transform": from_origin(WEST, NORTH, 0.0002, 0.0002)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(TIFFTAG_DATETIME=when)
        for i, name in enumerate(("blue", "green", "red", "nir"), 1):
            dst.set_band_description(i, name)
    return path


@pytest.fixture(scope="module")
def world(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A server with a disk tier, a raster collection of one scene and a vector layer."""
    folder = tmp_path_factory.mktemp("tile-service")
    tiles = TilesSettings(disk_cache_dir=folder / "cache")
    cached = settings.model_copy(update={"tiles": tiles})
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    first = _scene(folder / "ts_2025.tif", 3000, "2025:06:01 03:00:00")
    ingest_raster(url, RasterSource(paths=(first,), collection_id="ts_scenes", public=True,
                                    datetime=dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),
                  cached, actor="pytest")  # fmt: skip
    # A grid of 400 cells: a tile large enough for gzip to help.
    step = 0.002
    cells = gpd.GeoDataFrame(
        {"n": list(range(400)), "name": [f"cell {i:03d}" for i in range(400)]},
        crs="EPSG:4326",
        geometry=[box(WEST + (i % 20) * step, NORTH - 0.05 + (i // 20) * step,
                      WEST + (i % 20 + 1) * step, NORTH - 0.05 + (i // 20 + 1) * step)
                  for i in range(400)],
    )  # fmt: skip
    cells.to_file(folder / "cells.gpkg")
    layer = VectorSource(path=folder / "cells.gpkg", collection_id="ts_cells", title="cells",
                         public=True)  # fmt: skip
    ingest_vector(url, layer, cached, actor="pytest")
    with LiveServer(create_app(cached)) as live:
        yield {"live": live, "settings": cached, "url": url, "folder": folder}


def _paths() -> tuple[str, str]:
    tile = TILE_MATRIX_SETS["WebMercatorQuad"].tile(WEST + 0.02, NORTH - 0.02, Z)
    where = f"WebMercatorQuad/{Z}/{tile.y}/{tile.x}"
    return (f"/collections/ts_cells/tiles/{where}",
            f"/collections/ts_scenes/map/tiles/{where}?bands=red&rescale=0,4000")  # fmt: skip


def test_vector_and_raster_tiles_share_the_cache_etag_and_304(world: dict) -> None:
    with httpx.Client(base_url=world["live"].url, timeout=60) as client:
        for path in _paths():
            first = client.get(path)
            assert first.status_code == 200, (path, first.text)
            assert first.headers["x-tile-cache"] == "miss"
            again = client.get(path)
            assert again.headers["x-tile-cache"] == "hit" and again.content == first.content
            assert again.headers["etag"] == first.headers["etag"]
            assert again.headers["cache-control"] == "no-cache"
            unchanged = client.get(path, headers={"If-None-Match": first.headers["etag"]})
            assert unchanged.status_code == 304 and unchanged.content == b""
            other = client.get(path, headers={"If-None-Match": '"nope"'})
            assert other.status_code == 200
    # Both kinds are in the one disk tier every worker shares.
    with sqlite3.connect(world["folder"] / "cache" / "tiles.sqlite") as disk:
        keys = [k for (k,) in disk.execute("SELECT key FROM tiles")]
    assert any(k.startswith("raster|ts_scenes|") for k in keys), keys
    assert any(k.startswith("ts_cells/") for k in keys), keys


def test_gzip_where_it_helps(world: dict) -> None:
    vector, raster = _paths()
    with httpx.Client(base_url=world["live"].url, timeout=60) as client:
        plain = client.get(vector, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.headers["vary"] == "Accept-Encoding"
        for _ in range(2):  # compressed once, then kept beside the tile
            with client.stream("GET", vector, headers={"Accept-Encoding": "gzip"}) as raw:
                sent = b"".join(raw.iter_raw())
                assert raw.headers["content-encoding"] == "gzip"
            assert gzip.decompress(sent) == plain.content
        png = client.get(raster, headers={"Accept-Encoding": "gzip"})
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert "content-encoding" not in png.headers  # a PNG is compressed already


def test_a_new_scene_drops_the_raster_tiles_under_it(world: dict) -> None:
    _, raster = _paths()
    with httpx.Client(base_url=world["live"].url, timeout=60) as client:
        before = client.get(raster)
        assert client.get(raster).headers["x-tile-cache"] == "hit"
        newer = _scene(world["folder"] / "ts_2026.tif", 1000, "2026:06:01 03:00:00")
        ingest_raster(world["url"], RasterSource(
            paths=(newer,), collection_id="ts_scenes",
            datetime=dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
        ), world["settings"], actor="pytest")  # fmt: skip
        deadline = time.monotonic() + 10
        while (after := client.get(raster)).headers["etag"] == before.headers["etag"]:
            assert time.monotonic() < deadline, "the cached tile outlived the new scene"
            time.sleep(0.05)
        assert after.headers["x-tile-cache"] == "miss"
        assert after.content != before.content  # the newer scene is on top
