"""SensorThings writes over HTTP (``/sta/v1.1``): creates with deep insert and links,
PATCH (merge and JSON Patch), PUT, DELETE with its cascades, single Observations and the
DataArray batch with refusals counted by reason, who may write, and a hostile corpus of
bodies that are all refused with nothing written.

Departments ``sw_a`` (an editor, a viewer) and ``sw_b`` (an editor); the station
collection ``sw_stations`` (linked as Things) is sw_a's, granted for writing to sw_a and for
reading to sw_b.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from support import TESTS, LiveServer, until

from spatial import accounts
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings
from spatial.sta import things

OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
USERS = {"sw_a": ("sw_a", "editor"), "sw_a_viewer": ("sw_a", "viewer"), "sw_b": ("sw_b", "editor")}


def _at(hours: float) -> str:
    return (T0 + dt.timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def keys(database_url: str) -> dict[str, str]:
    with engine(database_url) as eng, eng.begin() as conn:
        for dept in ("sw_a", "sw_b"):
            accounts.add_department(conn, TESTS, dept, dept)
        made = {}
        for user, (dept, role) in USERS.items():
            accounts.add_user(conn, TESTS, user, roles=(role,), department=dept, service=True)
            made[user] = accounts.create_key(conn, TESTS, user, name="tests")
    return made


@pytest.fixture(scope="module")
def station(settings: Settings, keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory
            ) -> int:  # fmt: skip
    """The Thing of the one station of ``sw_stations`` (sw_a's; sw_b may read it)."""
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    path = tmp_path_factory.mktemp("sw") / "stations.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"station": "W1", "name": "west"},
        "geometry": {"type": "Point", "coordinates": [112.3, 22.7]}}]}))  # fmt: skip
    ingest_vector(url, VectorSource(path, "sw_stations", "Stations", key="station",
                                    editable=True, department="sw_a", public=False),
                  settings, actor="pytest")  # fmt: skip
    with engine(url) as eng, eng.begin() as conn:
        accounts.add_grant(conn, TESTS, "sw_stations", "department:sw_a", "write")
        accounts.add_grant(conn, TESTS, "sw_stations", "department:sw_b", "read")
    with psycopg.connect(url, autocommit=True) as conn:
        things.link(conn, "sw_stations", actor=TESTS)
        row = conn.execute("SELECT id FROM sta.things WHERE collection = 'sw_stations'").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def sta(live_api: LiveServer, admin_auth: dict[str, str], keys: dict[str, str],
        station: int) -> Iterator[dict[str, httpx.Client]]:  # fmt: skip
    base = f"{live_api.url}/sta/v1.1"
    clients = {"anonymous": httpx.Client(base_url=base, timeout=60),
               "admin": httpx.Client(base_url=base, timeout=60, headers=admin_auth),
               **{u: httpx.Client(base_url=base, timeout=60,
                                  headers={"Authorization": f"Bearer {k}"})
                  for u, k in keys.items()}}  # fmt: skip
    until(lambda: clients["sw_b"].get(f"Things({station})").status_code, lambda s: s == 200,
          "sw_b's key and grant on the server", seconds=15)  # fmt: skip
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def db(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _created(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    assert answer.headers["location"] == body["@iot.selfLink"]
    assert body["@iot.selfLink"].endswith(f"({body['@iot.id']})")
    return body


def _thing(name: str, lon: float = 112.1) -> dict[str, Any]:
    return {"name": name, "description": f"{name} station", "properties": {"river": "Pearl"},
            "Locations": [{"name": f"{name} site", "description": "on the bank",
                           "encodingType": "application/geo+json",
                           "location": {"type": "Point", "coordinates": [lon, 22.5]}}]}  # fmt: skip


def _stream(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"{name} readings",
            "observationType": OM + "OM_Measurement",
            "unitOfMeasurement": {"name": "metre", "symbol": "m",
                                  "definition": "http://qudt.org/vocab/unit/M"},
            "Sensor": {"name": f"{name} sensor", "description": "radar",
                       "encodingType": "text/html", "metadata": "https://example.org/radar"},
            "ObservedProperty": {"name": f"{name} level", "description": "water level",
                                 "definition": "https://example.org/level"}, **extra}  # fmt: skip


def _count(db: psycopg.Connection[Any]) -> dict[str, int]:
    """Rows of every SensorThings table."""
    tables = (
        "things",
        "locations",
        "things_locations",
        "historical_locations",
        "sensors",
        "observed_properties",
        "features",
        "datastreams",
        "observations",
        "latest",
    )
    query = sql.SQL("SELECT count(*) FROM {}")
    return {t: db.execute(query.format(sql.Identifier("sta", t))).fetchone()[0]  # type: ignore[index]
            for t in tables}  # fmt: skip


def _rejects(db: psycopg.Connection[Any], stream: int) -> dict[str, int]:
    rows = db.execute("SELECT reason, count FROM sta.rejects WHERE datastream_id = %s",
                      (stream,)).fetchall()  # fmt: skip
    return dict(rows)


def test_a_thing_with_its_location_and_a_historical_location(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw first")))
    assert thing["name"] == "sw first" and thing["properties"] == {"river": "Pearl"}
    located = sta["sw_a"].get(f"Things({thing['@iot.id']})/Locations").json()["value"]
    assert [loc["location"] for loc in located] == [{"type": "Point", "coordinates": [112.1, 22.5]}]
    history = sta["sw_a"].get(f"Things({thing['@iot.id']})/HistoricalLocations").json()
    assert len(history["value"]) == 1
    department = db.execute("SELECT department FROM sta.things WHERE id = %s",
                            (thing["@iot.id"],)).fetchone()  # fmt: skip
    assert department == ("sw_a",)
    audited = db.execute("SELECT actor, details FROM platform.audit_log WHERE action = "
                         "'sta-create' AND %s = ANY(feature_ids)",
                         (f"Things({thing['@iot.id']})",)).fetchall()  # fmt: skip
    assert audited == [("sw_a", {"entity": "Things", "id": thing["@iot.id"]})]
    assert sta["sw_b"].get(f"Things({thing['@iot.id']})").status_code == 404  # not sw_b's


def test_deep_insert_makes_everything_in_one_go(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    body = _thing("sw deep") | {"Datastreams": [_stream("sw deep", Observations=[
        {"phenomenonTime": _at(0), "result": 1.5},
        {"phenomenonTime": f"{_at(1)}/{_at(2)}", "result": 2.5, "resultTime": _at(2),
         "parameters": {"method": "radar"}}])]}  # fmt: skip
    thing = _created(sta["sw_a"].post("Things", json=body))
    got = (
        sta["sw_a"]
        .get(
            f"Things({thing['@iot.id']})/Datastreams",
            params={"$expand": "Sensor,ObservedProperty,Observations($orderby=phenomenonTime)"},
        )
        .json()
    )
    [stream] = got["value"]
    assert stream["Sensor"]["name"] == "sw deep sensor"
    assert stream["ObservedProperty"]["definition"] == "https://example.org/level"
    assert [o["result"] for o in stream["Observations"]] == [1.5, 2.5]
    assert stream["Observations"][1]["phenomenonTime"] == f"{_at(1)}/{_at(2)}"
    assert stream["Observations"][1]["parameters"] == {"method": "radar"}
    assert stream["phenomenonTime"] == f"{_at(0)}/{_at(2)}"
    assert stream["observedArea"] == {"type": "Point", "coordinates": [112.1, 22.5]}
    foi = db.execute("SELECT DISTINCT feature_id FROM sta.observations WHERE datastream_id = %s",
                     (stream["@iot.id"],)).fetchall()  # fmt: skip
    made = db.execute("SELECT f.id FROM sta.features f JOIN sta.things_locations tl ON "
                      "tl.location_id = f.location_id WHERE tl.thing_id = %s",
                      (thing["@iot.id"],)).fetchall()  # fmt: skip
    assert foi == made and len(made) == 1  # the Thing's Location, made a feature once


def test_links_reuse_entities_and_a_bad_link_writes_nothing(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw linked")))
    first = _created(sta["sw_a"].post("Datastreams", json=_stream("sw one") | {
        "Thing": {"@iot.id": thing["@iot.id"]}}))  # fmt: skip
    streamed = (
        sta["sw_a"]
        .get(f"Datastreams({first['@iot.id']})", params={"$expand": "Sensor,ObservedProperty"})
        .json()
    )
    # Linked entities sent whole (as frost-sta-client does) are links all the same.
    second = _created(sta["sw_a"].post("Datastreams", json=_stream(
        "sw two", Thing=thing, Sensor=streamed["Sensor"],
        ObservedProperty=streamed["ObservedProperty"])))  # fmt: skip
    again = (
        sta["sw_a"]
        .get(
            f"Datastreams({second['@iot.id']})", params={"$expand": "Sensor,ObservedProperty,Thing"}
        )
        .json()
    )
    assert again["Sensor"]["@iot.id"] == streamed["Sensor"]["@iot.id"]
    assert again["Thing"]["@iot.id"] == thing["@iot.id"]
    before = _count(db)
    for link, where in (({"@iot.id": 10**12}, "Datastream.Sensor"),
                        ({"@iot.id": "x"}, "Datastream.Sensor"),
                        ({"@iot.id": streamed["Sensor"]["@iot.id"]}, None)):  # fmt: skip
        body = _stream("sw bad") | {"Thing": {"@iot.id": thing["@iot.id"]}, "Sensor": link}
        if where is None:  # sw_b cannot see sw_a's sensor, nor write sw_a's thing
            answer = sta["sw_b"].post("Datastreams", json=body)
            assert answer.status_code == 400, answer.text
            continue
        answer = sta["sw_a"].post("Datastreams", json=body)
        assert answer.status_code == 400 and where in answer.json()["description"], answer.text
    assert _count(db) == before


def test_observations_one_by_one_with_refusals_counted(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw single")))
    stream = _created(sta["sw_a"].post(f"Things({thing['@iot.id']})/Datastreams",
                                       json=_stream("sw single")))["@iot.id"]  # fmt: skip
    one = _created(sta["sw_a"].post("Observations", json={
        "phenomenonTime": _at(0), "result": 3.25, "Datastream": {"@iot.id": stream}}))  # fmt: skip
    assert one["result"] == 3.25 and one["phenomenonTime"] == _at(0)
    two = _created(sta["sw_a"].post(f"Datastreams({stream})/Observations",
                                    json={"phenomenonTime": _at(1), "result": 4}))  # fmt: skip
    assert two["@iot.id"] > one["@iot.id"]
    before = _count(db)
    refused = {"duplicate": {"phenomenonTime": _at(0), "result": 1.0},
               "no_time": {"phenomenonTime": "2026-10-01T00:00:00", "result": 1.0},
               "future": {"phenomenonTime": "2099-01-01T00:00:00Z", "result": 1.0},
               "not_a_number": {"phenomenonTime": _at(5), "result": "high"}}  # fmt: skip
    for reason, body in refused.items():
        answer = sta["sw_a"].post(f"Datastreams({stream})/Observations", json=body)
        assert answer.status_code == 400 and reason in answer.json()["description"], answer.text
    assert _count(db) == before
    assert _rejects(db, stream) == dict.fromkeys(refused, 1)
    latest = (
        sta["sw_a"]
        .get(
            f"Datastreams({stream})/Observations",
            params={"$top": "1", "$orderby": "phenomenonTime desc"},
        )
        .json()
    )
    assert [o["result"] for o in latest["value"]] == [4]


def test_a_data_array_stores_the_good_readings_and_names_the_bad(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any], settings: Settings
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw array")))
    stream = _created(sta["sw_a"].post(f"Things({thing['@iot.id']})/Datastreams",
                                       json=_stream("sw array")))["@iot.id"]  # fmt: skip
    rows = [[_at(h), h / 2, _at(h)] for h in range(200)]
    rows[10][1] = "wet"  # not a number
    rows[20][0] = rows[19][0]  # twice in the batch
    rows[30] = [_at(30)]  # a row of the wrong shape
    body = [
        {
            "Datastream": {"@iot.id": stream},
            "components": ["phenomenonTime", "result", "resultTime"],
            "dataArray@iot.count": 200,
            "dataArray": rows,
        },
        {"Datastream": {"@iot.id": 10**12}, "components": ["result"], "dataArray": [[1]]},
    ]
    answer = sta["sw_a"].post("CreateObservations", json=body)
    assert answer.status_code == 201, answer.text
    links = answer.json()
    assert len(links) == 201
    bad = {i: v for i, v in enumerate(links) if v.startswith("error")}
    assert set(bad) == {10, 20, 30, 200}
    assert bad[10].startswith("error not_a_number") and bad[20].startswith("error duplicate")
    assert bad[200].startswith("error unknown_datastream")
    stored = db.execute("SELECT count(*), max(result_number) FROM sta.observations "
                        "WHERE datastream_id = %s", (stream,)).fetchone()  # fmt: skip
    assert stored == (197, 99.5)
    first = sta["sw_a"].get(links[0].split("/sta/v1.1/")[1]).json()
    assert first["result"] == 0 and first["resultTime"] == _at(0)
    assert _rejects(db, stream) == {"not_a_number": 1, "duplicate": 1, "malformed": 1}
    again = sta["sw_a"].post("CreateObservations", json=body[:1])  # all stored already
    assert all(v.startswith("error") for v in again.json())
    assert _rejects(db, stream)["duplicate"] == 1 + 197 + 1
    huge = [{"Datastream": {"@iot.id": stream}, "components": ["result"],
             "dataArray": [[1]] * (settings.sta.max_array + 1)}]  # fmt: skip
    assert sta["sw_a"].post("CreateObservations", json=huge).status_code == 413


def test_patch_merges_json_patch_applies_and_put_replaces(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw patched")))
    path = f"Things({thing['@iot.id']})"
    patched = sta["sw_a"].patch(path, json={"description": "moved upstream",
                                            "properties": {"river": None, "km": 12}})  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "moved upstream"
    assert patched.json()["properties"] == {"km": 12}  # RFC 7396: null removes
    ops = [{"op": "add", "path": "/properties/gauge", "value": "radar"},
           {"op": "test", "path": "/properties/km", "value": 12},
           {"op": "replace", "path": "/name", "value": "sw patched twice"}]  # fmt: skip
    answer = sta["sw_a"].patch(
        path, content=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["properties"] == {"km": 12, "gauge": "radar"}
    assert answer.json()["name"] == "sw patched twice"
    failed = sta["sw_a"].patch(
        path,
        content=json.dumps([{"op": "test", "path": "/name", "value": "other"}]),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert failed.status_code == 400 and "test failed" in failed.json()["description"]
    put = sta["sw_a"].put(path, json={"name": "sw replaced", "description": "whole"})
    assert put.status_code == 200, put.text
    assert "properties" not in put.json()  # left out: reset (no properties: none answered)
    moved = sta["sw_a"].patch(path, json={"Locations": [{
        "name": "new site", "description": "higher", "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": [112.2, 22.6]}}]})  # fmt: skip
    assert moved.status_code == 200, moved.text
    history = sta["sw_a"].get(f"{path}/HistoricalLocations", params={"$expand": "Locations"})
    assert len(history.json()["value"]) == 2
    assert sta["sw_a"].patch(path, json={"name": None}).status_code == 400
    assert (
        sta["sw_a"]
        .patch(path, content=b"name=x", headers={"Content-Type": "text/plain"})
        .status_code
        == 415
    )
    updates = db.execute(
        "SELECT count(*) FROM platform.audit_log WHERE action = 'sta-update' "
        "AND %s = ANY(feature_ids)",
        (f"Things({thing['@iot.id']})",),
    ).fetchone()
    assert updates == (4,)


def test_observations_change_and_delete_with_the_latest_following(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw edits")))
    stream = _created(sta["sw_a"].post(f"Things({thing['@iot.id']})/Datastreams",
                                       json=_stream("sw edits")))["@iot.id"]  # fmt: skip
    ids = [_created(sta["sw_a"].post(f"Datastreams({stream})/Observations", json={
        "phenomenonTime": _at(h), "result": h}))["@iot.id"] for h in range(3)]  # fmt: skip
    newest = f"Observations({ids[2]})"
    changed = sta["sw_a"].patch(newest, json={"result": 7.5})
    assert changed.status_code == 200 and changed.json()["result"] == 7.5, changed.text
    assert changed.json()["phenomenonTime"] == _at(2)
    latest = db.execute("SELECT id, result_number FROM sta.latest WHERE datastream_id = %s",
                        (stream,)).fetchone()  # fmt: skip
    assert latest == (ids[2], 7.5)
    clash = sta["sw_a"].patch(newest, json={"phenomenonTime": _at(1)})
    assert clash.status_code == 400 and "duplicate" in clash.json()["description"]
    assert sta["sw_a"].patch(newest, json={"result": "x"}).status_code == 400
    assert sta["sw_a"].get(newest).json()["result"] == 7.5  # nothing changed
    assert sta["sw_a"].delete(newest).status_code == 200
    assert sta["sw_a"].get(newest).status_code == 404
    latest = db.execute("SELECT id FROM sta.latest WHERE datastream_id = %s",
                        (stream,)).fetchone()  # fmt: skip
    assert latest == (ids[1],)
    span = sta["sw_a"].get(f"Datastreams({stream})").json()["phenomenonTime"]
    assert span == f"{_at(0)}/{_at(1)}"


def test_deletes_cascade_as_the_data_model_says(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    body = _thing("sw gone") | {"Datastreams": [_stream("sw gone", Observations=[
        {"phenomenonTime": _at(h), "result": h} for h in range(5)])]}  # fmt: skip
    thing = _created(sta["sw_a"].post("Things", json=body))["@iot.id"]
    [stream] = sta["sw_a"].get(f"Things({thing})/Datastreams").json()["value"]
    [location] = sta["sw_a"].get(f"Things({thing})/Locations").json()["value"]
    sensor = sta["sw_a"].get(f"Datastreams({stream['@iot.id']})/Sensor").json()["@iot.id"]
    assert sta["sw_a"].delete(f"Sensors({sensor})").status_code == 200
    assert sta["sw_a"].get(f"Datastreams({stream['@iot.id']})").status_code == 404
    left = db.execute("SELECT count(*) FROM sta.observations WHERE datastream_id = %s",
                      (stream["@iot.id"],)).fetchone()  # fmt: skip
    assert left == (0,)
    assert sta["sw_a"].delete(f"Locations({location['@iot.id']})").status_code == 200
    assert sta["sw_a"].get(f"Things({thing})/HistoricalLocations").json()["value"] == []
    assert sta["sw_a"].delete(f"Things({thing})").status_code == 200
    assert sta["sw_a"].get(f"Things({thing})").status_code == 404
    assert sta["sw_a"].delete(f"Things({thing})").status_code == 404
    deleted = db.execute("SELECT count(*) FROM platform.audit_log WHERE action = 'sta-delete' "
                         "AND feature_ids && %s", ([f"Things({thing})", f"Sensors({sensor})"],)
                         ).fetchone()  # fmt: skip
    assert deleted == (2,)


def test_who_may_write(sta: dict[str, httpx.Client], station: int,
                       db: psycopg.Connection[Any]) -> None:  # fmt: skip
    before = _count(db)
    anonymous = sta["anonymous"].post("Things", json=_thing("sw anonymous"))
    assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
    assert sta["sw_a_viewer"].post("Things", json=_thing("sw viewer")).status_code == 403
    # sw_b reads the station (a grant) but may not write it, nor sw_a's own Things.
    assert sta["sw_b"].post(f"Things({station})/Datastreams",
                            json=_stream("sw b")).status_code == 403  # fmt: skip
    mine = _created(sta["sw_a"].post("Things", json=_thing("sw mine")))["@iot.id"]
    assert sta["sw_b"].patch(f"Things({mine})", json={"name": "x"}).status_code == 404
    assert sta["sw_b"].delete(f"Things({mine})").status_code == 404
    assert sta["anonymous"].delete(f"Things({mine})").status_code == 401
    assert _count(db)["things"] == before["things"] + 1
    # The station's writers (sw_a's editors) add Datastreams to it; its name and place
    # follow the collection.
    made = sta["sw_a"].post(f"Things({station})/Datastreams", json=_stream("sw station"))
    assert made.status_code == 201, made.text
    renamed = sta["sw_a"].patch(f"Things({station})", json={"name": "renamed"})
    assert renamed.status_code == 400 and "sw_stations" in renamed.json()["description"]
    assert sta["sw_a"].patch(f"Things({station})", json={"properties": {"x": 1}}).status_code \
        == 200  # fmt: skip
    assert sta["sw_a"].delete(f"Things({station})").status_code == 400
    assert sta["admin"].post("Things", json=_thing("sw by admin")).status_code == 201


def _corpus(stream: int, thing: int) -> list[tuple[str, bytes]]:
    """Bodies that must all be refused: (path, body)."""
    good = _thing("sw hostile")
    place = good["Locations"][0]
    located = [
        {**place, "location": g}
        for g in (
            {"type": "Point", "coordinates": [200, 0]},
            {"type": "Point", "coordinates": [1]},
            {"type": "Point", "coordinates": ["a", "b"]},
            {"type": "Point", "coordinates": [[1, 2]]},
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]},
            {"type": "Circle"},
            {"type": "Point", "coordinates": [1, 2], "extra": 1},
            "POINT(1 2)",
            None,
            {"type": "Point", "coordinates": [True, 2]},
            {"type": "GeometryCollection"},
        )
    ]
    made = [
        "[]", "x", 5, {**good, "name": 5}, {**good, "name": ["x"]}, {**good, "name": None},
        {**good, "name": "a\u0000b"}, {**good, "properties": {"k\u0000": 1}},
        {**good, "properties": "str"}, {**good, "colour": "red"}, {**good, "@iot.id": 5},
        {**good, "Locations": "abc"}, {**good, "Locations": ["abc"]},
        {**good, "Locations": [{"@iot.id": 2**70}]}, {**good, "Locations": [{"@iot.id": True}]},
        {**good, "Locations": [{"@iot.id": 1.5}]}, {"description": "no name"},
        *({**good, "Locations": [p]} for p in located),
        {**good, "Datastreams": [_stream("sw h", Observations=[
            {"phenomenonTime": _at(h), "result": h} for h in range(1001)])]},
    ]  # fmt: skip
    streams = [
        _stream("sw h") | {"Thing": {"@iot.id": thing}, **change}
        for change in (
            {"unitOfMeasurement": "m"},
            {"observationType": "foo"},
            {"Thing": 5},
            {"Thing": {"@iot.id": -1}},
            {"unitOfMeasurement": {"name": "m", "colour": 1}},
            {"Sensor": {"name": "s", "description": "d", "encodingType": "x"}},
        )
    ]
    observations = [
        {}, {"result": 1, "parameters": "str"}, {"result": 1, "phenomenonTime": 5},
        {"result": 1, "phenomenonTime": f"{_at(2)}/{_at(1)}"}, {"result": 1, "validTime": "x"},
        {"result": "a\u0000"}, {"result": 1, "resultQuality": {"q\u0000": 1}},
        {"result": 1, "Datastream": {"@iot.id": 10**12}}, {"result": [1] * 3},
        {"result": 1, "FeatureOfInterest": {"name": "f", "description": "d",
                                            "encodingType": "application/geo+json",
                                            "feature": {"type": "Point",
                                                        "coordinates": [0, 91]}}},
    ]  # fmt: skip
    arrays = ["x", [5], [{"Datastream": {"@iot.id": stream}}],
              [{"Datastream": {"@iot.id": stream}, "components": ["colour"], "dataArray": []}],
              [{"Datastream": {"@iot.id": stream}, "components": ["result"], "dataArray": 5}],
              [{"Datastream": 5, "components": ["result"], "dataArray": [[1]]}]]  # fmt: skip
    raw = [b"{", b"", b"\xff\xfe", b'{"name": NaN}', b'{"result": 1e999}',
           b'{"result": 1' + b"0" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000,
           b'{"properties": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001]  # fmt: skip
    return [
        *(("Things", json.dumps(b).encode()) for b in made),
        *(("Datastreams", json.dumps(b).encode()) for b in streams),
        *((f"Datastreams({stream})/Observations", json.dumps(b).encode()) for b in observations),
        *(("CreateObservations", json.dumps(b).encode()) for b in arrays),
        *((p, b) for b in raw for p in ("Things", f"Datastreams({stream})/Observations")),
        (f"Things({thing})/Observations", json.dumps(_thing("x")).encode()),
    ]


def test_a_hostile_corpus_of_bodies_is_refused_with_nothing_written(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw target")))["@iot.id"]
    stream = _created(sta["sw_a"].post(f"Things({thing})/Datastreams",
                                       json=_stream("sw target")))["@iot.id"]  # fmt: skip
    before = _count(db)
    audited = db.execute("SELECT count(*) FROM platform.audit_log").fetchone()
    headers = {"Content-Type": "application/json"}
    for path, body in _corpus(stream, thing):
        answer = sta["sw_a"].post(path, content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (path, body[:200], answer.text)
        assert answer.json()["description"], (path, body[:200])
        if path == "Things" and b"no name" not in body:  # each is a bad PATCH too
            patched = sta["sw_a"].patch(f"Things({thing})", content=body, headers=headers)
            assert 400 <= patched.status_code < 500, (body[:200], patched.text)
    assert _count(db) == before
    assert db.execute("SELECT count(*) FROM platform.audit_log").fetchone() == audited
    assert sta["sw_a"].get(f"Things({thing})").json()["name"] == "sw target"


def _feature(lon: float, lat: float) -> dict[str, Any]:
    return {"name": f"at {lon}", "description": "a place", "encodingType": "application/geo+json",
            "feature": {"type": "Point", "coordinates": [lon, lat]}}  # fmt: skip


def test_the_observed_area_is_a_point_a_line_or_a_polygon(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw area")))["@iot.id"]
    stream = _created(sta["sw_a"].post(f"Things({thing})/Datastreams",
                                       json=_stream("sw area")))["@iot.id"]  # fmt: skip
    path = f"Datastreams({stream})"
    places = [(112.0, 22.0), (112.0, 22.0), (112.2, 22.0), (112.1, 22.1)]
    shapes = ["Point", "Point", "LineString", "Polygon"]  # never a MultiPoint
    for hour, ((lon, lat), shape) in enumerate(zip(places, shapes, strict=True)):
        _created(sta["sw_a"].post(f"{path}/Observations", json={
            "phenomenonTime": _at(hour), "result": hour,
            "FeatureOfInterest": _feature(lon, lat)}))  # fmt: skip
        assert sta["sw_a"].get(path).json()["observedArea"]["type"] == shape
    area = db.execute("SELECT ST_AsText(observed_area) FROM sta.datastreams WHERE id = %s",
                      (stream,)).fetchone()  # fmt: skip
    assert area == ("POLYGON((112 22,112.1 22.1,112.2 22,112 22))",)


def test_stored_observations_are_announced_by_id_ranges(
    sta: dict[str, httpx.Client], settings: Settings
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw notify")))["@iot.id"]
    stream = _created(sta["sw_a"].post(f"Things({thing})/Datastreams",
                                       json=_stream("sw notify")))["@iot.id"]  # fmt: skip
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute("LISTEN spatial_sta")
        rows = [[_at(h), h] for h in range(1000)]
        body = [{"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"],
                 "dataArray": rows}]  # fmt: skip
        links = sta["sw_a"].post("CreateObservations", json=body).json()
        ids = sorted(int(link.rsplit("(", 1)[1].rstrip(")")) for link in links)
        heard: list[int] = []
        for note in listener.notifies(timeout=10, stop_after=1):
            for ds, first, last in json.loads(note.payload)["observations"]:
                assert ds == stream
                heard.extend(range(first, last + 1))
    assert sorted(heard) == ids and len(ids) == 1000


def test_concurrent_batches_of_one_datastream_store_each_reading_once(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw busy")))["@iot.id"]
    stream = _created(sta["sw_a"].post(f"Things({thing})/Datastreams",
                                       json=_stream("sw busy")))["@iot.id"]  # fmt: skip

    def send(first: int) -> list[str]:  # overlapping spans: hours first .. first + 299
        rows = [[_at(h), h] for h in range(first, first + 300)]
        body = [{"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"],
                 "dataArray": rows}]  # fmt: skip
        answer = sta["sw_a"].post("CreateObservations", json=body)
        assert answer.status_code == 201, answer.text
        links: list[str] = answer.json()
        return links

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, (0, 100, 200, 0)))
    stored = [link for links in answers for link in links if not link.startswith("error")]
    refused = [link for links in answers for link in links if link.startswith("error")]
    assert len(stored) == 500 and len(set(stored)) == 500  # hours 0 .. 499, each once
    assert len(refused) == 700 and all(r.startswith("error duplicate") for r in refused)
    count = db.execute("SELECT count(*), count(DISTINCT phenomenon_start) FROM sta.observations "
                       "WHERE datastream_id = %s", (stream,)).fetchone()  # fmt: skip
    assert count == (500, 500)
    latest = db.execute("SELECT result_number FROM sta.latest WHERE datastream_id = %s",
                        (stream,)).fetchone()  # fmt: skip
    assert latest == (499.0,)


def test_a_data_array_with_every_component(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    thing = _created(sta["sw_a"].post("Things", json=_thing("sw every")))["@iot.id"]
    stream = _created(sta["sw_a"].post(f"Things({thing})/Datastreams",
                                       json=_stream("sw every")))["@iot.id"]  # fmt: skip
    mine = _created(sta["sw_a"].post("FeaturesOfInterest", json=_feature(112.3, 22.3)))
    theirs = _created(sta["sw_b"].post("FeaturesOfInterest", json=_feature(112.4, 22.4)))
    components = ["phenomenonTime", "result", "resultTime", "resultQuality", "validTime",
                  "parameters", "FeatureOfInterest/id"]  # fmt: skip
    valid = f"{_at(0)}/{_at(24)}"
    rows = [[_at(0), 1.5, _at(1), {"flag": "ok"}, valid, {"depth": 2}, mine["@iot.id"]],
            [_at(1), 2.5, None, None, None, None, theirs["@iot.id"]],  # not sw_a's to see
            [_at(2), 3.5, None, None, None, "not an object", mine["@iot.id"]],
            [_at(3), 4.5, "yesterday", None, None, None, mine["@iot.id"]]]  # fmt: skip
    answer = sta["sw_a"].post(
        "CreateObservations",
        json=[{"Datastream": {"@iot.id": stream}, "components": components, "dataArray": rows}],
    )
    assert answer.status_code == 201, answer.text
    links = answer.json()
    assert links[1].startswith("error unknown_feature") and links[2].startswith(
        "error malformed") and links[3].startswith("error no_time")  # fmt: skip
    stored = (
        sta["sw_a"]
        .get(links[0].split("/sta/v1.1/")[1], params={"$expand": "FeatureOfInterest"})
        .json()
    )
    assert stored["resultQuality"] == {"flag": "ok"} and stored["parameters"] == {"depth": 2}
    assert stored["validTime"] == valid and stored["resultTime"] == _at(1)
    assert stored["FeatureOfInterest"]["@iot.id"] == mine["@iot.id"]
    assert _rejects(db, stream) == {"unknown_feature": 1, "malformed": 1, "no_time": 1}


def test_every_entity_set_and_navigation_path(
    sta: dict[str, httpx.Client], db: psycopg.Connection[Any]
) -> None:
    client = sta["sw_a"]
    thing = _created(client.post("Things", json={"name": "sw paths", "description": "d"}))
    tid = thing["@iot.id"]
    place = _created(client.post(f"Things({tid})/Locations", json=_thing("x")["Locations"][0]))
    assert [h["@iot.id"] for h in client.get(f"Things({tid})/Locations").json()["value"]] \
        == [place["@iot.id"]]  # fmt: skip
    other = _created(client.post("Locations", json={
        **_thing("y")["Locations"][0], "Things": [{"@iot.id": tid}]}))  # fmt: skip
    history = _created(client.post(f"Things({tid})/HistoricalLocations", json={
        "time": _at(5), "Locations": [{"@iot.id": other["@iot.id"]}]}))  # fmt: skip
    assert history["time"] == _at(5)
    assert len(client.get(f"Things({tid})/HistoricalLocations").json()["value"]) == 3
    sensor = _created(client.post("Sensors", json=_stream("p")["Sensor"]))["@iot.id"]
    prop = _created(client.post("ObservedProperties", json=_stream("p")["ObservedProperty"]))
    body = {k: v for k, v in _stream("sw paths").items() if k != "Sensor"}
    stream = _created(
        client.post(
            f"Sensors({sensor})/Datastreams",
            json=body
            | {"Thing": {"@iot.id": tid}, "ObservedProperty": {"@iot.id": prop["@iot.id"]}},
        )
    )
    assert stream["name"] == "sw paths"
    foi = _created(client.post("FeaturesOfInterest", json=_feature(112.5, 22.5)))["@iot.id"]
    made = _created(
        client.post(
            f"FeaturesOfInterest({foi})/Observations",
            json={
                "phenomenonTime": _at(0),
                "result": 9,
                "Datastream": {"@iot.id": stream["@iot.id"]},
            },
        )
    )
    assert client.get(f"Observations({made['@iot.id']})/FeatureOfInterest").json()[
        "@iot.id"] == foi  # fmt: skip
    moved = client.patch(f"Locations({place['@iot.id']})", json={
        "location": {"type": "Point", "coordinates": [112.9, 22.9]}})  # fmt: skip
    assert moved.status_code == 200 and moved.json()["location"]["coordinates"] == [112.9, 22.9]
    assert len(client.get(f"Things({tid})/HistoricalLocations").json()["value"]) == 4
    assert client.delete(f"FeaturesOfInterest({foi})").status_code == 200
    assert client.get(f"Observations({made['@iot.id']})").status_code == 404
    assert client.post(f"Things({tid})/name", json={}).status_code == 400
    assert client.post("Things(1)", json={}).status_code == 400
    assert client.post("Nothing", json={}).status_code == 404
