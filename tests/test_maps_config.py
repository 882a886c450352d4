"""The web maps' definitions and configuration API, against the demo city.

The five shipped subsystem files load, name only collections, attributes and processes the
demo has, and carry MapLibre style fragments of a sound shape. Over real HTTP, each map's
configuration as an admin lists sources whose tile and GeoJSON URLs answer with data in
the map's extent; a viewer of one department gets no layer of another department's
restricted collection (nor its tile URL); unknown maps are 404, closed maps 401/403; a
broken definition file stops the app with a message naming the file and the field.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import mapbox_vector_tile
import morecantile
import numpy as np
import psycopg
import pytest
import shapely
from rastercases import decode_image
from support import TESTS, LiveServer

from api import create_app
from layers import Catalog, subsystems
from spatial import accounts, features
from spatial.db import engine
from spatial.errors import ConfigurationError, NotFoundError
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.processes import PROCESSES
from spatial.settings import MapsSettings, Settings

SHIPPED = tuple(sorted(path.stem for path in subsystems.SUBSYSTEMS_DIR.glob("*.yaml")))
"""Every shipped map: one file each in layers/subsystems (an open list: a new file is a new map)."""
TMS = morecantile.tms.get("WebMercatorQuad")
SECRET = "mp_secret"
"""A collection only department mp_a may read."""
RESTRICTED_MAP = """
id: depts
title: 部门测试 Departments test
extent: [111.9497, 22.8582, 112.0503, 22.9417]
access: public
layers:
  - {id: secret, collection: mp_secret, kind: vector, title: Secret,
     style: [{type: fill, paint: {fill-color: "#ff0000"}}], popup: [code]}
  - {id: districts, collection: districts, kind: vector, title: Districts,
     style: [{type: line, paint: {line-color: "#000000"}}]}
processes:
  - {id: nearest, title: Nearest secret, draw: point, geometry_input: point,
     inputs: {collection: mp_secret}}
"""
CLOSED_MAP = """
id: closed
title: 仅限部门 Department A only
extent: [111.9497, 22.8582, 112.0503, 22.9417]
access: {departments: [mp_a]}
layers:
  - {id: districts, collection: districts, kind: vector, title: Districts,
     style: [{type: line, paint: {line-color: "#000000"}}]}
"""


@pytest.fixture(scope="module")
def catalog(demo_url: str) -> Catalog:
    with engine(demo_url) as eng, eng.connect() as conn:
        return Catalog.load(conn)


@pytest.fixture(scope="module")
def callers(demo_url: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``mp_secret`` (readable by department mp_a only) and keys of a viewer of mp_a, a
    viewer of mp_b and an admin."""
    path = tmp_path_factory.mktemp("maps-secret") / "secret.gpkg"
    gpd.GeoDataFrame(
        {"code": ["S1", "S2"]},
        geometry=[shapely.box(112.0, 22.9, 112.002, 22.902),
                  shapely.box(112.01, 22.9, 112.012, 22.902)],
        crs="EPSG:4490",
    ).to_file(path)  # fmt: skip
    ingest_vector(demo_url, VectorSource(path=path, collection_id=SECRET, title=SECRET, key="code"),
                  settings, actor="pytest")  # fmt: skip
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    with engine(demo_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "mp_a", "Department A")
        accounts.add_department(conn, TESTS, "mp_b", "Department B")
        for name, role, dept in (("viewer_a", "viewer", "mp_a"), ("viewer_b", "viewer", "mp_b"),
                                 ("admin", "admin", None)):  # fmt: skip
            accounts.add_user(conn, TESTS, f"mp_{name}", roles=(role,), department=dept,
                              service=True)  # fmt: skip
            headers[name] = {"X-API-Key": accounts.create_key(conn, TESTS, f"mp_{name}")}
        accounts.add_grant(conn, TESTS, SECRET, "department:mp_a", "read")
    return headers


@pytest.fixture(scope="module")
def api(
    settings: Settings, callers: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The live API (started after the demo is loaded) with the shipped maps and two test
    maps in its subsystems folder."""
    folder = tmp_path_factory.mktemp("maps-defs")
    for path in subsystems.SUBSYSTEMS_DIR.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    (folder / "depts.yaml").write_text(RESTRICTED_MAP, encoding="utf-8")
    (folder / "closed.yaml").write_text(CLOSED_MAP, encoding="utf-8")
    ours = settings.model_copy(update={"maps": MapsSettings(subsystems_dir=folder)})
    with LiveServer(create_app(ours)) as live, httpx.Client(base_url=live.url, timeout=60) as c:
        yield c


# -- the definitions ------------------------------------------------------------------------


def test_the_shipped_definitions_load() -> None:
    maps = subsystems.load()
    assert [s.id for s in maps] == list(SHIPPED)
    assert {"planning", "water", "land", "environment", "emergency", "construction",
            "utilities", "forestry", "agriculture"} <= set(SHIPPED)  # fmt: skip
    for subsystem in maps:
        assert subsystem.access.public and subsystem.layers
        assert any("\u4e00" <= ch <= "\u9fff" for ch in subsystem.title)  # Chinese + English
    assert maps.get("emergency").live


def test_every_collection_attribute_and_process_exists(catalog: Catalog, demo_url: str) -> None:
    with psycopg.connect(demo_url) as conn:
        scenes = {
            r[0] for r in conn.execute("SELECT id FROM rs.items WHERE collection_id = 'imagery'")
        }
    for subsystem in subsystems.load():
        for layer in subsystem.layers:
            where = f"{subsystem.id}/{layer.id}"
            if layer.collection == subsystems.FLOOD_EXTENT and not _has(catalog, layer.collection):
                continue  # written by the flood alarms: absent until one ran (left off the map)
            record = catalog.get(layer.collection)
            assert record.kind == layer.kind, where
            if layer.kind != "raster":
                fields = features.LayerSchema.of(record).fields
                assert set(layer.popup + layer.search) <= set(fields), where
        for offer in subsystem.processes:
            assert offer.id in PROCESSES
            for cid in offer.collections:
                catalog.get(cid)
            for item in ("before", "after"):
                if item in offer.inputs:
                    assert offer.inputs[item] in scenes, subsystem.id
        if subsystem.terrain is not None:  # the demo's DEM: every map may tilt into 3D
            assert subsystems.is_elevation(catalog.get(subsystem.terrain.collection))
        if subsystem.flood is not None:
            assert catalog.get(subsystem.flood.gauges).properties.get("key") == "gauge_id"
    assert {s.id for s in subsystems.load() if s.flood} == {"water", "emergency"}


def _has(catalog: Catalog, cid: str) -> bool:
    try:
        catalog.get(cid)
    except NotFoundError:
        return False
    return True


def test_style_fragments_fit_their_layer_types() -> None:
    paint_prefixes = {"fill": ("fill-",), "line": ("line-",), "circle": ("circle-",),
                      "symbol": ("icon-", "text-"), "raster": ("raster-",),
                      "heatmap": ("heatmap-",),
                      "fill-extrusion": ("fill-extrusion-",)}  # fmt: skip
    for subsystem in subsystems.load():
        for layer in subsystem.layers:
            text = json.dumps([f.model_dump() for f in layer.style])
            for fragment in layer.style:
                assert fragment.type in subsystems.KIND_TYPES[layer.kind]
                assert all(k.startswith(paint_prefixes[fragment.type]) for k in fragment.paint)
            for entry in layer.legend:  # what the legend shows is what the style draws
                assert entry.symbol == "raster" or entry.color in text, (layer.id, entry)


def test_land_use_colours_cover_every_first_level_class_in_the_demo(demo_url: str) -> None:
    """Parcels are coloured by the GB/T 21010 first-level class (DLBM's first two digits):
    every class of the demo cadastre has its own colour, distinct from the fallback."""
    parcels = next(x for x in subsystems.load().get("land").layers if x.collection == "parcels")
    colour = parcels.style[0].paint["fill-color"]
    assert colour[:2] == ["match", ["slice", ["to-string", ["get", "dlbm"]], 0, 2]]
    classes = dict(zip(colour[2:-1:2], colour[3:-1:2], strict=True))
    assert sorted(classes) == [f"{i:02d}" for i in range(1, 13)]
    assert len(set(classes.values())) == 12 and colour[-1] not in classes.values()
    with psycopg.connect(demo_url) as conn:
        present = {r[0] for r in conn.execute("SELECT DISTINCT left(dlbm, 2) FROM layers.parcels")}
    assert present <= set(classes) and len(present) >= 11


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("layers:\n  - {id: x}\n", "layers.0.collection"),
        ("processes:\n  - {id: no-such-process, title: x}\n", "no-such-process"),
        ("extent: [112.1, 22.8, 112.0, 22.9]\n", "extent"),
        ("id: [unclosed\n", "cannot be read as YAML"),
        ("id: other\n", "differs from the file name"),
        ("terrain: {collection: dem, exaggeration: 0}\n", "terrain.exaggeration"),
        ("flood: {process: buffer}\n", "not a flood extent"),
        ("flood: {hours: [0]}\n", "flood.hours"),
    ],
)
def test_a_broken_definition_stops_the_app_naming_file_and_field(
    tmp_path: Path, settings: Settings, change: str, named: str
) -> None:
    for path in subsystems.SUBSYSTEMS_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    good = (tmp_path / "water.yaml").read_text(encoding="utf-8")
    key = change.split(":", 1)[0]
    kept = [ln for ln in good.splitlines(keepends=True) if not ln.startswith(f"{key}:")]
    if key == "layers":  # drop the whole layers block
        start = kept.index(next(ln for ln in kept if ln.startswith("  - id: imagery")))
        end = kept.index(next(ln for ln in kept if ln.startswith("processes:")))
        kept = kept[:start] + kept[end:]
    if key == "processes":
        kept = kept[: kept.index(next(ln for ln in kept if ln.startswith("  - id: intersect")))]
    (tmp_path / "water.yaml").write_text("".join(kept) + change, encoding="utf-8")
    broken = settings.model_copy(update={"maps": MapsSettings(subsystems_dir=tmp_path)})
    with pytest.raises(ConfigurationError) as caught:
        create_app(broken)
    assert str(tmp_path / "water.yaml") in str(caught.value)
    assert named in str(caught.value)


def test_a_bad_paint_property_is_refused_with_its_field(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "id: x\ntitle: X\nextent: [0, 0, 1, 1]\naccess: public\nlayers:\n"
        "  - {id: a, collection: roads, kind: vector, title: A,\n"
        "     style: [{type: line, paint: {fill-color: red}}]}\n", encoding="utf-8"
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"x\.yaml: layers\.0\.style\.0.*fill-color"):
        subsystems.load(tmp_path)


# -- the API --------------------------------------------------------------------------------


def _tile_of(lon: float, lat: float, z: int) -> morecantile.Tile:
    return TMS.tile(lon, lat, z)


def _url(template: str, tile: morecantile.Tile) -> str:
    return (
        template.replace("{z}", str(tile.z)).replace("{y}", str(tile.y)).replace("{x}", str(tile.x))
    )


def _a_point_of(client: httpx.Client, cid: str, headers: dict[str, str]) -> tuple[float, float]:
    found = client.get(f"/collections/{cid}/items", params={"limit": 1}, headers=headers).json()
    shape = shapely.geometry.shape(found["features"][0]["geometry"])
    point = shape.representative_point() if shape.geom_type.endswith("Polygon") else shape
    first = shapely.get_coordinates(point)[0]
    return float(first[0]), float(first[1])


@pytest.mark.parametrize("subsystem", SHIPPED)
def test_each_map_as_admin_has_sources_that_answer_with_data(
    api: httpx.Client, callers: Any, subsystem: str
) -> None:
    h = callers["admin"]
    config = api.get(f"/maps/{subsystem}/config", headers=h)
    assert config.status_code == 200, config.text
    body = config.json()
    defined = subsystems.load().get(subsystem)
    assert body["id"] == subsystem and body["extent"] == list(defined.extent)
    assert body["basemap"] is None  # offline first: no basemap unless configured
    written = api.get(f"/collections/{subsystems.FLOOD_EXTENT}", headers=h).status_code == 200
    assert [lyr["id"] for lyr in body["layers"]] == [
        lyr.id for lyr in defined.layers if written or lyr.collection != subsystems.FLOOD_EXTENT
    ]  # the flood alarms' extents are left out where none was written
    assert (body["live"] is not None) == defined.live
    if body["live"]:
        assert body["live"]["url"].startswith("ws://") and body["live"]["url"].endswith("/gps/live")
    assert {p["id"] for p in body["processes"]} <= set(PROCESSES)
    for offer in body["processes"]:
        assert offer["execution"].endswith(f"/processes/{offer['id']}/execution")
    west, south, east, north = body["extent"]
    for layer in body["layers"]:
        source = body["sources"][layer["source"]]
        for style in layer["maplibre"]:
            assert style["source"] == layer["id"]
            assert style["layout"]["visibility"] == ("visible" if layer["visible"] else "none")
        if source["type"] == "geojson":
            data = httpx.get(source["data"], headers=h, timeout=60)
            assert data.status_code == 200 and data.json()["features"], layer["id"]
            continue
        if source["type"] == "raster":
            tile = _tile_of((west + east) / 2, (south + north) / 2, 13)
            answer = httpx.get(_url(source["tiles"][0], tile), headers=h, timeout=60)
            assert answer.status_code == 200, (layer["id"], answer.text)
            pixels, _ = decode_image(answer.content)
            assert pixels.shape[0] == 4 and (pixels[3] > 0).mean() > 0.9, layer["id"]
            assert np.unique(pixels[:3].reshape(3, -1), axis=1).shape[1] > 10, layer["id"]
            continue
        assert {s["source-layer"] for s in layer["maplibre"]} == {layer["collection"]}
        tile = _tile_of(*_a_point_of(api, layer["collection"], h), 14)
        answer = httpx.get(_url(source["tiles"][0], tile), headers=h, timeout=60)
        assert answer.status_code == 200, (layer["id"], answer.status_code)
        found = mapbox_vector_tile.decode(answer.content)[layer["collection"]]["features"]
        assert found, layer["id"]
        # The tiles carry what the style reads (and the ids); a popup reads the features API.
        styled = set(re.findall(r"\['get', '([^']+)'\]", str(layer["maplibre"])))
        assert all(styled <= set(f["properties"]) for f in found), (layer["id"], styled)
        if "?properties=" in source["tiles"][0]:
            assert all(set(f["properties"]) <= styled for f in found), layer["id"]
        if layer["popup"]:
            item = httpx.get(f"{layer['items']}/{found[0]['id']}", headers=h, timeout=60)
            assert item.status_code == 200, (layer["id"], item.text)
            assert set(layer["popup"]) <= set(item.json()["properties"]), layer["id"]


def test_the_listing_and_unknown_maps(api: httpx.Client, callers: Any) -> None:
    listed = api.get("/maps/subsystems").json()["subsystems"]
    assert [s["id"] for s in listed] == sorted([*SHIPPED, "depts"])
    assert all(s["title"] and s["links"][0]["href"].endswith(f"/maps/{s['id']}/config")
               for s in listed)  # fmt: skip
    for headers in (callers["anonymous"], callers["admin"]):
        missing = api.get("/maps/no-such-map/config", headers=headers)
        assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
    assert api.get("/maps/land/config", params={"f": "html"}).status_code == 400
    doc = api.get("/api").json()
    assert {"/maps/subsystems", "/maps/{subsystem}/config"} <= set(doc["paths"])


def test_a_viewer_never_gets_another_departments_restricted_layer(
    api: httpx.Client, callers: Any
) -> None:
    mine = api.get("/maps/depts/config", headers=callers["viewer_a"]).json()
    assert [lyr["id"] for lyr in mine["layers"]] == ["secret", "districts"]
    assert [p["id"] for p in mine["processes"]] == ["nearest"]
    tile = _tile_of(112.001, 22.901, 14)
    answer = httpx.get(_url(mine["sources"]["secret"]["tiles"][0], tile),
                       headers=callers["viewer_a"])  # fmt: skip
    assert answer.status_code == 200
    for caller in ("viewer_b", "anonymous"):
        response = api.get("/maps/depts/config", headers=callers[caller])
        theirs = response.json()
        assert [lyr["id"] for lyr in theirs["layers"]] == ["districts"], caller
        assert list(theirs["sources"]) == ["districts"] and theirs["processes"] == []
        assert SECRET not in response.text, caller  # not even its tile URL


def test_a_closed_map_needs_its_department(api: httpx.Client, callers: Any) -> None:
    assert api.get("/maps/closed/config").status_code == 401
    assert api.get("/maps/closed/config", headers=callers["viewer_b"]).status_code == 403
    assert api.get("/maps/closed/config", headers=callers["viewer_a"]).status_code == 200
    assert api.get("/maps/closed/config", headers=callers["admin"]).status_code == 200
    for caller, sees in (("anonymous", False), ("viewer_b", False), ("viewer_a", True)):
        listed = api.get("/maps/subsystems", headers=callers[caller]).json()["subsystems"]
        assert ("closed" in [s["id"] for s in listed]) == sees, caller
