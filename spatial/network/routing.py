"""Routes on a network by pgRouting, between points snapped to the nearest edge.

A point is placed on the nearest usable edge (not its nearest vertex) at the fraction
where it projects, within a distance limit; pgRouting's ``pgr_withPoints`` walks the
edges from there in the network's costs (seconds, one-ways honoured). An edge is
unusable for one request when it meets a barrier polygon of that request, and for every
request while a standing road closure (``net.closures``) covering it has not expired.

The route is assembled from the edges pgRouting walked: each traversed in its direction,
the first and last ones from and to the points' fractions; its length, its travel time
(pgRouting's aggregate cost) and the road names in order. When there is no path, the
answer says why: the barriers or closures that cut it (the path without them meets
them), or the points being in pieces of the network that do not connect.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from spatial.errors import InvalidInputError, NotFoundError

SNAP_LIMIT_M = 500.0
"""A point farther than this from every usable road is refused (a request may lower it)."""
MAX_POINTS = 25
"""From, to and the via points of one route."""
END = 1e-9
"""A fraction this close to 0 or 1 is the edge's end."""


@dataclass(frozen=True)
class Barrier:
    """A polygon whose edges are closed for one request (WKT in CRS84), and its name."""

    name: str
    wkt: str


@dataclass(frozen=True)
class Snapped:
    """A request's point on the network: the edge, the fraction along it, how far."""

    edge: int
    fraction: float
    distance_m: float
    vertex: int | None = None
    """The edge's end the point falls on (fraction 0 or 1), routed from as that vertex:
    ``pgr_withPoints`` finds no path from a point at an edge's very end."""


@dataclass
class Route:
    """A route: GeoJSON line (CRS84), metres, seconds, and the roads in order."""

    geometry: dict[str, Any]
    length_m: float
    seconds: float
    roads: list[str] = field(default_factory=list)
    snapped: list[Snapped] = field(default_factory=list)


class NoPathError(InvalidInputError):
    """The points are not joined by the usable edges (the message says why)."""


async def network_srid(conn: psycopg.AsyncConnection[Any], network: str) -> int:
    """The CRS of a network's edges.

    Raises:
        NotFoundError: no such network.
    """
    cur = await conn.execute("SELECT srid FROM net.networks WHERE id = %s", (network,))
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute("SELECT id FROM net.networks ORDER BY id")
        known = ", ".join(r[0] for r in await cur.fetchall()) or "none"
        msg = f"no network {network!r}; the networks are: {known}"
        raise NotFoundError(msg)
    return int(row[0])


def usable_edges(network: str, srid: int, barriers: Sequence[Barrier] = ()) -> sql.Composed:
    """The condition on ``e`` (a row of ``net.edges``) of the edges a request may use."""
    parts = [
        sql.SQL("e.network = {}").format(sql.Literal(network)),
        sql.SQL(
            "NOT EXISTS (SELECT 1 FROM net.closures c WHERE c.network = e.network "
            "AND c.starts_at <= now() AND c.expires_at > now() AND c.geom_native && e.geom "
            "AND ST_Intersects(c.geom_native, e.geom))"
        ),
    ]
    parts += [
        sql.SQL("NOT ST_Intersects(e.geom, ST_Transform(ST_GeomFromText({}, 4326), {}))").format(
            sql.Literal(b.wkt), sql.Literal(srid)
        )
        for b in barriers
    ]
    return sql.SQL(" AND ").join(parts)


def edges_query(condition: sql.Composable) -> str:
    """pgRouting's edges query (text: pgRouting takes SQL) of the edges meeting
    ``condition`` (over ``e``; its values already literals)."""
    return (
        sql.SQL("SELECT id, source, target, cost, reverse_cost FROM net.edges e WHERE {}")
        .format(condition)
        .as_string(None)
    )


async def nearest_edges(
    conn: psycopg.AsyncConnection[Any], network: str, points: Sequence[tuple[float, float]],
    *, barriers: Sequence[Barrier] = (),
) -> list[Snapped]:  # fmt: skip
    """Each point on its nearest usable edge, however far (its ``distance_m`` says).

    Raises:
        NotFoundError: no such network.
        InvalidInputError: a network with no usable edge.
    """
    srid = await network_srid(conn, network)
    statement = sql.SQL(
        "SELECT e.id, ST_LineLocatePoint(e.geom, q.g), e.source, e.target, "
        "ST_Distance(ST_Transform(e.geom, 4326)::geography, q.ll::geography) "
        "FROM unnest(%(x)s::float8[], %(y)s::float8[]) WITH ORDINALITY AS p(x, y, i), "
        "LATERAL (SELECT ST_SetSRID(ST_MakePoint(p.x, p.y), 4326) AS ll) l, "
        "LATERAL (SELECT l.ll, ST_Transform(l.ll, {srid}) AS g) q "
        "LEFT JOIN LATERAL (SELECT e.id, e.geom, e.source, e.target FROM net.edges e "
        "WHERE {usable} ORDER BY e.geom <-> q.g LIMIT 1) e ON true ORDER BY p.i"
    ).format(srid=sql.Literal(srid), usable=usable_edges(network, srid, barriers))
    cur = await conn.execute(statement, {"x": [p[0] for p in points], "y": [p[1] for p in points]})
    snapped = []
    for edge, fraction, source, target, distance in await cur.fetchall():
        if edge is None:
            msg = f"network {network!r} has no usable road (closed by barriers or closures?)"
            raise InvalidInputError(msg)
        vertex = source if fraction <= END else target if fraction >= 1 - END else None
        snapped.append(Snapped(int(edge), float(fraction), round(float(distance), 1), vertex))
    return snapped


async def snap(
    conn: psycopg.AsyncConnection[Any], network: str, points: Sequence[tuple[float, float]],
    *, barriers: Sequence[Barrier] = (), limit_m: float = SNAP_LIMIT_M,
) -> list[Snapped]:  # fmt: skip
    """Each point on its nearest usable edge, which must be within ``limit_m``.

    Raises:
        NotFoundError: no such network.
        InvalidInputError: a point farther than ``limit_m`` from every usable edge (the
            message gives its distance), or a network with no usable edge.
    """
    snapped = await nearest_edges(conn, network, points, barriers=barriers)
    for i, (point, placed) in enumerate(zip(points, snapped, strict=True), start=1):
        if placed.distance_m > limit_m:
            msg = (
                f"point {i} ({point[0]:g}, {point[1]:g}) is {placed.distance_m:,.0f} m from "
                f"the nearest road of network {network!r}; the limit is {limit_m:,.0f} m"
            )
            raise InvalidInputError(msg)
    return snapped


def points_sql(legs: Sequence[Snapped]) -> str:
    values = sql.SQL(", ").join(
        sql.SQL("({}, {}, {}::float8, 'b'::char)").format(
            sql.Literal(i), sql.Literal(s.edge), sql.Literal(s.fraction)
        )
        for i, s in enumerate(legs, start=1)
    )
    return (
        sql.SQL("SELECT * FROM (VALUES {}) AS p(pid, edge_id, fraction, side)")
        .format(values)
        .as_string(None)
    )


LEG = """
WITH walk AS (
    SELECT path_seq, node, edge, agg_cost,
           lead(node) OVER (ORDER BY path_seq) AS next
    FROM pgr_withPoints(%(edges)s, %(points)s, %(start)s, %(end)s,
                        directed := true, driving_side := 'b', details := false)
), steps AS (
    SELECT w.path_seq, e.name, e.length_m, e.geom,
           CASE WHEN w.node = -1 THEN %(f1)s WHEN w.node = -2 THEN %(f2)s
                WHEN w.node = e.source THEN 0.0 ELSE 1.0 END AS a,
           CASE WHEN w.next = -1 THEN %(f1)s WHEN w.next = -2 THEN %(f2)s
                WHEN w.next = e.source THEN 0.0 ELSE 1.0 END AS b
    FROM walk w JOIN net.edges e ON e.id = w.edge
)
SELECT (SELECT max(agg_cost) FROM walk),
       coalesce(sum(length_m * abs(b - a)), 0),
       array_agg(name ORDER BY path_seq),
       ST_AsGeoJSON(ST_Transform(ST_MakeLine(
           CASE WHEN a <= b THEN ST_LineSubstring(geom, a, b)
                ELSE ST_Reverse(ST_LineSubstring(geom, b, a)) END ORDER BY path_seq), 4326), 7)
FROM steps WHERE a <> b
"""
"""One leg between two snapped points (pids 1 and 2, as ``pgr_withPoints`` numbers them
-1 and -2): its seconds, metres, road names and line."""


async def route(
    conn: psycopg.AsyncConnection[Any], network: str, points: Sequence[tuple[float, float]],
    *, barriers: Sequence[Barrier] = (), limit_m: float = SNAP_LIMIT_M,
) -> Route:  # fmt: skip
    """The fastest route through ``points`` in order (from, via..., to), as lon/lat.

    Raises:
        NotFoundError: no such network.
        InvalidInputError: fewer than 2 or more than :data:`MAX_POINTS` points, a point
            too far from the roads.
        NoPathError: no path; the message names the barriers or closures that cut it, or
            says that the points are in pieces of the network that do not connect.
    """
    if not 2 <= len(points) <= MAX_POINTS:
        msg = f"a route takes 2 to {MAX_POINTS} points (from, via..., to), not {len(points)}"
        raise InvalidInputError(msg)
    srid = await network_srid(conn, network)
    snapped = await snap(conn, network, points, barriers=barriers, limit_m=limit_m)
    usable = edges_query(usable_edges(network, srid, barriers))
    legs = []
    for k in range(len(snapped) - 1):
        found = await walk(conn, usable, snapped[k], snapped[k + 1])
        if found is None:
            raise NoPathError(await _why(conn, network, barriers, snapped[k : k + 2], k))
        legs.append(found)
    return joined(legs, snapped)


@dataclass(frozen=True)
class Leg:
    """The fastest way between two snapped points."""

    seconds: float
    metres: float
    names: list[str | None]
    line: dict[str, Any] | None
    """GeoJSON LineString (CRS84); None when the two points are one."""


def joined(legs: Sequence[Leg], snapped: list[Snapped]) -> Route:
    """The route of consecutive legs: summed, lines joined, road names without repeats."""
    names = [n for leg in legs for n in leg.names if n]
    coords: list[Any] = []
    for leg in legs:
        part = leg.line["coordinates"] if leg.line else []
        coords += part[1:] if coords and part and coords[-1] == part[0] else part
    return Route(
        {"type": "LineString", "coordinates": coords},
        round(sum(leg.metres for leg in legs), 1),
        round(sum(leg.seconds for leg in legs), 1),
        [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]],
        snapped,
    )


async def walk(
    conn: psycopg.AsyncConnection[Any], edges: str, a: Snapped, b: Snapped
) -> Leg | None:
    """The fastest way from ``a`` to ``b`` on the edges of ``edges`` (pgRouting's edges
    query), or None when there is none."""
    if a.edge == b.edge and math.isclose(a.fraction, b.fraction, abs_tol=1e-12):
        return Leg(0.0, 0.0, [], None)
    cur = await conn.execute(LEG, {"edges": edges, "points": points_sql([a, b]),
                                   "start": vertex_or_point(a, 1), "end": vertex_or_point(b, 2),
                                   "f1": a.fraction, "f2": b.fraction})  # fmt: skip
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    line = json.loads(row[3]) if row[3] else None
    return Leg(float(row[0]), float(row[1]), list(row[2] or []), line)


def vertex_or_point(point: Snapped, pid: int) -> int:
    """The point's id in ``pgr_withPoints``: its vertex, or ``-pid`` (the ``pid``-th
    point of the leg's points SQL)."""
    return point.vertex if point.vertex is not None else -pid


async def _why(
    conn: psycopg.AsyncConnection[Any], network: str, barriers: Sequence[Barrier],
    ends: Sequence[Snapped], leg: int,
) -> str:  # fmt: skip
    """Why there is no path between two snapped points: what closes the open path, or
    the network's pieces."""
    between = "the two points" if leg == 0 else f"points {leg + 1} and {leg + 2}"
    free = edges_query(sql.SQL("e.network = {}").format(sql.Literal(network)))
    cur = await conn.execute(
        "SELECT ST_AsText(ST_Transform(ST_Collect(e.geom), 4326)) FROM pgr_withPoints("
        "%s, %s, %s, %s, directed := true, driving_side := 'b') w JOIN net.edges e "
        "ON e.id = w.edge",
        (free, points_sql(ends), vertex_or_point(ends[0], 1), vertex_or_point(ends[1], 2)),
    )
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return (
            f"no path between {between}: they are in pieces of network {network!r} "
            "that do not connect"
        )
    open_path = row[0]
    cut = [b.name for b in barriers if await _meets(conn, b.wkt, open_path)]
    cur = await conn.execute(
        "SELECT c.id, c.reason FROM net.closures c WHERE c.network = %s "
        "AND c.starts_at <= now() AND c.expires_at > now() "
        "AND ST_Intersects(c.geom, ST_GeomFromText(%s, 4326)) ORDER BY c.id",
        (network, open_path),
    )
    cut += [f"closure {cid} ({reason})" for cid, reason in await cur.fetchall()]
    return f"no path between {between}: closed by {', '.join(cut) or 'the barriers'}"


async def _meets(conn: psycopg.AsyncConnection[Any], wkt: str, path: str) -> bool:
    cur = await conn.execute(
        "SELECT ST_Intersects(ST_GeomFromText(%s, 4326), ST_GeomFromText(%s, 4326))", (wkt, path)
    )
    row = await cur.fetchone()
    return bool(row and row[0])
