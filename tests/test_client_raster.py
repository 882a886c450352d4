"""``Client.raster`` (:mod:`spatial.client.raster`) against the demo city on a live server.

The arrays are checked against the scenes themselves: the generator's files
(``spatial.samples.build`` writes the same ``scene_2025.tif``/``scene_2026.tif`` the demo
loaded) read with rasterio over the same window, and, at a coarser resolution, the scene's
COG as the STAC API serves it, read by GDAL at the same size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import rasterio
import rasterio.warp
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.windows import Window
from support import LiveServer

from spatial import Client, samples
from spatial.client.raster import read_raster
from spatial.errors import InvalidInputError, NotFoundError, SpatialError

BOX = (111.99, 22.87, 112.01, 22.89)
"""Lon/lat, inside the demo city (about 2 x 2 km)."""
DEMO_EXTENT = (111.9497, 22.8582, 112.0503, 22.9417)
NATIVE = CRS.from_epsg(4546)
ORIGIN = (597270.0, 2538600.0)
"""The demo scenes' grid: top-left corner, 10 m pixels."""
BANDS = ["blue", "green", "red", "nir"]

Floats = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scenes as the generator writes them (the files the demo loaded)."""
    folder = tmp_path_factory.mktemp("client-raster")
    samples.build(folder)
    return folder


@pytest.fixture(scope="module")
def client(demo_api: LiveServer) -> Iterator[Client]:
    with Client(url=demo_api.url, progress=False) as c:
        yield c


def _window(array: xr.DataArray) -> Window:
    """The array's window on the scenes' grid (asserting it is aligned on whole pixels)."""
    t = Affine(*array.attrs["transform"])
    col, row = (t.c - ORIGIN[0]) / 10, (ORIGIN[1] - t.f) / 10
    assert (col, row) == (round(col), round(row)), "the array is not on the scene's grid"
    return Window(round(col), round(row), array.sizes["x"], array.sizes["y"])


def _pixels(path: Path, array: xr.DataArray, bands: tuple[int, ...] = (1, 2, 3, 4)) -> Floats:
    """The file's pixels under the array (float32, nodata NaN, NaN outside the scene)."""
    with rasterio.open(path) as src:
        data = src.read(list(bands), window=_window(array), boundless=True, fill_value=0)
    values = data.astype("float32")
    values[data == 0] = np.nan
    return values


def _ndvi(bands: Floats) -> Floats:
    red, nir = bands[2].astype("float64"), bands[3].astype("float64")
    return ((nir - red) / (nir + red)).astype("float32")


def test_a_box_is_the_scene_pixels(client: Client, scenes: Path) -> None:
    array = client.raster("imagery/scene_2025", bbox=BOX)
    assert array.dims == ("band", "y", "x")
    assert list(array["band"].values) == BANDS
    assert array.dtype == np.float32
    assert array.rio.crs == NATIVE
    assert CRS.from_wkt(array.attrs["crs"]) == NATIVE
    t = Affine(*array.attrs["transform"])
    assert (t.a, t.b, t.d, t.e) == (10.0, 0.0, 0.0, -10.0)
    assert array.rio.transform() == t
    # Pixel centres, and the box covered by less than a pixel more on each side.
    assert array["x"].values[0] == t.c + 5 and array["y"].values[0] == t.f - 5
    w, s, e, n = rasterio.warp.transform_bounds("OGC:CRS84", NATIVE, *BOX, densify_pts=21)
    left, bottom, right, top = array.rio.bounds()
    assert left <= w < left + 10 and right - 10 < e <= right
    assert bottom <= s < bottom + 10 and top - 10 < n <= top
    np.testing.assert_array_equal(array.values, _pixels(scenes / "scene_2025.tif", array))
    assert array.attrs["collection"] == "imagery"
    assert array.attrs["item"] == "scene_2025"
    assert array.attrs["datetime"] == "2025-10-15T03:00:00Z"
    source = f"{client.url}/collections/imagery/items/scene_2025/coverage?"
    assert array.attrs["source"].startswith(source)
    assert array.name == "scene_2025"


def test_a_box_in_the_scene_crs_is_exactly_that_window(client: Client, scenes: Path) -> None:
    box = (600000.0, 2530000.0, 600600.0, 2530300.0)
    array = client.raster("imagery/scene_2026", bbox=box, bbox_crs="EPSG:4546")
    assert array.rio.bounds() == box
    assert array.shape == (4, 30, 60)
    np.testing.assert_array_equal(array.values, _pixels(scenes / "scene_2026.tif", array))


def test_without_a_box_the_whole_scene(client: Client, scenes: Path) -> None:
    array = client.raster("imagery/scene_2026", bands="nir")
    assert array.shape == (1, 958, 1066)
    assert array.rio.bounds() == (597270.0, 2529020.0, 607930.0, 2538600.0)
    with rasterio.open(scenes / "scene_2026.tif") as src:
        np.testing.assert_array_equal(array.values[0], src.read(4).astype("float32"))


def test_bands_by_name_in_the_order_asked(client: Client, scenes: Path) -> None:
    array = client.raster("imagery/scene_2025", bbox=BOX, bands=["nir", "red"])
    assert list(array["band"].values) == ["nir", "red"]
    np.testing.assert_array_equal(
        array.values, _pixels(scenes / "scene_2025.tif", array, bands=(4, 3))
    )
    same = client.raster("imagery/scene_2025", bbox=BOX, bands="nir, red")
    xr.testing.assert_identical(array, same)


def test_ndvi_by_name_or_by_formula(client: Client, scenes: Path) -> None:
    ndvi = client.raster("imagery/scene_2026", bbox=BOX, expression="ndvi")
    assert ndvi.dims == ("y", "x")
    assert ndvi.name == "ndvi"
    bands = _pixels(scenes / "scene_2026.tif", ndvi)
    np.testing.assert_allclose(ndvi.values, _ndvi(bands), rtol=1e-6)
    assert -1 <= float(ndvi.min()) < 0.2 < float(ndvi.max()) <= 1  # water and vegetation
    formula = client.raster("imagery/scene_2026", bbox=BOX, expression="(nir-red)/(nir+red)")
    np.testing.assert_array_equal(formula.values, ndvi.values)
    assert formula.rio.crs == NATIVE and formula.attrs["transform"] == ndvi.attrs["transform"]
    two = client.raster("imagery/scene_2026", bbox=BOX, expression="nir/red; green-blue")
    assert two.dims == ("band", "y", "x") and two.sizes["band"] == 2
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(two.values[0], bands[3] / bands[2], rtol=1e-6)
    np.testing.assert_array_equal(two.values[1], bands[1] - bands[0])


def test_a_collection_is_the_mosaic_as_of_datetime(client: Client, scenes: Path) -> None:
    latest = client.raster("imagery", bbox=BOX, bands=["red", "nir"])
    assert latest.attrs["item"] == "scene_2026"
    assert latest.attrs["items"] == ("scene_2026", "scene_2025")
    assert latest.attrs["datetime"] == "2026-10-20T03:00:00Z"
    np.testing.assert_array_equal(
        latest.values, _pixels(scenes / "scene_2026.tif", latest, bands=(3, 4))
    )
    then = client.raster("imagery", bbox=BOX, bands=["red", "nir"], datetime="2025-12-31")
    assert then.attrs["items"] == ("scene_2025",)
    assert then.attrs["datetime"] == "2025-10-15T03:00:00Z"
    np.testing.assert_array_equal(
        then.values, _pixels(scenes / "scene_2025.tif", then, bands=(3, 4))
    )
    assert not np.array_equal(then.values, latest.values)
    for when in (dt.date(2025, 12, 31), ("2025-01-01", "2025-12-31"), "2025-01-01/2025-12-31"):
        again = client.raster("imagery", bbox=BOX, bands=["red", "nir"], datetime=when)
        np.testing.assert_array_equal(again.values, then.values)


def test_a_bare_item_id_is_found_by_stac_search(client: Client) -> None:
    by_id = client.raster("scene_2025", bbox=BOX, bands="red")
    assert by_id.attrs["collection"] == "imagery"
    assert by_id.attrs["item"] == "scene_2025"
    xr.testing.assert_equal(by_id, client.raster("imagery/scene_2025", bbox=BOX, bands="red"))


def test_lonlat_output_reprojects_the_scene(client: Client, scenes: Path) -> None:
    array = client.raster("imagery/scene_2025", bbox=BOX, bands="red", crs="EPSG:4326")
    assert array.rio.crs == CRS.from_epsg(4326)
    assert CRS.from_wkt(array.attrs["crs"]) == CRS.from_epsg(4326)
    xs, ys = array["x"].values, array["y"].values
    assert DEMO_EXTENT[0] < xs.min() < xs.max() < DEMO_EXTENT[2]
    assert DEMO_EXTENT[1] < ys.min() < ys.max() < DEMO_EXTENT[3]
    step_x, step_y = array.rio.resolution()
    # Cut to the box: no pixel centre more than a pixel outside it.
    assert BOX[0] - step_x < xs.min() and xs.max() < BOX[2] + step_x
    assert BOX[1] + step_y < ys.min() and ys.max() < BOX[3] - step_y
    # Nearest neighbour: each pixel is the scene's pixel under its centre.
    grid_x, grid_y = np.meshgrid(xs, ys)
    east, north = rasterio.warp.transform("EPSG:4326", NATIVE, grid_x.ravel(), grid_y.ravel())
    with rasterio.open(scenes / "scene_2025.tif") as src:
        rows, cols = rasterio.transform.rowcol(src.transform, east, north)
        red = src.read(3)[np.asarray(rows), np.asarray(cols)].reshape(grid_x.shape)
    values = array.values.squeeze()
    assert values.shape == red.shape
    assert np.mean(values == red) > 0.99  # GDAL's approximate transformer: edges may differ
    coarse = client.raster("imagery/scene_2025", bbox=BOX, bands="red", crs=4326, resolution=0.001)
    assert coarse.rio.resolution() == pytest.approx((0.001, -0.001))


def test_resolution_is_asked_of_the_server_on_the_same_grid(
    client: Client, demo_api: LiveServer
) -> None:
    array = client.raster("imagery/scene_2025", bbox=BOX, resolution=30)
    t = Affine(*array.attrs["transform"])
    assert (t.a, t.e) == (30.0, -30.0)
    assert (t.c - ORIGIN[0]) % 30 == 0 and (ORIGIN[1] - t.f) % 30 == 0
    # The values GDAL reads from the scene's COG (the STAC asset) at that size.
    url = f"{demo_api.url}/stac/collections/imagery/items/scene_2025/assets/data"
    with MemoryFile(httpx.get(url, timeout=60).content) as memory, memory.open() as src:
        col, row = (t.c - ORIGIN[0]) / 10, (ORIGIN[1] - t.f) / 10
        window = Window(col, row, array.sizes["x"] * 3, array.sizes["y"] * 3)
        expected = src.read(window=window, out_shape=array.shape).astype("float32")
    np.testing.assert_array_equal(array.values, expected)
    both = client.raster("imagery/scene_2025", bbox=BOX, bands="red", resolution=(20, 40))
    assert both.rio.resolution() == (20.0, -40.0)


def test_outside_the_scene_is_nan(client: Client, scenes: Path) -> None:
    array = client.raster("imagery/scene_2025", bbox=(111.94, 22.88, 111.96, 22.89), bands="nir")
    assert np.isnan(array.attrs["_FillValue"]) and np.isnan(array.rio.nodata)
    west = array.values[0, :, 0]
    assert np.isnan(west).all()
    assert not np.isnan(array.values[0, :, -1]).any()
    np.testing.assert_array_equal(
        array.values, _pixels(scenes / "scene_2025.tif", array, bands=(4,))
    )


def test_read_raster_takes_any_client(demo_api: LiveServer, scenes: Path) -> None:
    """``read_raster`` needs only ``url`` and a ``request`` raising the typed errors."""
    with Client(url=demo_api.url, progress=False) as c:
        array = read_raster(c, "imagery/scene_2025", bbox=BOX, bands=("red",))
    np.testing.assert_array_equal(
        array.values, _pixels(scenes / "scene_2025.tif", array, bands=(3,))
    )


class _NoGrid:
    """A client whose STAC items lack the projection fields (as another catalog might)."""

    def __init__(self, client: Client) -> None:
        self.client, self.url, self.token = client, client.url, client.token

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path_or_url, **kwargs)
        if not path_or_url.startswith("/stac/"):
            return response
        body = response.json()
        for item in body.get("features", [body]):
            item["properties"] = {
                k: v for k, v in item["properties"].items() if not k.startswith("proj:")
            }
        return httpx.Response(200, json=body, request=response.request)


def test_without_a_grid_the_client_resamples(client: Client, scenes: Path) -> None:
    bare = _NoGrid(client)
    native = read_raster(bare, "imagery/scene_2025", bbox=BOX, bands="red")
    # The server's grid: the box at about the native size (not whole pixels).
    assert native.rio.crs == NATIVE
    assert native.rio.resolution() == pytest.approx((10, -10), abs=0.05)
    coarse = read_raster(bare, "imagery/scene_2025", bbox=BOX, bands="red", resolution=20)
    assert coarse.rio.resolution() == (20.0, -20.0)
    assert coarse.sizes["x"] == pytest.approx(native.sizes["x"] / 2, abs=1)
    # Whole 20 m pixels over the box: only the last row and column may reach past the data.
    assert not np.isnan(coarse.values[:, :-1, :-1]).any()
    with rasterio.open(scenes / "scene_2025.tif") as src:
        low, high = src.read(3).min(), src.read(3).max()
    assert low <= float(coarse.min()) and float(coarse.max()) <= high


@pytest.mark.parametrize(
    ("target", "options", "error", "message"),
    [
        ("nowhere", {}, NotFoundError, "'nowhere' does not exist"),
        ("imagery/scene_1999", {}, NotFoundError, "has no item 'scene_1999'"),
        ("imagery", {"bands": ["red", "swir"]}, InvalidInputError, "no band named swir"),
        ("imagery", {"expression": "(nir-red"}, InvalidInputError, "is not valid"),
        ("imagery", {"expression": "__import__('os')"}, InvalidInputError, "expression"),
        ("imagery", {"expression": "  "}, InvalidInputError, "non-empty"),
        ("imagery", {"bbox": (112.01, 22.87, 111.99, 22.89)}, InvalidInputError, "wrong order"),
        ("imagery", {"bbox": (111.99, 22.89, 112.01, 22.87)}, InvalidInputError, "wrong order"),
        ("imagery", {"bbox": (1, 2, 3)}, InvalidInputError, "must be 4 numbers"),
        ("roads", {}, InvalidInputError, "'roads' is feature data, not imagery"),
        ("imagery", {"bands": "red", "expression": "ndvi"}, InvalidInputError, "not both"),
        ("imagery", {"resolution": 1}, InvalidInputError, "more than 64,000,000"),
        ("imagery", {"resolution": -10}, InvalidInputError, "positive pixel size"),
        ("imagery", {"crs": "EPSG:999999"}, InvalidInputError, "crs 'EPSG:999999' is not a CRS"),
        ("imagery/scene_2025", {"datetime": "2025"}, InvalidInputError, "drop datetime"),
        ("imagery", {"datetime": "yesterday"}, InvalidInputError, "datetime"),
        ("imagery", {"datetime": "2020-01-01"}, NotFoundError, "no scene of 'imagery' matches"),
        ("imagery", {"bbox": (10, 10, 11, 11)}, InvalidInputError, "does not overlap"),
    ],
)
def test_bad_arguments_raise_typed_errors(
    client: Client,
    target: str,
    options: dict[str, object],
    error: type[SpatialError],
    message: str,
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")) as caught:
        client.raster(target, **options)
    assert type(caught.value) is error
