"""The STAC API under ``/stac``: landing page, conformance, collections, items, search
(GET and POST), queryables and asset downloads (:mod:`spatial.stac`).

Only the raster collections the caller may read exist here; asset downloads go through
the same check and honour HTTP range requests, so GDAL reads the COGs over
``/vsicurl/`` as it would from an object store.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from psycopg.rows import dict_row
from starlette.concurrency import run_in_threadpool

from api.deps import caller, database
from api.ogc import base_url
from spatial import jsonbody, rasterstore, stac
from spatial.catalog import Kind
from spatial.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/stac", tags=["STAC"])
GEOJSON = "application/geo+json"
SEARCH = frozenset({"bbox", "datetime", "limit", "token", "filter", "filter-lang",
                    "collections", "ids", "intersects"})  # fmt: skip
"""The parameters of a search (GET) or the members of its body (POST)."""


def _readable(request: Request) -> list[str]:
    """The imagery collections the caller may read whole (:meth:`layers.View.rasters`)."""
    return [c.id for c in caller(request).rasters()]


@router.get("", summary="The STAC API landing page")
async def landing(request: Request) -> dict[str, Any]:
    base = base_url(request)
    return {
        "type": "Catalog",
        "stac_version": stac.STAC_VERSION,
        "id": "3s-imagery",
        "title": "Imagery of the city",
        "description": "Every scene of the platform's raster collections.",
        "conformsTo": stac.CONFORMANCE,
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/stac"},
            {"rel": "root", "type": "application/json", "href": f"{base}/stac"},
            {"rel": "conformance", "type": "application/json", "href": f"{base}/stac/conformance"},
            {"rel": "data", "type": "application/json", "href": f"{base}/stac/collections"},
            {"rel": "search", "type": GEOJSON, "method": "GET", "href": f"{base}/stac/search"},
            {"rel": "search", "type": GEOJSON, "method": "POST", "href": f"{base}/stac/search"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
                "href": f"{base}/stac/queryables",
            },
            {
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
                "href": f"{base}/openapi",
            },
        ]
        + [
            {
                "rel": "child",
                "type": "application/json",
                "title": r,
                "href": f"{base}/stac/collections/{r}",
            }
            for r in _readable(request)
        ],
    }


@router.get("/conformance", summary="STAC API conformance classes")
async def conformance() -> dict[str, Any]:
    return {"conformsTo": stac.CONFORMANCE}


@router.get("/queryables", summary="What a search filter may name")
async def queryables(request: Request) -> JSONResponse:
    return JSONResponse(stac.queryables(base_url(request)), media_type="application/schema+json")


@router.get("/collections", summary="The imagery collections")
async def collections(request: Request) -> dict[str, Any]:
    base = base_url(request)
    seen = caller(request)
    docs = [stac.collection_document(r, base) for r in seen.catalog if r.kind == Kind.RASTER]
    return {
        "collections": docs,
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/stac/collections"},
            {"rel": "root", "type": "application/json", "href": f"{base}/stac"},
        ],
    }


@router.get("/collections/{collection_id}", summary="One imagery collection")
async def collection(collection_id: str, request: Request) -> dict[str, Any]:
    record = caller(request).raster(collection_id).record
    return stac.collection_document(record, base_url(request))


@router.get("/collections/{collection_id}/items", summary="A collection's scenes")
async def items(collection_id: str, request: Request) -> JSONResponse:
    return await scenes(request, collection_id)


async def scenes(request: Request, collection_id: str) -> JSONResponse:
    """A page of a collection's scenes (also ``/collections/{id}/items``: OGC API -
    Features over the footprints)."""
    caller(request).raster(collection_id)
    values: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "f"}
    _only(values, SEARCH - {"collections", "ids", "intersects"})
    if request.query_params.get("f", "json") not in {"json", "geojson"}:
        raise InvalidInputError("f: scenes are served as GeoJSON (f=json)")
    values["collections"] = collection_id
    return await _search(request, stac.Search.parse(values), values, "GET", request.url.path)


@router.get("/collections/{collection_id}/items/{item_id}", summary="One scene")
async def item(collection_id: str, item_id: str, request: Request) -> JSONResponse:
    found = await _item(request, collection_id, item_id)
    if found is None:
        msg = f"collection {collection_id!r} has no item {item_id!r}"
        raise NotFoundError(msg)
    return JSONResponse(stac.item_document(found, base_url(request)), media_type=GEOJSON)


@router.head(
    "/collections/{collection_id}/items/{item_id}/assets/{key}",
    include_in_schema=False,
    response_model=None,
)
async def asset_head(collection_id: str, item_id: str, key: str, request: Request) -> Response:
    """The asset's headers (GDAL asks for the size first)."""
    return await asset(collection_id, item_id, key, request)


@router.get(
    "/collections/{collection_id}/items/{item_id}/assets/{key}",
    summary="An asset's file (COG; range requests)",
    response_model=None,
)
async def asset(collection_id: str, item_id: str, key: str, request: Request) -> Response:
    found = await _item(request, collection_id, item_id)
    if found is None or key not in found["assets"]:
        msg = f"item {item_id!r} of {collection_id!r} has no asset {key!r}"
        raise NotFoundError(msg)
    entry = found["assets"][key]
    store = rasterstore.of(request.app.state.settings)
    if store.root is None:
        return await _object(store, entry["href"], key, request)
    root = store.root.resolve()
    path = (root / entry["href"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        msg = f"the file of asset {key!r} is missing from the raster store"
        raise NotFoundError(msg)
    return FileResponse(path, media_type="image/tiff", filename=path.name)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def _object(
    store: rasterstore.RasterStore, href: str, key: str, request: Request
) -> Response:
    """An asset of an object store, streamed (one byte range, as GDAL asks)."""
    size = await run_in_threadpool(store.size, href)
    if size is None:
        msg = f"the file of asset {key!r} is missing from the raster store"
        raise NotFoundError(msg)
    start, end, status = 0, size - 1, 200
    asked = _RANGE.match((request.headers.get("range") or "").strip())
    if asked and (asked[1] or asked[2]):
        if asked[1]:
            start, end = int(asked[1]), min(int(asked[2] or size - 1), size - 1)
        else:
            start = max(0, size - int(asked[2]))
        if start > end:
            return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
        status = 206
    name = quote(PurePosixPath(href).name)
    headers = {
        "accept-ranges": "bytes",
        "content-length": str(end - start + 1),
        "content-disposition": f"attachment; filename*=utf-8''{name}",
    }
    if status == 206:
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type="image/tiff")
    chunks = store.read(href, start, end)
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type="image/tiff")


@router.get("/search", summary="Search scenes (GET)")
async def search_get(request: Request) -> JSONResponse:
    values: dict[str, Any] = dict(request.query_params)
    _only(values, SEARCH)
    if "intersects" in values:
        values["intersects"] = jsonbody.loads(values["intersects"], "intersects")
    return await _search(request, stac.Search.parse(values), values, "GET", "/stac/search")


@router.post("/search", summary="Search scenes (POST)")
async def search_post(request: Request) -> JSONResponse:
    body = jsonbody.loads(await request.body(), "the search body")
    if not isinstance(body, dict):
        raise InvalidInputError("the search body must be a JSON object")
    _only(body, SEARCH)
    return await _search(request, stac.Search.parse(body), body, "POST", "/stac/search")


def _only(values: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        msg = f"unknown search parameter {unknown[0]!r}; use {', '.join(sorted(allowed))}"
        raise InvalidInputError(msg)


async def _item(request: Request, collection_id: str, item_id: str) -> dict[str, Any] | None:
    """One item of a collection the caller may read (404 for a collection they may not)."""
    caller(request).raster(collection_id)
    search = stac.Search(collections=(collection_id,), ids=(item_id,), limit=1)
    found = await _rows(request, search, [collection_id])
    return found[0] if found else None


async def _rows(request: Request, search: stac.Search, readable: list[str]) -> list[dict[str, Any]]:
    statement, params = stac.search_statement(search, readable)
    async with database(request).read_connection(request) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(statement, params)
        rows: list[dict[str, Any]] = await cur.fetchall()
        return rows


async def _search(
    request: Request, search: stac.Search, values: dict[str, Any], method: str, path: str
) -> JSONResponse:
    rows = await _rows(request, search, _readable(request))
    base = base_url(request)
    page = rows[: search.limit]
    links: list[dict[str, Any]] = [
        {"rel": "self", "type": GEOJSON, "href": str(request.url)},
        {"rel": "root", "type": "application/json", "href": f"{base}/stac"},
    ]
    if len(rows) > search.limit:
        token = stac.token_of(page[-1])
        if method == "GET":
            query = {k: v for k, v in request.query_params.items() if k != "token"}
            query["token"] = token
            links.append(
                {"rel": "next", "type": GEOJSON, "href": f"{base}{path}?{urlencode(query)}"}
            )
        else:
            links.append(
                {
                    "rel": "next",
                    "type": GEOJSON,
                    "method": "POST",
                    "merge": True,
                    "href": f"{base}{path}",
                    "body": {**values, "token": token},
                }
            )
    body = {
        "type": "FeatureCollection",
        "features": [stac.item_document(r, base) for r in page],
        "numberReturned": len(page),
        "links": links,
    }
    return JSONResponse(body, media_type=GEOJSON)
