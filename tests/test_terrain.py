"""Elevation collections (``--kind elevation``): ingest and refusals, Terrarium terrain tiles
and their TileJSON, hillshade map tiles, over real HTTP against the session database.

The DEMs are built here: a plane falling 10° to the east (its heights are known at every
point, so a tile's decoded heights can be checked) and a round hill (its north-west slope
must be lit, its south-east one shaded), 20 km south of the demo city, in EPSG:4546."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import morecantile
import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from pyproj import Transformer
from rasterio.crs import CRS
from support import LiveServer, admin_headers, until

from spatial import terrain
from spatial.errors import InvalidInputError
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

WEST, NORTH = 600_000.0, 2_515_000.0
"""North-west corner of the test DEMs (EPSG:4546, south of the demo city)."""
SIZE, STEP = 200, 10.0
TILT = 10.0
"""The plane's slope, falling to the east (degrees): it faces east."""
TMS = morecantile.tms.get("WebMercatorQuad")


def plane_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The plane's height at EPSG:4546 points."""
    return np.asarray(500.0 - math.tan(math.radians(TILT)) * (x - WEST), dtype=np.float64)


def write_dem(path: Path, heights: np.ndarray, west: float = WEST) -> Path:
    profile = {
        "driver": "GTiff", "width": heights.shape[1], "height": heights.shape[0], "count": 1,
        "dtype": "float32", "crs": CRS.from_epsg(4546), "nodata": -9999.0,
        "transform": Affine(STEP, 0.0, west, 0.0, -STEP, NORTH),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(heights.astype("float32"), 1)
    return path


def centres() -> tuple[np.ndarray, np.ndarray]:
    x = WEST + (np.arange(SIZE) + 0.5) * STEP
    y = NORTH - (np.arange(SIZE) + 0.5) * STEP
    return np.meshgrid(x, y)


@pytest.fixture(scope="module")
def dems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("terrain")
    x, y = centres()
    cx, cy = WEST + SIZE * STEP / 2, NORTH - SIZE * STEP / 2
    hill = 50.0 + 300.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 400.0**2))
    rgb = folder / "rgb.tif"
    with rasterio.open(
        rgb, "w", driver="GTiff", width=20, height=20, count=3, dtype="uint8",
        crs=CRS.from_epsg(4546), transform=Affine(STEP, 0, WEST, 0, -STEP, NORTH),
    ) as dst:  # fmt: skip
        dst.write(np.full((3, 20, 20), 90, dtype="uint8"))
        dst.update_tags(TIFFTAG_DATETIME="2025:06:30 03:00:00")
    return {
        "plane": write_dem(folder / "plane.tif", plane_height(x, y)),
        "hill": write_dem(folder / "hill.tif", hill),
        "rgb": rgb,
    }


@pytest.fixture(scope="module")
def url(settings: Settings) -> str:
    return settings.database.url.get_secret_value()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def api(
    live_api: LiveServer, settings: Settings, url: str, dems: dict[str, Path]
) -> Iterator[httpx.Client]:
    for name, public in (("plane", True), ("hill", True)):
        source = RasterSource((dems[name],), f"ter_{name}", kind="elevation", public=public)
        ingest_raster(url, source, settings)
    private = RasterSource((dems["hill"],), "ter_private", kind="elevation", public=False)
    ingest_raster(url, private, settings)
    ingest_raster(url, RasterSource((dems["rgb"],), "ter_rgb", public=True), settings)
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        until(lambda: client.get("/collections/ter_hill").status_code, lambda s: s == 200,
              "the API to list the elevation collections", seconds=20)  # fmt: skip
        yield client


def test_elevation_collection_records_its_kind(api: httpx.Client) -> None:
    doc = api.get("/collections/ter_plane").json()
    assert "elevation" in doc["keywords"]
    stac = api.get("/stac/collections/ter_plane/items").json()["features"][0]
    assert stac["properties"]["spatial:kind"] == "elevation"
    band = stac["assets"]["data"]["raster:bands"][0]
    assert band["unit"] == "m" and band["data_type"] == "float32"
    rels = {link["rel"]: link["href"] for link in doc["links"]}
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/tilesets-map"].endswith("/map/tiles")
    hrefs = [link["href"] for link in doc["links"]]
    assert any(h.endswith("/collections/ter_plane/terrain/tilejson") for h in hrefs)


def test_elevation_refusals(settings: Settings, url: str, dems: dict[str, Path]) -> None:
    three = RasterSource((dems["rgb"],), "ter_bad_rgb", kind="elevation")
    with pytest.raises(InvalidInputError, match="one band of heights, this scene has 3"):
        ingest_raster(url, three, settings)
    with pytest.raises(InvalidInputError, match="--kind 'height'"):
        ingest_raster(url, RasterSource((dems["plane"],), "ter_bad", kind="height"), settings)
    # A collection holds one kind: imagery into an elevation collection, and back.
    ingest_raster(url, RasterSource((dems["rgb"],), "ter_imagery"), settings)
    into_imagery = RasterSource((dems["plane"],), "ter_imagery", kind="elevation")
    with pytest.raises(InvalidInputError, match="holds imagery, not elevation"):
        ingest_raster(url, into_imagery, settings)
    ingest_raster(url, RasterSource((dems["plane"],), "ter_mixed", kind="elevation"), settings)
    into_dem = RasterSource((dems["rgb"],), "ter_mixed", item_id="rgb")
    with pytest.raises(InvalidInputError, match="holds elevation, not imagery"):
        ingest_raster(url, into_dem, settings)
    with rasterio.open(dems["plane"]) as src:
        assert src.count == 1  # nothing was changed by the refusals


TO_DEM = Transformer.from_crs(3857, 4546, always_xy=True)
TO_LONLAT = Transformer.from_crs(4546, 4326, always_xy=True)
CENTRE = (WEST + SIZE * STEP / 2, NORTH - SIZE * STEP / 2)


def tile_at(x: float, y: float, z: int) -> morecantile.Tile:
    """The WebMercatorQuad tile over an EPSG:4546 point."""
    return TMS.tile(*TO_LONLAT.transform(x, y), z)


def png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))


def test_tilejson_for_maplibre(api: httpx.Client) -> None:
    doc = api.get("/collections/ter_plane/terrain/tilejson").json()
    assert doc["tilejson"] == "3.0.0" and doc["encoding"] == "terrarium"
    assert doc["tileSize"] == 256 and doc["scheme"] == "xyz"
    assert doc["tiles"] == [
        f"{api.base_url}/collections/ter_plane/terrain/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"
    ]
    assert 10 <= doc["minzoom"] <= doc["maxzoom"] == 14
    west, south, east, north = doc["bounds"]
    lon, lat = TO_LONLAT.transform(*CENTRE)
    assert west < lon < east and south < lat < north


def test_terrarium_tile_decodes_to_the_heights(api: httpx.Client) -> None:
    tile = tile_at(*CENTRE, 14)
    path = f"/collections/ter_plane/terrain/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}"
    first = api.get(path)
    pixels = png(first)
    assert pixels.shape == (256, 256, 4) and (pixels[..., 3] == 255).all()  # opaque
    heights = pixels[..., 0] * 256.0 + pixels[..., 1] + pixels[..., 2] / 256.0 - 32768.0
    box = TMS.xy_bounds(tile)
    step = (box.right - box.left) / 256
    mx, my = np.meshgrid(box.left + (np.arange(256) + 0.5) * step,
                         box.top - (np.arange(256) + 0.5) * step)  # fmt: skip
    x, y = TO_DEM.transform(mx, my)
    inside = (x > WEST + 30) & (x < WEST + SIZE * STEP - 30)
    inside &= (y < NORTH - 30) & (y > NORTH - SIZE * STEP + 30)
    assert inside.sum() > 10_000
    error = np.abs(heights - plane_height(x, y))[inside]
    assert error.max() < 0.1, error.max()
    # Outside the DEM the edge heights carry on (no hole to -32768 m).
    assert heights.min() > 100.0
    # The tile service's rule: ETag, 304, and a cached second read.
    again = api.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert api.get(path).headers["x-tile-cache"] == "hit"


def test_terrain_tile_refusals_and_access(api: httpx.Client, settings: Settings) -> None:
    far = tile_at(CENTRE[0] + 50_000, CENTRE[1], 14)
    assert api.get(f"/collections/ter_plane/terrain/tiles/WebMercatorQuad/14/{far.y}/{far.x}"
                   ).status_code == 204  # fmt: skip
    tile = tile_at(*CENTRE, 14)
    where = f"WebMercatorQuad/14/{tile.y}/{tile.x}"
    imagery = api.get(f"/collections/ter_rgb/terrain/tiles/{where}")
    assert imagery.status_code == 404 and "--kind elevation" in imagery.text
    assert api.get("/collections/ter_rgb/terrain/tilejson").status_code == 404
    assert api.get(f"/collections/ter_private/terrain/tiles/{where}").status_code == 404
    assert api.get(f"/collections/ter_private/styles/hillshade/map/tiles/{where}"
                   ).status_code == 404  # fmt: skip
    assert api.get("/collections/ter_private/terrain/tilejson").status_code == 404
    admin = admin_headers(settings.database.url.get_secret_value())  # type: ignore[union-attr]
    assert api.get(f"/collections/ter_private/terrain/tiles/{where}",
                   headers=admin).status_code == 200  # fmt: skip
    for bad in ("azimuth=400", "altitude=0", "z_factor=abc", "colour=red"):
        answer = api.get(f"/collections/ter_hill/styles/hillshade/map/tiles/{where}?{bad}")
        assert answer.status_code == 400, bad
        assert bad.split("=")[0] in answer.text


def test_hillshade_lights_north_west_slopes(api: httpx.Client) -> None:
    tile = tile_at(*CENTRE, 14)
    pixels = png(api.get(
        f"/collections/ter_hill/styles/hillshade/map/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}"
    ))  # fmt: skip
    box = TMS.xy_bounds(tile)
    step = (box.right - box.left) / 256
    to_3857 = Transformer.from_crs(4546, 3857, always_xy=True)

    def at(dx: float, dy: float) -> np.ndarray:
        mx, my = to_3857.transform(CENTRE[0] + dx, CENTRE[1] + dy)
        col, row = int((mx - box.left) / step), int((box.top - my) / step)
        return pixels[row - 2 : row + 3, col - 2 : col + 3].reshape(-1, 4).astype(float)

    north_west, south_east, top = at(-350, 350), at(350, -350), at(0, 0)
    assert north_west[:, 0].mean() > 200
    assert south_east[:, 0].mean() < 120  # a 23° slope facing away: cos(45° + 23°)
    assert north_west[:, 3].mean() > 60 and south_east[:, 3].mean() > 60
    assert top[:, 3].mean() < 30  # the flat top lets the map through
    # Lit from the south-east instead, the same slopes swap.
    lit = png(api.get(f"/collections/ter_hill/styles/hillshade/map/tiles/WebMercatorQuad/14/"
                      f"{tile.y}/{tile.x}?azimuth=135&altitude=30&z_factor=2"))  # fmt: skip
    pixels = lit
    assert at(350, -350)[:, 0].mean() > at(-350, 350)[:, 0].mean() + 100


def lonlat_box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    """A GeoJSON polygon (CRS84) of an EPSG:4546 box."""
    corners = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    return {"type": "Polygon", "coordinates": [[list(TO_LONLAT.transform(*c)) for c in corners]]}


def run(api: httpx.Client, process: str, inputs: dict[str, Any], **kw: Any) -> httpx.Response:
    return api.post(f"/processes/{process}/execution", json={"inputs": inputs}, **kw)


@pytest.fixture(scope="module")
def zones(api: httpx.Client, settings: Settings, url: str, tmp_path_factory: pytest.TempPathFactory
          ) -> str:  # fmt: skip
    """Two fields on the plane (EPSG:4546), a vector collection readable by everyone."""
    path = tmp_path_factory.mktemp("zones") / "fields.geojson"
    fields = [("A", WEST + 300, NORTH - 1200, WEST + 900, NORTH - 300),
              ("B", WEST + 1100, NORTH - 1700, WEST + 1700, NORTH - 1100)]  # fmt: skip
    features = [{"type": "Feature", "properties": {"name": name},
                 "geometry": lonlat_box(w, s, e, n)} for name, w, s, e, n in fields]  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    ingest_vector(url, VectorSource(path, "ter_fields", "Fields", key="name", public=True),
                  settings)  # fmt: skip
    until(lambda: api.get("/collections/ter_fields").status_code, lambda s: s == 200,
          "the API to list the fields", seconds=20)  # fmt: skip
    return "ter_fields"


def test_slope_and_aspect_of_a_plane(api: httpx.Client) -> None:
    area = lonlat_box(WEST + 200, NORTH - 1800, WEST + 1800, NORTH - 200)
    slope = run(api, "slope", {"dem": "ter_plane", "geometry": area})
    assert slope.status_code == 200, slope.text
    figures = slope.json()
    assert abs(figures["slope_deg"]["mean"] - TILT) < 0.5
    assert figures["slope_deg"]["max"] - figures["slope_deg"]["min"] < 0.5
    grades = {g["range"]: g["share"] for g in figures["grades"]}
    assert grades["6-15°"] == pytest.approx(1.0) and grades["≤2°"] == 0.0
    assert figures["area_m2"] == pytest.approx(1600.0 * 1600.0, rel=0.02)
    aspect = run(api, "aspect", {"dem": "ter_plane", "geometry": area}).json()
    assert aspect["dominant"] == "E"
    assert {s["sector"]: s["share"] for s in aspect["sectors"]}["E"] == pytest.approx(1.0)
    # On the hill every sector has its share, and the flat top is flat.
    hill = run(api, "aspect", {"dem": "ter_hill", "geometry": area}).json()
    shares = {s["sector"]: s["share"] for s in hill["sectors"]}
    assert all(0.05 < shares[s] < 0.2 for s in ("N", "NE", "E", "SE", "S", "SW", "W", "NW"))
    assert 0.0 < shares["flat"] < 0.2


def test_slope_per_zone_written_back(api: httpx.Client, url: str, zones: str) -> None:
    area = lonlat_box(WEST, NORTH - SIZE * STEP, WEST + SIZE * STEP, NORTH)
    answer = run(api, "aspect", {"dem": "ter_hill", "geometry": area, "zones": zones,
                                 "properties": ["name"], "collection": "ter_field_aspect"},
                 headers=admin_headers(url))  # fmt: skip
    assert answer.status_code == 200, answer.text
    by_name = {z["name"]: z for z in answer.json()["zones"]}
    # Field A lies north-west of the hill's top, B south-east of it.
    assert by_name["A"]["dominant_aspect"] in {"NW", "N", "W"}
    assert by_name["B"]["dominant_aspect"] in {"SE", "S", "E"}
    assert 5.0 < by_name["A"]["mean_slope_deg"] < 30.0
    admin = admin_headers(url)  # the collection written is its writer's (not public)
    written = until(lambda: api.get("/collections/ter_field_aspect/items", headers=admin).json(),
                    lambda d: len(d.get("features", [])) == 2,
                    "the written collection")  # fmt: skip
    names = {f["properties"]["name"]: f["properties"] for f in written["features"]}
    assert names["B"]["dominant_aspect"] == by_name["B"]["dominant_aspect"]


def test_slope_refusals(api: httpx.Client) -> None:
    area = lonlat_box(WEST + 200, NORTH - 1800, WEST + 1800, NORTH - 200)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"dem": "ter_plane"}, "'geometry'"),
        ({"geometry": area}, "'dem'"),
        ({"dem": "ter_rgb", "geometry": area}, "not an elevation collection"),
        ({"dem": "ter_plane", "geometry": {"type": "Point", "coordinates": [112, 22.7]}},
         "polygon"),
        ({"dem": "ter_plane", "geometry": lonlat_box(WEST - 30_000, NORTH - 60_000,
                                                     WEST + 30_000, NORTH)}, "km²"),
        ({"dem": "ter_plane", "geometry": lonlat_box(WEST + 90_000, NORTH - 1000,
                                                     WEST + 91_000, NORTH)}, "outside"),
    ]  # fmt: skip
    for inputs, words in cases:
        answer = run(api, "slope", inputs)
        assert answer.status_code == 400, (inputs, answer.text)
        assert words in answer.text, answer.text
    assert run(api, "slope", {"dem": "ter_private", "geometry": area}).status_code == 404


def test_upload_kind_elevation(api: httpx.Client, url: str, dems: dict[str, Path]) -> None:
    admin = admin_headers(url)

    def upload(path: Path, **form: str) -> httpx.Response:
        with path.open("rb") as f:
            return api.post("/ingest/raster", headers=admin, data=form,
                            files={"file": (path.name, f, "image/tiff")})  # fmt: skip

    assert "--kind" in upload(dems["plane"], collection="ter_up", kind="lidar").text
    answer = upload(dems["plane"], collection="ter_up", kind="elevation")
    assert answer.status_code == 202, answer.text
    job = until(lambda: api.get(answer.headers["location"], headers=admin).json(),
                lambda j: j["state"] in {"succeeded", "failed"}, "the upload's job")  # fmt: skip
    assert job["state"] == "succeeded", job["message"]
    doc = api.get("/collections/ter_up/terrain/tilejson", headers=admin)
    assert doc.status_code == 200 and doc.json()["encoding"] == "terrarium"


def test_true_cell_sizes_on_geographic_and_mercator_grids() -> None:
    """A 10° plane on a CGCS2000 lon/lat grid (1/3600° cells) has a 10° slope; a Web
    Mercator pixel at 23°N is its step times cos(23°) on the ground."""
    step = 1.0 / 3600.0
    transform = Affine(step, 0.0, 112.0, 0.0, -step, 23.0)
    east, north = terrain.cell_size("EPSG:4490", transform, 50, col=25.0)
    assert 28.0 < east.mean() < 29.0 and 30.7 < north.mean() < 30.8
    x_m = np.arange(52) * east.mean()
    heights = np.tile(-math.tan(math.radians(TILT)) * x_m, (52, 1))  # falling to the east
    gx, gy = terrain.horn(heights, east, north)
    assert abs(float(np.median(terrain.slope_deg(gx, gy))) - TILT) < 0.2
    assert np.allclose(terrain.aspect_deg(gx, gy), 90.0)  # it faces east
    mercator = Affine(10.0, 0.0, 12_467_782.0, 0.0, -10.0, 2_620_000.0)  # about 23.03°N
    east_m, north_m = terrain.cell_size("EPSG:3857", mercator, 1)
    lat = math.degrees(2 * math.atan(math.exp(2_619_995.0 / 6_378_137.0)) - math.pi / 2)
    assert east_m[0] == pytest.approx(10.0 * math.cos(math.radians(lat)), rel=1e-3)
    assert north_m[0] == pytest.approx(east_m[0], rel=1e-3)
