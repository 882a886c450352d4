"""Alarms (``spatial.sta.alarms``): readings through the observation store cross the shipped
thresholds; the alarm raised reaches a webhook and the live stream, clears when the
readings come back, is acknowledged once (audited), and is seen only by whom may see its
Thing.

The departments ``al_a`` and ``al_b`` each have a Thing of no collection (so only their
members and admins see it) with an AQI datastream (the shipped ``environment/aqi`` rule:
heavy above 200, severe above 300) and ``al_a``'s also a rainfall datastream (the
``water/rainfall-1h`` rule: a sum over one hour). Their readings are in November 2026,
away from the demo's. The demo city (its gauges and air stations) is loaded too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from support import TESTS, LiveServer, Receiver, until
from websockets.sync.client import connect

from api import live
from spatial import accounts
from spatial.db import engine
from spatial.gps import webhooks
from spatial.settings import Settings
from spatial.sta import rules
from spatial.sta.alarms import Event
from spatial.sta.observations import Reading, store

T0 = dt.datetime(2026, 11, 3, 8, tzinfo=dt.UTC)
SECRET = "al-secret-0123456789"


@pytest.fixture(scope="module")
def keys(demo_url: str) -> dict[str, str]:
    """API keys of a viewer of ``al_a`` and one of ``al_b``."""
    made = {}
    with engine(demo_url) as eng, eng.begin() as conn:
        for dept in ("al_a", "al_b"):
            accounts.add_department(conn, TESTS, dept, f"Alarms {dept}")
            user = f"{dept}_viewer"
            accounts.add_user(conn, TESTS, user, roles=("viewer",), department=dept, service=True)
            made[dept] = accounts.create_key(conn, TESTS, user, name="tests")
    return made


_THING = """
WITH t AS (INSERT INTO sta.things (name, department) VALUES (%(name)s, %(dept)s) RETURNING id),
l AS (INSERT INTO sta.locations (name, geom, department)
      VALUES (%(name)s, ST_SetSRID(ST_MakePoint(%(lon)s, 22.9), 4326), %(dept)s) RETURNING id),
tl AS (INSERT INTO sta.things_locations SELECT t.id, l.id FROM t, l)
SELECT id FROM t
"""
_STREAM = """
WITH s AS (INSERT INTO sta.sensors (name, encoding_type, metadata, department)
           VALUES ('al sensor', 'text/plain', '-', %(dept)s) RETURNING id),
p AS (INSERT INTO sta.observed_properties (name, definition, department)
      VALUES (%(property)s, 'urn:test', %(dept)s) RETURNING id)
INSERT INTO sta.datastreams (name, observation_type, unit, thing_id, sensor_id,
                             observed_property_id, department)
SELECT %(name)s, 'http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement',
       '{"symbol": "mm"}', %(thing)s, s.id, p.id, %(dept)s FROM s, p RETURNING id
"""


@pytest.fixture(scope="module")
def streams(demo_url: str, keys: dict[str, str]) -> dict[str, int]:
    """The datastreams ``aqi_a``, ``aqi_b`` and ``rain_a`` (the rules synced first)."""
    made = {}
    with psycopg.connect(demo_url, autocommit=True) as conn:
        rules.install(conn)
        for dept, lon in (("al_a", 112.01), ("al_b", 112.02)):
            thing = conn.execute(_THING, {"name": f"{dept} station", "dept": dept,
                                          "lon": lon}).fetchone()  # fmt: skip
            assert thing is not None
            for key, prop in (("aqi", "AQI"), ("rain", "Rainfall")):
                if key == "rain" and dept == "al_b":
                    continue
                given = {"name": f"{dept} {prop}", "dept": dept, "property": prop,
                         "thing": thing[0]}  # fmt: skip
                row = conn.execute(_STREAM, given).fetchone()
                assert row is not None
                made[f"{key}_{dept.removeprefix('al_')}"] = int(row[0])
    return made


def _read(
    conn: psycopg.Connection[Any], settings: Settings, datastream: int, time: dt.datetime,
    value: float,
) -> list[Event]:  # fmt: skip
    """Store one reading through the observation store; the alarms it raised or cleared."""
    done = store(conn, [Reading(datastream, time.isoformat(), value)], settings=settings.sta)
    assert done.stored == 1, done.rejects
    alarms: list[Event] = done.alarms
    return alarms


def _said(events: list[Event]) -> list[tuple[str, str, float | None]]:
    return [(e.state, e.level, e.value) for e in events]


def test_a_crossing_raises_a_level_change_moves_and_a_return_clears(
    demo_url: str, settings: Settings, streams: dict[str, int]
) -> None:
    ds = streams["aqi_a"]
    with psycopg.connect(demo_url, autocommit=True) as conn:
        assert _read(conn, settings, ds, T0, 120) == []  # a band (light), no alarm
        raised = _read(conn, settings, ds, T0 + dt.timedelta(hours=1), 240)
        assert _said(raised) == [("raised", "heavy", 240)]
        assert raised[0].threshold == 200
        assert (raised[0].lon, raised[0].lat) == pytest.approx((112.01, 22.9))
        assert _read(conn, settings, ds, T0 + dt.timedelta(hours=2), 260) == []  # still heavy
        # An older reading does not move the latest: nothing changes.
        assert _read(conn, settings, ds, T0 - dt.timedelta(hours=1), 420) == []
        moved = _read(conn, settings, ds, T0 + dt.timedelta(hours=3), 320)
        assert _said(moved) == [("cleared", "heavy", 320), ("raised", "severe", 320)]
        cleared = _read(conn, settings, ds, T0 + dt.timedelta(hours=4), 90)
        assert _said(cleared) == [("cleared", "severe", 90)]
        rows = conn.execute(
            "SELECT a.level, a.state, a.raised_value, a.cleared_value, e.kind, e.department, "
            "ST_X(e.geom) FROM sta.alarms a JOIN gps.events e ON e.alarm_id = a.id "
            "WHERE a.datastream_id = %s ORDER BY e.id", (ds,)).fetchall()  # fmt: skip
    assert rows == [
        ("heavy", "cleared", 240, 320, "alarm-raised", "al_a", pytest.approx(112.01)),
        ("heavy", "cleared", 240, 320, "alarm-cleared", "al_a", pytest.approx(112.01)),
        ("severe", "cleared", 320, 90, "alarm-raised", "al_a", pytest.approx(112.01)),
        ("severe", "cleared", 320, 90, "alarm-cleared", "al_a", pytest.approx(112.01)),
    ]


def test_a_window_rule_sums_the_readings_of_the_hour(
    demo_url: str, settings: Settings, streams: dict[str, int]
) -> None:
    ds, start = streams["rain_a"], T0 + dt.timedelta(days=1)
    with psycopg.connect(demo_url, autocommit=True) as conn:
        said = [_said(_read(conn, settings, ds, start + dt.timedelta(minutes=10 * n), 3.0))
                for n in range(6)]  # fmt: skip
        # 3, 6, ... 15 mm: below 16; the sixth reading makes 18 mm in the hour.
        assert said == [[], [], [], [], [], [("raised", "warning", 18.0)]]
        # Ten minutes later the first reading leaves the hour: 18 - 3 + 0 = 15 mm.
        assert _said(_read(conn, settings, ds, start + dt.timedelta(minutes=60), 0.0)) == [
            ("cleared", "warning", 15.0)]  # fmt: skip


def test_a_threshold_from_the_gauge_s_warning_level(demo_url: str, settings: Settings) -> None:
    """A demo gauge's water level against its feature's ``warning_level_m`` (and 1 m more
    for danger), in a transaction rolled back: the demo stays as it is."""
    with psycopg.connect(demo_url) as conn:
        ds, last, warning = conn.execute(
            "SELECT d.id, d.phenomenon_last, sta.feature_number(t.collection, t.feature_key, "
            "'warning_level_m') FROM sta.datastreams d JOIN sta.things t ON t.id = d.thing_id "
            "JOIN sta.observed_properties p ON p.id = d.observed_property_id "
            "WHERE t.feature_key = 'YF-SW-01' AND p.name = 'Water level'").fetchone()  # fmt: skip
        later = last + dt.timedelta(minutes=1)
        events = _read(conn, settings, ds, later, round(warning + 1.5, 2))
        assert _said(events) == [("raised", "danger", round(warning + 1.5, 2))]
        assert events[0].threshold == pytest.approx(warning + 1.0)
        assert events[0].collection == "water_gauges"
        conn.rollback()


def test_the_demo_city_has_gauges_above_warning_and_a_heavy_air_station(
    demo_api: LiveServer,
) -> None:
    with httpx.Client(base_url=demo_api.url, timeout=30) as client:
        water = client.get("/alarms/status", params={"collection": "water_gauges"})
        air = client.get("/alarms/status", params={"collection": "env_stations"}).json()
        assert client.get("/alarms/status", params={"collection": "nope"}).status_code == 404
    assert water.status_code == 200, water.text
    gauges = {f["id"]: f for f in water.json()["features"]}
    assert len(gauges) == 15
    levels = {k: f["properties"]["level"] for k, f in gauges.items() if f["properties"]["level"]}
    assert levels == {"YF-SW-02": "danger", "YF-SW-05": "warning"}
    high = gauges["YF-SW-02"]["properties"]["datastreams"][0]
    assert high["property"] == "Water level" and high["unit"] == "m"
    assert high["time"].endswith("Z") and high["level"] == "danger"
    warning, danger = high["thresholds"]
    assert (warning["level"], danger["level"]) == ("warning", "danger")
    assert danger["above"] == pytest.approx(warning["above"] + 1.0)
    assert high["value"] > danger["above"]
    assert gauges["YF-SW-02"]["geometry"]["type"] == "Point"
    rainy = [d for f in gauges.values() for d in f["properties"]["datastreams"]
             if d["property"] == "Rainfall"]  # fmt: skip
    assert rainy and all([w["hours"] for w in d["windows"]] == [1, 24] for d in rainy)
    bands = {f["id"]: f["properties"]["level"] for f in air["features"]
             if f["id"].startswith("YF-AQ-")}  # fmt: skip
    assert bands["YF-AQ-07"] == "heavy"
    assert set(bands.values()) - {"heavy"} <= {"good", "moderate", "light", "medium"}


def _ws(url: str, path: str, key: str) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    return connect("ws" + url.removeprefix("http") + path, additional_headers=headers,
                   open_timeout=10)  # fmt: skip


def _next_alarm(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    """The next alarm message on a live stream (positions are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no alarm on the live stream"
        message = json.loads(ws.recv(timeout=left))
        if message.get("type") == "alarm":
            return message


@pytest.fixture
def receiver(demo_url: str) -> Iterator[Receiver]:
    """A webhook receiver registered for alarm events."""
    with Receiver() as got, psycopg.connect(demo_url, autocommit=True) as conn:
        webhook, _ = webhooks.add_webhook(conn, got.url, secret=SECRET,
                                          kinds=["alarm-raised", "alarm-cleared"])  # fmt: skip
        yield got
        webhooks.remove_webhook(conn, webhook)


def test_an_observation_s_alarm_reaches_a_webhook_and_the_live_stream_of_whom_may_see_it(  # noqa: PLR0917 - fixtures
    demo_api: LiveServer, demo_url: str, settings: Settings, streams: dict[str, int],
    keys: dict[str, str], receiver: Receiver, admin_auth: dict[str, str],
) -> None:  # fmt: skip
    start = T0 + dt.timedelta(days=2)
    with (
        _ws(demo_api.url, "/live", keys["al_a"]) as mine,
        _ws(demo_api.url, "/gps/live", keys["al_b"]) as theirs,
        psycopg.connect(demo_url, autocommit=True) as conn,
    ):
        sent = time.monotonic()  # the times measured include the POST's own
        posted = httpx.post(f"{demo_api.url}/sta/v1.1/Datastreams({streams['aqi_a']})/Observations",
                            json={"phenomenonTime": start.isoformat(), "result": 250},
                            headers=admin_auth, timeout=30)  # fmt: skip
        assert posted.status_code == 201, posted.text
        got = _next_alarm(mine)
        on_stream = time.monotonic() - sent
        hook = until(receiver.accepted, what="the alarm at the webhook", seconds=5)
        at_webhook = time.monotonic() - sent
        print(f"alarm raised: live stream {on_stream:.3f} s, webhook {at_webhook:.3f} s")
        raised = conn.execute("SELECT id, datastream_id FROM sta.alarms WHERE raised_at = %s",
                              (start,)).fetchall()  # fmt: skip
        assert raised == [(got["alarm"], streams["aqi_a"])]
        assert got == {**got, "type": "alarm", "state": "raised", "datastream": streams["aqi_a"],
                       "name": "al_a station", "level": "heavy", "value": 250,
                       "time": "2026-11-05T08:00:00Z", "threshold": 200}  # fmt: skip
        # al_b's viewer does not see al_a's alarm: the first alarm they get is their own.
        (own,) = _read(conn, settings, streams["aqi_b"], start, 310)
        assert _next_alarm(theirs)["alarm"] == own.alarm
        (cleared,) = _read(conn, settings, streams["aqi_a"], start + dt.timedelta(hours=1), 60)
        assert _next_alarm(mine) == {**_next_alarm_fields(cleared), "state": "cleared",
                                     "alarm": got["alarm"], "value": 60,
                                     "level": "heavy"}  # fmt: skip
    events = until(receiver.accepted, lambda e: len(e) >= 3, "three alarm events", seconds=5)
    signed = receiver.got[0]
    assert signed.headers[webhooks.SIGNATURE_HEADER] == webhooks.sign(SECRET, signed.body)
    assert hook[0] == {**hook[0], "kind": "alarm-raised", "alarm": got["alarm"],
                       "department": "al_a", "level": "heavy", "value": 250, "threshold": 200,
                       "lon": pytest.approx(112.01), "lat": pytest.approx(22.9)}  # fmt: skip
    assert [(e["kind"], e["alarm"]) for e in events] == [
        ("alarm-raised", got["alarm"]), ("alarm-raised", own.alarm),
        ("alarm-cleared", got["alarm"])]  # fmt: skip


def _next_alarm_fields(event: Event) -> dict[str, Any]:
    return {**event.message(), "type": "alarm"}


def test_alarms_are_listed_to_whom_may_see_them_and_acknowledged_once(
    demo_api: LiveServer, demo_url: str, settings: Settings, streams: dict[str, int],
    keys: dict[str, str],
) -> None:  # fmt: skip
    with psycopg.connect(demo_url, autocommit=True) as conn:
        (raised,) = _read(conn, settings, streams["aqi_a"], T0 + dt.timedelta(days=3), 230)
    a, b = ({"Authorization": f"Bearer {keys[d]}"} for d in ("al_a", "al_b"))
    with httpx.Client(base_url=demo_api.url, timeout=30) as client:
        listed = client.get("/alarms", headers=a, params={"state": "active"}).json()["alarms"]
        assert raised.alarm in [x["id"] for x in listed]
        mine = next(x for x in listed if x["id"] == raised.alarm)
        assert mine == {**mine, "level": "heavy", "state": "active", "raised_value": 230,
                        "department": "al_a", "property": "AQI",
                        "acknowledged_by": None}  # fmt: skip
        for who in (b, {}):  # another department, and anonymous: not theirs to see
            assert raised.alarm not in [x["id"] for x in client.get("/alarms", headers=who)
                                        .json()["alarms"]]  # fmt: skip
            refused = client.post(f"/alarms/{raised.alarm}/acknowledge", headers=who)
            assert refused.status_code == 404, refused.text
        # The demo's gauges are public: everyone sees their alarms; only 'water' acknowledges.
        demo = client.get("/alarms", params={"collection": "water_gauges"}).json()["alarms"]
        assert {x["feature_key"] for x in demo} >= {"YF-SW-02", "YF-SW-05"}
        assert client.post(f"/alarms/{demo[0]['id']}/acknowledge").status_code == 401
        assert client.post(f"/alarms/{demo[0]['id']}/acknowledge", headers=b).status_code == 403
        done = client.post(f"/alarms/{raised.alarm}/acknowledge", headers=a)
        assert done.status_code == 200, done.text
        assert done.json()["acknowledged_by"] == "al_a_viewer"
        again = client.post(f"/alarms/{raised.alarm}/acknowledge", headers=a)
        assert again.status_code == 409
        assert "acknowledged by al_a_viewer" in again.json()["description"]
        assert client.get("/alarms", params={"state": "bad"}).status_code == 400
    with psycopg.connect(demo_url) as conn:
        logged = conn.execute(
            "SELECT actor, details FROM platform.audit_log WHERE action = 'alarm-acknowledge' "
            "AND feature_ids = %s", ([str(raised.alarm)],)).fetchall()  # fmt: skip
    assert len(logged) == 1
    actor, details = logged[0]
    assert actor == "al_a_viewer"
    assert details == {**details, "alarm": raised.alarm, "by": "al_a_viewer", "level": "heavy"}
    assert details["at"] == done.json()["acknowledged_at"]


def test_alarm_events_are_in_the_events_collection(
    demo_api: LiveServer, demo_url: str, admin_auth: dict[str, str]
) -> None:
    with httpx.Client(base_url=demo_api.url, timeout=30) as client:
        found = client.get("/collections/gps_events/items", headers=admin_auth,
                           params={"kind": "alarm-raised", "limit": 1000}).json()  # fmt: skip
    raised = [f["properties"] for f in found["features"]]
    assert raised and all(p["alarm_id"] and p["device_id"] is None for p in raised)
    gauge = [p for p in raised if p["level"] == "danger" and p["department"] == "water"]
    assert gauge and gauge[0]["value"] > 0


def test_a_rule_removed_clears_its_alarms(demo_url: str) -> None:
    """Syncing rules without the air-quality ones clears the demo's heavy-air alarms (with
    no reading: the rule is gone), in a transaction rolled back."""
    with psycopg.connect(demo_url) as conn:
        # A transaction open first: sync's own is then a savepoint, and the rollback at the
        # end undoes it (on an idle connection sync would commit, and the rules stay gone).
        conn.execute("SELECT 1")
        kept = tuple(r for r in rules.load() if r.subsystem != "environment")
        synced = rules.sync(conn, kept)
        assert synced.changed
        assert {e.state for e in synced.events} == {"cleared"}
        demo = {(e.name, e.rule, e.value, e.level) for e in synced.events
                if e.collection == "env_stations"}  # fmt: skip
        park = "石材产业园空气质量自动监测站"
        assert demo == {(park, "environment/aqi", None, "heavy"),
                        (park, "environment/pm25", None, "heavy")}  # fmt: skip
        left = conn.execute("SELECT DISTINCT subsystem FROM sta.alarms WHERE state = 'active'")
        assert {r[0] for r in left} == {"water"}
        conn.rollback()


def test_a_client_who_may_not_read_positions_is_told_alarms_and_no_positions() -> None:
    """A live-stream client without ``gps_latest`` (a department of sensors only) has no
    positions' layer: a broadcast of moved devices passes it by, and an alarm it may see
    reaches it."""
    hub = live.Hub()
    told = live.Subscriber(None, sees_alarm=lambda department, _: department == "al_a")
    hub.subscribers.add(told)
    alarm = {"state": "raised", "alarm": 1, "department": "al_a", "collection": None}
    other = {**alarm, "alarm": 2, "department": "al_b"}
    asyncio.run(live.broadcast(hub, None, ["YF-BUS-01"], [], alarms=[alarm, other]))  # type: ignore[arg-type]
    assert [json.loads(told.queue.get_nowait()) for _ in range(told.queue.qsize())] == [
        {**alarm, "type": "alarm"}
    ]
