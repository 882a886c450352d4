"""Imagery through OGC API - Tiles (map and coverage tiles) and OGC API - Coverages.

- ``/collections/{id}/map/tiles/{tms}/{z}/{row}/{col}``: a map tile (PNG, WebP, JPEG) of
  the collection's mosaic (latest scene on top; ``datetime`` picks the scenes: an
  instant means "as seen then", the newest scene at or before it; an interval, the
  scenes inside it); ``/collections/{id}/items/{item}/map/tiles/...`` for one scene;
- ``.../coverage/tiles/...``: the values themselves, a float32 GeoTIFF tile;
- ``/collections/{id}/coverage`` (and ``/collections/{id}/items/{item}/coverage``):
  a GeoTIFF subset by ``bbox`` (``bbox-crs``), ``datetime`` and ``properties`` (bands)
  or an ``expression``, at the native resolution or ``width``/``height``.

``bands``, ``expression`` (e.g. ``(nir-red)/(nir+red)``, ``ndvi``, ``ndwi``),
``rescale`` and ``colormap`` say what to draw (:mod:`tiles.raster`). Every read goes
through the caller's view of the catalog: a collection they may not read is a 404.
Rendered map tiles are cached under the collection's version, so a new ingest is never
hidden by an old tile.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from api.auth import view_of
from api.ogc import base_url, check_parameters
from layers import View
from spatial import rasterstore
from spatial.catalog import CollectionRecord
from spatial.errors import ForbiddenError, InvalidInputError, NotFoundError
from spatial.features import parse_bbox, parse_datetime
from tiles import raster
from tiles.cache import CachedTile, Key, TileCache
from tiles.tms import TILE_MATRIX_SETS, address

router = APIRouter(tags=["Imagery"])
STYLE_PARAMS = frozenset({"bands", "expression", "rescale", "colormap", "datetime", "f"})
COVERAGE_PARAMS = frozenset(
    {"bbox", "bbox-crs", "datetime", "properties", "expression", "width", "height", "subset", "f"}
)
MAX_ITEMS = 32
"""Most scenes stacked in one mosaic tile or subset."""


def raster_collection(seen: View, collection_id: str) -> CollectionRecord:
    """The raster collection, as the caller may see it.

    Raises:
        NotFoundError: no such collection for this caller, or not imagery.
    """
    record = seen.get(collection_id)
    if record.kind != "raster":
        msg = f"collection {collection_id!r} is {record.kind} data, not imagery"
        raise NotFoundError(msg)
    if seen.rights[collection_id].read_rows is not None:
        # Grants on imagery are whole collections (a row filter is refused when granted);
        # a restricted grant left from a vector collection of the same id reads nothing.
        msg = f"your access to {collection_id!r} is restricted to rows; imagery needs a full grant"
        raise ForbiddenError(msg)
    return record


def _window(text: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Scenes to mosaic: an instant means "the newest at or before it" (a date: by its
    end); an interval, the scenes inside it."""
    parsed = parse_datetime(text)
    if parsed is None:
        return None, None
    start, end = (_instant(v, end=i == 1) if v else None for i, v in enumerate(parsed))
    if text and "/" not in text:
        return None, end
    return start, end


def _instant(text: str, *, end: bool) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("z", "Z"))
    if len(text) == 10 and end:
        value += dt.timedelta(days=1, microseconds=-1)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


_ITEMS = (
    "SELECT id, datetime, data_path, web_path, properties->'eo:bands', "
    "properties->'raster:bands' FROM rs.items WHERE collection_id = %(cid)s "
    "AND (%(item)s::text IS NULL OR id = %(item)s) "
    "AND (%(w)s::float8 IS NULL OR geom && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)) "
    "AND (%(start)s::timestamptz IS NULL OR datetime >= %(start)s) "
    "AND (%(end)s::timestamptz IS NULL OR datetime <= %(end)s) "
    "ORDER BY datetime DESC, id LIMIT %(limit)s"
)


async def items_of(
    request: Request,
    collection_id: str,
    item_id: str | None,
    lonlat: tuple[float, float, float, float] | None,
    window: tuple[dt.datetime | None, dt.datetime | None],
) -> list[raster.Item]:
    """The scenes to read, newest first."""
    w, s, e, n = lonlat or (None, None, None, None)
    store = rasterstore.of(request.app.state.settings)
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(
            _ITEMS,
            {
                "cid": collection_id,
                "item": item_id,
                "w": w,
                "s": s,
                "e": e,
                "n": n,
                "start": window[0],
                "end": window[1],
                "limit": MAX_ITEMS,
            },
        )
        rows = await cur.fetchall()
    if item_id is not None and not rows:
        async with request.app.state.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM rs.items WHERE collection_id = %s AND id = %s",
                (collection_id, item_id),
            )
            if await cur.fetchone() is None:
                msg = f"collection {collection_id!r} has no item {item_id!r}"
                raise NotFoundError(msg)
    return [
        raster.Item(
            collection_id,
            r[0],
            r[1],
            store.gdal_path(r[2]),
            store.gdal_path(r[3]),
            tuple(r[4] or ()),
            tuple(r[5] or ()),
        )
        for r in rows
    ]


def _style(request: Request) -> raster.Style:
    q = request.query_params
    bands = tuple(b.strip() for b in (q.get("bands") or "").split(",") if b.strip())
    if q.get("expression") and bands:
        raise InvalidInputError("give bands or an expression, not both")
    return raster.Style(q.get("expression") or None, bands, q.get("rescale"), q.get("colormap"))


def _format(request: Request, allowed: dict[str, str]) -> str:
    fmt = (request.query_params.get("f") or next(iter(allowed))).lower()
    if fmt not in allowed:
        msg = f"f={fmt!r} is not served here; use one of {', '.join(allowed)}"
        raise InvalidInputError(msg)
    return fmt


async def _tile(request: Request, *, values: bool) -> Response:
    p = request.path_params
    collection_id, item_id = p["collection_id"], p.get("item_id")
    check_parameters(request, STYLE_PARAMS)
    record = raster_collection(view_of(request), collection_id)
    formats = {"tif": raster.TIFF} if values else raster.MAP_FORMATS
    fmt = _format(request, formats)
    settings = request.app.state.settings.tiles
    tile = address(p["tms_id"], int(p["z"]), int(p["row"]), int(p["col"]), settings.max_zoom)
    style = _style(request)
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.items()))
    cache: TileCache = request.app.state.tiles
    key: Key = (
        f"raster|{collection_id}|{record.version}|{item_id or ''}|{values}|{query}",
        tile.tms,
        tile.z,
        tile.row,
        tile.col,
        "",
    )
    cached = cache.get(key)
    state = "hit"
    if cached is None:
        state = "miss"
        generation = cache.generation([collection_id])
        items = await items_of(
            request,
            collection_id,
            item_id,
            tile.lonlat,
            _window(request.query_params.get("datetime")),
        )
        where = (tile.tms, tile.z, tile.col, tile.row)
        if values:
            data = await run_in_threadpool(raster.value_tile, items, style, where)
        else:
            data = await run_in_threadpool(raster.map_tile, items, style, where, fmt)
        cached = CachedTile.of(data or b"", tile.lonlat, {collection_id: record.version})
        cache.put(key, cached, generation)
    headers = {"ETag": f'"{cached.etag}"', "Cache-Control": "no-cache", "X-Tile-Cache": state}
    if not cached.data:
        return Response(status_code=204, headers=headers)
    return Response(cached.data, media_type=formats[fmt], headers=headers)


async def _map_tile(request: Request) -> Response:
    return await _tile(request, values=False)


async def _value_tile(request: Request) -> Response:
    return await _tile(request, values=True)


TILE_PATH = "{tms_id}/{z:int}/{row:int}/{col:int}"
FAST_ROUTES = [
    Route(f"/collections/{{collection_id}}/map/tiles/{TILE_PATH}", _map_tile, methods=["GET"]),
    Route(
        f"/collections/{{collection_id}}/items/{{item_id}}/map/tiles/{TILE_PATH}",
        _map_tile,
        methods=["GET"],
    ),
    Route(
        f"/collections/{{collection_id}}/coverage/tiles/{TILE_PATH}", _value_tile, methods=["GET"]
    ),
    Route(
        f"/collections/{{collection_id}}/items/{{item_id}}/coverage/tiles/{TILE_PATH}",
        _value_tile,
        methods=["GET"],
    ),
]
"""The raster tile endpoints (plain Starlette routes, like the vector tiles')."""


@router.get(
    "/collections/{collection_id}/map/tiles/{tms_id}/{z}/{row}/{col}",
    summary="A map tile of imagery (mosaic, latest on top)",
    response_model=None,
    responses={
        200: {"content": {m: {} for m in raster.MAP_FORMATS.values()}},
        204: {"description": "No scene covers the tile"},
    },
)
async def map_tile(
    collection_id: str,
    tms_id: str,
    z: int,
    row: int,
    col: int,
    request: Request,
    bands: str | None = None,
    expression: str | None = None,
    rescale: str | None = None,
    colormap: str | None = None,
    datetime: str | None = None,
    f: str | None = None,
) -> Response:
    """PNG (default), WebP or JPEG; nodata transparent (PNG, WebP)."""
    return await _tile(request, values=False)


@router.get(
    "/collections/{collection_id}/coverage/tiles/{tms_id}/{z}/{row}/{col}",
    summary="A value tile of imagery (float32 GeoTIFF)",
    response_model=None,
    responses={200: {"content": {raster.TIFF: {}}}, 204: {"description": "No scene"}},
)
async def value_tile(
    collection_id: str,
    tms_id: str,
    z: int,
    row: int,
    col: int,
    request: Request,
    bands: str | None = None,
    expression: str | None = None,
    datetime: str | None = None,
    f: str | None = None,
) -> Response:
    """The bands or the expression's values on the tile grid; nodata is NaN."""
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
    record = raster_collection(view_of(request), collection_id)
    href = f"{base_url(request)}/collections/{collection_id}/{kind}/tiles"
    return {
        "links": [{"rel": "self", "type": "application/json", "href": href}],
        "tilesets": [_tileset(request, record, tms, kind) for tms in TILE_MATRIX_SETS],
    }


def _one_tileset(request: Request, collection_id: str, tms_id: str, kind: str) -> dict[str, Any]:
    check_parameters(request, frozenset({"f"}))
    record = raster_collection(view_of(request), collection_id)
    if tms_id not in TILE_MATRIX_SETS:
        msg = f"tile matrix set {tms_id!r} is not served; use one of {', '.join(TILE_MATRIX_SETS)}"
        raise NotFoundError(msg)
    return _tileset(request, record, tms_id, kind)


def _tileset(request: Request, record: CollectionRecord, tms_id: str, kind: str) -> dict[str, Any]:
    base = base_url(request)
    path = f"{base}/collections/{record.id}/{kind}/tiles/{tms_id}"
    return {
        "title": f"{record.title} ({tms_id})",
        "dataType": "map" if kind == "map" else "coverage",
        "crs": TILE_MATRIX_SETS[tms_id].crs.srs
        if hasattr(TILE_MATRIX_SETS[tms_id].crs, "srs")
        else str(TILE_MATRIX_SETS[tms_id].crs),
        "tileMatrixSetURI": f"http://www.opengis.net/def/tilematrixset/OGC/1.0/{tms_id}",
        "boundingBox": {
            "lowerLeft": list(record.bbox[:2]) if record.bbox else None,
            "upperRight": list(record.bbox[2:]) if record.bbox else None,
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
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


@router.get(
    "/collections/{collection_id}/coverage",
    summary="A coverage subset (GeoTIFF)",
    response_model=None,
    responses={200: {"content": {raster.TIFF: {}}}},
)
async def coverage(
    collection_id: str,
    request: Request,
    bbox: str | None = None,
    datetime: str | None = None,
    properties: str | None = None,
    expression: str | None = None,
    width: int | None = None,
    height: int | None = None,
    f: str | None = None,
) -> Response:
    """The mosaic of the scenes (latest on top) over ``bbox`` (``bbox-crs``, default
    CRS84), as a float32 GeoTIFF in the newest scene's CRS and resolution (or
    ``width`` x ``height``); ``properties`` picks bands by name."""
    return await _coverage(request, collection_id, None)


@router.get(
    "/collections/{collection_id}/items/{item_id}/coverage",
    summary="One scene's coverage subset (GeoTIFF)",
    response_model=None,
    responses={200: {"content": {raster.TIFF: {}}}},
)
async def item_coverage(
    collection_id: str,
    item_id: str,
    request: Request,
    bbox: str | None = None,
    properties: str | None = None,
    expression: str | None = None,
    width: int | None = None,
    height: int | None = None,
    f: str | None = None,
) -> Response:
    """One scene over ``bbox``, as :func:`coverage`."""
    return await _coverage(request, collection_id, item_id)


async def _coverage(request: Request, collection_id: str, item_id: str | None) -> Response:
    check_parameters(request, COVERAGE_PARAMS)
    q = request.query_params
    raster_collection(view_of(request), collection_id)
    _format(request, {"tif": raster.TIFF, "tiff": raster.TIFF, "geotiff": raster.TIFF,
                      "gtiff": raster.TIFF})  # fmt: skip
    if q.get("subset"):
        raise InvalidInputError("subset is not supported; use bbox (with bbox-crs) and datetime")
    box = parse_bbox(q["bbox"]) if q.get("bbox") else None
    crs = q.get("bbox-crs") or "OGC:CRS84"
    crs = crs.replace("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "OGC:CRS84")
    if crs.startswith("http://www.opengis.net/def/crs/EPSG/0/"):
        crs = "EPSG:" + crs.rsplit("/", 1)[1]
    lonlat = box if box is not None and crs == "OGC:CRS84" else None
    items = await items_of(request, collection_id, item_id, lonlat, _window(q.get("datetime")))
    if not items and lonlat is not None:
        raise InvalidInputError("the bbox does not overlap the data of any scene")
    bands = tuple(b.strip() for b in (q.get("properties") or "").split(",") if b.strip())
    if q.get("expression") and bands:
        raise InvalidInputError("give properties (bands) or an expression, not both")
    style = raster.Style(q.get("expression") or None, bands)
    if not bands and not q.get("expression") and items:
        style = raster.Style(None, items[0].names())
    size = {k: _positive(q.get(k), k) for k in ("width", "height")}
    try:
        data = await run_in_threadpool(raster.coverage, items, style, box, crs, **size)
    except (ValueError, KeyError) as exc:
        msg = f"bbox-crs {crs!r} is not a CRS this server knows: {exc}"
        raise InvalidInputError(msg) from None
    name = Path(item_id or collection_id).name
    return Response(
        data,
        media_type=raster.TIFF,
        headers={"Content-Disposition": f'attachment; filename="{name}.tif"'},
    )


def _positive(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 20_000:
        msg = f"{name} must be a whole number of pixels from 1 to 20000, not {text!r}"
        raise InvalidInputError(msg)
    return int(text)
