"""The imagery processes on the demo city over real HTTP: change detection against the
generator's record of changed parcels, zonal NDVI against numpy on the same pixels, water
extraction against the rivers, write-back as a collection, and refusals."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import rasterio
import rasterio.features
import shapely
from support import LiveServer

from spatial import samples
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.samples.rasters import ndvi
from spatial.settings import Settings

VEGETATED = ("01", "02", "03", "04")
BUILT_UP = ("05", "06", "07")
MAX_FALSE_POSITIVE_RATE = 0.02
"""Share of reported parcels the generator did not change (it records every change)."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rasterproc")
    samples.build(out)
    return out


@pytest.fixture(scope="module")
def api(
    live_api: LiveServer, settings: Settings, folder: Path, admin_auth: dict[str, str]
) -> Iterator[httpx.Client]:
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    for path, cid, key in (
        (folder / "parcels_2025.zip", "rp_parcels", "DKBM"),
        (folder / "districts.geojson", "rp_districts", "code"),
    ):
        ingest_vector(url, VectorSource(path, cid, cid, key=key, public=True), settings)
    scenes = (folder / "scene_2025.tif", folder / "scene_2026.tif")
    ingest_raster(url, RasterSource(scenes, "rp_imagery", public=True), settings)
    with httpx.Client(base_url=live_api.url, timeout=180) as client:
        deadline = time.monotonic() + 10
        while (
            client.get("/collections/rp_imagery/map/tiles").status_code != 200
            or client.get("/auth/me", headers=admin_auth).status_code != 200
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield client


def _run(api: httpx.Client, process: str, inputs: dict[str, Any], **headers: str) -> httpx.Response:
    return api.post(f"/processes/{process}/execution", json={"inputs": inputs}, headers=headers)


def test_change_detection_finds_the_parcels_the_generator_built_on(
    api: httpx.Client, folder: Path
) -> None:
    answer = _run(api, "change-detection", {
        "raster": "rp_imagery", "before": "scene_2025", "after": "scene_2026",
        "parcels": "rp_parcels", "properties": ["dkbm", "dlbm"],
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    result = answer.json()
    with (folder / "parcel_changes.csv").open(encoding="utf-8") as f:
        changes = list(csv.DictReader(f))
    built_on = {
        r["dkbm_2025"] for r in changes
        if r["kind"] == "reattributed" and r["dlbm_2025"].startswith(VEGETATED)
        and r["dlbm_2026"].startswith(BUILT_UP)
    }  # fmt: skip
    changed = {r["dkbm_2025"] for r in changes}
    found = {p["dkbm"] for p in result["parcels"]}
    assert len(built_on) == 397
    assert built_on <= found, f"missed {len(built_on - found)} parcels built on"
    false_positives = found - changed
    assert len(false_positives) / len(found) <= MAX_FALSE_POSITIVE_RATE
    # The rest are real changes on the ground: removed parcels (now bare road-like
    # ground) and other reattributions.
    assert {r["kind"] for r in changes if r["dkbm_2025"] in found - built_on} <= {
        "removed", "reattributed"
    }  # fmt: skip
    assert all(p["changed_share"] >= 0.25 for p in result["parcels"])
    assert result["changes"]["type"] == "FeatureCollection"
    assert sum(f["properties"]["area_m2"] for f in result["changes"]["features"]) == (
        pytest.approx(result["changed_area_m2"], rel=1e-6)
    )
    lon, lat = shapely.geometry.shape(result["changes"]["features"][0]["geometry"]).centroid.xy
    assert 111.9 < lon[0] < 112.1 and 22.8 < lat[0] < 23.0


def test_zonal_ndvi_per_district_matches_numpy(api: httpx.Client, folder: Path) -> None:
    answer = _run(api, "zonal-statistics", {
        "raster": "rp_imagery", "item": "scene_2025", "zones": "rp_districts",
        "expression": "(nir-red)/(nir+red)", "stats": ["mean", "count"], "properties": ["code"],
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    zones = {z["code"]: z for z in answer.json()["zones"]}
    assert len(zones) == 5
    import geopandas as gpd  # noqa: PLC0415

    districts = gpd.read_file(folder / "districts.geojson")
    with rasterio.open(folder / "scene_2025.tif") as src:
        red, nir = src.read(3).astype("float64"), src.read(4).astype("float64")
        districts = districts.to_crs(src.crs)
        for _, row in districts.iterrows():
            inside = rasterio.features.geometry_mask(
                [row.geometry], out_shape=red.shape, transform=src.transform, invert=True
            )
            expected = float(ndvi(red[inside], nir[inside]).mean())
            zone = zones[row["code"]]
            # exactextract weighs edge pixels by their covered fraction; pixel centres
            # differ only along the outline.
            assert zone["mean"] == pytest.approx(expected, abs=0.005)
            assert zone["count"] == pytest.approx(inside.sum(), rel=0.01)


def test_zonal_ndvi_of_a_drawn_polygon(api: httpx.Client) -> None:
    """A drawn polygon is the zone (the web maps' "NDVI inside a drawn area"), or picks
    the zones it meets."""
    districts = api.get("/collections/rp_districts/items", params={"limit": 10}).json()
    first = districts["features"][0]
    by_layer = _run(api, "zonal-statistics", {
        "raster": "rp_imagery", "item": "scene_2026", "zones": "rp_districts",
        "stats": ["mean", "count"], "properties": ["code"],
    }).json()["zones"]  # fmt: skip
    expected = next(z for z in by_layer if z["code"] == first["properties"]["code"])
    drawn = _run(api, "zonal-statistics", {
        "raster": "rp_imagery", "item": "scene_2026", "geometry": first["geometry"],
        "stats": ["mean", "count"],
    })  # fmt: skip
    assert drawn.status_code == 200, drawn.text
    [zone] = drawn.json()["zones"]
    assert -1 <= zone["mean"] <= 1
    # The same pixels, but the served outline is rounded (7 decimals).
    assert zone["mean"] == pytest.approx(expected["mean"], abs=1e-3)
    assert zone["count"] == pytest.approx(expected["count"], rel=1e-3)

    # With zones: only those the polygon meets (a small box inside the first district).
    inside = shapely.geometry.shape(first["geometry"]).representative_point().buffer(0.001, 1)
    met = _run(api, "zonal-statistics", {
        "raster": "rp_imagery", "zones": "rp_districts", "properties": ["code"],
        "geometry": shapely.geometry.mapping(inside),
    })  # fmt: skip
    assert met.status_code == 200, met.text
    assert [z["code"] for z in met.json()["zones"]] == [first["properties"]["code"]]

    for inputs, words in (
        ({"raster": "rp_imagery"}, "'zones'"),
        ({"raster": "rp_imagery", "geometry": {"type": "Point", "coordinates": [112, 22.9]}},
         "must be a polygon"),
        ({"raster": "rp_imagery", "geometry": {"type": "Polygon", "coordinates": [[[0, 0]]]}},
         "not a GeoJSON geometry"),
    ):  # fmt: skip
        refused = _run(api, "zonal-statistics", inputs)
        assert refused.status_code == 400, refused.text
        assert words in refused.json()["description"], refused.text


def test_water_extraction_follows_the_rivers(api: httpx.Client, admin_auth: dict[str, str]) -> None:
    inputs = {"raster": "rp_imagery", "min_area": 500, "output_collection": "rp_water"}
    answer = _run(api, "water-extraction", inputs, **admin_auth)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["item"] == "scene_2026"
    assert result["water_area_m2"] > 100_000
    assert result["collection"] == "rp_water"
    written = api.get(
        "/collections/rp_water/items", params={"limit": 1000}, headers=admin_auth
    ).json()
    assert len(written["features"]) == len(result["water"]["features"])
    rivers = api.get("/collections/rp_parcels/items", params={
        "filter": "dlbm = '1101'", "limit": 1000, "properties": "dlbm"}).json()  # fmt: skip
    river_cells = shapely.union_all(
        [shapely.geometry.shape(f["geometry"]) for f in rivers["features"]]
    )
    water = shapely.union_all(
        [shapely.geometry.shape(f["geometry"]) for f in result["water"]["features"]]
    )
    # Most of the river parcels are found as water, and most water is on them.
    assert water.intersection(river_cells).area / river_cells.area > 0.6
    assert water.intersection(river_cells.buffer(0.0005)).area / water.area > 0.6


def test_write_back_needs_a_steward_and_bad_inputs_are_refused(api: httpx.Client) -> None:
    anonymous = _run(api, "zonal-statistics", {"raster": "rp_imagery", "zones": "rp_districts",
                                               "output_collection": "rp_ndvi"})  # fmt: skip
    assert anonymous.status_code == 401
    for inputs, words in (
        ({"raster": "rp_imagery", "zones": "rp_districts", "expression": "nir-"}, "not valid"),
        ({"raster": "rp_imagery", "zones": "rp_districts", "stats": ["mode"]}, "stats"),
        ({"raster": "nope", "zones": "rp_districts"}, "nope"),
        ({"raster": "rp_districts", "zones": "rp_districts"}, "not imagery"),
        ({"raster": "rp_imagery", "zones": "rp_imagery"}, "not a vector layer"),
    ):
        answer = _run(api, "zonal-statistics", inputs)
        assert answer.status_code in {400, 404}, answer.text
        assert words in answer.json()["description"], answer.text
    same = _run(api, "change-detection", {"raster": "rp_imagery", "before": "scene_2026",
                                          "after": "scene_2026"})  # fmt: skip
    assert same.status_code == 400
    assert "two different scenes" in same.json()["description"]


def _same_document(single: Any, chunked: Any, exact: frozenset[str], key: str = "") -> None:
    """Equal documents; numbers equal within 1e-9 (relative) except those under ``exact``."""
    if isinstance(single, dict):
        assert isinstance(chunked, dict) and single.keys() == chunked.keys(), key
        for name in single:
            _same_document(single[name], chunked[name], exact, name)
    elif isinstance(single, list):
        assert isinstance(chunked, list) and len(single) == len(chunked), key
        for a, b in zip(single, chunked, strict=True):
            _same_document(a, b, exact, key)
    elif isinstance(single, float) and key not in exact:
        assert chunked == pytest.approx(single, rel=1e-9, abs=1e-12), key
    else:
        assert chunked == single, key


@pytest.mark.parametrize(
    ("process", "inputs"),
    [
        ("zonal-statistics", {"raster": "rp_imagery", "item": "scene_2025",
                              "zones": "rp_districts", "properties": ["code"],
                              "stats": ["count", "sum", "mean", "min", "max", "stdev"]}),
        ("zonal-statistics", {"raster": "rp_imagery", "item": "scene_2026",
                              "zones": "rp_districts", "properties": ["code"],
                              "stats": ["median", "majority", "count", "mean"]}),
        ("change-detection", {"raster": "rp_imagery", "before": "scene_2025",
                              "after": "scene_2026", "parcels": "rp_parcels",
                              "properties": ["dkbm", "dlbm"]}),
    ],
)  # fmt: skip
def test_the_raster_processes_answer_the_same_on_dask(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, process: str, inputs: dict[str, Any]
) -> None:
    """``"engine": "dask"`` (the server's LocalCluster; windows and partitions small, so
    that zones, blobs and parcels cross them) answers the single-process document."""
    from spatial import distributed  # noqa: PLC0415

    for name, value in (("WORKERS", "2"), ("CHUNK", "256"), ("PARTITION", "100")):
        monkeypatch.setenv(f"SPATIAL_DASK_{name}", value)
    ran: list[Any] = []
    run = distributed._run  # counts the tasks sent to the cluster

    def counted(tasks: Any, fn: Any, dask: Any) -> list[Any]:
        ran.append((len(tasks), dask is not None))
        return run(tasks, fn, dask)

    monkeypatch.setattr(distributed, "_run", counted)
    try:
        single, chunked = (_run(api, process, {**inputs, "engine": e}) for e in ("single", "dask"))
    finally:
        distributed.close()  # the server's cluster: not left to the other modules
    assert single.status_code == chunked.status_code == 200, chunked.text
    assert ran and all(on_dask for _, on_dask in ran) and max(n for n, _ in ran) > 1, ran
    exact = frozenset({"min", "max", "median", "majority", "changed_area_m2", "changed_share"})
    _same_document(single.json(), chunked.json(), exact)
    if process == "change-detection":
        assert chunked.json()["parcels"], "no parcel changed: the overlay was not exercised"
