"""OGC API - Coverages over real HTTP: ``subset`` (and ``subset-crs``), the domain set and
the range type, on small scenes written here and ingested once for the module, read back
with rasterio and with GDAL's own OGCAPI driver.

- ``cov_city``: two dates of one 10 m grid in EPSG:4546 (a Gauss-Krüger zone, northing
  first), 300 x 200 cells, four uint16 bands with nodata 0 in one corner;
- ``cov_mixed``: an older 20 m scene in EPSG:32649 and a newer, smaller 10 m scene in
  EPSG:4546: the domain is the newer scene's grid stretched over both.

Subsets on the source grid must equal the source exactly; a subset and its equivalent
``bbox`` must be the same pixels (the same grid and values).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import rasterio
from rastercases import EPSG, decode_image, rows_of, store_of, wait_for
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from support import LiveServer

from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import Settings

BANDS = ("blue", "green", "red", "nir")
CITY = "cov_city"
MIXED = "cov_mixed"
ORIGIN = (600_000.0, 2_535_000.0)
"""The city scenes' top-left corner in EPSG:4546 (about 111.97°E, 22.9°N)."""
SIZE = (300, 200)
TIMES = {"city_2025": "2025-06-15T03:00:00+00:00", "city_2026": "2026-06-20T03:00:00+00:00"}
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
COMPOUND = (
    "http://www.opengis.net/def/crs-compound?1=http://www.opengis.net/def/crs/EPSG/0/4546"
    "&2=http://www.opengis.net/def/crs/OGC/0/AnsiDate"
)
INSIDE = (600_500, 2_533_500, 601_500, 2_534_500)
"""An E/N box on the city grid."""
LONLAT = (111.98, 22.896, 111.99, 22.906)
"""A lon/lat box inside the city scenes."""


def _write(
    path: Path, spec: tuple[int, tuple[float, float], float, tuple[int, int], int, str]
) -> None:
    crs, origin, res, (width, height), seed, when = spec
    data = np.random.default_rng(seed).integers(1, 10_000, (4, height, width), dtype=np.uint16)
    data[:, :10, :12] = 0  # nodata in the top-left corner
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 4,
               "dtype": "uint16", "crs": f"EPSG:{crs}", "nodata": 0,
               "transform": from_origin(*origin, res, res)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = BANDS
        dst.update_tags(ACQUISITION_DATETIME=when)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("coverages")
    made = {
        "city_2025": (4546, ORIGIN, 10.0, SIZE, 1, TIMES["city_2025"]),
        "city_2026": (4546, ORIGIN, 10.0, SIZE, 2, TIMES["city_2026"]),
        "mixed_old": (32649, (598_500.0, 2_535_500.0), 20.0, (150, 120), 3, "2024-03-01T02:00:00Z"),
        "mixed_new": (4546, ORIGIN, 10.0, (200, 100), 4, "2025-03-01T02:00:00Z"),
    }
    for name, spec in made.items():
        _write(folder / f"{name}.tif", spec)
    return {name: folder / f"{name}.tif" for name in made}


@pytest.fixture(scope="module")
def api(
    live_api: LiveServer, settings: Settings, database_url: str, sources: dict[str, Path]
) -> Iterator[httpx.Client]:
    for collection, names in ((CITY, ("city_2025", "city_2026")),
                              (MIXED, ("mixed_old", "mixed_new"))):  # fmt: skip
        source = RasterSource(paths=tuple(sources[n] for n in names), collection_id=collection,
                              title=f"{collection} (tests)", public=True)  # fmt: skip
        ingest_raster(database_url, source, settings, actor="pytest")
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        for collection in (CITY, MIXED):
            wait_for(client, collection)
        yield client


def _tiff(response: httpx.Response) -> tuple[np.ndarray, dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/tiff; application=geotiff"
    return decode_image(response.content)


def _source(path: Path, box: tuple[float, float, float, float]) -> np.ndarray:
    """The source's cells in an E/N box on its grid, as float32 with nodata NaN."""
    with rasterio.open(path) as src:
        data = src.read(window=from_bounds(*box, src.transform)).astype("float32")
    data[data == 0] = np.nan
    return data


def _same(a: httpx.Response, b: httpx.Response) -> np.ndarray:
    """The two GeoTIFFs hold the same cells on the same grid; returns them."""
    values_a, profile_a = _tiff(a)
    values_b, profile_b = _tiff(b)
    assert profile_a["crs"] == profile_b["crs"]
    assert profile_a["transform"] == profile_b["transform"]
    assert values_a.shape == values_b.shape
    np.testing.assert_array_equal(values_a, values_b)
    return values_a


def _box(box: tuple[float, ...]) -> str:
    return ",".join(map(str, box))


# -- subset --------------------------------------------------------------------------------


def test_a_lat_lon_subset_is_the_equivalent_bbox(api: httpx.Client) -> None:
    w, s, e, n = LONLAT
    url = f"/collections/{CITY}/coverage"
    bbox = api.get(url, params={"bbox": _box(LONLAT)})
    one = api.get(url, params={"subset": f"Lat({s}:{n}),Lon({w}:{e})"})
    values = _same(one, bbox)
    two = api.get(url, params=[("subset", f"Lon({w}:{e})"), ("subset", f"Lat({s}:{n})")])
    _same(two, bbox)
    crs84 = api.get(url, params={"subset": f"Lat({s}:{n}),Long({w}:{e})", "subset-crs": CRS84})
    _same(crs84, bbox)
    assert values.shape[0] == 4 and np.isfinite(values).mean() > 0.99
    assert decode_image(one.content)[1]["crs"].to_epsg() == 4546


def test_a_native_subset_is_the_equivalent_bbox_crs_and_the_source(
    api: httpx.Client, sources: dict[str, Path]
) -> None:
    x0, y0, x1, y1 = INSIDE
    url = f"/collections/{CITY}/coverage"
    bbox = api.get(url, params={"bbox": _box(INSIDE), "bbox-crs": f"{EPSG}4546"})
    subset = api.get(url, params={"subset": f"E({x0}:{x1}),N({y0}:{y1})"})
    values = _same(subset, bbox)
    assert decode_image(subset.content)[1]["transform"] == rasterio.Affine(10, 0, x0, 0, -10, y1)
    np.testing.assert_array_equal(values, _source(sources["city_2026"], INSIDE))
    with_crs = api.get(url, params={"subset": f"N({y0}:{y1}),E({x0}:{x1})",
                                    "subset-crs": "[EPSG:4546]"})  # fmt: skip
    _same(with_crs, bbox)


def test_subset_crs_names_the_crs_of_lat_lon(api: httpx.Client) -> None:
    """``subset-crs`` EPSG:4490 (CGCS2000, geographic) reads Lat/Lon there, as ``bbox-crs``
    does; a ``subset-crs`` none of whose axes is named is ignored (the standard's rule)."""
    w, s, e, n = LONLAT
    url = f"/collections/{CITY}/coverage"
    cgcs = api.get(url, params={"subset": f"Lat({s}:{n}),Lon({w}:{e})",
                                "subset-crs": f"{EPSG}4490"})  # fmt: skip
    _same(cgcs, api.get(url, params={"bbox": _box(LONLAT), "bbox-crs": "EPSG:4490"}))
    ignored = api.get(url, params={"subset": f"Lat({s}:{n}),Lon({w}:{e})",
                                   "subset-crs": f"{EPSG}4546"})  # fmt: skip
    _same(ignored, api.get(url, params={"bbox": _box(LONLAT)}))


def test_open_ends_slices_and_scale_size(api: httpx.Client, sources: dict[str, Path]) -> None:
    url = f"/collections/{CITY}/coverage"
    newest = sources["city_2026"]
    open_ends = api.get(url, params={"subset": "E(*:600100),N(2534000:*)"})
    values, profile = _tiff(open_ends)
    assert tuple(profile["bounds"]) == (600_000, 2_534_000, 600_100, 2_535_000)
    np.testing.assert_array_equal(values, _source(newest, (600_000, 2_534_000, 600_100, 2_535_000)))
    row = api.get(url, params={"subset": "E(600200:600300),N(2534005)"})
    values, profile = _tiff(row)
    assert values.shape == (4, 1, 10)
    assert tuple(profile["bounds"]) == (600_200, 2_534_000, 600_300, 2_534_010)
    np.testing.assert_array_equal(values, _source(newest, (600_200, 2_534_000, 600_300, 2_534_010)))
    box = (600_000, 2_534_360, 600_640, 2_535_000)
    sized = api.get(url, params={"subset": "E(600000:600640),N(2534360:2535000)",
                                 "scaleSize": "E(64),N(64)", "properties": "nir,red"})  # fmt: skip
    values, profile = _tiff(sized)
    assert values.shape == (2, 64, 64) and profile["descriptions"] == ("nir", "red")
    np.testing.assert_array_equal(values, _source(newest, box)[[3, 2]])
    half = api.get(url, params={"subset": "E(600000:600640),N(2534360:2535000)",
                                "scale-size": "E(32),N(32)"})  # fmt: skip
    assert _tiff(half)[0].shape == (4, 32, 32)


def test_properties_name_bands_by_name_index_or_star(
    api: httpx.Client, sources: dict[str, Path]
) -> None:
    x0, y0, x1, y1 = INSIDE
    url = f"/collections/{CITY}/coverage"
    space = {"subset": f"E({x0}:{x1}),N({y0}:{y1})"}
    expected = _source(sources["city_2026"], INSIDE)
    by_index, profile = _tiff(api.get(url, params={**space, "properties": "3,2"}))
    assert profile["descriptions"] == ("nir", "red")
    np.testing.assert_array_equal(by_index, expected[[3, 2]])
    every, profile = _tiff(api.get(url, params={**space, "properties": "*"}))
    assert profile["descriptions"] == BANDS
    np.testing.assert_array_equal(every, expected)
    unknown = api.get(url, params={**space, "properties": "4"})
    assert unknown.status_code == 400 and "no band named 4" in unknown.json()["description"]


def test_time_subsets_pick_the_scenes(api: httpx.Client, sources: dict[str, Path]) -> None:
    x0, y0, x1, y1 = INSIDE
    url = f"/collections/{CITY}/coverage"
    space = f"E({x0}:{x1}),N({y0}:{y1})"
    old, new = (_source(sources[n], INSIDE) for n in ("city_2025", "city_2026"))
    cases = {
        'time("2025-01-01":"2025-12-31")': old,
        'time("2025-12-01")': old,  # the mosaic as seen then: the newest scene before it
        'time("2026-06-20T03:00:00Z")': new,
        'time("2025-01-01":*)': new,
        "time(*)": new,
        'time(*:"2025-06-15")': old,
    }
    for subset, expected in cases.items():
        values, _ = _tiff(api.get(url, params={"subset": f"{space},{subset}"}))
        np.testing.assert_array_equal(values, expected, err_msg=subset)
    item = api.get(f"/collections/{CITY}/items/city_2025/coverage", params={"subset": space})
    np.testing.assert_array_equal(_tiff(item)[0], old)
    before = api.get(url, params={"subset": f'{space},time("2024-01-01":"2024-12-31")'})
    assert before.status_code == 404 and "no scene" in before.json()["description"]


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"subset": "Height(1:2)"}, "not an axis"),
        ({"subset": "Lat(22.9:23.0),E(600000:601000)"}, "not an axis"),
        ({"subset": "X(600000:601000)"}, "not an axis"),
        ({"subset": "Lat(22.9"}, "is not axis(low:high)"),
        ({"subset": "Lat(22.9:23.0:23.1)"}, "low:high"),
        ({"subset": "Lat(abc:23)"}, "not a finite number"),
        ({"subset": "Lat()"}, "not a value"),
        ({"subset": "Lat(23.0:22.9)"}, "above the high value"),
        ({"subset": "E(601000:600000)"}, "above the high value"),
        ({"subset": "Lat(22.9:23),Lat(22.95:23)"}, "twice"),
        ({"subset": ["Lon(111.9:112)", "Long(111.9:112)"]}, "twice"),
        ({"subset": "Lat(22.9:23)", "bbox": "111.9,22.9,112,23"}, "not both"),
        ({"subset": 'time("2025-01-01")', "datetime": "2025-01-01"}, "not both"),
        ({"subset": 'time("yesterday")'}, "time"),
        ({"subset": 'time("2026-01-01":"2025-01-01")'}, "after the end"),
        ({"subset": "Lat(22.9:23)", "subset-crs": "EPSG:99999999"}, "not a CRS this server"),
        ({"subset": "Lat(22.9:23)", "subset-crs": "wgs84"}, "not a CRS URI"),
        ({"scale-size": "E(10)", "width": "10"}, "not both"),
        ({"scale-size": "Q(10)"}, "scale-size"),
        ({"scaleSize": "E(0),N(10)"}, "from 1 to 20000"),
    ],
)
def test_bad_subsets_are_400(api: httpx.Client, params: dict[str, Any], words: str) -> None:
    response = api.get(f"/collections/{CITY}/coverage", params=params)
    assert response.status_code == 400, (params, response.status_code, response.text[:300])
    assert words in response.json()["description"], response.json()["description"]


@pytest.mark.parametrize(
    "subset", ["Lat(10:11),Lon(150:151)", "E(700000:701000),N(2533000:2534000)", "Lon(170:-170)"]
)
def test_a_subset_outside_the_coverage_is_404(api: httpx.Client, subset: str) -> None:
    """The standard asks for 204 or 404 when a subset misses the domain; a ``Lon`` interval
    with low above high crosses the antimeridian (far from this city)."""
    response = api.get(f"/collections/{CITY}/coverage", params={"subset": subset})
    assert response.status_code == 404, response.text[:300]
    assert "outside the coverage" in response.json()["description"]


# -- the domain set and the range type -------------------------------------------------------


def _axis(doc: dict[str, Any], label: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in doc["generalGrid"]["axis"] if a["axisLabel"] == label)
    return found


def _cog(settings: Settings, database_url: str, collection: str, item: str) -> Path:
    return store_of(settings) / rows_of(database_url, collection)[item]["data_path"]


def test_the_domain_set_is_the_native_grid(
    api: httpx.Client, settings: Settings, database_url: str
) -> None:
    doc = api.get(f"/collections/{CITY}/coverage/domainset")
    assert doc.status_code == 200 and doc.headers["content-type"] == "application/json"
    body = doc.json()
    grid = body["generalGrid"]
    assert body["type"] == "DomainSetType" and grid["type"] == "GeneralGridCoverageType"
    assert grid["srsName"] == COMPOUND
    assert grid["axisLabels"] == ["N", "E", "time"]  # EPSG:4546's own order, then time
    with rasterio.open(_cog(settings, database_url, CITY, "city_2026")) as cog:
        t, (left, bottom, right, top) = cog.transform, cog.bounds
        width, height = cog.width, cog.height
    east, north = _axis(body, "E"), _axis(body, "N")
    assert (east["lowerBound"], east["upperBound"], east["resolution"]) == (left, right, t.a)
    assert (north["lowerBound"], north["upperBound"], north["resolution"]) == (bottom, top, t.e)
    assert east["uomLabel"] == north["uomLabel"] == "m"
    assert _axis(body, "time")["coordinate"] == ["2025-06-15T03:00:00Z", "2026-06-20T03:00:00Z"]
    limits = grid["gridLimits"]
    assert limits["axisLabels"] == ["i", "j", "k"]
    assert [a["upperBound"] for a in limits["axis"]] == [width - 1, height - 1, 1]
    whole = _tiff(api.get(f"/collections/{CITY}/coverage"))[1]  # no subset: the whole domain
    assert whole["transform"] == t and (whole["width"], whole["height"]) == (width, height)


def test_a_mixed_mosaic_is_on_the_newest_grid_over_every_scene(
    api: httpx.Client, settings: Settings, database_url: str
) -> None:
    body = api.get(f"/collections/{MIXED}/coverage/domainset").json()
    with rasterio.open(_cog(settings, database_url, MIXED, "mixed_old")) as old:
        old_box = transform_bounds(old.crs, "EPSG:4546", *old.bounds, densify_pts=21)
    with rasterio.open(_cog(settings, database_url, MIXED, "mixed_new")) as new:
        new_box, res = new.bounds, new.res[0]
    x0, y1 = ORIGIN
    west = x0 + math.floor((min(old_box[0], new_box[0]) - x0) / res) * res
    east = x0 + math.ceil((max(old_box[2], new_box[2]) - x0) / res) * res
    south = y1 - math.ceil((y1 - min(old_box[1], new_box[1])) / res) * res
    north = y1 - math.floor((y1 - max(old_box[3], new_box[3])) / res) * res
    e, n = _axis(body, "E"), _axis(body, "N")
    assert (e["lowerBound"], e["upperBound"], e["resolution"]) == (west, east, 10)
    assert (n["lowerBound"], n["upperBound"], n["resolution"]) == (south, north, -10)
    assert west < new_box[0] and north > new_box[3]  # the older scene widens it
    values, profile = _tiff(api.get(f"/collections/{MIXED}/coverage", params={"properties": "red"}))
    assert profile["crs"].to_epsg() == 4546 and profile["transform"].a == 10
    assert profile["bounds"] == (west, south, east, north)
    above = round((north - ORIGIN[1]) / 10)  # rows above the newer scene: the older one's
    assert above > 50 and np.isfinite(values[0, :above]).mean() > 0.5


def test_the_range_type_lists_the_bands(
    api: httpx.Client, settings: Settings, database_url: str
) -> None:
    doc = api.get(f"/collections/{CITY}/coverage/rangetype")
    assert doc.status_code == 200
    body = doc.json()
    assert body["type"] == "DataRecordType"
    with rasterio.open(_cog(settings, database_url, CITY, "city_2026")) as cog:
        dtypes, nodata = cog.dtypes, cog.nodata
    assert [f["name"] for f in body["field"]] == list(BANDS)
    for field, dtype in zip(body["field"], dtypes, strict=True):
        assert dtype == "uint16"
        assert field["type"] == "QuantityType"
        assert field["definition"] == "http://www.opengis.net/def/dataType/OGC/0/unsignedShort"
        assert field["nilValues"] == [
            {"reason": "http://www.opengis.net/def/nil/OGC/0/missing", "value": nodata}
        ]


def test_the_collection_links_its_domain_set_and_range_type(api: httpx.Client) -> None:
    links = api.get(f"/collections/{CITY}").json()["links"]
    for rel, kind in (
        ("coverage-domainset", "DomainSetType"),
        ("coverage-rangetype", "DataRecordType"),
    ):
        found = [link for link in links if link["rel"] == REL + rel]
        assert len(found) == 1 and found[0]["type"] == "application/json", links
        assert httpx.get(found[0]["href"], timeout=30).json()["type"] == kind
    bad = api.get(f"/collections/{CITY}/coverage/domainset", params={"f": "xml"})
    assert bad.status_code == 400
    assert api.get("/collections/nothing_here/coverage/rangetype").status_code == 404


def test_the_openapi_document_declares_the_subset_parameters(api: httpx.Client) -> None:
    paths = api.get("/api").json()["paths"]
    names = {p["name"] for p in paths["/collections/{collection_id}/coverage"]["get"]["parameters"]}
    assert {"subset", "subset-crs", "bbox", "bbox-crs", "scale-size", "properties"} <= names
    assert "/collections/{collection_id}/coverage/domainset" in paths


# -- GDAL's OGCAPI driver ------------------------------------------------------------------


def _gdal(tool: str, *args: str, cache: Path) -> str:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} (gdal-bin) is not installed")
    env = {"PATH": "/usr/bin:/bin", "GDAL_DEFAULT_WMS_CACHE_PATH": str(cache),
           "GDAL_HTTP_TIMEOUT": "60"}  # fmt: skip
    done = subprocess.run([tool, *args], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_gdal_reads_the_native_grid_and_values(
    api: httpx.Client, live_api: LiveServer, sources: dict[str, Path], tmp_path: Path
) -> None:
    """Without a domain set GDAL saw a 10-million-pixel grid at 1e-8°; now it sees the
    native 10 m grid, and a window it reads equals the source. (GDAL labels a coverage's
    CRS WGS 84 whatever the domain set says: its driver does.)"""
    dataset = f"OGCAPI:{live_api.url}/collections/{CITY}"
    cache = tmp_path / "gdal-cache"
    info = json.loads(_gdal("gdalinfo", "-json", "-oo", "API=COVERAGE", dataset, cache=cache))
    assert info["size"] == list(SIZE)
    assert info["geoTransform"] == [ORIGIN[0], 10.0, 0.0, ORIGIN[1], 0.0, -10.0]
    assert len(info["bands"]) == 4
    out = tmp_path / "window.tif"
    _gdal("gdal_translate", "-q", "-oo", "API=COVERAGE", "-srcwin", "5", "7", "40", "25",
          dataset, str(out), cache=cache)  # fmt: skip
    with rasterio.open(out) as read, rasterio.open(sources["city_2026"]) as src:
        values = read.read().astype("float32")
        expected = src.read(window=Window(5, 7, 40, 25)).astype("float32")
    expected[expected == 0] = np.nan
    values[values == 0] = np.nan  # nodata, whichever way GDAL typed the band
    np.testing.assert_array_equal(values, expected)
    assert np.isnan(expected).any() and np.isfinite(expected).any()
