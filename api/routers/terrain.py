"""Terrain of elevation collections (``--kind elevation``): tiles for 3D maps and hillshade.

- ``/collections/{id}/terrain/tiles/{tms}/{z}/{row}/{col}``: the heights as a Terrarium
  PNG (:mod:`tiles.terrain`); 204 where the DEM has no data;
- ``/collections/{id}/terrain/tilejson``: the TileJSON 3.0.0 document a MapLibre
  ``raster-dem`` source takes as its ``url`` (tiles on WebMercatorQuad, ``encoding:
  terrarium``);
- ``/collections/{id}/styles/hillshade/map/tiles/{tms}/{z}/{row}/{col}``: hillshade map
  tiles (RGBA PNG, to lay over a map), at OGC API - Tiles' path for map tiles of a style;
  ``azimuth``, ``altitude`` and ``z_factor`` light it.

Every read goes through the caller's view (a collection they may not read is a 404, as is
one holding imagery), and every tile through the tile service: one cache, ETag and
invalidation with the other tiles (:mod:`tiles.service`, :func:`api.tiling.respond`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api import params, tiling
from api.deps import caller, database
from api.ogc import base_url
from api.routing import Router
from layers.collections import RasterCollection
from spatial.errors import InvalidInputError, NotFoundError
from spatial.terrain import is_elevation
from tiles import terrain
from tiles.service import TileService

router = Router(tags=["Terrain"])
_TILE = "{tms_id}/{z:int}/{row:int}/{col:int}"
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}}, 204: {"description": "No data under the tile"},
    304: {"description": "Not modified (If-None-Match)"},
}  # fmt: skip
TERRAIN_TILE = params.Params((params.Param("f", "png (the default and only format)."),))
LIMITS = {"azimuth": (0.0, 360.0, 315.0), "altitude": (1.0, 90.0, 45.0),
          "z_factor": (0.01, 100.0, 1.0)}  # fmt: skip
"""Each lighting parameter's range and default."""
HILLSHADE_TILE = params.Params(
    (
        params.Param("azimuth", "Where the light comes from, degrees clockwise from north "
                     "[default 315: north-west].",
                     {"type": "number", "minimum": 0, "maximum": 360, "default": 315}),
        params.Param("altitude", "The light's height above the horizon, degrees [default 45].",
                     {"type": "number", "minimum": 1, "maximum": 90, "default": 45}),
        params.Param("z_factor", "Vertical exaggeration [default 1].",
                     {"type": "number", "minimum": 0.01, "maximum": 100, "default": 1}),
        params.Param("f", "png (the default and only format)."),
    )
)  # fmt: skip


def elevation(request: Request) -> RasterCollection:
    """The path's collection as the caller sees it, if it holds elevation.

    Raises:
        NotFoundError: not readable, not a raster, or imagery.
    """
    collection_id = request.path_params["collection_id"]
    found = caller(request).raster(collection_id)
    if not is_elevation(found.record):
        msg = (
            f"collection {collection_id!r} has no terrain: it holds imagery (terrain and "
            "hillshade tiles are for elevation collections, ingested with --kind elevation)"
        )
        raise NotFoundError(msg)  # fmt: skip
    return found


def _png_only(request: Request) -> None:
    fmt = (request.query_params.get("f") or "png").lower()
    if fmt != "png":
        raise InvalidInputError(f"f={fmt!r} is not served here; use png")


def shading(request: Request) -> terrain.Shading:
    """The lighting parameters, checked against :data:`LIMITS`.

    Raises:
        InvalidInputError: a value that is not a number, or out of its range.
    """
    values = {}
    for name, (low, high, default) in LIMITS.items():
        given = request.query_params.get(name)
        try:
            value = default if given is None else float(given)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            msg = f"{name} must be a number from {low:g} to {high:g}, not {given!r}"
            raise InvalidInputError(msg)
        values[name] = value
    return terrain.Shading(**values)


async def _tile(request: Request, lighting: terrain.Shading | None) -> Response:
    found = elevation(request)
    tile = params.tile(request)
    db = database(request)
    service: TileService = request.app.state.tile_service
    made = await service.terrain_tile(
        found, tile, lambda primary: db.read_connection(request, primary=primary),
        shading=lighting,
    )  # fmt: skip
    return await tiling.respond(request, made)


@router.fast_get(
    f"/collections/{{collection_id}}/terrain/tiles/{_TILE}", params=TERRAIN_TILE,
    summary="A terrain tile (heights, Terrarium PNG)", responses=_RESPONSES,
)  # fmt: skip
async def terrain_tile(request: Request) -> Response:
    """The heights of the tile as a Terrarium PNG (``height = R*256 + G + B/256 - 32768``
    metres), opaque; for MapLibre's 3D terrain (see the TileJSON)."""
    TERRAIN_TILE.check(request)
    _png_only(request)
    return await _tile(request, None)


@router.fast_get(
    f"/collections/{{collection_id}}/styles/hillshade/map/tiles/{_TILE}",
    params=HILLSHADE_TILE, summary="A hillshade map tile", responses=_RESPONSES,
)  # fmt: skip
async def hillshade_tile(request: Request) -> Response:
    """Shaded relief as an RGBA PNG to lay over a map (flat land clear)."""
    HILLSHADE_TILE.check(request)
    _png_only(request)
    return await _tile(request, shading(request))


@router.get("/collections/{collection_id}/terrain/tilejson", summary="Terrain TileJSON")
async def tilejson(collection_id: str, request: Request) -> dict[str, Any]:
    """TileJSON 3.0.0 of the terrain tiles (WebMercatorQuad), for a MapLibre
    ``raster-dem`` source's ``url``."""
    params.Params(()).check(request)
    found = elevation(request)
    service: TileService = request.app.state.tile_service
    async with database(request).read_connection(request) as conn:
        scenes = await found.scenes(conn, service.store)
    if not scenes:
        raise NotFoundError(f"collection {collection_id!r} has no scene yet")
    low, high = await run_in_threadpool(terrain.zoom_range, scenes)
    record = found.record
    west, south, east, north = record.bbox or (-180.0, -85.0511, 180.0, 85.0511)
    tiles = f"{base_url(request)}/collections/{collection_id}/terrain/tiles/WebMercatorQuad"
    return {
        "tilejson": "3.0.0",
        "name": record.title,
        "description": record.description or record.title,
        "tiles": [tiles + "/{z}/{y}/{x}"],
        "minzoom": low,
        "maxzoom": high,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, high],
        "encoding": "terrarium",
        "tileSize": terrain.TILE_SIZE,
        "scheme": "xyz",
    }
