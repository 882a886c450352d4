"""WMS 1.3.0: ``/wms?SERVICE=WMS&REQUEST=GetCapabilities|GetMap|GetFeatureInfo|
GetLegendGraphic``.

Layers: every vector collection and imagery the caller may read, and every subsystem map
they may open as a named group whose children are its layers (``{subsystem}:{layer}``);
styles as :mod:`tiles.render` lists them. CRS: EPSG:3857, EPSG:4326 and EPSG:4490 (both
latitude first in 1.3.0), CRS:84 and the Gauss-Krüger zones EPSG:4513..4554 (northing
first). A 1.1.1 request (``SRS``, ``X``/``Y``, x-first boxes) is answered too, the
capabilities are 1.3.0's.

Errors are ServiceExceptionReports (:func:`api.ows.service_exception`) with the
standard's code; a layer that does not exist or that the caller may not read is the same
``LayerNotDefined`` with HTTP 404: the platform answers 404 for what a caller may not
see, so caches and monitors see a failure too (WMS 1.3.0 does not fix the status; OWSLib,
GDAL and QGIS read the report's code and message either way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from api import ows
from api.deps import caller, database
from api.ogc import base_url
from api.routing import Router
from layers.subsystems import Subsystems
from spatial.errors import InvalidInputError, SpatialError
from spatial.features import serving_crs
from spatial.mosaic import window
from tiles import render

router = Router(tags=["WMS"])
_BGCOLOR = re.compile(r"^0x([0-9a-fA-F]{6})$")
_ALIASES: dict[str, Literal["png", "jpeg"]] = {
    "png": "png", "jpeg": "jpeg", "jpg": "jpeg", "image/jpg": "jpeg"
}  # fmt: skip


@dataclass(frozen=True)
class MapAsk:
    """A checked GetMap (or the map of a GetFeatureInfo)."""

    names: tuple[str, ...]
    layers: tuple[list[render.Drawable], ...]
    frame: render.Frame
    version: str


def _maps(request: Request) -> Subsystems:
    found: Subsystems = request.app.state.subsystems
    return found


@router.get("/wms", summary="WMS 1.3.0", response_model=None, responses=ows.responses(
    "text/xml; charset=utf-8", "image/png", "image/jpeg", "application/json",
    "text/html; charset=utf-8"))  # fmt: skip
async def wms(request: Request) -> Response:
    """``SERVICE=WMS&REQUEST=GetCapabilities|GetMap|GetFeatureInfo|GetLegendGraphic``
    with the standard's parameters (names in any case)."""
    p = ows.kvp(request)
    try:
        operation = ows.required(p, "REQUEST").lower()
        service = p.get("service", "WMS")
        if service.upper() != "WMS":
            msg = f"SERVICE={service[:20]!r}: this is WMS"
            raise ows.OwsError("InvalidParameterValue", msg, "SERVICE")
        if operation in {"getcapabilities", "capabilities"}:
            return await _capabilities(request)
        if operation == "getmap":
            return await _get_map(request, _map_ask(request, p, p.get("format")))
        if operation == "getfeatureinfo":
            return await _feature_info(request, p, _map_ask(request, p, None))
        if operation == "getlegendgraphic":
            return await _legend(request, p)
        msg = (
            f"REQUEST={operation[:40]!r} is not offered: GetCapabilities, GetMap, "
            "GetFeatureInfo, GetLegendGraphic"
        )
        raise ows.OwsError("OperationNotSupported", msg, "REQUEST")
    except ows.OwsError as err:
        return ows.service_exception(err, request)
    except SpatialError as exc:
        return ows.service_exception(ows.translate(exc), request)


def _map_ask(request: Request, p: dict[str, str], fmt_text: str | None) -> MapAsk:
    """The map's parameters, checked (``fmt_text`` None: a GetFeatureInfo's, whose
    FORMAT does not matter)."""
    version = p.get("version", "1.3.0").strip() or "1.3.0"
    if version not in {"1.3.0", "1.1.1", "1.1.0"}:
        msg = f"VERSION={version[:20]!r}: use 1.3.0"
        raise ows.OwsError("InvalidParameterValue", msg, "VERSION")
    names = tuple(n.strip() for n in ows.required(p, "LAYERS").split(","))
    styles = [s.strip() for s in p.get("styles", "").split(",")] if p.get("styles") else []
    if styles and len(styles) != len(names):
        msg = f"STYLES names {len(styles)} styles for {len(names)} layers: give one per layer"
        raise ows.OwsError("StyleNotDefined", msg, "STYLES")
    view, maps = caller(request), _maps(request)
    layers = tuple(
        ows.drawables(view, maps, name, styles[k] if styles else None, wms=True)
        for k, name in enumerate(names)
    )
    srid, bbox = _crs_and_box(p, version)
    width, height = ows.whole(p, "WIDTH", 1, ows.MAX_SIZE), ows.whole(p, "HEIGHT", 1, ows.MAX_SIZE)
    fmt: Literal["png", "jpeg"] = "png"
    if fmt_text is not None:
        fmt = _format(fmt_text)
    transparent = p.get("transparent", "FALSE").strip().upper()
    if transparent not in {"TRUE", "FALSE"}:
        msg = f"TRANSPARENT must be TRUE or FALSE, not {transparent[:20]!r}"
        raise ows.OwsError("InvalidParameterValue", msg, "TRANSPARENT")
    colour = p.get("bgcolor", "0xFFFFFF").strip()
    match = _BGCOLOR.match(colour)
    if match is None:
        msg = f"BGCOLOR must be 0xRRGGBB, not {colour[:20]!r}"
        raise ows.OwsError("InvalidParameterValue", msg, "BGCOLOR")
    when = p.get("time", "").strip() or None
    if when is not None:
        try:
            window(when)
        except InvalidInputError as exc:
            raise ows.OwsError("InvalidDimensionValue", str(exc), "TIME") from None
    on = transparent == "TRUE" and fmt == "png"
    frame = render.Frame(
        bbox=bbox, crs=srid, width=width, height=height, format=fmt, transparent=on,
        background=None if on else f"#{match[1].lower()}", datetime=when,
    )  # fmt: skip
    return MapAsk(names, layers, frame, version)


def _format(text: str) -> Literal["png", "jpeg"]:
    kind = text.strip().lower().split(";")[0]
    fmt = ows.MAP_FORMATS.get(kind) or _ALIASES.get(kind)
    if fmt is None:
        msg = f"FORMAT {text[:40]!r} is not offered; use {' or '.join(ows.MAP_FORMATS)}"
        raise ows.OwsError("InvalidFormat", msg, "FORMAT")
    return fmt


def _crs_and_box(p: dict[str, str], version: str) -> tuple[int, tuple[float, float, float, float]]:
    """The map's CRS (EPSG code) and its box as x (easting, longitude), y."""
    name, code = ("CRS", "InvalidCRS") if version == "1.3.0" else ("SRS", "InvalidSRS")
    text = ows.required(p, name).strip()
    if text.upper() not in {c.upper() for c in ows.WMS_CRS}:
        msg = (
            f"{name} {text[:40]!r} is not offered; use CRS:84, EPSG:3857, EPSG:4326, "
            "EPSG:4490 or a Gauss-Kruger zone EPSG:4513..4554"
        )
        raise ows.OwsError(code, msg, name)
    if text.upper() == "CRS:84":
        srid, flip = 4326, False
    else:
        served = serving_crs(text.upper())
        srid, flip = served.srid, served.flip and version == "1.3.0"
    parts = ows.required(p, "BBOX").split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(abs(v) < 1e9 for v in values):
        msg = "BBOX must be four numbers: minx,miny,maxx,maxy in the CRS's axis order"
        raise ows.OwsError("InvalidParameterValue", msg, "BBOX")
    if flip:
        values = [values[1], values[0], values[3], values[2]]
    if not (values[0] < values[2] and values[1] < values[3]):
        raise ows.OwsError("InvalidParameterValue", "BBOX: each min must be below its max", "BBOX")
    return srid, (values[0], values[1], values[2], values[3])


async def _get_map(request: Request, ask: MapAsk) -> Response:
    view = caller(request)
    store = request.app.state.tile_service.store
    drawn = [d for layer in ask.layers for d in layer]
    async with database(request).read_connection(request) as conn:
        image = await render.render(conn, view, store, drawn, ask.frame)
    media = "image/png" if ask.frame.format == "png" else "image/jpeg"
    return Response(image, media_type=media, headers={"Cache-Control": "no-cache"})


async def _feature_info(request: Request, p: dict[str, str], ask: MapAsk) -> Response:
    fmt = ows.required(p, "INFO_FORMAT").strip().lower()
    if fmt not in ows.INFO_FORMATS:
        msg = f"INFO_FORMAT {fmt[:40]!r} is not offered; use {' or '.join(ows.INFO_FORMATS)}"
        raise ows.OwsError("InvalidFormat", msg, "INFO_FORMAT")
    queried = [n.strip() for n in ows.required(p, "QUERY_LAYERS").split(",")]
    unknown = [n for n in queried if n not in ask.names]
    if unknown:
        msg = f"QUERY_LAYERS {', '.join(unknown)[:80]} are not among LAYERS"
        raise ows.OwsError("LayerNotDefined", msg, "QUERY_LAYERS")
    frame = ask.frame
    i_name, j_name = ("I", "J") if ask.version == "1.3.0" else ("X", "Y")
    try:
        i = ows.whole(p, i_name, 0, frame.width - 1)
        j = ows.whole(p, j_name, 0, frame.height - 1)
    except ows.OwsError as err:
        if err.code == "MissingParameterValue":
            raise
        raise ows.OwsError("InvalidPoint", str(err), err.locator) from None
    count = ows.whole(p, "FEATURE_COUNT", 1, 1000) if p.get("feature_count") else 1
    layers = [d for name, ds in zip(ask.names, ask.layers, strict=True) if name in queried
              for d in ds]  # fmt: skip
    radius = 0.0 if all(d.kind == "raster" or (d.layer is not None and d.layer.style[0].type
                                               == "fill") for d in layers) else 3.0  # fmt: skip
    box = ows.lonlat_box(ows.pixel_box(frame.bbox, (frame.width, frame.height), i, j, radius),
                         frame.crs)  # fmt: skip
    store = request.app.state.tile_service.store
    async with database(request).read_connection(request) as conn:
        results = await ows.features_at(
            conn, caller(request), store, layers, frame_box=box, count=count
        )
    return ows.info_json(results) if fmt == "application/json" else ows.info_html(results)


async def _legend(request: Request, p: dict[str, str]) -> Response:
    name = ows.required(p, "LAYER")
    layers = ows.drawables(caller(request), _maps(request), name, p.get("style"), wms=True)
    fmt = _format(p.get("format", "image/png"))
    image = render.legend(layers, "jpeg" if fmt == "jpeg" else "png")
    return Response(image, media_type=f"image/{fmt}")


async def _capabilities(request: Request) -> Response:
    view, maps = caller(request), _maps(request)
    infos = render.layers(view, maps)
    by_name = {info.name: info for info in infos}
    children = {child for info in infos for child in info.children}
    store = request.app.state.tile_service.store
    docs: list[ows.MapLayerDoc] = []
    for info in infos:
        if info.name in children:
            continue
        times: tuple[str, ...] = ()
        if info.kind == "raster":
            async with database(request).read_connection(request) as conn:
                scenes = await view.raster(info.name).scenes(conn, store)
            times = tuple(sorted({s.datetime.date().isoformat() for s in scenes}))
        members = tuple(_doc(by_name[child]) for child in info.children)
        docs.append(replace(_doc(info), children=members, times=times))
    root = ows.wms_capabilities(base_url(request), ows.TITLE, docs)
    return ows.xml_response(root)


def _doc(info: render.LayerInfo) -> ows.MapLayerDoc:
    """A layer of the capabilities; imagery is queryable too (its band values)."""
    return ows.MapLayerDoc(info.name, info.title, info.abstract, info.lonlat, info.styles,
                           info.queryable or info.kind == "raster")  # fmt: skip
