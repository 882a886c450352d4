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

pgRouting loads every edge of its edges query for each call (about 100 ms for 100,000
edges), so a request makes as few calls as it can: :func:`legs` finds the ways between
many starts and ends in one call, :func:`costs` their times alone; a route through via
points is one call. The edges query leaves the closures' test out when no closure of the
network is in force (:func:`network_state`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from spatial.errors import InvalidInputError, NotFoundError

SNAP_LIMIT_M = 500.0
"""A point farther than this from every usable road is refused (a request may lower it)."""
MAX_POINTS = 25
"""From, to and the via points of one route."""
END = 1e-9
"""A fraction this close to 0 or 1 is the edge's end."""
T = TypeVar("T")


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


@dataclass(frozen=True)
class NetworkState:
    """A network as a request finds it: the CRS of its edges, the collection it was built
    from, and whether a standing closure is in force (when none is, the edges queries
    leave the closures' test out: a closure that comes into force during the request
    counts from the next one)."""

    srid: int
    collection: str
    closed: bool


async def network_state(conn: psycopg.AsyncConnection[Any], network: str) -> NetworkState:
    """The network's CRS, collection and whether a closure is in force, in one statement.

    Raises:
        NotFoundError: no such network (the message lists the networks).
    """
    cur = await conn.execute(
        "SELECT n.srid, n.collection, EXISTS (SELECT 1 FROM net.closures c "
        "WHERE c.network = n.id AND c.starts_at <= now() AND c.expires_at > now()) "
        "FROM net.networks n WHERE n.id = %s",
        (network,),
    )
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute("SELECT id FROM net.networks ORDER BY id")
        known = ", ".join(r[0] for r in await cur.fetchall()) or "none"
        msg = f"no network {network!r}; the networks are: {known}"
        raise NotFoundError(msg)
    return NetworkState(int(row[0]), str(row[1]), bool(row[2]))


async def network_srid(conn: psycopg.AsyncConnection[Any], network: str) -> int:
    """The CRS of a network's edges.

    Raises:
        NotFoundError: no such network.
    """
    return (await network_state(conn, network)).srid


def usable_edges(
    network: str, srid: int, barriers: Sequence[Barrier] = (), *, closures: bool = True
) -> sql.Composed:
    """The condition on ``e`` (a row of ``net.edges``) of the edges a request may use;
    without the standing closures' test when ``closures`` is false (none is in force)."""
    parts: list[sql.Composable] = [sql.SQL("e.network = {}").format(sql.Literal(network))]
    if closures:
        parts.append(
            sql.SQL(
                "NOT EXISTS (SELECT 1 FROM net.closures c WHERE c.network = e.network "
                "AND c.starts_at <= now() AND c.expires_at > now() "
                "AND c.geom_native && e.geom AND ST_Intersects(c.geom_native, e.geom))"
            )
        )
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
    *, barriers: Sequence[Barrier] = (), srid: int | None = None, closures: bool = True,
) -> list[Snapped]:  # fmt: skip
    """Each point on its nearest usable edge, however far (its ``distance_m`` says).
    ``srid``, the network's CRS, is looked up when not given; ``closures`` as in
    :func:`usable_edges`.

    Raises:
        NotFoundError: no such network.
        InvalidInputError: a network with no usable edge.
    """
    if srid is None:
        srid = await network_srid(conn, network)
    statement = sql.SQL(
        "SELECT e.id, ST_LineLocatePoint(e.geom, q.g), e.source, e.target, "
        "ST_Distance(ST_Transform(e.geom, 4326)::geography, q.ll::geography) "
        "FROM unnest(%(x)s::float8[], %(y)s::float8[]) WITH ORDINALITY AS p(x, y, i), "
        "LATERAL (SELECT ST_SetSRID(ST_MakePoint(p.x, p.y), 4326) AS ll) l, "
        "LATERAL (SELECT l.ll, ST_Transform(l.ll, {srid}) AS g) q "
        "LEFT JOIN LATERAL (SELECT e.id, e.geom, e.source, e.target FROM net.edges e "
        "WHERE {usable} ORDER BY e.geom <-> q.g LIMIT 1) e ON true ORDER BY p.i"
    ).format(
        srid=sql.Literal(srid), usable=usable_edges(network, srid, barriers, closures=closures)
    )
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
    srid: int | None = None, closures: bool = True,
) -> list[Snapped]:  # fmt: skip
    """Each point on its nearest usable edge, which must be within ``limit_m`` (``srid``
    and ``closures`` as in :func:`nearest_edges`).

    Raises:
        NotFoundError: no such network.
        InvalidInputError: a point farther than ``limit_m`` from every usable edge (the
            message gives its distance), or a network with no usable edge.
    """
    snapped = await nearest_edges(
        conn, network, points, barriers=barriers, srid=srid, closures=closures
    )
    for i, (point, placed) in enumerate(zip(points, snapped, strict=True), start=1):
        if placed.distance_m > limit_m:
            msg = (
                f"point {i} ({point[0]:g}, {point[1]:g}) is {placed.distance_m:,.0f} m from "
                f"the nearest road of network {network!r}; the limit is {limit_m:,.0f} m"
            )
            raise InvalidInputError(msg)
    return snapped


NO_POINTS = (
    "SELECT 1::bigint AS pid, 1::bigint AS edge_id, 0.5::float8 AS fraction, "
    "'b'::char AS side WHERE false"
)
"""The points query when every point is at a vertex (pgRouting takes an empty one)."""


def points_sql(legs: Sequence[Snapped]) -> str:
    """``pgr_withPoints``'s points query of ``legs``, numbered from 1 (pids)."""
    return _points_query(list(enumerate(legs, start=1)))


def _points_query(places: Sequence[tuple[int, Snapped]], *, backwards: bool = False) -> str:
    """The points query of ``places`` (pid, point); on :data:`REVERSED` edges with
    ``backwards`` (each fraction from the edge's other end)."""
    if not places:
        return NO_POINTS
    values = sql.SQL(", ").join(
        sql.SQL("({}, {}, {}::float8, 'b'::char)").format(
            sql.Literal(pid), sql.Literal(s.edge),
            sql.Literal(1.0 - s.fraction if backwards else s.fraction),
        )
        for pid, s in places
    )  # fmt: skip
    return (
        sql.SQL("SELECT * FROM (VALUES {}) AS p(pid, edge_id, fraction, side)")
        .format(values)
        .as_string(None)
    )


PATHS = sql.SQL("""
WITH walk AS (
    SELECT start_pid AS s, end_pid AS t, path_seq, node, edge, agg_cost,
           lead(node) OVER (PARTITION BY start_pid, end_pid ORDER BY path_seq) AS next
    FROM {walks}
), placed AS (
    SELECT -p.pid AS node, p.fraction
    FROM unnest(%(pids)s::bigint[], %(fractions)s::float8[]) AS p(pid, fraction)
), steps AS (
    SELECT w.s, w.t, w.path_seq, e.name, e.length_m, e.geom,
           coalesce(fa.fraction, CASE WHEN w.node = e.source THEN 0.0 ELSE 1.0 END) AS a,
           coalesce(fb.fraction, CASE WHEN w.next = e.source THEN 0.0 ELSE 1.0 END) AS b
    FROM walk w
    CROSS JOIN LATERAL (SELECT e.name, e.length_m, e.geom, e.source FROM net.edges e
                        WHERE e.id = w.edge OFFSET 0) e
    LEFT JOIN placed fa ON fa.node = w.node
    LEFT JOIN placed fb ON fb.node = w.next
), lines AS (
    SELECT s, t, sum(length_m * abs(b - a)) AS metres,
           array_agg(name ORDER BY path_seq) AS names,
           ST_AsGeoJSON(ST_Transform(ST_MakeLine(
               CASE WHEN a <= b THEN ST_LineSubstring(geom, a, b)
                    ELSE ST_Reverse(ST_LineSubstring(geom, b, a)) END ORDER BY path_seq),
               4326), 7) AS line
    FROM steps WHERE a <> b GROUP BY s, t
)
SELECT w.s, w.t, w.seconds, coalesce(l.metres, 0), l.names, l.line
FROM (SELECT s, t, max(agg_cost) AS seconds FROM walk GROUP BY s, t) w
LEFT JOIN lines l ON l.s = w.s AND l.t = w.t
""")
"""The ways ``{walks}`` (a ``pgr_withPoints`` call) found: per pair of pgRouting ids
(start, end), its seconds, metres, road names and line, each edge from and to the points'
fractions (``pids`` and ``fractions``). The edges of the ways are read one by one by their
key: a join the planner would hash reads all 100,000 of them (30 ms)."""

MANY = sql.SQL(
    "pgr_withPoints(%(edges)s, %(points)s, %(starts)s::bigint[], %(ends)s::bigint[], "
    "directed := true, driving_side := 'b', details := false)"
)
PAIRS = sql.SQL(
    "pgr_withPoints(%(edges)s, %(points)s, %(pairs)s, "
    "directed := true, driving_side := 'b', details := false)"
)
REVERSED = sql.SQL("SELECT id, target AS source, source AS target, cost, reverse_cost FROM ({}) r")
"""An edges query's edges with their ends swapped and their costs kept: every one-way
arc turned round, so a way from B to A on them is the way from A to B, backwards, at the
same cost."""
COSTS = (
    "SELECT start_pid, end_pid, agg_cost FROM pgr_withPointsCost(%(edges)s, %(points)s, "
    "%(starts)s::bigint[], %(ends)s::bigint[], directed := true, driving_side := 'b')"
)


@dataclass(frozen=True)
class Leg:
    """The fastest way between two snapped points."""

    seconds: float
    metres: float
    names: list[str | None]
    line: dict[str, Any] | None
    """GeoJSON LineString (CRS84); None when the two points are one."""


NOWHERE = Leg(0.0, 0.0, [], None)
"""The way between two points that are one."""


@dataclass(frozen=True)
class _Ask:
    """What to ask pgRouting for some pairs of starts and ends: each point's id (its
    vertex, or ``-pid`` of its place; points at one place share it), the places on
    edges, the pairs whose points are one and the distinct pairs of ids to route."""

    starts: list[int]
    ends: list[int]
    places: list[tuple[int, Snapped]]
    same: set[tuple[int, int]]
    ids: list[tuple[int, int]]

    @staticmethod
    def of(
        starts: Sequence[Snapped], ends: Sequence[Snapped], pairs: Sequence[tuple[int, int]]
    ) -> _Ask:
        """The ask for ``pairs`` (index in ``starts``, index in ``ends``)."""
        ids: list[int] = []
        pids: dict[tuple[int, float], int] = {}
        places: list[tuple[int, Snapped]] = []
        for p in [*starts, *ends]:
            if p.vertex is not None:  # pgr_withPoints finds no way from an edge's very end
                ids.append(p.vertex)
                continue
            if (p.edge, p.fraction) not in pids:
                pids[p.edge, p.fraction] = len(pids) + 1
                places.append((len(pids), p))
            ids.append(-pids[p.edge, p.fraction])
        s, t = ids[: len(starts)], ids[len(starts) :]
        same = {(i, j) for i, j in pairs if s[i] == t[j] or _one(starts[i], ends[j])}
        wanted = dict.fromkeys((s[i], t[j]) for i, j in pairs if (i, j) not in same)
        return _Ask(s, t, places, same, list(wanted))

    def values(self) -> dict[str, Any]:
        """The statement's values but the edges and the starts and ends."""
        return {
            "points": _points_query(self.places),
            "pids": [pid for pid, _ in self.places],
            "fractions": [p.fraction for _, p in self.places],
            "starts": sorted({s for s, _ in self.ids}),
            "ends": sorted({t for _, t in self.ids}),
        }

    def keyed(self, pairs: Sequence[tuple[int, int]], found: dict[tuple[int, int], T],
              nothing: T) -> dict[tuple[int, int], T]:  # fmt: skip
        """``found`` (by pair of ids) by pair of indexes; ``nothing`` for points that are
        one; pairs without a way left out."""
        keyed = {}
        for i, j in pairs:
            if (i, j) in self.same:
                keyed[i, j] = nothing
            elif (self.starts[i], self.ends[j]) in found:
                keyed[i, j] = found[self.starts[i], self.ends[j]]
        return keyed


def _one(a: Snapped, b: Snapped) -> bool:
    """Whether two snapped points are one place."""
    return (a.vertex is not None and a.vertex == b.vertex) or (
        a.edge == b.edge and math.isclose(a.fraction, b.fraction, abs_tol=1e-12)
    )


def _all(starts: Sequence[Snapped], ends: Sequence[Snapped]) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(starts)) for j in range(len(ends))]


async def legs(
    conn: psycopg.AsyncConnection[Any], edges: str, starts: Sequence[Snapped],
    ends: Sequence[Snapped],
) -> dict[tuple[int, int], Leg]:  # fmt: skip
    """The fastest way from each start to each end, in ONE ``pgr_withPoints`` call
    (one-to-many, many-to-one or many-to-many) on the edges of ``edges`` (pgRouting's
    edges query, e.g. ``edges_query(usable_edges(...))``).

    Returns:
        The legs keyed by (index in ``starts``, index in ``ends``); pairs with no path
        are absent; a pair whose two points coincide gets ``Leg(0, 0, [], None)``. Each
        leg's line runs from the start's fraction of its edge to the end's.
    """
    return await _legs(conn, edges, starts, ends, _all(starts, ends))


async def _legs(
    conn: psycopg.AsyncConnection[Any], edges: str, starts: Sequence[Snapped],
    ends: Sequence[Snapped], pairs: Sequence[tuple[int, int]],
) -> dict[tuple[int, int], Leg]:  # fmt: skip
    """:func:`legs` for some ``pairs`` only: every start to every end in one call when
    they are all the pairs, else pgRouting's combinations of the pairs asked."""
    ask = _Ask.of(starts, ends, pairs)
    found: dict[tuple[int, int], Leg] = {}
    if ask.ids:
        values = ask.values()
        walks = MANY
        if len(ask.ids) < len(values["starts"]) * len(values["ends"]):
            walks = PAIRS
            values["pairs"] = (
                sql.SQL("SELECT * FROM (VALUES {}) AS c(source, target)")
                .format(sql.SQL(", ").join(
                    sql.SQL("({}::bigint, {}::bigint)").format(sql.Literal(s), sql.Literal(t))
                    for s, t in ask.ids
                ))
                .as_string(None)
            )  # fmt: skip
        cur = await conn.execute(PATHS.format(walks=walks), {**values, "edges": edges})
        for s, t, seconds, metres, names, line in await cur.fetchall():
            found[s, t] = Leg(float(seconds), float(metres), list(names or []),
                              json.loads(line) if line else None)  # fmt: skip
    return ask.keyed(pairs, found, NOWHERE)


async def costs(
    conn: psycopg.AsyncConnection[Any], edges: str, starts: Sequence[Snapped],
    ends: Sequence[Snapped],
) -> dict[tuple[int, int], float]:  # fmt: skip
    """Travel seconds only (``pgr_withPointsCost``, one call), keyed as :func:`legs`;
    pairs with no path are absent, points that coincide 0.

    pgRouting searches from each start in turn: with more starts than ends (many to one)
    the call searches from the ends on the reversed edges instead (each edge's ends
    swapped, its costs kept, the points' fractions taken from the other end), which
    gives the same seconds in one search per end.
    """
    pairs = _all(starts, ends)
    ask = _Ask.of(starts, ends, pairs)
    found: dict[tuple[int, int], float] = {}
    if ask.ids:
        values = {**ask.values(), "edges": edges}
        backwards = len(values["starts"]) > len(values["ends"])
        if backwards:
            values.update(
                edges=REVERSED.format(sql.SQL(edges)).as_string(None),
                points=_points_query(ask.places, backwards=True),
                starts=values["ends"], ends=values["starts"],
            )  # fmt: skip
        cur = await conn.execute(COSTS, values)
        for s, t, seconds in await cur.fetchall():
            found[(t, s) if backwards else (s, t)] = float(seconds)
    return ask.keyed(pairs, found, 0.0)


async def route(
    conn: psycopg.AsyncConnection[Any], network: str, points: Sequence[tuple[float, float]],
    *, barriers: Sequence[Barrier] = (), limit_m: float = SNAP_LIMIT_M,
    state: NetworkState | None = None,
) -> Route:  # fmt: skip
    """The fastest route through ``points`` in order (from, via..., to), as lon/lat: one
    ``pgr_withPoints`` call for all its legs. ``state`` is the network's, looked up when
    not given.

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
    if state is None:
        state = await network_state(conn, network)
    snapped = await snap(conn, network, points, barriers=barriers, limit_m=limit_m,
                         srid=state.srid, closures=state.closed)  # fmt: skip
    usable = edges_query(usable_edges(network, state.srid, barriers, closures=state.closed))
    count = len(snapped) - 1
    found = await _legs(conn, usable, snapped[:-1], snapped[1:], [(k, k) for k in range(count)])
    for k in range(count):
        if (k, k) not in found:
            raise NoPathError(await _why(conn, network, barriers, snapped[k : k + 2], k))
    return joined([found[k, k] for k in range(count)], snapped)


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
    query), or None when there is none: :func:`legs` of one pair."""
    return (await legs(conn, edges, [a], [b])).get((0, 0))


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
