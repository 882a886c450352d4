"""WMTS 1.0.0, KVP and RESTful: map tiles of every vector collection, subsystem map and
imagery the caller may read.

- KVP: ``/wmts?SERVICE=WMTS&REQUEST=GetCapabilities|GetTile|GetFeatureInfo`` (parameter
  names in any case; Tianditu's spellings too: ``FORMAT=tiles``, ``tk=`` ignored);
- RESTful: ``/wmts/1.0.0/WMTSCapabilities.xml``,
  ``/wmts/1.0.0/{layer}/{style}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.png|jpg``
  and ``.../{TileRow}/{TileCol}/{J}/{I}.json|html`` (feature info).

Tile matrix sets: :data:`api.ows.MATRIX_SETS`. Vector collections and subsystem maps are
drawn by the map renderer (:mod:`tiles.render`) one tile a render
(:meth:`tiles.service.TileService.map_tile`); imagery and hillshade by the raster engines
(:mod:`tiles.raster`, :mod:`tiles.terrain`). Every tile goes through the tile service's
cache, with its ETag and its invalidation when the data change (:mod:`tiles.service`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image
from starlette.requests import Request
from starlette.responses import Response

from api import ows, params
from api.deps import caller, database
from api.ogc import base_url
from api.routing import Router
from layers.access import View
from layers.subsystems import Subsystems
from spatial.errors import NotFoundError, SpatialError
from spatial.terrain import is_elevation
from tiles import raster, render, terrain
from tiles.service import Tile, TileService
from tiles.tms import SRID, TILE_MATRIX_SETS, TileAddress, address

router = Router(tags=["WMTS"])
FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "png": "png", "jpg": "jpeg",
           "jpeg": "jpeg", "tiles": "png", "image/jpg": "jpeg"}  # fmt: skip
"""FORMAT values taken (``tiles``: Tianditu's pages)."""
MEDIA = {"png": "image/png", "jpeg": "image/jpeg"}
_TILE_RESPONSES = {**ows.responses("image/png", "image/jpeg"),
                   304: {"description": "Not modified (If-None-Match)"}}  # fmt: skip
_REST = "/wmts/1.0.0/{layer}/{style}/{tms}/{matrix}/{row}/{col}"


@dataclass(frozen=True)
class TileAsk:
    """A checked GetTile (or the tile of a GetFeatureInfo)."""

    name: str
    style: str
    fmt: str
    tile: TileAddress
    layers: list[render.Drawable]


def _maps(request: Request) -> Subsystems:
    found: Subsystems = request.app.state.subsystems
    return found


def _max_zoom(request: Request) -> int:
    return int(request.app.state.settings.tiles.max_zoom)


def _ask(request: Request, p: dict[str, str], fmt_text: str | None) -> TileAsk:
    """Parse a tile's parameters (KVP names, lower case).

    Raises:
        OwsError: a missing or bad parameter, an unknown layer or style, a tile outside.
    """
    name = ows.required(p, "Layer")
    style = p.get("style", "").strip() or "default"
    fmt = "png"
    if fmt_text is not None:
        fmt = FORMATS.get(fmt_text.strip().lower(), "")
        if not fmt:
            msg = f"Format {fmt_text[:40]!r} is not offered; use image/png or image/jpeg"
            raise ows.OwsError("InvalidParameterValue", msg, "Format")
    ms = ows.matrix_set(ows.required(p, "TileMatrixSet"))
    matrix = ows.required(p, "TileMatrix")
    z = ms.zoom(matrix, _max_zoom(request))
    if z is None:
        msg = f"TileMatrix {matrix[:20]!r} is not a matrix of {ms.id}"
        raise ows.OwsError("InvalidParameterValue", msg, "TileMatrix")
    row, col = ows.whole(p, "TileRow"), ows.whole(p, "TileCol")
    view = caller(request)
    layers = ows.drawables(view, _maps(request), name, style, wms=False)
    try:
        tile = address(ms.base, z, row, col, _max_zoom(request))
    except NotFoundError as exc:
        rows = TILE_MATRIX_SETS[ms.base].matrix(z).matrixHeight
        where = "TileRow" if row >= rows else "TileCol"
        raise ows.OwsError("TileOutOfRange", str(exc), where) from None
    return TileAsk(name, style, fmt, tile, layers)


def _rest_params(request: Request) -> dict[str, str]:
    pp = request.path_params
    return {"layer": pp["layer"], "style": pp["style"], "tilematrixset": pp["tms"],
            "tilematrix": pp["matrix"], "tilerow": pp["row"], "tilecol": pp["col"]}  # fmt: skip


@router.get("/wmts", summary="WMTS 1.0.0 (KVP)", response_model=None, responses=ows.responses(
    "text/xml; charset=utf-8", "image/png", "image/jpeg", "application/json",
    "text/html; charset=utf-8"))  # fmt: skip
async def wmts(request: Request) -> Response:
    """``SERVICE=WMTS&REQUEST=GetCapabilities|GetTile|GetFeatureInfo``, the standard's
    parameters (names in any case); answers an OWS ExceptionReport for a bad one."""
    p = ows.kvp(request)
    try:
        operation = ows.required(p, "Request")
        service = p.get("service", "WMTS")
        if service.upper() != "WMTS":
            msg = f"SERVICE={service[:20]!r}: this is WMTS"
            raise ows.OwsError("InvalidParameterValue", msg, "Service")
        if operation.lower() == "getcapabilities":
            return _capabilities(request)
        if operation.lower() == "gettile":
            ows.required(p, "Format")
            return await _tile(request, _ask(request, p, p["format"]))
        if operation.lower() == "getfeatureinfo":
            ask = _ask(request, p, p.get("format"))
            return await _feature_info(request, ask, p, ows.required(p, "InfoFormat"))
        msg = f"REQUEST={operation[:40]!r} is not offered: GetCapabilities, GetTile, GetFeatureInfo"
        raise ows.OwsError("OperationNotSupported", msg, "Request")
    except ows.OwsError as err:
        return ows.exception_report(err, request)
    except SpatialError as exc:
        return ows.exception_report(ows.translate(exc), request)


@router.get("/wmts/1.0.0/WMTSCapabilities.xml", summary="WMTS capabilities (RESTful)",
            responses=ows.responses("text/xml; charset=utf-8"),
            response_model=None)  # fmt: skip
async def capabilities(request: Request) -> Response:
    """The capabilities document, as ``REQUEST=GetCapabilities``."""
    return _capabilities(request)


@router.fast_get(
    _REST + ".{ext}", params=params.Params(()), summary="A WMTS tile (RESTful)",
    responses=_TILE_RESPONSES,
)  # fmt: skip
async def rest_tile(request: Request) -> Response:
    """One tile; ``ext``: png or jpg."""
    try:
        ext = request.path_params["ext"]
        if ext not in {"png", "jpg"}:
            msg = f"tile format .{ext[:10]} is not offered; use .png or .jpg"
            raise ows.OwsError("InvalidParameterValue", msg, "Format")
        return await _tile(request, _ask(request, _rest_params(request), ext))
    except ows.OwsError as err:
        return ows.exception_report(err, request)
    except SpatialError as exc:
        return ows.exception_report(ows.translate(exc), request)


@router.fast_get(
    _REST + "/{j}/{i}.{ext}", params=params.Params(()), summary="WMTS feature info (RESTful)",
    responses=ows.responses("application/json", "text/html; charset=utf-8"),
)  # fmt: skip
async def rest_feature_info(request: Request) -> Response:
    """What lies under pixel (``i``, ``j``) of the tile; ``ext``: json or html."""
    ext = request.path_params["ext"]
    kinds = {"json": "application/json", "html": "text/html"}
    p = {**_rest_params(request), "i": request.path_params["i"], "j": request.path_params["j"]}
    try:
        if ext not in kinds:
            msg = f"feature info .{ext[:10]} is not offered; use .json or .html"
            raise ows.OwsError("InvalidParameterValue", msg, "InfoFormat")
        return await _feature_info(request, _ask(request, p, None), p, kinds[ext])
    except ows.OwsError as err:
        return ows.exception_report(err, request)
    except SpatialError as exc:
        return ows.exception_report(ows.translate(exc), request)


def _capabilities(request: Request) -> Response:
    infos = render.layers(caller(request), _maps(request))
    children = {child for info in infos for child in info.children}
    docs = [
        ows.TileLayerDoc(
            info.name,
            info.title,
            info.abstract,
            info.lonlat,
            info.styles,
            tuple(MEDIA.values()),
            ows.INFO_FORMATS,
        )
        for info in infos
        if info.name not in children
    ]
    root = ows.wmts_capabilities(base_url(request), ows.TITLE, docs, _max_zoom(request))
    return ows.xml_response(root)


async def _feature_info(request: Request, ask: TileAsk, p: dict[str, str], fmt: str) -> Response:
    if fmt not in ows.INFO_FORMATS:
        msg = f"InfoFormat {fmt[:40]!r} is not offered; use {' or '.join(ows.INFO_FORMATS)}"
        raise ows.OwsError("InvalidParameterValue", msg, "InfoFormat")
    i, j = ows.whole(p, "I", 0, 255), ows.whole(p, "J", 0, 255)
    crs = SRID[ask.tile.tms]
    radius = 0.0 if all(_is_area(d) for d in ask.layers) else 3.0  # points, lines: 3 px
    box = ows.lonlat_box(ows.pixel_box(ask.tile.bounds, (256, 256), i, j, radius), crs)
    view = caller(request)
    store = request.app.state.tile_service.store
    async with database(request).read_connection(request) as conn:
        results = await ows.features_at(conn, view, store, ask.layers, frame_box=box, count=10)
    return ows.info_json(results) if fmt == "application/json" else ows.info_html(results)


def _is_area(d: render.Drawable) -> bool:
    """Whether the layer draws areas (a pixel then picks what it is in)."""
    return d.kind == "raster" or (d.layer is not None and d.layer.style[0].type == "fill")


async def _tile(request: Request, ask: TileAsk) -> Response:
    """The tile through the tile service's cache, sent with its ETag (304 when the client
    has it); a tile with nothing in it is a transparent (PNG) or white (JPEG) image."""
    service: TileService = request.app.state.tile_service
    view = caller(request)
    db = database(request)

    def connect(primary: bool) -> Any:
        return db.read_connection(request, primary=primary)

    first = ask.layers[0]
    if len(ask.layers) == 1 and first.kind == "raster":
        made = await _raster_tile(service, view, ask, first, connect)
    else:
        scope = f"wmts|{ask.name}|{ask.style}"
        made = await service.map_tile(view, ask.layers, ask.tile, connect, scope=scope,
                                      fmt=ask.fmt)  # fmt: skip
    headers = {"ETag": made.etag, "Cache-Control": "no-cache",
               "X-Tile-Cache": "hit" if made.hit else "miss"}  # fmt: skip
    asked = request.headers.get("if-none-match")
    if asked and made.etag in {t.strip() for t in asked.split(",")}:
        return Response(status_code=304, headers=headers)
    body = made.data or _blank(ask.fmt)
    return Response(body, media_type=MEDIA[ask.fmt], headers=headers)


async def _raster_tile(
    service: TileService, view: View, ask: TileAsk, d: render.Drawable,
    connect: Callable[[bool], Any],
) -> Tile:  # fmt: skip
    collection = view.raster(d.collection)
    if is_elevation(collection.record):
        return await service.terrain_tile(collection, ask.tile, connect,
                                          shading=terrain.Shading())  # fmt: skip
    style = raster.Style()  # true colour, as the raster engine draws it by default
    if d.layer is not None and d.layer.render is not None:  # the style's preset
        r = d.layer.render
        style = raster.Style(expression=r.expression, bands=tuple(r.bands or ()),
                             rescale=r.rescale, colormap=r.colormap)  # fmt: skip
    return await service.raster(
        collection, ask.tile, style, connect, fmt=ask.fmt, values=False, item_id=None,
        when=(None, None), query=f"wmts|{ask.style}",
    )  # fmt: skip


_BLANKS: dict[str, bytes] = {}


def _blank(fmt: str) -> bytes:
    """An empty tile: transparent PNG, white JPEG."""
    if fmt not in _BLANKS:
        buffer = io.BytesIO()
        if fmt == "jpeg":
            Image.new("RGB", (256, 256), (255, 255, 255)).save(buffer, "JPEG")
        else:
            Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(buffer, "PNG")
        _BLANKS[fmt] = buffer.getvalue()
    return _BLANKS[fmt]
