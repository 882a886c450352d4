"""The API on a real HTTP server: landing page, health, error bodies."""

from __future__ import annotations

import httpx
from support import LiveServer


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
