"""The web map pages (``/maps/``, ``/maps/{subsystem}``) in a real browser, on the demo city.

A headless Chromium (tests/browser.py: WebGL through SwiftShader, nothing but loopback
reachable) opens each of the five maps: MapLibre starts from the platform's ``/vendor``, the
map is drawn with no console error and no request to another host, and the pixels of the
rendered map hold the colours of its legend (the land map: the land-use classes of the
parcels). Clicking a parcel opens its attributes; the layer switcher hides a layer and
sets its opacity; the pointer's CGCS2000 coordinates are shown. A viewer of one department
neither sees another department's restricted layer in the switcher nor asks for its tiles,
while a viewer of that department does, with the token passed to MapLibre's tile requests.
Screenshots go to ``var/test-screenshots/map-*.png``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pytest
import shapely
from browser import WAIT_MS, browser_page, open_map, requires_chromium
from rastercases import decode_image
from support import TESTS, LiveServer

from api import create_app
from api.web import PACKAGES, vendor_dir
from layers import subsystems
from spatial import accounts
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import AuthSettings, MapsSettings, Settings

SHIPPED = tuple(sorted(path.stem for path in subsystems.SUBSYSTEMS_DIR.glob("*.yaml")))
"""Every shipped map: one file each in layers/subsystems (an open list: a new file is a new map)."""
SECRET = "mpp_secret"
"""A collection only department mpp_a may read."""
DEPTS_MAP = """
id: depts
title: 部门测试 Departments test
extent: [111.9497, 22.8582, 112.0503, 22.9417]
access: public
layers:
  - {id: districts, collection: districts, kind: vector, title: Districts,
     style: [{type: line, paint: {line-color: "#000000", line-width: 2}}]}
  - {id: secret, collection: mpp_secret, kind: vector, title: Secret,
     style: [{type: fill, paint: {fill-color: "#ff0000"}}], popup: [code]}
"""
CLOSED_MAP = """
id: closedp
title: 仅限部门 Department A only (pages)
extent: [111.9497, 22.8582, 112.0503, 22.9417]
access: {departments: [mpp_a]}
layers:
  - {id: districts, collection: districts, kind: vector, title: Districts,
     style: [{type: line, paint: {line-color: "#000000", line-width: 2}}]}
"""
PASSWORD = "pages-sign-in-2026"
BACKGROUND = (0xF4, 0xF3, 0xEF)
"""The page's background colour under the layers (maps.js)."""
TOLERANCE = 6
"""Per channel, between a legend colour blended over the background and a drawn pixel."""


@pytest.fixture(scope="module")
def keys(demo_url: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``mpp_secret`` (department mpp_a only) and API keys of a viewer of mpp_a and of mpp_b."""
    path = tmp_path_factory.mktemp("pages-secret") / "secret.gpkg"
    gpd.GeoDataFrame(
        {"code": ["S1", "S2"]},
        geometry=[shapely.box(111.99, 22.89, 112.01, 22.91),
                  shapely.box(112.02, 22.89, 112.04, 22.91)],
        crs="EPSG:4490",
    ).to_file(path)  # fmt: skip
    ingest_vector(demo_url, VectorSource(path=path, collection_id=SECRET, title=SECRET, key="code"),
                  settings, actor="pytest")  # fmt: skip
    found: dict[str, str] = {}
    with engine(demo_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "mpp_a", "Department A (pages)")
        accounts.add_department(conn, TESTS, "mpp_b", "Department B (pages)")
        for name, dept in (("viewer_a", "mpp_a"), ("viewer_b", "mpp_b")):
            accounts.add_user(conn, TESTS, f"mpp_{name}", roles=("viewer",), department=dept,
                              service=True)  # fmt: skip
            found[name] = accounts.create_key(conn, TESTS, f"mpp_{name}")
        accounts.add_user(conn, TESTS, "mpp_person", roles=("viewer",), department="mpp_a",
                          password=PASSWORD)  # fmt: skip
        accounts.add_grant(conn, TESTS, SECRET, "department:mpp_a", "read")
    return found


@pytest.fixture(scope="module")
def base(settings: Settings, keys: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The live API (started after the demo is loaded) with the shipped maps and the test
    map of two departments."""
    if not (vendor_dir() / "maplibre-gl" / "dist" / "maplibre-gl.mjs").is_file():
        pytest.fail(f"maplibre-gl {PACKAGES['maplibre-gl']} is not vendored: run make install")
    folder = tmp_path_factory.mktemp("pages-defs")
    for path in subsystems.SUBSYSTEMS_DIR.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    (folder / "depts.yaml").write_text(DEPTS_MAP, encoding="utf-8")
    (folder / "closedp.yaml").write_text(CLOSED_MAP, encoding="utf-8")
    ours = settings.model_copy(update={"maps": MapsSettings(subsystems_dir=folder)})
    with LiveServer(create_app(ours)) as live:
        yield live.url


def _drawn(page: Any) -> np.ndarray:
    """The map's pixels as rows x columns x RGB."""
    pixels, _ = decode_image(page.locator("#map").screenshot())
    return np.moveaxis(pixels[:3], 0, -1).astype(np.int16)


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _count(pixels: np.ndarray, colour: tuple[int, int, int], opacity: float) -> int:
    """Pixels of ``colour`` drawn at ``opacity`` over the background."""
    blended = np.array([round(opacity * c + (1 - opacity) * b)
                        for c, b in zip(colour, BACKGROUND, strict=True)])  # fmt: skip
    return int((np.abs(pixels - blended).max(axis=-1) <= TOLERANCE).sum())


def _switcher(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#layers li", "rows => rows.map(r => r.dataset.layer)"
    )
    return ids


def test_the_index_and_the_json_routes_beside_the_pages(base: str) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        index = client.get("/maps/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in index.headers["content-security-policy"]
        for sid in (*SHIPPED, "depts"):
            assert f'href="{base}/maps/{sid}"' in index.text
        assert "closedp" not in index.text
        page = client.get("/maps/land")
        assert page.status_code == 200 and f'data-config="{base}/maps/land/config"' in page.text
        assert "https://" not in page.text and "http://" not in page.text.replace(base, "")
        assert client.get("/maps/subsystems").json()["subsystems"]
        assert client.get("/maps/land/config").json()["id"] == "land"
        assert client.get("/maps/land/tiles").status_code == 200
        assert client.get("/maps/no-such-map").status_code == 404
        assert (
            client.get("/maps/_static/maps.js")
            .headers["content-type"]
            .startswith("text/javascript")
        )
        assert client.get("/maps/_static/maps.py").status_code == 404
        vendored = client.get("/vendor/maplibre-gl/dist/maplibre-gl.mjs")
        assert vendored.status_code == 200 and len(vendored.content) > 100_000


@requires_chromium
def test_the_index_page_links_each_map(base: str) -> None:
    with browser_page() as seen:
        page: Any = seen.page
        page.goto(f"{base}/maps/")
        page.wait_for_load_state("networkidle")
        links = page.eval_on_selector_all("#maps a", "as => as.map(a => a.href)")
        assert [f"{base}/maps/{sid}" for sid in sorted((*SHIPPED, "depts"))] == sorted(links)
        seen.assert_clean()


@requires_chromium
@pytest.mark.parametrize("subsystem", SHIPPED)
def test_each_map_draws_its_layers_offline(base: str, subsystem: str) -> None:
    config = httpx.get(f"{base}/maps/{subsystem}/config", timeout=60).json()
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{base}/maps/{subsystem}")
        assert page.title().startswith(config["title"])
        assert _switcher(page) == [layer["id"] for layer in reversed(config["layers"])]
        legend = page.eval_on_selector_all("#legend li", "rows => rows.length")
        assert legend == sum(len(layer["legend"]) for layer in config["layers"])
        pixels = _drawn(page)
        seen.screenshot(f"map-{subsystem}")
        # The page's icon exists (headless Chromium fetches no icon, and its fetch() of a
        # /favicon.ico under Playwright's routing fails: ask from here).
        icon = httpx.get(page.evaluate("document.querySelector('link[rel=icon]').href"))
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/")
        seen.assert_clean()
    assert (np.abs(pixels - np.array(BACKGROUND)).max(axis=-1) > TOLERANCE).mean() > 0.02
    found = {
        (layer["id"], entry["label"]): _count(pixels, _rgb(entry["color"]), opacity)
        for layer in config["layers"] if layer["visible"] and layer["kind"] != "raster"
        for entry in layer["legend"] for opacity in {layer["opacity"], 1.0}
    }  # fmt: skip
    assert max(found.values()) >= 30, found
    tiles = [r for r in seen.responses if "/tiles/WebMercatorQuad/" in r.url]
    assert tiles and all(r.status in {200, 204} for r in tiles), tiles


@requires_chromium
def test_the_land_map_shows_the_land_use_classes_and_a_parcels_attributes(base: str) -> None:
    config = httpx.get(f"{base}/maps/land/config", timeout=60).json()
    parcels = next(layer for layer in config["layers"] if layer["collection"] == "parcels")
    west, south, east, north = config["extent"]
    middle = ((west + east) / 2, (south + north) / 2)
    near = shapely.box(middle[0] - 0.005, middle[1] - 0.005, middle[0] + 0.005, middle[1] + 0.005)
    bbox = ",".join(map(str, near.bounds))
    found = httpx.get(
        f"{base}/collections/parcels/items", params={"bbox": bbox, "limit": 200}, timeout=60
    ).json()
    biggest = max(found["features"], key=lambda f: shapely.geometry.shape(f["geometry"]).area)
    point = shapely.geometry.shape(biggest["geometry"]).representative_point()
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{base}/maps/land")
        pixels = _drawn(page)
        classes = {
            entry["label"]: _count(pixels, _rgb(entry["color"]), parcels["opacity"])
            for entry in parcels["legend"]
        }
        assert sum(1 for n in classes.values() if n >= 30) >= 6, classes

        page.evaluate(  # resolved once the parcel's tiles are drawn
            "new Promise(done => { spatialMap.once('idle', done);"
            f" spatialMap.jumpTo({{center: [{point.x}, {point.y}], zoom: 17}}); }})"
        )
        at = page.evaluate(f"(() => {{ const p = spatialMap.project([{point.x}, {point.y}]);"
                           " return [p.x, p.y]; })()")  # fmt: skip
        canvas = page.locator("#map canvas")
        canvas.hover(position={"x": at[0], "y": at[1]})
        shown = page.locator(".coordinates").text_content()
        assert shown.startswith("CGCS2000 ") and "°E" in shown and "°N" in shown
        lon = float(page.locator(".coordinates").get_attribute("data-lon"))
        lat = float(page.locator(".coordinates").get_attribute("data-lat"))
        assert abs(lon - point.x) < 1e-4 and abs(lat - point.y) < 1e-4
        canvas.click(position={"x": at[0], "y": at[1]})
        popup = page.locator(".maplibregl-popup .feature")
        popup.wait_for(timeout=WAIT_MS)
        text = popup.text_content()
        props = biggest["properties"]
        assert popup.get_attribute("data-layer") == "parcels-landuse"
        for name in parcels["popup"]:
            assert name in text
        assert props["dkbm"] in text and props["dlmc"] in text
        seen.screenshot("map-land-popup")

        row = page.locator('#layers li[data-layer="parcels-landuse"]')
        row.locator('input[type="range"]').fill("30")
        assert page.evaluate(
            "spatialMap.getPaintProperty('parcels-landuse', 'fill-opacity')"
        ) == pytest.approx(0.3)
        row.locator('input[type="checkbox"]').uncheck()
        assert (
            page.evaluate("spatialMap.getLayoutProperty('parcels-landuse', 'visibility')") == "none"
        )
        seen.assert_clean()


@requires_chromium
def test_a_viewer_sees_and_fetches_only_their_departments_layers(base: str, keys: Any) -> None:
    with browser_page() as seen:
        page = open_map(seen, f"{base}/maps/depts", token=keys["viewer_b"])
        assert _switcher(page) == ["districts"]
        assert SECRET not in page.content()
        seen.assert_clean()
    assert not [u for u in seen.requests if SECRET in u]
    assert any("/collections/districts/tiles/" in u for u in seen.requests)

    with browser_page() as seen:
        page = open_map(seen, f"{base}/maps/depts", token=keys["viewer_a"])
        assert _switcher(page) == ["secret", "districts"]
        pixels = _drawn(page)
        seen.screenshot("map-depts-viewer-a")
        seen.assert_clean()
    secret_tiles = [r for r in seen.responses if f"/collections/{SECRET}/tiles/" in r.url]
    assert secret_tiles and all(r.status in {200, 204} for r in secret_tiles), secret_tiles
    assert _count(pixels, (0xFF, 0, 0), 1.0) >= 30


@requires_chromium
def test_a_closed_map_offers_signing_in_and_then_opens(base: str) -> None:
    with browser_page() as seen:
        page: Any = seen.page
        page.goto(f"{base}/maps/closedp")
        page.locator("#signin").wait_for(state="visible", timeout=WAIT_MS)
        assert "key or a token" in page.locator("#status").text_content()
        page.fill("#signin input[name=username]", "mpp_person")
        page.fill("#signin input[name=password]", PASSWORD)
        page.click("#signin button")
        page.locator("body[data-state='drawn']").wait_for(state="attached", timeout=WAIT_MS)
        assert page.locator("#signin").is_hidden()
        assert _switcher(page) == ["districts"]
        page.goto(f"{base}/maps/")  # the tab keeps the token: the index lists the closed map
        page.locator('#maps a[href$="/maps/closedp"]').wait_for(timeout=WAIT_MS)
        assert page.locator("#who").text_content().startswith("mpp_person")
        assert not seen.blocked
    # The only error: the browser's note of the configuration refused before signing in.
    # (No wrong password here: failed sign-ins count against 127.0.0.1 for other tests.)
    assert len(seen.console_errors) == 1 and "401" in seen.console_errors[0], seen.console_errors


@requires_chromium
def test_with_anonymous_access_off_only_the_shell_is_open_and_signing_in_draws_the_map(
    settings: Settings, keys: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("pages-closed")
    shutil.copy(subsystems.SUBSYSTEMS_DIR / "land.yaml", folder / "land.yaml")
    closed = settings.model_copy(update={"auth": AuthSettings(anonymous=False),
                                         "maps": MapsSettings(subsystems_dir=folder)})  # fmt: skip
    with LiveServer(create_app(closed)) as live:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            for shell in (
                "/maps/",
                "/maps/land",
                "/maps/_static/maps.js",
                "/maps/_static/common.js",
                "/vendor/maplibre-gl/dist/maplibre-gl.mjs",
            ):
                assert client.get(shell).status_code == 200, shell  # fmt: skip
            assert "/maps/land" not in client.get("/maps/").text  # nothing listed unsigned
            for data in (
                "/maps/subsystems",
                "/maps/land/config",
                "/collections",
                "/collections/parcels/tiles/WebMercatorQuad/12/1785/3325",
                "/maps/land/extra",
                "/vendorx/anything",
            ):
                assert client.get(data).status_code == 401, data  # fmt: skip
        with browser_page() as seen:
            page: Any = seen.page
            page.goto(f"{live.url}/maps/land")
            page.locator("#signin").wait_for(state="visible", timeout=WAIT_MS)
            page.fill("#signin input[name=username]", "mpp_person")
            page.fill("#signin input[name=password]", PASSWORD)
            page.click("#signin button")
            page.locator("body[data-state='drawn']").wait_for(state="attached", timeout=WAIT_MS)
            page.wait_for_load_state("networkidle")
            assert "parcels-landuse" in _switcher(page)
            pixels = _drawn(page)
            assert not seen.blocked
    tiles = [r for r in seen.responses if "/collections/parcels/tiles/" in r.url]
    assert tiles and all(r.status in {200, 204} for r in tiles), tiles
    assert (np.abs(pixels - np.array(BACKGROUND)).max(axis=-1) > TOLERANCE).mean() > 0.02
    # The only error: the browser's note of the configuration refused before signing in.
    assert len(seen.console_errors) == 1 and "401" in seen.console_errors[0], seen.console_errors


@requires_chromium
def test_the_imagery_date_picker_redraws_the_ndvi_of_the_chosen_year(base: str) -> None:
    config = httpx.get(f"{base}/maps/environment/config", timeout=60).json()
    ndvi = next(layer for layer in config["layers"] if layer["id"] == "imagery-ndvi")
    assert [d["label"] for d in ndvi["datetimes"]] == ["2026", "2025"]
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{base}/maps/environment")
        for other in ("env-stations", "rivers", "districts"):  # the imagery alone
            page.locator(f'#layers li[data-layer="{other}"] input[type="checkbox"]').uncheck()
        page.evaluate("new Promise(done => { spatialMap.once('idle', done);"
                      " spatialMap.triggerRepaint(); })")  # fmt: skip
        before = _drawn(page)
        picker = page.locator('#layers li[data-layer="imagery-ndvi"] select')
        assert picker.input_value() == "2026-12-31"
        asked = len(seen.responses)
        page.evaluate(
            "new Promise(done => { spatialMap.once('idle', done);"
            " const s = document.querySelector('#layers li[data-layer=\"imagery-ndvi\"] select');"
            " s.value = '2025-12-31'; s.dispatchEvent(new Event('change')); })"
        )
        after = _drawn(page)
        seen.screenshot("map-environment-2025")
        shown = page.evaluate("spatialMap.getSource('imagery-ndvi').tiles[0]")
        seen.assert_clean()
    assert "datetime=2025-12-31" in shown and "expression=ndvi" in shown
    new = [r for r in seen.responses[asked:] if "/collections/imagery/map/tiles/" in r.url]
    assert new and all("datetime=2025-12-31" in r.url and r.status == 200 for r in new), new
    assert all(r.content_type == "image/png" for r in new)
    # The vegetation changed between the scenes: a share of the drawn pixels differs.
    changed = (np.abs(after - before).max(axis=-1) > TOLERANCE).mean()
    assert changed > 0.01, changed
