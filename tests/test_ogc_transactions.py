"""OGC API - Features Part 4 over real HTTP: create, read, replace, a stale update refused,
update, delete; every version in the history and the audit log; bad edits refused."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import httpx
import mapbox_vector_tile
import morecantile
import psycopg
import pyproj
import pytest
import shapely
from support import TESTS, LiveServer

from api import create_app
from spatial import accounts
from spatial.db import engine
from spatial.errors import InvalidInputError
from spatial.ingest import history
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

AUTH: dict[str, str] = {}
"""An editor's key (the fixture fills it): write granted on edit_parcels, read on the rest."""
GK = "http://www.opengis.net/def/crs/EPSG/0/4546"
ITEMS = "/collections/edit_parcels/items"


def _cell(i: int, size: float = 50) -> shapely.Polygon:
    return shapely.box(500000 + i * size, 2530000, 500000 + (i + 1) * size, 2530000 + size)


@pytest.fixture(scope="module")
def client(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server over an editable layer and a read-only one, and an editor's key."""
    folder = tmp_path_factory.mktemp("edits")
    frame = gpd.GeoDataFrame(
        {"code": ["A1", "A2", "A3"], "name": ["甲", "乙", "丙"], "area": [2500.0] * 3},
        geometry=[_cell(i) for i in range(3)],
        crs="EPSG:4546",
    )
    frame.to_file(folder / "parcels.gpkg")
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    for cid, editable in (("edit_parcels", True), ("edit_readonly", False)):
        source = VectorSource(
            path=folder / "parcels.gpkg", collection_id=cid, title=cid, key="code",
            editable=editable, public=True,
        )  # fmt: skip
        ingest_vector(url, source, settings, actor="pytest")
    with engine(url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "edits", "Editors of the edit tests")
        accounts.add_user(conn, TESTS, "edit_editor", roles=("editor",), department="edits",
                          service=True)  # fmt: skip
        for cid in ("edit_parcels", "edit_readonly"):
            accounts.add_grant(conn, TESTS, cid, "department:edits", "write")
        AUTH["Authorization"] = "Bearer " + accounts.create_key(conn, TESTS, "edit_editor")
    with (
        LiveServer(create_app(settings)) as live,
        httpx.Client(base_url=live.url, timeout=30) as http,
    ):
        yield http


def _feature(code: str, i: int, **props: Any) -> dict[str, Any]:
    # In EPSG:4546 axis order (northing, easting), as Content-Crs says.
    ring = [[y, x] for x, y in _cell(i).exterior.coords]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"code": code, **props},
    }


def _send(
    client: httpx.Client, method: str, path: str, body: Any, **headers: str
) -> httpx.Response:
    return client.request(
        method, path, json=body,
        headers={**AUTH, "Content-Crs": f"<{GK}>", "Content-Type": "application/geo+json",
                 **headers},
    )  # fmt: skip


def _rows(url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]  # type: ignore[arg-type]


def test_create_read_replace_stale_update_delete(client: httpx.Client, database_url: str) -> None:
    created = _send(client, "POST", ITEMS, _feature("B1", 5, name="新", area=2500.0))
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    fid = int(location.rsplit("/", 1)[1])
    assert fid == 4

    read = client.get(location, params={"crs": GK})
    assert read.status_code == 200
    first_etag = read.headers["etag"]
    assert first_etag == created.headers["etag"]
    assert read.json()["properties"] == {"code": "B1", "name": "新", "area": 2500.0}
    served = shapely.geometry.shape(read.json()["geometry"])
    assert shapely.transform(served, lambda yx: yx[:, ::-1]).equals(_cell(5))

    replaced = _send(
        client, "PUT", f"{ITEMS}/{fid}", _feature("B1", 6, name="换", area=2600.0),
        **{"If-Match": first_etag},
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    second_etag = replaced.headers["etag"]
    assert second_etag != first_etag

    stale = _send(
        client, "PATCH", f"{ITEMS}/{fid}", {"type": "Feature", "properties": {"name": "旧"}},
        **{"If-Match": first_etag},
    )  # fmt: skip
    assert stale.status_code == 412
    assert (
        stale.json()["code"] == "PreconditionFailed" and second_etag in stale.json()["description"]
    )
    assert client.get(location).json()["properties"]["name"] == "换"

    patched = _send(
        client, "PATCH", f"{ITEMS}/{fid}", {"type": "Feature", "properties": {"name": "改"}},
        **{"If-Match": second_etag},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    after = client.get(location).json()
    assert after["properties"] == {"code": "B1", "name": "改", "area": 2600.0}

    deleted = client.delete(location, headers={**AUTH, "If-Match": patched.headers["etag"]})
    assert deleted.status_code == 204
    assert client.get(location).status_code == 404

    # Every version is in the history, every change listed, every edit audited.
    versions = _rows(
        database_url,
        "SELECT edition_from, edition_to, properties->>'name' FROM platform.feature_history "
        "WHERE collection_id = 'edit_parcels' AND key = 'B1' ORDER BY edition_from",
    )
    assert [v[2] for v in versions] == ["新", "换", "改"]
    changes = _rows(
        database_url,
        "SELECT edition, change, fields FROM platform.feature_changes "
        "WHERE collection_id = 'edit_parcels' AND key = 'B1' ORDER BY edition",
    )
    assert [c[1] for c in changes] == ["added", "geometry+attributes", "attributes", "removed"]
    assert changes[2][2] == ["name"]
    audit = _rows(
        database_url,
        "SELECT action, feature_ids FROM platform.audit_log "
        "WHERE collection_id = 'edit_parcels' AND action LIKE 'feature.%%' ORDER BY id",
    )
    assert audit == [
        ("feature.create", ["B1"]),
        ("feature.replace", ["B1"]),
        ("feature.update", ["B1"]),
        ("feature.delete", ["B1"]),
    ]
    # Each version can be read back as of its edition, through the items API.
    valid = {
        e["edition"]: e["valid_from"]
        for e in client.get("/collections/edit_parcels/editions").json()["editions"]
    }
    for edition, name in ((changes[0][0], "新"), (changes[1][0], "换"), (changes[2][0], "改")):
        page = client.get(ITEMS, params={"as-of": valid[edition], "limit": 100}).json()
        named = {f["properties"]["code"]: f["properties"]["name"] for f in page["features"]}
        assert named == {"A1": "甲", "A2": "乙", "A3": "丙", "B1": name}
        assert page["numberMatched"] == 4
    final = client.get(ITEMS, params={"as-of": valid[changes[3][0]]}).json()
    assert "B1" not in {f["properties"]["code"] for f in final["features"]}


def test_as_of_serves_past_versions_with_their_own_ids(client: httpx.Client) -> None:
    """The edits of the test above: B1 was created, replaced, updated and deleted."""
    editions = client.get("/collections/edit_parcels/editions").json()["editions"]
    created = editions[1]["valid_from"]  # edition 1 is the import of A1..A3
    page = client.get(ITEMS, params={"as-of": created, "filter": "code = 'B1'", "crs": GK}).json()
    (b1,) = page["features"]
    assert b1["id"] < 0 and b1["properties"] == {"code": "B1", "name": "新", "area": 2500.0}
    served = shapely.geometry.shape(b1["geometry"])
    assert shapely.transform(served, lambda yx: yx[:, ::-1]).equals(_cell(5))
    assert page["numberMatched"] == 1
    # The past version has its own page, and only as of its time.
    one = client.get(f"{ITEMS}/{b1['id']}", params={"as-of": created})
    assert one.status_code == 200 and one.json()["properties"]["name"] == "新"
    assert client.get(f"{ITEMS}/{b1['id']}").status_code == 404
    page_html = client.get(f"{ITEMS}/{b1['id']}", params={"as-of": created, "f": "html"})
    assert page_html.status_code == 200 and "新" in page_html.text
    # Unchanged features keep their ids; paging and sorting work on the past edition.
    paged = client.get(ITEMS, params={"as-of": created, "limit": 2}).json()
    ids = [f["id"] for f in paged["features"]]
    nxt = next(link["href"] for link in paged["links"] if link["rel"] == "next")
    assert "as-of=" in nxt
    rest = client.get(nxt).json()
    assert sorted(ids + [f["id"] for f in rest["features"]]) == sorted([b1["id"], 1, 2, 3])
    ordered = client.get(ITEMS, params={"as-of": created, "sortby": "-code"}).json()
    assert [f["properties"]["code"] for f in ordered["features"]] == ["B1", "A3", "A2", "A1"]
    # The same edition as a file and as pygeoapi's HTML page.
    csv = client.get(ITEMS, params={"as-of": created, "f": "csv"})
    assert csv.status_code == 200 and "新" in csv.text
    html = client.get(ITEMS, params={"as-of": created, "f": "html"})
    assert html.status_code == 200 and "新" in html.text
    # A time after the last edit is the layer as it is, B1 gone.
    now = client.get(ITEMS, params={"as-of": "2999-01-01"}).json()
    assert {f["properties"]["code"] for f in now["features"]} == {"A1", "A2", "A3"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "not an RFC 3339"),
        ("2026-13-01", "not an RFC 3339"),
        ("1999-01-01T00:00:00Z", "before collection 'edit_parcels' began"),
    ],
)
def test_a_bad_as_of_is_refused(client: httpx.Client, value: str, message: str) -> None:
    answer = client.get(ITEMS, params={"as-of": value})
    assert answer.status_code == 400 and message in answer.json()["description"]


def test_a_layer_without_editions_has_no_as_of(database_url: str) -> None:
    """GPS views keep no editions (the items route asks the same query)."""
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(history.EDITION_AT, {"cid": "gps_positions", "when": when}).fetchone()
    with pytest.raises(InvalidInputError, match="'gps_positions' keeps no editions"):
        history.past_edition("gps_positions", when, row)


def test_the_catalog_follows_edits(client: httpx.Client, database_url: str) -> None:
    def settles_at(count: int, failure: str) -> None:
        deadline = time.monotonic() + 10
        while client.get(ITEMS).json()["numberMatched"] != count:
            assert time.monotonic() < deadline, failure
            time.sleep(0.1)

    # The earlier tests' edits first reach the worker's catalog (they notify it too).
    before = _rows(database_url, "SELECT count(*) FROM layers.edit_parcels")[0][0]
    settles_at(before, "the catalog never caught up with the earlier edits")
    created = _send(client, "POST", ITEMS, _feature("C1", 9))
    assert created.status_code == 201
    settles_at(before + 1, "the item count did not follow the edit")
    client.delete(created.headers["location"], headers=AUTH)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "says"),
    [
        ("POST", ITEMS, _feature("D1", 12), {"Authorization": ""}, 401, "Bearer"),
        ("POST", ITEMS, _feature("D1", 12), {"Authorization": "Bearer nope"}, 401, "not valid"),
        ("POST", "/collections/edit_readonly/items", _feature("D1", 12), {}, 400, "not editable"),
        ("POST", "/collections/nosuch/items", _feature("D1", 12), {}, 404, "does not exist"),
        ("POST", ITEMS, _feature("A1", 12), {}, 409, "already used"),
        ("POST", ITEMS, {"type": "Feature", "properties": {"code": "D2"}}, {}, 400, "geometry"),
        ("POST", ITEMS, _feature("D3", 12, nosuch=1), {}, 400, "has no property 'nosuch'"),
        ("POST", ITEMS, _feature("D4", 12, area="big"), {}, 400, "area"),
        ("POST", ITEMS, {"type": "FeatureCollection"}, {}, 400, "GeoJSON Feature"),
        ("POST", ITEMS, _feature("D5", 12), {"Content-Type": "text/plain"}, 415, "geo+json"),
        ("PUT", f"{ITEMS}/1", _feature("ZZ", 0), {}, 400, "cannot change"),
        ("PUT", f"{ITEMS}/999", _feature("A1", 0), {}, 404, "no feature 999"),
        ("DELETE", f"{ITEMS}/2", None, {"If-Match": '"stale"'}, 412, "changed since"),
    ],
)
def test_bad_edits_are_refused_and_change_nothing(  # noqa: PLR0917 - parametrized
    client: httpx.Client, method: str, path: str, body: Any, headers: dict[str, str],
    status: int, says: str, database_url: str,
) -> None:  # fmt: skip
    before = _rows(
        database_url, "SELECT fid, code, name, geom FROM layers.edit_parcels ORDER BY fid"
    )
    response = _send(client, method, path, body, **headers)
    assert response.status_code == status, response.text
    assert says in response.json()["description"]
    after = _rows(
        database_url, "SELECT fid, code, name, geom FROM layers.edit_parcels ORDER BY fid"
    )
    assert after == before


def test_point_into_a_polygon_layer_and_a_bowtie_are_refused(client: httpx.Client) -> None:
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]},
             "properties": {"code": "E1"}}  # fmt: skip
    response = _send(client, "POST", ITEMS, point)
    assert response.status_code == 400 and "does not fit" in response.json()["description"]
    bowtie = _feature("E2", 0)
    bowtie["geometry"]["coordinates"] = [
        [
            [2530000, 500000],
            [2530050, 500050],
            [2530000, 500050],
            [2530050, 500000],
            [2530000, 500000],
        ]
    ]
    response = _send(client, "POST", ITEMS, bowtie)
    assert response.status_code == 400 and "Self-intersection" in response.json()["description"]


def test_an_oversized_edit_is_413_and_writes_nothing(
    client: httpx.Client, database_url: str
) -> None:
    before = _rows(database_url, "SELECT count(*) FROM layers.edit_parcels")
    big = _feature("BIG", 9, name="x" * (17 * 2**20))  # over the 16 MiB default
    declared = _send(client, "POST", ITEMS, big)
    assert declared.status_code == 413 and "16 MiB" in declared.json()["description"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"type":"Feature","properties":{"name":"'
        for _ in range(17):
            yield b"x" * 2**20
        yield b'"},"geometry":null}'

    streamed = client.post(
        ITEMS, content=chunks(),
        headers={**AUTH, "Content-Type": "application/geo+json"},
    )  # fmt: skip
    assert streamed.status_code == 413 and streamed.json()["code"]
    wrong_type = client.post(ITEMS, content=b"<xml/>", headers={**AUTH, "Content-Type": "text/xml"})
    assert wrong_type.status_code == 415
    assert _rows(database_url, "SELECT count(*) FROM layers.edit_parcels") == before


def test_every_edit_left_an_audit_row_naming_the_user_and_the_feature(
    client: httpx.Client, database_url: str
) -> None:
    rows = _rows(
        database_url,
        "SELECT a.actor, u.username, a.feature_ids, a.remote_addr IS NOT NULL "
        "FROM platform.audit_log a LEFT JOIN platform.users u ON u.id = a.user_id "
        "WHERE a.collection_id = 'edit_parcels' AND a.action LIKE 'feature.%%'",
    )
    editions = _rows(
        database_url,
        "SELECT count(*) FROM platform.editions WHERE collection_id = 'edit_parcels' "
        "AND source = 'api'",
    )
    assert rows and len(rows) == editions[0][0]  # one row per edit
    for actor, username, keys, addressed in rows:
        assert actor == username == "edit_editor" and addressed
        assert keys and all(keys)


def test_a_feature_added_outside_the_extent_reaches_the_extent_and_the_tiles(
    client: httpx.Client,
) -> None:
    far = _send(client, "POST", ITEMS, _feature("FAR", 400, name="远", area=2500.0))  # 20 km east
    assert far.status_code == 201, far.text
    lon, lat = pyproj.Transformer.from_crs(4546, 4326, always_xy=True).transform(
        *_cell(400).centroid.coords[0]
    )
    deadline = time.monotonic() + 10
    while True:  # the catalog reload reaches the server
        west, south, east, north = client.get("/collections/edit_parcels").json()["extent"][
            "spatial"]["bbox"][0]  # fmt: skip
        if west <= lon <= east and south <= lat <= north:
            break
        assert time.monotonic() < deadline, "the extent never grew to the new feature"
        time.sleep(0.1)
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 15)
    answer = client.get(f"/collections/edit_parcels/tiles/WebMercatorQuad/15/{tile.y}/{tile.x}")
    assert answer.status_code == 200
    decoded = mapbox_vector_tile.decode(answer.content)["edit_parcels"]
    assert "FAR" in {f["properties"]["code"] for f in decoded["features"]}
