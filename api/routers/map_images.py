"""OGC API - Maps: server-rendered map images of a collection or a subsystem map.

- ``/collections/{id}/map``: the collection in its default style (``style`` picks another,
  see ``/collections/{id}/styles``);
- ``/maps/{subsystem}/map``: the map's visible layers as the web map draws them (the HTML
  page ``/maps/{subsystem}`` is :mod:`api.routers.maps`).

Parameters (OGC API - Maps 1.0): ``bbox`` (default: the collection's or map's extent) in
``bbox-crs`` (CRS84 by default), ``crs`` of the image (CRS84 by default; EPSG:3857,
4326, 4490 and the Gauss-Krüger zones 4513-4554), ``width``/``height`` (one given: the
other keeps the bbox's aspect ratio; neither: 1024 pixels across), ``datetime`` (the
imagery as seen then), ``transparent``/``bgcolor``, ``f=png|jpeg`` (or ``Accept``). The
image's CRS is in the ``Content-Crs`` header and its bbox in ``Content-Bbox``. Drawn by
:mod:`tiles.render` through the caller's view.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import Response

from api import params
from api.deps import caller, database
from api.params import Param, Params
from api.routing import Router
from spatial.errors import InvalidInputError
from spatial.features import parse_bbox, serving_crs
from tiles import render

router = Router(tags=["Maps"])
DEFAULT_WIDTH = 1024
"""The image's width when neither width nor height is given."""
MAX_SIDE = render.MAX_SERVED
"""The largest width or height of a map image (the WMS's too)."""
MAP = Params((
    Param("bbox", "minx,miny,maxx,maxy in bbox-crs [default: the whole extent]."),
    Param("bbox-crs", "CRS of bbox (a URI or [EPSG:n]) [default: CRS84]."),
    Param("crs", "CRS of the image (a URI or [EPSG:n]) [default: CRS84]."),
    Param("width", f"Pixels across (1 to {MAX_SIDE}); alone, height keeps the aspect ratio.",
          {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}),
    Param("height", f"Pixels down (1 to {MAX_SIDE}); alone, width keeps the aspect ratio.",
          {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}),
    Param("datetime", "Imagery: the mosaic as seen then (an instant), or of an interval."),
    Param("transparent", "true (default): no background where nothing is drawn (PNG).",
          {"type": "boolean"}),
    Param("bgcolor", "Background colour, 0xRRGGBB or a W3C colour name [default: white]."),
    Param("f", "png (default) or jpeg."),
))  # fmt: skip
COLLECTION_MAP = MAP + Params((Param("style", "A style of the collection (see its styles)."),))
_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}
_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {},
                                                                 "image/jpeg": {}}}}  # fmt: skip
_NAMED = {"white": "#ffffff", "black": "#000000", "red": "#ff0000", "green": "#008000",
          "blue": "#0000ff", "yellow": "#ffff00", "grey": "#808080", "gray": "#808080"}  # fmt: skip


@router.fast_get(
    "/collections/{collection_id}/map", params=COLLECTION_MAP, summary="A map of the collection",
    responses=_RESPONSES,
)  # fmt: skip
async def collection_map(request: Request) -> Response:
    """The collection drawn in its default style (or ``style``), as PNG or JPEG."""
    COLLECTION_MAP.check(request)
    view = caller(request)
    name = str(request.path_params["collection_id"])
    drawables = render.resolve(view, request.app.state.subsystems, name,
                               request.query_params.get("style"))  # fmt: skip
    record = view.get(name)
    return await _map(request, drawables, record.bbox)


@router.fast_get(
    "/maps/{subsystem}/map", params=MAP, summary="A map image of a subsystem map",
    responses=_RESPONSES,
)  # fmt: skip
async def subsystem_map(request: Request) -> Response:
    """The map's visible layers the caller may read, drawn as the web map draws them."""
    MAP.check(request)
    view = caller(request)
    name = str(request.path_params["subsystem"])
    maps = request.app.state.subsystems
    drawables = render.resolve(view, maps, name)
    return await _map(request, drawables, maps.get(name).extent)


async def _map(
    request: Request, drawables: list[render.Drawable],
    extent: tuple[float, float, float, float] | None,
) -> Response:  # fmt: skip
    frame = frame_of(request, extent)
    store = request.app.state.tile_service.store
    async with database(request).read_connection(request) as conn:
        data = await render.render(conn, caller(request), store, drawables, frame)
    crs = serving_crs(request.query_params.get("crs"))
    box = ",".join(f"{v:.{crs.digits}f}" for v in frame.bbox)
    return Response(data, media_type=render.MEDIA_TYPES[frame.format], headers={
        "Content-Crs": f"<{crs.uri}>", "Content-Bbox": box,
        "Cache-Control": "no-store" if not caller(request).principal.anonymous else "max-age=60",
    })  # fmt: skip


def frame_of(request: Request, extent: tuple[float, float, float, float] | None) -> render.Frame:
    """The frame a request asks for (see the module's parameters).

    Raises:
        InvalidInputError: a bad value, named with what is expected.
    """
    q = request.query_params
    out = serving_crs(q.get("crs"))
    fmt = _format(request)
    if q.get("bbox"):
        box_crs = serving_crs(q.get("bbox-crs"))
        given = parse_bbox(q["bbox"])
        if box_crs.flip:
            given = (given[1], given[0], given[3], given[2])
        if given[0] >= given[2] or given[1] >= given[3]:
            msg = f"bbox {q['bbox']!r} is empty: give minx,miny,maxx,maxy with min < max"
            raise InvalidInputError(msg)
        source = box_crs.srid
    else:
        if q.get("bbox-crs"):
            raise InvalidInputError("bbox-crs is given without a bbox")
        given = extent or (-180.0, -85.0, 180.0, 85.0)
        source = 4326
    bbox = _into(given, source, out.srid)
    width, height = _size(request, bbox)
    transparent = _flag(request, "transparent", default=True)
    return render.Frame(bbox, out.srid, width, height, fmt, transparent and fmt == "png",
                        _bgcolor(q.get("bgcolor")), q.get("datetime") or None)  # fmt: skip


def _format(request: Request) -> Literal["png", "jpeg"]:
    fmt = request.query_params.get("f")
    if fmt is None:
        accept = request.headers.get("accept", "")
        fmt = "jpeg" if "image/jpeg" in accept and "image/png" not in accept else "png"
    fmt = params.image_format(request, _FORMATS) if request.query_params.get("f") else fmt
    return "jpeg" if fmt in {"jpeg", "jpg"} else "png"


def _into(
    box: tuple[float, float, float, float], source: int, target: int
) -> tuple[float, float, float, float]:
    if source == target or (source in {4326, 4490} and target in {4326, 4490}):
        return box
    if source in {4326, 4490}:  # keep inside Web Mercator's and the zones' valid latitudes
        box = (box[0], max(box[1], -85.0), box[2], min(box[3], 85.0))
    west, south, east, north = render._transformer(source, target).transform_bounds(
        *box, densify_pts=21
    )
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        msg = f"the bbox cannot be expressed in EPSG:{target}"
        raise InvalidInputError(msg)
    return west, south, east, north


def _size(request: Request, bbox: tuple[float, float, float, float]) -> tuple[int, int]:
    width = _side(request, "width")
    height = _side(request, "height")
    aspect = (bbox[2] - bbox[0]) / (bbox[3] - bbox[1])
    if width is None and height is None:
        width = DEFAULT_WIDTH
    if height is None:
        height = max(1, min(MAX_SIDE, round(width / aspect)))  # type: ignore[operator]
    if width is None:
        width = max(1, min(MAX_SIDE, round(height * aspect)))
    return width, height


def _side(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    value = params.integer(request, name, 0, 1, None)
    if value > MAX_SIDE:
        msg = f"{name} must be from 1 to {MAX_SIDE}, not {text!r}"
        raise InvalidInputError(msg)
    return value


def _flag(request: Request, name: str, *, default: bool) -> bool:
    text = request.query_params.get(name)
    if text is None:
        return default
    return params.flag(request, name)


def _bgcolor(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    value = text.strip().lower()
    if value in _NAMED:
        return _NAMED[value]
    digits = value.removeprefix("0x").removeprefix("#")
    if len(digits) == 6 and all(c in "0123456789abcdef" for c in digits):
        return f"#{digits}"
    msg = f"bgcolor {text!r} must be 0xRRGGBB (hexadecimal) or one of {', '.join(_NAMED)}"
    raise InvalidInputError(msg)
