"""OGC API - Features: conformance, collections, items and item (Parts 1 and 2).

The items are built by PostGIS (:mod:`spatial.features`); this module validates the
query, frames the page with its links and counts, and sends the bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

import pygeoapi.api as core
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pygeoapi.api import itemtypes
from starlette.routing import Route

from api import provider
from api.auth import view_of
from api.deps import ReadConn, ViewDep
from api.engine import CATALOG_ID, Engine
from api.ogc import (
    AS_OF_PARAM,
    CRS_PARAM,
    F_PARAM,
    PROPERTIES_PARAM,
    SKIP_PARAM,
    check_parameters,
    feature_number,
    response_format,
    text_param,
)
from api.replicas import read_connection
from api.routers import exports, stac
from layers import View
from spatial import features, filters
from spatial.errors import InvalidInputError, NotFoundError
from spatial.ingest import history

router = APIRouter(tags=["Features"])

GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/record-core",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/searchable-catalog",
]
"""What the platform's own paths implement, added to pygeoapi's declarations."""
ITEMS_PARAMETERS = frozenset(
    {"f", "limit", "offset", "after", "bbox", "bbox-crs", "datetime", "properties",
     "skipGeometry", "sortby", "crs", "filter", "filter-lang", "filter-crs", "lang", "as-of"}
)  # fmt: skip
HANDLED_PARAMETERS = frozenset({"filter", "filter-lang", "filter-crs", "as-of"})
"""Parameters the platform reads before handing a page to pygeoapi (which must not)."""
ITEM_PARAMETERS = frozenset({"f", "crs", "properties", "skipGeometry", "lang", "as-of"})
RECORDS_PARAMETERS = frozenset(
    {"f", "lang", "limit", "offset", "bbox", "datetime", "q", "sortby", "properties",
     "skipGeometry", "type", "title", "keywords", "subsystems", "crs", "description"}
)  # fmt: skip
MAX_OFFSET = 10**15
"""Larger offsets (and ids) are lowered to this: far beyond any layer, within bigint."""


def _integer(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        msg = f"{name} must be an integer of at least {low}, not {text!r}"
        raise InvalidInputError(msg)
    return value if high is None else min(value, high)


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false").lower()
    if text not in {"true", "false"}:
        msg = f"{name} must be true or false, not {text!r}"
        raise InvalidInputError(msg)
    return text == "true"


PYGEOAPI_FORMATS = ("json", "html", "jsonld")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/conformance", summary="Conformance classes", response_model=None)
async def conformance(request: Request, f: str | None = F_PARAM) -> Response:
    """The conformance classes: pygeoapi's declarations for the catalog's collections and
    the platform's own (Part 4 update, CQL2, Processes)."""
    response_format(request, PYGEOAPI_FORMATS)
    return await _engine(request).answer(request, core.conformance)


@router.get("/collections", summary="The collections", response_model=None)
async def collections(request: Request, f: str | None = F_PARAM) -> Response:
    """Every collection with a data path (vector layers; imagery and GPS views come with
    their APIs), and the catalog's records collection."""
    check_parameters(request, frozenset({"f", "lang"}))
    response_format(request, PYGEOAPI_FORMATS)
    return await _engine(request).answer(request, core.describe_collections)


@router.get("/collections/{collection_id}", summary="One collection", response_model=None)
async def collection(collection_id: str, request: Request, f: str | None = F_PARAM) -> Response:
    """A collection's metadata: extent, CRSs, links to its items in every format."""
    check_parameters(request, frozenset({"f", "lang"}))
    fmt = response_format(request, PYGEOAPI_FORMATS)
    answer = await _engine(request).answer(request, core.describe_collections, collection_id)
    raster = collection_id != CATALOG_ID and view_of(request).get(collection_id).kind == "raster"
    if fmt == "json" and answer.status_code == 200 and raster:
        # pygeoapi adds the grid of a coverage here but not in /collections; the two must
        # agree (OGC /ats/core/sfc-md-success).
        body = json.loads(bytes(answer.body))
        body.get("extent", {}).get("spatial", {}).pop("grid", None)
        return JSONResponse(
            body, headers={"Content-Language": answer.headers.get("content-language", "en-US")}
        )
    return answer


def _layer(seen: View, collection_id: str) -> features.LayerSchema:
    record = seen.get(collection_id)
    if record.kind not in features.FEATURE_KINDS:
        msg = f"collection {collection_id!r} is {record.kind} data and has no features"
        raise NotFoundError(msg)
    return seen.layer(record)


async def as_of(conn: Any, layer: features.LayerSchema, request: Request) -> features.LayerSchema:
    """The layer as the ``as-of`` parameter asks: the edition current at that moment.

    Raises:
        InvalidInputError: not a date-time, before the first edition, or a layer without
            editions.
    """
    text = request.query_params.get("as-of")
    if text is None:
        return layer
    when = history.parse_as_of(text)
    cur = await conn.execute(history.EDITION_AT, {"cid": layer.id, "when": when})
    edition = history.past_edition(layer.id, when, await cur.fetchone())
    return layer if edition is None else replace(layer, edition=edition)


def items_query(request: Request, layer: features.LayerSchema) -> features.ItemsQuery:
    """The validated query of an items request.

    Raises:
        InvalidInputError: a malformed or unknown parameter, or an unknown property.
    """
    settings = request.app.state.settings.server
    p = request.query_params
    bbox = features.parse_bbox(p["bbox"]) if "bbox" in p else None
    params = features.Params()
    where = None
    trees = filters.equalities(
        layer, [(k, v) for k, v in p.items() if k in layer.fields and k not in ITEMS_PARAMETERS]
    )
    if p.get("filter"):
        trees.append(filters.parse(p["filter"], p.get("filter-lang")))
    if trees:
        tree = trees[0] if len(trees) == 1 else {"op": "and", "args": trees}
        where = filters.compile_filter(
            tree, layer, params, features.serving_crs(p.get("filter-crs"))
        )
    return features.ItemsQuery(
        where=where,
        params=params,
        limit=_integer(request, "limit", settings.default_limit, 1, settings.max_limit),
        offset=_integer(request, "offset", 0, 0, MAX_OFFSET),
        bbox=bbox,
        bbox_crs=features.serving_crs(p.get("bbox-crs")),
        datetime=features.parse_datetime(p.get("datetime")),
        properties=features.parse_properties(layer, p.get("properties")),
        skip_geometry=_flag(request, "skipGeometry"),
        sortby=features.parse_sortby(layer, p.get("sortby")),
        crs=features.serving_crs(p.get("crs")),
        # Below zero: past versions (as-of) come first.
        after=_integer(request, "after", 0, -MAX_OFFSET, MAX_OFFSET) if "after" in p else None,
    )


@router.get(
    "/collections/{collection_id}/queryables", summary="Queryable properties", response_model=None
)
async def queryables(collection_id: str, request: Request, f: str | None = F_PARAM) -> Response:
    """The properties a filter (or a query parameter) may use, as a JSON Schema."""
    check_parameters(request, frozenset({"f", "lang", "profile", "properties"}))
    response_format(request, ("json", "html"))
    return await _engine(request).answer(
        request, itemtypes.get_collection_queryables, collection_id
    )


@router.get("/collections/{collection_id}/schema", summary="Feature schema", response_model=None)
async def schema(collection_id: str, request: Request, f: str | None = F_PARAM) -> Response:
    """The schema of the collection's features (OGC API - Features Part 5)."""
    check_parameters(request, frozenset({"f", "lang"}))
    response_format(request, ("json", "html"))
    return await _engine(request).answer(request, core.get_collection_schema, collection_id)


@router.get("/collections/{collection_id}/items", summary="Features", response_model=None)
async def items(
    collection_id: str,
    request: Request,
    seen: ViewDep,
    conn: ReadConn,
    f: str | None = F_PARAM,
    limit: int | None = Query(
        None, ge=1, description="Features per page (up to the server's maximum; more is lowered)."
    ),
    offset: int | None = Query(None, ge=0, description="Features to skip."),
    after: int | None = Query(
        None, description="Only features with a larger id (the next links use it)."
    ),
    bbox: str | None = text_param("minx,miny,maxx,maxy in bbox-crs (CRS84 by default)."),
    bbox_crs: str | None = text_param("CRS of bbox.", alias="bbox-crs"),
    datetime: str | None = text_param("An instant or an interval start/end (.. for open)."),
    properties: str | None = PROPERTIES_PARAM,
    skip_geometry: str | None = SKIP_PARAM,
    sortby: str | None = text_param("Properties to sort by, e.g. -area,+name."),
    crs: str | None = CRS_PARAM,
    filter: str | None = text_param("A CQL2 filter (see queryables)."),  # noqa: A002
    filter_lang: str | None = text_param("cql2-text (default) or cql2-json.", alias="filter-lang"),
    filter_crs: str | None = text_param("CRS of geometries in filter.", alias="filter-crs"),
    as_of_: str | None = AS_OF_PARAM,
) -> Response:
    """A page of a vector collection's features, as GeoJSON built by PostGIS (HTML and
    JSON-LD pages are pygeoapi's); on ``catalog``, a search of the catalog's records."""
    if collection_id == CATALOG_ID:
        check_parameters(request, RECORDS_PARAMETERS)
        response_format(request, PYGEOAPI_FORMATS)
        kind = request.query_params.get("type")
        if kind is not None and kind not in {"vector", "raster", "gps"}:
            msg = f"type must be vector, raster or gps, not {kind!r}"
            raise InvalidInputError(msg)
        return await _engine(request).answer(request, itemtypes.get_collection_items, CATALOG_ID)
    if seen.get(collection_id).kind == "raster":
        return await stac.scenes(request, collection_id)  # its scenes, as STAC items
    layer = _layer(seen, collection_id)
    check_parameters(request, ITEMS_PARAMETERS | layer.fields.keys())
    fmt = response_format(request, (*PYGEOAPI_FORMATS, *exports.MEDIA))
    q = items_query(request, layer)
    layer = await as_of(conn, layer, request)
    if fmt in ("html", "jsonld"):
        # pygeoapi's page, with the filter as the platform parsed it (CQL2, not ECQL).
        provider.PLATFORM_FILTER.set(q.where)
        provider.PLATFORM_PARAMS.set(features.Params(q.params))
        provider.PLATFORM_EDITION.set(layer.edition)
        return await _engine(request).answer(
            request, itemtypes.get_collection_items, collection_id, hidden=HANDLED_PARAMETERS
        )
    if fmt in exports.MEDIA:
        return await exports.export(conn, layer, q, fmt)
    statement, params = features.page_statement(layer, q)
    cur = await conn.execute(statement, params)
    row = await cur.fetchone()
    page, returned, counted, last = row if row else ("", 0, None, None)
    estimated = False
    if not features.needs_count(layer, q):
        matched = layer.feature_count
    elif counted <= features.COUNT_CAP:
        matched = counted
    else:
        statement, params = features.estimate_statement(layer, q)
        cur = await conn.execute(statement, params)
        plan = await cur.fetchone()
        matched, estimated = max(features.plan_rows(plan[0]) if plan else 0, counted), True
    links = _page_links(request, q, returned, matched, last)
    meta: dict[str, Any] = {
        "numberReturned": returned,
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "links": links,
    }
    if matched is not None:
        meta["numberMatched"] = matched
    headers = {"Content-Crs": f"<{q.crs.uri}>"}
    if estimated:
        headers["Warning"] = '199 - "numberMatched is an estimate"'
    body = '{"type":"FeatureCollection","features":[' + page + "]," + json.dumps(meta)[1:]
    return Response(body.encode(), media_type=GEOJSON, headers=headers)


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


@router.get(
    "/collections/{collection_id}/items/{feature_id}", summary="One feature", response_model=None
)
async def item(
    collection_id: str,
    feature_id: str,
    request: Request,
    seen: ViewDep,
    conn: ReadConn,
    f: str | None = F_PARAM,
    crs: str | None = CRS_PARAM,
    properties: str | None = PROPERTIES_PARAM,
    skip_geometry: str | None = SKIP_PARAM,
    as_of_: str | None = AS_OF_PARAM,
) -> Response:
    """One feature by its id (its HTML and JSON-LD pages are pygeoapi's); on
    ``catalog``, the record of one collection."""
    check_parameters(request, ITEM_PARAMETERS)
    fmt = response_format(request, PYGEOAPI_FORMATS)
    if collection_id != CATALOG_ID and seen.get(collection_id).kind == "raster":
        return await stac.item(collection_id, feature_id, request)
    if collection_id == CATALOG_ID or fmt in ("html", "jsonld"):
        if collection_id != CATALOG_ID:
            edition = (await as_of(conn, _layer(seen, collection_id), request)).edition
            provider.PLATFORM_EDITION.set(edition)
        return await _engine(request).answer(
            request,
            itemtypes.get_collection_item,
            collection_id,
            feature_id,
            hidden=HANDLED_PARAMETERS,
        )
    layer = await as_of(conn, _layer(seen, collection_id), request)
    q = features.ItemsQuery(
        properties=features.parse_properties(layer, request.query_params.get("properties")),
        skip_geometry=_flag(request, "skipGeometry"),
        crs=features.serving_crs(request.query_params.get("crs")),
    )
    statement, params = features.item_statement(layer, feature_number(collection_id, feature_id), q)
    cur = await conn.execute(statement, params)
    row = await cur.fetchone()
    if row is None:
        msg = f"collection {collection_id!r} has no feature {feature_id!r}"
        raise NotFoundError(msg)
    url = request.url
    links = [
        {"rel": "self", "type": GEOJSON, "href": str(url.include_query_params(f="json"))},
        {"rel": "alternate", "type": "text/html", "href": str(url.include_query_params(f="html"))},
        {"rel": "collection", "type": "application/json",
         "href": str(url.replace(path=url.path.rsplit("/items", 1)[0], query=""))},
    ]  # fmt: skip
    headers = {"Content-Crs": f"<{q.crs.uri}>", "ETag": f'"{row[1]}"'}
    body = row[0][:-1] + ',"links":' + json.dumps(links) + "}"
    return Response(body.encode(), media_type=GEOJSON, headers=headers)


async def _items_fast(request: Request) -> Response:
    async with read_connection(request) as conn:
        return await items(request.path_params["collection_id"], request, view_of(request), conn)


FAST_ROUTES = [Route("/collections/{collection_id}/items", _items_fast, methods=["GET"])]
"""The items endpoint as a plain Starlette route, matched before FastAPI's: it reads its
parameters itself (:func:`items_query`), and FastAPI's validation of the fifteen it declares
for the OpenAPI document was a third of a bbox page's CPU. The FastAPI route stays for the
document."""
