"""OGC API - Styles and the one translation behind it: every subsystem layer's MapLibre
style becomes rules (Mapnik loads every map's style, SLD 1.1 parses and carries the YAML's
colours, QGIS reads it as rules), and the MapLibre style documents are the web maps' own
(version 8, sources of this server, the YAML's paint)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree
from support import LiveServer

from layers import sld, styles, subsystems
from tiles import render

MAPS = subsystems.load()
NS = {"sld": sld.SLD_NS, "se": sld.SE_NS, "ogc": sld.OGC_NS}


def _land_colours() -> list[str]:
    layer = next(x for x in MAPS.get("land").layers if x.id == "parcels-landuse")
    paint = layer.style[0].paint["fill-color"]
    return [*paint[3:-1:2], paint[-1]]


@pytest.fixture(scope="module")
def api(demo_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.url, timeout=60) as client:
        yield client


def test_every_layer_translates_and_mapnik_loads_every_map() -> None:
    for sub in MAPS:
        drawables = [render.Drawable(x.collection, "raster" if x.kind == "raster" else "vector",
                                     x.title, x, x.opacity) for x in sub.layers]  # fmt: skip
        xml = render.map_xml(drawables, 3857, [d.layer for d in drawables])
        made = render.mapnik.Map(16, 16)
        render.mapnik.load_map_from_string(made, xml)  # Mapnik parses every filter
        assert len(made.layers) == len(sub.layers)
        for layer in sub.layers:
            groups = styles.rules(layer)
            drawn = layer.kind != "raster" and layer.style[0].type != "heatmap"
            assert not drawn or any(g.rules for g in groups), (sub.id, layer.id)
        document = sld.sld([(x.collection, f"{sub.id}:{x.id}", x, x.opacity)
                            for x in sub.layers if x.kind != "raster"])  # fmt: skip
        root = etree.fromstring(document.encode())
        assert (
            root.tag == f"{{{sld.SLD_NS}}}StyledLayerDescriptor" and root.get("version") == "1.1.0"
        )
        for rule in root.iterfind(".//se:Rule", NS):  # SE 1.1's order of a rule's parts
            names = [etree.QName(child).localname for child in rule]
            order = ["Name", "Description", "Filter", "MinScaleDenominator",
                     "MaxScaleDenominator"]  # fmt: skip
            head = [n for n in names if n in order]
            assert head == sorted(head, key=order.index) and names[-1].endswith("Symbolizer")


def test_expressions_become_rules() -> None:
    utilities = {x.id: x for x in MAPS.get("utilities").layers}
    pipes = styles.rules(utilities["drain-pipes"])[0].rules  # match x interpolate(diameter)
    assert len(pipes) == 4 * 4
    widths = sorted({r.symbols[0].get("width") for r in pipes})
    assert widths == [1.0, 1.75, 3.75, 5.0]  # the ends, and the middle of each interval
    manholes = styles.rules(utilities["manholes"])[0].rules  # radius by zoom: per-scale rules
    bands = sorted({(r.minzoom, r.maxzoom) for r in manholes}, key=lambda b: b[0] or 0)
    assert bands[0] == (None, 11.0) and bands[-1] == (16.0, None)
    assert styles.mapnik_filter(styles.Test("prefix", "dlbm", "01")) == "[dlbm__2] = '01'"
    assert styles.colour("rgba(255, 0, 0, 0.5)") == ("#ff0000", 0.5)
    with pytest.raises(styles.StyleError):
        styles.cases(["coalesce", ["get", "a"], "#fff"])


def test_styles_list_the_maps_and_serve_maplibre(api: httpx.Client) -> None:
    landing = api.get("/", params={"f": "json"}).json()
    rel = "http://www.opengis.net/def/rel/ogc/1.0/styles"
    assert any(x["rel"] == rel and x["href"].endswith("/styles") for x in landing["links"])
    listed = api.get("/styles").json()
    maps = {m["id"] for m in api.get("/maps/subsystems").json()["subsystems"]}
    assert {s["id"] for s in listed["styles"]} == maps and listed["default"] in maps
    land = next(s for s in listed["styles"] if s["id"] == "land")
    assert {link["type"] for link in land["links"] if link["rel"] == "stylesheet"} == {
        "application/vnd.mapbox.style+json", sld.SLD_MEDIA_TYPE}  # fmt: skip
    response = api.get("/styles/land")
    assert response.headers["content-type"] == "application/vnd.mapbox.style+json"
    doc = response.json()
    assert doc["version"] == 8 and "glyphs" not in doc and "sprite" not in doc
    base = str(api.base_url).rstrip("/")
    for source in doc["sources"].values():
        assert all(url.startswith(base + "/") for url in source.get("tiles", []))
    assert {layer["source"] for layer in doc["layers"]} <= set(doc["sources"])
    fill = next(x for x in doc["layers"] if x["id"] == "parcels-landuse")
    layer = next(x for x in MAPS.get("land").layers if x.id == "parcels-landuse")
    assert fill["paint"]["fill-color"] == layer.style[0].paint["fill-color"]
    assert fill["source-layer"] == "parcels"
    config = api.get("/maps/land/config").json()  # the web map draws the same layers
    assert [s for x in config["layers"] for s in x["maplibre"]] == doc["layers"]
    meta = api.get("/styles/land/metadata").json()
    assert meta["scope"] == "style" and {"id": "dlbm"} in next(
        x["attributes"] for x in meta["layers"] if x["id"] == "parcels")  # fmt: skip


def test_sld_carries_the_yaml_colours(api: httpx.Client) -> None:
    accept = {"Accept": "application/vnd.ogc.sld+xml"}
    by_f, by_accept = api.get("/styles/land?f=sld11"), api.get("/styles/land", headers=accept)
    for response in (by_f, by_accept):
        assert response.headers["content-type"].startswith("application/vnd.ogc.sld+xml")
        root = etree.fromstring(response.content)
        parcels = next(x for x in root.iterfind("sld:NamedLayer", NS)
                       if x.findtext("se:Name", namespaces=NS) == "parcels")  # fmt: skip
        fills = [p.text for p in parcels.iterfind(".//se:Fill/se:SvgParameter[@name='fill']", NS)]
        assert fills == _land_colours()
        likes = [x.findtext("ogc:Literal", namespaces=NS)
                 for x in parcels.iterfind(".//ogc:PropertyIsLike", NS)]  # fmt: skip
        assert likes[:12] == [f"{n:02d}%" for n in range(1, 13)]


def test_collection_styles(api: httpx.Client) -> None:
    listed = api.get("/collections/parcels/styles").json()
    ids = [s["id"] for s in listed["styles"]]
    assert ids[0] == "default" and {"land:parcels-landuse", "planning:parcels-landuse"} <= set(ids)
    alone = api.get("/collections/parcels/styles/land:parcels-landuse").json()
    assert list(alone["sources"]) == ["parcels-landuse"] and len(alone["layers"]) == 2
    sheet = api.get("/collections/hospitals/styles/emergency:hospitals", params={"f": "sld11"})
    assert etree.fromstring(sheet.content).find(".//se:PointSymbolizer", NS) is not None
    imagery = [s["id"] for s in api.get("/collections/imagery/styles").json()["styles"]]
    assert imagery == ["truecolor", "ndvi", "ndwi"]
    ndvi = api.get("/collections/imagery/styles/ndvi").json()
    assert "colormap=rdylgn" in next(iter(ndvi["sources"].values()))["tiles"][0]
    hillshade = api.get("/collections/dem/styles/hillshade").json()
    assert "/styles/hillshade/map/tiles/" in hillshade["sources"]["hillshade"]["tiles"][0]
    assert api.get("/collections/imagery/styles/ndvi", params={"f": "sld11"}).status_code == 406
    assert api.get("/collections/parcels/styles/nope").status_code == 404
    assert api.get("/collections/nope/styles").status_code == 404
    assert api.get("/styles/nope").status_code == 404
    bad = api.get("/styles/land", params={"f": "css"})
    assert bad.status_code == 400 and "mapbox" in bad.json()["description"]


QGIS = Path("/usr/lib/python3/dist-packages/qgis")


@pytest.mark.skipif(not QGIS.is_dir(), reason="QGIS comes from scripts/sysdeps.sh")
def test_qgis_reads_the_sld_as_rules(api: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "parcels.sld"
    path.write_bytes(api.get("/collections/parcels/styles/default", params={"f": "sld11"}).content)
    script = (
        "import json, sys\n"
        "from qgis.core import QgsApplication, QgsVectorLayer\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "layer = QgsVectorLayer('MultiPolygon?crs=EPSG:4546&field=dlbm:string', 'p', 'memory')\n"
        "error, ok = layer.loadSldStyle(sys.argv[1])\n"
        "rules = layer.renderer().rootRule().children() if ok else []\n"
        "print(json.dumps([ok, error, layer.renderer().type(), [[r.filterExpression(),"
        " r.symbol().color().name()] for r in rules]]))\n"
        "app.exitQgis()\n"
    )  # fmt: skip
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(["/usr/bin/python3", "-c", script, str(path)], env=env,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    ok, error, kind, rules = json.loads(done.stdout.strip().splitlines()[-1])
    assert ok, error
    assert kind == "RuleRenderer"
    assert rules[0] == ["dlbm LIKE '01%'", _land_colours()[0]]
    assert [colour for _, colour in rules[:13]] == _land_colours()


def test_a_collection_no_map_draws_has_a_style_by_geometry(api: httpx.Client) -> None:
    listed = api.get("/collections/gps_positions/styles").json()
    assert [x["id"] for x in listed["styles"]] == ["default"]
    doc = api.get("/collections/gps_positions/styles/default").json()
    assert [x["type"] for x in doc["layers"]] == ["circle"]
    assert doc["layers"][0]["paint"]["circle-color"] == styles.DEFAULT_COLOUR
    sheet = etree.fromstring(api.get("/collections/gps_positions/styles/default?f=sld11").content)
    fill = sheet.find(".//se:PointSymbolizer//se:SvgParameter[@name='fill']", NS)
    assert fill is not None and fill.text == styles.DEFAULT_COLOUR
