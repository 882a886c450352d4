"""Imagery through OGC API - Tiles (map and coverage tiles).

- ``/collections/{id}/map/tiles/{tms}/{z}/{row}/{col}``: a map tile (PNG, WebP, JPEG) of
  the collection's mosaic (latest scene on top; ``datetime`` picks the scenes: an
  instant means "as seen then", the newest scene at or before it; an interval, the
  scenes inside it); ``/collections/{id}/items/{item}/map/tiles/...`` for one scene;
- ``.../coverage/tiles/...``: the values themselves, a float32 GeoTIFF tile.

Coverage subsets, domain sets and range types are in :mod:`api.routers.coverages`.

``bands``, ``expression`` (e.g. ``(nir-red)/(nir+red)``, ``ndvi``, ``ndwi``),
``rescale`` and ``colormap`` say what to draw (:mod:`tiles.raster`). Every read goes
through the caller's view of the catalog: a collection they may not read is a 404.
Rendered map tiles are cached under the collection's version, so a new ingest is never
hidden by an old tile.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from api import params, tiling
from api.deps import caller, database
from api.ogc import base_url, check_parameters
from api.routing import Router
from spatial import mosaic
from spatial.errors import NotFoundError
from tiles import raster
from tiles import tms as sets
from tiles.service import TileService
from tiles.tms import TILE_MATRIX_SETS

router = Router(tags=["Imagery"])
_TILE = "{tms_id}/{z:int}/{row:int}/{col:int}"
_MAP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {m: {} for m in raster.MAP_FORMATS.values()}},
    204: {"description": "No scene covers the tile"},
    304: {"description": "Not modified (If-None-Match)"},
}
_VALUE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {raster.TIFF: {}}}, 204: {"description": "No scene covers the tile"},
    304: {"description": "Not modified (If-None-Match)"},
}  # fmt: skip


async def _tile(request: Request, *, values: bool) -> Response:
    """A map or value tile of a collection's mosaic (or of one item) through the tile
    service, sent by the one tile rule (:func:`api.tiling.respond`)."""
    (params.VALUE_TILE if values else params.MAP_TILE).check(request)
    found = caller(request).raster(request.path_params["collection_id"])
    fmt = params.image_format(request, {"tif": raster.TIFF} if values else raster.MAP_FORMATS)
    tile = params.tile(request)
    style = params.style(request)
    when = mosaic.window(request.query_params.get("datetime"))
    db = database(request)
    service: TileService = request.app.state.tile_service
    made = await service.raster(
        found, tile, style, lambda primary: db.read_connection(request, primary=primary),
        fmt=fmt, values=values, item_id=request.path_params.get("item_id"), when=when,
        query="&".join(f"{k}={v}" for k, v in sorted(request.query_params.items())),
    )  # fmt: skip
    return await tiling.respond(request, made)


@router.fast_get(
    f"/collections/{{collection_id}}/map/tiles/{_TILE}", params=params.MAP_TILE,
    summary="A map tile of imagery (mosaic, latest on top)", responses=_MAP_RESPONSES,
)  # fmt: skip
async def map_tile(request: Request) -> Response:
    """PNG (default), WebP or JPEG; nodata transparent (PNG, WebP)."""
    return await _tile(request, values=False)


@router.fast_get(
    f"/collections/{{collection_id}}/items/{{item_id}}/map/tiles/{_TILE}",
    params=params.MAP_TILE, summary="A map tile of one scene", responses=_MAP_RESPONSES,
)  # fmt: skip
async def item_map_tile(request: Request) -> Response:
    """PNG (default), WebP or JPEG of one scene; nodata transparent (PNG, WebP)."""
    return await _tile(request, values=False)


@router.fast_get(
    f"/collections/{{collection_id}}/coverage/tiles/{_TILE}", params=params.VALUE_TILE,
    summary="A value tile of imagery (float32 GeoTIFF)", responses=_VALUE_RESPONSES,
)  # fmt: skip
async def value_tile(request: Request) -> Response:
    """The bands or the expression's values on the tile grid; nodata is NaN."""
    return await _tile(request, values=True)


@router.fast_get(
    f"/collections/{{collection_id}}/items/{{item_id}}/coverage/tiles/{_TILE}",
    params=params.VALUE_TILE, summary="A value tile of one scene", responses=_VALUE_RESPONSES,
)  # fmt: skip
async def item_value_tile(request: Request) -> Response:
    """One scene's bands or the expression's values on the tile grid; nodata is NaN."""
    return await _tile(request, values=True)


@router.get("/collections/{collection_id}/map/tiles", summary="Imagery map tilesets")
async def map_tilesets(collection_id: str, request: Request) -> dict[str, Any]:
    """One map tileset per tile matrix set."""
    return _tilesets(request, collection_id, "map")


@router.get("/collections/{collection_id}/coverage/tiles", summary="Imagery value tilesets")
async def coverage_tilesets(collection_id: str, request: Request) -> dict[str, Any]:
    """One value (coverage) tileset per tile matrix set."""
    return _tilesets(request, collection_id, "coverage")


@router.get("/collections/{collection_id}/map/tiles/{tms_id}", summary="An imagery tileset")
async def map_tileset(collection_id: str, tms_id: str, request: Request) -> dict[str, Any]:
    """The map tileset's metadata and tile URL template."""
    return _one_tileset(request, collection_id, tms_id, "map")


@router.get(
    "/collections/{collection_id}/coverage/tiles/{tms_id}", summary="An imagery value tileset"
)
async def coverage_tileset(collection_id: str, tms_id: str, request: Request) -> dict[str, Any]:
    """The value tileset's metadata and tile URL template."""
    return _one_tileset(request, collection_id, tms_id, "coverage")


def _tilesets(request: Request, collection_id: str, kind: str) -> dict[str, Any]:
    check_parameters(request, frozenset({"f"}))
    record = caller(request).raster(collection_id).record
    href = f"{base_url(request)}/collections/{collection_id}/{kind}/tiles"
    return {
        "links": [{"rel": "self", "type": "application/json", "href": href}],
        "tilesets": [_tileset(request, record, tms, kind) for tms in TILE_MATRIX_SETS],
    }


def _one_tileset(request: Request, collection_id: str, tms_id: str, kind: str) -> dict[str, Any]:
    check_parameters(request, frozenset({"f"}))
    record = caller(request).raster(collection_id).record
    if tms_id not in TILE_MATRIX_SETS:
        msg = f"tile matrix set {tms_id!r} is not served; use one of {', '.join(TILE_MATRIX_SETS)}"
        raise NotFoundError(msg)
    return _tileset(request, record, tms_id, kind)


def _tileset(request: Request, record: Any, tms_id: str, kind: str) -> dict[str, Any]:
    base = base_url(request)
    path = f"{base}/collections/{record.id}/{kind}/tiles/{tms_id}"
    return {
        "title": f"{record.title} ({tms_id})",
        "dataType": "map" if kind == "map" else "coverage",
        "crs": TILE_MATRIX_SETS[tms_id].crs.srs
        if hasattr(TILE_MATRIX_SETS[tms_id].crs, "srs")
        else str(TILE_MATRIX_SETS[tms_id].crs),
        "tileMatrixSetURI": sets.uri(tms_id, base),
        "boundingBox": {
            "lowerLeft": list(record.bbox[:2]) if record.bbox else None,
            "upperRight": list(record.bbox[2:]) if record.bbox else None,
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
        **_limits(request, record, tms_id),
        "links": [
            {"rel": "self", "type": "application/json", "href": path},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "type": "application/json",
                "href": f"{base}/tileMatrixSets/{tms_id}",
            },
            {
                "rel": "item",
                "type": "image/png" if kind == "map" else raster.TIFF,
                "templated": True,
                "href": f"{path}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
            },
        ],
    }


def _limits(request: Request, record: Any, tms_id: str) -> dict[str, Any]:
    """``tileMatrixSetLimits`` over the collection's bbox, from the matrix where it spans two
    cells (:func:`tiles.tms.visible_zoom`) to the one as fine as its ``gsd`` (deeper tiles are
    served, magnified, but add nothing). GDAL 3.6's OGCAPI driver reads raster tiles only
    through matrices listed here, fails on a matrix where the data is under a cell, and
    misplaces tiles unless each matrix is listed whole (:func:`tiles.tms.limits`)."""
    if not record.bbox:
        return {}
    west, south, east, north = (float(v) for v in record.bbox[:4])
    top = request.app.state.settings.tiles.max_zoom
    gsd = record.properties.get("gsd")
    if gsd:
        top = min(top, sets.native_zoom(tms_id, float(gsd), (south + north) / 2))
    box = (west, south, east, north)
    first = min(sets.visible_zoom(tms_id, box), top)
    zooms = range(first, top + 1)
    return {"tileMatrixSetLimits": sets.limits(tms_id, box, zooms, whole=True)}
