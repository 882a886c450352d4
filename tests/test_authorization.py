"""The authorization matrix over real HTTP: every endpoint family x five callers (anonymous,
a viewer and an editor of department A, a viewer of B, an admin) x three collections (public,
A-restricted, A-row-filtered). Reads must hold exactly the allowed features, decoded from
each format; a collection a caller cannot read is a 404 everywhere and in no listing."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import mapbox_vector_tile
import morecantile
import psycopg
import pytest
import shapely
from support import TESTS, LiveServer

from api import create_app
from spatial import accounts
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import AuthSettings, Settings

PUBLIC, SECRET, FILTERED = "mx_public", "mx_secret", "mx_filtered"
COLLECTIONS = (PUBLIC, SECRET, FILTERED)
CALLERS = ("anonymous", "viewer_a", "editor_a", "viewer_b", "admin")
SUBSYSTEM = "planning"
TMS = morecantile.tms.get("WebMercatorQuad")
TILE = TMS.tile(112.1, 23.0, 14)
WEST, SOUTH, EAST, NORTH = TMS.bounds(TILE)
CODES = [f"F{i}" for i in range(6)] + [f"P{i}" for i in range(6)]
"""F: forest (the rows department A's filter leaves), P: farmland."""


def _cell(i: int) -> shapely.Polygon:
    x, y = WEST + 0.002 + (i % 4) * 0.0015, SOUTH + 0.002 + (i // 4) * 0.0015
    return shapely.box(x, y, x + 0.001, y + 0.001)


def _sees(caller: str, collection: str) -> set[str] | None:
    """The codes a caller may read in a collection (None: it does not exist for them)."""
    if collection == PUBLIC or caller == "admin":
        return set(CODES)
    if caller not in {"viewer_a", "editor_a"}:
        return None
    return set(CODES) if collection == SECRET else {c for c in CODES if c.startswith("F")}


def _may_write(caller: str, collection: str) -> bool:
    return caller == "admin" or (caller == "editor_a" and collection != PUBLIC)


@pytest.fixture(scope="module")
def callers(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three collections and a key per caller."""
    folder = tmp_path_factory.mktemp("matrix")
    gpd.GeoDataFrame(
        {"code": CODES, "use": ["forest"] * 6 + ["farm"] * 6},
        geometry=[_cell(i) for i in range(len(CODES))], crs="EPSG:4490",
    ).to_file(folder / "cells.gpkg")  # fmt: skip
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    for cid in COLLECTIONS:
        source = VectorSource(path=folder / "cells.gpkg", collection_id=cid, title=cid,
                              key="code", editable=True, subsystems=(SUBSYSTEM,),
                              public=cid == PUBLIC)  # fmt: skip
        ingest_vector(url, source, settings, actor="pytest")
    headers: dict[str, Any] = {"anonymous": {}}
    with engine(url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "mx_a", "Department A")
        accounts.add_department(conn, TESTS, "mx_b", "Department B")
        people = (("viewer_a", "viewer", "mx_a"), ("editor_a", "editor", "mx_a"),
                  ("viewer_b", "viewer", "mx_b"), ("admin", "admin", None))  # fmt: skip
        for name, role, dept in people:
            accounts.add_user(conn, TESTS, f"mx_{name}", roles=(role,), department=dept,
                              service=True)  # fmt: skip
            key = accounts.create_key(conn, TESTS, f"mx_{name}")
            headers[name] = {"X-API-Key": key}
        for cid, row_filter in ((SECRET, None), (FILTERED, "use = 'forest'")):
            accounts.add_grant(conn, TESTS, cid, "department:mx_a", "write", row_filter=row_filter)
    return headers


@pytest.fixture(scope="module")
def api(settings: Settings, callers: dict[str, Any]) -> Iterator[httpx.Client]:
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url,
                                                                timeout=60) as client:  # fmt: skip
        yield client


def _codes_of_items(response: httpx.Response) -> set[str]:
    return {f["properties"]["code"] for f in response.json()["features"]}


def _codes_of_tile(response: httpx.Response, layer: str) -> set[str]:
    if response.status_code == 204:
        return set()
    decoded = mapbox_vector_tile.decode(response.content)
    return {f["properties"]["code"] for f in decoded.get(layer, {}).get("features", [])}


@pytest.mark.parametrize("caller", CALLERS)
def test_reads_hold_exactly_what_the_caller_may_read(
    api: httpx.Client, callers: dict[str, Any], caller: str
) -> None:
    h = callers[caller]
    listed = {c["id"] for c in api.get("/collections", headers=h).json()["collections"]}
    records = api.get("/collections/catalog/items", params={"limit": 100}, headers=h).json()
    recorded = {r["id"] for r in records["features"]}
    subsystem = api.get(f"/maps/{SUBSYSTEM}/tiles/WebMercatorQuad/{TILE.z}/{TILE.y}/{TILE.x}",
                        headers=h)  # fmt: skip
    tilejson = api.get(f"/maps/{SUBSYSTEM}/tiles/WebMercatorQuad", params={"f": "tilejson"},
                       headers=h).json()  # fmt: skip
    layers = {v["id"] for v in tilejson["vector_layers"]}
    for cid in COLLECTIONS:
        allowed = _sees(caller, cid)
        where = f"{caller} on {cid}"
        assert (cid in listed) == (allowed is not None), where
        assert (cid in recorded) == (allowed is not None), where
        assert (cid in layers) == (allowed is not None), where
        pages = {
            "metadata": api.get(f"/collections/{cid}", headers=h),
            "items": api.get(f"/collections/{cid}/items", params={"limit": 100}, headers=h),
            "html": api.get(f"/collections/{cid}/items", params={"f": "html"}, headers=h),
            "csv": api.get(f"/collections/{cid}/items", params={"f": "csv", "limit": 100},
                           headers=h),
            "tile": api.get(f"/collections/{cid}/tiles/WebMercatorQuad/{TILE.z}/{TILE.y}/"
                            f"{TILE.x}", headers=h),
            "tilejson": api.get(f"/collections/{cid}/tiles/WebMercatorQuad",
                                params={"f": "tilejson"}, headers=h),
            "queryables": api.get(f"/collections/{cid}/queryables", headers=h),
            "editions": api.get(f"/collections/{cid}/editions", headers=h),
        }  # fmt: skip
        changes = api.get(f"/collections/{cid}/changes", headers=h)
        if allowed is None:
            pages["changes"] = changes
            for name, response in pages.items():
                assert response.status_code == 404, (where, name, response.text)
            assert cid not in _codes_of_tile(subsystem, cid)
            continue
        for name, response in pages.items():
            assert response.status_code in {200, 204}, (where, name, response.text)
        # The change list names features of every row: not for callers with some rows only.
        assert changes.status_code == (200 if allowed == set(CODES) else 403), where
        assert _codes_of_items(pages["items"]) == allowed, where
        assert pages["items"].json()["numberMatched"] == len(allowed), where
        rows = list(csv.DictReader(io.StringIO(pages["csv"].text)))
        assert {r["code"] for r in rows} == allowed, where
        assert _codes_of_tile(pages["tile"], cid) == allowed, where
        assert _codes_of_tile(subsystem, cid) == allowed, where
        hidden = sorted(set(CODES) - allowed)
        if hidden:  # a feature outside the caller's rows is not there, by id either
            fid = 1 + CODES.index(hidden[0])
            assert api.get(f"/collections/{cid}/items/{fid}", headers=h).status_code == 404
        summary = api.post("/processes/intersect-summarise/execution", headers=h, json={
            "inputs": {"collection": cid, "group_by": "use",
                       "geometry": shapely.geometry.mapping(shapely.box(WEST, SOUTH, EAST, NORTH))},
        })  # fmt: skip
        assert summary.status_code == 200, (where, summary.text)
        counts = {s["value"]: s["count"] for s in summary.json()["summary"]}
        assert sum(counts.values()) == len(allowed), where
        assert ("farm" in counts) == any(c.startswith("P") for c in allowed), where


def _feature(code: str, use: str, i: int) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"code": code, "use": use},
            "geometry": shapely.geometry.mapping(_cell(i))}  # fmt: skip


@pytest.mark.parametrize("caller", CALLERS)
def test_writes_need_the_grant_and_stay_in_its_rows(
    api: httpx.Client, callers: dict[str, Any], caller: str, database_url: str
) -> None:
    h = {**callers[caller], "Content-Type": "application/geo+json"}
    for n, cid in enumerate(COLLECTIONS):
        where = f"{caller} on {cid}"
        created = api.post(f"/collections/{cid}/items", headers=h,
                           json=_feature(f"N{caller}{n}", "forest", 12 + n))  # fmt: skip
        if _sees(caller, cid) is None:
            expected = 404
        elif caller == "anonymous":
            expected = 401
        else:
            expected = 201 if _may_write(caller, cid) else 403
        assert created.status_code == expected, (where, created.text)
        if expected != 201:
            continue
        location = created.headers["location"]
        # Editing a feature out of the rows one may write is refused, and changes nothing.
        moved = api.patch(location, headers=h, json={"type": "Feature",
                                                     "properties": {"use": "farm"}})  # fmt: skip
        outside = caller == "editor_a" and cid == FILTERED
        assert moved.status_code == (403 if outside else 200), (where, moved.text)
        assert api.delete(location, headers=callers[caller]).status_code == 204, where
    with psycopg.connect(database_url) as conn:
        audited = conn.execute(
            "SELECT DISTINCT actor FROM platform.audit_log WHERE action LIKE 'feature.%%' "
            "AND collection_id = ANY(%s)", (list(COLLECTIONS),),
        ).fetchall()  # fmt: skip
    if caller in {"editor_a", "admin"}:
        assert (f"mx_{caller}",) in audited


def test_every_edit_is_audited_with_user_address_and_features(
    api: httpx.Client, callers: dict[str, Any], database_url: str
) -> None:
    h = {**callers["editor_a"], "Content-Type": "application/geo+json"}
    created = api.post(f"/collections/{SECRET}/items", headers=h,
                       json=_feature("AUDIT1", "forest", 20))  # fmt: skip
    assert created.status_code == 201, created.text
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT actor, user_id, host(remote_addr), feature_ids, version_before, "
            "version_after FROM platform.audit_log WHERE action = 'feature.create' "
            "AND collection_id = %s ORDER BY id DESC LIMIT 1", (SECRET,),
        ).fetchone()  # fmt: skip
        user = conn.execute(
            "SELECT id FROM platform.users WHERE username = 'mx_editor_a'"
        ).fetchone()  # fmt: skip
    assert row is not None and user is not None
    assert row[:4] == ("mx_editor_a", user[0], "127.0.0.1", ["AUDIT1"])
    assert row[5] == row[4] + 1
    deleted = api.delete(created.headers["location"], headers=callers["editor_a"])
    assert deleted.status_code == 204


def test_uploads_need_a_steward_or_an_admin(
    api: httpx.Client, callers: dict[str, Any], tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "one.geojson"
    gpd.GeoDataFrame({"code": ["U1"]}, geometry=[_cell(0)], crs="EPSG:4490").to_file(path)
    for caller, expected in (("anonymous", 401), ("viewer_a", 403), ("editor_a", 403),
                             ("admin", 202)):  # fmt: skip
        with path.open("rb") as f:
            response = api.post("/ingest/vector", headers=callers[caller],
                                files={"file": (path.name, f)},
                                data={"collection": "mx_uploaded"})  # fmt: skip
        assert response.status_code == expected, (caller, response.text)
    job = response.json()
    deadline = time.monotonic() + 60
    while job["state"] not in {"succeeded", "failed"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
        job = api.get(f"/ingest/jobs/{job['id']}", headers=callers["admin"]).json()
    assert job["state"] == "succeeded", job
    # Someone else's job does not exist for them.
    assert api.get(f"/ingest/jobs/{job['id']}", headers=callers["viewer_a"]).status_code == 404
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT actor, user_id IS NOT NULL FROM platform.audit_log WHERE action = 'ingest' "
            "AND collection_id = 'mx_uploaded'"
        ).fetchone()
    assert row == ("mx_admin", True)


def test_bad_credentials_are_401_and_say_why(
    api: httpx.Client, callers: dict[str, Any], settings: Settings
) -> None:
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    with engine(url) as eng, eng.begin() as conn:
        revoked = accounts.create_key(conn, TESTS, "mx_viewer_a", name="revoked")
        accounts.revoke_key(conn, TESTS, revoked.split("_")[1])
    # The worker reloads its accounts on the notification; until then the key is unknown.
    deadline = time.monotonic() + 10
    bearer = {"Authorization": f"Bearer {revoked}"}
    while "revoked" not in (said := api.get("/collections", headers=bearer).text):
        assert time.monotonic() < deadline, f"the worker never learnt of the key: {said}"
        time.sleep(0.1)
    for headers, says in (
        ({"Authorization": "Bearer not.a.token"}, "not valid"),
        ({"Authorization": f"Bearer {revoked}"}, "revoked"),
        ({"X-API-Key": "s3s_00000000_" + "x" * 43}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "wrong user name or password"),
        ({"Authorization": "Basic !!"}, "Basic credentials are base64"),
        ({"Authorization": "Digest x"}, "Bearer"),
    ):
        response = api.get("/collections", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert says in response.json()["description"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_sign_in_tokens_and_brute_force(
    settings: Settings, callers: dict[str, Any], database_url: str
) -> None:
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    with engine(url) as eng, eng.begin() as conn:
        accounts.add_user(conn, TESTS, "mx_person", roles=("viewer",), department="mx_a",
                          password="a long enough password")  # fmt: skip
    strict = settings.model_copy(update={"auth": AuthSettings(failures=3, address_failures=50)})
    with LiveServer(create_app(strict)) as live, httpx.Client(base_url=live.url,
                                                              timeout=60) as client:  # fmt: skip
        right = {"username": "mx_person", "password": "a long enough password"}
        signed = client.post("/auth/token", data=right)
        assert signed.status_code == 200, signed.text
        token = signed.json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        me = client.get("/auth/me", headers=bearer).json()
        assert me["username"] == "mx_person" and me["collections"][FILTERED]["rows"] == "some"
        listed = {c["id"] for c in client.get("/collections", headers=bearer).json()["collections"]}
        assert {SECRET, FILTERED} <= listed
        for _ in range(3):
            wrong = client.post("/auth/token", data={"username": "mx_person", "password": "nope"})
            assert wrong.status_code == 401
            assert "wrong user name or password" in wrong.json()["description"]
        locked = client.post("/auth/token", data=right)
        assert locked.status_code == 429, locked.text
        assert 0 < int(locked.headers["retry-after"]) <= strict.auth.failure_window_s
        # Changing the password revokes the token.
        with engine(url) as eng, eng.begin() as conn:
            accounts.set_password(conn, TESTS, "mx_person", "another long password")
        deadline = time.monotonic() + 10
        while client.get("/auth/me", headers=bearer).status_code != 401:
            assert time.monotonic() < deadline, "the token still works"
            time.sleep(0.1)
    # Guessing keys from one address is limited too.
    keys = settings.model_copy(update={"auth": AuthSettings(address_failures=3)})
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM platform.auth_failures")
    with LiveServer(create_app(keys)) as live, httpx.Client(base_url=live.url,
                                                            timeout=60) as client:  # fmt: skip
        statuses = [client.get("/collections", headers={"X-API-Key": f"s3s_0000000{i}_" + "y" * 43})
                    .status_code for i in range(5)]  # fmt: skip
        assert statuses[:2] == [401, 401] and statuses[-1] == 429
        ok = client.get("/collections", headers=callers["admin"])
        assert ok.status_code == 200  # a valid key is never slowed down


def test_anonymous_access_can_be_switched_off(settings: Settings, callers: dict[str, Any]) -> None:
    closed = settings.model_copy(update={"auth": AuthSettings(anonymous=False)})
    with LiveServer(create_app(closed)) as live, httpx.Client(base_url=live.url,
                                                              timeout=60) as client:  # fmt: skip
        for path in ("/collections", f"/collections/{PUBLIC}/items", "/conformance"):
            assert client.get(path).status_code == 401, path
        assert client.get(f"/collections/{PUBLIC}/items", headers=callers["viewer_b"]).is_success
        # Signing in stays open.
        refused = client.post("/auth/token", data={"username": "nobody", "password": "x"})
        assert refused.status_code == 401


def test_a_caller_over_the_rate_is_429_with_retry_after(
    settings: Settings, callers: dict[str, Any]
) -> None:
    limited = settings.model_copy(update={"auth": AuthSettings(rate_per_minute=5)})
    with LiveServer(create_app(limited)) as live, httpx.Client(base_url=live.url,
                                                               timeout=60) as client:  # fmt: skip
        # The windows are calendar minutes: the burst must not cross one. Checked once the
        # server is up: on a busy machine, starting it can eat the whole margin.
        while 60 - time.time() % 60 < 5:
            time.sleep(0.1)
        statuses = [client.get("/conformance", headers=callers["viewer_a"]).status_code
                    for _ in range(7)]  # fmt: skip
        over = client.get("/conformance", headers=callers["viewer_a"])
        other = client.get("/conformance", headers=callers["viewer_b"])
    assert statuses[:5] == [200] * 5 and over.status_code == 429
    assert 0 < int(over.headers["retry-after"]) <= 60
    assert other.status_code == 200  # the limit is per caller


def test_security_headers(api: httpx.Client) -> None:
    page = api.get("/collections", params={"f": "html"})
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "https:" not in page.headers["content-security-policy"]  # nothing from elsewhere


def test_the_admin_api(api: httpx.Client, callers: dict[str, Any], settings: Settings) -> None:
    admin, viewer = callers["admin"], callers["viewer_a"]
    assert api.get("/admin/users").status_code == 401
    assert api.get("/admin/users", headers=viewer).status_code == 403
    made = api.post("/admin/users", headers=admin, json={
        "username": "mx_steward_a", "roles": ["steward"], "department": "mx_a", "service": True,
    })  # fmt: skip
    assert made.status_code == 201, made.text
    bad = api.post("/admin/users", headers=admin, json={"username": "mx_x", "roles": ["king"]})
    assert bad.status_code == 400 and "unknown role" in bad.json()["description"]
    key = api.post("/admin/users/mx_steward_a/keys", headers=admin, json={"name": "t"}).json()
    steward = {"X-API-Key": key["key"]}
    # The admin gives mx_secret to department A: its steward administers it now.
    given = api.patch(f"/admin/collections/{SECRET}", headers=admin, json={"department": "mx_a"})
    assert given.status_code == 200, given.text
    deadline = time.monotonic() + 10
    while (
        api.get("/admin/grants", params={"collection": SECRET}, headers=steward).status_code != 200
    ):
        assert time.monotonic() < deadline, "the steward never got to administer mx_secret"
        time.sleep(0.1)
    assert (
        api.get("/admin/grants", params={"collection": PUBLIC}, headers=steward).status_code == 403
    )
    # The steward shares it with department B, read only, forest rows only.
    granted = api.post("/admin/grants", headers=steward, json={
        "collection": SECRET, "grantee": "department:mx_b", "filter": "use = 'forest'",
    })  # fmt: skip
    assert granted.status_code == 201, granted.text
    deadline = time.monotonic() + 10
    while True:
        page = api.get(f"/collections/{SECRET}/items", headers=callers["viewer_b"])
        if page.status_code == 200:
            break
        assert time.monotonic() < deadline, "department B never saw the grant"
        time.sleep(0.1)
    assert _codes_of_items(page) == {c for c in CODES if c.startswith("F")}
    refused = api.post("/admin/grants", headers=steward, json={
        "collection": SECRET, "grantee": "department:mx_b", "filter": "nosuch = 1",
    })  # fmt: skip
    assert refused.status_code == 400 and "nosuch" in refused.json()["description"]
    revoked = api.delete(f"/admin/grants/{granted.json()['id']}", headers=steward)
    assert revoked.status_code == 200, revoked.text
    # Stewards read the audit log of what they administer; admins all of it.
    log = api.get("/admin/audit", headers=steward).json()["entries"]
    assert log and {e["collection_id"] for e in log} == {SECRET}
    assert {"grant.add", "grant.revoke"} <= {e["action"] for e in log}
    assert any(e["actor"] == "mx_steward_a" and e["address"] == "127.0.0.1" for e in log)
    everything = api.get("/admin/audit", headers=admin, params={"action": "user.add"}).json()
    assert any(e["details"]["user"] == "mx_steward_a" for e in everything["entries"])
    assert api.get("/admin/audit", headers=viewer).status_code == 403


class _Issuer:
    """An OpenID Connect issuer's key set, served on loopback."""

    def __init__(self) -> None:
        import json  # noqa: PLC0415
        import threading  # noqa: PLC0415
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

        import jwt  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, key: Any = None, **claims: Any) -> str:
        import jwt  # noqa: PLC0415

        now = int(time.time())
        body = {"iss": "https://sso.city.test", "aud": "spatial-platform", "iat": now,
                "exp": now + 300, "preferred_username": "mx_viewer_a", **claims}  # fmt: skip
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": "k1"})


def test_tokens_of_an_external_issuer(settings: Settings) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    issuer = _Issuer()
    auth = AuthSettings(oidc_issuer="https://sso.city.test", oidc_jwks_url=issuer.url,
                        oidc_audience="spatial-platform")  # fmt: skip
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        with LiveServer(create_app(settings.model_copy(update={"auth": auth}))) as live, \
                httpx.Client(base_url=live.url, timeout=60) as client:  # fmt: skip

            def me(token: str) -> httpx.Response:
                return client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})

            good = me(issuer.token())
            assert good.status_code == 200, good.text
            assert good.json()["username"] == "mx_viewer_a"
            assert FILTERED in good.json()["collections"]
            for token, says in (
                (issuer.token(aud="elsewhere"), "audience"),
                (issuer.token(exp=int(time.time()) - 10), "expired"),
                (issuer.token(key=other), "not valid"),
                (issuer.token(iss="https://evil.test"), "not valid"),
                (issuer.token(preferred_username="nobody"), "not an active user"),
            ):
                refused = me(token)
                assert refused.status_code == 401, (says, refused.text)
                assert says in refused.json()["description"]
    finally:
        issuer.server.shutdown()
        issuer.server.server_close()


def test_cors_for_the_configured_origins_only(settings: Settings) -> None:
    from spatial.settings import ServerSettings  # noqa: PLC0415

    server = ServerSettings(cors_origins=["https://maps.city.test"])
    with LiveServer(create_app(settings.model_copy(update={"server": server}))) as live, \
            httpx.Client(base_url=live.url, timeout=60) as client:  # fmt: skip
        ask = {"Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": "X-API-Key"}  # fmt: skip
        allowed = client.options("/collections", headers={"Origin": "https://maps.city.test",
                                                          **ask})  # fmt: skip
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://maps.city.test"
        assert "X-API-Key" in allowed.headers["access-control-allow-headers"]
        other = client.get("/collections", headers={"Origin": "https://elsewhere.test"})
        assert "access-control-allow-origin" not in other.headers


def test_request_bodies_are_limited(
    api: httpx.Client, callers: dict[str, Any], tmp_path: Path
) -> None:
    big_sign_in = api.post("/auth/token", data={"username": "x", "password": "y" * 100_000})
    assert big_sign_in.status_code == 413
    huge = b'{"id": "x", "name": "' + b"y" * (17 * 2**20) + b'"}'
    as_json = {**callers["admin"], "Content-Type": "application/json"}
    refused = api.post("/admin/departments", content=huge, headers=as_json)
    assert refused.status_code == 413
    # Uploads have their own, larger limit.
    junk = tmp_path / "big.geojson"
    junk.write_bytes(b'{"type":"FeatureCollection","features":[' + b" " * (17 * 2**20) + b"]}")
    with junk.open("rb") as f:
        form = {"files": {"file": (junk.name, f)}, "data": {"collection": "mx_big"}}
        upload = api.post("/ingest/vector", headers=callers["admin"], **form)
    assert upload.status_code != 413, upload.text
