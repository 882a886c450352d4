"""Telling every API worker what part of a collection changed, so that their tile caches
drop exactly the tiles it touches.

The statements here run inside the transaction that makes the change: PostgreSQL delivers
a notification only when (and if) that transaction commits. The payload is JSON:
``{"collection": id, "boxes": [[west, south, east, north], ...]}`` (lon/lat of what
changed, old and new geometries alike: one box per changed feature, or per cluster of them
when there are more than :data:`MAX_BOXES`, so that a notification stays under PostgreSQL's
8000 bytes), or ``{"collection": id, "all": true}``, or ``{"collection": null, "all":
true}`` for every collection.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import sql

CHANNEL = "spatial_tiles"


MAX_BOXES = 48


def changed_area(collection_id: str, geoms: sql.Composable) -> sql.Composed:
    """A statement notifying the lon/lat boxes of ``geoms`` (a query with a geometry column
    ``g``), at most :data:`MAX_BOXES` of them (nearby features share one); nothing is sent
    when it yields no geometry. ``geoms`` may use the placeholder ``%(cid)s``, bound to
    the collection id."""
    return sql.SQL(
        "SELECT pg_notify({channel}, json_build_object('collection', %(cid)s::text, 'boxes', "
        "json_agg(json_build_array(ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b))))::text) "
        "FROM (SELECT ST_Extent(e) AS b FROM ("
        "  SELECT e, ST_ClusterKMeans(g, least({k}, n)::int) OVER () AS k FROM ("
        "    SELECT ST_Envelope(c.g) AS g, ST_Transform(ST_Envelope(c.g), 4326) AS e, "
        "           count(*) OVER () AS n "
        "    FROM ({geoms}) c WHERE c.g IS NOT NULL) w) x GROUP BY k) y "
        "HAVING count(*) > 0"
    ).format(channel=sql.Literal(CHANNEL), geoms=geoms, k=sql.Literal(MAX_BOXES))


def everything(collection_id: str | None) -> tuple[str, tuple[Any, ...]]:
    """A statement notifying that all of a collection (or of every one, with None) changed."""
    return "SELECT pg_notify(%s, %s)", (CHANNEL, everything_payload(collection_id))


def everything_payload(collection_id: str | None) -> str:
    return json.dumps({"collection": collection_id, "all": True})


Box = tuple[float, float, float, float]


def parse(payload: str) -> tuple[str | None, list[Box] | None] | None:
    """(collection or None for all, lon/lat boxes or None for all of it), or None when the
    payload is not one of ours."""
    try:
        body = json.loads(payload)
        collection = body.get("collection")
        if body.get("all"):
            return collection, None
        boxes = [(float(w), float(s), float(e), float(n)) for w, s, e, n in body["boxes"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(collection, str):
        return None
    return collection, boxes
