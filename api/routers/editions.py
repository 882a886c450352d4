"""A vector collection's editions and the changes between them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from psycopg.rows import dict_row

from api.deps import Conn, ViewDep
from spatial.errors import ForbiddenError, InvalidInputError, NotFoundError

router = APIRouter(prefix="/collections/{collection_id}", tags=["Editions"])
MAX_OFFSET = 10**15
"""Far beyond any layer, and within PostgreSQL's bigint."""


async def _editions(conn: Any, collection_id: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT edition, valid_from, recorded_at, job_id::text AS job_id, actor, source, "
            "checksum, key, feature_count, counts FROM platform.editions "
            "WHERE collection_id = %s ORDER BY edition",
            (collection_id,),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()
    if not rows:
        msg = (
            f"collection {collection_id!r} has no editions "
            "(it does not exist or is not a vector layer)"
        )
        raise NotFoundError(msg)
    for row in rows:
        row["valid_from"] = row["valid_from"].isoformat()
        row["recorded_at"] = row["recorded_at"].isoformat()
    return rows


@router.get("/editions", summary="Every edition of a vector collection")
async def editions(
    request: Request, collection_id: str, seen: ViewDep, conn: Conn
) -> dict[str, Any]:
    """Editions in order, each with its valid-from time, source and change counts."""
    seen.get(collection_id)
    rows = await _editions(conn, collection_id)
    base = str(request.base_url).rstrip("/")
    return {
        "collection": collection_id,
        "editions": rows,
        "links": [
            {
                "rel": "self",
                "type": "application/json",
                "href": f"{base}/collections/{collection_id}/editions",
            },
            {
                "rel": "changes",
                "type": "application/json",
                "href": f"{base}/collections/{collection_id}/changes",
            },
        ],
    }


@router.get("/changes", summary="The features that changed between two editions")
async def changes(
    request: Request,
    collection_id: str,
    seen: ViewDep,
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
    seen.get(collection_id)
    if seen.rights[collection_id].read_rows is not None:
        msg = (
            f"the changes of {collection_id!r} name features of every row, and your access "
            "covers only some of its rows"
        )
        raise ForbiddenError(msg)
    rows = await _editions(conn, collection_id)
    latest = rows[-1]["edition"]
    to = latest if to is None else to
    from_ = max(to - 1, 0) if from_ is None else from_
    if to > latest or from_ >= to:
        msg = f"need from < to <= {latest} (the latest edition); got from={from_}, to={to}"
        raise InvalidInputError(msg)
    kinds = {"added", "removed", "geometry", "attributes"}
    if change is not None and change not in kinds:
        msg = f"change must be one of {', '.join(sorted(kinds))}"
        raise InvalidInputError(msg)
    pattern = None if change is None else f"%{change}%"
    params = (collection_id, from_, to, pattern, pattern)
    where = (
        "collection_id = %s AND edition > %s AND edition <= %s "
        "AND (%s::text IS NULL OR change LIKE %s)"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT change, count(*) AS n FROM platform.feature_changes WHERE {where} "  # noqa: S608 - constant text
            "GROUP BY change",
            params,
        )
        counts = {r["change"]: r["n"] for r in await cur.fetchall()}
        await cur.execute(
            f"SELECT edition, key, change, fields FROM platform.feature_changes WHERE {where} "  # noqa: S608 - constant text
            "ORDER BY edition, key LIMIT %s OFFSET %s",
            (*params, limit, offset),
        )
        items = await cur.fetchall()
    total = sum(counts.values())
    base = f"{str(request.base_url).rstrip('/')}/collections/{collection_id}/changes"
    links = [{"rel": "self", "type": "application/json", "href": str(request.url)}]
    if offset + len(items) < total:
        query = f"from={from_}&to={to}&limit={limit}&offset={offset + limit}"
        if change:
            query += f"&change={change}"
        links.append({"rel": "next", "type": "application/json", "href": f"{base}?{query}"})
    return {
        "collection": collection_id,
        "from": from_,
        "to": to,
        "counts": counts,
        "numberMatched": total,
        "numberReturned": len(items),
        "changes": items,
        "links": links,
    }
