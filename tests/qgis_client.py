"""QGIS as a desktop user's client of the platform: run by ``tests/test_qgis.py`` with
Debian's ``/usr/bin/python3`` (QGIS 3.22's bindings, ``python3-qgis``), headless
(``QT_QPA_PLATFORM=offscreen``). Not a test module: it imports ``qgis``, not the platform.

    /usr/bin/python3 tests/qgis_client.py PLAN.json

The plan (JSON) names the server, an output folder, a bbox (CRS84, and ``near``: the same in
EPSG:3857) and a QGIS filter expression for the parcels, the style to load, and the extents
to render (``extent``: EPSG:3857; ``extent_4490``). QGIS loads, as its own dialogs would:

- ``oapif``: the parcels through OGC API - Features (provider ``OAPIF``): the count it
  reports, every feature read, the features in the bbox (asked of the server), those
  matching the filter;
- ``sld``: the same layer styled by the platform's SLD 1.1 (``readSldStyle``): its rules and
  their colours;
- ``vectortile``: the parcels as vector tiles (provider ``vectortile``, the XYZ template of
  the WebMercatorQuad tileset), styled by the platform's MapLibre style document
  (QGIS's converter);
- ``wmts``: the imagery through WMTS (provider ``wms``, WebMercatorQuad), and ``wmts_c``
  the same in the CGCS2000 ``c`` set;
- ``wms``: the ``land`` subsystem map through WMS 1.3.0 (provider ``wms``).

Each layer is rendered alone with ``QgsMapRendererParallelJob`` to ``OUT/<name>.png``
(white background); ``OUT/result.json`` holds what QGIS said about each.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from qgis.core import (  # type: ignore[import-not-found]
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeatureRequest,
    QgsFillSymbol,
    QgsMapBoxGlStyleConverter,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
    QgsVectorTileBasicRenderer,
    QgsVectorTileBasicRendererStyle,
    QgsVectorTileLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QSize  # type: ignore[import-not-found]
from qgis.PyQt.QtGui import QColor  # type: ignore[import-not-found]

SIZE = 512


def render(layer: Any, extent: QgsRectangle, path: Path, crs: str = "EPSG:3857") -> dict[str, Any]:
    """Draw ``layer`` alone over ``extent`` (in ``crs``) to a PNG; what the job reported."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(QgsCoordinateReferenceSystem(crs))
    settings.setExtent(extent)
    settings.setOutputSize(QSize(SIZE, SIZE))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(str(path), "PNG")
    return {"png": path.name, "errors": [e.message for e in job.errors()],
            "seconds": round(job.renderingTime() / 1000, 2)}  # fmt: skip


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - loopback test server
        data: bytes = response.read()
    return data


def oapif(plan: dict[str, Any], out: Path) -> dict[str, Any]:
    base = plan["base"]
    layer = QgsVectorLayer(f"url='{base}' typename='parcels' pageSize='10000'", "parcels", "OAPIF")
    found: dict[str, Any] = {"valid": layer.isValid(), "crs": layer.crs().authid()}
    if not layer.isValid():
        return found
    found["reported"] = layer.featureCount()
    found["fields"] = [f.name() for f in layer.fields()]
    # The bbox first, on a fresh layer: QGIS asks the server for it (bbox=...).
    w, s, e, n = plan["bbox"]
    request = QgsFeatureRequest().setFilterRect(QgsRectangle(w, s, e, n))
    clock = time.monotonic()
    found["in_bbox"] = sum(1 for _ in layer.getFeatures(request))
    keys = [f["dkbm"] for f in layer.getFeatures()]
    found["read"], found["distinct_keys"] = len(keys), len(set(keys))
    found["filtered"] = sum(1 for _ in layer.getFeatures(plan["filter"]))
    found["read_seconds"] = round(time.monotonic() - clock, 2)
    near = QgsRectangle(*plan["near"])  # the bbox in EPSG:3857: ~1,000 parcels to draw
    found["render"] = render(layer, near, out / "oapif.png")
    sld = out / "parcels.sld"
    sld.write_bytes(fetch(f"{base}/collections/parcels/styles/{plan['style']}?f=sld11"))
    message, ok = layer.loadSldStyle(str(sld))  # "Load Style..." of an .sld file: readSld
    styled: dict[str, Any] = {"loaded": ok, "message": message}
    renderer = layer.renderer()
    styled["renderer"] = renderer.type() if renderer else None
    rules = renderer.rootRule().children() if renderer and renderer.type() == "RuleRenderer" else []
    styled["rules"] = [
        {"filter": r.filterExpression(), "label": r.label(),
         "colors": [s.color().name() for s in r.symbol().symbolLayers()] if r.symbol() else []}
        for r in rules
    ]  # fmt: skip
    styled["render"] = render(layer, near, out / "sld.png")
    return {"oapif": found, "sld": styled}


def vectortile(plan: dict[str, Any], out: Path, extent: QgsRectangle) -> dict[str, Any]:
    base = plan["base"]
    template = f"{base}/collections/parcels/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"
    uri = f"type=xyz&url={urllib.parse.quote(template, safe=':/{}')}&zmin=0&zmax=16"
    layer = QgsVectorTileLayer(uri, "parcels tiles")
    found: dict[str, Any] = {"valid": layer.isValid(), "crs": layer.crs().authid()}
    if not layer.isValid():
        return found
    style = json.loads(fetch(f"{base}/collections/parcels/styles/{plan['style']}?f=mapbox"))
    converter = QgsMapBoxGlStyleConverter()
    found["converted"] = converter.convert(style) == QgsMapBoxGlStyleConverter.Success
    found["warnings"] = list(converter.warnings())[:5]
    # QGIS 3.22's converter drops a ``match`` on a ``slice`` (the land-use classes): the
    # user recreates those fills, one rule per class, from the style's own match list.
    classes = _classes(style)
    redone = {c.styleName().rsplit(" ", 1)[0] for c in classes}
    kept = [s for s in converter.renderer().styles() if s.styleName() not in redone]
    styles = kept + classes
    renderer = QgsVectorTileBasicRenderer()
    renderer.setStyles(styles)
    layer.setRenderer(renderer)
    found["styles"] = [{"name": s.styleName(), "filter": s.filterExpression(),
                        "color": s.symbol().color().name() if s.symbol() else None}
                       for s in styles]  # fmt: skip
    found["render"] = render(layer, extent, out / "vectortile.png")
    return found


def _classes(style: dict[str, Any]) -> list[Any]:
    """A fill style per value of each fill layer's ``["match", ["slice", ...], v, colour, ...]``."""
    found = []
    for entry in style["layers"]:
        color = entry.get("paint", {}).get("fill-color")
        if entry["type"] != "fill" or not (isinstance(color, list) and color[0] == "match"):
            continue
        _, key, *pairs = color
        field, (start, end) = key[1][1][1], key[2:4]
        opacity = float(entry["paint"].get("fill-opacity", 1))
        for value, hex_color in zip(pairs[0:-1:2], pairs[1:-1:2], strict=True):
            symbol = QgsFillSymbol.createSimple({"color": hex_color, "outline_style": "no"})
            symbol.setOpacity(opacity)
            rule = QgsVectorTileBasicRendererStyle(f"{entry['id']} {value}", entry["source-layer"],
                                                   QgsWkbTypes.PolygonGeometry)  # fmt: skip
            rule.setFilterExpression(f"substr(\"{field}\", {start + 1}, {end - start}) = '{value}'")
            rule.setSymbol(symbol)
            found.append(rule)
    return found


def raster(uri: str, name: str, out: Path, extent: QgsRectangle, crs: str) -> dict[str, Any]:
    layer = QgsRasterLayer(uri, name, "wms")
    found: dict[str, Any] = {"valid": layer.isValid(), "uri": uri}
    if not layer.isValid():
        found["error"] = layer.error().summary()
        return found
    found["crs"] = layer.crs().authid()
    found["render"] = render(layer, extent, out / f"{name}.png", crs)
    return found


def main(plan_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    out = Path(plan["out"])
    base = plan["base"]
    app = QgsApplication([], False)
    app.initQgis()
    result: dict[str, Any] = {"qgis": __import__("qgis.core").core.Qgis.QGIS_VERSION}
    extent = QgsRectangle(*plan["extent"])
    wmts = f"{base}/wmts?SERVICE=WMTS&REQUEST=GetCapabilities"
    steps = {
        "vector": lambda: oapif(plan, out),
        "vectortile": lambda: {"vectortile": vectortile(plan, out, extent)},
        "wmts": lambda: {"wmts": raster(
            f"crs=EPSG:3857&format=image/png&layers=imagery&styles=truecolor"
            f"&tileMatrixSet=WebMercatorQuad&url={urllib.parse.quote(wmts)}",
            "wmts", out, extent, "EPSG:3857")},
        "wmts_c": lambda: {"wmts_c": raster(
            f"crs=EPSG:4490&format=image/png&layers=imagery&styles=truecolor"
            f"&tileMatrixSet=c&url={urllib.parse.quote(wmts)}",
            "wmts_c", out, QgsRectangle(*plan["extent_4490"]), "EPSG:4490")},
        "wms": lambda: {"wms": raster(
            f"crs=EPSG:3857&format=image/png&layers=land&styles=&url={base}/wms",
            "wms", out, extent, "EPSG:3857")},
    }  # fmt: skip
    for name, step in steps.items():
        started = time.monotonic()
        try:
            result.update(step())
        except Exception:  # noqa: BLE001 - one client step failing must not hide the others
            result[name] = {"exception": traceback.format_exc()}
        result.setdefault("seconds", {})[name] = round(time.monotonic() - started, 2)
    (out / "result.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    app.exitQgis()


if __name__ == "__main__":
    main(sys.argv[1])
