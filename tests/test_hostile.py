"""A hostile-input corpus thrown at every HTTP entry point of the demo city's API.

Query parameters, request bodies, headers, paths, GPS receivers and uploads get input that
is oversized, truncated, of the wrong type, nested without end, not UTF-8, numbers that
overflow, NaN and infinities, path traversal, decompression and XML bombs. Each must be
answered with a 4xx whose message says what was wrong (an upload may be taken, 202, and
its job must then fail with such a message), never a 5xx; and after the whole corpus the
server is healthy: ready, serving, no 5xx counted in its metrics, no connection leaked.
(The file formats' own corpus is ``badinputs.py`` / ``test_ingest_bad.py``; the GPS
receivers' seeded junk streams are ``test_gps_fuzz.py``; the parsers' properties are
``test_properties_*.py``.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import morecantile
import pytest
from badinputs import b_kml_billion_laughs, b_kml_xxe, b_zip_bomb, b_zip_slip, b_zip_symlink_member
from prometheus_client.parser import text_string_to_metric_families
from support import LiveServer

ITEMS = "/collections/parcels/items"
IMAGERY_TILE = "{imagery_tile}"
"""A map tile inside the demo scenes (the fixture finds it)."""
TILE = "/collections/parcels/tiles/WebMercatorQuad"
DEEP = 100_000
"""Nesting depth of the deeply nested JSON bodies."""


@dataclass(frozen=True)
class Case:
    """One hostile request and what its answer must say."""

    name: str
    method: str
    path: str
    says: str = ""
    """A fragment the answer's message must contain (case-insensitive; "" for any)."""
    params: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    admin: bool = True


def _nested(depth: int, leaf: str = "0") -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


def _feature(coordinates: str) -> bytes:
    return (
        '{"type":"Feature","properties":{"code":"H1"},'
        f'"geometry":{{"type":"Point","coordinates":{coordinates}}}}}'
    ).encode()


GEOJSON = {"Content-Type": "application/geo+json"}
JSON = {"Content-Type": "application/json"}

CASES: tuple[Case, ...] = (
    # --- query parameters of the items API --------------------------------------------
    Case("bbox overflows", "GET", ITEMS, "bbox", {"bbox": "1e999,0,1,1"}),
    Case("bbox NaN", "GET", ITEMS, "bbox", {"bbox": "nan,0,1,1"}),
    Case("bbox infinity", "GET", ITEMS, "bbox", {"bbox": "-inf,-inf,inf,inf"}),
    Case("bbox words", "GET", ITEMS, "bbox", {"bbox": "west,south,east,north"}),
    Case("bbox 4,000 numbers", "GET", ITEMS, "bbox", {"bbox": ",".join(["1"] * 4000)}),
    Case("limit negative", "GET", ITEMS, "limit", {"limit": "-1"}),
    Case("limit text", "GET", ITEMS, "limit", {"limit": "ten"}),
    # (An offset past the end, however large, is an empty page, as OGC API - Features says.)
    Case("datetime garbage", "GET", ITEMS, "datetime", {"datetime": "2024-13-45T99:99"}),
    Case("datetime open both ends", "GET", ITEMS, "datetime", {"datetime": "../.."}),
    Case("datetime year 0", "GET", ITEMS, "datetime", {"datetime": "0000-01-01"}),
    Case("crs huge code", "GET", ITEMS, "crs", {"crs": "EPSG:" + "9" * 5000}),
    Case("crs a URL", "GET", ITEMS, "crs", {"crs": "http://evil.example/../../etc/passwd"}),
    Case("filter unbalanced", "GET", ITEMS, "", {"filter": "dlmc = 'a"}),
    Case("filter 10,000 parentheses", "GET", ITEMS, "", {"filter": "(" * 10_000 + "x"}),
    Case("filter NOT nested", "GET", ITEMS, "", {"filter": "NOT " * 5000 + "tbmj > 1"}),
    Case("filter unknown property", "GET", ITEMS, "nosuch", {"filter": "nosuch = 1"}),
    Case("filter NUL", "GET", ITEMS, "", {"filter": "dlmc = 'a\x00b'"}),
    Case("filter huge number", "GET", ITEMS, "", {"filter": "tbmj > 1" + "0" * 400}),
    Case("filter SQL", "GET", ITEMS, "", {"filter": "dlmc = ''; DROP TABLE layers.parcels; --'"}),
    Case("cql2-json not JSON", "GET", ITEMS, "", {"filter": "{", "filter-lang": "cql2-json"}),
    Case("cql2-json deep", "GET", ITEMS, "",
         {"filter": _nested(5000).decode(), "filter-lang": "cql2-json"}),
    Case("filter-lang unknown", "GET", ITEMS, "filter-lang",
         {"filter": "a=1", "filter-lang": "sql"}),
    Case("properties traversal", "GET", ITEMS, "property", {"properties": "../../etc/passwd"}),
    Case("sortby injection", "GET", ITEMS, "property", {"sortby": "dlmc;DROP TABLE x"}),
    Case("unknown parameter", "GET", ITEMS, "unknown", {"drop": "table"}),
    Case("as-of garbage", "GET", ITEMS, "as-of", {"as-of": "last year"}),
    Case("skipGeometry", "GET", ITEMS, "skipGeometry", {"skipGeometry": "maybe"}),
    Case("invalid UTF-8 query", "GET", ITEMS + "?filter=dlmc%20%3D%20%27%FF%FE%27", ""),
    Case("f unknown", "GET", ITEMS, "", {"f": "exe"}),
    Case("feature id words", "GET", ITEMS + "/one", "no feature"),
    Case("feature id 30 digits", "GET", ITEMS + "/" + "9" * 30, "no feature"),
    # --- tiles, imagery and coverages -------------------------------------------------
    Case("tile zoom 99", "GET", f"{TILE}/99/0/0", ""),
    Case("tile negative row", "GET", f"{TILE}/12/-1/5", ""),
    Case("tile words", "GET", f"{TILE}/z/y/x", ""),
    Case("tile matrix set traversal", "GET",
         "/collections/parcels/tiles/..%2F..%2Fetc%2Fpasswd/1/0/0", ""),
    Case("imagery expression code", "GET", IMAGERY_TILE,
         "expression", {"expression": "__import__('os').system('id')"}),
    Case("imagery rescale NaN", "GET", IMAGERY_TILE,
         "rescale", {"rescale": "nan,inf"}),
    Case("imagery colormap", "GET", IMAGERY_TILE,
         "colormap", {"colormap": "../../../etc/passwd"}),
    Case("coverage bbox overflow", "GET", "/collections/imagery/coverage", "bbox",
         {"bbox": "1e999,0,1,1"}),
    Case("coverage huge", "GET", "/collections/imagery/coverage", "",
         {"bbox": "-180,-90,180,90", "width": "1000000", "height": "1000000"}),
    # --- bodies ------------------------------------------------------------------------
    Case("feature not JSON", "POST", "/collections/hostile_edit/items", "JSON",
         content=b"{\"type\": \"Feature\", ", headers=GEOJSON),
    Case("feature invalid UTF-8", "POST", "/collections/hostile_edit/items", "",
         content=b'{"type":"Feature","properties":{"code":"\xff\xfe"},"geometry":null}',
         headers=GEOJSON),
    Case("feature nested 100,000", "POST", "/collections/hostile_edit/items", "",
         content=_nested(DEEP), headers=GEOJSON),
    Case("feature NaN coordinate", "POST", "/collections/hostile_edit/items", "",
         content=_feature("[NaN, 22.9]"), headers=GEOJSON),
    Case("feature Infinity", "POST", "/collections/hostile_edit/items", "",
         content=_feature("[Infinity, 22.9]"), headers=GEOJSON),
    Case("feature 1e400", "POST", "/collections/hostile_edit/items", "",
         content=_feature("[1e400, 22.9]"), headers=GEOJSON),
    Case("feature geometry type", "POST", "/collections/hostile_edit/items", "",
         content=b'{"type":"Feature","properties":{"code":"H2"},'
                 b'"geometry":{"type":"Sphere","coordinates":[1,2]}}', headers=GEOJSON),
    Case("feature wrong content type", "POST", "/collections/hostile_edit/items", "",
         content=_feature("[112.0, 22.9]"), headers={"Content-Type": "text/plain"}),
    Case("feature 40 MiB", "POST", "/collections/hostile_edit/items", "MiB",
         content=b" " * (40 * 2**20), headers=GEOJSON),
    Case("process nested", "POST", "/processes/buffer/execution", "",
         content=b'{"inputs":' + _nested(DEEP) + b"}", headers=JSON),
    Case("process NaN", "POST", "/processes/buffer/execution", "",
         content=b'{"inputs":{"collection":"districts","distance":NaN}}', headers=JSON),
    Case("process 1e400", "POST", "/processes/buffer/execution", "",
         content=b'{"inputs":{"collection":"districts","distance":1e400}}', headers=JSON),
    Case("process wrong types", "POST", "/processes/buffer/execution", "",
         content=b'{"inputs":{"collection":[1,2],"distance":{"a":1}}}', headers=JSON),
    Case("stac search nested", "POST", "/stac/search", "",
         content=b'{"intersects":' + _nested(DEEP) + b"}", headers=JSON),
    Case("stac search bbox NaN", "POST", "/stac/search", "",
         content=b'{"bbox":[NaN,0,1,1]}', headers=JSON),
    Case("stac limit overflow", "GET", "/stac/search", "", {"limit": "9" * 40}),
    Case("admin user nested", "POST", "/admin/users", "",
         content=b'{"username":' + _nested(DEEP) + b"}", headers=JSON),
    Case("admin user NUL", "POST", "/admin/users", "",
         content=b'{"username":"a\\u0000b","roles":["viewer"]}', headers=JSON),
    Case("sign-in huge", "POST", "/auth/token", "",
         content=b"username=" + b"a" * (2 * 2**20) + b"&password=x",
         headers={"Content-Type": "application/x-www-form-urlencoded"}, admin=False),
    Case("sign-in invalid UTF-8", "POST", "/auth/token", "",
         content=b"username=%FF%FE&password=%C0%80",
         headers={"Content-Type": "application/x-www-form-urlencoded"}, admin=False),
    # --- GPS receivers -------------------------------------------------------------------
    Case("osmand lat overflow", "GET", "/gps/osmand", "",
         {"id": "hostile-1", "lat": "1e400", "lon": "112", "timestamp": "1767225600"}),
    Case("osmand NaN", "GET", "/gps/osmand", "",
         {"id": "hostile-1", "lat": "nan", "lon": "nan", "timestamp": "1767225600"}),
    Case("osmand time 1e30", "GET", "/gps/osmand", "",
         {"id": "hostile-1", "lat": "22.9", "lon": "112", "timestamp": "1e30"}),
    Case("osmand id 20,000 chars", "GET", "/gps/osmand", "",
         {"id": "x" * 20_000, "lat": "22.9", "lon": "112", "timestamp": "1767225600"}),
    Case("owntracks nested", "POST", "/gps/owntracks", "", content=_nested(DEEP), headers=JSON),
    Case("owntracks not JSON", "POST", "/gps/owntracks", "", content=b"\xff\xfe\x00", headers=JSON),
    Case("batch nested", "POST", "/gps/batch", "",
         content=b'{"type":"FeatureCollection","features":' + _nested(DEEP) + b"}",
         headers=GEOJSON),
    Case("batch CSV garbage", "POST", "/gps/batch", "",
         content=b"\x00\x01\x02,,,\n" * 1000, headers={"Content-Type": "text/csv"}),
    Case("device id traversal", "POST", "/gps/devices", "",
         content=b'{"id":"../../etc/passwd","name":"x"}', headers=JSON),
    Case("webhook URL file", "POST", "/gps/webhooks", "",
         content=b'{"url":"file:///etc/passwd"}', headers=JSON),
    # --- headers and paths -------------------------------------------------------------------
    Case("bearer 100 KB", "GET", "/collections", "",
         headers={"Authorization": "Bearer " + "x" * 100_000}, admin=False),
    Case("bearer junk", "GET", "/collections", "not valid",
         headers={"Authorization": "Bearer not-a-token"}, admin=False),
    Case("API key Latin-1", "GET", "/collections", "",
         headers={"X-API-Key": "s3s_" + "\u00e9" * 10}, admin=False),
    Case("collection traversal", "GET", "/collections/..%2F..%2Fetc%2Fpasswd/items", ""),
    Case("collection 10,000 chars", "GET", "/collections/" + "c" * 10_000 + "/items", ""),
    Case("job id junk", "GET", "/ingest/jobs/'; DROP TABLE x; --", "does not exist"),
)  # fmt: skip


@pytest.fixture(scope="module")
def api(
    admin_auth: dict[str, str], demo_api: LiveServer, demo_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:  # fmt: skip
    """The demo's API, with an editable layer for the bodies of edits."""
    import geopandas as gpd  # noqa: PLC0415
    import shapely  # noqa: PLC0415

    from spatial.ingest.vector import VectorSource, ingest_vector  # noqa: PLC0415
    from spatial.settings import DatabaseSettings, Settings  # noqa: PLC0415

    path = tmp_path_factory.mktemp("hostile") / "edit.gpkg"
    gpd.GeoDataFrame(
        {"code": ["E1"]}, geometry=[shapely.box(112.0, 22.9, 112.001, 22.901)], crs="EPSG:4490"
    ).to_file(path)
    settings = Settings(database=DatabaseSettings(url=demo_url))  # type: ignore[arg-type]
    source = VectorSource(path=path, collection_id="hostile_edit", title="hostile_edit",
                          key="code", editable=True, public=True)  # fmt: skip
    ingest_vector(demo_url, source, settings)
    with httpx.Client(base_url=demo_api.url, timeout=120) as client:
        west, south, east, north = client.get("/collections/imagery").json()["extent"][
            "spatial"]["bbox"][0]  # fmt: skip
        at = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, 14)
        client.headers["x-imagery-tile"] = (
            f"/collections/imagery/map/tiles/WebMercatorQuad/{at.z}/{at.y}/{at.x}"
        )
        deadline = time.monotonic() + 15
        while client.get("/collections/hostile_edit", headers=admin_auth).status_code != 200:
            assert time.monotonic() < deadline, "the new layer never reached the server"
            time.sleep(0.2)
        yield client


def _scrape(api: httpx.Client, admin: dict[str, str]) -> dict[tuple[str, tuple], float]:
    text = api.get("/metrics", headers=admin).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _server_errors(samples: dict[tuple[str, tuple], float]) -> dict[str, float]:
    return {
        f"{dict(labels)['method']} {dict(labels)['route']} {dict(labels)['status']}": value
        for (name, labels), value in samples.items()
        if name == "spatial_http_requests_total" and dict(labels)["status"].startswith("5")
    }


def _send(api: httpx.Client, case: Case, admin: dict[str, str]) -> httpx.Response | None:
    """The answer, or None when the server closed the connection (uvicorn does that, unread,
    for a request line or headers past its limits; anything else without an answer is a
    problem)."""
    headers = {k: v.encode("latin-1") for k, v in
               {**(admin if case.admin else {}), **case.headers}.items()}  # fmt: skip
    try:
        path = case.path.replace(IMAGERY_TILE, api.headers["x-imagery-tile"])
        return api.request(case.method, path, params=case.params, content=case.content,
                           headers=headers)  # fmt: skip
    except httpx.TransportError:
        return None


def _problem(case: Case, answer: httpx.Response | None) -> str | None:
    """What is wrong with an answer, or None."""
    if answer is None:
        big = case.path if len(case.path) > 8000 else json.dumps(case.params or {})
        return None if len(big) + sum(map(len, case.headers.values())) > 8000 else "no answer"
    if not 400 <= answer.status_code < 500:
        return f"status {answer.status_code}: {answer.text[:200]}"
    try:
        message = str(answer.json().get("description") or answer.json().get("message") or "")
    except ValueError:
        message = answer.text
    if not message.strip():
        return f"status {answer.status_code} without a message"
    if case.says and case.says.lower() not in message.lower():
        return f"status {answer.status_code}, message lacks {case.says!r}: {message[:200]}"
    return None


def test_every_hostile_request_gets_a_4xx_that_says_why(
    api: httpx.Client, admin_auth: dict[str, str]
) -> None:
    before = _scrape(api, admin_auth)
    problems = {}
    for case in CASES:
        found = _problem(case, _send(api, case, admin_auth))
        if found:
            problems[case.name] = found
    assert not problems, "\n".join(f"{name}: {problem}" for name, problem in problems.items())
    assert _server_errors(_scrape(api, admin_auth)) == _server_errors(before)


UPLOADS: tuple[Callable[[Path], Path], ...] = (
    b_zip_bomb, b_zip_slip, b_zip_symlink_member, b_kml_billion_laughs, b_kml_xxe,
)  # fmt: skip


@pytest.mark.parametrize("build", UPLOADS, ids=[b.__name__.removeprefix("b_") for b in UPLOADS])
def test_hostile_uploads_fail_their_job_with_a_message(
    api: httpx.Client, admin_auth: dict[str, str], build: Callable[[Path], Path], tmp_path: Path
) -> None:
    path = build(tmp_path)
    with path.open("rb") as f:
        answer = api.post("/ingest/vector", headers=admin_auth, data={"collection": "hostile_up"},
                          files={"file": (path.name, f)})  # fmt: skip
    if answer.status_code != 202:
        assert 400 <= answer.status_code < 500 and answer.json()["description"], answer.text
        return
    job = answer.json()
    deadline = time.monotonic() + 120
    while job["state"] in {"queued", "running"}:
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.2)
        job = api.get(f"/ingest/jobs/{job['id']}", headers=admin_auth).json()
    assert job["state"] == "failed" and job["message"]
    assert "internal error" not in job["message"]


def test_an_upload_cannot_name_a_file_outside_its_folder(
    api: httpx.Client, admin_auth: dict[str, str], tmp_path: Path
) -> None:
    target = Path("/tmp/spatial-hostile-escape.geojson")
    target.unlink(missing_ok=True)
    body = b'{"type":"FeatureCollection","features":[]}'
    answer = api.post("/ingest/vector", headers=admin_auth, data={"collection": "hostile_up"},
                      files={"file": (f"../../../../../..{target}", body)})  # fmt: skip
    assert answer.status_code in {202, 400, 415}, answer.text
    if answer.status_code == 202:  # whatever its job reads, it reads it after its cleanup
        deadline = time.monotonic() + 60
        while api.get(answer.headers["location"], headers=admin_auth).json()["state"] in {
            "queued", "running"}:  # fmt: skip
            assert time.monotonic() < deadline, "the job never ended"
            time.sleep(0.1)
    assert not target.exists(), "an upload wrote outside the ingest folder"


def test_the_server_is_healthy_after_the_corpus(
    api: httpx.Client, admin_auth: dict[str, str]
) -> None:
    """Runs last in this module: ready, serving and no connection left over."""
    assert api.get("/health/ready").json()["status"] == "ok"
    page = api.get(ITEMS, params={"limit": 3})
    assert page.status_code == 200 and len(page.json()["features"]) == 3
    samples = _scrape(api, admin_auth)
    largest = samples[("spatial_db_pool_max", (("pool", "async"),))]
    in_use = samples[("spatial_db_pool_connections", (("pool", "async"), ("state", "in_use")))]
    assert in_use <= 1 < largest  # at most the scrape's own
    assert samples[("spatial_db_pool_waiting", (("pool", "async"),))] == 0
