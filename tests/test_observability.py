"""Health probes and Prometheus metrics over real HTTP, on the demo city's API.

The metrics are parsed with prometheus_client's own parser, so what is checked is what a
Prometheus server would read; counts are compared before and after requests this module
makes (other modules share the server), and the database figures against the database.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import morecantile
import psycopg
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from support import LiveServer

from api import create_app
from spatial.db import migrate
from spatial.settings import AuthSettings, Settings

ITEMS_ROUTE = "/collections/{collection_id}/items"


@pytest.fixture(scope="module")
def api(admin_auth: dict[str, str], demo_api: LiveServer) -> Iterator[httpx.Client]:
    """The demo's API (the admin's key made before it starts, when this module starts it)."""
    with httpx.Client(base_url=demo_api.url, timeout=60) as client:
        yield client


def _scrape(api: httpx.Client, admin: dict[str, str]) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, by name and sorted labels."""
    answer = api.get("/metrics", headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_probes_say_live_and_ready(api: httpx.Client) -> None:
    assert api.get("/health/live").json() == {"status": "ok"}
    ready = api.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok" and body["schema"] == migrate.head()
    assert body["postgis"].startswith("3.") and body["pool"]["size"] >= 1
    assert api.get("/health").json()["schema"] == body["schema"]


def test_metrics_are_for_admins(api: httpx.Client, admin_auth: dict[str, str]) -> None:
    anonymous = api.get("/metrics")
    assert anonymous.status_code == 401 and "admin" in anonymous.json()["description"]
    assert api.get("/metrics", headers=admin_auth).status_code == 200


def test_requests_are_counted_and_timed_by_route(
    api: httpx.Client, admin_auth: dict[str, str]
) -> None:
    before = _scrape(api, admin_auth)
    for _ in range(7):
        assert api.get("/collections/districts/items", params={"limit": 2}).status_code == 200
    for path in ("/no/such/path/1", "/no/such/path/2", "/collections/nosuch/items"):
        assert api.get(path).status_code == 404
    after = _scrape(api, admin_auth)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    ok = {"method": "GET", "route": ITEMS_ROUTE}
    assert grew("spatial_http_requests_total", **ok, status="200") == 7
    assert grew("spatial_http_request_duration_seconds_count", **ok) >= 7
    assert grew("spatial_http_request_duration_seconds_sum", **ok) > 0
    # Unknown paths share one series; an unknown collection is its route's 404.
    assert grew("spatial_http_requests_total", method="GET", route="unmatched", status="404") == 2
    assert grew("spatial_http_requests_total", **ok, status="404") == 1
    assert not any("/no/such" in str(labels) for _, labels in after)
    # The scrape before this one was counted under its own route.
    assert grew("spatial_http_requests_total", method="GET", route="/metrics", status="200") >= 1


def test_tile_cache_hits_and_misses(api: httpx.Client, admin_auth: dict[str, str]) -> None:
    west, south, east, north = api.get("/collections/parcels").json()["extent"]["spatial"]["bbox"][
        0
    ]
    at = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, 14)
    tile = f"/collections/parcels/tiles/WebMercatorQuad/{at.z}/{at.y}/{at.x}"
    before = _scrape(api, admin_auth)
    first = api.get(tile, params={"properties": "dkbm,qlr"})  # a cache key of its own
    second = api.get(tile, params={"properties": "dkbm,qlr"})
    assert first.status_code == second.status_code == 200
    after = _scrape(api, admin_auth)
    hits = _value(after, "spatial_tile_cache_hits_total") - _value(
        before, "spatial_tile_cache_hits_total"
    )
    misses = _value(after, "spatial_tile_cache_misses_total") - _value(
        before, "spatial_tile_cache_misses_total"
    )
    assert hits >= 1 and misses >= 1


def test_database_figures_match_the_database(
    api: httpx.Client, admin_auth: dict[str, str], demo_url: str
) -> None:
    samples = _scrape(api, admin_auth)
    with psycopg.connect(demo_url) as conn:
        jobs = conn.execute(
            "SELECT kind, state, count(*) FROM platform.ingest_jobs GROUP BY 1, 2"
        ).fetchall()
        rejects = conn.execute("SELECT reason, sum(count) FROM gps.rejects GROUP BY 1").fetchall()
        alarms = conn.execute("SELECT subsystem, level, count(*) FROM sta.alarms "
                              "WHERE state = 'active' GROUP BY 1, 2").fetchall()  # fmt: skip
        sessions = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone()
    assert jobs and all(
        _value(samples, "spatial_ingest_jobs", kind=k, state=s) == n for k, s, n in jobs
    )
    assert _value(samples, "spatial_ingest_features_loaded_total", kind="vector") > 19_856
    for reason, count in rejects:
        assert _value(samples, "spatial_gps_rejects_total", reason=reason) == count
    assert alarms and all(  # the demo's sensors have alarms
        _value(samples, "spatial_alarms_active", subsystem=k, level=lv) == n for k, lv, n in alarms
    )
    assert _value(samples, "spatial_sta_observations_inserted_total") > 0
    assert _value(samples, "spatial_database_up") == 1
    assert sessions is not None and _value(samples, "spatial_db_connections") >= 1
    pool = {
        state: _value(samples, "spatial_db_pool_connections", pool="async", state=state)
        for state in ("in_use", "idle")
    }
    assert (
        1 <= pool["in_use"] + pool["idle"] <= _value(samples, "spatial_db_pool_max", pool="async")
    )
    assert _value(samples, "process_resident_memory_bytes") > 50 * 2**20


def test_probes_stay_open_when_anonymous_access_is_off(
    settings: Settings, admin_auth: dict[str, str]
) -> None:
    closed = settings.model_copy(update={"auth": AuthSettings(anonymous=False)})
    with (
        LiveServer(create_app(closed)) as live,
        httpx.Client(base_url=live.url, timeout=60) as client,
    ):
        for path in ("/health", "/health/live", "/health/ready"):
            assert client.get(path).status_code == 200, path
        # Every page's first load asks for the icon: it answers, to anyone (it holds no data).
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/")
        with Image.open(io.BytesIO(icon.content)) as image:
            assert image.format == "ICO" and image.size[0] >= 16
        assert client.get("/metrics").status_code == 401
        assert client.get("/collections").status_code == 401
        assert client.get("/metrics", headers=admin_auth).status_code == 200
