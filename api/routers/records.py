"""OGC API - Records: the catalog itself as a searchable collection of records.

``/collections/catalog/items`` lists one record per collection (vector layers, imagery,
GPS views), searchable by text (``q``: title, description, keywords, id), ``bbox`` (the
footprint's extent), ``type`` (kind) and ``subsystem``. Records come from the worker's
catalog snapshot, which follows every change (:mod:`api.catalog`), so a search costs no
database round trip.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import CatalogDep
from api.ogc import F_PARAM, base_url, check_parameters, html_page, response_format, text_param
from spatial import features
from spatial.catalog import CollectionRecord
from spatial.errors import InvalidInputError

router = APIRouter(tags=["Records"])
CATALOG_ID = "catalog"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/record-core",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/searchable-catalog",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/json",
]
_PARAMETERS = frozenset({"f", "q", "bbox", "type", "subsystem", "limit", "offset"})


def catalog_collection(base: str) -> dict[str, Any]:
    """The catalog's own collection metadata (listed with the others)."""
    url = f"{base}/collections/{CATALOG_ID}"
    return {
        "id": CATALOG_ID,
        "title": "Catalog",
        "description": "Every collection of the platform, searchable by text, place, kind "
        "and subsystem.",
        "itemType": "record",
        "type": "Catalog",
        "links": [
            {"rel": "self", "type": "application/json", "href": url},
            {"rel": "items", "type": "application/geo+json", "href": f"{url}/items"},
        ],
        "extent": {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]], "crs": features.CRS84}},
    }


def _record(base: str, c: CollectionRecord) -> dict[str, Any]:
    geometry = None
    if c.bbox:
        w, s, e, n = c.bbox
        geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    return {
        "id": c.id,
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "type": c.kind,
            "title": c.title,
            "description": c.description or "",
            "keywords": list(c.keywords),
            "subsystems": list(c.subsystems),
            "crs": c.crs,
            "featureCount": c.feature_count,
            "version": c.version,
            "updated": c.updated_at.isoformat() if c.updated_at else None,
        },
        "links": [
            {"rel": "self", "type": "application/geo+json",
             "href": f"{base}/collections/{CATALOG_ID}/items/{c.id}"},
            {"rel": "collection", "type": "application/json",
             "href": f"{base}/collections/{CATALOG_ID}"},
            {"rel": "item", "type": "application/json", "href": f"{base}/collections/{c.id}",
             "title": c.title},
        ],
    }  # fmt: skip


def _matches(c: CollectionRecord, q: list[str], bbox: tuple[float, ...] | None,
             kind: str | None, subsystem: str | None) -> bool:  # fmt: skip
    text = " ".join([c.id, c.title, c.description or "", *c.keywords]).lower()
    if any(word not in text for word in q):
        return False
    if kind and c.kind != kind:
        return False
    if subsystem and subsystem not in c.subsystems:
        return False
    if bbox is not None:
        if c.bbox is None:
            return False
        w, s, e, n = c.bbox
        return not (e < bbox[0] or w > bbox[2] or n < bbox[1] or s > bbox[3])
    return True


@router.get(f"/collections/{CATALOG_ID}/items", summary="Search the catalog", response_model=None)
async def records(
    request: Request,
    catalog: CatalogDep,
    f: str | None = F_PARAM,
    q: str | None = text_param("Words that must all appear in the title, description or keywords."),
    bbox: str | None = text_param("minlon,minlat,maxlon,maxlat the footprint must intersect."),
    type: str | None = text_param("vector, raster or gps."),  # noqa: A002 - the OGC parameter name
    subsystem: str | None = text_param("land, planning, water, environment or emergency."),
    limit: int | None = Query(None, ge=1, le=10_000, description="Records per page."),
    offset: int | None = Query(None, ge=0, le=10**9, description="Records to skip."),
) -> Response:
    """Records of the collections that match every given criterion."""
    check_parameters(request, _PARAMETERS)
    fmt = response_format(request)
    words = [w for w in (q or "").lower().split() if w]
    box = features.parse_bbox(bbox) if bbox else None
    if type and type not in {"vector", "raster", "gps"}:
        msg = f"type must be vector, raster or gps, not {type!r}"
        raise InvalidInputError(msg)
    base = base_url(request)
    hits = [c for c in catalog if _matches(c, words, box, type, subsystem)]
    start, size = offset or 0, limit or 10
    page = [_record(base, c) for c in hits[start : start + size]]
    body: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": page,
        "numberMatched": len(hits),
        "numberReturned": len(page),
        "links": [{"rel": "self", "type": "application/geo+json", "href": str(request.url)}],
    }
    if start + size < len(hits):
        nxt = request.url.include_query_params(offset=start + size, limit=size)
        body["links"].append({"rel": "next", "type": "application/geo+json", "href": str(nxt)})
    if fmt == "html":
        rows = "".join(
            f'<li><a href="{html.escape(r["links"][2]["href"])}">{html.escape(r["id"])}</a>: '
            f"{html.escape(r['properties']['title'])}</li>"
            for r in page
        )
        return Response(html_page("Catalog", f"<ul>{rows}</ul>"), media_type="text/html")
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/geo+json")


@router.get(
    f"/collections/{CATALOG_ID}/items/{{record_id}}", summary="One record", response_model=None
)
async def record(
    record_id: str, request: Request, catalog: CatalogDep, f: str | None = F_PARAM
) -> Response:
    """The record of one collection."""
    check_parameters(request, frozenset({"f"}))
    response_format(request, ("json",))
    body = _record(base_url(request), catalog.get(record_id))
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/geo+json")
