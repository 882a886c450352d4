"""Imagery end to end over real HTTP: real scenes (:mod:`rastercases`: Landsat 7 and 8,
Sentinel-2, an aerial photo, the demo city's two 4-band scenes) ingested once per module,
their COGs checked against the sources, tiles decoded and compared with rio-tiler and numpy
reading the sources, mosaics over time, and coverages against rasterio. The STAC API,
access and the command line are in ``test_stac.py``.

Tolerances: value tiles and coverages on the source grid must equal the source exactly
(the platform reads a COG holding the source's pixels, through the same warp); a map tile
of a byte RGB scene equals rio-tiler reading the display COG exactly, and the source
resampled bilinearly (as the display COG was made) within 2 levels, 99 % of pixels equal;
NDVI within 1e-4 of numpy in float64; a colormapped pixel within one colormap entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pyproj
import pystac
import pytest
import rasterio
import shapely
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from rastercases import (
    EPSG,
    NAMES,
    PNG_MAGIC,
    Case,
    Ingested,
    centre_of,
    client_for,
    decode_image,
    ingest_cases,
    reference_tile,
    scene_of,
    store_of,
    tile_at,
)
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import from_bounds
from rio_cogeo.cogeo import cog_validate
from rio_tiler.io import Reader
from support import LiveServer

from spatial.imagery import colormap
from spatial.settings import Settings
from tiles.tms import TILE_MATRIX_SETS


@pytest.fixture(scope="module")
def scenes(settings: Settings, database_url: str) -> dict[str, Ingested]:
    """Every case whose files are here, ingested (public) once for the module."""
    return ingest_cases(settings, database_url)


@pytest.fixture(scope="module")
def api(live_api: LiveServer, scenes: dict[str, Ingested]) -> Iterator[httpx.Client]:
    yield from client_for(live_api, scenes)


# -- 1. the COGs and the catalog ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_asset_is_a_valid_cog_holding_the_source(
    name: str, scenes: dict[str, Ingested], settings: Settings
) -> None:
    ingested = scene_of(scenes, name)
    case, root = ingested.case, store_of(settings)
    for item, row in ingested.rows.items():
        assets = row["assets"]
        for key, asset in assets.items():
            ok, errors, notes = cog_validate(str(root / asset["href"]), quiet=True)
            assert ok and not errors and not notes, (key, errors, notes)
        assert (
            assets["display"]["href"] == row["web_path"] and "visual" in assets["display"]["roles"]
        )
        with rasterio.open(root / row["web_path"]) as web:
            assert (
                web.crs.to_epsg() == 3857 and web.tags()["TILING_SCHEME_NAME"] == "WebMercatorQuad"
            )
            assert web.descriptions == tuple(b.name for b in case.bands)
        multi = len(case.files(item)) > 1
        assert row["data_path"].endswith(".vrt" if multi else ".tif")
        if not multi:
            assert assets["data"]["href"] == row["data_path"]
        for number, band in enumerate(case.bands, start=1):
            href = assets[band.name]["href"] if multi else row["data_path"]
            at = 1 if multi else band.index
            with rasterio.open(case.source(item, band)) as src, rasterio.open(root / href) as cog:
                assert cog.dtypes[at - 1] == src.dtypes[band.index - 1]
                assert cog.nodata == src.nodata
                assert cog.crs == src.crs and cog.transform == src.transform
                assert cog.res == pytest.approx((band.res, band.res), abs=0.001)
                assert cog.descriptions[at - 1] == band.name
                tags = cog.tags(at)
                assert float(tags["CENTRAL_WAVELENGTH_UM"]) == band.wavelength
                assert tags["common_name"] == band.common
                np.testing.assert_array_equal(cog.read(at), src.read(band.index))
            with rasterio.open(root / row["data_path"]) as data:
                assert data.descriptions[number - 1] == band.name
        if multi:  # the stacking VRT is on the finest grid (20 m for Sentinel-2's 60 m B01)
            with rasterio.open(root / row["data_path"]) as vrt:
                assert vrt.count == len(case.bands)
                assert vrt.res == (min(b.res for b in case.bands),) * 2


@pytest.mark.parametrize("name", NAMES)
def test_the_stac_item_describes_the_scene(
    name: str, scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    ingested = scene_of(scenes, name)
    case = ingested.case
    for item_id, row in ingested.rows.items():
        doc = api.get(f"/stac/collections/{case.collection}/items/{item_id}")
        assert doc.status_code == 200 and doc.headers["content-type"] == "application/geo+json"
        assert doc.json()["properties"]["datetime"] == case.times[item_id]
        item = pystac.Item.from_dict(doc.json())
        assert item.id == item_id and item.collection_id == case.collection
        assert item.datetime == dt.datetime.fromisoformat(case.times[item_id])
        assert row["datetime"] == item.datetime
        bands = EOExtension.ext(item).bands or []
        assert [(b.name, b.common_name, b.center_wavelength) for b in bands] == [
            (b.name, b.common, b.wavelength) for b in case.bands
        ]
        assert ProjectionExtension.ext(item).code == case.proj
        assert item.properties["gsd"] == pytest.approx(case.gsd, abs=0.001)
        assert item.properties.get("sensor") == case.stac_sensor
        for band, entry in zip(case.bands, item.properties["raster:bands"], strict=True):
            with rasterio.open(case.source(item_id, band)) as src:
                assert entry["data_type"] == src.dtypes[0] and entry["nodata"] == src.nodata
            assert entry["spatial_resolution"] == pytest.approx(band.res, abs=0.001)
        assert shapely.geometry.shape(item.geometry).equals_exact(row["geom"], 1e-9)
        self_link = item.get_single_link("self")
        assert self_link is not None
        assert self_link.href.endswith(f"/stac/collections/{case.collection}/items/{item_id}")
        for key, asset in item.assets.items():
            assert asset.href == f"{self_link.href}/assets/{key}"
    collection = pystac.Collection.from_dict(api.get(f"/stac/collections/{case.collection}").json())
    start, end = collection.extent.temporal.intervals[0]
    times = [dt.datetime.fromisoformat(t) for t in case.times.values()]
    assert (start, end) == (min(times), max(times))
    assert [b["name"] for b in collection.summaries.to_dict()["eo:bands"]] == [
        b.name for b in case.bands
    ]


@pytest.mark.parametrize("name", NAMES)
def test_the_footprint_holds_the_source_bounds(
    name: str, scenes: dict[str, Ingested], database_url: str, api: httpx.Client
) -> None:
    """The item's footprint contains each file's outline in lon/lat (edges densified, a
    tolerance of 1e-6 degree, about 0.1 m); its envelope is the files' transformed bounds;
    the collection's catalog bbox and its STAC extent cover them."""
    ingested = scene_of(scenes, name)
    case = ingested.case
    boxes = []
    for item_id, row in ingested.rows.items():
        own = []
        for path in case.files(item_id):
            with rasterio.open(path) as src:
                outline = shapely.segmentize(shapely.box(*src.bounds), max(src.res) * 10)
                to_lonlat = pyproj.Transformer.from_crs(src.crs, "OGC:CRS84", always_xy=True)
                ring = shapely.transform(
                    outline,
                    lambda xy, t=to_lonlat: np.column_stack(t.transform(xy[:, 0], xy[:, 1])),
                )
                assert row["geom"].buffer(1e-6).contains(ring), path.name
                own.append(transform_bounds(src.crs, "OGC:CRS84", *src.bounds, densify_pts=21))
        union = (
            min(b[0] for b in own),
            min(b[1] for b in own),
            max(b[2] for b in own),
            max(b[3] for b in own),
        )
        assert row["geom"].bounds == pytest.approx(union, abs=1e-6)
        boxes += own
    with psycopg.connect(database_url) as conn:
        catalog = conn.execute(
            "SELECT ST_XMin(footprint), ST_YMin(footprint), ST_XMax(footprint), "
            "ST_YMax(footprint), is_public, kind FROM platform.collections WHERE id = %s",
            (case.collection,),
        ).fetchone()
    assert catalog is not None
    stac_box = api.get(f"/stac/collections/{case.collection}").json()["extent"]["spatial"]["bbox"][
        0
    ]
    assert catalog[4:] == (True, "raster")
    for w, s, e, n in (catalog[:4], stac_box):
        for box in boxes:
            assert w <= box[0] + 1e-9 and s <= box[1] + 1e-9
            assert e >= box[2] - 1e-9 and n >= box[3] - 1e-9


# -- 2, 3. tiles against rio-tiler and numpy ---------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_value_tile_equals_rio_tiler_reading_the_source(
    name: str, scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    """Every band, at a zoom finer than the data: equal to the source, NaN where the
    source has no data (outside the aerial photo, the tile at its centre being larger)."""
    case = scene_of(scenes, name).case
    item = case.newest  # the mosaic's top scene
    z, row, col = tile_at("WebMercatorQuad", *centre_of(case.files(item)[0]), case.zoom)
    bands = ",".join(b.name for b in case.bands)
    response = api.get(
        f"/collections/{case.collection}/coverage/tiles/WebMercatorQuad/{z}/{row}/{col}",
        params={"bands": bands},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/tiff; application=geotiff"
    values, profile = decode_image(response.content)
    assert profile["dtype"] == "float32" and np.isnan(profile["nodata"])
    assert profile["crs"].to_epsg() == 3857 and values.shape == (len(case.bands), 256, 256)
    bounds = TILE_MATRIX_SETS["WebMercatorQuad"].xy_bounds(col, row, z)
    assert tuple(profile["bounds"]) == pytest.approx(tuple(bounds))
    for number, band in enumerate(case.bands):
        expected = reference_tile(case.source(item, band), z, row, col, (band.index,))[0]
        mask = np.ma.getmaskarray(expected)
        assert mask.mean() < 0.5, band.name
        np.testing.assert_array_equal(np.isnan(values[number]), mask, band.name)
        np.testing.assert_array_equal(
            values[number][~mask], expected.data[~mask].astype("float32"), band.name
        )


def test_a_zoomed_out_value_tile_reads_the_native_cogs_overviews(
    scenes: dict[str, Ingested], api: httpx.Client, settings: Settings
) -> None:
    """At zoom 12 (38 m) the demo scene's value tile straddles its edge: it is what
    rio-tiler reads from the native COG (its averaged overview), NaN outside."""
    ingested = scene_of(scenes, "demo")
    case, item = ingested.case, ingested.case.newest
    z, row, col = tile_at("WebMercatorQuad", *centre_of(case.scenes[item]), 12)
    response = api.get(
        f"/collections/{case.collection}/items/{item}/coverage/tiles/"
        f"WebMercatorQuad/{z}/{row}/{col}",
        params={"bands": "red,nir"},
    )
    values, _ = decode_image(response.content)
    native = store_of(settings) / ingested.rows[item]["data_path"]
    expected = reference_tile(native, z, row, col, (3, 4))
    mask = np.ma.getmaskarray(expected)
    assert 0 < mask.sum() < mask.size  # the tile straddles the edge
    np.testing.assert_array_equal(np.isnan(values), mask)
    np.testing.assert_array_equal(values[~mask], expected.data[~mask].astype("float32"))


def _aerial_tile(case: Case) -> tuple[int, int, int]:
    return tile_at("WebMercatorQuad", *centre_of(case.files(case.newest)[0]), case.zoom)


def test_a_byte_rgb_map_tile_equals_rio_tiler(
    scenes: dict[str, Ingested], api: httpx.Client, settings: Settings
) -> None:
    """``rescale=0,255`` (the identity on bytes): exactly the display COG as rio-tiler
    reads it; against the source resampled bilinearly, >= 99 % of the values equal and
    none more than 2 apart."""
    ingested = scene_of(scenes, "aerial")
    case, item = ingested.case, ingested.case.newest
    z, row, col = _aerial_tile(case)
    response = api.get(
        f"/collections/{case.collection}/map/tiles/WebMercatorQuad/{z}/{row}/{col}",
        params={"rescale": "0,255"},
    )
    assert response.status_code == 200 and response.content.startswith(PNG_MAGIC)
    pixels, profile = decode_image(response.content)
    assert pixels.shape == (4, 256, 256) and profile["dtype"] == "uint8"
    display = reference_tile(
        store_of(settings) / ingested.rows[item]["web_path"], z, row, col, (1, 2, 3)
    )
    opaque = pixels[3] == 255
    np.testing.assert_array_equal(opaque, ~np.ma.getmaskarray(display).any(axis=0))
    assert set(np.unique(pixels[3])) <= {0, 255}
    np.testing.assert_array_equal(pixels[:3, opaque], display.data[:, opaque])
    source = reference_tile(
        case.scenes[item],
        z,
        row,
        col,
        (1, 2, 3),
        resampling_method="bilinear",
        reproject_method="bilinear",
    )
    # The tile at the photo's centre is taller than the photo: only where the source has
    # data (the padding's transparency is test_a_map_tile_is_transparent_outside_the_scene's).
    both = opaque & ~np.ma.getmaskarray(source).any(axis=0)
    assert both.mean() > 0.5
    diff = np.abs(pixels[:3, both].astype(int) - source.data[:, both].astype(int))
    assert (diff == 0).mean() >= 0.99 and diff.max() <= 2


def test_a_byte_rgb_map_tile_shows_the_bytes_as_they_are(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    case = scene_of(scenes, "aerial").case
    z, row, col = _aerial_tile(case)
    path = f"/collections/{case.collection}/map/tiles/WebMercatorQuad/{z}/{row}/{col}"
    plain, _ = decode_image(api.get(path).content)
    identity, _ = decode_image(api.get(path, params={"rescale": "0,255"}).content)
    np.testing.assert_array_equal(plain, identity)


def _ndvi(red: Any, nir: Any) -> np.ma.MaskedArray:
    red, nir = red.astype("float64"), nir.astype("float64")
    with np.errstate(all="ignore"):
        return np.ma.masked_invalid((nir - red) / (nir + red))


def test_an_ndvi_value_tile_equals_numpy(scenes: dict[str, Ingested], api: httpx.Client) -> None:
    case = scene_of(scenes, "demo").case
    item = case.newest
    z, row, col = tile_at("WebMercatorQuad", *centre_of(case.scenes[item]), 14)
    response = api.get(
        f"/collections/{case.collection}/coverage/tiles/WebMercatorQuad/{z}/{row}/{col}",
        params={"expression": "(nir-red)/(nir+red)"},
    )
    assert response.status_code == 200, response.text
    values, _ = decode_image(response.content)
    bands = reference_tile(case.scenes[item], z, row, col, (3, 4))
    expected = _ndvi(bands[0], bands[1])
    valid = ~np.isnan(values[0]) & ~np.ma.getmaskarray(expected)
    assert valid.mean() > 0.99
    np.testing.assert_array_equal(np.isnan(values[0]), np.ma.getmaskarray(expected))
    assert np.abs(values[0][valid] - expected.data[valid]).max() < 1e-4
    assert expected.min() < 0 < expected.max()  # water, built-up land and vegetation


def test_an_ndvi_map_tile_is_the_colormap_of_numpy_ndvi(
    scenes: dict[str, Ingested], api: httpx.Client, settings: Settings
) -> None:
    """Map tiles read the display COG: the expected colours are the colormap of NDVI
    computed by numpy on its bands, scaled -1..1 to 0..255 (within one entry)."""
    ingested = scene_of(scenes, "demo")
    case, item = ingested.case, ingested.case.newest
    z, row, col = tile_at("WebMercatorQuad", *centre_of(case.scenes[item]), 14)
    path = f"/collections/{case.collection}/map/tiles/WebMercatorQuad/{z}/{row}/{col}"
    response = api.get(path, params={"expression": "ndvi", "rescale": "-1,1", "colormap": "rdylgn"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    data = response.content
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (256, 256)
    assert data[24:26] == b"\x08\x06"  # 8 bits, RGBA
    pixels, _ = decode_image(data)
    rgba = np.moveaxis(pixels, 0, -1)
    bands = reference_tile(
        store_of(settings) / ingested.rows[item]["web_path"], z, row, col, (3, 4)
    )
    ndvi = _ndvi(bands[0], bands[1])
    index = np.clip(np.round((ndvi.filled(0) + 1) * 127.5), 0, 255).astype(int)
    lut = colormap("rdylgn").astype(int)
    near = np.stack([(rgba == lut[np.clip(index + d, 0, 255)]).all(axis=-1) for d in (-1, 0, 1)])
    valid = ~np.ma.getmaskarray(ndvi)
    assert valid.all() and near.any(axis=0)[valid].all()
    assert (near[1][valid]).mean() > 0.99
    assert api.get(path, params={"expression": "ndvi", "colormap": "rdylgn"}).content == data


# -- 4. formats, tile matrix sets, empty and edge tiles, bad parameters ------------------------


def test_map_tiles_in_every_format_and_tile_matrix_set(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    """PNG, WebP and JPEG; in WorldCRS84Quad and CGCS2000Quad a map tile over the city is
    opaque and a value tile equals rio-tiler reading the source in that set."""
    case = scene_of(scenes, "demo").case
    lon, lat = centre_of(case.scenes[case.newest])
    z, row, col = tile_at("WebMercatorQuad", lon, lat, 14)
    path = f"/collections/{case.collection}/map/tiles/WebMercatorQuad/{z}/{row}/{col}"
    # An opaque WebP may come without its alpha channel (the edge test checks one with it).
    for fmt, media, magic, counts in (
        ("png", "image/png", PNG_MAGIC, {4}),
        ("webp", "image/webp", b"RIFF", {3, 4}),
        ("jpeg", "image/jpeg", b"\xff\xd8\xff", {3}),
        ("jpg", "image/jpeg", b"\xff\xd8\xff", {3}),
    ):
        response = api.get(path, params={"f": fmt, "bands": "nir,red,green"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media and response.content.startswith(magic)
        if fmt == "webp":
            assert response.content[8:12] == b"WEBP"
        pixels, _ = decode_image(response.content)
        assert pixels.shape[1:] == (256, 256) and pixels[:3].std() > 5  # an image, not flat
        assert pixels.shape[0] in counts
    for tms_id, zoom in (("WorldCRS84Quad", 13), ("CGCS2000Quad", 13)):
        z, row, col = tile_at(tms_id, lon, lat, zoom)
        response = api.get(f"/collections/{case.collection}/map/tiles/{tms_id}/{z}/{row}/{col}")
        assert response.status_code == 200, (tms_id, response.text)
        pixels, _ = decode_image(response.content)
        assert (pixels[3] == 255).all() and pixels[:3].std() > 5, tms_id
        value = api.get(
            f"/collections/{case.collection}/coverage/tiles/{tms_id}/{z}/{row}/{col}",
            params={"bands": "red,nir"},
        )
        values, profile = decode_image(value.content)
        assert profile["crs"].to_epsg() == {"WorldCRS84Quad": 4326, "CGCS2000Quad": 4490}[tms_id]
        with Reader(str(case.scenes[case.newest]), tms=TILE_MATRIX_SETS[tms_id]) as reader:
            expected = reader.tile(col, row, z, indexes=(3, 4)).array
        assert not np.ma.getmaskarray(expected).any()
        np.testing.assert_array_equal(values, expected.data.astype("float32"))


def test_a_tile_outside_every_scene_is_204(scenes: dict[str, Ingested], api: httpx.Client) -> None:
    case = scene_of(scenes, "demo").case
    for kind in ("map", "coverage"):
        empty = api.get(f"/collections/{case.collection}/{kind}/tiles/WebMercatorQuad/14/0/0")
        assert empty.status_code == 204 and not empty.content


@pytest.mark.parametrize(
    "name",
    [
        "demo",
        "landsat8",
    ],
)
def test_a_map_tile_is_transparent_outside_the_scene(
    name: str, scenes: dict[str, Ingested], api: httpx.Client, settings: Settings
) -> None:
    """A tile across the scene's west edge, at the display COG's own zoom: transparent
    more than two display pixels outside the edge, opaque more than two inside (the demo
    scenes declare nodata 0; the Landsat 8 bands declare none)."""
    ingested = scene_of(scenes, name)
    case, item = ingested.case, ingested.case.newest
    with rasterio.open(store_of(settings) / ingested.rows[item]["web_path"]) as web:
        z = int(web.tags()["TILING_SCHEME_ZOOM_LEVEL"])
        margin = 2 * web.res[0]
    with rasterio.open(case.files(item)[0]) as src:
        west, south, _east, north = src.bounds
        to_lonlat = pyproj.Transformer.from_crs(src.crs, "OGC:CRS84", always_xy=True)
        lon, lat = to_lonlat.transform(west, (south + north) / 2)
        crs = src.crs
    z, row, col = tile_at("WebMercatorQuad", lon, lat, z)
    response = api.get(f"/collections/{case.collection}/map/tiles/WebMercatorQuad/{z}/{row}/{col}")
    assert response.status_code == 200, response.text
    pixels, _ = decode_image(response.content)
    b = TILE_MATRIX_SETS["WebMercatorQuad"].xy_bounds(col, row, z)
    size = (b.right - b.left) / 256
    xs, ys = np.meshgrid(
        b.left + (np.arange(256) + 0.5) * size, b.top - (np.arange(256) + 0.5) * size
    )
    x, _y = pyproj.Transformer.from_crs(3857, crs, always_xy=True).transform(xs, ys)
    outside, inside = x < west - margin, x > west + margin
    assert outside.sum() > 1000 and inside.sum() > 1000
    alpha = pixels[3]
    assert set(np.unique(alpha)) <= {0, 255}
    assert (alpha[inside] == 255).all()
    assert (alpha[outside] == 0).all(), f"{(alpha[outside] == 255).mean():.0%} opaque outside"
    webp = api.get(
        f"/collections/{case.collection}/map/tiles/WebMercatorQuad/{z}/{row}/{col}",
        params={"f": "webp"},
    )
    pixels, _ = decode_image(webp.content)
    assert pixels.shape == (4, 256, 256)
    assert (pixels[3][inside] == 255).all() and (pixels[3][outside] == 0).all()


BAD = [
    ({"expression": "(swir-red)/(swir+red)"}, "no band named 'swir'"),
    ({"expression": "__import__('os')"}, "is not allowed"),
    ({"expression": "red.real"}, "is not allowed"),
    ({"rescale": "1"}, "rescale '1'"),
    ({"rescale": "1,0"}, "min must be below max"),
    ({"colormap": "nosuch"}, "colormap 'nosuch' is unknown"),
    ({"f": "gif"}, "f='gif'"),
    ({"bands": "red", "expression": "ndvi"}, "not both"),
    ({"bands": "red,swir"}, "no band named swir"),
    ({"bands": "red,nir"}, "1 band"),
    ({"shade": "1"}, "unknown query parameter 'shade'"),
]


@pytest.mark.parametrize(
    ("params", "message"), BAD, ids=[next(iter(p)) + str(i) for i, (p, _m) in enumerate(BAD)]
)
def test_bad_map_tile_parameters_are_400(
    params: dict[str, str], message: str, scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    case = scene_of(scenes, "demo").case
    z, row, col = tile_at("WebMercatorQuad", *centre_of(case.scenes[case.newest]), 14)
    response = api.get(
        f"/collections/{case.collection}/map/tiles/WebMercatorQuad/{z}/{row}/{col}", params=params
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["description"]


def test_unknown_tile_matrix_set_zoom_and_collection_are_404(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    case = scene_of(scenes, "demo").case
    for path in (
        f"/collections/{case.collection}/map/tiles/NoSuchQuad/1/0/0",
        f"/collections/{case.collection}/coverage/tiles/NoSuchQuad/1/0/0",
        f"/collections/{case.collection}/map/tiles/WebMercatorQuad/23/0/0",
        "/collections/rs_nosuch/map/tiles/WebMercatorQuad/1/0/0",
        f"/collections/{case.collection}/items/nosuch/map/tiles/WebMercatorQuad/14/0/0",
    ):
        response = api.get(path)
        assert response.status_code == 404, (path, response.text)
    assert (
        "NoSuchQuad"
        in api.get(f"/collections/{case.collection}/map/tiles/NoSuchQuad/1/0/0").json()[
            "description"
        ]
    )


# -- 5. the mosaic over time -----------------------------------------------------------------


def test_the_mosaic_shows_the_scene_of_the_datetime_asked(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    case = scene_of(scenes, "demo").case
    z, row, col = tile_at("WebMercatorQuad", *centre_of(case.scenes["scene_2026"]), 14)
    tail = f"coverage/tiles/WebMercatorQuad/{z}/{row}/{col}"

    def values(path: str, **params: str) -> np.ndarray:
        response = api.get(path, params={"bands": "red,nir", **params})
        assert response.status_code == 200, response.text
        return decode_image(response.content)[0]

    own = {i: values(f"/collections/{case.collection}/items/{i}/{tail}") for i in case.scenes}
    assert not np.array_equal(own["scene_2025"], own["scene_2026"])
    mosaic = f"/collections/{case.collection}/{tail}"
    np.testing.assert_array_equal(values(mosaic), own["scene_2026"])
    np.testing.assert_array_equal(values(mosaic, datetime="2025-12-31"), own["scene_2025"])
    np.testing.assert_array_equal(
        values(mosaic, datetime="2026-10-20T03:00:00Z"), own["scene_2026"]
    )
    np.testing.assert_array_equal(
        values(mosaic, datetime="2025-01-01/2025-12-31"), own["scene_2025"]
    )
    before = api.get(mosaic, params={"bands": "red,nir", "datetime": "2025-10-14"})
    assert before.status_code == 204


# -- 6. coverages ----------------------------------------------------------------------------


def test_a_coverage_on_the_source_grid_equals_rasterio(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    case = scene_of(scenes, "demo").case
    source = case.scenes[case.newest]
    box = (600_000, 2_532_000, 601_000, 2_533_000)  # on the 10 m grid of EPSG:4546
    response = api.get(
        f"/collections/{case.collection}/coverage",
        params={
            "bbox": ",".join(map(str, box)),
            "bbox-crs": f"{EPSG}4546",
            "properties": "red,nir",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/tiff; application=geotiff"
    values, profile = decode_image(response.content)
    assert profile["crs"].to_epsg() == 4546 and profile["descriptions"] == ("red", "nir")
    assert profile["transform"] == rasterio.Affine(10, 0, 600_000, 0, -10, 2_533_000)
    with rasterio.open(source) as src:
        expected = src.read((3, 4), window=from_bounds(*box, src.transform))
    assert values.shape == expected.shape == (2, 100, 100)
    np.testing.assert_array_equal(values, expected.astype("float32"))


def test_a_coverage_by_a_lonlat_bbox_is_in_the_native_crs(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    """In the scene's CRS over the bbox's transformed bounds, near 10 m; the values are
    the source's resampled (nearest) onto that grid by rasterio, all equal."""
    case = scene_of(scenes, "demo").case
    box = (112.0, 22.9, 112.01, 22.91)
    response = api.get(
        f"/collections/{case.collection}/coverage",
        params={"bbox": ",".join(map(str, box)), "properties": "red,nir"},
    )
    assert response.status_code == 200, response.text
    values, profile = decode_image(response.content)
    assert profile["crs"].to_epsg() == 4546
    expected_bounds = transform_bounds("OGC:CRS84", "EPSG:4546", *box, densify_pts=21)
    assert tuple(profile["bounds"]) == pytest.approx(expected_bounds, abs=1e-6)
    assert abs(profile["transform"].a) == pytest.approx(10, abs=0.1)
    expected = np.full_like(values, np.nan)
    with rasterio.open(case.scenes[case.newest]) as src:
        for i, band in enumerate((3, 4)):
            reproject(
                rasterio.band(src, band),
                expected[i],
                dst_transform=profile["transform"],
                dst_crs=profile["crs"],
                resampling=Resampling.nearest,
            )
    np.testing.assert_array_equal(values, expected)
    every = api.get(
        f"/collections/{case.collection}/coverage", params={"bbox": ",".join(map(str, box))}
    )
    assert decode_image(every.content)[1]["descriptions"] == ("blue", "green", "red", "nir")


def test_a_huge_coverage_is_refused_with_its_size(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    case = scene_of(scenes, "demo").case
    response = api.get(
        f"/collections/{case.collection}/coverage",
        params={"bbox": "112.0,22.9,112.01,22.91", "width": "20000", "height": "20000"},
    )
    assert response.status_code == 400
    assert "20000 x 20000" in response.json()["description"]
    too_wide = api.get(f"/collections/{case.collection}/coverage", params={"width": "20001"})
    assert too_wide.status_code == 400 and "width" in too_wide.json()["description"]


@pytest.mark.parametrize(
    ("bbox", "crs"),
    [
        pytest.param(
            "150,10,151,11",
            None,
            id="lonlat",
        ),
        pytest.param(
            "590000,2520000,591000,2521000",
            f"{EPSG}4546",
            id="epsg4546",
        ),
    ],
)
def test_a_coverage_outside_the_data_is_400(
    bbox: str, crs: str | None, scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    case = scene_of(scenes, "demo").case
    params = {"bbox": bbox, **({"bbox-crs": crs} if crs else {})}
    response = api.get(f"/collections/{case.collection}/coverage", params=params)
    assert response.status_code == 400, (response.status_code, response.content[:200])
    assert "does not overlap" in response.json()["description"]


def test_a_tile_coarser_than_every_overview_reads_the_asked_bands(tmp_path: Path) -> None:
    """A value tile coarser than a small scene's coarsest overview (z10, 150 m pixels,
    of a 640 m scene at 10 m) holds the asked bands in their order (schemathesis found
    such tiles taking 50 s to read a band subset at full resolution; every band is read,
    then the subset)."""
    from rasterio.transform import from_origin  # noqa: PLC0415

    from spatial import mosaic  # noqa: PLC0415
    from tiles import raster  # noqa: PLC0415

    path = tmp_path / "small.tif"
    data = np.arange(4 * 64 * 64, dtype=np.uint16).reshape(4, 64, 64)
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 4, "dtype": "uint16",
               "crs": "EPSG:32649",
               "transform": from_origin(500_000, 2_540_000, 10, 10)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    bands = tuple({"name": f"b{i}"} for i in range(1, 5))
    item = mosaic.Scene("small", "small", dt.datetime(2026, 5, 1, tzinfo=dt.UTC), path, path, bands)
    tms = TILE_MATRIX_SETS["WebMercatorQuad"]
    tile = tms.tile(111.003, 22.965, 10)
    where = ("WebMercatorQuad", 10, tile.x, tile.y)
    asked = raster.value_tile([item], raster.Style(None, ("b3", "b1"), None, None), where)
    assert asked is not None
    values, _ = decode_image(asked)
    with Reader(str(path), tms=tms) as reader:
        expected = reader.tile(tile.x, tile.y, 10, indexes=(3, 1)).array
    both = np.isfinite(values) & ~np.ma.getmaskarray(expected)
    assert values.shape == (2, 256, 256) and both.any()
    # Band 3 then band 1 (they differ by 8192 in this ramp); the two reads' nearest
    # samples may take the neighbouring source pixel (1 apart along a row).
    np.testing.assert_allclose(values[both], expected.data[both].astype("float32"), atol=1)
