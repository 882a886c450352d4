"""The flood extent panel of the water and emergency maps (api/static/maps/flood.js) in a real
browser, on the demo city.

The configuration: the panel is offered to whoever may read the gauges, with the option of
closing roads only to those who may close them (an admin, the emergency department's
editors), and not at all on a map whose DEM the caller cannot see. In Chromium, an admin on
the emergency map picks gauge YF-SW-02 at its danger level with its roads closed: the
extent is the process's (the same area as a direct run), drawn and zoomed to; the affected
parcels, facilities and roads are listed per collection with their counts, the population
by district; the closure made is listed and the command panel's closures layer reads it
(the window event spatial:closures); a level the process refuses shows its message; a seed
point clicked on the map with a level in metres runs the level method, as a direct run at
that point does. The closure is lifted at the end. No request leaves loopback.

The DEM is the demo's ``dem``; a demo loaded without one gets the city's terrain built here
(``floodcase.demo_dem``). Screenshot: ``var/test-screenshots/map-flood.png``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import floodcase as fc
import httpx
import pytest
import yaml
from browser import WAIT_MS, browser_page, open_map, requires_chromium
from support import TESTS, LiveServer, admin_key, until

from api import create_app
from layers import subsystems
from spatial import accounts
from spatial.db import engine
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import MapsSettings, Settings

GAUGE = "YF-SW-02"
OWN_DEM = "mf_demo_dem"


@dataclass(frozen=True)
class Served:
    url: str
    dem: str
    admin: str
    viewer: str


def _dem(url: str, settings: Settings, folder: Path) -> str:
    """The demo's elevation collection, or the city's terrain ingested here."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for known in ("dem", "fl_demo_dem", OWN_DEM):  # the demo's, test_flood_demo's, ours
            if client.get(f"/collections/{known}").status_code == 200:
                return known
    path = fc.demo_dem(folder / "demo_dem.tif")
    source = RasterSource((path,), OWN_DEM, datetime=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                          public=True)  # fmt: skip
    ingest_raster(settings.database.url.get_secret_value(), source, settings)  # type: ignore[union-attr]
    return OWN_DEM


@pytest.fixture(scope="module")
def served(
    demo_api: LiveServer, demo_url: str, settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:  # fmt: skip
    """The API with the shipped water and emergency maps flooding the DEM found, a map
    whose DEM nobody may read, an admin's key and a viewer's (of a department of their
    own: they may not close roads)."""
    folder = tmp_path_factory.mktemp("map-flood")
    dem = _dem(demo_api.url, settings, folder)
    maps = folder / "maps"
    maps.mkdir()
    for name in ("water", "emergency"):
        definition = yaml.safe_load((subsystems.SUBSYSTEMS_DIR / f"{name}.yaml").read_text())
        definition["flood"]["dem"] = dem
        (maps / f"{name}.yaml").write_text(yaml.safe_dump(definition, allow_unicode=True))
    shutil.copy(maps / "water.yaml", maps / "mfnodem.yaml")
    nodem = yaml.safe_load((maps / "mfnodem.yaml").read_text())
    nodem.update(id="mfnodem", flood={**nodem["flood"], "dem": "mf_no_such_dem"})
    (maps / "mfnodem.yaml").write_text(yaml.safe_dump(nodem, allow_unicode=True))
    with engine(demo_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "mf_dept", "Flood map test")
        accounts.add_user(conn, TESTS, "mf_viewer", roles=("editor",), department="mf_dept",
                          service=True)  # fmt: skip
        viewer = accounts.create_key(conn, TESTS, "mf_viewer", name="mf")
    ours = settings.model_copy(update={"maps": MapsSettings(subsystems_dir=maps)})
    with LiveServer(create_app(ours)) as live:
        yield Served(live.url, dem, admin_key(demo_url), viewer)


def _config(served: Served, subsystem: str, key: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(f"{served.url}/maps/{subsystem}/config", headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    config: dict[str, Any] = answer.json()
    return config


def test_the_panel_is_offered_and_closing_roads_only_to_those_who_may(served: Served) -> None:
    for subsystem in ("water", "emergency"):
        for key, closable in ((None, False), (served.viewer, False), (served.admin, True)):
            flood = _config(served, subsystem, key)["flood"]
            assert flood["execution"] == f"{served.url}/processes/flood-extent/execution"
            assert flood["gauges"] == f"{served.url}/collections/water_gauges/items"
            assert flood["key"] == "gauge_id" and flood["dem"] == served.dem
            assert flood["network"] == "roads" and flood["hours"] == [6, 24, 72]
            assert flood["closable"] is closable, (subsystem, key)
    assert _config(served, "mfnodem", served.admin)["flood"] is None  # its DEM is unknown
    assert _config(served, "mfnodem", None)["monitor"] is not None  # the rest of the map is


def _wait(page: Any, selector: str) -> Any:
    found = page.locator(selector)
    found.first.wait_for(state="attached", timeout=WAIT_MS)
    return found


def _direct(served: Served, inputs: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{served.url}/processes/flood-extent/execution",
                        json={"inputs": inputs}, timeout=120)  # fmt: skip
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@requires_chromium
def test_a_flood_at_a_gauges_danger_level_lists_what_it_covers_and_closes_its_roads(
    served: Served,
) -> None:
    made: list[int] = []
    try:
        with browser_page(width=1300, height=900) as seen:
            page = open_map(seen, f"{served.url}/maps/emergency", served.admin)
            _wait(page, f"#flood select[name=gauge] option[value='{GAUGE}']")
            page.select_option("#flood select[name=gauge]", GAUGE)
            page.select_option("#flood select[name=level]", "danger")
            page.check("#flood input[name=close_roads]")
            page.select_option("#flood select[name=closure_hours]", "6")
            page.click("#flood button.run")
            _wait(page, ".flood-result[data-state='done'], .flood-result[data-state='failed']")
            result = page.evaluate("() => spatialFlood.result()")
            assert result is not None, page.locator(".flood-result").inner_text()
            made = [c["id"] for c in result["closures"]]
            _the_extent_and_what_it_covers(page, served, result)
            _the_closure_listed_and_drawn(page, made)
            seen.screenshot("map-flood")
            _a_refused_level_shows_the_servers_message(page)
            _a_level_at_a_clicked_seed_point(page, served, result)
        # The only error: the browser's own note of the refused request.
        assert len(seen.console_errors) == 1 and "400" in seen.console_errors[0], (
            seen.console_errors
        )
        assert not seen.blocked and all(r.url.startswith(served.url) for r in seen.responses)
    finally:
        for closure in made:
            gone = httpx.delete(f"{served.url}/network/closures/{closure}", timeout=60,
                                headers={"Authorization": f"Bearer {served.admin}"})  # fmt: skip
            assert gone.status_code == 200, gone.text


def _the_extent_and_what_it_covers(page: Any, served: Served, result: dict[str, Any]) -> None:
    """The panel shows the process's answer: the same extent as a direct run (without
    closing roads), drawn and zoomed to, every group and district listed."""
    assert result["gauge"] == GAUGE and result["dem"] == served.dem and result["area_m2"] > 0
    direct = _direct(served, {"dem": served.dem, "gauge": GAUGE, "level": "danger"})
    assert direct["area_m2"] == result["area_m2"] and direct["level"] == result["level"]
    box = page.locator(".flood-result")
    assert float(box.get_attribute("data-area")) == result["area_m2"]
    drawn = until(lambda: page.evaluate(
        "() => spatialMap.queryRenderedFeatures({ layers: ['flood-result'] }).length"),
        what="the extent drawn")  # fmt: skip
    assert drawn > 0
    groups = page.eval_on_selector_all(".flood-affected", "gs => gs.map((g) => "
                                       "[g.dataset.collection, Number(g.dataset.count), "
                                       "g.querySelectorAll('li[data-id]').length])")  # fmt: skip
    expected = [[a["collection"], a["count"], min(len(a["features"]), 30)]
                for a in result["affected"]]  # fmt: skip
    assert groups == expected
    counted = {a["collection"]: a["count"] for a in result["affected"]}
    assert counted.get("roads", 0) > 0 and counted.get("parcels", 0) > 0, counted
    roads = next(a for a in result["affected"] if a["collection"] == "roads")
    heading = box.locator(".flood-affected[data-collection='roads'] h3").inner_text()
    assert roads["measure"] == "length_m" and heading.rstrip().endswith(("km", " m")), heading
    districts = page.eval_on_selector_all(
        ".flood-population tr[data-district]",
        "rows => rows.map((r) => [r.dataset.district, Number(r.dataset.population)])",
    )
    by_district = result["population"]["by_district"]
    assert districts == [[d["district"], d["population"]] for d in by_district]
    assert sum(p for _, p in districts) == result["population"]["total"]


def _the_closure_listed_and_drawn(page: Any, made: list[int]) -> None:
    """One closure made: listed by the panel, and read again by the command panel, whose
    closures layer draws it."""
    assert len(made) == 1
    _wait(page, f"#flood .flood-closures li[data-closure='{made[0]}']")
    _wait(page, f"#command li[data-closure='{made[0]}']")
    drawn = until(lambda: page.evaluate(
        "() => spatialMap.querySourceFeatures('command-closures').length"),
        what="the closure on the command panel's layer")  # fmt: skip
    assert drawn >= 1


def _a_refused_level_shows_the_servers_message(page: Any) -> None:
    page.uncheck("#flood input[name=close_roads]")
    page.select_option("#flood select[name=level]", "custom")
    page.fill("#flood input[name=metres]", "9999")
    page.click("#flood button.run")
    error = _wait(page, ".flood-result[data-state='failed'] .flood-error")
    assert "level" in error.inner_text(), error.inner_text()
    assert page.evaluate("() => spatialFlood.result()") is None


def _a_level_at_a_clicked_seed_point(page: Any, served: Served, before: dict[str, Any]) -> None:
    """A seed clicked on the map (the gauge's river cell of the first run) and a level a
    metre over the river bed there: the level method's extent, as a direct run of the
    clicked point gives it."""
    page.click("#flood button.seed")
    x, y = page.evaluate("(c) => { const p = spatialMap.project(c); return [p.x, p.y]; }",
                         before["seed"])  # fmt: skip
    page.locator("#map canvas").click(position={"x": x, "y": y})
    assert page.input_value("#flood select[name=gauge]") == ""
    assert page.input_value("#flood select[name=level]") == "custom"
    level = round(before["bed"] + 1, 2)
    page.fill("#flood input[name=metres]", str(level))
    page.click("#flood button.run")
    _wait(page, ".flood-result[data-state='done']")
    seeded = page.evaluate("() => spatialFlood.result()")
    assert seeded["method"] == "level" and seeded["gauge"] is None and seeded["level"] == level
    assert seeded["closures"] == [] and seeded["area_m2"] > 0
    clicked = json.loads(page.get_attribute("#flood button.seed", "data-seed"))
    point = {"type": "Point", "coordinates": clicked}
    direct = _direct(served, {"dem": served.dem, "level": level, "seed": point})
    assert direct["area_m2"] == pytest.approx(seeded["area_m2"], rel=1e-6)
