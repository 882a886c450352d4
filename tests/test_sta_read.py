"""SensorThings reads (``/sta/v1.1``): paths, query options, paging and the access policy.

The collection ``sr_stations`` (three stations keyed ``station``, private to the
department ``sr_water``) is linked as Things (:func:`spatial.sta.things.link`); each has a
water-level Datastream with 30 hourly readings written straight into the tables (the
writes have their own tests). ``sr_other`` is granted the rows of station S1 only; a
Thing of no collection belongs to ``sr_water`` alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from support import TESTS, LiveServer, until

from spatial import accounts
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings
from spatial.sta import things

STATIONS = {"S1": ("一号站", 112.50), "S2": ("二号站", 112.52), "S3": ("三号站", 112.54)}
START = dt.datetime(2026, 11, 30, 22, tzinfo=dt.UTC)  # readings cross a month boundary
HOURS = 30


def _write(path: Path, stations: dict[str, tuple[str, float]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"station": s, "name": n},
         "geometry": {"type": "Point", "coordinates": [lon, 22.6]}}
        for s, (n, lon) in stations.items()
    ]}), encoding="utf-8")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def keys(database_url: str) -> dict[str, str]:
    """Keys of an editor of sr_water, and of a reader of sr_other."""
    with engine(database_url) as eng, eng.begin() as conn:
        made = {}
        for dept, role in (("sr_water", "editor"), ("sr_other", "viewer")):
            accounts.add_department(conn, TESTS, dept, dept)
            user = f"{dept}_user"
            accounts.add_user(conn, TESTS, user, roles=(role,), department=dept, service=True)
            made[dept] = accounts.create_key(conn, TESTS, user, name="tests")
    return made


_SEED = """
INSERT INTO sta.sensors (name, description, encoding_type, metadata, department)
VALUES ('gauge', 'radar gauge', 'text/html', 'https://example.org/radar', 'sr_water')
RETURNING id
"""


@pytest.fixture(scope="module")
def seeded(
    settings: Settings, keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    path = _write(tmp_path_factory.mktemp("sta") / "stations.geojson", STATIONS)
    ingest_vector(url, VectorSource(path, "sr_stations", "Stations", key="station",
                                    editable=True, department="sr_water", public=False),
                  settings, actor="pytest")  # fmt: skip
    with psycopg.connect(url, autocommit=True) as conn:
        things.link(conn, "sr_stations", actor=TESTS)
        with engine(url) as eng, eng.begin() as sconn:
            accounts.add_grant(sconn, TESTS, "sr_stations", "department:sr_other", "read",
                               row_filter="station = 'S1'")  # fmt: skip
        sensor = conn.execute(_SEED).fetchone()[0]  # type: ignore[index]
        prop = conn.execute(
            "INSERT INTO sta.observed_properties (name, definition, department) "
            "VALUES ('sr level', 'https://example.org/level', 'sr_water') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        made = conn.execute(
            "INSERT INTO sta.things (name, description, department) "
            "VALUES ('sr private', 'a thing of no collection', 'sr_water') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        rows = conn.execute(
            "SELECT id, feature_key FROM sta.things WHERE collection = 'sr_stations'"
        ).fetchall()
        streams = {}
        for thing_id, key in [*rows, (made, "private")]:
            streams[key] = _stream(conn, thing_id, sensor, prop, key)
    return {"things": {k: t for t, k in rows} | {"private": made}, "streams": streams}


def _stream(conn: psycopg.Connection[Any], thing: int, sensor: int, prop: int, key: str) -> int:
    stream = conn.execute(
        "INSERT INTO sta.datastreams (name, observation_type, unit, thing_id, sensor_id, "
        "observed_property_id, department) VALUES (%s, 'OM_Measurement', "
        '\'{"name": "metre", "symbol": "m"}\', %s, %s, %s, \'sr_water\') RETURNING id',
        (f"level {key}", thing, sensor, prop),
    ).fetchone()[0]  # type: ignore[index]
    feature = conn.execute(
        "INSERT INTO sta.features (name, geom, department) "
        "VALUES (%s, 'SRID=4326;POINT(112.5 22.6)', 'sr_water') RETURNING id",
        (key,),
    ).fetchone()[0]  # type: ignore[index]
    conn.execute("SELECT sta.ensure_month(%s), sta.ensure_month(%s)",
                 (START, START + dt.timedelta(hours=HOURS)))  # fmt: skip
    conn.execute(
        "INSERT INTO sta.observations (id, datastream_id, phenomenon_start, result_number, "
        "feature_id) SELECT nextval('sta.observation_ids'), %s, %s + g * interval '1 hour', "
        "g / 10.0, %s FROM generate_series(0, %s) g",
        (stream, START, feature, HOURS - 1),
    )
    conn.execute(
        "INSERT INTO sta.latest (datastream_id, id, phenomenon_start, result_number, feature_id) "
        "SELECT datastream_id, id, phenomenon_start, result_number, feature_id "
        "FROM sta.observations WHERE datastream_id = %s ORDER BY phenomenon_start DESC LIMIT 1",
        (stream,),
    )
    return int(stream)


@pytest.fixture
def sta(live_api: LiveServer, keys: dict[str, str], seeded: dict[str, Any]) -> Iterator[
        dict[str, httpx.Client]]:  # fmt: skip
    clients = {
        "anonymous": httpx.Client(base_url=f"{live_api.url}/sta/v1.1", timeout=30),
        **{d: httpx.Client(base_url=f"{live_api.url}/sta/v1.1", timeout=30,
                           headers={"Authorization": f"Bearer {k}"}) for d, k in keys.items()},
    }  # fmt: skip
    # The grant reaches the server's directory through LISTEN/NOTIFY.
    until(
        lambda: _names(clients["sr_other"], "Things"),
        lambda n: n == {"一号站"},
        "sr_other's grant on the server",
        seconds=15,
    )
    yield clients
    for client in clients.values():
        client.close()


def _get(client: httpx.Client, path: str, **params: str) -> Any:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _names(client: httpx.Client, path: str) -> set[str]:
    # This module's Things only (the demo's stations are public Things too).
    mine = "startswith(name, 'sr') or properties/collection eq 'sr_stations'"
    found = client.get(path, params={"$filter": mine, "$top": "1000"})
    return {e["name"] for e in found.json().get("value", [])} if found.status_code == 200 else set()


def test_the_service_root_lists_the_entity_sets_and_conformance(
    sta: dict[str, httpx.Client],
) -> None:
    root = _get(sta["anonymous"], "")
    names = {s["name"] for s in root["value"]}
    assert {"Things", "Locations", "Datastreams", "Observations", "FeaturesOfInterest"} <= names
    assert all(s["url"].endswith(f"/sta/v1.1/{s['name']}") for s in root["value"])
    conformance = root["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data" in conformance


def test_a_collection_s_grants_and_row_filters_decide_who_reads_its_things(
    sta: dict[str, httpx.Client], seeded: dict[str, Any]
) -> None:
    assert _names(sta["anonymous"], "Things") == set()  # private collection, no department
    assert _names(sta["sr_water"], "Things") == {"一号站", "二号站", "三号站", "sr private"}
    assert _names(sta["sr_other"], "Things") == {"一号站"}  # its grant's rows only
    s2 = seeded["things"]["S2"]
    assert sta["sr_other"].get(f"Things({s2})").status_code == 404
    assert sta["sr_other"].get(f"Things({s2})/Datastreams").status_code == 404
    stream = seeded["streams"]["S2"]
    assert sta["sr_other"].get(f"Datastreams({stream})/Observations").status_code == 404
    mine = _get(sta["sr_other"], f"Datastreams({seeded['streams']['S1']})/Observations")
    assert len(mine["value"]) == HOURS
    seen = _get(
        sta["sr_other"],
        "Observations",
        **{
            "$top": "10000",
            "$count": "true",
            "$expand": "Datastream($select=id)",
            "$filter": "Datastream/Thing/properties/collection eq 'sr_stations'",
        },
    )
    assert seen["@iot.count"] == HOURS
    assert {o["Datastream"]["@iot.id"] for o in seen["value"]} == {seeded["streams"]["S1"]}
    theirs = {
        "$filter": "Thing/properties/collection eq 'sr_stations' or startswith(name, 'level')"
    }
    streams = {d["@iot.id"] for d in _get(sta["sr_other"], "Datastreams", **theirs)["value"]}
    assert streams == {seeded["streams"]["S1"]}
    assert sta["sr_other"].get(f"Things({seeded['things']['private']})").status_code == 404


def test_filter_order_select_and_paging_with_next_links(
    sta: dict[str, httpx.Client], seeded: dict[str, Any]
) -> None:
    stream = seeded["streams"]["S1"]
    url: str | None = f"Datastreams({stream})/Observations"
    params = {"$filter": "result ge 1.0 and phenomenonTime lt 2026-12-01T22:00:00Z",
              "$orderby": "phenomenonTime desc", "$top": "7", "$select": "result,phenomenonTime",
              "$count": "true"}  # fmt: skip
    pages = []
    while url is not None:
        page = sta["sr_water"].get(url, params=params if not pages else None)
        assert page.status_code == 200, page.text
        pages.append(page.json())
        url = page.json().get("@iot.nextLink")
    results = [o["result"] for p in pages for o in p["value"]]
    assert pages[0]["@iot.count"] == len(results) == 14  # hours 10..23 of the readings
    assert results == sorted(results, reverse=True)
    assert set(pages[0]["value"][0]) == {"result", "phenomenonTime"}
    assert pages[0]["value"][0]["phenomenonTime"] == "2026-12-01T21:00:00Z"
    assert len(pages) == 2 and "@iot.nextLink" not in pages[-1]


def test_expand_nested_with_options_and_the_latest_reading(
    sta: dict[str, httpx.Client], seeded: dict[str, Any]
) -> None:
    thing = seeded["things"]["S1"]
    expand = (
        "Locations,Datastreams($select=name;$expand=Observations($top=2;"
        "$orderby=result desc;$count=true),ObservedProperty,Sensor($select=name))"
    )
    found = _get(sta["sr_water"], f"Things({thing})", **{"$expand": expand})
    assert found["Locations"][0]["location"]["coordinates"] == [112.5, 22.6]
    [stream] = found["Datastreams"]
    assert stream["ObservedProperty"]["name"] == "sr level"
    assert stream["Sensor"] == {"name": "gauge"}
    assert [o["result"] for o in stream["Observations"]] == [2.9, 2.8]
    assert stream["Observations@iot.count"] == HOURS
    assert stream["Observations@iot.nextLink"].endswith("$skip=2")
    latest = _get(sta["sr_water"], "Datastreams", **{
        "$filter": "startswith(name, 'level')", "$top": "100",
        "$expand": "Observations($orderby=phenomenonTime desc;$top=1)"})  # fmt: skip
    assert len(latest["value"]) == 4
    for entity in latest["value"]:
        [newest] = entity["Observations"]
        assert newest["result"] == 2.9
        assert newest["phenomenonTime"] == "2026-12-02T03:00:00Z"


def test_paths_properties_values_and_references(
    sta: dict[str, httpx.Client], seeded: dict[str, Any]
) -> None:
    stream = seeded["streams"]["S3"]
    assert _get(sta["sr_water"], f"Datastreams({stream})/Thing")["name"] == "三号站"
    assert _get(sta["sr_water"], f"Datastreams({stream})/Thing/name") == {"name": "三号站"}
    text = sta["sr_water"].get(f"Datastreams({stream})/Thing/name/$value")
    assert text.status_code == 200 and text.text == "三号站"
    refs = _get(sta["sr_water"], f"Datastreams({stream})/Observations/$ref", **{"$top": "2"})
    assert [set(r) for r in refs["value"]] == [{"@iot.selfLink"}] * 2
    first = _get(sta["sr_water"], refs["value"][0]["@iot.selfLink"].split("/sta/v1.1/")[1])
    assert first["Datastream@iot.navigationLink"].endswith("/Datastream")
    through = _get(
        sta["sr_water"],
        "Observations",
        **{"$filter": "Datastream/Thing/name eq '三号站' and result gt 2.5", "$top": "100"},
    )
    assert sorted(o["result"] for o in through["value"]) == [2.6, 2.7, 2.8, 2.9]
    inside = _get(sta["sr_water"], "Locations", **{
        "$filter": "st_within(location, geometry'POLYGON((112.51 22.5, 112.6 22.5, "
                   "112.6 22.7, 112.51 22.7, 112.51 22.5))')"})  # fmt: skip
    assert {loc["name"] for loc in inside["value"]} == {"二号站", "三号站"}


@pytest.mark.parametrize(("path", "params", "status", "says"), [
    ("Nothing", {}, 404, "no entity set"),
    ("Things(1)/Nothing", {}, 404, "no 'Nothing'"),
    ("Things", {"$filter": "name eq"}, 400, "$filter"),
    ("Things", {"$filter": "nosuch eq 1"}, 400, "no property 'nosuch'"),
    ("Things", {"$orderby": "name sideways"}, 400, "$orderby"),
    ("Things", {"$top": "-1"}, 400, "$top"),
    ("Things", {"$expand": "Datastreams($top=1;$top=2)"}, 400, "repeated"),
    ("Things", {"$expand": "Nothing"}, 400, "no 'Nothing'"),
    ("Things", {"$select": "nothing"}, 400, "$select"),
    ("Things", {"$count": "maybe"}, 400, "$count"),
    ("Things", {"$format": "xml"}, 400, "unknown query option"),
    ("Things", {"$filter": "Datastreams/name eq 'x'"}, 400, "collection Datastreams"),
    ("Things(99999999999999999999)", {}, 404, "no Things"),
    ("Things/name", {}, 400, "name one Thing"),
])  # fmt: skip
def test_bad_reads_are_refused_with_what_was_wrong(
    sta: dict[str, httpx.Client], path: str, params: dict[str, str], status: int, says: str
) -> None:
    answer = sta["sr_water"].get(path, params=params)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["description"]


def test_things_follow_their_collection_s_edits(
    sta: dict[str, httpx.Client], seeded: dict[str, Any], settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    moved = {"S1": ("一号站", 112.50), "S2": ("二号站改", 112.60)}  # S2 renamed and moved
    path = _write(tmp_path_factory.mktemp("sta2") / "stations.geojson", moved)
    ingest_vector(url, VectorSource(path, "sr_stations", "Stations", key="station",
                                    editable=True, department="sr_water", public=False,
                                    ), settings, actor="pytest")  # fmt: skip
    s2 = seeded["things"]["S2"]
    # The API's workers follow the linked collections (api.live.follow_networks).
    until(
        lambda: _get(sta["sr_water"], f"Things({s2})")["name"],
        lambda n: n == "二号站改",
        "the re-import followed",
        seconds=30,
    )
    found = _get(sta["sr_water"], f"Things({s2})", **{"$expand": "Locations,HistoricalLocations"})
    assert found["name"] == "二号站改"
    assert found["Locations"][0]["location"]["coordinates"] == [112.6, 22.6]
    assert len(found["HistoricalLocations"]) == 2
    with psycopg.connect(url) as conn:
        retired = conn.execute("SELECT retired FROM sta.things WHERE id = %s",
                               (seeded["things"]["S3"],)).fetchone()  # fmt: skip
    assert retired == (True,)
    # S3's readings stay readable
    assert len(_get(sta["sr_water"], f"Datastreams({seeded['streams']['S3']})/Observations",
                    **{"$top": "100"})["value"]) == HOURS  # fmt: skip


HOSTILE_FILTERS = [
    "name eq 'x'; DROP TABLE sta.things; --'",
    "name eq 'x' or 1 eq 1) --",
    "(" * 200 + "name eq 'x'" + ")" * 200,
    "not " * 50 + "name eq 'x'",
    "name eq '" + "x" * 5000 + "'",
    "result gt 1e999999",
    "phenomenonTime gt 2026-13-45T99:99:99Z",
    "phenomenonTime gt 2026-12-01T00:00:00",  # no zone
    "st_within(location, geometry'POLYGON((0 0, 1 1))')",
    "st_within(location, geometry'POINT(" + "1 " * 10 + ")')",
    "substringof(name)",
    "pg_sleep(10) eq 1",
    "name eq 'x\x00y'",
    "Thing/Datastreams/Observations/result eq 1",
    "properties/a/b/c/d/e/f/g/h/i eq 1",
    "name eq @iot.id",
    "1 add 'a' eq 2",
]


@pytest.mark.parametrize("hostile", HOSTILE_FILTERS)
def test_a_hostile_filter_is_a_400_and_the_server_reads_on(
    sta: dict[str, httpx.Client], hostile: str
) -> None:
    answer = sta["sr_water"].get("Locations", params={"$filter": hostile})
    assert answer.status_code == 400, answer.text
    assert answer.json()["description"]
    assert len(_get(sta["sr_water"], "Things", **{"$top": "1"})["value"]) == 1


CLAIMS = {
    "datamodel": ["test_sta_write.py::test_every_entity_set_and_navigation_path",
                  "test_sta_client.py::test_frost_sta_client_creates_and_reads_back"],
    "resource-path/resource-path-to-entities": [
        "test_sta_read.py::test_paths_properties_values_and_references"],
    "request-data": ["test_sta_read.py::test_filter_order_select_and_paging_with_next_links",
                     "test_sta_read.py::test_expand_nested_with_options_and_the_latest_reading"],
    "create-update-delete": [
        "test_sta_write.py::test_deep_insert_makes_everything_in_one_go",
        "test_sta_write.py::test_patch_merges_json_patch_applies_and_put_replaces",
        "test_sta_write.py::test_deletes_cascade_as_the_data_model_says"],
    "data-array/data-array": [
        "test_sta_write.py::test_a_data_array_stores_the_good_readings_and_names_the_bad"],
    "create-observations-via-mqtt/observations-creation": [
        "test_sta_mqtt.py::test_create_and_receive"],
    "receive-updates-via-mqtt/receive-updates": [
        "test_sta_mqtt.py::test_other_paths_are_published"],
}  # fmt: skip
"""Each SensorThings conformance class the service root may declare, with the tests that
exercise it (the MQTT ones are declared only with a broker configured)."""
SPEC = "http://www.opengis.net/spec/iot_sensing/1.1/req/"


def test_every_declared_conformance_class_has_its_tests(
    sta: dict[str, httpx.Client], settings: Settings
) -> None:
    from api import create_app  # noqa: PLC0415

    declared = _get(sta["anonymous"], "")["serverSettings"]
    assert {c.removeprefix(SPEC) for c in declared["conformance"]} == set(CLAIMS) - {
        c for c in CLAIMS if "mqtt" in c}  # fmt: skip
    broker = settings.model_copy(update={"sta": settings.sta.model_copy(
        update={"mqtt_url": "mqtt://broker.example:1883"})})  # fmt: skip
    with LiveServer(create_app(broker)) as server:
        root = httpx.get(f"{server.url}/sta/v1.1", timeout=30).json()["serverSettings"]
    assert {c.removeprefix(SPEC) for c in root["conformance"]} == set(CLAIMS)
    for name in CLAIMS:
        if "mqtt" in name:
            assert root[SPEC + name] == {"endpoints": ["mqtt://broker.example:1883"]}
    here = Path(__file__).parent
    for tests in CLAIMS.values():
        for test in tests:
            module, function = test.split("::")
            assert f"def {function}(" in (here / module).read_text(encoding="utf-8"), test
