"""The ``flood-extent`` process over real HTTP on the sloping valley of ``floodcase``: the
river method keeps to the gauge's reach where a flat level floods everything downstream,
neither method reaches the closed basin, the features and people inside by district, the
polygons written as a collection (a gauge's earlier ones replaced), and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import floodcase as fc
import httpx
import numpy as np
import pytest
import rasterio
import shapely
from support import LiveServer, wait_for_collection

from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import Settings

DEPTH = 3.0
LEVEL = fc.BED_AT_GAUGE + DEPTH


@pytest.fixture(scope="module")
def ids(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The valley's collections, and ``rgb``: imagery (three bands of bytes), no DEM."""
    folder = tmp_path_factory.mktemp("flood")
    made = fc.ingest(settings, folder, "fl_")
    rgb = folder / "rgb.tif"
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 3, "dtype": "uint8",
               "crs": fc.CRS,
               "transform": rasterio.transform.from_origin(fc.X0, fc.Y0, 10, 10)}  # fmt: skip
    with rasterio.open(rgb, "w", **profile) as dst:
        dst.write(np.full((3, 64, 64), 100, dtype="uint8"))
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    ingest_raster(url, RasterSource((rgb,), "fl_rgb", datetime=fc.WHEN, public=True), settings)
    made["folder"] = str(folder)
    return made | {"rgb": "fl_rgb"}


@pytest.fixture(scope="module")
def api(live_api: LiveServer, ids: dict[str, str]) -> Iterator[httpx.Client]:
    """The API, the floods configuration pointing at the valley's collections."""
    path = fc.config(Path(ids["folder"]), ids)
    with (
        pytest.MonkeyPatch.context() as patch,
        httpx.Client(base_url=live_api.url, timeout=120) as client,
    ):
        patch.setenv("SPATIAL_FLOOD_CONFIG", str(path))
        for cid in (ids["dem"], ids["buildings"]):
            wait_for_collection(client, cid)
        yield client


def _run(api: httpx.Client, inputs: dict[str, Any], **headers: str) -> httpx.Response:
    return api.post("/processes/flood-extent/execution", json={"inputs": inputs},
                    headers=headers)  # fmt: skip


def _ok(api: httpx.Client, inputs: dict[str, Any], **headers: str) -> dict[str, Any]:
    answer = _run(api, inputs, **headers)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _native(result: dict[str, Any]) -> shapely.Geometry:
    """The extent in the valley's CRS."""
    to_xy = fc.Transformer.from_crs("OGC:CRS84", fc.CRS, always_xy=True)
    shapes = [shapely.geometry.shape(f["geometry"]) for f in result["extent"]["features"]]
    return shapely.transform(shapely.union_all(shapes), lambda a: np.column_stack(
        to_xy.transform(a[:, 0], a[:, 1])))  # fmt: skip


def test_the_river_method_keeps_to_the_reach_a_flat_level_floods_downstream(
    api: httpx.Client,
) -> None:
    river = _ok(api, {"gauge": "G1", "level": LEVEL})
    assert river["method"] == "river" and river["gauge"] == "G1" and river["dem"] == "fl_dem"
    assert river["bed"] == pytest.approx(fc.BED_AT_GAUGE)
    # Columns 100 to 200 (500 m either side of the gauge), 3 rows either side of the river.
    assert river["area_m2"] == pytest.approx(606 * fc.CELL**2)
    west, south, east, north = _native(river).bounds
    assert (west, east) == pytest.approx((fc.X0 + 1000, fc.X0 + 2010))
    assert (north, south) == pytest.approx((fc.Y0 - 970, fc.Y0 - 1040))
    channel = shapely.box(*fc.xy(100.2, 0), *fc.xy(99.8, 299))  # inside the river row
    assert not _native(river).intersects(channel)
    assert all(f["properties"]["area_m2"] > 0 for f in river["extent"]["features"])
    flat = _ok(api, {"seed": {"type": "Point", "coordinates": fc.lonlat(100, 150)},
                     "level": LEVEL})  # fmt: skip
    assert flat["method"] == "level" and flat["gauge"] is None
    # A flat level at the gauge's water surface: every bank downstream lower than it.
    assert flat["area_m2"] > 10 * river["area_m2"]
    assert _native(flat).bounds[2] == pytest.approx(fc.X0 + fc.COLS * fc.CELL)


def test_a_basin_not_connected_to_the_water_stays_dry(api: httpx.Client) -> None:
    basin = fc.cells_polygon((71, 79), (141, 159))
    for inputs in ({"gauge": "G1", "level": LEVEL},
                   {"seed": fc.lonlat(100, 150), "level": 88.0}):  # fmt: skip
        result = _ok(api, inputs)
        assert result["area_m2"] > 0
        assert not _native(result).intersects(basin), inputs
    # Seeded in the basin, the basin alone floods.
    inside = _ok(api, {"seed": fc.lonlat(75, 150), "level": 88.0, "min_area_m2": 0})
    assert inside["area_m2"] == pytest.approx(11 * 21 * fc.CELL**2)


def test_what_the_extent_covers_by_district(api: httpx.Client) -> None:
    result = _ok(api, {"gauge": "G1", "level": LEVEL})
    listed = {a["collection"]: a for a in result["affected"]}
    assert set(listed) == {"fl_parcels", "fl_buildings"}  # the missing layer left out
    parcels = listed["fl_parcels"]
    assert parcels["title"] == "Parcels" and parcels["measure"] == "area_m2"
    assert {f["label"]: f["measure"] for f in parcels["features"]} == pytest.approx(
        fc.FLOODED_PARCELS
    )
    assert parcels["count"] == 3 and not parcels["truncated"]
    assert parcels["total"] == pytest.approx(sum(fc.FLOODED_PARCELS.values()))
    assert {f["id"]: f["district"] for f in parcels["features"]} == {
        "P075": "A", "P125": "A", "P175": "B"}  # fmt: skip
    buildings = {f["id"] for f in listed["fl_buildings"]["features"]}
    assert buildings == set(fc.FLOODED)
    people = {b.district: 0 for b in fc.BUILDINGS}
    for b in fc.BUILDINGS:
        people[b.district] += b.residents if b.name in fc.FLOODED else 0
    assert result["population"] == {
        "total": sum(people.values()),
        "by_district": [{"district": "A", "name": "甲区", "population": people["A"]},
                        {"district": "B", "name": "乙区", "population": people["B"]}],
    }  # fmt: skip


def test_the_extent_written_as_a_collection_replaces_the_gauge_s_polygons(
    api: httpx.Client, admin_auth: dict[str, str]
) -> None:
    target = "fl_extent_out"
    first = _ok(api, {"gauge": "G1", "level": LEVEL, "collection": target}, **admin_auth)
    assert first["collection"] == target
    seed = _ok(api, {"seed": fc.lonlat(75, 150), "level": 88.0, "collection": target},
               **admin_auth)  # fmt: skip
    assert seed["collection"] == target
    higher = _ok(api, {"gauge": "G1", "level": LEVEL + 0.6, "collection": target}, **admin_auth)
    assert higher["area_m2"] > first["area_m2"]
    items = api.get(f"/collections/{target}/items", params={"limit": 100},
                    headers=admin_auth).json()  # fmt: skip
    rows = [f["properties"] for f in items["features"]]
    gauge = [r for r in rows if r["gauge"] == "G1"]
    assert len(gauge) == len(higher["extent"]["features"])
    assert [r["level"] for r in gauge] == pytest.approx([LEVEL + 0.6] * len(gauge))
    assert {r["method"] for r in gauge} == {"river"}
    assert sum(r["area_m2"] for r in gauge) == pytest.approx(higher["area_m2"])
    assert all(r["computed_at"] for r in rows)
    assert [r["method"] for r in rows if r["gauge"] is None] == ["level"]  # the seed's, kept


@pytest.mark.parametrize(
    ("inputs", "status", "said"),
    [
        ({"gauge": "NO-SUCH", "level": 90.0}, 400, "no gauge 'NO-SUCH'"),
        ({"gauge": "G1", "level": "danger"}, 400, "has no 'danger' level"),
        ({"gauge": "G1"}, 400, "has no Water level reading"),
        ({"seed": [100.0, 10.0], "level": 90.0}, 400, "outside the DEM"),
        ({"seed": fc.lonlat(40, 150), "level": 90.0}, 400, "not above the ground at the seed"),
        ({"seed": fc.lonlat(100, 150)}, 400, "'level'"),
        ({"seed": fc.lonlat(100, 150), "gauge": "G1", "level": 90.0}, 400, "not both"),
        ({}, 400, "give 'gauge'"),
        ({"dem": "fl_rgb", "seed": fc.lonlat(100, 150), "level": 90.0}, 400,
         "not an elevation model"),
        ({"dem": "fl_parcels", "seed": fc.lonlat(100, 150), "level": 90.0}, 404, "fl_parcels"),
        ({"dem": "fl_no_such_dem", "seed": fc.lonlat(100, 150), "level": 90.0}, 404,
         "fl_no_such_dem"),
        ({"seed": fc.lonlat(100, 150), "level": 90.0, "close_roads": "yes"}, 400,
         "true or false"),
        ({"seed": fc.lonlat(100, 150), "level": 90.0, "close_roads": True}, 403,
         "closing roads is for the emergency department"),
    ],
)  # fmt: skip
def test_refusals(api: httpx.Client, inputs: dict[str, Any], status: int, said: str) -> None:
    answer = _run(api, inputs)
    assert answer.status_code == status, answer.text
    assert said in answer.json()["description"]
