"""WMS 1.3.0 (``/wms``): read by OWSLib and Debian's GDAL WMS driver as they are, a known
parcel drawn in its land-use colour from layers/subsystems/land.yaml, the caller's access
(a restricted layer absent and LayerNotDefined), and every bad parameter's exception code.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyproj
import pytest
import shapely
import yaml
from lxml import etree
from owslib.wms import WebMapService
from PIL import Image
from shapely.geometry import shape
from support import LiveServer, until

from layers.subsystems import SUBSYSTEMS_DIR

OGC = "{http://www.opengis.net/ogc}"
WMS_NS = "{http://www.opengis.net/wms}"
PRIVATE = "incidents"
"""A demo collection that is not public: anonymous callers may not read it."""
TO_3857 = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)


@dataclass(frozen=True)
class Parcel:
    """A demo parcel, a point well inside it and its colour on the land map."""

    dkbm: str
    lon: float
    lat: float
    colour: tuple[int, int, int]


def land_colours() -> dict[str, tuple[int, int, int]]:
    """The land-use classes' fill colours, from the parcels layer of land.yaml."""
    land = yaml.safe_load((SUBSYSTEMS_DIR / "land.yaml").read_text(encoding="utf-8"))
    layer = next(la for la in land["layers"] if la["id"] == "parcels-landuse")
    match = next(f for f in layer["style"] if f["type"] == "fill")["paint"]["fill-color"]
    pairs = match[2:-1]
    return {
        str(pairs[k]): tuple(int(pairs[k + 1][i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[misc]
        for k in range(0, len(pairs), 2)
    }


def known_parcel(url: str) -> Parcel:
    """The demo parcel with the most room around its pole of inaccessibility, away from
    the district boundaries (drawn over the parcels)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        box = "111.99,22.88,112.01,22.90"
        parcels = client.get("/collections/parcels/items",
                             params={"bbox": box, "limit": 2000}).json()["features"]  # fmt: skip
        districts = client.get("/collections/districts/items",
                               params={"limit": 100}).json()["features"]  # fmt: skip
    borders = shapely.union_all([shape(d["geometry"]).boundary for d in districts])
    best: tuple[float, dict[str, Any], shapely.Point] | None = None
    for feature in parcels:
        polygon = shape(feature["geometry"])
        pole = shapely.ops.polylabel(polygon.geoms[0] if polygon.geom_type == "MultiPolygon"
                                     else polygon, tolerance=1e-6)  # fmt: skip
        room = min(polygon.exterior.distance(pole) if polygon.geom_type == "Polygon"
                   else polygon.boundary.distance(pole), borders.distance(pole))  # fmt: skip
        if best is None or room > best[0]:
            best = (room, feature, pole)
    assert best is not None, "no demo parcel in the box"
    _, feature, pole = best
    dlbm = str(feature["properties"]["dlbm"])[:2]
    return Parcel(feature["properties"]["dkbm"], pole.x, pole.y, land_colours()[dlbm])


def assert_colour(pixel: Any, colour: tuple[int, int, int]) -> None:
    """An RGBA pixel shows ``colour`` (the layer's opacity leaves the RGB as it is)."""
    rgb = [int(v) for v in pixel[:3]]
    assert int(pixel[3]) > 0, f"transparent where the parcel is: {pixel}"
    assert all(abs(a - b) <= 3 for a, b in zip(rgb, colour, strict=True)), (rgb, colour)


def gdal_env(folder: Path) -> dict[str, str]:
    """GDAL's environment: its WMS/WMTS tile cache in ``folder`` (not ./gdalwmscache, which
    a later run would read instead of the server)."""
    return {**os.environ, "GDAL_DEFAULT_WMS_CACHE_PATH": str(folder / "gdalwmscache")}


def rgba(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA"))


def report(response: httpx.Response) -> tuple[str, str | None]:
    """The code and locator of a ServiceExceptionReport."""
    assert response.headers["content-type"].startswith("text/xml"), response.text
    root = etree.fromstring(response.content)
    assert root.tag == f"{OGC}ServiceExceptionReport", response.text
    item = root.find(f"{OGC}ServiceException")
    assert item is not None and item.text
    return item.get("code", ""), item.get("locator")


@pytest.fixture(scope="module")
def parcel(demo_api: LiveServer) -> Parcel:
    return known_parcel(demo_api.url)


@pytest.fixture(scope="module")
def api(demo_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def wms(demo_api: LiveServer) -> WebMapService:
    return WebMapService(f"{demo_api.url}/wms", version="1.3.0", timeout=60)


def _box(parcel: Parcel, half: float = 64.0) -> tuple[float, float, float, float]:
    x, y = TO_3857.transform(parcel.lon, parcel.lat)
    return (x - half, y - half, x + half, y + half)


def test_owslib_reads_capabilities_and_map(wms: WebMapService, parcel: Parcel) -> None:
    assert wms.identification.type == "WMS" and wms.version == "1.3.0"
    assert {"parcels", "land", "land:parcels-landuse", "imagery"} <= set(wms.contents)
    land = wms["land"]
    assert "land:parcels-landuse" in [c.name for c in land.children]
    assert {"EPSG:3857", "EPSG:4326", "EPSG:4490", "CRS:84", "EPSG:4513", "EPSG:4554"} <= set(
        wms["parcels"].crsOptions
    )
    assert {"truecolor", "ndvi", "ndwi"} <= set(wms["imagery"].styles)
    assert wms["imagery"].dimensions["time"]["values"]
    ops = {op.name for op in wms.operations}
    assert {"GetMap", "GetFeatureInfo", "GetLegendGraphic"} <= ops
    image = wms.getmap(layers=["land"], styles=[""], srs="EPSG:3857", bbox=_box(parcel),
                       size=(128, 128), format="image/png", transparent=True)  # fmt: skip
    assert_colour(rgba(image.read())[64, 64], parcel.colour)


def test_axis_order_and_crs(api: httpx.Client, parcel: Parcel) -> None:
    """EPSG:4326 and EPSG:4490 take latitude first in 1.3.0, CRS:84 longitude first; a
    Gauss-Krüger zone northing first: the parcel is at the centre each time."""
    d = 0.0004
    lat_first = f"{parcel.lat - d},{parcel.lon - d},{parcel.lat + d},{parcel.lon + d}"
    lon_first = f"{parcel.lon - d},{parcel.lat - d},{parcel.lon + d},{parcel.lat + d}"
    gk = pyproj.Transformer.from_crs(4326, 4546, always_xy=True)  # 3-degree GK, CM 111E
    east, north = gk.transform(parcel.lon, parcel.lat)
    gk_box = f"{north - 40},{east - 40},{north + 40},{east + 40}"
    for crs, box in (("EPSG:4326", lat_first), ("EPSG:4490", lat_first), ("CRS:84", lon_first),
                     ("EPSG:4546", gk_box)):  # fmt: skip
        r = api.get("/wms", params={"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap",
                                    "LAYERS": "parcels", "STYLES": "", "CRS": crs, "BBOX": box,
                                    "WIDTH": 64, "HEIGHT": 64, "FORMAT": "image/png",
                                    "TRANSPARENT": "TRUE"})  # fmt: skip
        assert r.status_code == 200, (crs, r.text)
        assert r.headers["content-type"] == "image/png"
        assert_colour(rgba(r.content)[32, 32], parcel.colour)


def test_jpeg_bgcolor_and_feature_info(api: httpx.Client, parcel: Parcel) -> None:
    x, y = TO_3857.transform(parcel.lon, parcel.lat)
    far = f"{x + 5e5},{y + 5e5},{x + 5e5 + 100},{y + 5e5 + 100}"  # no data there
    base = {"SERVICE": "WMS", "VERSION": "1.3.0", "LAYERS": "land", "STYLES": "",
            "CRS": "EPSG:3857", "WIDTH": 32, "HEIGHT": 32}  # fmt: skip
    r = api.get("/wms", params={**base, "REQUEST": "GetMap", "BBOX": far,
                                "FORMAT": "image/jpeg", "BGCOLOR": "0x102030"})  # fmt: skip
    assert r.headers["content-type"] == "image/jpeg"
    pixel = rgba(r.content)[16, 16]
    assert all(abs(int(a) - b) <= 4 for a, b in zip(pixel[:3], (16, 32, 48), strict=True))
    box = ",".join(str(v) for v in _box(parcel))
    query = {**base, "REQUEST": "GetFeatureInfo", "BBOX": box, "QUERY_LAYERS": "land",
             "I": 16, "J": 16, "FEATURE_COUNT": 5}  # fmt: skip
    found = api.get("/wms", params={**query, "INFO_FORMAT": "application/json"}).json()
    parcels = [f for f in found["features"] if f["layer"] == "parcels"]
    assert [f["properties"]["dkbm"] for f in parcels] == [parcel.dkbm]
    page = api.get("/wms", params={**query, "INFO_FORMAT": "text/html"})
    assert page.headers["content-type"].startswith("text/html") and parcel.dkbm in page.text
    legend = api.get("/wms", params={"SERVICE": "WMS", "REQUEST": "GetLegendGraphic",
                                     "LAYER": "land", "FORMAT": "image/png"})  # fmt: skip
    assert legend.status_code == 200 and rgba(legend.content).shape[0] > 10


def test_imagery_band_values(api: httpx.Client, parcel: Parcel) -> None:
    box = ",".join(str(v) for v in _box(parcel))
    r = api.get("/wms", params={"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetFeatureInfo",
                                "LAYERS": "imagery", "QUERY_LAYERS": "imagery", "STYLES": "ndvi",
                                "CRS": "EPSG:3857", "BBOX": box, "WIDTH": 32, "HEIGHT": 32,
                                "I": 3, "J": 3, "INFO_FORMAT": "application/json"})  # fmt: skip
    values = r.json()["features"][0]["properties"]
    assert {"red", "nir"} <= set(values) and all(isinstance(v, float) for v in values.values())


def test_gdal_wms_driver(demo_api: LiveServer, parcel: Parcel, tmp_path: Path) -> None:
    """Debian's gdal_translate reads a subset of the land map through its WMS driver."""
    minx, miny, maxx, maxy = _box(parcel, 256.0)
    description = tmp_path / "land.xml"
    description.write_text(f"""<GDAL_WMS>
  <Service name="WMS"><Version>1.3.0</Version><ServerUrl>{demo_api.url}/wms?</ServerUrl>
    <CRS>EPSG:3857</CRS><ImageFormat>image/png</ImageFormat><Layers>land</Layers>
    <Transparent>TRUE</Transparent></Service>
  <DataWindow><UpperLeftX>{minx}</UpperLeftX><UpperLeftY>{maxy}</UpperLeftY>
    <LowerRightX>{maxx}</LowerRightX><LowerRightY>{miny}</LowerRightY>
    <SizeX>512</SizeX><SizeY>512</SizeY></DataWindow>
  <BandsCount>4</BandsCount><BlockSizeX>256</BlockSizeX><BlockSizeY>256</BlockSizeY>
</GDAL_WMS>""")
    out = tmp_path / "subset.tif"
    run = subprocess.run(
        ["/usr/bin/gdal_translate", "-srcwin", "128", "128", "256", "256", str(description),
         str(out)],
        capture_output=True, text=True, timeout=120, check=False, env=gdal_env(tmp_path),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    import rasterio  # noqa: PLC0415 - only this test reads GeoTIFF

    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 3857
        bands = src.read()
    assert_colour(bands[:, 128, 128], parcel.colour)


def test_access(api: httpx.Client, admin_auth: dict[str, str]) -> None:
    """A layer the caller may not read is absent and LayerNotDefined (404); the admin
    sees it."""
    caps = api.get("/wms", params={"SERVICE": "WMS", "REQUEST": "GetCapabilities"})
    names = {n.text for n in etree.fromstring(caps.content).iter(f"{WMS_NS}Name")}
    assert "parcels" in names and PRIVATE not in names
    assert not any(n and n.endswith(f":{PRIVATE}") for n in names)
    ask = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": PRIVATE,
           "STYLES": "", "CRS": "EPSG:3857", "BBOX": "0,0,1,1", "WIDTH": 8, "HEIGHT": 8,
           "FORMAT": "image/png"}  # fmt: skip
    hidden = api.get("/wms", params=ask)
    unknown = api.get("/wms", params={**ask, "LAYERS": "no_such_layer"})
    assert hidden.status_code == unknown.status_code == 404
    assert report(hidden) == report(unknown) == ("LayerNotDefined", "LAYERS")
    info = api.get("/wms", params={**ask, "REQUEST": "GetFeatureInfo", "QUERY_LAYERS": PRIVATE,
                                   "I": 1, "J": 1, "INFO_FORMAT": "application/json"})  # fmt: skip
    assert report(info)[0] == "LayerNotDefined"
    admin = until(  # the admin's key reaches the server (made after it started)
        lambda: api.get("/wms", params={"SERVICE": "WMS", "REQUEST": "GetCapabilities"},
                        headers=admin_auth),
        lambda r: r.status_code == 200, "the admin's capabilities",
    )  # fmt: skip
    assert PRIVATE in {n.text for n in etree.fromstring(admin.content).iter(f"{WMS_NS}Name")}
    assert api.get("/wms", params=ask, headers=admin_auth).status_code == 200


GOOD = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "parcels",
        "STYLES": "", "CRS": "EPSG:3857", "BBOX": "0,0,100,100", "WIDTH": "8", "HEIGHT": "8",
        "FORMAT": "image/png"}  # fmt: skip
BAD = [
    ({"REQUEST": None}, "MissingParameterValue", "REQUEST"),
    ({"REQUEST": "DescribeLayer"}, "OperationNotSupported", "REQUEST"),
    ({"LAYERS": None}, "MissingParameterValue", "LAYERS"),
    ({"STYLES": "nope"}, "StyleNotDefined", "STYLES"),
    ({"STYLES": "default,default"}, "StyleNotDefined", "STYLES"),
    ({"CRS": "EPSG:2000"}, "InvalidCRS", "CRS"),
    ({"CRS": None}, "MissingParameterValue", "CRS"),
    ({"BBOX": "1,2,3"}, "InvalidParameterValue", "BBOX"),
    ({"BBOX": "5,0,1,100"}, "InvalidParameterValue", "BBOX"),
    ({"BBOX": "a,b,c,d"}, "InvalidParameterValue", "BBOX"),
    ({"WIDTH": "0"}, "InvalidParameterValue", "WIDTH"),
    ({"HEIGHT": "99999"}, "InvalidParameterValue", "HEIGHT"),
    ({"WIDTH": "x"}, "InvalidParameterValue", "WIDTH"),
    ({"FORMAT": "image/gif"}, "InvalidFormat", "FORMAT"),
    ({"TRANSPARENT": "maybe"}, "InvalidParameterValue", "TRANSPARENT"),
    ({"BGCOLOR": "red"}, "InvalidParameterValue", "BGCOLOR"),
    ({"TIME": "yesterday"}, "InvalidDimensionValue", "TIME"),
    ({"VERSION": "9.9.9"}, "InvalidParameterValue", "VERSION"),
    ({"SERVICE": "WFS"}, "InvalidParameterValue", "SERVICE"),
    (
        {
            "REQUEST": "GetFeatureInfo",
            "QUERY_LAYERS": "parcels",
            "I": "1",
            "J": "1",
            "INFO_FORMAT": "text/csv",
        },
        "InvalidFormat",
        "INFO_FORMAT",
    ),
    (
        {
            "REQUEST": "GetFeatureInfo",
            "QUERY_LAYERS": "parcels",
            "I": "8",
            "J": "1",
            "INFO_FORMAT": "text/html",
        },
        "InvalidPoint",
        "I",
    ),
    (
        {
            "REQUEST": "GetFeatureInfo",
            "QUERY_LAYERS": "districts",
            "I": "1",
            "J": "1",
            "INFO_FORMAT": "text/html",
        },
        "LayerNotDefined",
        "QUERY_LAYERS",
    ),
    (
        {"REQUEST": "GetLegendGraphic", "LAYER": "parcels", "STYLE": "nope"},
        "StyleNotDefined",
        "STYLES",
    ),
]


@pytest.mark.parametrize(("change", "code", "locator"), BAD)
def test_bad_parameters(api: httpx.Client, change: dict[str, str | None], code: str,
                        locator: str) -> None:  # fmt: skip
    params = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    r = api.get("/wms", params=params)
    assert 400 <= r.status_code < 600 and r.status_code != 500, r.text
    assert report(r) == (code, locator)


def test_parameter_names_any_case(api: httpx.Client) -> None:
    r = api.get("/wms", params={k.lower(): v for k, v in GOOD.items()})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_the_landing_page_links_both_capabilities(api: httpx.Client) -> None:
    """A client that starts at the landing page finds the WMS and the WMTS."""
    links = [x for x in api.get("/", params={"f": "json"}).json()["links"] if x["rel"] == "service"]
    roots = {etree.fromstring(api.get(x["href"]).content).tag for x in links}
    assert roots == {"{http://www.opengis.net/wms}WMS_Capabilities",
                     "{http://www.opengis.net/wmts/1.0}Capabilities"}  # fmt: skip
