"""OGC API - Tiles: vector tiles of each collection, and of each subsystem's layers.

``/tileMatrixSets`` lists the sets (:mod:`tiles.tms`); ``/collections/{id}/tiles`` and
``/maps/{subsystem}/tiles`` list a tileset per set; a tileset's metadata is OGC's, or
TileJSON for MapLibre with ``f=tilejson``; tiles are ``.../{tileMatrix}/{tileRow}/{tileCol}``
(OGC order) in Mapbox Vector Tile. Tiles come from the worker's cache
(:mod:`tiles.cache`) or are built by PostGIS (:mod:`tiles.mvt`); every answer carries an
``ETag`` (``If-None-Match`` gets a 304) and ``Cache-Control: no-cache``, since the data
can change at any time, and ``X-Tile-Cache: hit`` or ``miss``. A tile with no feature is
a 204.
"""

from __future__ import annotations

import gzip
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from api.auth import view_of
from api.engine import Engine
from api.ogc import F_PARAM, PROPERTIES_PARAM, base_url, check_parameters, response_format
from api.replicas import changed_lately, read_connection
from layers import View
from spatial import features
from spatial.catalog import CollectionRecord
from spatial.errors import InvalidInputError, NotFoundError
from tiles import mvt
from tiles.cache import CachedTile, Key, TileCache
from tiles.tms import TILE_MATRIX_SETS, address, tile_matrix_set

router = APIRouter(tags=["Tiles"])
MVT = "application/vnd.mapbox-vector-tile"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]
_TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/{}"
_TEMPLATE = "{tileMatrix}/{tileRow}/{tileCol}"


@router.get("/tileMatrixSets", summary="The tile matrix sets", response_model=None)
async def tile_matrix_sets(request: Request, f: str | None = F_PARAM) -> Response:
    """WebMercatorQuad, WorldCRS84Quad and CGCS2000Quad (EPSG:4490)."""
    check_parameters(request, frozenset({"f"}))
    base = base_url(request)
    body = {
        "tileMatrixSets": [
            {"id": tms_id, "title": tms.title, "crs": str(tms.crs.root),
             "uri": _TMS_URI.format(tms_id),
             "links": [{"rel": "self", "type": "application/json",
                        "href": f"{base}/tileMatrixSets/{tms_id}"}]}
            for tms_id, tms in TILE_MATRIX_SETS.items()
        ],
    }  # fmt: skip
    return await _page(request, body, "tilematrixsets/index.html")


@router.get("/TileMatrixSets", include_in_schema=False, response_model=None)
async def tile_matrix_sets_pygeoapi(request: Request) -> Response:
    """The spelling pygeoapi's landing page links to."""
    return await tile_matrix_sets(request)


@router.get("/tileMatrixSets/{tms_id}", summary="One tile matrix set", response_model=None)
async def tile_matrix_set_definition(
    tms_id: str, request: Request, f: str | None = F_PARAM
) -> Response:
    """The set's definition (OGC Two Dimensional Tile Matrix Set 2.0 JSON)."""
    check_parameters(request, frozenset({"f"}))
    body: dict[str, Any] = tile_matrix_set(tms_id).model_dump(mode="json", exclude_none=True)
    return await _page(request, {**body, "uri": _TMS_URI.format(tms_id)},
                       "tilematrixsets/tilematrixset.html")  # fmt: skip


async def _page(request: Request, body: dict[str, Any], template: str) -> Response:
    """JSON, or one of pygeoapi's pages showing it."""
    if response_format(request) == "html":
        engine: Engine = request.app.state.engine
        return await engine.render(request, template, body)
    return JSONResponse(body)


def _collection(seen: View, collection_id: str) -> CollectionRecord:
    record = seen.get(collection_id)
    if not features.is_vector_layer(record):
        msg = f"collection {collection_id!r} is {record.kind} data and has no vector tiles"
        raise NotFoundError(msg)
    return record


def _subsystem(seen: View, subsystem: str) -> list[CollectionRecord]:
    records = [r for r in seen.catalog if features.is_vector_layer(r) and subsystem in r.subsystems]
    if not records:
        msg = f"no vector collection belongs to subsystem {subsystem!r}"
        raise NotFoundError(msg)
    return records


def _tilesets(base: str, path: str, title: str) -> dict[str, Any]:
    return {
        "tilesets": [
            {"title": f"{title} ({tms_id})", "dataType": "vector", "crs": str(tms.crs.root),
             "tileMatrixSetURI": _TMS_URI.format(tms_id),
             "links": [
                 {"rel": "self", "type": "application/json", "href": f"{base}{path}/{tms_id}"},
                 {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                  "type": "application/json", "href": f"{base}/tileMatrixSets/{tms_id}"},
             ]}
            for tms_id, tms in TILE_MATRIX_SETS.items()
        ],
        "links": [{"rel": "self", "type": "application/json", "href": f"{base}{path}"}],
    }  # fmt: skip


def _tileset(
    request: Request, path: str, tms_id: str, title: str, records: list[CollectionRecord]
) -> Response:
    """A tileset's metadata: OGC's, or TileJSON with ``f=tilejson``."""
    check_parameters(request, frozenset({"f"}))
    fmt = request.query_params.get("f", "json")
    if fmt not in {"json", "tilejson"}:
        msg = f"f={fmt!r} is not offered; use json or tilejson"
        raise InvalidInputError(msg)
    tms = tile_matrix_set(tms_id)
    base = base_url(request)
    top = min(request.app.state.settings.tiles.max_zoom, tms.maxzoom)
    boxes = [r.bbox for r in records if r.bbox]
    bounds = (
        [min(b[0] for b in boxes), min(b[1] for b in boxes),
         max(b[2] for b in boxes), max(b[3] for b in boxes)]
        if boxes else [-180.0, -90.0, 180.0, 90.0]
    )  # fmt: skip
    template = f"{base}{path}/{tms_id}/{_TEMPLATE}"
    layers: list[dict[str, Any]] = [
        {"id": r.id, "title": r.title,
         "geometryDimension": _dimension(str(r.properties.get("geometry_type", ""))),
         "minTileMatrix": "0", "maxTileMatrix": str(top),
         "propertiesSchema": {"type": "object", "properties": _property_types(r)}}
        for r in records
    ]  # fmt: skip
    if fmt == "tilejson":
        return JSONResponse({
            "tilejson": "3.0.0", "name": title, "scheme": "xyz",
            "tiles": [template.replace("{tileMatrix}", "{z}").replace("{tileRow}", "{y}")
                      .replace("{tileCol}", "{x}")],
            "minzoom": 0, "maxzoom": top, "bounds": bounds,
            "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, min(12, top)],
            "vector_layers": [
                {"id": lyr["id"], "minzoom": 0, "maxzoom": top,
                 "fields": {k: v["type"] for k, v in lyr["propertiesSchema"]["properties"].items()}}
                for lyr in layers
            ],
            "crs": str(tms.crs.root),
        })  # fmt: skip
    return JSONResponse({
        "title": title, "dataType": "vector", "crs": str(tms.crs.root),
        "tileMatrixSetURI": _TMS_URI.format(tms_id),
        "boundingBox": {"lowerLeft": bounds[:2], "upperRight": bounds[2:],
                        "crs": features.CRS84},
        "layers": layers,
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}{path}/{tms_id}"},
            {"rel": "alternate", "type": "application/vnd.mapbox.tile+json",
             "href": f"{base}{path}/{tms_id}?f=tilejson", "title": "TileJSON"},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
             "type": "application/json", "href": f"{base}/tileMatrixSets/{tms_id}"},
            {"rel": "item", "type": MVT, "href": template, "templated": True},
        ],
    })  # fmt: skip


def _dimension(geometry_type: str) -> int:
    kind = geometry_type.lower()
    return 0 if "point" in kind else 1 if "line" in kind else 2


def _property_types(record: CollectionRecord) -> dict[str, dict[str, str]]:
    fields = features.LayerSchema.of(record).fields
    return {c: {"type": features.JSON_TYPES.get(t, ("string", None))[0]} for c, t in fields.items()}


async def _tile(
    request: Request, scope: str, records: list[CollectionRecord], layers: list[mvt.TileLayer],
    tms_id: str, z: int, row: int, col: int,
) -> Response:  # fmt: skip
    settings = request.app.state.settings.tiles
    tile = address(tms_id, z, row, col, settings.max_zoom)
    cache: TileCache = request.app.state.tiles
    props = ",".join(layers[0].properties or ()) if len(layers) == 1 else ""
    key: Key = (scope, tms_id, z, row, col, props)
    names = [tl.name for tl in layers]
    cached = await run_in_threadpool(cache.get, key) if cache.disk else cache.get(key)
    state = "hit"
    if cached is None:
        state = "miss"
        generation = cache.generation(names)
        statement = mvt.tile_statement(layers, tile, settings.max_features)
        data = b""
        if statement is not None:
            # A tile of a collection that changed lately is cut on the primary: a replica
            # may not have replayed the change, and its stale tile would be cached.
            primary = bool(request.app.state.replicas) and changed_lately(request, names)
            async with read_connection(request, primary=primary) as conn:
                # Binary results: the bytes as they are, not hex text to decode.
                cur = await conn.execute(*statement, binary=True)
                row_ = await cur.fetchone()
                data = bytes(row_[0]) if row_ and row_[0] else b""
        cached = CachedTile.of(data, tile.lonlat, {r.id: r.version for r in records})
        if cache.disk:
            await run_in_threadpool(cache.put, key, cached, generation)
        else:
            cache.put(key, cached, generation)
    etag = f'"{cached.etag}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding",
               "X-Tile-Cache": state}  # fmt: skip
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    if not cached.data:
        return Response(status_code=204, headers=headers)
    body = cached.data
    if settings.gzip and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=MVT, headers=headers)


@router.get("/collections/{collection_id}/tiles", summary="A collection's tilesets")
async def collection_tilesets(collection_id: str, request: Request) -> dict[str, Any]:
    """One vector tileset per tile matrix set."""
    check_parameters(request, frozenset({"f"}))
    record = _collection(view_of(request), collection_id)
    return _tilesets(base_url(request), f"/collections/{collection_id}/tiles", record.title)


@router.get("/collections/{collection_id}/tiles/{tms_id}", summary="A tileset", response_model=None)
async def collection_tileset(collection_id: str, tms_id: str, request: Request) -> Response:
    """The tileset's metadata, or TileJSON (``f=tilejson``) for MapLibre."""
    record = _collection(view_of(request), collection_id)
    return _tileset(request, f"/collections/{collection_id}/tiles", tms_id, record.title, [record])


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}/{z}/{row}/{col}",
    summary="A vector tile",
    response_model=None,
    responses={200: {"content": {MVT: {}}}, 204: {"description": "No feature in the tile"}},
)
async def collection_tile(
    collection_id: str, tms_id: str, z: int, row: int, col: int, request: Request,
    properties: str | None = PROPERTIES_PARAM,
) -> Response:  # fmt: skip
    """One tile (matrix ``z``, ``row``, ``col``) of the collection, in MVT."""
    check_parameters(request, frozenset({"f", "properties"}))
    seen = view_of(request)
    record = _collection(seen, collection_id)
    layer = mvt.TileLayer.of(record, restriction=seen.rights[collection_id].read_rows)
    if properties is not None:
        layer = replace(layer, properties=features.parse_properties(layer.layer, properties))
    scope = _scope(collection_id, seen, [record])
    return await _tile(request, scope, [record], [layer], tms_id, z, row, col)


@router.get("/maps/{subsystem}/tiles", summary="A subsystem's tilesets")
async def subsystem_tilesets(subsystem: str, request: Request) -> dict[str, Any]:
    """Tilesets holding every vector layer of a subsystem (one MVT layer each)."""
    check_parameters(request, frozenset({"f"}))
    _subsystem(view_of(request), subsystem)
    return _tilesets(base_url(request), f"/maps/{subsystem}/tiles", subsystem)


@router.get(
    "/maps/{subsystem}/tiles/{tms_id}", summary="A subsystem's tileset", response_model=None
)
async def subsystem_tileset(subsystem: str, tms_id: str, request: Request) -> Response:
    """The multi-layer tileset's metadata, or TileJSON (``f=tilejson``)."""
    records = _subsystem(view_of(request), subsystem)
    return _tileset(request, f"/maps/{subsystem}/tiles", tms_id, subsystem, records)


@router.get(
    "/maps/{subsystem}/tiles/{tms_id}/{z}/{row}/{col}",
    summary="A multi-layer vector tile",
    response_model=None,
    responses={200: {"content": {MVT: {}}}, 204: {"description": "No feature in the tile"}},
)
async def subsystem_tile(
    subsystem: str, tms_id: str, z: int, row: int, col: int, request: Request
) -> Response:
    """One tile with every vector layer of the subsystem."""
    check_parameters(request, frozenset({"f"}))
    seen = view_of(request)
    records = _subsystem(seen, subsystem)
    layers = [mvt.TileLayer.of(r, restriction=seen.rights[r.id].read_rows) for r in records]
    scope = _scope(f"maps/{subsystem}/" + ",".join(r.id for r in records), seen, records)
    return await _tile(request, scope, records, layers, tms_id, z, row, col)


def _scope(name: str, seen: View, records: list[CollectionRecord]) -> str:
    """A cached tile's scope: callers who see the same rows of the same layers share it."""
    restricted = seen.fingerprint(records)
    return f"{name}|{restricted}" if restricted else name


async def _collection_tile_fast(request: Request) -> Response:
    p = request.path_params
    return await collection_tile(
        p["collection_id"], p["tms_id"], p["z"], p["row"], p["col"], request,
        request.query_params.get("properties"),
    )  # fmt: skip


async def _subsystem_tile_fast(request: Request) -> Response:
    p = request.path_params
    return await subsystem_tile(p["subsystem"], p["tms_id"], p["z"], p["row"], p["col"], request)


FAST_ROUTES = [
    Route("/collections/{collection_id}/tiles/{tms_id}/{z:int}/{row:int}/{col:int}",
          _collection_tile_fast, methods=["GET"]),
    Route("/maps/{subsystem}/tiles/{tms_id}/{z:int}/{row:int}/{col:int}",
          _subsystem_tile_fast, methods=["GET"]),
]  # fmt: skip
"""The tile endpoints as plain Starlette routes, matched before FastAPI's: a map view asks
for dozens of tiles, and FastAPI's parameter handling was a tenth of a tile's CPU. The
FastAPI routes above stay for the OpenAPI document and for paths these do not match (a
zoom that is not a number gets FastAPI's 400)."""
