"""The map pages' search box (``api/static/maps/search.js``) in a real browser, on the demo city.

A headless Chromium (tests/browser.py: nothing but loopback reachable) opens the emergency
map and types into the search box: a district's name lists it under the districts layer,
and choosing it fits the map to the district, highlights it and opens its attributes;
coordinates (decimal, hemisphere letters, DMS) give a "go to" result first that flies the
map there and puts a marker; quotes and LIKE wildcards in the text reach the server as
plain characters (no error, and ``_`` matches no other character); a result of a hidden
layer shows the layer, the switcher's box in step; typing fast sends one search, not one
per key; a refused search shows the server's message. Screenshots go to
``var/test-screenshots/map-search*.png``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import shapely
from browser import WAIT_MS, BrowserPage, browser_page, open_map, requires_chromium
from support import LiveServer, admin_key

MAP = "emergency"
"""Its districts, hospitals and (hidden by default) geofence events are searchable."""


@pytest.fixture(scope="module")
def base(demo_api: LiveServer) -> str:
    return demo_api.url


@pytest.fixture(scope="module")
def district(base: str) -> dict[str, Any]:
    """A district of the demo city with a name of three characters or more."""
    found = httpx.get(f"{base}/collections/districts/items", params={"f": "json"}, timeout=60)
    features = [f for f in found.json()["features"] if len(f["properties"]["name"]) >= 3]
    assert features, "the demo city has districts"
    return features[0]


@pytest.fixture(scope="module")
def token(base: str, demo_url: str) -> str:
    """An admin's API key, once the running server knows it (accounts reach it by NOTIFY)."""
    key = admin_key(demo_url)
    deadline = time.monotonic() + 30
    while (
        httpx.get(f"{base}/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code != 200
    ):
        assert time.monotonic() < deadline, "the server never learnt the key"
        time.sleep(0.2)
    return key


def _open(seen: BrowserPage, url: str, token: str | None = None) -> Any:
    page = open_map(seen, url, token)
    page.locator("#search-box").wait_for(timeout=WAIT_MS)
    return page


def _search(page: Any, text: str) -> Any:
    """Type ``text`` and wait for its results; the list."""
    page.locator("#search-box").fill(text)  # marks the section pending at once
    page.locator("#search[data-state='done']").wait_for(state="attached", timeout=WAIT_MS)
    assert page.locator("#search").get_attribute("data-query") == text.strip()
    return page.locator("#search-list")


def _arrived(page: Any, tag: str) -> None:
    page.locator(f"#search[data-chosen='{tag}']").wait_for(state="attached", timeout=WAIT_MS)


def _failures(seen: BrowserPage) -> list[Any]:
    return [r for r in seen.responses if r.status >= 400]


@pytest.fixture
def seen() -> Iterator[BrowserPage]:
    with browser_page(width=1200, height=800) as page:
        yield page


@requires_chromium
def test_a_district_by_name_is_listed_chosen_fitted_and_shown(
    base: str, district: dict[str, Any], seen: BrowserPage
) -> None:
    props = district["properties"]
    shape = shapely.geometry.shape(district["geometry"])
    page = _open(seen, f"{base}/maps/{MAP}")
    box = page.locator("#search-box")
    assert box.get_attribute("role") == "combobox"
    assert "Search places" in box.get_attribute("placeholder")

    # typed fast: one search once the typing pauses, not one per key
    before = len(seen.requests)
    box.press_sequentially(props["name"], delay=40)
    page.locator("#search[data-state='done']").wait_for(state="attached", timeout=WAIT_MS)
    typed = [u for u in seen.requests[before:] if "/collections/districts/items" in u]
    assert len(typed) == 1, typed
    assert "filter=" in typed[0]
    listing = page.locator("#search-list")
    assert listing.get_attribute("role") == "listbox" and listing.is_visible()
    assert box.get_attribute("aria-expanded") == "true"
    option = listing.locator(f"[role=option][data-layer='districts'][data-id='{district['id']}']")
    assert option.count() == 1
    assert props["name"] in option.text_content()
    group = listing.locator(".search-group[data-layer='districts']")
    assert "行政区 Districts" in group.locator(".search-group-title").text_content()
    assert listing.locator(".search-group").first.get_attribute("data-layer") == "districts"
    seen.screenshot("map-search-list")

    # its English name, case-insensitively, by parts of two words, lists it too
    words = props["name_en"].split()
    listing = _search(page, f"{words[0][:5].upper()}  {words[-1][:3].lower()}")
    option = listing.locator(f"[data-layer='districts'][data-id='{district['id']}']")
    assert option.count() == 1
    assert option.locator("mark").all_text_contents() == [words[0][:5], words[-1][:3]]

    # chosen by the keyboard: down to its option, Enter
    listing = _search(page, props["name"])
    ids = listing.locator("[role=option]").evaluate_all(
        "items => items.map(i => `${i.dataset.layer}/${i.dataset.id}`)"
    )
    for _ in range(ids.index(f"districts/{district['id']}") + 1):
        box.press("ArrowDown")
    active = box.get_attribute("aria-activedescendant")
    assert page.locator(f"#{active}").get_attribute("data-layer") == "districts"
    assert page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    box.press("Enter")
    _arrived(page, f"districts/{district['id']}")
    assert listing.is_hidden() and box.get_attribute("aria-expanded") == "false"

    view = page.evaluate("spatialMap.getBounds().toArray()")
    (west, south), (east, north) = view
    xmin, ymin, xmax, ymax = shape.bounds
    assert west <= xmin and east >= xmax and south <= ymin and north >= ymax, (view, shape.bounds)
    centre = shape.centroid
    assert (west < centre.x < east) and (south < centre.y < north)
    width = east - west
    assert width < 3 * max(xmax - xmin, (ymax - ymin) * 1.2), "fitted to it, not the whole city"

    popup = page.locator(".maplibregl-popup .feature[data-source='search']")
    popup.wait_for(timeout=WAIT_MS)
    assert popup.get_attribute("data-layer") == "districts"
    text = popup.text_content()
    for name in ("code", "name", "name_en"):
        assert name in text and props[name] in text
    highlighted = page.evaluate(
        "spatialMap.getSource('search-highlight').serialize().data.id"
        " + ' ' + spatialMap.getLayer('search-highlight-line').type"
    )
    assert highlighted == f"{district['id']} line"
    seen.screenshot("map-search")

    # Escape closes the list, the text stays
    _search(page, props["name"])
    assert listing.is_visible()
    box.press("Escape")
    assert listing.is_hidden() and box.input_value() == props["name"]
    box.fill("")  # a cleared box clears its marks on the map
    assert page.locator("#search").get_attribute("data-state") == "idle"
    assert page.locator(".maplibregl-popup").count() == 0
    assert page.evaluate("spatialMap.getSource('search-highlight').serialize().data.type") == (
        "FeatureCollection"
    )
    assert not _failures(seen), _failures(seen)
    seen.assert_clean()


@requires_chromium
def test_coordinates_give_a_go_to_result_first(base: str, seen: BrowserPage) -> None:
    page = _open(seen, f"{base}/maps/{MAP}")
    box = page.locator("#search-box")
    box.fill("112.05, 22.85")
    box.press("Enter")  # before the results came: the first one, when they come
    _arrived(page, "point")
    lon, lat = page.evaluate("spatialMap.getCenter().toArray()")
    assert lon == pytest.approx(112.05, abs=1e-6) and lat == pytest.approx(22.85, abs=1e-6)
    for text in ("112.0 22.9", "22.9N 112.0E", "112°00'00\"E 22°54'00\"N", "北纬22.9 东经112"):
        first = _search(page, text).locator("[role=option]").first
        assert first.get_attribute("data-kind") == "point", text
        lon, lat = float(first.get_attribute("data-lon")), float(first.get_attribute("data-lat"))
        assert lon == pytest.approx(112.0) and lat == pytest.approx(22.9), text
    _search(page, "112.0 22.9")
    box.press("ArrowDown")
    box.press("Enter")
    _arrived(page, "point")
    lon, lat = page.evaluate("spatialMap.getCenter().toArray()")
    assert lon == pytest.approx(112.0, abs=1e-6) and lat == pytest.approx(22.9, abs=1e-6)
    assert page.evaluate("spatialMap.getZoom()") >= 13
    marker = page.locator(".search-marker")
    assert marker.count() == 1 and marker.is_visible()
    assert "112.000000°E 22.900000°N" in page.locator(".search-point").text_content()

    # a hospital (a point) by its name: the map zooms to it
    hospital = httpx.get(f"{base}/collections/hospitals/items?limit=1", timeout=60).json()
    feature = hospital["features"][0]
    listing = _search(page, feature["properties"]["name"])
    assert listing.locator("[role=option][data-kind='point']").count() == 0
    listing.locator(f"[data-layer='hospitals'][data-id='{feature['id']}']").click()
    _arrived(page, f"hospitals/{feature['id']}")
    assert page.evaluate("spatialMap.getZoom()") == pytest.approx(16, abs=0.01)
    lon, lat = page.evaluate("spatialMap.getCenter().toArray()")
    x, y = feature["geometry"]["coordinates"]
    assert lon == pytest.approx(x, abs=1e-6) and lat == pytest.approx(y, abs=1e-6)
    assert page.locator(".search-marker").count() == 0, "the point's marker goes"
    popup = page.locator(".maplibregl-popup .feature[data-source='search']")
    assert feature["properties"]["facility_id"] in popup.text_content()
    assert not _failures(seen), _failures(seen)
    seen.assert_clean()


@requires_chromium
def test_quotes_and_wildcards_are_plain_characters(
    base: str, district: dict[str, Any], seen: BrowserPage
) -> None:
    name = district["properties"]["name"]
    wildcards = (f"{name[0]}_{name[2]}", f"{name[0]}%{name[-1]}")
    for text in wildcards:  # unescaped, these would match the district
        loose = httpx.get(
            f"{base}/collections/districts/items",
            params={"filter": f"name LIKE '%{text}%'", "f": "json"},
            timeout=60,
        )
        assert loose.status_code == 200 and loose.json()["numberReturned"] >= 1
    page = _open(seen, f"{base}/maps/{MAP}")
    for text in ("O'Brien%_", "' OR 1=1 --", "a\\'%", '"name"', *wildcards):
        listing = _search(page, text)
        assert listing.locator("[role=option]").count() == 0, text
        assert listing.locator(".search-empty").text_content() == "No results"
        assert listing.locator(".search-error").count() == 0
    searched = [u for u in seen.requests if "/items?" in u and "filter=" in u]
    assert len(searched) >= 6 * 5
    assert not _failures(seen), _failures(seen)
    assert not page.locator("#status").text_content()
    seen.assert_clean()


@requires_chromium
def test_a_hidden_layers_result_shows_the_layer(base: str, token: str, seen: BrowserPage) -> None:
    sent: list[tuple[str, str | None]] = []
    seen.page.on(  # type: ignore[attr-defined]
        "request", lambda r: sent.append((r.url, r.headers.get("authorization")))
    )
    page = _open(seen, f"{base}/maps/{MAP}", token)
    switch = page.locator("#layers li[data-layer='gps-events'] input[type=checkbox]")
    assert not switch.is_checked()
    assert page.evaluate("spatialMap.getLayoutProperty('gps-events', 'visibility')") == "none"
    listing = _search(page, "amb-01")  # a device id, case-insensitively
    events = listing.locator("[role=option][data-layer='gps-events']")
    assert events.count() >= 1
    assert "YF-AMB-01" in events.first.text_content()
    chosen = events.first.get_attribute("data-id")
    events.first.click()
    _arrived(page, f"gps-events/{chosen}")
    assert switch.is_checked()
    assert page.evaluate("spatialMap.getLayoutProperty('gps-events', 'visibility')") == "visible"
    assert "off" not in page.locator("#legend div[data-layer='gps-events']").get_attribute("class")
    popup = page.locator(".maplibregl-popup .feature[data-source='search']")
    assert popup.get_attribute("data-layer") == "gps-events"
    assert "fence" in popup.text_content() and "YF-AMB-01" in popup.text_content()
    seen.screenshot("map-search-hidden-layer")
    searched = [(url, auth) for url, auth in sent if "filter=" in url or "/queryables" in url]
    assert searched and all(auth == f"Bearer {token}" for _, auth in searched), searched
    assert not _failures(seen), _failures(seen)
    seen.assert_clean()


@requires_chromium
def test_a_refused_search_shows_the_servers_message(base: str, seen: BrowserPage) -> None:
    page = _open(seen, f"{base}/maps/{MAP}")
    problem = {"code": "InvalidParameterValue", "description": "filter: refused for the test"}
    page.route(
        "**/collections/hospitals/items?*",
        lambda route: route.fulfill(status=400, json=problem),
    )
    listing = _search(page, "医院")
    error = listing.locator(".search-group[data-layer='hospitals'] .search-error")
    assert "filter: refused for the test" in error.text_content()
    status = page.locator("#status")
    assert "filter: refused for the test" in status.text_content()
    assert "problem" in status.get_attribute("class")
    seen.screenshot("map-search-error")
    page.unroute("**/collections/hospitals/items?*")
    listing = _search(page, "医院")  # served again: the message goes
    assert listing.locator(".search-error").count() == 0
    assert listing.locator("[role=option][data-layer='hospitals']").count() >= 1
    assert not page.locator("#status").text_content()
    # the only console errors are the browser's note of the refused request
    assert all("400" in e for e in seen.console_errors), seen.console_errors
    assert not seen.blocked
