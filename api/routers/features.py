"""OGC API - Features: conformance, collections, items and item (Parts 1 and 2).

The items are built by PostGIS (:mod:`spatial.features`); this module validates the
query, frames the page with its links and counts, and sends the bytes.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.deps import CatalogDep, Conn
from api.ogc import (
    CRS_PARAM,
    F_PARAM,
    PROPERTIES_PARAM,
    SKIP_PARAM,
    base_url,
    check_parameters,
    feature_number,
    html_page,
    response_format,
    text_param,
)
from api.routers import exports, processes, records
from spatial import features, filters
from spatial.catalog import CollectionRecord
from spatial.errors import InvalidInputError, NotFoundError

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
]
ITEMS_PARAMETERS = frozenset(
    {"f", "limit", "offset", "after", "bbox", "bbox-crs", "datetime", "properties",
     "skipGeometry", "sortby", "crs", "filter", "filter-lang", "filter-crs"}
)  # fmt: skip
ITEM_PARAMETERS = frozenset({"f", "crs", "properties", "skipGeometry"})
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


@router.get("/conformance", summary="Conformance classes", response_model=None)
async def conformance(request: Request, f: str | None = F_PARAM) -> Response:
    """The conformance classes the platform implements."""
    body = {"conformsTo": CONFORMANCE + records.CONFORMANCE + processes.CONFORMANCE}
    if response_format(request) == "html":
        items = "".join(f"<li>{html.escape(c)}</li>" for c in body["conformsTo"])
        return HTMLResponse(html_page("Conformance", f"<ul>{items}</ul>"))
    return JSONResponse(body)


def _collection(base: str, c: CollectionRecord) -> dict[str, Any]:
    url = f"{base}/collections/{c.id}"
    body: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "description": c.description or "",
        "keywords": list(c.keywords),
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{url}?f=json", "title": c.title},
            {"rel": "alternate", "type": "text/html", "href": f"{url}?f=html", "title": c.title},
        ],
        "extent": {
            "spatial": {
                "bbox": [list(c.bbox) if c.bbox else [-180.0, -90.0, 180.0, 90.0]],
                "crs": features.CRS84,
            },
        },
        "subsystems": list(c.subsystems),
        "kind": c.kind,
    }
    if c.temporal_start or c.temporal_end:
        body["extent"]["temporal"] = {
            "interval": [[_iso(c.temporal_start), _iso(c.temporal_end)]],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        }
    if c.kind == "vector" and c.srid is not None:
        body["itemType"] = "feature"
        body["crs"] = features.supported_crs()
        body["storageCrs"] = features.storage_crs_uri(c.srid)
        body["links"] += [
            {"rel": "items", "type": GEOJSON, "href": f"{url}/items?f=json", "title": "Features"},
            {
                "rel": "items",
                "type": "text/html",
                "href": f"{url}/items?f=html",
                "title": "Features",
            },
        ]
    return body


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@router.get("/collections", summary="The collections", response_model=None)
async def collections(request: Request, catalog: CatalogDep, f: str | None = F_PARAM) -> Response:
    """Every collection of the catalog: vector layers, imagery and GPS views."""
    check_parameters(request, frozenset({"f"}))
    base = base_url(request)
    body = {
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/collections?f=json"},
            {"rel": "alternate", "type": "text/html", "href": f"{base}/collections?f=html"},
        ],
        "collections": [
            *(_collection(base, c) for c in catalog),
            records.catalog_collection(base),
        ],
    }
    if response_format(request) == "html":
        rows = "".join(
            f'<tr><td><a href="{base}/collections/{html.escape(c["id"])}">'
            f"{html.escape(c['id'])}</a></td><td>{html.escape(c['title'])}</td>"
            f"<td>{html.escape(c['kind'])}</td></tr>"
            for c in body["collections"]
        )
        return HTMLResponse(
            html_page(
                "Collections",
                f"<table><tr><th>id</th><th>title</th><th>kind</th></tr>{rows}</table>",
            )
        )
    return JSONResponse(body)


@router.get("/collections/{collection_id}", summary="One collection", response_model=None)
async def collection(
    collection_id: str, request: Request, catalog: CatalogDep, f: str | None = F_PARAM
) -> Response:
    """A collection's metadata: extent, CRSs, links to its items."""
    check_parameters(request, frozenset({"f"}))
    if collection_id == records.CATALOG_ID:
        body = records.catalog_collection(base_url(request))
    else:
        body = _collection(base_url(request), catalog.get(collection_id))
    if response_format(request) == "html":
        return HTMLResponse(
            html_page(
                body["title"],
                f"<pre>{html.escape(json.dumps(body, ensure_ascii=False, indent=2))}</pre>",
            )
        )
    return JSONResponse(body)


def _layer(catalog: Any, collection_id: str) -> features.LayerSchema:
    record = catalog.get(collection_id)
    if record.kind != "vector":
        msg = f"collection {collection_id!r} is {record.kind} data and has no features"
        raise NotFoundError(msg)
    return features.LayerSchema.of(record)


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
    if p.get("filter"):
        tree = filters.parse(p["filter"], p.get("filter-lang"))
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
        after=_integer(request, "after", -1, 0, MAX_OFFSET) if "after" in p else None,
    )


_JSON_TYPES = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "real": "number",
    "double precision": "number",
    "boolean": "boolean",
    "text": "string",
    "date": "string",
    "timestamp": "string",
}


@router.get(
    "/collections/{collection_id}/queryables", summary="Queryable properties", response_model=None
)
async def queryables(
    collection_id: str, request: Request, catalog: CatalogDep, f: str | None = F_PARAM
) -> Response:
    """The properties a filter may use, as a JSON Schema."""
    check_parameters(request, frozenset({"f"}))
    record = catalog.get(collection_id)
    layer = _layer(catalog, collection_id)
    source = record.properties.get("source_fields") or {}
    props: dict[str, Any] = {
        "geometry": {
            "title": "geometry",
            "format": f"geometry-{str(record.properties.get('geometry_type', 'any')).lower()}",
        }
    }
    for column, pgtype in layer.fields.items():
        prop: dict[str, Any] = {"title": source.get(column, column)}
        if pgtype in _JSON_TYPES:
            prop["type"] = _JSON_TYPES[pgtype]
        if pgtype == "date":
            prop["format"] = "date"
        elif pgtype == "timestamp":
            prop["format"] = "date-time"
        props[column] = prop
    body = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base_url(request)}/collections/{collection_id}/queryables",
        "type": "object",
        "title": record.title,
        "properties": props,
        "additionalProperties": False,
    }
    if response_format(request) == "html":
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v.get('type', '')))}</td></tr>"
            for k, v in props.items()
        )
        return HTMLResponse(html_page(f"{record.title}: queryables", f"<table>{rows}</table>"))
    return JSONResponse(body, media_type="application/schema+json")


@router.get("/collections/{collection_id}/items", summary="Features", response_model=None)
async def items(
    collection_id: str,
    request: Request,
    catalog: CatalogDep,
    conn: Conn,
    f: str | None = F_PARAM,
    limit: int | None = Query(
        None, ge=1, description="Features per page (up to the server's maximum; more is lowered)."
    ),
    offset: int | None = Query(None, ge=0, description="Features to skip."),
    after: int | None = Query(
        None, ge=0, description="Only features with a larger id (the next links use it)."
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
) -> Response:
    """A page of a vector collection's features, as GeoJSON built by PostGIS."""
    check_parameters(request, ITEMS_PARAMETERS)
    layer = _layer(catalog, collection_id)
    fmt = response_format(request, ("json", "html", *exports.MEDIA))
    q = items_query(request, layer)
    if fmt in exports.MEDIA:
        return await exports.export(conn, layer, q, fmt)
    statement, params = features.page_statement(layer, q)
    cur = await conn.execute(statement, params)
    row = await cur.fetchone()
    page, returned, counted, last = row if row else ("", 0, None, None)
    estimated = False
    if not q.filtered:
        matched = layer.feature_count
    elif counted <= features.COUNT_CAP:
        matched = counted
    else:
        statement, params = features.estimate_statement(layer, q)
        cur = await conn.execute(statement, params)
        plan = await cur.fetchone()
        matched, estimated = max(features.plan_rows(plan[0]) if plan else 0, counted), True
    links = _page_links(request, q, returned, matched, last)
    if fmt == "html":
        return _items_html(layer, page, links, matched)
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
    catalog: CatalogDep,
    conn: Conn,
    f: str | None = F_PARAM,
    crs: str | None = CRS_PARAM,
    properties: str | None = PROPERTIES_PARAM,
    skip_geometry: str | None = SKIP_PARAM,
) -> Response:
    """One feature by its id."""
    check_parameters(request, ITEM_PARAMETERS)
    layer = _layer(catalog, collection_id)
    fmt = response_format(request)
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
    if fmt == "html":
        page = _items_html(layer, row[0], links, 1)
        page.headers["ETag"] = headers["ETag"]
        return page
    body = row[0][:-1] + ',"links":' + json.dumps(links) + "}"
    return Response(body.encode(), media_type=GEOJSON, headers=headers)


def _items_html(
    layer: features.LayerSchema, page: str, links: list[dict[str, str]], matched: int | None
) -> HTMLResponse:
    rows = json.loads("[" + page + "]")
    columns = list(rows[0]["properties"]) if rows else list(layer.fields)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["id", *columns])
    body = "".join(
        "<tr>"
        f"<td>{f['id']}</td>"
        + "".join(f"<td>{html.escape(str(f['properties'].get(c, '')))}</td>" for c in columns)
        + "</tr>"
        for f in rows
    )
    nav = " · ".join(
        f'<a href="{html.escape(link["href"]).replace("f=json", "f=html")}">{link["rel"]}</a>'
        for link in links
        if link["rel"] in {"prev", "next", "collection"}
    )
    total = "" if matched is None else f" of {matched}"
    return HTMLResponse(
        html_page(
            layer.id,
            f"<p>{len(rows)} features{total} · {nav}</p><table><tr>{head}</tr>{body}</table>",
        )
    )
