"""The analysts' client (``spatial.Client``) against the demo city on a live server.

Every method is called over HTTP on the running platform; results are checked against the
same requests made by hand and against GDAL's own reading of the OGC API (the issue's
must-show: the same GeoDataFrame from ``Client.read`` as from ``geopandas.read_file``).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from support import TESTS, LiveServer, free_port

from spatial import Client, accounts
from spatial.client import ServerUnreachableError
from spatial.client.errors import error_for
from spatial.db import engine
from spatial.errors import (
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    ServerError,
    StorageFullError,
    UnauthorizedError,
)

T = TypeVar("T")
BOX = (112.0, 22.88, 112.06, 22.94)
"""A part of the demo city (lon/lat) holding thousands of parcels."""
DEVICE = "YF-AMB-01"


def _eventually(probe: Callable[[], T], seconds: float = 15.0) -> T:
    """``probe()`` once it stops raising (the server follows catalog and access changes
    within seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return probe()
        except (AssertionError, NotFoundError, ForbiddenError, UnauthorizedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="module")
def token(admin_auth: dict[str, str]) -> str:
    """The admin's API key (made before the server starts)."""
    return admin_auth["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def base(token: str, demo_api: LiveServer) -> str:
    return demo_api.url


@pytest.fixture(scope="module")
def client(base: str) -> Iterator[Client]:
    """An anonymous client (the demo city is public)."""
    with Client(base, token="") as c:
        yield c


@pytest.fixture(scope="module")
def admin(base: str, token: str) -> Iterator[Client]:
    with Client(base, token=token) as c:
        yield c


@pytest.fixture(scope="module")
def raw(base: str) -> Iterator[httpx.Client]:
    """Plain HTTP, to compare the client's answers with."""
    with httpx.Client(base_url=base, timeout=60) as http:
        yield http


def _items(raw: httpx.Client, collection: str, **params: Any) -> dict[str, Any]:
    response = raw.get(f"/collections/{collection}/items", params={"f": "json", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- construction, catalog --------------------------------------------------------------


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPATIAL_URL", raising=False)
    monkeypatch.delenv("SPATIAL_TOKEN", raising=False)
    plain = Client()
    assert (plain.url, plain.token) == ("http://127.0.0.1:8000", None)
    assert "authorization" not in plain.http.headers
    monkeypatch.setenv("SPATIAL_URL", "http://example.invalid:9000/")
    monkeypatch.setenv("SPATIAL_TOKEN", "k-123")
    configured = Client()
    assert configured.url == "http://example.invalid:9000"
    assert configured.http.headers["authorization"] == "Bearer k-123"
    import spatial  # noqa: PLC0415

    assert spatial.Client is Client and "Client" in dir(spatial)


def test_collections_lists_the_demo_with_kinds(client: Client, raw: httpx.Client) -> None:
    table = client.collections()
    kinds = dict(zip(table["id"], table["kind"], strict=True))
    assert kinds["parcels"] == kinds["districts"] == "vector"
    assert kinds["imagery"] == "raster"
    assert kinds["gps_tracks"] == kinds["gps_positions"] == kinds["gps_events"] == "gps"
    assert table["id"].is_unique
    parcels = table.set_index("id").loc["parcels"]
    assert parcels["title"] == "宗地 Cadastral parcels"
    assert {"land", "planning"} <= set(parcels["subsystems"])
    assert parcels["feature_count"] == _items(raw, "parcels", limit=1)["numberMatched"]
    west, south, east, north = parcels["bbox"]
    assert 111 < west < east < 113 and 22 < south < north < 24
    rasters = client.collections("raster")
    assert {"imagery", "dem"} <= set(rasters["id"]) and set(rasters["kind"]) == {"raster"}
    assert set(client.collections("gps")["kind"]) == {"gps"}


def test_search_finds_collections_in_the_catalog(client: Client) -> None:
    found = client.search("flood")
    assert "flood_zones" in set(found["id"])
    assert client.search("flood", kind="raster").empty
    assert set(client.search(bbox=(0.0, 0.0, 1.0, 1.0))["id"]) == set()
    here = set(client.search(bbox=BOX, kind="vector")["id"])
    assert {"parcels", "districts"} <= here


def test_collection_document(client: Client) -> None:
    doc = client.collection("districts")
    assert doc["id"] == "districts"
    assert any(link["rel"] == "items" for link in doc["links"])


# --- read -------------------------------------------------------------------------------


def test_read_in_a_bbox_equals_the_items_request(client: Client, raw: httpx.Client) -> None:
    frame = client.read("parcels", bbox=BOX)
    page = _items(raw, "parcels", bbox=",".join(map(str, BOX)), limit=10_000)
    assert len(frame) == page["numberMatched"] == len(page["features"]) > 100
    assert list(frame["id"]) == [f["id"] for f in page["features"]]
    assert frame.crs.to_epsg() == 4326
    first = page["features"][0]
    row = frame.iloc[0]
    assert shapely.equals_exact(row.geometry, shapely.geometry.shape(first["geometry"]), 1e-9)
    for name, value in first["properties"].items():
        if name == "djrq":
            assert row[name] == pd.Timestamp(value)
        else:
            assert row[name] == value, name
    # Types as the layer has them.
    assert frame["id"].dtype == "int64"
    assert frame["tbmj"].dtype == "float64"
    assert pd.api.types.is_datetime64_any_dtype(frame["djrq"])
    assert pd.api.types.is_string_dtype(frame["dkbm"])
    assert list(frame.columns) == ["id", *first["properties"], "geometry"]


def test_read_with_a_filter_and_properties(client: Client) -> None:
    text = client.read("parcels", bbox=BOX, filter="dlmc = '水田' AND tbmj > 3600",
                       properties=["dkbm", "dlmc", "tbmj"])  # fmt: skip
    assert list(text.columns) == ["id", "dkbm", "dlmc", "tbmj", "geometry"]
    assert len(text) > 0
    assert set(text["dlmc"]) == {"水田"} and (text["tbmj"] > 3600).all()
    as_json = client.read("parcels", bbox=BOX, properties="dkbm,dlmc,tbmj", filter={
        "op": "and", "args": [{"op": "=", "args": [{"property": "dlmc"}, "水田"]},
                              {"op": ">", "args": [{"property": "tbmj"}, 3600]}]})  # fmt: skip
    pd.testing.assert_frame_equal(text, as_json)
    everything = client.read("parcels", bbox=BOX)
    assert len(everything) > len(text)
    assert client.read("parcels", bbox=BOX, sortby="-tbmj", limit=3)["tbmj"].tolist() == (
        everything["tbmj"].sort_values(ascending=False).head(3).tolist()
    )


def test_read_in_a_projected_crs(client: Client) -> None:
    lonlat = client.read("parcels", bbox=BOX, limit=50)
    projected = client.read("parcels", bbox=BOX, limit=50, crs="EPSG:4546")
    assert projected.crs.to_epsg() == 4546
    x, y = projected.geometry.iloc[0].representative_point().coords[0]
    assert 300_000 < x < 700_000 and 2_400_000 < y < 2_700_000  # easting, northing
    expected = lonlat.to_crs(4546)
    assert list(projected["id"]) == list(expected["id"])
    assert projected.geometry.geom_equals_exact(expected.geometry, tolerance=0.01).all()
    by_code = client.read("parcels", bbox=BOX, limit=50, crs=4546)
    assert by_code.geometry.geom_equals_exact(projected.geometry, tolerance=0).all()


def test_read_pages_through_every_feature_once(base: str, raw: httpx.Client) -> None:
    matched = _items(raw, "parcels", bbox=",".join(map(str, BOX)), limit=1)["numberMatched"]
    with Client(base, token="", page_size=1000) as small:
        frame = small.read("parcels", bbox=BOX)
        sorted_frame = small.read("parcels", bbox=BOX, sortby=["dkbm"])
        capped = small.read("parcels", bbox=BOX, limit=2500)
    assert len(frame) == matched > 3 * 1000
    assert frame["id"].is_unique and frame["id"].is_monotonic_increasing
    assert set(sorted_frame["id"]) == set(frame["id"]) and sorted_frame["dkbm"].is_unique
    assert sorted_frame["dkbm"].is_monotonic_increasing
    assert list(capped["id"]) == list(frame["id"][:2500])


def test_read_equals_gdal_reading_the_ogc_api(client: Client, base: str) -> None:
    """GDAL's OAPIF driver and its GeoJSON driver on the items URL give the frame
    ``Client.read`` gives: geometries and every attribute, column by column."""
    # GDAL runs in another process: pyogrio holds the GIL while GDAL waits on HTTP, which
    # would stall the server thread of this one.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as gdal:
        for collection, crs in (("districts", None), ("gps_events", None), ("water_gauges", 4490)):
            # GDAL reads in the storage CRS (CGCS2000 lon/lat for the gauges, axes swapped
            # on the wire): the client in the same CRS.
            theirs = gdal.submit(gpd.read_file, f"OAPIF:{base}", layer=collection)
            _same_frame(client.read(collection, crs=crs), theirs.result(timeout=120))
        url = f"{base}/collections/parcels/items?f=json&limit=10000&bbox={','.join(map(str, BOX))}"
        theirs = gdal.submit(gpd.read_file, url)
        _same_frame(client.read("parcels", bbox=BOX), theirs.result(timeout=120))


def _same_frame(ours: gpd.GeoDataFrame, theirs: gpd.GeoDataFrame) -> None:
    assert len(ours) == len(theirs) > 0
    assert ours.crs == theirs.crs
    assert ours.geometry.geom_equals_exact(theirs.geometry, tolerance=1e-9).all()
    columns = [c for c in theirs.columns if c not in {"geometry", "id"}]
    assert columns == [c for c in ours.columns if c not in {"geometry", "id"}]
    for name in columns:
        mine, gdal = ours[name], theirs[name]
        if pd.api.types.is_datetime64_any_dtype(gdal):
            mine, gdal = pd.to_datetime(mine, utc=True), pd.to_datetime(gdal, utc=True)
            assert (mine == gdal).all(), name
        elif pd.api.types.is_numeric_dtype(gdal):
            assert np.allclose(mine.to_numpy(float), gdal.to_numpy(float), equal_nan=True), name
        else:
            assert mine.tolist() == gdal.tolist(), name


# --- GPS --------------------------------------------------------------------------------


def test_tracks_positions_and_events_of_a_device(client: Client) -> None:
    tracks = client.tracks(DEVICE)
    assert len(tracks) >= 1 and set(tracks["device_id"]) == {DEVICE}
    assert set(tracks.geometry.geom_type) == {"LineString"}
    assert pd.api.types.is_datetime64_any_dtype(tracks["day"])
    assert str(tracks["time"].dt.tz) == "UTC"
    day = tracks["time"].iloc[0]
    positions = client.positions(DEVICE, start=day, end=day + dt.timedelta(hours=1))
    assert len(positions) > 10 and set(positions["device_id"]) == {DEVICE}
    assert positions["time"].is_monotonic_increasing
    assert positions["time"].min() >= day and positions["time"].max() <= day + pd.Timedelta("1h")
    assert set(positions.geometry.geom_type) == {"Point"}
    w, s, e, n = positions.total_bounds
    boxed = client.positions(DEVICE, start=day, end=day + dt.timedelta(hours=1),
                             bbox=(w, s, (w + e) / 2 + 1e-9, n))  # fmt: skip
    assert 0 < len(boxed) < len(positions)
    fleet = client.positions([DEVICE, "YF-FIRE-01"], start=day, end=day + dt.timedelta(hours=1))
    assert set(fleet["device_id"]) == {DEVICE, "YF-FIRE-01"}
    every = client.events()
    assert set(every["kind"]) <= {"enter", "exit", "dwell"} and len(every) > 0
    device, fence = every.iloc[0][["device_id", "fence"]]
    mine = client.events(device, fence=fence)
    assert len(mine) > 0 and set(mine["fence"]) == {fence} and set(mine["device_id"]) == {device}
    by_number = client.events(device, fence=int(every.iloc[0]["fence_id"]))
    assert list(by_number["id"]) == list(mine["id"])


def test_live_yields_a_fix_sent_now(admin: Client, client: Client, raw: httpx.Client) -> None:
    device = f"client-live-{secrets.token_hex(3)}"
    admin.request("POST", "/gps/devices", json={"id": device, "name": "Client probe"})
    lat = 22.91
    for stream_of in (admin, client):  # a token in the query; anonymous on the open demo
        got = None
        for _ in range(3):  # a fix stored before the stream subscribed is sent again
            lat += 0.0001
            time.sleep(1.1)  # one fix a second at most
            with stream_of.live(devices=device, timeout=5) as stream:
                sent = raw.get("/gps/osmand", params={
                    "id": device, "lat": f"{lat:.6f}", "lon": "112.03",
                    "timestamp": int(time.time())})  # fmt: skip
                assert sent.status_code == 200, sent.text
                got = next((m for m in stream if m["lat"] == pytest.approx(lat)), None)
            if got is not None:
                break
        assert got is not None, "no position came on the live stream"
        assert got["type"] == "position" and got["device"] == device
        assert got["lon"] == pytest.approx(112.03)
    with pytest.raises(InvalidInputError, match="wrong order"):
        client.live(bbox=(112.1, 22.0, 112.0, 23.0))


# --- processes --------------------------------------------------------------------------


def test_processes_run_sync_and_as_waited_jobs(admin: Client) -> None:
    listed = admin.processes()
    assert {"buffer", "zonal-statistics", "nearest"} <= set(listed["id"])
    out = admin.process("buffer", geometry=shapely.Point(112.05, 22.92), distance=100)
    circle = shapely.geometry.shape(out["geometry"])
    area = gpd.GeoSeries([circle], crs=4326).to_crs(4546).area.iloc[0]
    assert area == pytest.approx(np.pi * 100**2, rel=0.01)
    before = {j["jobID"] for j in admin.request("GET", "/jobs").json()["jobs"]}
    zonal = admin.process("zonal-statistics", raster="imagery", zones="districts",
                          stats=["mean", "count"], properties=["code"])  # fmt: skip
    assert len(zonal["zones"]) == 5
    assert all(-1 <= z["mean"] <= 1 and z["count"] > 0 for z in zonal["zones"])
    jobs = admin.request("GET", "/jobs").json()["jobs"]
    new = [j for j in jobs if j["jobID"] not in before]
    assert [(j["processID"], j["status"]) for j in new] == [("zonal-statistics", "successful")]
    forced = admin.process("buffer", asynchronous=True, geometry=shapely.Point(112.05, 22.92),
                           distance=100)  # fmt: skip
    assert forced == out
    with pytest.raises(InvalidInputError, match="from 0 to"):
        admin.process("buffer", geometry=shapely.Point(112, 23), distance=-1)
    with pytest.raises(NotFoundError, match="nosuch"):
        admin.process("nosuch")


# --- upload -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wells(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gpd.GeoDataFrame]:
    frame = gpd.GeoDataFrame(
        {"code": ["W1", "W2", "W3"], "depth": [12.5, 30.0, 7.25], "count": [1, 2, 3],
         "drilled": pd.to_datetime(["2019-04-01", "2021-11-30", "2024-02-29"]),
         "name": ["东井", "西井", "南井"]},
        geometry=[shapely.Point(112.01, 22.90), shapely.Point(112.02, 22.91),
                  shapely.Point(112.03, 22.92)],
        crs="EPSG:4326",
    )  # fmt: skip
    path = tmp_path_factory.mktemp("client-upload") / "wells.gpkg"
    frame.to_file(path)
    return path, frame


def test_upload_creates_a_readable_collection(
    admin: Client, client: Client, wells: tuple[Path, gpd.GeoDataFrame]
) -> None:
    path, frame = wells
    job = admin.upload(path, "client_wells", title="Client wells", key="code", public=True)
    assert job["state"] == "succeeded" and job["collection_id"] == "client_wells"
    back = _eventually(lambda: client.read("client_wells", sortby="code"))
    assert list(back["code"]) == ["W1", "W2", "W3"]
    assert back["depth"].tolist() == [12.5, 30.0, 7.25]
    assert back["count"].tolist() == [1, 2, 3] and back["count"].dtype == "int64"
    assert back["drilled"].dt.strftime("%Y-%m-%d").tolist() == [
        "2019-04-01", "2021-11-30", "2024-02-29"]  # fmt: skip
    assert back["name"].tolist() == ["东井", "西井", "南井"]
    assert back.geometry.geom_equals_exact(frame.geometry, tolerance=1e-9).all()
    assert "client_wells" in set(_eventually(lambda: _listed(client, "client_wells")))


def _listed(client: Client, collection: str) -> list[str]:
    ids = list(client.collections()["id"])
    assert collection in ids
    return ids


# --- past editions ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def history(
    admin: Client, demo_url: str, wells: tuple[Path, gpd.GeoDataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:  # fmt: skip
    """``client_history``: the wells valid from 2020, then an edition valid from 2025 (W2
    re-surveyed, W3 filled in, W4 drilled); a viewer granted only the rows but W1."""
    path, frame = wells
    admin.upload(path, "client_history", key="code", valid_from="2020-01-01T00:00:00Z")
    second = frame[frame["code"] != "W3"].copy()
    second.loc[second["code"] == "W2", "depth"] = 31.5
    second = pd.concat([second, gpd.GeoDataFrame(
        {"code": ["W4"], "depth": [18.0], "count": [4], "name": ["北井"],
         "drilled": pd.to_datetime(["2024-12-01"])},
        geometry=[shapely.Point(112.04, 22.93)], crs="EPSG:4326",
    )], ignore_index=True)  # fmt: skip
    later = tmp_path_factory.mktemp("client-history") / "wells_2025.gpkg"
    second.to_file(later)
    admin.upload(later, "client_history", key="code", valid_from="2025-01-01T00:00:00Z")
    with engine(demo_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "cl_hist", "Department cl_hist (client)")
        accounts.add_user(conn, TESTS, "cl_hist_viewer", roles=("viewer",), department="cl_hist",
                          service=True)  # fmt: skip
        accounts.add_grant(conn, TESTS, "client_history", "department:cl_hist", "read",
                           row_filter="code <> 'W1'")  # fmt: skip
        key = accounts.create_key(conn, TESTS, "cl_hist_viewer")
    return {"first": frame, "second": second, "viewer": key}


def test_read_as_of_a_past_edition(admin: Client, history: dict[str, Any]) -> None:
    then = _eventually(
        lambda: admin.read("client_history", as_of=dt.date(2022, 6, 1), sortby="code")
    )
    first = history["first"]
    assert list(then["code"]) == ["W1", "W2", "W3"]
    assert then["depth"].tolist() == first["depth"].tolist()
    assert then["name"].tolist() == first["name"].tolist()
    assert then.geometry.geom_equals_exact(first.geometry, tolerance=1e-9).all()
    # W1 is unchanged, so it is the current feature; the replaced versions have their own
    # (negative) ids.
    ids = dict(zip(then["code"], then["id"], strict=True))
    assert ids["W1"] > 0 and ids["W2"] < 0 and ids["W3"] < 0
    now = admin.read("client_history", sortby="code")
    assert list(now["code"]) == ["W1", "W2", "W4"] and now["depth"].tolist() == [12.5, 31.5, 18.0]
    assert dict(zip(now["code"], now["id"], strict=True))["W1"] == ids["W1"]
    later = admin.read("client_history", as_of=dt.datetime(2030, 1, 1), sortby="code")
    pd.testing.assert_frame_equal(later, now)
    # Filters, the CRS and paging apply to the edition.
    deep = admin.read("client_history", as_of="2024-12-31T23:59:59Z", filter="depth > 10", crs=4546)
    assert sorted(deep["code"]) == ["W1", "W2"] and deep.crs.to_epsg() == 4546
    assert sorted(deep["depth"]) == [12.5, 30.0]
    with Client(admin.url, token=admin.token, page_size=1) as small:
        assert list(small.read("client_history", as_of="2022-06-01")["id"]) == sorted(ids.values())


def test_as_of_keeps_to_a_viewers_rows(admin: Client, history: dict[str, Any]) -> None:
    with Client(admin.url, token=history["viewer"]) as viewer:
        then = _eventually(lambda: viewer.read("client_history", as_of="2022-06-01"))
        assert sorted(then["code"]) == ["W2", "W3"]
        assert sorted(viewer.read("client_history")["code"]) == ["W2", "W4"]


def test_as_of_equals_gdal_reading_the_items_url(
    admin: Client, history: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GDAL's GeoJSON driver on the items URL with ``as-of`` (signed, GDAL fetching it)."""
    monkeypatch.setenv("GDAL_HTTP_HEADERS", f"Authorization: Bearer {admin.token}")
    url = f"{admin.url}/collections/client_history/items?f=json&as-of=2022-06-01&sortby=code"
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as gdal:
        theirs = gdal.submit(pyogrio.read_dataframe, url).result(timeout=120)
    _same_frame(admin.read("client_history", as_of="2022-06-01", sortby="code"), theirs)


def test_as_of_before_the_first_edition_is_refused(admin: Client, history: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="before collection 'client_history' began"):
        admin.read("client_history", as_of=dt.date(2019, 1, 1))
    with pytest.raises(InvalidInputError, match="not an RFC 3339"):
        admin.read("client_history", as_of="last spring")


# --- errors -----------------------------------------------------------------------------


def test_unknown_collection_is_not_found(client: Client, raw: httpx.Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.read("nosuch")
    said = raw.get("/collections/nosuch/items").json()["description"]
    assert str(caught.value) == said and "'nosuch'" in said
    assert caught.value.status == 404  # type: ignore[attr-defined]
    assert "/collections/nosuch/items?" in caught.value.url  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError, match="'nosuch'"):
        client.collection("nosuch")
    with pytest.raises(NotFoundError, match="'nosuch'"):
        client.read("nosuch", bbox=BOX, filter="a = 1", crs=4546)


def test_malformed_cql2_carries_the_servers_message(client: Client, raw: httpx.Client) -> None:
    bad = "dlmc = = '耕地'"
    with pytest.raises(InvalidInputError) as caught:
        client.read("parcels", filter=bad)
    said = raw.get("/collections/parcels/items", params={"filter": bad}).json()["description"]
    assert str(caught.value) == said
    assert caught.value.status == 400  # type: ignore[attr-defined]
    with pytest.raises(InvalidInputError, match="no property"):
        client.read("parcels", filter="nosuch = 1")
    with pytest.raises(InvalidInputError, match="not served"):
        client.read("parcels", crs=2000)


@pytest.mark.parametrize(
    "bbox",
    [(112.1, 22.9, 112.0, 23.0), (112.0, 23.0, 112.1, 22.9), (112.0, 22.9, 112.1), ("a", 1, 2, 3)],
)
def test_a_bad_bbox_is_refused_before_sending(client: Client, bbox: Any) -> None:
    with pytest.raises(InvalidInputError, match="bbox"):
        client.read("parcels", bbox=bbox)


@pytest.fixture(scope="module")
def departments(admin: Client, demo_url: str, wells: tuple[Path, gpd.GeoDataFrame]) -> Any:
    """``client_secret`` (readable by department cl_a only) and API keys of viewers of
    cl_a and cl_b."""
    admin.upload(wells[0], "client_secret", title="Client secret", key="code")
    keys: dict[str, str] = {}
    with engine(demo_url) as eng, eng.begin() as conn:
        for dept in ("cl_a", "cl_b"):
            accounts.add_department(conn, TESTS, dept, f"Department {dept} (client)")
            accounts.add_user(conn, TESTS, f"{dept}_viewer", roles=("viewer",), department=dept,
                              service=True)  # fmt: skip
            keys[dept] = accounts.create_key(conn, TESTS, f"{dept}_viewer")
        accounts.add_grant(conn, TESTS, "client_secret", "department:cl_a", "read")
    return keys


def test_permissions_raise_typed_errors(
    base: str, client: Client, departments: dict[str, str], wells: tuple[Path, Any]
) -> None:
    with Client(base, token=departments["cl_a"]) as a, Client(base, token=departments["cl_b"]) as b:
        assert len(_eventually(lambda: a.read("client_secret"))) == 3
        with pytest.raises(NotFoundError, match="client_secret"):
            b.read("client_secret")  # a collection you may not read does not exist for you
        with pytest.raises(NotFoundError):
            client.read("client_secret")
        with pytest.raises(ForbiddenError, match="may not") as caught:
            b.upload(wells[0], "client_b_wells")
        assert caught.value.status == 403  # type: ignore[attr-defined]
    with pytest.raises(UnauthorizedError, match="key or a token") as anonymous:
        client.upload(wells[0], "client_anon_wells")
    assert anonymous.value.status == 401  # type: ignore[attr-defined]
    with pytest.raises(UnauthorizedError):
        client.request("POST", "/gps/devices", json={"id": "nobody"})


def test_a_closed_port_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout=5) as c, pytest.raises(ServerUnreachableError) as caught:
        c.collections()
    assert isinstance(caught.value, ServerError) and isinstance(caught.value, ConnectionError)
    assert url in str(caught.value) and caught.value.status is None  # type: ignore[attr-defined]


def test_map_and_the_options_the_server_lacks(client: Client, base: str) -> None:
    figure = client.map(["districts"], raster="imagery")
    html = figure.get_root().render()
    assert "Yuncheng Subdistrict" in html and "/collections/imagery/map/tiles/" in html
    with pytest.raises(NotFoundError, match="'nosuch'"):
        client.map(["districts", "nosuch"])
    with Client(base, token="", progress=True, page_size=5) as shown:
        assert len(shown.read("env_stations")) == 20  # a drawn bar changes nothing


def test_a_full_store_is_a_storage_full_error() -> None:
    """The server's 507 (a raster store without room: tests/test_faults.py) is typed."""
    request = httpx.Request("GET", "http://127.0.0.1/ingest/jobs/x")
    answer = httpx.Response(
        507, json={"code": "InsufficientStorage", "description": "the raster store is full"},
        request=request,
    )  # fmt: skip
    error = error_for(answer)
    assert isinstance(error, StorageFullError) and "store is full" in str(error)
    assert error.status == 507  # type: ignore[attr-defined]
