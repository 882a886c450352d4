"""Standing road closures: areas whose roads no route uses until the closure expires.

A closure belongs to one network, covers a polygon (kept in CRS84 and in the network's
CRS, where routing compares it with the edges), has a reason, a start and an expiry;
every addition and removal is audited. Routing reads them itself
(:func:`spatial.network.routing.usable_edges`); an expired closure stays listed, inactive.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from spatial import audit
from spatial.audit import Actor
from spatial.errors import InvalidInputError, NotFoundError

MAX_REASON = 500


@dataclass(frozen=True)
class Closure:
    """One closure as listed and answered."""

    id: int
    network: str
    reason: str
    geometry: dict[str, Any]
    starts_at: dt.datetime
    expires_at: dt.datetime
    created_by: str
    active: bool

    def feature(self) -> dict[str, Any]:
        """The closure as a GeoJSON Feature."""
        props = {"network": self.network, "reason": self.reason,
                 "starts_at": self.starts_at.isoformat(), "expires_at": self.expires_at.isoformat(),
                 "created_by": self.created_by, "active": self.active}  # fmt: skip
        return {"type": "Feature", "id": self.id, "geometry": self.geometry, "properties": props}


_SELECT = sql.SQL(
    "SELECT c.id, c.network, c.reason, ST_AsGeoJSON(c.geom, 7), c.starts_at, c.expires_at, "
    "c.created_by, c.starts_at <= now() AND c.expires_at > now() FROM net.closures c "
)


def _closure(row: Any) -> Closure:
    return Closure(int(row[0]), row[1], row[2], json.loads(row[3]), row[4], row[5], row[6],
                   bool(row[7]))  # fmt: skip


def add_closure(
    conn: psycopg.Connection[Any], network: str, reason: str, wkt: str, *,
    expires_at: dt.datetime, starts_at: dt.datetime | None = None, max_days: int = 366,
    actor: Actor | None = None,
) -> Closure:  # fmt: skip
    """Close the roads of ``network`` within a polygon (WKT, CRS84) from ``starts_at``
    (default now) until ``expires_at``, and audit it.

    Raises:
        NotFoundError: no such network.
        InvalidInputError: an empty or too long reason, an expiry not after the start or
            already past, or a closure longer than ``max_days``.
    """
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        msg = f"a closure needs a reason of 1 to {MAX_REASON} characters"
        raise InvalidInputError(msg)
    now = dt.datetime.now(dt.UTC)
    start = starts_at or now
    if start.tzinfo is None or expires_at.tzinfo is None:
        msg = "a closure's start and expiry need a time zone (e.g. 2026-12-08T18:00:00+08:00)"
        raise InvalidInputError(msg)
    if expires_at <= max(start, now):
        msg = f"the closure expires ({expires_at.isoformat()}) before it would start or now"
        raise InvalidInputError(msg)
    if expires_at - start > dt.timedelta(days=max_days):
        msg = f"a closure lasts at most {max_days} days; change the roads for longer"
        raise InvalidInputError(msg)
    with conn.transaction():
        row = conn.execute("SELECT srid FROM net.networks WHERE id = %s", (network,)).fetchone()
        if row is None:
            msg = f"no network {network!r}"
            raise NotFoundError(msg)
        made = conn.execute(
            "INSERT INTO net.closures (network, reason, geom, geom_native, starts_at, expires_at, "
            "created_by) SELECT %(n)s, %(r)s, g, ST_Transform(g, %(srid)s), %(s)s, %(e)s, %(by)s "
            "FROM (SELECT ST_GeomFromText(%(wkt)s, 4326) AS g) x RETURNING id",
            {"n": network, "r": reason, "srid": row[0], "s": start, "e": expires_at,
             "by": (actor or Actor.local()).name, "wkt": wkt},
        ).fetchone()  # fmt: skip
        closure = get_closure(conn, int(made[0]) if made else -1)
        details = {"network": network, "reason": reason, "starts_at": start.isoformat(),
                   "expires_at": expires_at.isoformat()}  # fmt: skip
        audit.record(conn, actor or Actor.local(), "network.closure.add",
                     feature_ids=[str(closure.id)], details=details)  # fmt: skip
    return closure


def get_closure(conn: psycopg.Connection[Any], closure_id: int) -> Closure:
    """One closure.

    Raises:
        NotFoundError: no such closure.
    """
    row = conn.execute(_SELECT + sql.SQL("WHERE c.id = %s"), (closure_id,)).fetchone()
    if row is None:
        msg = f"no road closure {closure_id}"
        raise NotFoundError(msg)
    return _closure(row)


def networks(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Every network and the collection it is built from."""
    return dict(conn.execute("SELECT id, collection FROM net.networks ORDER BY id").fetchall())


def list_closures(
    conn: psycopg.Connection[Any], networks: list[str], *, active: bool = True
) -> list[Closure]:
    """The closures of these networks, active ones only unless ``active`` is False,
    newest first."""
    rows = conn.execute(
        _SELECT
        + sql.SQL(
            "WHERE c.network = ANY(%s) AND (NOT %s OR c.expires_at > now()) ORDER BY c.id DESC"
        ),
        (networks, active),
    ).fetchall()
    return [_closure(r) for r in rows]


def remove_closure(
    conn: psycopg.Connection[Any], closure_id: int, *, actor: Actor | None = None
) -> Closure:
    """Lift a closure (its roads are routed on again at once), and audit it.

    Raises:
        NotFoundError: no such closure.
    """
    with conn.transaction():
        closure = get_closure(conn, closure_id)
        conn.execute("DELETE FROM net.closures WHERE id = %s", (closure_id,))
        audit.record(conn, actor or Actor.local(), "network.closure.remove",
                     feature_ids=[str(closure_id)],
                     details={"network": closure.network, "reason": closure.reason})  # fmt: skip
    return closure
