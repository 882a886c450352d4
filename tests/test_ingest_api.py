"""The upload API over real HTTP: multipart upload, job progress and report, quarantine
download, editions and changes, limits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import psycopg
import pyogrio
import pytest
import shapely
from support import LiveServer

from api import create_app
from spatial.settings import IngestSettings, Settings


def _parcels(folder: Path, *, shift: float = 0.0, bowtie: bool = False) -> Path:
    cells = [
        shapely.box(500000 + i * 50, 2530000 + shift, 500050 + i * 50, 2530050 + shift)
        for i in range(6)
    ]
    if bowtie:
        cells[3] = shapely.Polygon(
            [(500150, 2530000), (500200, 2530050), (500200, 2530000), (500150, 2530050)]
        )
    frame = gpd.GeoDataFrame(
        {"dkbm": [f"4453{i:04d}" for i in range(6)], "dlmc": ["耕地", "林地"] * 3},
        geometry=cells,
        crs="EPSG:4546",
    )
    path = folder / "parcels.gpkg"
    pyogrio.write_dataframe(frame, path)
    return path


def _wait(client: httpx.Client, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(url).json()
        if job["state"] in {"succeeded", "failed"}:
            return job
        time.sleep(0.1)
    pytest.fail(f"job {url} did not finish")


def _upload(client: httpx.Client, path: Path, **form: str) -> httpx.Response:
    with path.open("rb") as f:
        return client.post(
            "/ingest/vector",
            files={"file": (path.name, f, "application/octet-stream")},
            data=form,
        )


def test_upload_runs_a_job_with_report_and_changes(
    live_api: LiveServer, admin_auth: dict[str, str], tmp_path: Path
) -> None:
    with httpx.Client(base_url=live_api.url, timeout=30, headers=admin_auth) as client:
        first = tmp_path / "a"
        first.mkdir()
        response = _upload(client, _parcels(first), collection="api_parcels", key="dkbm")
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["state"] in {"queued", "running", "succeeded"}
        assert response.headers["location"].endswith(f"/ingest/jobs/{job['id']}")
        done = _wait(client, response.headers["location"])
        assert done["state"] == "succeeded", done["message"]
        assert done["progress"] == 1.0
        report = done["report"]
        assert report["features_loaded"] == 6 and report["crs"] == "EPSG:4546"
        assert report["source"] == "parcels.gpkg" and report["edition"] == 1

        second = tmp_path / "b"
        second.mkdir()
        response = _upload(
            client, _parcels(second, shift=1.0), collection="api_parcels", key="dkbm"
        )
        done = _wait(client, response.headers["location"])
        assert done["state"] == "succeeded", done["message"]
        assert done["report"]["diff"]["geometry_changed"] == 6
        assert any(link["rel"] == "changes" for link in done["links"])

        editions = client.get("/collections/api_parcels/editions").json()
        assert [e["edition"] for e in editions["editions"]] == [1, 2]
        changes = client.get("/collections/api_parcels/changes", params={"from": 1, "to": 2}).json()
        assert changes["numberMatched"] == 6 and changes["counts"] == {"geometry": 6}
        assert {c["key"] for c in changes["changes"]} == {f"4453{i:04d}" for i in range(6)}
        page = client.get("/collections/api_parcels/changes", params={"limit": 4}).json()
        assert page["numberReturned"] == 4 and any(link["rel"] == "next" for link in page["links"])
        # The new collection is in the catalog the API serves.
        listed = client.get("/collections", params={"f": "json"}).json()
        assert "api_parcels" in [c["id"] for c in listed["collections"]]


def test_rejected_upload_reports_and_quarantine_downloads(
    live_api: LiveServer, admin_auth: dict[str, str], tmp_path: Path
) -> None:
    with httpx.Client(base_url=live_api.url, timeout=30, headers=admin_auth) as client:
        path = _parcels(tmp_path, bowtie=True)
        response = _upload(client, path, collection="api_bad", key="dkbm")
        done = _wait(client, response.headers["location"])
        assert done["state"] == "failed"
        assert "1 of 6 features have errors" in done["message"]
        assert done["report"]["counts"]["errors"] == {"invalid_geometry": 1}
        assert client.get("/collections/api_bad/editions").status_code == 404

        response = _upload(client, path, collection="api_bad", key="dkbm", on_invalid="quarantine")
        done = _wait(client, response.headers["location"])
        assert done["state"] == "succeeded" and done["report"]["features_quarantined"] == 1
        link = next(x["href"] for x in done["links"] if x["rel"] == "quarantine")
        download = client.get(link)
        assert download.headers["content-type"].startswith("application/geo+json")
        features = download.json()["features"]
        assert len(features) == 1
        props = features[0]["properties"]
        assert props["dkbm"] == "44530003" and props["_reasons"][0]["kind"] == "invalid_geometry"
        lon, lat = features[0]["geometry"]["coordinates"][0][0]
        assert 110.9 < lon < 111.1 and 22.8 < lat < 22.9  # served in lon/lat


def test_bad_requests_get_clear_errors(
    live_api: LiveServer, admin_auth: dict[str, str], tmp_path: Path
) -> None:
    with httpx.Client(base_url=live_api.url, timeout=30, headers=admin_auth) as client:
        path = _parcels(tmp_path)
        bad_id = _upload(client, path, collection="Bad-Id")
        assert bad_id.status_code == 400 and "collection id" in bad_id.json()["description"]
        subsystem = _upload(client, path, collection="ok", subsystem="sewers")
        assert subsystem.status_code == 400 and "sewers" in subsystem.json()["description"]
        missing = client.post("/ingest/vector", data={"collection": "x"})
        assert missing.status_code == 422
        policy = _upload(client, path, collection="x", on_invalid="ignore")
        assert policy.status_code == 422
        unknown = client.get("/ingest/jobs/00000000-0000-0000-0000-000000000000")
        assert unknown.status_code == 404 and unknown.json()["code"] == "NotFound"
        assert client.get("/ingest/jobs/not-a-uuid").status_code == 404
        assert client.get("/collections/nope/changes").status_code == 404


def test_an_upload_can_make_an_editable_collection(
    live_api: LiveServer, admin_auth: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    with httpx.Client(base_url=live_api.url, timeout=30, headers=admin_auth) as client:
        path = _parcels(tmp_path)
        keyless = _upload(client, path, collection="api_editable", editable="true")
        assert keyless.status_code == 400 and "needs a key" in keyless.json()["description"]
        response = _upload(client, path, collection="api_editable", key="dkbm", editable="true")
        assert _wait(client, response.headers["location"])["state"] == "succeeded"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT properties->'editable' FROM platform.collections WHERE id = 'api_editable'"
        ).fetchone()
    assert row == (True,)


def test_upload_size_limit(settings: Settings, admin_auth: dict[str, str], tmp_path: Path) -> None:
    small = settings.model_copy(update={"ingest": IngestSettings(max_upload_mb=1)})
    big = tmp_path / "big.geojson"
    big.write_bytes(b'{"type":"FeatureCollection","features":[' + b" " * (2 << 20) + b"]}")
    with (
        LiveServer(create_app(small)) as server,
        httpx.Client(base_url=server.url, timeout=30, headers=admin_auth) as client,
    ):
        response = _upload(client, big, collection="too_big")
    assert response.status_code == 413
    assert "larger than the limit of 1 MiB" in response.json()["description"]
