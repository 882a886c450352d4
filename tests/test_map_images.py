"""OGC API - Maps over real HTTP against the demo city: a parcel's pixel has exactly its
land-use colour from the subsystem YAML in Web Mercator, CGCS2000 and a Gauss-Krüger
zone; a restricted collection is a 404 and a row filter hides its rows in the image; bad
parameters are 400s that say what is wrong."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pytest
import shapely
from PIL import Image
from pyproj import Transformer
from support import TESTS, LiveServer

from api import create_app
from layers import styles, subsystems
from spatial import accounts
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

SECRET = "h1_secret_cells"
"""A collection of the tests' own: not public, granted to department h1_a for its forest
rows only."""


def _parcel_colours() -> dict[str, str]:
    """The land map's land-use colours by class (the YAML's ``match``)."""
    layer = next(x for x in subsystems.load().get("land").layers if x.id == "parcels-landuse")
    paint = layer.style[0].paint["fill-color"]
    return dict(zip(paint[2:-1:2], paint[3:-1:2], strict=True))


@pytest.fixture(scope="module")
def world(demo_url: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A parcel well inside its boundary (its class, the centre of its largest inscribed
    circle in EPSG:4546 and that circle's radius), the secret collection, and keys."""
    with psycopg.connect(demo_url) as conn:
        row = conn.execute(
            "SELECT dlbm, ST_X(c.center), ST_Y(c.center), c.radius FROM (SELECT dlbm, "
            "(ST_MaximumInscribedCircle(geom)).* FROM layers.parcels "
            "ORDER BY ST_Area(geom) DESC LIMIT 50) c ORDER BY c.radius DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    dlbm, x, y, radius = row
    folder = tmp_path_factory.mktemp("h1")
    cells = [
        shapely.box(112.20 + i * 0.002, 23.10, 112.2015 + i * 0.002, 23.1015) for i in range(4)
    ]
    gpd.GeoDataFrame({"code": ["F0", "F1", "P0", "P1"], "use": ["forest"] * 2 + ["farm"] * 2},
                     geometry=cells, crs="EPSG:4490").to_file(folder / "cells.gpkg")  # fmt: skip
    source = VectorSource(path=folder / "cells.gpkg", collection_id=SECRET, title=SECRET,
                          key="code", public=False)  # fmt: skip
    ingest_vector(demo_url, source, settings, actor="pytest")
    with engine(demo_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "h1_a", "H1 department")
        accounts.add_user(conn, TESTS, "h1_viewer", roles=("viewer",), department="h1_a",
                          service=True)  # fmt: skip
        key = accounts.create_key(conn, TESTS, "h1_viewer")
        accounts.add_grant(conn, TESTS, SECRET, "department:h1_a", "read",
                           row_filter="use = 'forest'")  # fmt: skip
    return {"dlbm": dlbm, "xy": (x, y), "radius": radius, "viewer": {"X-API-Key": key},
            "cells": cells}  # fmt: skip


@pytest.fixture(scope="module")
def api(settings: Settings, world: Any) -> Iterator[httpx.Client]:
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url,
                                                                timeout=60) as client:  # fmt: skip
        yield client


def _pixels(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))


def _box(world: Any, epsg: int, half: float) -> tuple[str, tuple[float, float]]:
    """A bbox (in the CRS's own axis order, as bbox-crs takes it) of ``half`` the parcel's
    inscribed radius around its centre, and the centre in x/y order."""
    x, y = Transformer.from_crs(4546, epsg, always_xy=True).transform(*world["xy"])
    cx, cy = Transformer.from_crs(4546, epsg, always_xy=True).transform(
        world["xy"][0] + world["radius"] * half, world["xy"][1] + world["radius"] * half
    )
    dx, dy = abs(cx - x), abs(cy - y)
    flipped = epsg != 3857  # EPSG:4490 (lat, lon) and the zones (northing, easting)
    values = (y - dy, x - dx, y + dy, x + dx) if flipped else (x - dx, y - dy, x + dx, y + dy)
    return ",".join(f"{v:.10f}" for v in values), (x, y)


@pytest.mark.parametrize("epsg", [3857, 4490, 4546])
def test_a_parcel_has_its_yaml_colour_in_every_crs(
    api: httpx.Client, world: Any, epsg: int
) -> None:
    expected = styles.colour(_parcel_colours()[world["dlbm"][:2]])[0]
    rgb = tuple(int(expected[i : i + 2], 16) for i in (1, 3, 5))
    bbox, _ = _box(world, epsg, 0.5)
    crs = f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"
    response = api.get("/collections/parcels/map", params={
        "bbox": bbox, "bbox-crs": crs, "crs": crs, "width": 41, "height": 41})  # fmt: skip
    pixels = _pixels(response)
    assert response.headers["content-crs"] == f"<{crs}>"
    assert pixels.shape == (41, 41, 4)
    assert tuple(pixels[20, 20]) == (*rgb, 255)  # the browser's colour, opaque alone
    # On the land map the layer is drawn at the map's opacity (0.75), as in the browser.
    land = _pixels(api.get("/maps/land/map", params={
        "bbox": bbox, "bbox-crs": crs, "crs": crs, "width": 41, "height": 41}))  # fmt: skip
    assert abs(int(land[20, 20, 3]) - 191) <= 1
    assert all(abs(int(a) - b) <= 1 for a, b in zip(land[20, 20, :3], rgb, strict=True))


def test_defaults_jpeg_background_and_the_aspect_ratio(api: httpx.Client, world: Any) -> None:
    whole = api.get("/collections/parcels/map")  # the collection's extent, 1024 across
    image = Image.open(io.BytesIO(whole.content))
    assert image.width == 1024 and 0.7 < image.height / image.width < 1.3
    assert np.asarray(image.convert("RGBA"))[..., 3].max() == 255
    bbox = "111.90,22.80,111.91,22.805"  # outside the demo data: nothing drawn
    query: dict[str, str | int] = {"bbox": bbox, "width": 100, "f": "jpeg", "bgcolor": "0x102030"}
    jpeg = api.get("/collections/parcels/map", params=query)
    assert jpeg.headers["content-type"] == "image/jpeg"
    decoded = np.asarray(Image.open(io.BytesIO(jpeg.content)).convert("RGB"))
    assert decoded.shape == (50, 100, 3)  # height from the bbox's aspect ratio
    assert np.abs(decoded.astype(int) - (0x10, 0x20, 0x30)).max() <= 3
    blank = _pixels(api.get("/collections/parcels/map", params={"bbox": bbox, "height": 10}))
    assert blank.shape == (10, 20, 4) and blank[..., 3].max() == 0  # transparent, not an error


def test_restricted_collections_and_row_filters(api: httpx.Client, world: Any) -> None:
    west, south, east, north = 112.199, 23.099, 112.2085, 23.1025
    params: dict[str, str | int] = {"bbox": f"{west},{south},{east},{north}", "width": 380,
                                    "height": 140}  # fmt: skip
    for path in (f"/collections/{SECRET}/map", f"/collections/{SECRET}/styles"):
        assert api.get(path, params=params if "map" in path else None).status_code == 404
    pixels = _pixels(api.get(f"/collections/{SECRET}/map", params=params,
                             headers=world["viewer"]))  # fmt: skip

    def alpha_at(cell: shapely.Polygon) -> int:
        point = cell.centroid
        col = int((point.x - west) / (east - west) * 380)
        row = int((north - point.y) / (north - south) * 140)
        return int(pixels[row, col, 3])

    forest, farm = world["cells"][:2], world["cells"][2:]
    assert all(alpha_at(c) > 0 for c in forest)  # the grant's rows are drawn
    assert all(alpha_at(c) == 0 for c in farm)  # the others are not in the image


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"width": "0"}, "width"),
        ({"width": "abc"}, "width"),
        ({"width": "100000"}, "width"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "5,2,3,4"}, "bbox"),
        ({"crs": "EPSG:9999"}, "crs"),
        ({"bbox-crs": "EPSG:3857"}, "bbox-crs"),
        ({"f": "gif"}, "f="),
        ({"bgcolor": "teal-ish"}, "bgcolor"),
        ({"transparent": "maybe"}, "transparent"),
        ({"style": "nope"}, "styles are"),
        ({"colour": "red"}, "unknown query parameter"),
        ({"datetime": "yesterday"}, "datetime"),
    ],
)
def test_bad_parameters_are_400_with_a_clear_message(
    api: httpx.Client, query: dict[str, str], words: str
) -> None:
    response = api.get("/collections/parcels/map", params=query)
    assert response.status_code == 400, response.text
    assert words in response.json()["description"]


def test_unknown_names_are_404(api: httpx.Client) -> None:
    assert api.get("/collections/nope/map").status_code == 404
    assert api.get("/maps/nope/map").status_code == 404
    assert api.get("/maps/land").status_code == 200  # the HTML page is still there


@pytest.mark.parametrize("collection", ["parcels", "imagery"])
def test_a_collection_links_its_map_and_styles(api: httpx.Client, collection: str) -> None:
    """Maps ``collection-map``: the collection's description links its map (rel ``map``),
    which answers an image; its styles are linked too (OGC API - Styles)."""
    described = api.get(f"/collections/{collection}", params={"f": "json"})
    assert described.status_code == 200, described.text
    links = {link["rel"]: link for link in described.json()["links"]}
    map_link = links["http://www.opengis.net/def/rel/ogc/1.0/map"]
    assert map_link["href"].endswith(f"/collections/{collection}/map")
    assert map_link["type"] == "image/png"
    pixels = _pixels(api.get(map_link["href"], params={"width": 64}))
    assert pixels.shape[1] == 64 and pixels.shape[0] > 0
    assert (pixels[..., 3] > 0).any()  # something is drawn over the collection's extent
    styles = api.get(links["http://www.opengis.net/def/rel/ogc/1.0/styles"]["href"])
    assert styles.status_code == 200 and styles.json()["styles"], styles.text
