"""The monitoring maps (api/static/maps/monitor.js, chart.js) in a real browser, on the demo
city: the water map's gauges and the environment map's stations coloured by their latest
readings, a chart of a station's readings with its threshold lines, the alarms listed live.

Readings are posted over HTTP (the SensorThings API, ``POST /sta/v1.1/Observations``) by an
admin: on the water map one gauge above its danger level, one between its warning and danger
levels, one under both; a viewer opens the map (a signed-in user of a department of their
own): the panel lists the three with their levels, the map's features carry them as
feature-state and are drawn in the levels' colours (the pixels under each gauge); a click on
a gauge opens the chart of its water level with the warning and danger lines. A reading
above the danger level posted while the page is open raises an alarm that the page lists at
once, from the live stream (the page's one connection, live.js, hands it on), and colours the
gauge; a reading back under the warning level clears it. On the environment map three air
stations get an AQI of each of three bands and are drawn in the bands' standard colours,
with the six bands leading the legend. No console error, no request beyond loopback. The
stations are ones with no alarm, and their last readings before the test are posted again
at its end (the session's database is shared: the demo's alarms stay as they were).
Screenshots: ``var/test-screenshots/map-monitor-{water,environment}.png``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from browser import WAIT_MS, browser_page, open_map, requires_chromium
from rastercases import decode_image
from support import TESTS, LiveServer, admin_key, until

from layers import subsystems
from spatial import accounts
from spatial.db import engine
from spatial.errors import ConfigurationError

VIEWER = "mm_viewer"
WATER = {"normal": "#1c7ed6", "warning": "#f59f00", "danger": "#e03131"}
AQI = {"good": "#00e400", "moderate": "#ffff00", "light": "#ff7e00", "medium": "#ff0000",
       "heavy": "#99004c", "severe": "#7e0023"}  # fmt: skip
"""The colours of HJ 633-2012's AQI bands."""
CALM = frozenset({None, "good", "moderate"})
"""The stations' levels with no alarm (the bands under the AQI's 'light')."""
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TOLERANCE = 8
"""Per channel, between a level's colour and a pixel at the middle of a station's circle."""


@dataclass(frozen=True)
class Station:
    key: str
    thing: int
    datastream: int
    lonlat: tuple[float, float]
    thresholds: dict[str, float]
    value: float
    """The latest reading before the test's (posted again at its end)."""


@dataclass
class Setting:
    url: str
    admin: httpx.Client
    viewer: str
    last: dt.datetime = EPOCH
    """The time of the last reading posted."""


@pytest.fixture(scope="module")
def setting(demo_api: LiveServer, demo_url: str) -> Iterator[Setting]:
    """An admin's client (to post readings) and a viewer's key (to open the maps)."""
    with engine(demo_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "mm_dept", "Monitoring maps test")
        accounts.add_user(conn, TESTS, VIEWER, roles=("viewer",), department="mm_dept",
                          service=True)  # fmt: skip
        viewer = accounts.create_key(conn, TESTS, VIEWER, name="mm")
    headers = {"Authorization": f"Bearer {admin_key(demo_url)}"}
    with httpx.Client(base_url=demo_api.url, timeout=60, headers=headers) as admin:
        yield Setting(demo_api.url, admin, viewer)


def _stations(admin: httpx.Client, collection: str, prop: str, count: int) -> list[Station]:
    """``count`` stations of ``collection`` with a reading of ``prop`` that has numeric
    thresholds, and no alarm (the demo's gauges above warning and its polluted station
    are left as they are: the alarms' tests count on them)."""
    found = admin.get("/alarms/status", params={"collection": collection})
    assert found.status_code == 200, found.text
    picked = []
    for feature in found.json()["features"]:
        if feature["properties"]["level"] not in CALM:
            continue
        for d in feature["properties"]["datastreams"]:
            limits = {t["level"]: t["above"] for t in d.get("thresholds") or []
                      if isinstance(t.get("above"), int | float)}  # fmt: skip
            if d["property"].lower() == prop.lower() and limits and d["value"] is not None:
                lon, lat = feature["geometry"]["coordinates"][:2]
                picked.append(Station(str(feature["id"]), int(feature["properties"]["thing"]),
                                      int(d["id"]), (lon, lat), limits, d["value"]))  # fmt: skip
                break
    assert len(picked) >= count, f"{collection}: {len(picked)} stations with {prop!r}"
    return picked[:count]


def _post(setting: Setting, station: Station, value: float) -> None:
    """A reading of the station's datastream, now (in whole seconds, each later than the
    last: one reading per datastream and time)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    setting.last = max(now, setting.last + dt.timedelta(seconds=1))
    body = {"Datastream": {"@iot.id": station.datastream}, "result": value,
            "phenomenonTime": setting.last.isoformat().replace("+00:00", "Z")}  # fmt: skip
    done = setting.admin.post("/sta/v1.1/Observations", json=body)
    assert done.status_code == 201, done.text


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def _drawn_in(page: Any, station: Station, colour: str) -> bool:
    """Whether the pixels at the middle of the station's circle are ``colour``."""
    x, y = page.evaluate("(c) => { const p = spatialMap.project(c); return [p.x, p.y]; }",
                         list(station.lonlat))  # fmt: skip
    pixels, _ = decode_image(page.locator("#map").screenshot())
    rgb = np.moveaxis(pixels[:3], 0, -1).astype(np.int16)
    row, col = round(y), round(x)
    window = rgb[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
    return bool((np.abs(window - _rgb(colour)).max(axis=-1) <= TOLERANCE).any())


def _levels(page: Any) -> dict[str, str]:
    rows: list[tuple[str, str]] = page.eval_on_selector_all(
        "#monitor tr[data-key]", "rows => rows.map((r) => [r.dataset.key, r.dataset.level])"
    )
    return dict(rows)


def _wait(page: Any, selector: str) -> Any:
    found = page.locator(selector)
    found.first.wait_for(state="attached", timeout=WAIT_MS)
    return found


def _click(page: Any, lon: float, lat: float) -> None:
    x, y = page.evaluate("(c) => { const p = spatialMap.project(c); return [p.x, p.y]; }",
                         [lon, lat])  # fmt: skip
    page.locator("#map canvas").click(position={"x": x, "y": y})


# -- the configuration ----------------------------------------------------------------------


def test_the_water_and_environment_maps_are_monitored(setting: Setting) -> None:
    headers = {"Authorization": f"Bearer {setting.viewer}"}
    water = httpx.get(f"{setting.url}/maps/water/config", headers=headers, timeout=60).json()
    monitor = water["monitor"]
    assert monitor["layer"] == "water-gauges" and monitor["key"] == "gauge_id"
    assert monitor["status"] == f"{setting.url}/alarms/status?collection=water_gauges"
    assert monitor["alarms"] == f"{setting.url}/alarms"
    assert monitor["sta"] == f"{setting.url}/sta/v1.1"
    assert monitor["live"] == water["live"]["url"]
    assert {lv["id"]: lv["color"] for lv in monitor["levels"]} == WATER
    gauges = next(layer for layer in water["layers"] if layer["id"] == "water-gauges")
    assert [e["color"] for e in gauges["legend"][:3]] == list(WATER.values())  # levels first
    environment = httpx.get(f"{setting.url}/maps/environment/config", timeout=60).json()
    assert {lv["id"]: lv["color"] for lv in environment["monitor"]["levels"]} == AQI
    assert environment["monitor"]["property"] == "AQI" and monitor["property"] is None
    planning = httpx.get(f"{setting.url}/maps/planning/config", timeout=60).json()
    assert planning["monitor"] is None


@pytest.mark.parametrize(
    ("monitor", "words"),
    [
        ({"layer": "no-such-layer", "title": "t", "levels": [{"id": "a", "label": "a",
                                                              "color": "#000000"}]},
         "not a vector layer"),
        ({"layer": "imagery-ndwi", "title": "t", "levels": [{"id": "a", "label": "a",
                                                             "color": "#000000"}]},
         "not a vector layer"),
        ({"layer": "water-gauges", "title": "t", "levels": []}, "monitor.levels"),
        ({"layer": "water-gauges", "title": "t", "levels": [
            {"id": "a", "label": "a", "color": "#000000"},
            {"id": "a", "label": "b", "color": "#ffffff"}]}, "listed twice"),
        ({"layer": "water-gauges", "title": "t", "levels": [
            {"id": "a", "label": "a", "color": "red"}]}, "monitor.levels.0.color"),
    ],
)  # fmt: skip
def test_a_bad_monitor_definition_is_refused(
    tmp_path: Path, monitor: dict[str, Any], words: str
) -> None:
    shipped = subsystems.SUBSYSTEMS_DIR / "water.yaml"
    definition = {**yaml.safe_load(shipped.read_text(encoding="utf-8")), "monitor": monitor}
    (tmp_path / "water.yaml").write_text(yaml.safe_dump(definition), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"water\.yaml") as caught:
        subsystems.load(tmp_path)
    assert words in str(caught.value)


# -- the water map --------------------------------------------------------------------------


@requires_chromium
def test_gauges_by_level_a_chart_and_alarms_live_on_the_water_map(setting: Setting) -> None:
    high, middle, low = _stations(setting.admin, "water_gauges", "Water level", 3)
    values = {
        high.key: high.thresholds["danger"] + 0.5,
        low.key: low.thresholds["warning"] - 1,
        middle.key: (middle.thresholds["warning"] + middle.thresholds["danger"]) / 2,
    }
    for station in (high, middle, low):
        _post(setting, station, values[station.key])
    try:
        with browser_page(width=1300, height=900) as seen:
            sockets: list[str] = []
            seen.page.on("websocket", lambda ws: sockets.append(ws.url))  # type: ignore[attr-defined]
            page = open_map(seen, f"{setting.url}/maps/water", setting.viewer)
            _wait(page, "#monitor[data-state='done'][data-stream='live']")
            assert len(sockets) == 1, sockets  # the live tool's, shared
            expected = {high.key: "danger", middle.key: "warning", low.key: "normal"}
            assert {k: _levels(page).get(k) for k in expected} == expected
            for station in (high, middle, low):
                level = expected[station.key]
                state = page.evaluate("(k) => spatialMonitor.level(k)", station.key)
                assert state == level, (station.key, state)
                drawn = partial(_drawn_in, page, station, WATER[level])
                until(drawn, what=f"{station.key} drawn in {level}'s colour")
            seen.screenshot("map-monitor-water")
            _chart_of_a_clicked_gauge(page, high, values[high.key])
            uplot = [r for r in seen.responses if r.url.endswith("/uPlot.esm.js")]
            assert [(r.url, r.status) for r in uplot] == [
                (f"{setting.url}/vendor/uplot/dist/uPlot.esm.js", 200)
            ]  # vendored, this host
            _an_alarm_raised_and_cleared_live(page, setting, low)
            seen.assert_clean()
    finally:
        for station in (high, middle, low):
            _post(setting, station, station.value)


def _chart_of_a_clicked_gauge(page: Any, station: Station, value: float) -> None:
    """A click on the gauge: its water level of the last 48 h, with the threshold lines."""
    page.evaluate("(c) => spatialMap.jumpTo({ center: c, zoom: 15 })", list(station.lonlat))
    page.locator("body[data-state='drawn']").wait_for(state="attached", timeout=WAIT_MS)
    until(lambda: page.evaluate("() => spatialMap.loaded()"), what="the map at the gauge")
    _click(page, *station.lonlat)
    _wait(page, f".monitor-view[data-key='{station.key}'] .monitor-chart[data-state='done']")
    chart = page.evaluate("() => spatialMonitor.chart()")
    assert chart["datastream"] == station.datastream and chart["canvas"]
    assert chart["points"] >= 1 and value in chart["values"], chart
    lines = {t["level"]: t["above"] for t in chart["thresholds"]}
    assert lines == {k: station.thresholds[k] for k in ("warning", "danger")}, chart
    labels = [s["label"] for s in chart["series"]]
    assert len(labels) == 3 and "Water level" in labels[0], labels
    strokes = [s["stroke"] for s in chart["series"][1:]]
    assert strokes == [WATER["warning"], WATER["danger"]], strokes
    box = page.locator(".monitor-chart")
    assert box.locator("canvas").count() == 1
    assert box.get_attribute("data-thresholds") == (
        f"warning:{station.thresholds['warning']:g},danger:{station.thresholds['danger']:g}"
    )


def _an_alarm_raised_and_cleared_live(page: Any, setting: Setting, station: Station) -> None:
    """A reading above the danger level: listed at once (no read of the alarms but the
    first: the live stream told it), the gauge coloured; a reading under it clears it."""
    alarm = f"#monitor .monitor-alarms li[data-thing='{station.thing}']"
    assert page.locator(alarm).count() == 0
    _post(setting, station, station.thresholds["danger"] + 1)
    raised = _wait(page, f"{alarm}[data-level='danger'][data-datastream='{station.datastream}']")
    assert raised.count() == 1
    until(lambda: page.evaluate("(k) => spatialMonitor.level(k)", station.key) == "danger",
          what="the gauge at danger")  # fmt: skip
    _wait(page, f"#monitor tr[data-key='{station.key}'][data-level='danger']")
    _post(setting, station, station.thresholds["warning"] - 1)
    page.locator(alarm).wait_for(state="detached", timeout=WAIT_MS)
    until(lambda: page.evaluate("(k) => spatialMonitor.level(k)", station.key) == "normal",
          what="the gauge normal again")  # fmt: skip


# -- the environment map ---------------------------------------------------------------------


@requires_chromium
def test_stations_by_aqi_band_on_the_environment_map(setting: Setting) -> None:
    stations = _stations(setting.admin, "env_stations", "AQI", 3)
    bands = dict(zip((s.key for s in stations), ("good", "light", "medium"), strict=True))
    values = {"good": 30.0, "light": 120.0, "medium": 170.0}
    for station in stations:
        _post(setting, station, values[bands[station.key]])
    try:
        with browser_page(width=1300, height=900) as seen:
            page = open_map(seen, f"{setting.url}/maps/environment", setting.viewer)
            _wait(page, "#monitor[data-state='done']")
            assert {s.key: _levels(page).get(s.key) for s in stations} == bands
            page.evaluate(
                "() => spatialMap.setLayoutProperty('imagery-ndvi', 'visibility', 'none')"
            )
            for station in stations:
                band = bands[station.key]
                assert page.evaluate("(k) => spatialMonitor.level(k)", station.key) == band
                drawn = partial(_drawn_in, page, station, AQI[band])
                until(drawn, what=f"{station.key} drawn in {band}'s colour")
            legend = page.locator("#legend [data-layer='env-stations'] li")
            swatches = legend.evaluate_all(
                "items => items.map((li) => li.querySelector('.swatch').style"
                ".getPropertyValue('--colour'))"
            )
            assert swatches[:6] == list(AQI.values()), swatches
            assert "优" in legend.first.inner_text() and "严重" in legend.nth(5).inner_text()
            seen.screenshot("map-monitor-environment")
            page.locator(f"#monitor tr[data-key='{stations[2].key}'] button.go").click()
            _wait(page, ".monitor-chart[data-state='done']")
            chart = page.evaluate("() => spatialMonitor.chart()")
            assert chart["datastream"] == stations[2].datastream and 170.0 in chart["values"]
            lines = [(t["level"], t["above"]) for t in chart["thresholds"]]
            assert lines[:3] == [("moderate", 50), ("light", 100), ("medium", 150)], lines
            seen.assert_clean()
    finally:
        for station in stations:
            _post(setting, station, station.value)
