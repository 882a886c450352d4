"""The map pages' measure and analyse tools (api/static/maps/{draw,measure,analyse}.js) in a
real browser against the demo city.

Measuring: the lengths and areas the page computes on the CGCS2000 ellipsoid match pyproj's
geodesics (GRS 80) for the very vertices drawn; double-click, Enter, a click on the first
corner, Backspace and Escape do what the instructions say; the labels stay until cleared.
Analysing: a polygon drawn on the land map and run through ``intersect-summarise`` gives the
table the process gives when POSTed directly for the same polygon, and the JSON and CSV
downloads hold that result; the emergency map's nearest hospitals are three features, drawn,
and its cordon around a drawn shape is the process's buffer, drawn; the environment map's
NDVI by district and inside a drawn area run as jobs (201, polled) and match direct runs; the
land map's vegetation loss draws the changed areas and lists the parcels; a self-intersecting
polygon shows the server's refusal. Screenshots ``map-measure`` and ``map-analyse`` go to
``var/test-screenshots/``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from browser import WAIT_MS, browser_page, open_map, requires_chromium
from pyproj import Geod
from support import LiveServer

GEOD = Geod(ellps="GRS80")
MIDDLE = (112.0, 22.9)
"""The middle of the demo city [111.9497, 22.8582, 112.0503, 22.9417]."""
ROWS = """rows => rows.map(r => Object.fromEntries(
  [...r.cells].map(c => [c.dataset.column, JSON.parse(c.dataset.value)])))"""


def _at(page: Any, lon: float, lat: float) -> dict[str, float]:
    x, y = page.evaluate(
        f"(() => {{ const p = spatialMap.project([{lon}, {lat}]); return [p.x, p.y]; }})()"
    )
    return {"x": x, "y": y}


def _click(page: Any, lon: float, lat: float) -> None:
    page.locator("#map canvas").click(position=_at(page, lon, lat))


def _value(page: Any) -> dict[str, Any]:
    """The measure readout's figures and the geometry they are of."""
    value = page.locator("#measure .value")
    found = {k: value.get_attribute(f"data-{k}") for k in ("state", "metres", "square-metres")}
    geometry = value.get_attribute("data-geometry")
    found["geometry"] = json.loads(geometry) if geometry else None
    return found


def _geodesic_length(coordinates: list[list[float]]) -> float:
    lons, lats = zip(*coordinates, strict=True)
    return float(GEOD.line_length(lons, lats))


def _close_to(coordinates: list[list[float]], intended: list[tuple[float, float]]) -> bool:
    """Each drawn vertex within ~2 pixels (at this zoom, well under 1e-3°) of the point
    aimed at."""
    return len(coordinates) == len(intended) and all(
        abs(c[0] - p[0]) < 1e-3 and abs(c[1] - p[1]) < 1e-3
        for c, p in zip(coordinates, intended, strict=True)
    )


def _finished(page: Any) -> str:
    """Wait for the analyse result; its state (done or failed)."""
    result = page.locator("#analyse .result")
    page.locator(
        "#analyse .result[data-state='done'], #analyse .result[data-state='failed']"
    ).wait_for(state="attached", timeout=WAIT_MS)
    state: str = result.get_attribute("data-state")
    return state


def _execute(api: LiveServer, process: str, inputs: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        f"{api.url}/processes/{process}/execution", json={"inputs": inputs}, timeout=120
    )
    assert answer.status_code == 200, answer.text
    outputs: dict[str, Any] = answer.json()
    return outputs


def _config(api: LiveServer, subsystem: str) -> dict[str, Any]:
    config: dict[str, Any] = httpx.get(f"{api.url}/maps/{subsystem}/config", timeout=60).json()
    return config


@requires_chromium
def test_measuring_lengths_and_areas_on_the_ellipsoid(demo_api: LiveServer) -> None:
    a, b, c = (111.97, 22.87), (112.03, 22.93), (112.04, 22.875)
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{demo_api.url}/maps/water")
        canvas = page.locator("#map canvas")
        page.click("#measure button[data-mode='line']")
        assert page.locator("body[data-tool='measure']").count() == 1
        assert page.locator("#measure .hint").is_visible()
        _click(page, *a)
        _click(page, *b)
        canvas.hover(position=_at(page, *c))  # the readout follows the pointer
        live = _value(page)
        assert live["state"] == "drawing" and len(live["geometry"]["coordinates"]) == 3
        assert float(live["metres"]) == pytest.approx(
            _geodesic_length(live["geometry"]["coordinates"]), rel=1e-6
        )
        assert page.locator(".measure-label.live").count() == 1
        _click(page, *c)
        page.keyboard.press("Backspace")  # takes c back
        page.keyboard.press("Enter")
        first = _value(page)
        assert first["state"] == "done" and "data-tool" not in page.evaluate(
            "Object.keys(document.body.dataset).map(k => `data-${k}`)"
        )
        line = first["geometry"]["coordinates"]
        assert _close_to(line, [a, b])
        _, _, expected = GEOD.inv(line[0][0], line[0][1], line[1][0], line[1][1])
        assert float(first["metres"]) == pytest.approx(expected, rel=1e-3)
        assert float(first["metres"]) == pytest.approx(expected, abs=0.01)  # Vincenty: mm
        assert 8_000 < expected < 10_000
        assert " km" in page.locator("#measure .value").text_content()

        page.click("#measure button[data-mode='line']")  # a path, ended by a double-click
        _click(page, *a)
        _click(page, *b)
        canvas.dblclick(position=_at(page, *c))
        path = _value(page)
        assert path["state"] == "done" and _close_to(path["geometry"]["coordinates"], [a, b, c])
        assert float(path["metres"]) == pytest.approx(
            _geodesic_length(path["geometry"]["coordinates"]), rel=1e-3, abs=0.01
        )

        corners = [(111.96, 22.865), (112.02, 22.862), (112.04, 22.92), (111.985, 22.935)]
        page.click("#measure button[data-mode='polygon']")
        for corner in corners:
            _click(page, *corner)
        _click(page, corners[0][0] + 0.0001, corners[0][1])  # on the first corner: closes
        shape = _value(page)
        assert shape["state"] == "done"
        ring = shape["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and _close_to(ring[:-1], corners)
        polygon = shapely.geometry.shape(shape["geometry"])
        area, around = GEOD.geometry_area_perimeter(polygon)
        assert float(shape["square-metres"]) == pytest.approx(abs(area), rel=1e-4)
        assert float(shape["metres"]) == pytest.approx(around, rel=1e-6)
        assert 30e6 < abs(area) < 60e6
        text = page.locator("#measure .value").text_content()
        assert " ha" in text and "km²" in text and "m²" in text
        assert page.locator(".measure-label.final").count() == 3
        assert page.locator(".measure-label.live").count() == 0
        seen.screenshot("map-measure")

        page.click("#measure button[data-mode='line']")  # Escape cancels, leaving the rest
        _click(page, *a)
        page.keyboard.press("Escape")
        assert _value(page)["state"] == "idle"
        assert page.locator("body[data-tool]").count() == 0
        assert page.locator(".measure-label.final").count() == 3
        page.click("#measure button.clear")
        assert page.locator(".measure-label").count() == 0
        assert page.evaluate("spatialMap.getSource('measure').getData()")["features"] == []
        seen.assert_clean()


@requires_chromium
def test_a_drawn_area_summarised_on_the_land_map(demo_api: LiveServer) -> None:
    offer = next(
        p for p in _config(demo_api, "land")["processes"]
        if p["id"] == "intersect-summarise" and p["inputs"].get("group_by") == "dlmc"
    )  # fmt: skip
    x, y = MIDDLE
    corners = [(x - 0.008, y - 0.006), (x + 0.008, y - 0.006), (x + 0.008, y + 0.006),
               (x - 0.008, y + 0.006)]  # fmt: skip
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{demo_api.url}/maps/land")
        page.click("#analyse button[data-process='intersect-summarise']")
        assert page.locator("body[data-tool='analyse']").count() == 1
        assert page.locator("#analyse .result").get_attribute("data-state") == "drawing"
        for corner in corners:
            _click(page, *corner)
        page.keyboard.press("Enter")
        assert _finished(page) == "done", page.locator("#analyse .result").text_content()
        geometry = json.loads(page.locator("#analyse .result").get_attribute("data-geometry"))
        assert geometry["type"] == "Polygon" and _close_to(geometry["coordinates"][0][:-1], corners)
        shown = page.eval_on_selector_all("#analyse table[data-output='summary'] tbody tr", ROWS)
        direct = _execute(
            demo_api, "intersect-summarise", {**offer["inputs"], "geometry": geometry}
        )
        assert shown == direct["summary"]
        assert len(shown) >= 3 and sum(r["count"] for r in shown) >= 20
        total = page.locator("#analyse table[data-output='summary'] tfoot td[data-column='count']")
        assert json.loads(total.get_attribute("data-value")) == sum(r["count"] for r in shown)
        cells = page.locator("#analyse table[data-output='summary'] td[data-column='area_m2']")
        assert " ha" in cells.first.text_content()
        drawn = page.evaluate("spatialMap.getSource('analyse-input').getData()")
        assert drawn["features"][0]["geometry"] == geometry
        assert page.locator("body[data-tool]").count() == 0

        with page.expect_download() as saved:
            page.click("#analyse [data-download='json']")
        assert saved.value.suggested_filename.endswith(".json")
        assert json.loads(Path(saved.value.path()).read_text(encoding="utf-8")) == direct
        with page.expect_download() as saved:
            page.click("#analyse [data-download='csv'][data-output='summary']")
        text = Path(saved.value.path()).read_text(encoding="utf-8-sig")
        table = list(csv.DictReader(io.StringIO(text)))
        assert [(r["value"], int(r["count"]), float(r["area_m2"])) for r in table] == [
            (r["value"], r["count"], r["area_m2"]) for r in direct["summary"]
        ]
        assert page.locator("#analyse [data-download='geojson']").count() == 0  # no features
        seen.screenshot("map-analyse")
        seen.assert_clean()


def test_the_planning_map_offers_land_use_in_a_drawn_area(demo_api: LiveServer) -> None:
    offers = _config(demo_api, "planning")["processes"]
    assert any(
        p["id"] == "intersect-summarise" and p["draw"] == "polygon"
        and p["inputs"] == {"collection": "parcels", "group_by": "dlmc"}
        for p in offers
    )  # fmt: skip


@requires_chromium
def test_the_nearest_hospitals_to_a_clicked_point(demo_api: LiveServer) -> None:
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{demo_api.url}/maps/emergency")
        button = page.locator("#analyse button[data-process='nearest']").first
        offers = _config(demo_api, "emergency")["processes"]
        offer = offers[int(button.get_attribute("data-offer"))]
        assert offer["draw"] == "point"
        button.click()
        _click(page, *MIDDLE)
        assert _finished(page) == "done", page.locator("#analyse .result").text_content()
        point = json.loads(page.locator("#analyse .result").get_attribute("data-geometry"))
        assert point["type"] == "Point"
        shown = page.eval_on_selector_all("#analyse table[data-output='features'] tbody tr", ROWS)
        direct = _execute(demo_api, "nearest", {**offer["inputs"], "point": point["coordinates"]})
        assert len(shown) == 3 == len(direct["features"])
        assert [(r["id"], r["distance_m"]) for r in shown] == [
            (f["id"], f["distance_m"]) for f in direct["features"]
        ]
        assert page.locator("#analyse .result").get_attribute("data-features") == "3"
        drawn = page.evaluate("spatialMap.getSource('analyse-result').getData()")
        assert [f["id"] for f in drawn["features"]] == [f["id"] for f in direct["features"]]
        assert all(f["geometry"]["type"] == "Point" for f in drawn["features"])
        with page.expect_download() as saved:
            page.click("#analyse [data-download='geojson']")
        collection = json.loads(Path(saved.value.path()).read_text(encoding="utf-8"))
        assert len(collection["features"]) == 3

        n, cordon = next((n, p) for n, p in enumerate(offers) if p["id"] == "buffer")
        page.click(f"#analyse button[data-offer='{n}']")  # a drawn shape grown by 300 m
        x, y = MIDDLE
        for corner in ((x - 0.004, y - 0.003), (x + 0.004, y - 0.003), (x, y + 0.004)):
            _click(page, *corner)
        page.keyboard.press("Enter")
        assert _finished(page) == "done", page.locator("#analyse .result").text_content()
        triangle = json.loads(page.locator("#analyse .result").get_attribute("data-geometry"))
        direct = _execute(demo_api, "buffer", {**cordon["inputs"], "geometry": triangle})
        drawn = page.evaluate("spatialMap.getSource('analyse-result').getData()")
        assert [f["geometry"] for f in drawn["features"]] == [direct["geometry"]]
        grown = shapely.geometry.shape(direct["geometry"])
        assert grown.contains(shapely.geometry.shape(triangle))
        seen.assert_clean()


@requires_chromium
def test_ndvi_by_district_runs_as_a_job(demo_api: LiveServer) -> None:
    offers = _config(demo_api, "environment")["processes"]
    n, offer = next(
        (n, p) for n, p in enumerate(offers)
        if p["id"] == "zonal-statistics" and not p["draw"]
    )  # fmt: skip
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{demo_api.url}/maps/environment")
        page.click(f"#analyse button[data-offer='{n}']")
        assert _finished(page) == "done", page.locator("#analyse .result").text_content()
        shown = page.eval_on_selector_all("#analyse table[data-output='zones'] tbody tr", ROWS)
        direct = _execute(demo_api, "zonal-statistics", offer["inputs"])
        assert shown == direct["zones"] and shown
        assert all(-1 <= r["mean"] <= 1 for r in shown)
        seen.assert_clean()
    jobs = [r for r in seen.responses if "/jobs/" in r.url]
    assert any(r.status == 201 for r in seen.responses if r.url.endswith("/execution"))
    assert jobs and all(r.status == 200 for r in jobs)


@requires_chromium
def test_ndvi_inside_a_drawn_area_on_the_environment_map(demo_api: LiveServer) -> None:
    offers = _config(demo_api, "environment")["processes"]
    n, offer = next(
        (n, p) for n, p in enumerate(offers)
        if p["id"] == "zonal-statistics" and p["draw"] == "polygon"
    )  # fmt: skip
    x, y = MIDDLE
    corners = [(x - 0.02, y - 0.015), (x + 0.015, y - 0.02), (x + 0.02, y + 0.01),
               (x - 0.01, y + 0.02)]  # fmt: skip
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{demo_api.url}/maps/environment")
        page.click(f"#analyse button[data-offer='{n}']")
        for corner in corners:
            _click(page, *corner)
        page.keyboard.press("Enter")
        assert _finished(page) == "done", page.locator("#analyse .result").text_content()
        geometry = json.loads(page.locator("#analyse .result").get_attribute("data-geometry"))
        assert _close_to(geometry["coordinates"][0][:-1], corners)
        shown = page.eval_on_selector_all("#analyse table[data-output='zones'] tbody tr", ROWS)
        direct = _execute(demo_api, "zonal-statistics", {**offer["inputs"], "geometry": geometry})
        assert shown == direct["zones"] and len(shown) == 1
        (zone,) = shown
        assert -1 <= zone["min"] <= zone["mean"] <= zone["max"] <= 1
        assert zone["count"] > 1000
        item = page.locator("#analyse table.values td[data-column='item']")
        assert json.loads(item.get_attribute("data-value")) == direct["item"]
        seen.assert_clean()
    assert any(r.status == 201 for r in seen.responses if r.url.endswith("/execution"))


@requires_chromium
def test_vegetation_loss_drawn_with_its_parcels(demo_api: LiveServer) -> None:
    offers = _config(demo_api, "land")["processes"]
    n, offer = next((n, p) for n, p in enumerate(offers) if p["id"] == "change-detection")
    direct = _execute(demo_api, "change-detection", offer["inputs"])
    assert direct["changes"]["features"]
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{demo_api.url}/maps/land")
        page.click(f"#analyse button[data-offer='{n}']")
        assert _finished(page) == "done", page.locator("#analyse .result").text_content()
        result = page.locator("#analyse .result")
        assert result.get_attribute("data-features") == str(len(direct["changes"]["features"]))
        drawn = page.evaluate("spatialMap.getSource('analyse-result').getData()")
        assert drawn["features"] == direct["changes"]["features"]
        shown = page.eval_on_selector_all("#analyse table[data-output='parcels'] tbody tr", ROWS)
        assert shown == direct["parcels"][:200]
        with page.expect_download() as saved:
            page.click("#analyse [data-download='geojson']")
        collection = json.loads(Path(saved.value.path()).read_text(encoding="utf-8"))
        assert collection["features"] == direct["changes"]["features"]
        seen.assert_clean()


@requires_chromium
def test_a_self_intersecting_area_is_refused_with_the_servers_reason(
    demo_api: LiveServer,
) -> None:
    x, y = MIDDLE
    bowtie = [(x - 0.01, y - 0.01), (x + 0.01, y + 0.01), (x + 0.01, y - 0.01),
              (x - 0.01, y + 0.01)]  # fmt: skip
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{demo_api.url}/maps/land")
        result = page.locator("#analyse .result")
        page.click("#analyse button[data-process='intersect-summarise']")
        _click(page, *bowtie[0])
        page.click("#measure button[data-mode='line']")  # measuring ends the analyse sketch
        assert result.get_attribute("data-state") == "idle"
        assert page.locator("body[data-tool='measure']").count() == 1
        page.keyboard.press("Escape")
        assert page.locator("body[data-tool]").count() == 0
        page.click("#analyse button[data-process='intersect-summarise']")
        page.click("#analyse button.cancel")  # so does Cancel
        assert result.get_attribute("data-state") == "idle"
        assert page.locator("body[data-tool]").count() == 0

        page.click("#analyse button[data-process='intersect-summarise']")
        for corner in bowtie:
            _click(page, *corner)
        page.keyboard.press("Enter")
        assert _finished(page) == "failed"
        message = page.locator("#analyse .result .problem").text_content()
        assert "not a valid geometry" in message
        assert "not a valid geometry" in page.locator("#status.problem").text_content()
        assert not page.locator("#analyse button[data-process]").first.is_disabled()
        assert not seen.blocked
    # The only error: the browser's own note of the refused request.
    assert len(seen.console_errors) == 1 and "400" in seen.console_errors[0], seen.console_errors
