"""The maps' 3D terrain and hillshade toggles (api/static/maps/terrain.js) in a real browser,
on the demo city.

The configuration: a map whose ``terrain`` names an elevation collection the caller may read
gets its Terrarium TileJSON and its hillshade tiles (which answer: a TileJSON declaring its
encoding, PNG tiles); one naming imagery or a collection the caller cannot see gets no
toggles, the rest of the map as before. In Chromium, the water map's terrain toggle puts
MapLibre's terrain on (``getTerrain()``) and tilts the map, its tiles read from this host,
and takes it off again (no terrain, looking straight down); the hillshade toggle shows the
hillshade layer under the vector layers with its legend line, its tiles
(``/styles/hillshade/``) answered 200 from loopback. No request leaves loopback.

The elevation is the demo's ``dem``; a demo loaded without one gets the city's terrain
ingested here as an elevation collection. Screenshot:
``var/test-screenshots/map-terrain.png``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import floodcase as fc
import httpx
import morecantile
import pytest
import yaml
from browser import (
    WAIT_MS,
    BrowserPage,
    Reply,
    browser_page,
    is_local,
    open_map,
    requires_chromium,
)
from rastercases import decode_image
from support import LiveServer, until

from api import create_app
from layers import subsystems
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import MapsSettings, Settings

OWN_DEM = "mt_demo_dem"
TMS = morecantile.tms.get("WebMercatorQuad")


@dataclass(frozen=True)
class Served:
    url: str
    dem: str


def _elevation(url: str, settings: Settings, folder: Path) -> str:
    """The demo's elevation collection, or the city's terrain ingested here as one."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for known in ("dem", OWN_DEM):
            found = client.get(f"/collections/{known}/terrain/tilejson")
            if found.status_code == 200:
                return known
    path = fc.demo_dem(folder / "demo_dem.tif")
    source = RasterSource((path,), OWN_DEM, datetime=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                          public=True, kind="elevation")  # fmt: skip
    ingest_raster(settings.database.url.get_secret_value(), source, settings)  # type: ignore[union-attr]
    return OWN_DEM


@pytest.fixture(scope="module")
def served(
    demo_api: LiveServer, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The API with the water map's terrain on the elevation found, and two maps whose
    terrain is not elevation (the imagery) or not there."""
    folder = tmp_path_factory.mktemp("map-terrain")
    dem = _elevation(demo_api.url, settings, folder)
    maps = folder / "maps"
    maps.mkdir()
    water = yaml.safe_load((subsystems.SUBSYSTEMS_DIR / "water.yaml").read_text())
    for name, collection in (("water", dem), ("mtimagery", "imagery"), ("mtnone", "mt_none")):
        definition = {**water, "id": name, "terrain": {"collection": collection,
                                                       "exaggeration": 1.5}}  # fmt: skip
        (maps / f"{name}.yaml").write_text(yaml.safe_dump(definition, allow_unicode=True))
    ours = settings.model_copy(update={"maps": MapsSettings(subsystems_dir=maps)})
    with LiveServer(create_app(ours)) as live:
        yield Served(live.url, dem)


def _fill(template: str, tile: morecantile.Tile) -> str:
    return template.replace("{z}", str(tile.z)).replace("{y}", str(tile.y)).replace(
        "{x}", str(tile.x))  # fmt: skip


def test_the_toggles_are_configured_for_elevation_only(served: Served) -> None:
    config = httpx.get(f"{served.url}/maps/water/config", timeout=60).json()
    terrain = config["terrain"]
    base = f"{served.url}/collections/{served.dem}"
    assert terrain["tilejson"] == f"{base}/terrain/tilejson"
    assert terrain["hillshade"]["tiles"] == [
        f"{base}/styles/hillshade/map/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"
    ]
    assert terrain["encoding"] == "terrarium" and terrain["exaggeration"] == 1.5
    assert terrain["pitch"] == 60 and len(terrain["hillshade"]["bounds"]) == 4
    tilejson = httpx.get(terrain["tilejson"], timeout=60).json()
    assert tilejson["encoding"] == "terrarium" and tilejson["tileSize"] == 256
    assert all(is_local(t) for t in tilejson["tiles"]), tilejson["tiles"]
    west, south, east, north = config["extent"]
    tile = TMS.tile((west + east) / 2, (south + north) / 2, 13)
    for template in (tilejson["tiles"][0], terrain["hillshade"]["tiles"][0]):
        answer = httpx.get(_fill(template, tile), timeout=60)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        pixels, _ = decode_image(answer.content)
        assert pixels.shape[1:] == (256, 256), template
    for name in ("mtimagery", "mtnone"):
        other = httpx.get(f"{served.url}/maps/{name}/config", timeout=60).json()
        assert other["terrain"] is None and other["layers"] == config["layers"], name


def _replies(seen: BrowserPage, part: str) -> list[Reply]:
    """The responses so far whose URL holds ``part`` (after a call into the page: the
    sync API routes the page's requests only while the test is inside one of its calls)."""
    seen.page.evaluate("() => 0")  # type: ignore[attr-defined]
    return [r for r in seen.responses if part in r.url]


def _state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => spatialTerrain.state()")
    return state


@requires_chromium
def test_terrain_and_hillshade_switched_on_and_off(served: Served) -> None:
    with browser_page(width=1100, height=800) as seen:
        page = open_map(seen, f"{served.url}/maps/water")
        assert _state(page) == {"terrain": False, "pitch": 0, "hillshade": False}
        assert page.evaluate("() => spatialMap.getTerrain()") is None
        page.check("#layers [data-layer='terrain'] input[type=checkbox]")
        until(lambda: _state(page), lambda s: s["terrain"] and abs(s["pitch"] - 60) < 0.5,
              what="the terrain on, the map tilted")  # fmt: skip
        terrain = page.evaluate("() => spatialMap.getTerrain()")
        assert terrain == {"source": "terrain-dem", "exaggeration": 1.5}
        dem = f"/collections/{served.dem}/terrain/tiles/WebMercatorQuad/"
        until(lambda: _replies(seen, dem), what="terrain tiles read")
        page.check("#layers [data-layer='hillshade'] input[type=checkbox]")
        until(lambda: _replies(seen, "/styles/hillshade/"), what="hillshade tiles read")
        page.locator("#legend [data-layer='terrain-hillshade']:not(.off)").wait_for(
            state="attached", timeout=WAIT_MS)  # fmt: skip
        page.wait_for_load_state("networkidle")
        seen.screenshot("map-terrain")
        assert _state(page)["hillshade"]
        order = page.evaluate("() => spatialMap.getStyle().layers.map((l) => l.id)")
        assert order.index("terrain-hillshade") < order.index("rivers"), order  # under lines
        page.uncheck("#layers [data-layer='terrain'] input[type=checkbox]")
        until(lambda: _state(page), lambda s: not s["terrain"] and s["pitch"] == 0,
              what="the terrain off, looking straight down")  # fmt: skip
        assert page.evaluate("() => spatialMap.getTerrain()") is None
        page.uncheck("#layers [data-layer='hillshade'] input[type=checkbox]")
        assert not _state(page)["hillshade"]
        seen.assert_clean()
    terrain_tiles = [r for r in seen.responses if dem in r.url or "/terrain/tilejson" in r.url]
    shaded = [r for r in seen.responses if "/styles/hillshade/" in r.url]
    for replies in (terrain_tiles, shaded):  # (204: a tile of the bounds' edge, no heights)
        assert any(r.status == 200 for r in replies), replies
        assert all(is_local(r.url) and r.status in {200, 204} for r in replies), replies
