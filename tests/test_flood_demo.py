"""Issue 27's "done when" on the demo city: the flood extent at gauge YF-SW-02's danger
level closes the roads it covers, and a route across the flooded land (issue 14's
``route`` process) goes around it, slower; the closure is lifted at the end.

The DEM is the demo's ``dem`` collection; a demo loaded without one gets a DEM built here
from the city's terrain (``floodcase.demo_dem``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import floodcase as fc
import httpx
import pytest
import shapely
from support import LiveServer, run_cli

from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import Settings

GAUGE = "YF-SW-02"


@pytest.fixture(scope="module")
def api(demo_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def dem(api: httpx.Client, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo's elevation collection, or one built from the city's terrain."""
    if api.get("/collections/dem").status_code == 200:
        return "dem"
    path = fc.demo_dem(tmp_path_factory.mktemp("flood-demo") / "demo_dem.tif")
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = RasterSource((path,), "fl_demo_dem", kind="elevation", public=True)
    ingest_raster(url, source, settings)
    return "fl_demo_dem"


def _flood(api: httpx.Client, dem: str, auth: dict[str, str], **more: Any) -> dict[str, Any]:
    inputs = {"dem": dem, "gauge": GAUGE, "level": "danger", **more}
    answer = api.post("/processes/flood-extent/execution", json={"inputs": inputs},
                      headers=auth)  # fmt: skip
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _route(api: httpx.Client, ends: Pair) -> dict[str, Any] | None:
    inputs = {"network": "roads", "from": list(ends[0]), "to": list(ends[1])}
    answer = api.post("/processes/route/execution", json={"inputs": inputs})
    if answer.status_code != 200:
        return None
    route: dict[str, Any] = answer.json()["route"]
    return route


Pair = tuple[tuple[float, float], tuple[float, float]]


def _crossings(api: httpx.Client, extent: shapely.Geometry) -> list[Pair]:
    """Pairs of points on the demo's roads either side of the water: the ends of the
    roads that cross the extent, outside it."""
    west, south, east, north = extent.bounds
    found = api.get("/collections/roads/items", params={
        "bbox": f"{west},{south},{east},{north}", "limit": 1000}).json()["features"]  # fmt: skip
    pairs = []
    for road in found:
        line = shapely.geometry.shape(road["geometry"])
        ends = [shapely.Point(line.coords[0]), shapely.Point(line.coords[-1])] if (
            line.geom_type == "LineString") else []  # fmt: skip
        if ends and line.crosses(extent) and not any(extent.buffer(2e-4).covers(p) for p in ends):
            pairs.append(((ends[0].x, ends[0].y), (ends[1].x, ends[1].y)))
    return pairs


def test_the_danger_flood_closes_its_roads_and_routes_go_around(
    api: httpx.Client, dem: str, admin_auth: dict[str, str]
) -> None:
    seen = _flood(api, dem, admin_auth)
    extent = shapely.union_all([shapely.geometry.shape(f["geometry"])
                                for f in seen["extent"]["features"]])  # fmt: skip
    assert seen["method"] == "river" and seen["area_m2"] > 0 and seen["closures"] == []
    roads = next(a for a in seen["affected"] if a["collection"] == "roads")
    assert roads["count"] > 0 and roads["measure"] == "length_m" and roads["total"] > 0
    before = {pair: _route(api, pair) for pair in _crossings(api, extent)[:6]}
    across = {p: r for p, r in before.items() if r is not None
              and shapely.geometry.shape(r["geometry"]).crosses(extent)}  # fmt: skip
    assert across, "no route across the flooded land to compare"
    closed = _flood(api, dem, admin_auth, close_roads=True, closure_hours=1)
    try:
        assert len(closed["closures"]) == 1 and GAUGE in closed["closures"][0]["reason"]
        listed = api.get("/network/closures", params={"network": "roads"}).json()["features"]
        assert closed["closures"][0]["id"] in [c["id"] for c in listed]
        around = {p: _route(api, p) for p in across}
        detours = {p: r for p, r in around.items() if r is not None}
        assert detours, "every route across the water is cut"
        inside = extent.buffer(-1e-6)
        for pair, route in detours.items():
            line = shapely.geometry.shape(route["geometry"])
            assert not line.intersects(inside), pair
            # Fastest before, so slower now (not always longer: a faster road may be longer).
            assert route["properties"]["seconds"] > across[pair]["properties"]["seconds"]
    finally:
        for made in closed["closures"]:
            gone = api.delete(f"/network/closures/{made['id']}", headers=admin_auth)
            assert gone.status_code == 200, gone.text


def test_the_command_line_floods_as_the_process(
    api: httpx.Client, dem: str, settings: Settings, demo_url: str, admin_auth: dict[str, str]
) -> None:
    said = _flood(api, dem, admin_auth)
    out = run_cli("flood", "run", "--gauge", GAUGE, "--level", "danger", "--dem", dem,
                  SPATIAL_DATABASE_URL=demo_url, SPATIAL_DATA_DIR=str(settings.data_dir),
                  SPATIAL_ENVIRONMENT="test")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"river method at {said['level']:.2f} m, gauge {GAUGE}" in out.stdout
    assert f"{said['area_m2'] / 1e4:,.1f} ha" in out.stdout
    assert f"residents: {said['population']['total']:,}" in out.stdout
