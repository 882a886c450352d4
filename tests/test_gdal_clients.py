"""GDAL as a client: Debian's binaries (3.6.2: ``gdalinfo``, ``gdal_translate``, ``ogrinfo`` in
/usr/bin) read the demo city through the OGCAPI driver, over real HTTP.

- the imagery as a **coverage** (``-oo API=COVERAGE``): the driver reads the domain set and
  range type, so it sees the native 10 m grid in EPSG:4546, and fetches
  ``subset=E(..),N(..)&scaleSize=E(..),N(..)``: a window equals the stored source COG;
- the imagery as **map tiles** (``-oo API=TILES``): the driver reads the tilesets, one
  tileset and its tile matrix set (TMS 1.0 keys beside TMS 2.0's: GDAL 3.6 reads only
  those), in WorldCRS84Quad, CGCS2000Quad and WebMercatorQuad; a window equals the PNG
  tiles it is made of;
- the parcels as **features** (``-oo API=ITEMS``): every one of them. GDAL 3.6.2 cannot read
  vector tiles through OGCAPI whatever the server says (its tiled-layer code is never
  reached), nor fall back to items by itself when a collection offers tiles.

``scale-factor``/``scale-axes`` (coverage scaling) are checked here too, over HTTP.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import rasterio
from PIL import Image
from rasterio.windows import from_bounds
from support import LiveServer

from spatial.settings import Settings
from tiles.tms import TILE_MATRIX_SETS

IMAGERY = "imagery"
NEWEST = "scene_2026"
WINDOW = (600_000.0, 2_533_400.0, 601_280.0, 2_534_300.0)
"""An E/N box (EPSG:4546) inside the demo imagery, on its 10 m grid."""


@pytest.fixture(scope="module")
def api(demo_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gdal-cache")


def _gdal(tool: str, *args: str, cache: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    path = Path("/usr/bin") / tool
    if shutil.which(str(path)) is None:
        pytest.skip(f"{path} (Debian's gdal-bin) is not installed")
    env = {"PATH": "/usr/bin:/bin", "GDAL_DEFAULT_WMS_CACHE_PATH": str(cache),
           "GDAL_HTTP_TIMEOUT": "60"}  # fmt: skip
    done = subprocess.run([path, *args], capture_output=True, text=True, env=env, check=False)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def _info(dataset: str, *options: str, cache: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        _gdal("gdalinfo", "-json", *options, dataset, cache=cache).stdout
    )
    return found


@pytest.fixture(scope="module")
def cog(settings: Settings, database_url: str) -> Path:
    """The newest demo scene's stored COG (the top of the mosaic; both scenes share a grid)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT data_path FROM rs.items WHERE collection_id = %s AND id = %s",
            (IMAGERY, NEWEST),
        ).fetchone()
    assert row is not None
    return settings.data_dir / "rasters" / row[0]


# -- the imagery as a coverage ---------------------------------------------------------------


def test_gdal_reads_the_imagery_coverage_at_its_native_grid_and_values(
    demo_api: LiveServer, cog: Path, cache: Path, tmp_path: Path
) -> None:
    dataset = f"OGCAPI:{demo_api.url}/collections/{IMAGERY}"
    info = _info(dataset, "-oo", "API=COVERAGE", cache=cache)
    with rasterio.open(cog) as src:
        transform, size, count = src.transform, [src.width, src.height], src.count
    assert info["size"] == size  # 10 m cells, not a 1e-8 degree grid
    assert info["geoTransform"] == [transform.c, 10.0, 0.0, transform.f, 0.0, -10.0]
    assert len(info["bands"]) == count == 4
    x0, y0, x1, y1 = WINDOW
    out = tmp_path / "window.tif"
    _gdal("gdal_translate", "-q", "-oo", "API=COVERAGE", "-projwin", str(x0), str(y1),
          str(x1), str(y0), dataset, str(out), cache=cache)  # fmt: skip
    with rasterio.open(out) as read, rasterio.open(cog) as src:
        values = read.read().astype("float32")
        expected = src.read(window=from_bounds(*WINDOW, src.transform)).astype("float32")
        assert (read.width, read.height) == (128, 90)
        assert read.transform.a == 10.0 and (read.transform.c, read.transform.f) == (x0, y1)
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert np.isfinite(expected).all() and expected.std() > 0
    # Half the cells across and down: GDAL reads an overview, asking scaleSize.
    small = tmp_path / "small.tif"
    _gdal("gdal_translate", "-q", "-oo", "API=COVERAGE", "-outsize", "50%", "50%",
          "-b", "3", dataset, str(small), cache=cache)  # fmt: skip
    with rasterio.open(small) as read, rasterio.open(cog) as src:
        assert (read.width, read.height) == (size[0] // 2, size[1] // 2)
        band, red = read.read(1), src.read(3)
        assert red.min() <= band.min() and band.max() <= red.max() and band.std() > 0


def test_the_coverage_scales_by_a_factor_or_per_axis(api: httpx.Client) -> None:
    """``scale-factor``/``scale-axes`` divide the native cells of the subset (an axis not
    named keeps its cells, as with ``scale-size``); with a size they are refused."""
    x0, y0, x1, y1 = WINDOW
    url = f"/collections/{IMAGERY}/coverage"
    space = {"subset": f"E({x0}:{x1}),N({y0}:{y1})"}  # 128 x 90 cells of 10 m
    cases = {
        (("scale-factor", "2"),): (64, 45, 20.0, 20.0),
        (("scaleFactor", "0.5"),): (256, 180, 5.0, 5.0),
        (("scale-axes", "E(4)"),): (32, 90, 40.0, 10.0),
        (("scaleAxes", "E(2),N(3)"),): (64, 30, 20.0, 30.0),
        (("scale-size", "E(16)"),): (16, 90, 80.0, 10.0),
    }
    for extra, (width, height, res_x, res_y) in cases.items():
        response = api.get(url, params={**space, **dict(extra)})
        assert response.status_code == 200, (extra, response.text)
        with rasterio.MemoryFile(response.content) as memory, memory.open() as read:
            assert (read.width, read.height) == (width, height), extra
            assert read.res == pytest.approx((res_x, res_y)), extra
            assert tuple(read.bounds) == pytest.approx(WINDOW), extra
    for bad, words in (
        ({"scale-factor": "0"}, "above 0"), ({"scale-factor": "x"}, "above 0"),
        ({"scale-factor": "2", "scale-size": "E(10)"}, "not both"),
        ({"scale-factor": "2", "scale-axes": "E(2)"}, "not both"),
        ({"scale-axes": "E(2),Lon(3)"}, "twice"), ({"scale-axes": "T(2)"}, "scale-axes"),
    ):  # fmt: skip
        response = api.get(url, params={**space, **bad})
        assert response.status_code == 400 and words in response.json()["description"], bad


# -- the imagery as map tiles ----------------------------------------------------------------


def _tiles_window(
    api: httpx.Client, tms_id: str, z: int, gt: list[float], size: tuple[int, int]
) -> np.ndarray:
    """The RGBA cells of a window (geotransform ``gt``, ``size``) of matrix ``z``, from the
    PNG tiles it covers, fetched and decoded here; and how many tiles that was."""
    matrix = TILE_MATRIX_SETS[tms_id].matrix(z)
    left, top = matrix.pointOfOrigin[::-1] if tms_id == "CGCS2000Quad" else matrix.pointOfOrigin
    first_x = round((gt[0] - left) / matrix.cellSize)
    first_y = round((top - gt[3]) / matrix.cellSize)
    cols = range(first_x // 256, (first_x + size[0] - 1) // 256 + 1)
    rows = range(first_y // 256, (first_y + size[1] - 1) // 256 + 1)
    mosaic = np.zeros((4, len(rows) * 256, len(cols) * 256), dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            tile = api.get(f"/collections/{IMAGERY}/map/tiles/{tms_id}/{z}/{row}/{col}")
            assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
            rgba = np.asarray(Image.open(io.BytesIO(tile.content)).convert("RGBA"))
            mosaic[:, i * 256 : (i + 1) * 256, j * 256 : (j + 1) * 256] = rgba.transpose(2, 0, 1)
    dx, dy = first_x - cols[0] * 256, first_y - rows[0] * 256
    return mosaic[:, dy : dy + size[1], dx : dx + size[0]]


@pytest.mark.parametrize("tms_id", ["WorldCRS84Quad", "CGCS2000Quad", "WebMercatorQuad"])
def test_gdal_reads_the_imagery_as_map_tiles(
    api: httpx.Client, demo_api: LiveServer, cache: Path, tmp_path: Path, tms_id: str
) -> None:
    """GDAL 3.6 said "Invalid tiling matrix set name" (a TMS 2.0 document only); now it opens
    each set at the deepest matrix the tileset lists (the one as fine as the 10 m imagery), and
    a window it reads is the tiles' own pixels. Its driver leaves a CRS84 bbox unprojected for
    a projected set, so WebMercatorQuad is opened with the extent in metres."""
    tileset = api.get(f"/collections/{IMAGERY}/map/tiles/{tms_id}").json()
    deepest = int(tileset["tileMatrixSetLimits"][-1]["tileMatrix"])
    matrix = TILE_MATRIX_SETS[tms_id].matrix(deepest)
    options = ["-oo", "API=TILES", "-oo", f"TILEMATRIXSET={tms_id}"]
    if tms_id == "WebMercatorQuad":
        tms = TILE_MATRIX_SETS[tms_id]
        (w, s), (e, n) = (tms.xy(*tileset["boundingBox"][k]) for k in ("lowerLeft", "upperRight"))
        for key, value in zip(("MINX", "MINY", "MAXX", "MAXY"), (w, s, e, n), strict=True):
            options += ["-oo", f"{key}={value}"]
    dataset = f"OGCAPI:{demo_api.url}/collections/{IMAGERY}"
    info = _info(dataset, *options, cache=cache)
    gt = info["geoTransform"]
    assert gt[1] == pytest.approx(matrix.cellSize) and gt[5] == pytest.approx(-matrix.cellSize)
    crs_name = {
        "WorldCRS84Quad": "WGS 84 (CRS84)",
        "CGCS2000Quad": "China Geodetic Coordinate System 2000",
        "WebMercatorQuad": "WGS 84 / Pseudo-Mercator",
    }[tms_id]
    assert f'"{crs_name}"' in info["coordinateSystem"]["wkt"]
    assert [b["colorInterpretation"] for b in info["bands"]] == ["Red", "Green", "Blue", "Alpha"]
    width, height = info["size"]
    assert 0.9 < width * matrix.cellSize / _span(tileset, tms_id) < 1.1
    out = tmp_path / f"{tms_id}.tif"
    window = (width // 3, height // 3, 300, 200)
    _gdal("gdal_translate", "-q", *options, "-srcwin", *map(str, window), dataset, str(out),
          cache=cache)  # fmt: skip
    with rasterio.open(out) as read:
        values = read.read()
        read_gt = list(read.transform.to_gdal())
    expected = _tiles_window(api, tms_id, deepest, read_gt, (300, 200))
    np.testing.assert_array_equal(values, expected)
    assert (values[3] == 255).all() and len(np.unique(values[0])) > 20


def _span(tileset: dict[str, Any], tms_id: str) -> float:
    """The tileset's bbox width in the set's CRS units."""
    (w, s), (e, n) = (tileset["boundingBox"][k] for k in ("lowerLeft", "upperRight"))
    if tms_id != "WebMercatorQuad":
        return float(e - w)
    tms = TILE_MATRIX_SETS[tms_id]
    return float(tms.xy(e, n)[0] - tms.xy(w, s)[0])


def test_the_map_tilesets_list_whole_matrices_from_the_data_down_to_its_resolution(
    api: httpx.Client,
) -> None:
    """What GDAL 3.6 needs of a map tileset: limits naming the matrices (none below the one
    where the imagery spans two cells, none finer than 10 m), each whole; and a TMS
    document with the TMS 1.0 keys beside the 2.0 ones, corners in the CRS's axis order."""
    for tms_id, (first, last) in {"WorldCRS84Quad": (5, 13), "CGCS2000Quad": (5, 13),
                                  "WebMercatorQuad": (5, 14)}.items():  # fmt: skip
        limits = api.get(f"/collections/{IMAGERY}/map/tiles/{tms_id}").json()["tileMatrixSetLimits"]
        assert [int(lim["tileMatrix"]) for lim in limits] == list(range(first, last + 1))
        for lim in limits:
            matrix = TILE_MATRIX_SETS[tms_id].matrix(int(lim["tileMatrix"]))
            assert (lim["minTileRow"], lim["maxTileRow"]) == (0, matrix.matrixHeight - 1)
            assert (lim["minTileCol"], lim["maxTileCol"]) == (0, matrix.matrixWidth - 1)
        doc = api.get(f"/tileMatrixSets/{tms_id}").json()
        assert doc["type"] == "TileMatrixSetType" and doc["identifier"] == doc["id"] == tms_id
        assert doc["supportedCRS"] == doc["crs"]
        for matrix in doc["tileMatrices"]:
            assert matrix["identifier"] == matrix["id"]
            assert matrix["topLeftCorner"] == matrix["pointOfOrigin"]
    cgcs = api.get("/tileMatrixSets/CGCS2000Quad").json()
    assert cgcs["tileMatrices"][0]["topLeftCorner"] == [90.0, -180.0]  # latitude first
    assert cgcs["orderedAxes"] == ["Lat", "Lon"] and "uri" not in cgcs  # not an OGC-registered set
    tilesets = api.get(f"/collections/{IMAGERY}/map/tiles").json()["tilesets"]
    uris = {t["tileMatrixSetURI"].rsplit("/", 1)[1]: t["tileMatrixSetURI"] for t in tilesets}
    assert uris["CGCS2000Quad"].endswith("/tileMatrixSets/CGCS2000Quad")
    assert uris["WebMercatorQuad"].startswith("http://www.opengis.net/def/tilematrixset/")


# -- the parcels -------------------------------------------------------------------------------


def test_gdal_reads_every_parcel_through_ogcapi_items(
    api: httpx.Client, demo_api: LiveServer, cache: Path
) -> None:
    """``-oo API=ITEMS`` reads the parcels as features (OGC API - Features underneath); with
    the default ``AUTO`` GDAL 3.6 takes the tiles link, whose vector layers it never builds,
    and gives up (3.7 and later read the vector tiles)."""
    matched = api.get("/collections/parcels/items", params={"limit": 1}).json()["numberMatched"]
    dataset = f"OGCAPI:{demo_api.url}/collections/parcels"
    done = _gdal("ogrinfo", "-ro", "-so", "-oo", "API=ITEMS", dataset, "parcels", cache=cache)
    count = int(done.stdout.split("Feature Count: ")[1].split()[0])
    assert count == matched > 1000
    assert "Multi Polygon" in done.stdout or "MultiPolygon" in done.stdout
    auto = _gdal("ogrinfo", "-ro", "-so", dataset, cache=cache, ok=False)
    assert auto.returncode != 0  # GDAL 3.6's limit, not the server's: documented


def test_the_parcels_vector_tileset_is_what_ogc_api_tiles_gives(
    api: httpx.Client, settings: Settings
) -> None:
    """The vector tileset GDAL 3.7+ reads: its tiling scheme, its MVT template, limits over the
    parcels' bbox; a listed tile holds parcels."""
    tileset = api.get("/collections/parcels/tiles/WebMercatorQuad").json()
    links = {link["rel"]: link for link in tileset["links"]}
    assert links["item"]["type"] == "application/vnd.mapbox-vector-tile"
    scheme = httpx.get(links["http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"]["href"])
    assert scheme.json()["identifier"] == "WebMercatorQuad"
    deepest = tileset["tileMatrixSetLimits"][14]
    assert deepest["tileMatrix"] == "14"
    row = (deepest["minTileRow"] + deepest["maxTileRow"]) // 2
    col = (deepest["minTileCol"] + deepest["maxTileCol"]) // 2
    tile = api.get(f"/collections/parcels/tiles/WebMercatorQuad/14/{row}/{col}")
    assert tile.status_code == 200 and len(tile.content) > 1000
    w, s, e, n = (*tileset["boundingBox"]["lowerLeft"], *tileset["boundingBox"]["upperRight"])
    nw = TILE_MATRIX_SETS["WebMercatorQuad"].tile(w, n, 14)
    se = TILE_MATRIX_SETS["WebMercatorQuad"].tile(e, s, 14)
    assert (deepest["minTileCol"], deepest["maxTileCol"]) == (nw.x, se.x)
    assert (deepest["minTileRow"], deepest["maxTileRow"]) == (nw.y, se.y)
    assert len(tileset["tileMatrixSetLimits"]) == settings.tiles.max_zoom + 1
