"""The classic OGC web services' common parts: KVP parsing, exception reports, the tile
matrix sets WMTS offers, capabilities XML (WMTS 1.0.0, WMS 1.3.0) and feature info.

- Parameter names are case-insensitive (OGC 06-121r3 11.5.2): :func:`kvp` lower-cases
  them; values are taken as given.
- Exceptions: WMTS answers an OWS 1.1 ``ExceptionReport``, WMS 1.3.0 a
  ``ServiceExceptionReport`` (namespace ``http://www.opengis.net/ogc``), both with the
  standard's code and ``locator`` and an HTTP status (400 for a bad parameter, 404 for a
  layer the caller may not read or that does not exist, 501 for an unknown request).
- Tile matrix sets (:data:`MATRIX_SETS`): ``WebMercatorQuad`` and ``CGCS2000Quad``
  (:mod:`tiles.tms`), and Tianditu's ``c`` (EPSG:4490, matrices "1".."18", level 1 of
  2 x 1 tiles = CGCS2000Quad zoom 0) and ``w`` (Web Mercator, "1".."18" = zoom), so pages
  built on Tianditu's services switch by URL only. Scale denominators are OGC's (0.28 mm
  pixels: what OWSLib, GDAL, OpenLayers and QGIS compute resolutions from), as in
  Tianditu's ``/esri/wmts`` capabilities; its default capabilities' 96 dpi figures would
  put every OGC client 5.8 % off. The top left corner of an EPSG:4490 set is written
  latitude first (``90 -180``), the CRS's axis order.
- No URL to another host is written (no ``schemaLocation``).
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import pyproj
from lxml import etree
from rasterio.io import MemoryFile
from starlette.requests import HTTPConnection
from starlette.responses import Response

from api.errors import STATUS as STATUS_OF
from api.errors import language
from layers.access import View
from layers.subsystems import Subsystems
from spatial.errors import (
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    SpatialError,
    UnauthorizedError,
)
from spatial.features import ItemsQuery
from spatial.i18n import message
from spatial.mosaic import Scene
from spatial.rasterstore import RasterStore
from tiles import raster, render
from tiles.tms import TILE_MATRIX_SETS

OWS = "http://www.opengis.net/ows/1.1"
WMTS = "http://www.opengis.net/wmts/1.0"
WMS = "http://www.opengis.net/wms"
OGC = "http://www.opengis.net/ogc"
SLD = "http://www.opengis.net/sld"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_TYPE = "text/xml; charset=utf-8"
TITLE = "3S spatial platform"
TIANDITU_LEVELS = 18
"""Tianditu's sets ``c`` and ``w`` have matrices "1".."18"."""

STATUS = {
    "MissingParameterValue": 400, "InvalidParameterValue": 400, "TileOutOfRange": 400,
    "OperationNotSupported": 501, "VersionNegotiationFailed": 400, "LayerNotDefined": 404,
    "StyleNotDefined": 400, "InvalidCRS": 400, "InvalidSRS": 400, "InvalidFormat": 400,
    "InvalidPoint": 400, "LayerNotQueryable": 400, "InvalidDimensionValue": 400,
    "MissingDimensionValue": 400, "NoApplicableCode": 500,
}  # fmt: skip


_XML_BODY = {"content": {"text/xml; charset=utf-8": {"schema": {"type": "string"}}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "A bad or missing parameter (an exception report)", **_XML_BODY},
    404: {"description": "No such layer, or one the caller may not read", **_XML_BODY},
    501: {"description": "An operation the service does not offer", **_XML_BODY},
    503: {"description": "The database is unavailable (see Retry-After)", **_XML_BODY},
}
"""The exception reports' statuses, for the OpenAPI document."""


def responses(*media: str) -> dict[int | str, dict[str, Any]]:
    """A route's responses for the OpenAPI document: 200 in ``media``, the reports."""
    ok = {"description": "OK", "content": {m: {"schema": {"type": "string"}} for m in media}}
    return {200: ok, **ERROR_RESPONSES}


class OwsError(Exception):
    """A request a classic service refuses: the standard's code, the parameter at fault
    (``locator``) and a message."""

    def __init__(
        self, code: str, message: str, locator: str | None = None, status: int | None = None
    ) -> None:
        """``status``: the HTTP status (default: the code's, :data:`STATUS`)."""
        super().__init__(message)
        self.code = code
        self.locator = locator
        self.status = status or STATUS.get(code, 400)


def kvp(request: HTTPConnection) -> dict[str, str]:
    """The query's parameters by lower-cased name (the first of a repeated one)."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        found.setdefault(name.lower(), value)
    return found


def required(params: Mapping[str, str], name: str) -> str:
    """A parameter that must be given and not empty.

    Raises:
        OwsError: MissingParameterValue.
    """
    value = params.get(name.lower(), "").strip()
    if not value:
        raise OwsError("MissingParameterValue", f"{name} is required", name)
    return value


def whole(params: Mapping[str, str], name: str, low: int = 0, high: int = 10**9) -> int:
    """A required whole-number parameter within ``low..high``.

    Raises:
        OwsError: MissingParameterValue or InvalidParameterValue.
    """
    text = required(params, name)
    if not text.isdigit() or len(text) > 10 or not low <= int(text) <= high:
        msg = f"{name} must be a whole number from {low} to {high}, not {text[:30]!r}"
        raise OwsError("InvalidParameterValue", msg, name)
    return int(text)


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with what XML cannot hold (control characters, lone surrogates: a
    parameter echoed in a message) replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def service_exception(err: OwsError, request: HTTPConnection) -> Response:
    """A WMS 1.3.0 ServiceExceptionReport, its message in the request's language
    (:func:`api.errors.language`)."""
    lang = language(request.scope)
    root = etree.Element(f"{{{OGC}}}ServiceExceptionReport", nsmap={None: OGC}, version="1.3.0")
    item = etree.SubElement(root, f"{{{OGC}}}ServiceException", code=err.code)
    if err.locator:
        item.set("locator", xml_text(err.locator))
    item.text = xml_text(message(str(err), lang, err.code))
    return xml_response(root, err.status, lang)


def exception_report(err: OwsError, request: HTTPConnection) -> Response:
    """An OWS 1.1 ExceptionReport (WMTS 1.0.0), its message in the request's language
    (``xml:lang`` says which)."""
    lang = language(request.scope)
    root = etree.Element(
        f"{{{OWS}}}ExceptionReport", nsmap={"ows": OWS}, version="1.0.0",
        attrib={"{http://www.w3.org/XML/1998/namespace}lang": lang},
    )  # fmt: skip
    item = etree.SubElement(root, f"{{{OWS}}}Exception", exceptionCode=err.code)
    if err.locator:
        item.set("locator", xml_text(err.locator))
    text = message(str(err), lang, err.code)
    etree.SubElement(item, f"{{{OWS}}}ExceptionText").text = xml_text(text)
    return xml_response(root, err.status, lang)


def xml_response(root: etree._Element, status: int = 200, lang: str | None = None) -> Response:
    """``root`` as an XML document (in ``lang``: its Content-Language)."""
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    headers = {"Content-Language": lang} if lang else None
    return Response(body, status_code=status, media_type=XML_TYPE, headers=headers)


@dataclass(frozen=True)
class MatrixSet:
    """A WMTS tile matrix set over one of :mod:`tiles.tms`'s sets: matrix ``first`` is
    its zoom ``zoom0`` (Tianditu's sets start at "1")."""

    id: str
    base: str
    crs: int
    first: int
    levels: int | None
    """How many matrices (None: up to the platform's deepest zoom)."""
    zoom0: int
    well_known: str | None = None

    def zooms(self, max_zoom: int) -> range:
        """The zooms of the base set this set offers."""
        deepest = min(max_zoom, TILE_MATRIX_SETS[self.base].maxzoom)
        last = deepest if self.levels is None else min(deepest, self.zoom0 + self.levels - 1)
        return range(self.zoom0, last + 1)

    def zoom(self, identifier: str, max_zoom: int) -> int | None:
        """The base set's zoom of matrix ``identifier`` (None: not a matrix of this set)."""
        text = identifier.rsplit(":", 1)[-1]  # "EPSG:3857:14" as some clients write it
        if not text.isdigit() or len(text) > 3:
            return None
        z = int(text) - self.first + self.zoom0
        return z if z in self.zooms(max_zoom) else None

    def identifier(self, z: int) -> str:
        """The matrix identifier of base zoom ``z``."""
        return str(z - self.zoom0 + self.first)


MATRIX_SETS: dict[str, MatrixSet] = {
    "WebMercatorQuad": MatrixSet("WebMercatorQuad", "WebMercatorQuad", 3857, 0, None, 0,
                                 "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible"),
    "CGCS2000Quad": MatrixSet("CGCS2000Quad", "CGCS2000Quad", 4490, 0, None, 0),
    "c": MatrixSet("c", "CGCS2000Quad", 4490, 1, TIANDITU_LEVELS, 0),
    "w": MatrixSet("w", "WebMercatorQuad", 3857, 1, TIANDITU_LEVELS, 1),
}  # fmt: skip
"""The WMTS tile matrix sets by identifier."""


def matrix_set(identifier: str) -> MatrixSet:
    """The set named ``identifier`` (exact, else case-insensitive; Tianditu's pages send
    ``c``/``w``, some clients ``EPSG:3857``).

    Raises:
        OwsError: InvalidParameterValue.
    """
    found = MATRIX_SETS.get(identifier) or next(
        (s for k, s in MATRIX_SETS.items() if k.lower() == identifier.lower()), None
    )
    if found is None:
        msg = f"TileMatrixSet {identifier[:40]!r} is not offered; use {', '.join(MATRIX_SETS)}"
        raise OwsError("InvalidParameterValue", msg, "TileMatrixSet")
    return found


def _e(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        child.text = xml_text(text)
    return child


def _ows(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    return _e(parent, f"{{{OWS}}}{tag}", text, **attrs)


def _w(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    return _e(parent, f"{{{WMTS}}}{tag}", text, **attrs)


def _num(value: float) -> str:
    return repr(float(value))


@dataclass(frozen=True)
class TileLayerDoc:
    """A WMTS layer as the capabilities describe it."""

    name: str
    title: str
    abstract: str
    lonlat: tuple[float, float, float, float]
    styles: tuple[tuple[str, str], ...]
    formats: tuple[str, ...]
    info_formats: tuple[str, ...]


TILE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}
INFO_EXTENSIONS = {"application/json": "json", "text/html": "html"}


def wmts_capabilities(
    base: str, title: str, layers: Sequence[TileLayerDoc], max_zoom: int
) -> etree._Element:
    """The WMTS 1.0.0 capabilities document: KVP at ``{base}/wmts?``, RESTful templates
    under ``{base}/wmts/1.0.0/``."""
    root = etree.Element(f"{{{WMTS}}}Capabilities", version="1.0.0",
                         nsmap={None: WMTS, "ows": OWS, "xlink": XLINK})  # fmt: skip
    ident = _ows(root, "ServiceIdentification")
    _ows(ident, "Title", title)
    _ows(ident, "Abstract", "Map tiles of the catalog's collections and subsystem maps")
    _ows(ident, "ServiceType", "OGC WMTS")
    _ows(ident, "ServiceTypeVersion", "1.0.0")
    _ows(_ows(root, "ServiceProvider"), "ProviderName", title)
    ops = _ows(root, "OperationsMetadata")
    for name in ("GetCapabilities", "GetTile", "GetFeatureInfo"):
        http = _ows(_ows(_ows(ops, "Operation", name=name), "DCP"), "HTTP")
        for href, encoding in ((f"{base}/wmts?", "KVP"), (f"{base}/wmts/1.0.0/", "RESTful")):
            get = _ows(http, "Get", **{f"{{{XLINK}}}href": href})
            allowed = _ows(_ows(get, "Constraint", name="GetEncoding"), "AllowedValues")
            _ows(allowed, "Value", encoding)
    contents = _w(root, "Contents")
    for layer in layers:
        _wmts_layer(contents, base, layer)
    for ms in MATRIX_SETS.values():
        _matrix_set(contents, ms, max_zoom)
    _w(
        root,
        "ServiceMetadataURL",
        **{f"{{{XLINK}}}href": f"{base}/wmts/1.0.0/WMTSCapabilities.xml"},
    )
    return root


def _wmts_layer(contents: etree._Element, base: str, layer: TileLayerDoc) -> None:
    node = _w(contents, "Layer")
    _ows(node, "Title", layer.title)
    _ows(node, "Abstract", layer.abstract or layer.title)
    box = _ows(node, "WGS84BoundingBox")
    _ows(box, "LowerCorner", f"{_num(layer.lonlat[0])} {_num(layer.lonlat[1])}")
    _ows(box, "UpperCorner", f"{_num(layer.lonlat[2])} {_num(layer.lonlat[3])}")
    _ows(node, "Identifier", layer.name)
    for i, (style, style_title) in enumerate(layer.styles):
        s = _w(node, "Style", isDefault="true") if i == 0 else _w(node, "Style")
        _ows(s, "Title", style_title)
        _ows(s, "Identifier", style)
    for fmt in layer.formats:
        _w(node, "Format", fmt)
    for fmt in layer.info_formats:
        _w(node, "InfoFormat", fmt)
    for ms in MATRIX_SETS:
        _w(_w(node, "TileMatrixSetLink"), "TileMatrixSet", ms)
    rest = f"{base}/wmts/1.0.0/{layer.name}/{{Style}}/{{TileMatrixSet}}/{{TileMatrix}}"
    for fmt in layer.formats:
        _w(node, "ResourceURL", format=fmt, resourceType="tile",
           template=f"{rest}/{{TileRow}}/{{TileCol}}.{TILE_EXTENSIONS[fmt]}")  # fmt: skip
    for fmt in layer.info_formats:
        where = f"{rest}/{{TileRow}}/{{TileCol}}/{{J}}/{{I}}.{INFO_EXTENSIONS[fmt]}"
        _w(node, "ResourceURL", format=fmt, resourceType="FeatureInfo", template=where)


def _matrix_set(contents: etree._Element, ms: MatrixSet, max_zoom: int) -> None:
    tms = TILE_MATRIX_SETS[ms.base]
    node = _w(contents, "TileMatrixSet")
    _ows(node, "Identifier", ms.id)
    _ows(node, "SupportedCRS", f"urn:ogc:def:crs:EPSG::{ms.crs}")
    if ms.well_known:
        _w(node, "WellKnownScaleSet", ms.well_known)
    for z in ms.zooms(max_zoom):
        matrix = tms.matrix(z)
        x, y = matrix.pointOfOrigin
        m = _w(node, "TileMatrix")
        _ows(m, "Identifier", ms.identifier(z))
        _w(m, "ScaleDenominator", _num(matrix.scaleDenominator))
        # The set's CRS's axis order: latitude first for EPSG:4490 (morecantile keeps
        # the point as the TMS document writes it: x, y for 3857, lat, lon for 4490).
        _w(m, "TopLeftCorner", f"{_num(x)} {_num(y)}")
        _w(m, "TileWidth", str(matrix.tileWidth))
        _w(m, "TileHeight", str(matrix.tileHeight))
        _w(m, "MatrixWidth", str(matrix.matrixWidth))
        _w(m, "MatrixHeight", str(matrix.matrixHeight))


# --- WMS 1.3.0 --------------------------------------------------------------------------

WMS_CRS = ("EPSG:3857", "EPSG:4326", "CRS:84", "EPSG:4490",
           *(f"EPSG:{code}" for code in range(4513, 4555)))  # fmt: skip
MAP_FORMATS: dict[str, Literal["png", "jpeg"]] = {"image/png": "png", "image/jpeg": "jpeg"}
INFO_FORMATS = ("application/json", "text/html")
MAX_SIZE = render.MAX_SERVED


@dataclass(frozen=True)
class MapLayerDoc:
    """A WMS layer (a group when it has children)."""

    name: str
    title: str
    abstract: str
    lonlat: tuple[float, float, float, float]
    styles: tuple[tuple[str, str], ...]
    queryable: bool
    children: tuple[MapLayerDoc, ...] = ()
    times: tuple[str, ...] = ()
    """Imagery: the dates of its scenes (the TIME dimension)."""


def wms_capabilities(base: str, title: str, layers: Sequence[MapLayerDoc]) -> etree._Element:
    """The WMS 1.3.0 capabilities document, every request at ``{base}/wms?``."""
    root = etree.Element(f"{{{WMS}}}WMS_Capabilities", version="1.3.0",
                         nsmap={None: WMS, "xlink": XLINK, "sld": SLD})  # fmt: skip
    online = {f"{{{XLINK}}}type": "simple", f"{{{XLINK}}}href": f"{base}/wms?"}
    service = _e(root, f"{{{WMS}}}Service")
    _e(service, f"{{{WMS}}}Name", "WMS")
    _e(service, f"{{{WMS}}}Title", title)
    _e(service, f"{{{WMS}}}Abstract", "Maps of the catalog's collections and subsystem maps")
    _e(service, f"{{{WMS}}}OnlineResource", **online)
    _e(service, f"{{{WMS}}}MaxWidth", str(MAX_SIZE))
    _e(service, f"{{{WMS}}}MaxHeight", str(MAX_SIZE))
    capability = _e(root, f"{{{WMS}}}Capability")
    request = _e(capability, f"{{{WMS}}}Request")
    operations = (
        (f"{{{WMS}}}GetCapabilities", ("text/xml",)),
        (f"{{{WMS}}}GetMap", tuple(MAP_FORMATS)),
        (f"{{{WMS}}}GetFeatureInfo", INFO_FORMATS),
        (f"{{{SLD}}}GetLegendGraphic", ("image/png", "image/jpeg")),
    )
    for tag, formats in operations:
        op = _e(request, tag)
        for fmt in formats:
            _e(op, f"{{{WMS}}}Format", fmt)
        http = _e(_e(op, f"{{{WMS}}}DCPType"), f"{{{WMS}}}HTTP")
        _e(_e(http, f"{{{WMS}}}Get"), f"{{{WMS}}}OnlineResource", **online)
    _e(_e(capability, f"{{{WMS}}}Exception"), f"{{{WMS}}}Format", "XML")
    top = _e(capability, f"{{{WMS}}}Layer")
    _e(top, f"{{{WMS}}}Title", title)
    for crs in WMS_CRS:
        _e(top, f"{{{WMS}}}CRS", crs)
    boxes = [layer.lonlat for layer in layers] or [(-180.0, -90.0, 180.0, 90.0)]
    whole_box = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                 max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip
    _geographic_box(top, whole_box)
    for layer in layers:
        _wms_layer(top, base, layer)
    return root


def _geographic_box(node: etree._Element, lonlat: tuple[float, float, float, float]) -> None:
    box = _e(node, f"{{{WMS}}}EX_GeographicBoundingBox")
    for tag, value in zip(("westBoundLongitude", "eastBoundLongitude", "southBoundLatitude",
                           "northBoundLatitude"), (lonlat[0], lonlat[2], lonlat[1], lonlat[3]),
                          strict=True):  # fmt: skip
        _e(box, f"{{{WMS}}}{tag}", _num(value))
    _e(node, f"{{{WMS}}}BoundingBox", CRS="CRS:84", minx=_num(lonlat[0]), miny=_num(lonlat[1]),
       maxx=_num(lonlat[2]), maxy=_num(lonlat[3]))  # fmt: skip
    # EPSG:4326 in WMS 1.3.0: latitude first.
    _e(node, f"{{{WMS}}}BoundingBox", CRS="EPSG:4326", minx=_num(lonlat[1]),
       miny=_num(lonlat[0]), maxx=_num(lonlat[3]), maxy=_num(lonlat[2]))  # fmt: skip


def _wms_layer(parent: etree._Element, base: str, layer: MapLayerDoc) -> None:
    node = _e(parent, f"{{{WMS}}}Layer", queryable="1" if layer.queryable else "0")
    _e(node, f"{{{WMS}}}Name", layer.name)
    _e(node, f"{{{WMS}}}Title", layer.title)
    _e(node, f"{{{WMS}}}Abstract", layer.abstract or layer.title)
    _geographic_box(node, layer.lonlat)
    if layer.times:
        _e(node, f"{{{WMS}}}Dimension", ",".join(layer.times), name="time", units="ISO8601",
           default=layer.times[-1], nearestValue="1")  # fmt: skip
    for style, style_title in layer.styles:
        s = _e(node, f"{{{WMS}}}Style")
        _e(s, f"{{{WMS}}}Name", style)
        _e(s, f"{{{WMS}}}Title", style_title)
        legend = _e(s, f"{{{WMS}}}LegendURL", width="200", height="20")
        _e(legend, f"{{{WMS}}}Format", "image/png")
        href = (f"{base}/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetLegendGraphic"
                f"&FORMAT=image/png&LAYER={layer.name}&STYLE={style}")  # fmt: skip
        _e(legend, f"{{{WMS}}}OnlineResource",
           **{f"{{{XLINK}}}type": "simple", f"{{{XLINK}}}href": href})  # fmt: skip
    for child in layer.children:
        _wms_layer(node, base, child)


# --- GetFeatureInfo ---------------------------------------------------------------------


@dataclass(frozen=True)
class LayerInfoResult:
    """What one layer has under the pixel: features (GeoJSON dicts) or band values."""

    layer: str
    title: str
    features: tuple[dict[str, Any], ...] = ()
    values: Mapping[str, float | None] | None = None


def info_json(results: Iterable[LayerInfoResult]) -> Response:
    """A GeoJSON FeatureCollection: each feature with its ``layer``; band values of
    imagery as a feature without geometry."""
    features: list[dict[str, Any]] = []
    for result in results:
        if result.values is not None:
            features.append({"type": "Feature", "layer": result.layer, "geometry": None,
                             "properties": dict(result.values)})  # fmt: skip
        features.extend({**f, "layer": result.layer} for f in result.features)
    body = {"type": "FeatureCollection", "features": features}
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")


_HEAD = "<title>Feature info</title></head><body>"


def info_html(results: Iterable[LayerInfoResult]) -> Response:
    """An HTML page: a table of attributes per layer."""
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">' + _HEAD]
    for result in results:
        parts.append(f"<h2>{html.escape(result.title)}</h2>")
        rows = [result.values] if result.values is not None else [
            f.get("properties") or {} for f in result.features
        ]  # fmt: skip
        if not rows:
            parts.append("<p>Nothing here.</p>")
            continue
        columns = list(dict.fromkeys(k for row in rows for k in row))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns)
            + "</tr>" for row in rows
        )  # fmt: skip
        parts.append(f'<table class="feature-info"><tr>{head}</tr>{body}</table>')
    parts.append("</body></html>")
    return Response("".join(parts), media_type="text/html; charset=utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- Shared by WMS and WMTS: layers, and what lies under a pixel -------------------------


def drawables(
    view: View, maps: Subsystems, name: str, style: str | None, *, wms: bool
) -> list[render.Drawable]:
    """What layer ``name`` in ``style`` draws, as the caller sees it.

    Raises:
        OwsError: LayerNotDefined (WMS) or InvalidParameterValue (WMTS), HTTP 404, for a
            layer that does not exist or that the caller may not read (the same answer);
            StyleNotDefined (WMS) or InvalidParameterValue (WMTS) for an unknown style.
    """
    try:
        return render.resolve(view, maps, name, None if style in {None, ""} else style)
    except (NotFoundError, ForbiddenError, UnauthorizedError):
        code, locator = ("LayerNotDefined", "LAYERS") if wms else ("InvalidParameterValue", "Layer")
        msg = f"layer {name[:80]!r} is not offered"
        raise OwsError(code, msg, locator, status=404) from None
    except InvalidInputError as exc:
        code, locator = ("StyleNotDefined", "STYLES") if wms else ("InvalidParameterValue", "Style")
        raise OwsError(code, str(exc), locator) from None


def lonlat_box(
    bbox: tuple[float, float, float, float], crs: int
) -> tuple[float, float, float, float]:
    """A box of ``crs`` (x = easting or longitude) as lon/lat."""
    if crs in {4326, 4490}:
        return bbox
    transformer = _to_lonlat(crs)
    west, south, east, north = transformer.transform_bounds(*bbox, densify_pts=5)
    return (west, south, east, north)


@lru_cache(maxsize=64)
def _to_lonlat(crs: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(crs, 4326, always_xy=True)


def pixel_box(
    bbox: tuple[float, float, float, float], size: tuple[int, int], i: int, j: int,
    radius: float,
) -> tuple[float, float, float, float]:  # fmt: skip
    """The box of pixel (``i``, ``j``) of an image of ``size`` over ``bbox``, grown by
    ``radius`` pixels each side."""
    minx, miny, maxx, maxy = bbox
    dx, dy = (maxx - minx) / size[0], (maxy - miny) / size[1]
    return (minx + (i - radius) * dx, maxy - (j + 1 + radius) * dy,
            minx + (i + 1 + radius) * dx, maxy - (j - radius) * dy)  # fmt: skip


async def features_at(
    conn: Any, view: View, store: RasterStore, layers: Sequence[render.Drawable], *,
    frame_box: tuple[float, float, float, float], count: int,
) -> list[LayerInfoResult]:  # fmt: skip
    """The features of each vector layer meeting ``frame_box`` (lon/lat), the caller's
    row filters applied, at most ``count`` each, with the layer's popup attributes (all
    when it lists none); for imagery, the band values at the box's centre."""
    results: list[LayerInfoResult] = []
    for d in layers:
        if d.kind == "raster":
            results.append(await _values_at(conn, view, store, d, frame_box))
            continue
        found = view.features(d.collection)
        wanted = tuple(p for p in (d.layer.popup if d.layer else ()) if p in found.fields)
        q = ItemsQuery(limit=count, bbox=frame_box, properties=wanted or None,
                       skip_geometry=True)  # fmt: skip
        page = await found.features(conn, q)
        parsed = json.loads(f"[{page.features}]") if page.features else []
        results.append(LayerInfoResult(d.collection, d.title, tuple(parsed)))
    return results


async def _values_at(
    conn: Any, view: View, store: RasterStore, d: render.Drawable,
    box: tuple[float, float, float, float],
) -> LayerInfoResult:  # fmt: skip
    collection = view.raster(d.collection)
    lon, lat = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    point = (lon - 1e-7, lat - 1e-7, lon + 1e-7, lat + 1e-7)
    scenes = await collection.scenes(conn, store, lonlat=point)
    if not scenes:
        return LayerInfoResult(d.collection, d.title, values={})
    values = await asyncio.to_thread(_sample, scenes, point)
    return LayerInfoResult(d.collection, d.title, values=values)


def _sample(scenes: Sequence[Scene], point: tuple[float, float, float, float]) -> dict[str, Any]:
    style = raster.Style(bands=scenes[0].names())
    try:
        data = raster.coverage(scenes, style, point, "EPSG:4326", width=1, height=1)
    except InvalidInputError:  # no scene has data there
        return {}
    with MemoryFile(data) as memory, memory.open() as src:
        values = src.read()[:, 0, 0]
        names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
    return {n: None if math.isnan(v) else float(v) for n, v in zip(names, values, strict=True)}


def translate(exc: SpatialError) -> OwsError:
    """A domain error met while serving, as an OWS exception with the platform's status
    (:data:`api.errors.STATUS`): a bad value is InvalidParameterValue, the rest
    NoApplicableCode."""
    status, _code = next(
        (v for cls, v in STATUS_OF.items() if isinstance(exc, cls)), (500, "ServerError")
    )
    code = "InvalidParameterValue" if status in {400, 404} else "NoApplicableCode"
    return OwsError(code, str(exc), status=status)
