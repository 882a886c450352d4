"""OGC API - Processes over real HTTP: the four platform processes checked against the
same analysis done with geopandas on the source files; async jobs, dismissal, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pyogrio
import pytest
import shapely
from support import LiveServer

from api import create_app
from spatial import samples
from spatial.ingest import jobs
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

BOX = [112.03, 22.90, 112.06, 22.93]
"""A planning zone in lon/lat, over part of the demo cadastre."""


@pytest.fixture(scope="module")
def data(
    live_api: LiveServer, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, gpd.GeoDataFrame]:
    """The demo cadastre (EPSG:4546) and districts (EPSG:4326), ingested and as read."""
    folder = tmp_path_factory.mktemp("processes")
    samples.build(folder)
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    for path, cid, key in (
        (folder / "parcels_2025.zip", "proc_parcels", "DKBM"),
        (folder / "districts.geojson", "proc_districts", "code"),
    ):
        source = VectorSource(path=path, collection_id=cid, title=cid, key=key, public=True)
        ingest_vector(url, source, settings)
    parcels = pyogrio.read_dataframe(f"/vsizip/{folder}/parcels_2025.zip")
    districts = pyogrio.read_dataframe(folder / "districts.geojson")
    return {"parcels": parcels, "districts": districts}


@pytest.fixture(scope="module")
def api(live_api: LiveServer, data: dict[str, gpd.GeoDataFrame]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=120) as client:
        deadline = time.monotonic() + 10
        while client.get("/collections/proc_districts").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield client


def _run(api: httpx.Client, process: str, inputs: dict[str, Any], **headers: str) -> httpx.Response:
    return api.post(f"/processes/{process}/execution", json={"inputs": inputs}, headers=headers)


def test_the_process_list_and_descriptions(api: httpx.Client) -> None:
    ids = [p["id"] for p in api.get("/processes").json()["processes"]]
    assert ids == [
        "buffer", "intersect-summarise", "area-by-zone", "nearest", "route", "service-area",
        "closest-facility",
        "zonal-statistics", "change-detection", "flood-extent", "slope", "aspect",
        "water-extraction",
    ]  # fmt: skip
    described = api.get("/processes/nearest").json()
    assert {"collection", "point", "k", "max_distance"} == set(described["inputs"])
    assert (
        "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"
        in api.get("/conformance").json()["conformsTo"]
    )


def test_intersect_summarise_matches_geopandas(
    api: httpx.Client, data: dict[str, gpd.GeoDataFrame]
) -> None:
    zone = shapely.box(*BOX)
    response = _run(api, "intersect-summarise", {
        "collection": "proc_parcels", "group_by": "dlmc",
        "geometry": shapely.geometry.mapping(zone),
    })  # fmt: skip
    assert response.status_code == 200, response.text
    got = {r["value"]: (r["count"], r["area_m2"]) for r in response.json()["summary"]}
    # The same in Python: the zone's corners to the cadastre's CRS, clip, measure.
    local = gpd.GeoSeries([zone], crs=4326).to_crs(4546).iloc[0]
    parcels = data["parcels"]
    hit = parcels[parcels.intersects(local)]
    areas = hit.geometry.intersection(local).area.groupby(hit["DLMC"]).sum()
    counts = hit.groupby("DLMC").size()
    assert set(got) == set(areas.index) and len(got) > 1
    for use, (count, area) in got.items():
        assert count == counts[use]
        assert area == pytest.approx(areas[use], rel=1e-6)


def test_area_by_zone_matches_geopandas(
    api: httpx.Client, data: dict[str, gpd.GeoDataFrame]
) -> None:
    response = _run(api, "area-by-zone", {
        "collection": "proc_parcels", "zones": "proc_districts", "zone_property": "name",
    })  # fmt: skip
    assert response.status_code == 200, response.text
    got = {z["zone"]: z["area_m2"] for z in response.json()["zones"]}
    districts = data["districts"].to_crs(4546)
    expected = gpd.overlay(data["parcels"], districts[["name", "geometry"]], how="intersection")
    want = expected.geometry.area.groupby(expected["name"]).sum()
    assert set(got) == set(want.index)
    for name, area in got.items():
        assert area == pytest.approx(want[name], rel=1e-3)


def test_nearest_features(api: httpx.Client, data: dict[str, gpd.GeoDataFrame]) -> None:
    parcels = data["parcels"]
    target = parcels.geometry.iloc[500].centroid
    lon, lat = gpd.GeoSeries([target], crs=4546).to_crs(4326).iloc[0].coords[0]
    response = _run(api, "nearest", {"collection": "proc_parcels", "point": [lon, lat], "k": 7})
    assert response.status_code == 200, response.text
    found = response.json()["features"]
    assert len(found) == 7 and found[0]["properties"]["dkbm"] == parcels["DKBM"].iloc[500]
    assert found[0]["distance_m"] == 0.0
    nearest = parcels.geometry.distance(target).nsmallest(7).index
    assert {f["properties"]["dkbm"] for f in found} == set(parcels.loc[nearest, "DKBM"])
    distances = [f["distance_m"] for f in found]
    assert distances == sorted(distances)
    near = _run(api, "nearest", {
        "collection": "proc_parcels", "point": [lon, lat], "k": 50, "max_distance": 30,
    }).json()["features"]  # fmt: skip
    assert near and all(f["distance_m"] <= 30 for f in near)
    assert len(near) == int((parcels.geometry.distance(target) <= 30).sum())


def test_buffer_is_a_circle_of_the_distance(api: httpx.Client) -> None:
    response = _run(api, "buffer", {
        "geometry": {"type": "Point", "coordinates": [112.05, 22.92]}, "distance": 100,
    })  # fmt: skip
    assert response.status_code == 200, response.text
    circle = shapely.geometry.shape(response.json()["geometry"])
    area = gpd.GeoSeries([circle], crs=4326).to_crs(4546).area.iloc[0]
    assert area == pytest.approx(np.pi * 100**2, rel=0.01)


def test_async_job_results_and_dismissal(api: httpx.Client) -> None:
    inputs = {"collection": "proc_parcels", "group_by": "dlmc",
              "geometry": shapely.geometry.mapping(shapely.box(*BOX))}  # fmt: skip
    accepted = _run(api, "intersect-summarise", inputs, Prefer="respond-async")
    assert accepted.status_code == 201, accepted.text
    location = accepted.headers["location"]
    assert accepted.json()["status"] in {"accepted", "running", "successful"}
    deadline = time.monotonic() + 30
    while (status := api.get(location).json())["status"] != "successful":
        assert status["status"] in {"accepted", "running"}, status
        assert time.monotonic() < deadline
        time.sleep(0.1)
    results = api.get(f"{location}/results").json()
    assert results == _run(api, "intersect-summarise", inputs).json()
    assert status["jobID"] in [j["jobID"] for j in api.get("/jobs").json()["jobs"]]
    dismissed = api.delete(location)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert api.get(f"{location}/results").status_code == 404


def test_a_failing_async_job_says_why(api: httpx.Client) -> None:
    accepted = _run(api, "nearest", {"collection": "nosuch", "point": [112, 23]},
                    Prefer="respond-async")  # fmt: skip
    location = accepted.headers["location"]
    deadline = time.monotonic() + 30
    while (status := api.get(location).json())["status"] in {"accepted", "running"}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["status"] == "failed" and "nosuch" in status["message"]


@pytest.mark.parametrize(
    ("process", "body", "status", "says"),
    [
        ("nosuch", {"inputs": {}}, 404, "does not exist"),
        ("buffer", {"inputs": {"distance": 5}}, 400, "'geometry' is required"),
        ("buffer", {"inputs": {"geometry": {"type": "Point", "coordinates": [1]}, "distance": 5}},
         400, "not a GeoJSON geometry"),
        ("buffer", {"inputs": {"geometry": {"type": "Point", "coordinates": [500000, 2530000]},
                               "distance": 5}}, 400, "lon/lat"),
        ("buffer", {"inputs": {"geometry": {"type": "Point", "coordinates": [112, 23]},
                               "distance": -1}}, 400, "from 0 to"),
        ("nearest", {"inputs": {"collection": "nosuch", "point": [112, 23]}}, 404, "nosuch"),
        ("nearest", {"inputs": {"collection": "proc_parcels", "point": [112, 23], "k": 1000}},
         400, "'k'"),
        ("nearest", {"inputs": {"collection": "proc_parcels", "point": "here"}}, 400, "[lon, lat]"),
        ("intersect-summarise", {"inputs": {
            "collection": "proc_parcels", "group_by": "x; DROP",
            "geometry": {"type": "Point", "coordinates": [112, 23]}}}, 400, "has no property"),
        ("area-by-zone", {"inputs": {"collection": "proc_parcels", "zones": "proc_districts",
                                     "zone_property": "name\"); --"}}, 400, "has no property"),
        ("buffer", {"nothing": 1}, 400, '{"inputs"'),
    ],
)  # fmt: skip
def test_bad_execution_requests(
    api: httpx.Client, process: str, body: dict[str, Any], status: int, says: str
) -> None:
    response = api.post(f"/processes/{process}/execution", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["description"]


def test_execution_needs_json(api: httpx.Client) -> None:
    response = api.post(
        "/processes/buffer/execution", content=b"inputs", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415


def test_jobs_of_a_stopped_worker_are_marked_failed(
    settings: Settings, database_url: str, admin_auth: dict[str, str]
) -> None:
    """A worker starting up fails the jobs nobody runs any more, not those another runs."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        orphan, alive = (
            conn.execute(
                "INSERT INTO platform.ingest_jobs (kind, source, state, created_by) "
                "VALUES ('process', 'buffer', 'running', 'pytest') RETURNING id::text"
            ).fetchone()[0]  # type: ignore[index]
            for _ in range(2)
        )
        # Another worker runs ``alive``: it holds the job's lock.
        conn.execute(jobs.LOCK.format("pg_advisory_lock"), (alive,))
        with LiveServer(create_app(settings)) as server:
            state = {j: httpx.get(f"{server.url}/jobs/{j}", headers=admin_auth).json()
                     for j in (orphan, alive)}  # fmt: skip
    assert state[orphan]["status"] == "failed" and "interrupted" in state[orphan]["message"]
    assert state[alive]["status"] == "running"


def test_an_oversized_or_mistyped_execution_request_is_refused(api: httpx.Client) -> None:
    big = {"inputs": {"collection": "x" * (17 * 2**20)}}
    response = api.post("/processes/buffer/execution", json=big)
    assert response.status_code == 413 and "MiB" in response.json()["description"]
    typed = api.post(
        "/processes/buffer/execution", content=b"inputs=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert typed.status_code == 415 and "application/json" in typed.json()["description"]
