"""The emergency map's command panel (api/static/maps/command.js) in a real browser, on the
demo city.

A dispatcher (an editor of the emergency department) opens the emergency map. A test fire
engine of their own (``mc_YF-FIRE-91``, a unit) has a fresh fix on the demo roads about a
kilometre from a two-way road in the middle of the city; the demo's fire engines and
ambulances have months-old fixes. In the browser: a click on the map in the "new incident"
mode places an incident there and reports it; the units are ranked by road ETA, the test
engine with a route drawn, the demo's units left out as stale. Another dispatcher sends the
engine elsewhere first: the dispatch is refused with the server's words; once that incident
is closed the engine is ranked again and dispatched, its route drawn; a fix within 50 m of
the incident turns it (and the incident) on scene, as the page's one connection to the
live stream tells (the live tool's, live.js, which hands the incident messages on). While
that connection is down an incident is reported elsewhere: once reconnected the panel reads
everything again and lists it, and the live tool's catch-up of missed geofence events
leaves out the arrival on scene (gps_events holds it, with no fence). Closing frees the
engine. The service areas of
the fire stations are drawn (one polygon a band) with their legend; a road closure drawn as
a polygon is listed and drawn, then lifted. No console error, no request beyond loopback.
Whatever the test makes is closed, lifted or removed at the end (the session's database is
shared). Screenshots: ``var/test-screenshots/map-emergency-command{-ranked,}.png``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from browser import WAIT_MS, browser_page, open_map, requires_chromium
from support import TESTS, LiveServer, until

from layers import subsystems
from spatial import accounts
from spatial.db import engine
from spatial.errors import ConfigurationError
from spatial.gps import store
from spatial.gps.fix import Fix
from spatial.settings import GpsSettings

USER = "mc_dispatcher"
UNIT = "mc_YF-FIRE-91"
"""A test fire engine (``-FIRE-``: drawn in the fire engines' orange)."""
STALE = ("YF-FIRE-01", "YF-FIRE-02", "YF-AMB-01", "YF-AMB-02")
"""The demo's units: their fixes are months old."""
MIDDLE = (112.0, 22.9)
WAIT_S = 60.0
START_AGO_S = 120
"""The age of the engine's first fix (units are stale after 300 s)."""

SCENE = """
SELECT ST_X(p), ST_Y(p) FROM net.edges e,
LATERAL (SELECT ST_Transform(ST_LineInterpolatePoint(e.geom, 0.5), 4326) AS p) q
WHERE e.network = 'roads' AND e.cost > 0 AND e.reverse_cost > 0 AND e.length_m > 120
ORDER BY ST_Distance(q.p::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography)
LIMIT 1
"""
"""The middle of the two-way road nearest the middle of the city."""
START = """
SELECT ST_X(p), ST_Y(p) FROM net.edges e,
LATERAL (SELECT ST_Transform(ST_LineInterpolatePoint(e.geom, 0.5), 4326) AS p) q,
LATERAL (SELECT ST_Distance(q.p::geography,
                            ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) AS d) m
WHERE e.network = 'roads' AND e.cost > 0 AND e.reverse_cost > 0 AND m.d BETWEEN 600 AND 1500
ORDER BY abs(m.d - 1000) LIMIT 1
"""
"""The middle of a two-way road about a kilometre from a point."""


@dataclass(frozen=True)
class Setting:
    url: str
    key: str
    scene: tuple[float, float]
    start: tuple[float, float]


def _fix(url: str, lon: float, lat: float, ago_s: float = 0) -> None:
    """A fix of the test engine, ``ago_s`` seconds ago."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago_s)
    with psycopg.connect(url, autocommit=True) as conn:
        done = store.store(conn, [Fix(time=when, lon=lon, lat=lat, device=UNIT)], source="test",
                           settings=GpsSettings())  # fmt: skip
        assert done.stored == 1, done.rejects


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def setting(demo_api: LiveServer, demo_url: str) -> Iterator[Setting]:
    """The dispatcher's key, the test engine as a unit with a fresh fix, and the places."""
    with engine(demo_url) as eng, eng.begin() as conn:
        accounts.add_user(conn, TESTS, USER, roles=("editor",), department="emergency",
                          service=True)  # fmt: skip
        key = accounts.create_key(conn, TESTS, USER, name="mc")
    with psycopg.connect(demo_url, autocommit=True) as conn:
        scene_row = conn.execute(SCENE, MIDDLE).fetchone()
        assert scene_row is not None, "the demo has no two-way road"
        start_row = conn.execute(START, scene_row).fetchone()
        assert start_row is not None, "no two-way road a kilometre away"
        if conn.execute("SELECT 1 FROM gps.devices WHERE id = %s", (UNIT,)).fetchone() is None:
            store.add_device(conn, UNIT, name="mc 测试消防车 Test engine", department="emergency")
    scene, start = (
        (float(scene_row[0]), float(scene_row[1])),
        (float(start_row[0]), float(start_row[1])),
    )
    found = Setting(demo_api.url, key, scene, start)
    with httpx.Client(base_url=demo_api.url, timeout=60, headers=_as(key)) as client:
        put = client.put(f"/units/{UNIT}", json={"kind": "fire-engine"})
        assert put.status_code == 200, put.text
        # (a while ago, but fresh: the drive to the scene is then no jump)
        _fix(demo_url, *found.start, ago_s=START_AGO_S)
        try:
            yield found
        finally:
            _clean(client, demo_url)


def _clean(client: httpx.Client, url: str) -> None:
    """Close the test's incidents, lift its closures, remove the test engine."""
    found = client.get(
        "/collections/incidents/items",
        params={"f": "json", "filter": "address LIKE 'mc_%' AND status <> 'closed'",
                "limit": 100},
    )  # fmt: skip
    for incident in found.json().get("features", []) if found.status_code == 200 else []:
        client.post(f"/incidents/{incident['properties']['incident_id']}/close")
    closures = client.get("/network/closures").json().get("features", [])
    for closure in closures:
        if closure["properties"]["reason"].startswith("mc_"):
            client.delete(f"/network/closures/{closure['id']}")
    client.delete(f"/units/{UNIT}")
    with psycopg.connect(url, autocommit=True) as conn, contextlib.suppress(Exception):
        store.remove_device(conn, UNIT, actor=TESTS)


def _wait(page: Any, selector: str) -> Any:
    found = page.locator(selector)
    found.first.wait_for(state="attached", timeout=WAIT_MS)
    return found


def _click(page: Any, lon: float, lat: float) -> None:
    x, y = page.evaluate("(c) => { const p = spatialMap.project(c); return [p.x, p.y]; }",
                         [lon, lat])  # fmt: skip
    page.locator("#map canvas").click(position={"x": x, "y": y})


def _source(page: Any, name: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = page.evaluate(
        "async (name) => (await spatialMap.getSource(name).getData()).features", name
    )
    return features


# -- the configuration ----------------------------------------------------------------------


def test_the_panel_is_configured_for_those_who_may_read_the_incidents(setting: Setting) -> None:
    definition = subsystems.load().get("emergency").command
    assert definition is not None and definition.minutes == [5, 10, 15]
    assert [k.id for k in definition.kinds][:2] == ["fire", "medical"]
    anonymous = httpx.get(f"{setting.url}/maps/emergency/config", timeout=60).json()
    assert anonymous["command"] is None  # the incidents are the emergency department's
    other = httpx.get(f"{setting.url}/maps/water/config", headers=_as(setting.key), timeout=60)
    assert other.json()["command"] is None  # a map without the panel
    command = httpx.get(
        f"{setting.url}/maps/emergency/config", headers=_as(setting.key), timeout=60
    ).json()["command"]
    assert command["editable"] and command["network"] == "roads"
    assert command["incidents"] == f"{setting.url}/incidents"
    assert command["live"].startswith("ws://") and command["live"].endswith("/gps/live")
    areas = command["service_areas"]
    assert areas["minutes"] == [5, 10, 15] and areas["collection"] == "fire_stations"
    assert areas["execution"].endswith("/processes/service-area/execution")


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ({"minutes": [0, 5]}, "command.minutes"),
        ({"minutes": [500]}, "at most 180 minutes"),
        ({"kinds": [{"id": "fire", "label": "a"}, {"id": "fire", "label": "b"}]},
         "listed more than once"),
        ({"kinds": [{"id": "Fire!", "label": "a"}]}, "command.kinds.0.id"),
        ({"stations": "fire_stations", "colour": "red"}, "command.colour"),
    ],
)  # fmt: skip
def test_a_bad_command_definition_is_refused(
    tmp_path: Path, command: dict[str, Any], words: str
) -> None:
    shipped = subsystems.SUBSYSTEMS_DIR / "emergency.yaml"
    definition = {**yaml.safe_load(shipped.read_text(encoding="utf-8")), "command": command}
    (tmp_path / "emergency.yaml").write_text(yaml.safe_dump(definition), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"emergency\.yaml") as caught:
        subsystems.load(tmp_path)
    assert words in str(caught.value)


def test_command_true_takes_the_defaults(tmp_path: Path) -> None:
    text = """id: mc_map
title: 测试 Test
extent: [111.9, 22.8, 112.1, 22.95]
access: public
command: true
layers:
  - {id: roads, collection: roads, kind: vector, title: 道路 Roads, style: [{type: line}]}
"""
    (tmp_path / "mc_map.yaml").write_text(text, encoding="utf-8")
    command = subsystems.load(tmp_path).get("mc_map").command
    assert command == subsystems.Command()
    assert command.network == "roads" and command.stations == "fire_stations"
    (tmp_path / "mc_map.yaml").write_text(text.replace("true", "false"), encoding="utf-8")
    assert subsystems.load(tmp_path).get("mc_map").command is None


# -- the panel ------------------------------------------------------------------------------


@requires_chromium
def test_report_rank_dispatch_arrive_and_close_an_incident(setting: Setting, demo_url: str) -> None:
    lon, lat = setting.scene
    api = httpx.Client(base_url=setting.url, timeout=60, headers=_as(setting.key))
    with api, browser_page(width=1300, height=900) as seen:
        sockets: list[str] = []
        seen.page.on("websocket", lambda ws: sockets.append(ws.url))  # type: ignore[attr-defined]
        page = open_map(seen, f"{setting.url}/maps/emergency", setting.key)
        command = page.locator("#command")
        _wait(page, "#command[data-stream='live']")
        # one connection for the page (the live tool's), with no filter: every vehicle
        assert len(sockets) == 1 and "/gps/live?" in sockets[0], sockets
        assert "device=" not in sockets[0], sockets
        until(lambda: int(command.get_attribute("data-incidents") or 0), bool, "incidents read")
        _wait(page, f"#command .command-units li[data-unit='{UNIT}'][data-status='available']")

        # -- a click on the map in the "new incident" mode, then reported
        page.evaluate("(c) => spatialMap.jumpTo({ center: c, zoom: 16 })", [lon, lat])
        page.click("#command button.new")
        _wait(page, "#command[data-placing='true']")
        form = page.locator("#command form.command-new")
        form.locator("select[name='kind']").select_option("fire")
        form.locator("select[name='level']").select_option("2")
        form.locator("input[name='address']").fill("mc_ 测试路口 Test crossing")
        form.locator("textarea[name='description']").fill("mc_ 浏览器测试 browser test")
        _click(page, lon, lat)
        typed = form.locator("input[name='location']").input_value()
        placed = [float(v) for v in typed.split(",")]
        assert abs(placed[0] - lon) < 1e-4 and abs(placed[1] - lat) < 1e-4, typed
        form.locator("button[type='submit']").click()
        detail = _wait(page, "#command .command-incident[data-status='reported']")
        incident = detail.get_attribute("data-incident")
        assert incident and incident.startswith("INC-"), incident
        _wait(page, f"#command .command-incidents li[data-incident='{incident}']"
                    "[data-status='reported']")  # fmt: skip
        said = api.get(f"/incidents/{incident}").json()
        assert said["properties"]["kind"] == "fire" and said["properties"]["level"] == 2
        where = said["geometry"]["coordinates"]
        assert abs(where[0] - lon) < 1e-4 and abs(where[1] - lat) < 1e-4
        assert any(f["properties"]["incident_id"] == incident and f["properties"]["selected"]
                   for f in _source(page, "command-incidents"))  # fmt: skip

        # -- ranked by road ETA, routes drawn; the stale units left out with why
        _wait(page, "#command .command-candidates[data-state='done']")
        row = page.locator(f"#command .command-candidates tr[data-unit='{UNIT}']")
        assert row.count() == 1, page.locator("#command .command-candidates").inner_text()
        seconds = float(row.get_attribute("data-seconds") or 0)
        assert 30 < seconds < 1200 and " min" in row.inner_text()
        routes = _source(page, "command-routes")
        mine = [r for r in routes if r["properties"]["unit"] == UNIT]
        assert mine and mine[0]["properties"]["role"] == "candidate"
        assert mine[0]["geometry"]["type"] == "LineString"
        for unit in STALE:
            left = page.locator(f"#command .excluded li[data-unit='{unit}']")
            # (aged in minutes, hours or days: the demo's fixes are months old)
            said_why = left.get_attribute("data-reason") or ""
            assert left.count() == 1 and "old (stale after" in said_why, said_why
            assert "old (stale after" in left.inner_text()
        seen.screenshot("map-emergency-command-ranked")

        # -- another dispatcher was first: refused with the server's words
        other = api.post("/incidents", json={"kind": "rescue", "lon": lon, "lat": lat,
                                             "address": "mc_ 另一事件 Another"})  # fmt: skip
        assert other.status_code == 201, other.text
        elsewhere = other.json()["properties"]["incident_id"]
        sent = api.post(f"/incidents/{elsewhere}/dispatch", json={"units": [UNIT]})
        assert sent.status_code == 200, sent.text
        _tick_only(page, UNIT)
        page.click("#command button.dispatch")
        problem = _wait(page, "#command .command-candidates .problem[data-status='409']")
        words = f"not dispatched: {UNIT} is assigned (incident {elsewhere})"
        assert words in problem.inner_text()
        assert words in page.locator("#status").inner_text()
        assert page.locator("#status.problem").count() == 1
        assert api.post(f"/incidents/{elsewhere}/close").json()["freed"] == [UNIT]
        # (the browser logs the refused request: the one console error expected)
        refused = [e for e in seen.console_errors if "409" in e and "/dispatch" in e]
        assert len(refused) == 1 and refused == seen.console_errors, seen.console_errors
        seen.console_errors.clear()

        # -- ranked again and dispatched: the route drawn, the status changed
        page.click("#command button.rank")
        _wait(page, f"#command .command-candidates[data-state='done'] tr[data-unit='{UNIT}']")
        _tick_only(page, UNIT)
        page.click("#command button.dispatch")
        _wait(page, "#command .command-incident[data-status='dispatched']")
        _wait(page, f"#command .command-assignments tr[data-unit='{UNIT}'][data-state='en-route']")
        _wait(page, f"#command .command-incidents li[data-incident='{incident}']"
                    "[data-status='dispatched']")  # fmt: skip
        _wait(page, f"#command .command-units li[data-unit='{UNIT}'][data-status='assigned']")
        sent_routes = [r for r in _source(page, "command-routes")
                       if r["properties"]["role"] == "assigned"]  # fmt: skip
        assert [r["properties"]["unit"] for r in sent_routes] == [UNIT]
        assert sent_routes[0]["geometry"]["type"] == "LineString"

        # -- a fix at the scene: on scene, told by the live stream
        _fix(demo_url, where[0] + 0.0001, where[1])  # about 10 m east
        _wait(page, "#command .command-incident[data-status='on-scene']")
        _wait(page, f"#command .command-assignments tr[data-unit='{UNIT}'][data-state='on-scene']")
        _wait(page, f"#command .command-units li[data-unit='{UNIT}'][data-status='on-scene']")
        seen.screenshot("map-emergency-command")
        _reconnect_and_catch_up(page, api, seen, incident, where)

        # -- closed (a second press confirms): the unit freed
        page.click("#command button.close-incident")
        page.click("#command button.close-incident")
        _wait(page, "#command .command-incident[data-status='closed']")
        _wait(page, f"#command .command-units li[data-unit='{UNIT}'][data-status='available']")
        _wait(page, f"#command .command-incidents.closed li[data-incident='{incident}']")
        assert "freed" in page.locator("#status").inner_text()
        seen.assert_clean()


def _reconnect_and_catch_up(
    page: Any, api: httpx.Client, seen: Any, incident: str, where: list[float]
) -> None:
    """The live connection held while an incident is reported: on reconnecting the panel
    lists it (no message told it), and the live tool's catch-up of the geofence events lists
    no arrival on scene (the engine's is in gps_events, with no fence)."""
    arrivals = api.get("/collections/gps_events/items", params={
        "f": "json", "filter": f"incident = '{incident}'", "filter-lang": "cql2-text"})  # fmt: skip
    assert arrivals.status_code == 200, arrivals.text
    [arrival] = arrivals.json()["features"]
    assert arrival["properties"]["kind"] == "on-scene"
    assert arrival["properties"]["fence_id"] is None

    page.evaluate("() => spatialLive.hold()")
    _wait(page, "#command[data-stream='reconnecting']")
    away = {
        "kind": "rescue",
        "lon": where[0] + 0.002,
        "lat": where[1],
        "address": "mc_ 断线时 Away",
    }
    other = api.post("/incidents", json=away)
    assert other.status_code == 201, other.text
    missed = other.json()["properties"]["incident_id"]
    time.sleep(1.0)
    assert page.locator(f"#command li[data-incident='{missed}']").count() == 0, "told while away"
    page.evaluate("() => spatialLive.release()")
    _wait(page, "#live[data-reconnects='1'][data-state='live']")
    _wait(page, "#command[data-stream='live']")
    _wait(page, f"#command .command-incidents li[data-incident='{missed}'][data-status='reported']")
    _wait(page, "#live[data-catchups='1']")
    assert page.locator("#live li[data-kind='on-scene']").count() == 0
    fences = page.eval_on_selector_all(
        "#live .live-events li", "items => items.map((li) => li.dataset.fence)"
    )
    assert all(f.isdigit() and f != "0" for f in fences), fences
    assert not [u for u in seen.requests if "fence_id=0" in u or "fence_id=NaN" in u], seen.requests
    assert api.post(f"/incidents/{missed}/close").status_code == 200


def _tick_only(page: Any, unit: str) -> None:
    """Tick one candidate for the dispatch, untick the others."""
    for box in page.locator("#command .command-candidates tbody input[type='checkbox']").all():
        box.set_checked(box.get_attribute("value") == unit)


@requires_chromium
def test_service_areas_and_road_closures(setting: Setting) -> None:
    lon, lat = setting.start
    with browser_page(width=1300, height=900) as seen:
        page = open_map(seen, f"{setting.url}/maps/emergency", setting.key)
        _wait(page, "#command .command-closures li")

        # -- the service areas of the fire stations: a layer of the switcher, with a legend
        row = page.locator("#layers li[data-layer='command-areas']")
        assert "Service areas" in row.inner_text()
        legend = page.locator("#legend [data-layer='command-areas']")
        assert legend.count() == 1 and "off" in (legend.get_attribute("class") or "")
        row.locator("input[type='checkbox']").check()
        _wait(page, "#layers li[data-layer='command-areas'][data-state='done']")
        areas = _source(page, "command-areas")
        assert sorted(a["properties"]["minutes"] for a in areas) == [5, 10, 15]
        assert all(a["geometry"]["type"] in {"Polygon", "MultiPolygon"} for a in areas)
        assert row.get_attribute("data-features") == "3"
        assert "off" not in (legend.get_attribute("class") or "")
        shown = page.evaluate("() => spatialMap.getLayoutProperty('command-areas', 'visibility')")
        assert shown == "visible"
        row.locator("input[type='checkbox']").uncheck()
        hidden = page.evaluate("() => spatialMap.getLayoutProperty('command-areas', 'visibility')")
        assert hidden == "none"

        # -- a closure drawn as a polygon, listed and drawn, then lifted
        page.evaluate("(c) => spatialMap.jumpTo({ center: c, zoom: 16 })", [lon, lat])
        page.fill("#command input[name='reason']", "mc_ 测试封路 Test closure")
        page.click("#command button.draw-closure")
        d = 0.0008
        corners = [(lon - d, lat - d), (lon + d, lat - d), (lon + d, lat + d), (lon - d, lat + d)]
        for corner in corners:
            _click(page, *corner)
        _click(page, *corners[0])  # the first corner again: closed
        item = _wait(page, "#command .command-closures li[data-closure]:has-text('mc_ 测试封路')")
        closure = item.get_attribute("data-closure")
        assert "in force" in item.inner_text()
        drawn = [f for f in _source(page, "command-closures") if str(f["id"]) == closure]
        assert drawn and drawn[0]["geometry"]["type"] == "Polygon"
        item.locator("button.lift").click()
        page.locator(f"#command .command-closures li[data-closure='{closure}']").wait_for(
            state="detached", timeout=WAIT_MS
        )
        assert "Closure lifted" in page.locator("#status").inner_text()
        assert not [f for f in _source(page, "command-closures") if str(f["id"]) == closure]
        seen.assert_clean()


@requires_chromium
def test_a_new_incident_placed_by_a_typed_coordinate_or_the_search(setting: Setting) -> None:
    station = httpx.get(
        f"{setting.url}/collections/fire_stations/items", params={"f": "json", "limit": 1}
    ).json()["features"][0]
    with browser_page(width=1300, height=900) as seen:
        page = open_map(seen, f"{setting.url}/maps/emergency", setting.key)
        page.click("#command button.new")
        _wait(page, "#command[data-placing='true']")
        form = page.locator("#command form.command-new")
        location = form.locator("input[name='location']")
        page.evaluate("() => spatialMap.jumpTo({ center: [112.01, 22.9], zoom: 16 })")
        location.fill("22.9N 112.01E")  # as the search box takes them: placed at once
        off = page.evaluate(
            """() => {
                const tip = spatialMap.project([112.01, 22.9]);
                const canvas = spatialMap.getCanvas().getBoundingClientRect();
                const box = document.querySelector('.command-marker').getBoundingClientRect();
                return Math.hypot(box.left + box.width / 2 - canvas.left - tip.x,
                                  box.bottom - canvas.top - tip.y);
            }"""
        )
        assert off < 12, f"the marker is {off} px from the place typed"
        location.fill("not a place")
        assert not page.evaluate("() => document.querySelector('.command-new').checkValidity()")

        # the place last chosen with the map's search
        assert form.locator("button.found").is_hidden()
        page.fill("#search-box", station["properties"]["name"])
        page.press("#search-box", "Enter")
        chosen = _wait(page, "#search[data-chosen]").get_attribute("data-chosen")
        assert chosen == f"fire-stations/{station['id']}", chosen
        found = form.locator("button.found")
        found.wait_for(state="visible", timeout=WAIT_MS)
        assert station["properties"]["name"] in found.inner_text()
        found.click()
        lon, lat = (float(v) for v in location.input_value().split(","))
        x, y = station["geometry"]["coordinates"]
        assert abs(lon - x) < 1e-6 and abs(lat - y) < 1e-6, (lon, lat, x, y)
        assert form.locator("input[name='address']").input_value() == station["properties"]["name"]

        form.locator("button", has_text="Cancel").click()  # nothing reported
        assert form.is_hidden() and page.locator(".command-marker").count() == 0
        seen.assert_clean()
