"""``spatial.viz.map``: a folium map of platform layers that a browser draws with no internet.

The demo city is loaded into the session database and the live API runs on loopback. The
map of two vector layers over the demo imagery is saved to HTML and opened in a headless
Chromium (tests/browser.py) that can reach nothing but loopback: Leaflet starts, the
features are drawn as SVG paths, the imagery tiles arrive as PNGs, and no request is made
to any other host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import folium
import folium.plugins
import httpx
import pytest
from browser import browser_page, requires_chromium
from support import LiveServer

from spatial import viz

VECTORS = ["flood_zones", "districts"]
RASTER = "imagery"
_EXTERNAL_TAG = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def base(demo_url: str, live_api: LiveServer) -> Iterator[str]:
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        ids = {c["id"] for c in client.get("/collections").json()["collections"]}
        assert {*VECTORS, RASTER} <= ids
    yield live_api.url


def test_folium_defaults_all_have_a_vendored_copy() -> None:
    from api.web import PACKAGES  # noqa: PLC0415 (the server side of the same list)

    assert viz.VENDORED.issubset(PACKAGES)
    for _name, url in [*folium.Map.default_js, *folium.Map.default_css]:
        assert "awesome.rotate" in url or viz.local_asset(url), url
    assert viz.local_asset("https://example.com/x.js") is None


def test_a_plugin_with_no_vendored_copy_is_refused_by_name() -> None:
    m = viz.OfflineMap("http://127.0.0.1:9", tiles=None)
    folium.plugins.Fullscreen().add_to(m)
    with pytest.raises(viz.OfflineAssetError, match="fullscreen"):
        m.get_root().render()


def test_the_html_names_no_other_origin_and_its_assets_answer(base: str) -> None:
    m = viz.map(base, VECTORS, raster=RASTER, raster_params={"bands": "red,green,blue"})
    folium.plugins.MarkerCluster().add_to(m)  # a plugin added later: its assets are vendored
    html = m.get_root().render()
    assert viz.foreign_urls(html, base) == []
    assert not re.findall(r"https?://", html.replace(base, ""))
    assert f"{base}/vendor/leaflet/dist/leaflet.js" in html
    assert f"{base}/vendor/leaflet.markercluster/dist/leaflet.markercluster.js" in html
    assert f"{base}/collections/{RASTER}/map/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}" in html
    assets = re.findall(rf"""(?:src|href)=["']({re.escape(base)}/vendor/[^"']+)""", html)
    assert len(assets) >= 12
    with httpx.Client(timeout=30) as client:
        for url in assets:
            assert client.get(url).status_code == 200, url


def test_a_cut_layer_and_a_missing_one_are_said_plainly(base: str) -> None:
    with pytest.warns(UserWarning, match=r"districts: the map shows the first 3 of \d+ features"):
        m = viz.map(base, ["districts"], limit=3)
    assert m.get_root().render().count('"type": "Feature"') == 3
    with pytest.raises(httpx.HTTPStatusError, match="nosuch answered 404"):
        viz.map(base, ["nosuch"])


def test_pages_are_followed_each_feature_once(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer over several pages (2 features a page here) comes whole, no page twice."""
    monkeypatch.setattr(viz, "PAGE", 2)
    expected = httpx.get(f"{base}/collections/districts/items", timeout=60).json()
    m = viz.map(base, ["districts"], limit=100)
    drawn = re.findall(r'"code": "(\d+)"', m.get_root().render())
    codes = sorted(f["properties"]["code"] for f in expected["features"])
    assert len(codes) == 5 and sorted(drawn) == codes


@requires_chromium
def test_the_map_renders_offline_in_chromium(base: str, tmp_path: Path) -> None:
    m = viz.map(base, VECTORS, raster=RASTER)
    html_file = tmp_path / "viz-map.html"
    m.save(str(html_file))
    features = sum(
        len(httpx.get(f"{base}/collections/{c}/items", params={"limit": 5000}).json()["features"])
        for c in VECTORS
    )
    with browser_page() as seen:
        page = seen.page
        page.goto(html_file.as_uri())  # type: ignore[attr-defined]
        page.wait_for_function(  # type: ignore[attr-defined]
            "document.querySelectorAll('img.leaflet-tile-loaded').length > 0", timeout=30_000
        )
        page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
        assert page.evaluate(  # type: ignore[attr-defined]
            "typeof L === 'object' && !!document.querySelector('.leaflet-container .leaflet-pane')"
        )
        drawn = page.evaluate(  # type: ignore[attr-defined]
            "document.querySelectorAll('path.leaflet-interactive').length"
        )
        assert drawn == features > 0
        tiles = [r for r in seen.responses if f"/collections/{RASTER}/map/tiles/" in r.url]
        assert tiles and all(t.status in {200, 204} for t in tiles), tiles
        assert any(t.status == 200 and t.content_type.startswith("image/") for t in tiles)
        shot = seen.screenshot("viz-map")
        seen.assert_clean()
    assert shot.stat().st_size > 10_000


@requires_chromium
def test_an_inline_map_stands_alone(base: str, tmp_path: Path) -> None:
    m = viz.map(base, ["districts"], inline=True)
    html_file = tmp_path / "viz-inline.html"
    m.save(str(html_file))
    html = html_file.read_text(encoding="utf-8")
    assert not _EXTERNAL_TAG.findall(html)
    assert "/vendor/" not in html
    folium.Marker([22.9, 112.0], icon=folium.Icon(icon="info-sign")).add_to(m)
    m.save(str(html_file))
    with browser_page() as seen:
        page = seen.page
        page.goto(html_file.as_uri())  # type: ignore[attr-defined]
        page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
        assert page.evaluate("typeof L === 'object'")  # type: ignore[attr-defined]
        assert page.evaluate(  # type: ignore[attr-defined]
            "document.querySelectorAll('path.leaflet-interactive').length"
        )
        assert page.evaluate(  # type: ignore[attr-defined]
            "document.querySelectorAll('.awesome-marker .glyphicon-info-sign').length"
        )
        seen.screenshot("viz-inline")
        seen.assert_clean()
    assert [r for r in seen.requests if r.startswith("http")] == []
