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

from dataclasses import replace
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from api import params, tiling
from api.deps import Caller, caller, database
from api.engine import Engine
from api.ogc import F_PARAM, base_url, check_parameters, response_format
from api.routing import Router
from layers import VectorCollection, View
from spatial import features
from spatial.errors import InvalidInputError, NotFoundError
from tiles import tms as sets
from tiles.service import MVT, TileService
from tiles.tms import TILE_MATRIX_SETS, tile_matrix_set

router = Router(tags=["Tiles"])
_TEMPLATE = "{tileMatrix}/{tileRow}/{tileCol}"
_TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {MVT: {}}}, 204: {"description": "No feature in the tile"},
    304: {"description": "Not modified (If-None-Match)"},
}  # fmt: skip


@router.get("/tileMatrixSets", summary="The tile matrix sets", response_model=None)
async def tile_matrix_sets(request: Request, f: str | None = F_PARAM) -> Response:
    """WebMercatorQuad, WorldCRS84Quad and CGCS2000Quad (EPSG:4490)."""
    check_parameters(request, frozenset({"f"}))
    base = base_url(request)
    body = {
        "tileMatrixSets": [
            {"id": tms_id, "title": tms.title, "crs": str(tms.crs.root),
             **({"uri": sets.OGC_TMS_URI.format(tms_id)} if tms_id in sets.REGISTERED else {}),
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
    """The set's definition (OGC Two Dimensional Tile Matrix Set 2.0 JSON, with the TMS 1.0
    keys GDAL 3.6 reads: :func:`tiles.tms.document`)."""
    check_parameters(request, frozenset({"f"}))
    return await _page(request, sets.document(tms_id), "tilematrixsets/tilematrixset.html")


async def _page(request: Request, body: dict[str, Any], template: str) -> Response:
    """JSON, or one of pygeoapi's pages showing it."""
    if response_format(request) == "html":
        engine: Engine = request.app.state.engine
        return await engine.render(request, template, body)
    return JSONResponse(body)


def _subsystem(seen: View, subsystem: str) -> list[VectorCollection]:
    found = seen.vectors(subsystem)
    if not found:
        msg = f"no vector collection belongs to subsystem {subsystem!r}"
        raise NotFoundError(msg)
    return found


def _tilesets(base: str, path: str, title: str) -> dict[str, Any]:
    return {
        "tilesets": [
            {"title": f"{title} ({tms_id})", "dataType": "vector", "crs": str(tms.crs.root),
             "tileMatrixSetURI": sets.uri(tms_id, base),
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
    request: Request, path: str, tms_id: str, title: str, collections: list[VectorCollection]
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
    boxes = [c.record.bbox for c in collections if c.record.bbox]
    bounds = (
        [min(b[0] for b in boxes), min(b[1] for b in boxes),
         max(b[2] for b in boxes), max(b[3] for b in boxes)]
        if boxes else [-180.0, -90.0, 180.0, 90.0]
    )  # fmt: skip
    template = f"{base}{path}/{tms_id}/{_TEMPLATE}"
    layers: list[dict[str, Any]] = [
        {"id": c.id, "title": c.title,
         "geometryDimension": _dimension(str(c.record.properties.get("geometry_type", ""))),
         "minTileMatrix": "0", "maxTileMatrix": str(top),
         "propertiesSchema": {"type": "object", "properties": _property_types(c)}}
        for c in collections
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
        "tileMatrixSetURI": sets.uri(tms_id, base),
        "boundingBox": {"lowerLeft": bounds[:2], "upperRight": bounds[2:],
                        "crs": features.CRS84},
        "tileMatrixSetLimits": sets.limits(tms_id, (bounds[0], bounds[1], bounds[2], bounds[3]),
                                           range(top + 1)),
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


def _property_types(found: VectorCollection) -> dict[str, dict[str, str]]:
    return {
        c: {"type": features.JSON_TYPES.get(t, ("string", None))[0]}
        for c, t in found.fields.items()
    }


async def _tile(
    request: Request, scope: str, collections: list[VectorCollection], layers: list[Any]
) -> Response:
    """A vector tile of ``layers`` through the tile service (cache or PostGIS), sent by
    the one tile rule (:func:`api.tiling.respond`)."""
    tile = params.tile(request)
    db = database(request)
    service: TileService = request.app.state.tile_service
    versions = {c.id: c.version for c in collections}
    made = await service.vector(
        layers, versions, _scope(scope, caller(request), versions), tile,
        lambda primary: db.read_connection(request, primary=primary),
        replica_window=db.replica_window if db.replicas else None,
    )  # fmt: skip
    return await tiling.respond(request, made)


@router.get("/collections/{collection_id}/tiles", summary="A collection's tilesets")
async def collection_tilesets(collection_id: str, request: Request, seen: Caller) -> dict[str, Any]:
    """One vector tileset per tile matrix set."""
    check_parameters(request, frozenset({"f"}))
    found = seen.features(collection_id)
    return _tilesets(base_url(request), f"/collections/{collection_id}/tiles", found.title)


@router.get("/collections/{collection_id}/tiles/{tms_id}", summary="A tileset", response_model=None)
async def collection_tileset(
    collection_id: str, tms_id: str, request: Request, seen: Caller
) -> Response:
    """The tileset's metadata, or TileJSON (``f=tilejson``) for MapLibre."""
    found = seen.features(collection_id)
    return _tileset(request, f"/collections/{collection_id}/tiles", tms_id, found.title, [found])


@router.fast_get(
    "/collections/{collection_id}/tiles/{tms_id}/{z:int}/{row:int}/{col:int}",
    params=params.VECTOR_TILE, summary="A vector tile", responses=_TILE_RESPONSES,
)  # fmt: skip
async def collection_tile(request: Request) -> Response:
    """One tile (matrix ``z``, ``row``, ``col``) of the collection, in MVT."""
    params.VECTOR_TILE.check(request)
    found = caller(request).features(request.path_params["collection_id"])
    layer = found.tile_layer()
    asked = request.query_params.get("properties")
    if asked is not None:
        layer = replace(layer, properties=features.parse_properties(layer.layer, asked))
    return await _tile(request, found.id, [found], [layer])


@router.get("/maps/{subsystem}/tiles", summary="A subsystem's tilesets")
async def subsystem_tilesets(subsystem: str, request: Request, seen: Caller) -> dict[str, Any]:
    """Tilesets holding every vector layer of a subsystem (one MVT layer each)."""
    check_parameters(request, frozenset({"f"}))
    _subsystem(seen, subsystem)
    return _tilesets(base_url(request), f"/maps/{subsystem}/tiles", subsystem)


@router.get(
    "/maps/{subsystem}/tiles/{tms_id}", summary="A subsystem's tileset", response_model=None
)
async def subsystem_tileset(
    subsystem: str, tms_id: str, request: Request, seen: Caller
) -> Response:
    """The multi-layer tileset's metadata, or TileJSON (``f=tilejson``)."""
    found = _subsystem(seen, subsystem)
    return _tileset(request, f"/maps/{subsystem}/tiles", tms_id, subsystem, found)


@router.fast_get(
    "/maps/{subsystem}/tiles/{tms_id}/{z:int}/{row:int}/{col:int}",
    params=params.SUBSYSTEM_TILE, summary="A multi-layer vector tile", responses=_TILE_RESPONSES,
)  # fmt: skip
async def subsystem_tile(request: Request) -> Response:
    """One tile with every vector layer of the subsystem."""
    params.SUBSYSTEM_TILE.check(request)
    subsystem = request.path_params["subsystem"]
    found = _subsystem(caller(request), subsystem)
    scope = f"maps/{subsystem}/" + ",".join(c.id for c in found)
    return await _tile(request, scope, found, [c.tile_layer() for c in found])


def _scope(name: str, seen: View, collections: dict[str, int]) -> str:
    """A cached tile's scope: callers who see the same rows of the same layers share it."""
    restricted = seen.fingerprint(collections)
    return f"{name}|{restricted}" if restricted else name
