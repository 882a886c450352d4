"""A vector collection's editions and the changes between them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from api.deps import Caller, Conn
from api.params import MAX_OFFSET

router = APIRouter(prefix="/collections/{collection_id}", tags=["Editions"])


@router.get("/editions", summary="Every edition of a vector collection")
async def editions(
    request: Request, collection_id: str, seen: Caller, conn: Conn
) -> dict[str, Any]:
    """Editions in order, each with its valid-from time, source and change counts."""
    rows = await seen.features(collection_id).editions(conn)
    base = str(request.base_url).rstrip("/")
    href = f"{base}/collections/{collection_id}"
    return {
        "collection": collection_id,
        "editions": rows,
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{href}/editions"},
            {"rel": "changes", "type": "application/json", "href": f"{href}/changes"},
        ],
    }


@router.get("/changes", summary="The features that changed between two editions")
async def changes(
    request: Request,
    collection_id: str,
    seen: Caller,
    conn: Conn,
    from_: int | None = Query(
        None, alias="from", ge=1, description="Older edition [default: to - 1]"
    ),
    to: int | None = Query(None, ge=1, description="Newer edition [default: the latest]"),
    change: str | None = Query(
        None, description="Only this kind: added, removed, geometry, attributes"
    ),
    limit: int = Query(1000, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    """Each change made by the editions after ``from`` up to ``to``, by key, in order."""
    found = await seen.features(collection_id).changes(
        conn, start=from_, end=to, change=change, limit=limit, offset=offset
    )
    base = f"{str(request.base_url).rstrip('/')}/collections/{collection_id}/changes"
    links = [{"rel": "self", "type": "application/json", "href": str(request.url)}]
    if offset + len(found["changes"]) < found["numberMatched"]:
        query = f"from={found['from']}&to={found['to']}&limit={limit}&offset={offset + limit}"
        if change:
            query += f"&change={change}"
        links.append({"rel": "next", "type": "application/json", "href": f"{base}?{query}"})
    return {
        "collection": collection_id,
        **found,
        "numberReturned": len(found["changes"]),
        "links": links,
    }
