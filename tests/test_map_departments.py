"""The new departments' web maps in a real browser, on the demo city (issue 27).

A headless Chromium (tests/browser.py: nothing but loopback reachable) opens each of
``/maps/construction``, ``/maps/utilities``, ``/maps/forestry`` and ``/maps/agriculture``
(one page each): the map is drawn from the platform alone (no request leaves loopback, no
console error), every vector layer shown at first has features rendered at the city's
extent (MapLibre's ``queryRenderedFeatures``), the legend lists every entry of the map's
layers, and the search box finds a feature of the map's own data by its id: the option of
that feature is listed, and choosing it brings the map there. Screenshots go to
``var/test-screenshots/map-dept-*.png``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from browser import WAIT_MS, browser_page, open_map, requires_chromium
from support import LiveServer

SEARCHED = {
    "construction": ("buildings", "building_id"),
    "utilities": ("manholes", "manhole_id"),
    "forestry": ("forest-species", "xiaoban_id"),
    "agriculture": ("basic-farmland", "bh_id"),
}
"""Per map: the layer searched and the id attribute typed into the search box."""


@pytest.fixture(scope="module")
def base(demo_api: LiveServer) -> str:
    return demo_api.url


def _feature(base: str, collection: str) -> dict[str, Any]:
    """A feature of the collection, from the features API (its id is the option's id)."""
    found = httpx.get(f"{base}/collections/{collection}/items",
                      params={"f": "json", "limit": 50}, timeout=60).json()  # fmt: skip
    assert found["features"], collection
    return dict(found["features"][len(found["features"]) // 2])


@requires_chromium
@pytest.mark.parametrize("subsystem", sorted(SEARCHED))
def test_a_department_map_draws_its_data_offline_with_legend_and_search(
    base: str, subsystem: str
) -> None:
    config = httpx.get(f"{base}/maps/{subsystem}/config", timeout=60).json()
    layer_id, attribute = SEARCHED[subsystem]
    layer = next(x for x in config["layers"] if x["id"] == layer_id)
    feature = _feature(base, layer["collection"])
    key = feature["properties"][attribute]
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{base}/maps/{subsystem}")
        assert page.title().startswith(config["title"])
        for shown in (x for x in config["layers"] if x["visible"] and x["kind"] == "vector"):
            count = page.evaluate(
                "ids => spatialMap.queryRenderedFeatures({layers: ids}).length",
                [style["id"] for style in shown["maplibre"]],
            )
            assert count > 0, (subsystem, shown["id"])
        labels = page.eval_on_selector_all("#legend li", "rows => rows.map(r => r.textContent)")
        expected = [entry["label"] for x in config["layers"] for entry in x["legend"]]
        assert sorted(label.strip() for label in labels) == sorted(expected)
        seen.screenshot(f"map-dept-{subsystem}")

        page.locator("#search-box").fill(key)
        page.locator("#search[data-state='done']").wait_for(state="attached", timeout=WAIT_MS)
        option = page.locator(
            f"#search-list [role=option][data-layer='{layer_id}'][data-id='{feature['id']}']"
        )
        assert option.count() == 1, (subsystem, key)
        assert key in option.text_content()
        option.click()
        chosen = f"#search[data-chosen='{layer_id}/{feature['id']}']"
        page.locator(chosen).wait_for(state="attached", timeout=WAIT_MS)
        seen.screenshot(f"map-dept-{subsystem}-found")
        seen.assert_clean()
    tiles = [r for r in seen.responses if "/tiles/WebMercatorQuad/" in r.url]
    assert tiles and all(r.status in {200, 204} for r in tiles), tiles
