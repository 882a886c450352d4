"""WMTS 1.0.0 (``/wmts``, KVP and RESTful): read by OWSLib, Debian's GDAL WMTS driver and
OpenLayers (``optionsFromCapabilities``, in headless Chromium) as they are; a known parcel
in its land.yaml colour in WebMercatorQuad and in Tianditu's ``c`` set (EPSG:4490);
Tianditu's KVP spellings; the tile cache (ETag, invalidation); access and bad input codes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pytest
import shapely
from browser import WAIT_MS, browser_page, requires_chromium
from lxml import etree
from owslib.wmts import WebMapTileService
from support import LiveServer, until, wait_for_collection
from test_wms import PRIVATE, Parcel, assert_colour, gdal_env, known_parcel, rgba

from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings
from tiles.tms import TILE_MATRIX_SETS

OWS = "{http://www.opengis.net/ows/1.1}"
WMTS_NS = "{http://www.opengis.net/wmts/1.0}"


@pytest.fixture(scope="module")
def parcel(demo_api: LiveServer) -> Parcel:
    return known_parcel(demo_api.url)


@pytest.fixture(scope="module")
def api(demo_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def wmts(demo_api: LiveServer) -> WebMapTileService:
    return WebMapTileService(f"{demo_api.url}/wmts", timeout=60)


def tile_and_pixel(tms_id: str, z: int, parcel: Parcel) -> tuple[int, int, int, int]:
    """Row, column and the pixel (i, j) of the parcel's point in tile matrix ``z``."""
    tms = TILE_MATRIX_SETS[tms_id]
    t = tms.tile(parcel.lon, parcel.lat, z)
    x, y = tms.xy(parcel.lon, parcel.lat) if tms_id == "WebMercatorQuad" else (
        parcel.lon, parcel.lat)  # fmt: skip
    box = tms.xy_bounds(t)
    i = int((x - box.left) / (box.right - box.left) * 256)
    j = int((box.top - y) / (box.top - box.bottom) * 256)
    return t.y, t.x, i, j


def exception(response: httpx.Response) -> tuple[str, str | None]:
    """The code and locator of an OWS ExceptionReport."""
    assert response.headers["content-type"].startswith("text/xml"), response.text
    root = etree.fromstring(response.content)
    assert root.tag == f"{OWS}ExceptionReport", response.text
    item = root.find(f"{OWS}Exception")
    assert item is not None
    return item.get("exceptionCode", ""), item.get("locator")


def test_owslib_reads_capabilities_and_tiles(wmts: WebMapTileService, parcel: Parcel) -> None:
    assert wmts.identification.type == "OGC WMTS" and wmts.version == "1.0.0"
    assert {"parcels", "land", "imagery", "dem"} <= set(wmts.contents)
    assert {"WebMercatorQuad", "CGCS2000Quad", "c", "w"} <= set(wmts.tilematrixsets)
    assert {"truecolor", "ndvi", "ndwi"} <= set(wmts["imagery"].styles)
    assert list(wmts["dem"].styles) == ["hillshade"]
    c = wmts.tilematrixsets["c"]
    assert c.crs == "urn:ogc:def:crs:EPSG::4490" and sorted(c.tilematrix, key=int)[0] == "1"
    first = c.tilematrix["1"]
    assert (first.matrixwidth, first.matrixheight, first.topleftcorner) == (2, 1, (90.0, -180.0))
    assert len(c.tilematrix) == 18 and len(wmts.tilematrixsets["w"].tilematrix) == 18
    row, col, i, j = tile_and_pixel("WebMercatorQuad", 18, parcel)
    tile = wmts.gettile(layer="land", tilematrixset="WebMercatorQuad", tilematrix="18",
                        row=row, column=col, format="image/png")  # fmt: skip
    assert_colour(rgba(tile.read())[j, i], parcel.colour)
    # Tianditu's c: matrix "18" is CGCS2000Quad zoom 17.
    row, col, i, j = tile_and_pixel("CGCS2000Quad", 17, parcel)
    tile = wmts.gettile(layer="land", tilematrixset="c", tilematrix="18", row=row, column=col,
                        format="image/png")  # fmt: skip
    assert_colour(rgba(tile.read())[j, i], parcel.colour)


def test_rest_kvp_tianditu_and_cache(api: httpx.Client, parcel: Parcel) -> None:
    """The RESTful tile equals the KVP one asked as a Tianditu page asks; the second ask
    is served from the tile cache; If-None-Match gets a 304."""
    row, col, i, j = tile_and_pixel("CGCS2000Quad", 16, parcel)
    rest = api.get(f"/wmts/1.0.0/parcels/land:parcels-landuse/c/17/{row}/{col}.png")
    assert rest.status_code == 200 and rest.headers["content-type"] == "image/png"
    assert_colour(rgba(rest.content)[j, i], parcel.colour)
    kvp = api.get("/wmts", params={"service": "wmts", "request": "GetTile", "version": "1.0.0",
                                   "LAYER": "parcels", "STYLE": "land:parcels-landuse",
                                   "TILEMATRIXSET": "c", "FORMAT": "tiles", "TILEMATRIX": 17,
                                   "TILEROW": row, "TILECOL": col, "tk": "any-key"})  # fmt: skip
    assert kvp.content == rest.content and kvp.headers["etag"] == rest.headers["etag"]
    again = api.get(f"/wmts/1.0.0/parcels/land:parcels-landuse/c/17/{row}/{col}.png")
    assert again.headers["x-tile-cache"] == "hit" and again.content == rest.content
    again = api.get(f"/wmts/1.0.0/parcels/land:parcels-landuse/c/17/{row}/{col}.png",
                    headers={"If-None-Match": rest.headers["etag"]})  # fmt: skip
    assert again.status_code == 304
    jpeg = api.get("/wmts/1.0.0/land/default/w/17/0/0.jpg")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    row, col, _, _ = tile_and_pixel("WebMercatorQuad", 16, parcel)
    imagery = api.get(f"/wmts/1.0.0/imagery/ndvi/WebMercatorQuad/16/{row}/{col}.png")
    assert imagery.status_code == 200 and imagery.headers["content-type"] == "image/png"


def test_feature_info(api: httpx.Client, parcel: Parcel) -> None:
    row, col, i, j = tile_and_pixel("WebMercatorQuad", 18, parcel)
    path = f"/wmts/1.0.0/land/default/WebMercatorQuad/18/{row}/{col}/{j}/{i}"
    found = api.get(f"{path}.json").json()
    assert [f["properties"]["dkbm"] for f in found["features"] if f["layer"] == "parcels"] == [
        parcel.dkbm
    ]
    page = api.get(f"{path}.html")
    assert page.headers["content-type"].startswith("text/html") and parcel.dkbm in page.text
    kvp = api.get("/wmts", params={"SERVICE": "WMTS", "REQUEST": "GetFeatureInfo",
                                   "VERSION": "1.0.0", "LAYER": "imagery", "STYLE": "truecolor",
                                   "TILEMATRIXSET": "WebMercatorQuad", "TILEMATRIX": 18,
                                   "TILEROW": row, "TILECOL": col, "I": i, "J": j,
                                   "INFOFORMAT": "application/json"})  # fmt: skip
    values = kvp.json()["features"][0]["properties"]
    assert "nir" in values and isinstance(values["nir"], float)


def test_gdal_wmts_driver(demo_api: LiveServer, parcel: Parcel, tmp_path: Path) -> None:
    """Debian's GDAL reads the ``c`` set (EPSG:4490, latitude-first corner) at Tianditu's
    level 18 resolution, and the parcel is where it is, in its colour."""
    source = f"WMTS:{demo_api.url}/wmts/1.0.0/WMTSCapabilities.xml,layer=land,tilematrixset=c"
    info = subprocess.run(["/usr/bin/gdalinfo", "-json", source], capture_output=True,
                          text=True, timeout=120, check=False, env=gdal_env(tmp_path))  # fmt: skip
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert "4490" in described["coordinateSystem"]["wkt"].rsplit("ID[", 1)[-1]
    assert abs(described["geoTransform"][1] - 180 / 256 / 2**17) < 1e-12
    out = tmp_path / "c.tif"
    d = 0.0004
    run = subprocess.run(
        ["/usr/bin/gdal_translate", "-projwin", str(parcel.lon - d), str(parcel.lat + d),
         str(parcel.lon + d), str(parcel.lat - d), source, str(out)],
        capture_output=True, text=True, timeout=120, check=False, env=gdal_env(tmp_path),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    import rasterio  # noqa: PLC0415 - only this test reads GeoTIFF

    with rasterio.open(out) as src:
        bands = src.read()
        r, c = src.index(parcel.lon, parcel.lat)
    assert_colour(bands[:, r, c], parcel.colour)


PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/vendor/ol/ol.css"><script src="/vendor/ol/dist/ol.js"></script>
<style>html, body, #map { margin: 0; width: 100%; height: 100%; }</style></head>
<body><div id="map"></div><script>
fetch('/wmts/1.0.0/WMTSCapabilities.xml').then((r) => r.text()).then((text) => {
  const caps = new ol.format.WMTSCapabilities().read(text);
  const options = ol.source.WMTS.optionsFromCapabilities(caps,
    {layer: 'land', matrixSet: 'WebMercatorQuad'});
  const map = new ol.Map({target: 'map', layers: [
      new ol.layer.Tile({source: new ol.source.WMTS(options)}),
      new ol.layer.Image({source: new ol.source.ImageWMS({url: '/wms',
        params: {LAYERS: 'districts', VERSION: '1.3.0'}, ratio: 1})}),
    ], view: new ol.View({center: ol.proj.fromLonLat([LON, LAT]), zoom: 16})});
  map.once('rendercomplete', () => { document.body.dataset.state = 'drawn'; });
});
</script></body></html>"""


@requires_chromium
def test_openlayers_page(demo_api: LiveServer, parcel: Parcel) -> None:
    """OpenLayers (vendored) reads the capabilities and draws WMTS tiles and a WMS layer:
    every tile a 200, nothing asked of another host, no console error."""
    url = f"{demo_api.url}/__test__/openlayers.html"
    html = PAGE.replace("LON", repr(parcel.lon)).replace("LAT", repr(parcel.lat))
    with browser_page() as seen:
        page: Any = seen.page
        page.route(url, lambda route: route.fulfill(status=200, body=html,
                                                    content_type="text/html"))  # fmt: skip
        page.goto(url)
        page.locator("body[data-state='drawn']").wait_for(state="attached", timeout=WAIT_MS)
        seen.screenshot("wmts-openlayers")
    tiles = [r for r in seen.responses if "/wmts" in r.url and "Capabilities" not in r.url]
    maps = [r for r in seen.responses if "/wms?" in r.url]
    assert tiles and maps, seen.responses
    assert all(r.status == 200 and r.content_type == "image/png" for r in tiles + maps), tiles
    seen.assert_clean()


EDITED = "wmts_edited"


def test_an_edit_invalidates_the_tiles(
    api: httpx.Client, settings: Settings, admin_auth: dict[str, str], tmp_path: Path
) -> None:
    """Deleting a feature drops the cached tiles it was drawn on (and their metatile
    neighbours it met): the next tile has a new ETag and the feature is gone."""
    lon, lat = 113.30, 23.50  # away from the demo city: only this layer there
    squares = gpd.GeoDataFrame(
        {"code": ["A", "B"]},
        geometry=[shapely.box(lon - 0.0005, lat - 0.0005, lon + 0.0005, lat + 0.0005),
                  shapely.box(lon + 0.002, lat, lon + 0.003, lat + 0.001)],
        crs="EPSG:4326",
    )  # fmt: skip
    squares.to_file(tmp_path / "squares.gpkg")
    source = VectorSource(path=tmp_path / "squares.gpkg", collection_id=EDITED,
                          title=EDITED, key="code", editable=True, public=True)  # fmt: skip
    ingest_vector(settings.database.url.get_secret_value(), source, settings, actor="pytest")  # type: ignore[union-attr]
    wait_for_collection(api, EDITED)
    row, col, i, j = tile_and_pixel("WebMercatorQuad", 16, Parcel("", lon, lat, (0, 0, 0)))
    path = f"/wmts/1.0.0/{EDITED}/default/WebMercatorQuad/16/{row}/{col}.png"
    before = api.get(path)
    assert rgba(before.content)[j, i][3] > 0
    assert api.get(path).headers["x-tile-cache"] == "hit"
    found = api.get(f"/collections/{EDITED}/items", params={"limit": 10}).json()["features"]
    fid = next(f["id"] for f in found if f["properties"]["code"] == "A")
    gone = api.delete(f"/collections/{EDITED}/items/{fid}", headers=admin_auth)
    assert gone.status_code in {200, 204}, gone.text
    after = until(lambda: api.get(path), lambda r: r.headers["etag"] != before.headers["etag"],
                  "a new tile after the edit", seconds=30)  # fmt: skip
    assert rgba(after.content)[j, i][3] == 0


def test_access(api: httpx.Client, admin_auth: dict[str, str]) -> None:
    caps = api.get("/wmts/1.0.0/WMTSCapabilities.xml")
    names = {n.text for n in etree.fromstring(caps.content).iter(f"{OWS}Identifier")}
    assert "parcels" in names and PRIVATE not in names
    hidden = api.get(f"/wmts/1.0.0/{PRIVATE}/default/WebMercatorQuad/10/0/0.png")
    unknown = api.get("/wmts/1.0.0/no_such_layer/default/WebMercatorQuad/10/0/0.png")
    assert hidden.status_code == unknown.status_code == 404
    assert exception(hidden) == exception(unknown) == ("InvalidParameterValue", "Layer")
    admin = until(  # the admin's key reaches the server (made after it started)
        lambda: api.get("/wmts/1.0.0/WMTSCapabilities.xml", headers=admin_auth),
        lambda r: r.status_code == 200, "the admin's capabilities",
    )  # fmt: skip
    assert PRIVATE in {n.text for n in etree.fromstring(admin.content).iter(f"{OWS}Identifier")}
    shown = api.get(f"/wmts/1.0.0/{PRIVATE}/default/WebMercatorQuad/10/0/0.png",
                    headers=admin_auth)  # fmt: skip
    assert shown.status_code == 200


GOOD = {"SERVICE": "WMTS", "REQUEST": "GetTile", "VERSION": "1.0.0", "LAYER": "parcels",
        "STYLE": "default", "FORMAT": "image/png", "TILEMATRIXSET": "WebMercatorQuad",
        "TILEMATRIX": "3", "TILEROW": "3", "TILECOL": "6"}  # fmt: skip
BAD = [
    ({"REQUEST": None}, "MissingParameterValue", "Request"),
    ({"REQUEST": "GetMap"}, "OperationNotSupported", "Request"),
    ({"SERVICE": "WMS"}, "InvalidParameterValue", "Service"),
    ({"LAYER": None}, "MissingParameterValue", "Layer"),
    ({"STYLE": "nope"}, "InvalidParameterValue", "Style"),
    ({"FORMAT": "image/gif"}, "InvalidParameterValue", "Format"),
    ({"FORMAT": None}, "MissingParameterValue", "Format"),
    ({"TILEMATRIXSET": "EPSG:9999"}, "InvalidParameterValue", "TileMatrixSet"),
    ({"TILEMATRIX": "99"}, "InvalidParameterValue", "TileMatrix"),
    ({"TILEMATRIXSET": "c", "TILEMATRIX": "0"}, "InvalidParameterValue", "TileMatrix"),
    ({"TILEROW": "8"}, "TileOutOfRange", "TileRow"),
    ({"TILECOL": "8"}, "TileOutOfRange", "TileCol"),
    ({"TILEROW": "-1"}, "InvalidParameterValue", "TileRow"),
    (
        {"REQUEST": "GetFeatureInfo", "I": "1", "J": "1", "INFOFORMAT": "text/csv"},
        "InvalidParameterValue",
        "InfoFormat",
    ),
    (
        {"REQUEST": "GetFeatureInfo", "I": "300", "J": "1", "INFOFORMAT": "text/html"},
        "InvalidParameterValue",
        "I",
    ),
]


@pytest.mark.parametrize(("change", "code", "locator"), BAD)
def test_bad_parameters(api: httpx.Client, change: dict[str, str | None], code: str,
                        locator: str) -> None:  # fmt: skip
    params = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    r = api.get("/wmts", params=params)
    assert 400 <= r.status_code < 600 and r.status_code != 500, r.text
    assert exception(r) == (code, locator)


def test_bad_rest_paths(api: httpx.Client) -> None:
    gif = api.get("/wmts/1.0.0/parcels/default/WebMercatorQuad/3/3/6.gif")
    assert exception(gif) == ("InvalidParameterValue", "Format")
    info = api.get("/wmts/1.0.0/parcels/default/WebMercatorQuad/3/3/6/1/1.xml")
    assert exception(info) == ("InvalidParameterValue", "InfoFormat")
    outside = api.get("/wmts/1.0.0/parcels/default/w/1/5/0.png")
    assert exception(outside) == ("TileOutOfRange", "TileRow")
