"""OGC API - Features: conformance, collections, items and item (Parts 1 and 2).

The items are built by PostGIS (:mod:`spatial.features`); this module validates the
query, frames the page with its links and counts, and sends the bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pygeoapi.api as core
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pygeoapi.api import itemtypes

from api import params, provider
from api.conformance import CLASSES
from api.deps import Caller, caller, database
from api.engine import CATALOG_ID, Engine
from api.ogc import F_PARAM, check_parameters, response_format
from api.routers import stac
from api.routing import Router
from layers import RasterCollection, VectorCollection
from spatial import exports, features
from spatial.catalog import Kind
from spatial.errors import InvalidInputError

router = Router(tags=["Features"])

GEOJSON = "application/geo+json"
PYGEOAPI_FORMATS = ("json", "html", "jsonld")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/conformance", summary="Conformance classes", response_model=None)
async def conformance(request: Request, f: str | None = F_PARAM) -> Response:
    """The conformance classes the platform implements (:mod:`api.conformance`)."""
    check_parameters(request, frozenset({"f", "lang"}))
    body = {"conformsTo": sorted(CLASSES)}
    if response_format(request, ("json", "html")) == "html":
        return await _engine(request).render(request, "conformance.html", body)
    return JSONResponse(body)


@router.get("/collections", summary="The collections", response_model=None)
async def collections(request: Request, f: str | None = F_PARAM) -> Response:
    """Every collection with a data path (vector layers; imagery and GPS views come with
    their APIs), and the catalog's records collection."""
    check_parameters(request, frozenset({"f", "lang"}))
    fmt = response_format(request, PYGEOAPI_FORMATS)
    answer = await _engine(request).answer(request, core.describe_collections)
    if fmt != "json" or answer.status_code != 200:
        return answer
    body = json.loads(bytes(answer.body))
    for described in body.get("collections", []):
        _served_links(described)
    return _relayed(answer, body)


def _served_links(described: dict[str, Any]) -> None:
    """Drop the links pygeoapi adds to a coverage that no path here answers (CoverageJSON:
    the coverage is served as GeoTIFF)."""
    described["links"] = [
        link for link in described.get("links", []) if link.get("type") not in _UNSERVED
    ]


_UNSERVED = frozenset({"application/prs.coverage+json"})


def _relayed(answer: Response, body: dict[str, Any]) -> JSONResponse:
    """pygeoapi's JSON answer with a changed body."""
    return JSONResponse(
        body, headers={"Content-Language": answer.headers.get("content-language", "en-US")}
    )


@router.get("/collections/{collection_id}", summary="One collection", response_model=None)
async def collection(
    collection_id: str, request: Request, seen: Caller, f: str | None = F_PARAM
) -> Response:
    """A collection's metadata: extent, CRSs, links to its items in every format."""
    check_parameters(request, frozenset({"f", "lang"}))
    fmt = response_format(request, PYGEOAPI_FORMATS)
    answer = await _engine(request).answer(request, core.describe_collections, collection_id)
    raster = collection_id != CATALOG_ID and isinstance(
        seen.collection(collection_id), RasterCollection
    )
    if fmt == "json" and answer.status_code == 200 and raster:
        # pygeoapi adds the grid of a coverage here but not in /collections; the two must
        # agree (OGC /ats/core/sfc-md-success).
        body = json.loads(bytes(answer.body))
        body.get("extent", {}).get("spatial", {}).pop("grid", None)
        _served_links(body)
        return _relayed(answer, body)
    return answer


@router.get(
    "/collections/{collection_id}/queryables", summary="Queryable properties", response_model=None
)
async def queryables(collection_id: str, request: Request, f: str | None = F_PARAM) -> Response:
    """The properties a filter (or a query parameter) may use, as a JSON Schema."""
    check_parameters(request, frozenset({"f", "lang", "profile", "properties"}))
    fmt = response_format(request, ("json", "html"))
    answer = await _engine(request).answer(
        request, itemtypes.get_collection_queryables, collection_id
    )
    return _json_schema_2020_12(answer, fmt)


@router.get("/collections/{collection_id}/schema", summary="Feature schema", response_model=None)
async def schema(collection_id: str, request: Request, f: str | None = F_PARAM) -> Response:
    """The schema of the collection's features (OGC API - Features Part 5)."""
    check_parameters(request, frozenset({"f", "lang"}))
    fmt = response_format(request, ("json", "html"))
    answer = await _engine(request).answer(request, core.get_collection_schema, collection_id)
    return _json_schema_2020_12(answer, fmt)


JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
"""The dialect Features Parts 3 and 5 require of queryables and schemas."""


def _json_schema_2020_12(answer: Response, fmt: str) -> Response:
    """pygeoapi's JSON Schema document naming the dialect the standards require (pygeoapi
    0.21 names 2019-09; nothing in its documents differs between the two)."""
    if fmt != "json" or answer.status_code != 200:
        return answer
    body = json.loads(bytes(answer.body))
    body["$schema"] = JSON_SCHEMA
    relayed = _relayed(answer, body)
    relayed.media_type = answer.headers.get("content-type", relayed.media_type)
    relayed.headers["content-type"] = answer.headers.get("content-type", "application/json")
    return relayed


@router.fast_get(
    "/collections/{collection_id}/items", params=params.ITEMS, summary="Features",
    responses={200: {"content": {GEOJSON: {}, **{m: {} for m in exports.MEDIA.values()}}}},
)  # fmt: skip
async def items(request: Request) -> Response:
    """A page of a vector collection's features, as GeoJSON built by PostGIS (HTML and
    JSON-LD pages are pygeoapi's; CSV, FlatGeobuf and GeoPackage files), or a raster
    collection's scenes (STAC items); on ``catalog``, a search of the catalog's records."""
    collection_id = request.path_params["collection_id"]
    if collection_id == CATALOG_ID:
        return await _records(request)
    found = caller(request).collection(collection_id)
    if isinstance(found, RasterCollection):
        return await stac.scenes(request, collection_id)  # its scenes, as STAC items
    if not isinstance(found, VectorCollection):  # pragma: no cover - every kind is one of them
        raise InvalidInputError(f"collection {collection_id!r} has no items")
    fmt = response_format(request, (*PYGEOAPI_FORMATS, *exports.MEDIA))
    q = params.items_query(request, found.layer)
    async with database(request).read_connection(request) as conn:
        found = await found.at(conn, params.as_of(request))
        if fmt in ("html", "jsonld"):
            # pygeoapi's page, with the filter as the platform parsed it (CQL2, not ECQL).
            provider.PLATFORM_FILTER.set(q.where)
            provider.PLATFORM_PARAMS.set(features.Params(q.params))
            provider.PLATFORM_EDITION.set(found.layer.edition)
            return await _engine(request).answer(
                request, itemtypes.get_collection_items, collection_id, hidden=params.HANDLED
            )
        if fmt in exports.MEDIA:
            data = await found.export(conn, q, fmt)
            disposition = f'attachment; filename="{collection_id}.{fmt}"'
            return Response(data, media_type=exports.MEDIA[fmt], headers={
                "Content-Disposition": disposition, "Content-Crs": f"<{q.crs.uri}>"})  # fmt: skip
        page = await found.features(conn, q)
    meta: dict[str, Any] = {
        "numberReturned": page.returned,
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "links": _page_links(request, q, page.returned, page.matched, page.last),
    }
    if page.matched is not None:
        meta["numberMatched"] = page.matched
    headers = {"Content-Crs": f"<{q.crs.uri}>"}
    if page.estimated:
        headers["Warning"] = '199 - "numberMatched is an estimate"'
    body = '{"type":"FeatureCollection","features":[' + page.features + "]," + json.dumps(meta)[1:]
    return Response(body.encode(), media_type=GEOJSON, headers=headers)


async def _records(request: Request) -> Response:
    """A search of the catalog's records (pygeoapi's, over the catalog snapshot)."""
    params.RECORDS.check(request)
    response_format(request, PYGEOAPI_FORMATS)
    kind = request.query_params.get("type")
    if kind is not None and kind not in set(Kind):
        msg = f"type must be one of {', '.join(Kind)}, not {kind!r}"
        raise InvalidInputError(msg)
    return await _engine(request).answer(request, itemtypes.get_collection_items, CATALOG_ID)


def _page_links(
    request: Request, q: features.ItemsQuery, returned: int, matched: int | None, last: int | None
) -> list[dict[str, str]]:
    url = request.url
    json_url = url.include_query_params(f="json")
    links = [
        {"rel": "self", "type": GEOJSON, "href": str(json_url)},
        {"rel": "alternate", "type": "text/html", "href": str(url.include_query_params(f="html"))},
        {"rel": "collection", "type": "application/json",
         "href": str(url.replace(path=url.path.rsplit("/items", 1)[0], query=""))},
    ]  # fmt: skip
    more = returned == q.limit if matched is None else q.offset + returned < matched
    if more:
        nxt = json_url.include_query_params(offset=q.offset + returned, limit=q.limit)
        if not q.sortby and last is not None:
            nxt = nxt.include_query_params(after=last)
        links.append({"rel": "next", "type": GEOJSON, "href": str(nxt)})
    if q.offset > 0:
        prev = json_url.include_query_params(offset=max(q.offset - q.limit, 0), limit=q.limit)
        prev = prev.remove_query_params("after")
        links.append({"rel": "prev", "type": GEOJSON, "href": str(prev)})
    return links


@router.fast_get(
    "/collections/{collection_id}/items/{feature_id}", params=params.ITEM,
    summary="One feature", name="item", responses={200: {"content": {GEOJSON: {}}}},
)  # fmt: skip
async def item(request: Request) -> Response:
    """One feature by its id (its HTML and JSON-LD pages are pygeoapi's); on
    ``catalog``, the record of one collection; a raster collection's scene (STAC item)."""
    collection_id, feature_id = (request.path_params[k] for k in ("collection_id", "feature_id"))
    fmt = response_format(request, PYGEOAPI_FORMATS)
    if collection_id == CATALOG_ID:
        params.ITEM.check(request)
        return await _engine(request).answer(
            request, itemtypes.get_collection_item, CATALOG_ID, feature_id
        )
    found = caller(request).collection(collection_id)
    if isinstance(found, RasterCollection):
        params.ITEM.check(request)
        return await stac.item(collection_id, feature_id, request)
    if not isinstance(found, VectorCollection):  # pragma: no cover - every kind is one of them
        raise InvalidInputError(f"collection {collection_id!r} has no items")
    q = params.item_query(request, found.layer)
    async with database(request).read_connection(request) as conn:
        found = await found.at(conn, params.as_of(request))
        if fmt in ("html", "jsonld"):
            provider.PLATFORM_EDITION.set(found.layer.edition)
            return await _engine(request).answer(
                request, itemtypes.get_collection_item, collection_id, feature_id,
                hidden=params.HANDLED,
            )  # fmt: skip
        text, etag = await found.feature(conn, params.feature_id(collection_id, feature_id), q)
    url = request.url
    links = [
        {"rel": "self", "type": GEOJSON, "href": str(url.include_query_params(f="json"))},
        {"rel": "alternate", "type": "text/html", "href": str(url.include_query_params(f="html"))},
        {"rel": "collection", "type": "application/json",
         "href": str(url.replace(path=url.path.rsplit("/items", 1)[0], query=""))},
    ]  # fmt: skip
    headers = {"Content-Crs": f"<{q.crs.uri}>", "ETag": f'"{etag}"'}
    body = text[:-1] + ',"links":' + json.dumps(links) + "}"
    return Response(body.encode(), media_type=GEOJSON, headers=headers)
