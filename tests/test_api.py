"""The API on a real HTTP server: landing page, health, error bodies."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import httpx
import shapely
from pydantic import SecretStr
from support import LiveServer, create_database, drop_database

from api import create_app
from spatial.db import migrate
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import DatabaseSettings, Settings


def test_landing_page_json(live_api: LiveServer) -> None:
    resp = httpx.get(f"{live_api.url}/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["title"] == "3S spatial platform"
    rels = {link["rel"]: link["href"] for link in body["links"]}
    # pygeoapi's landing page: its links, plus the platform's health check.
    assert rels["service-desc"].endswith("/openapi")
    assert httpx.get(rels["service-desc"]).json()["openapi"].startswith("3.")
    assert httpx.get(rels["data"]).json()["collections"] is not None
    assert rels["status"].endswith("/health")
    # Links to what the platform does not serve yet are left out, not left dangling.
    for link in body["links"]:
        if link["rel"] != "about":
            assert httpx.get(link["href"]).status_code == 200, link


def test_landing_page_html_by_accept_and_by_f(live_api: LiveServer) -> None:
    by_accept = httpx.get(f"{live_api.url}/", headers={"Accept": "text/html,*/*"})
    assert by_accept.headers["content-type"].startswith("text/html")
    assert 'title="3S spatial platform"' in by_accept.text  # pygeoapi's landing page
    by_f = httpx.get(f"{live_api.url}/?f=html")
    assert by_f.text == by_accept.text
    bad = httpx.get(f"{live_api.url}/?f=pdf")
    assert bad.status_code == 400
    assert bad.json()["code"] == "InvalidParameterValue" and "f" in bad.json()["description"]


def test_health_reports_postgis(live_api: LiveServer) -> None:
    body = httpx.get(f"{live_api.url}/health").json()
    assert body["status"] == "ok"
    assert body["postgis"].startswith("3.")


def test_no_cdn_docs_pages(live_api: LiveServer) -> None:
    # Swagger/ReDoc pages pull scripts from a CDN; offline users get nothing from them.
    assert httpx.get(f"{live_api.url}/docs").status_code == 404
    assert httpx.get(f"{live_api.url}/redoc").status_code == 404


def test_a_database_that_goes_away_is_503_on_every_path(
    server_url: str, settings: Settings, tmp_path: Path
) -> None:
    url = create_database(server_url)
    try:
        migrate.upgrade(url)
        path = tmp_path / "points.geojson"
        gpd.GeoDataFrame(
            {"name": ["a"]}, geometry=[shapely.Point(112.1, 23.0)], crs="EPSG:4490"
        ).to_file(path)
        database = DatabaseSettings(url=SecretStr(url), pool_timeout_s=1)
        own = settings.model_copy(update={"database": database})
        source = VectorSource(path=path, collection_id="gone_points", title="p", public=True)
        ingest_vector(url, source, own)
        with LiveServer(create_app(own)) as live, httpx.Client(base_url=live.url) as client:
            items = "/collections/gone_points/items"
            assert client.get(items).status_code == 200
            drop_database(server_url, url)  # connections terminated, database gone
            for path_ in (items, f"{items}?f=html", f"{items}/1", "/health", "/jobs"):
                response = client.get(path_, timeout=30)
                assert response.status_code == 503, (path_, response.text)
                assert response.json()["code"] == "ServiceUnavailable"
            # What needs no database still answers.
            assert client.get("/conformance").status_code == 200
    finally:
        drop_database(server_url, url)
