"""How far the roads reach: service areas, and the closest facilities by travel time.

- :func:`service_area`: from one or more points, the areas reachable within given minutes
  (pgRouting's ``pgr_withPointsDD``): every edge reached whole or in part (the part its
  remaining time covers at its speed, from a vertex reached or from a point on it),
  wrapped in a concave hull per band, with the kilometres of road reached;
- :func:`closest_facility`: the k features of a point collection nearest a point by
  travel time (``pgr_withPointsCost`` one to many, or many to one), each with its route
  (the k routes from one ``pgr_withPoints`` call: :func:`~spatial.network.routing.legs`).

Barriers and standing closures are honoured as in :mod:`spatial.network.routing`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from spatial.errors import InvalidInputError
from spatial.features import LayerSchema, source
from spatial.network.routing import (
    Barrier,
    NetworkState,
    NoPathError,
    Route,
    costs,
    edges_query,
    joined,
    legs,
    nearest_edges,
    network_state,
    points_sql,
    snap,
    usable_edges,
    vertex_or_point,
)

MAX_MINUTES = 180.0
MAX_BANDS = 10
MAX_FACILITIES = 2_000
"""Facilities considered by one closest-facility request (filter a larger collection)."""
HULL = 0.3
"""``ST_ConcaveHull``'s share of convexity for a band: tight around the roads reached,
without holes."""

AREA = sql.SQL("""
WITH reached AS (
    SELECT node, min(agg_cost) AS agg FROM pgr_withPointsDD(
        %(edges)s, %(points)s, %(starts)s, %(limit)s,
        directed := true, driving_side := 'b', details := false)
    GROUP BY node
), parts AS (
    SELECT e.geom, e.length_m,
           CASE WHEN e.cost > 0 AND s.agg <= %(band)s
                THEN least(1.0, (%(band)s - s.agg) / e.cost) ELSE 0 END AS fu,
           CASE WHEN e.reverse_cost > 0 AND t.agg <= %(band)s
                THEN least(1.0, (%(band)s - t.agg) / e.reverse_cost) ELSE 0 END AS fv
    FROM net.edges e
    LEFT JOIN reached s ON s.node = e.source LEFT JOIN reached t ON t.node = e.target
    WHERE {usable} AND (s.node IS NOT NULL OR t.node IS NOT NULL)
), own AS (
    SELECT e.geom,
           CASE WHEN e.reverse_cost > 0
                THEN greatest(0.0, s.f - %(band)s / e.reverse_cost) ELSE s.f END AS f0,
           CASE WHEN e.cost > 0 THEN least(1.0, s.f + %(band)s / e.cost) ELSE s.f END AS f1
    FROM unnest(%(edge_ids)s::bigint[], %(fractions)s::float8[]) AS s(edge, f)
    JOIN net.edges e ON e.id = s.edge
), pieces AS (
    SELECT CASE WHEN fu + fv >= 1 THEN geom
                WHEN fu > 0 THEN ST_LineSubstring(geom, 0, fu) END AS g FROM parts
    UNION ALL
    SELECT ST_LineSubstring(geom, 1 - fv, 1) FROM parts WHERE fu + fv < 1 AND fv > 0
    UNION ALL
    SELECT ST_LineSubstring(geom, f0, f1) FROM own WHERE f1 > f0
), reach AS (
    SELECT ST_Union(g) AS g, count(*) AS n FROM pieces WHERE g IS NOT NULL
)
SELECT ST_AsGeoJSON(ST_Transform(ST_ConcaveHull(g, %(hull)s, false), 4326), 7), n,
       ST_Length(ST_Transform(g, 4326)::geography) / 1000
FROM reach WHERE n > 0
""")
"""One band of a service area: the reach of the edges ``{usable}`` within ``band``
seconds, as a concave hull, its number of pieces and kilometres."""


async def service_area(
    conn: psycopg.AsyncConnection[Any], network: str, points: Sequence[tuple[float, float]],
    minutes: Sequence[float], *, barriers: Sequence[Barrier] = (), limit_m: float = 500.0,
    state: NetworkState | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A FeatureCollection of one polygon per band (the largest first), each with its
    ``minutes``, the road segments reached and their kilometres. ``state`` is the
    network's (:func:`~spatial.network.routing.network_state`), looked up when not given.

    Raises:
        InvalidInputError: no point, bands out of (0, 180] minutes or more than 10, a
            point too far from the roads.
    """
    bands = sorted({float(m) for m in minutes}, reverse=True)
    if not points or not bands or len(bands) > MAX_BANDS:
        msg = f"a service area takes one or more points and 1 to {MAX_BANDS} bands of minutes"
        raise InvalidInputError(msg)
    if bands[0] > MAX_MINUTES or bands[-1] <= 0:
        msg = f"minutes must be more than 0 and at most {MAX_MINUTES:g}"
        raise InvalidInputError(msg)
    state = state or await network_state(conn, network)
    srid, closed = state.srid, state.closed
    snapped = await snap(conn, network, points, barriers=barriers, limit_m=limit_m, srid=srid,
                         closures=closed)  # fmt: skip
    usable = usable_edges(network, srid, barriers, closures=closed)
    values = {
        "edges": edges_query(usable),
        "points": points_sql(snapped),
        "starts": [vertex_or_point(s, i) for i, s in enumerate(snapped, start=1)],
        "limit": bands[0] * 60, "hull": HULL,
        "edge_ids": [p.edge for p in snapped], "fractions": [p.fraction for p in snapped],
    }  # fmt: skip
    statement = AREA.format(usable=usable)
    features = []
    for band in bands:
        cur = await conn.execute(statement, {**values, "band": band * 60})
        row = await cur.fetchone()
        if row is None or row[0] is None:
            continue
        features.append({"type": "Feature", "geometry": json.loads(row[0]), "properties": {
            "minutes": band, "segments": int(row[1]), "km": round(float(row[2]), 3)}})  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


@dataclass
class Facility:
    """A facility reached: its feature id and properties, and the route."""

    id: int
    properties: dict[str, Any]
    route: Route


async def closest_facility(
    conn: psycopg.AsyncConnection[Any], network: str, point: tuple[float, float],
    facilities: LayerSchema, k: int, *, where: sql.Composable | None = None,
    params: dict[str, Any] | None = None, towards: bool = True,
    barriers: Sequence[Barrier] = (), limit_m: float = 500.0,
    state: NetworkState | None = None,
) -> list[Facility]:  # fmt: skip
    """The ``k`` facilities nearest ``point`` by travel time, nearest first, with their
    routes: from the point to each (``towards``) or from each to the point. Only the
    facilities matching ``where`` (over ``t``, its values in ``params``) count; those
    farther than ``limit_m`` from every road are left out. Two pgRouting calls: the
    times to every facility (:func:`~spatial.network.routing.costs`), then the routes to
    the ``k`` nearest (:func:`~spatial.network.routing.legs`). ``state`` is the
    network's, looked up when not given.

    Raises:
        InvalidInputError: more than :data:`MAX_FACILITIES` facilities, none near a road,
            the point too far from the roads.
        NoPathError: no facility can be reached.
    """
    state = state or await network_state(conn, network)
    cur = await conn.execute(
        sql.SQL("SELECT t.fid, ST_X(c), ST_Y(c), {props} FROM {table} t, "
                "LATERAL (SELECT ST_Transform(ST_PointOnSurface(t.geom), 4326) AS c) x "
                "WHERE {where} ORDER BY t.fid LIMIT {cap}").format(
            props=_properties(facilities), table=source(facilities),
            where=where if where is not None else sql.SQL("TRUE"),
            cap=sql.Literal(MAX_FACILITIES + 1),
        ),
        params or {},
    )  # fmt: skip
    rows = await cur.fetchall()
    if len(rows) > MAX_FACILITIES:
        msg = f"{facilities.id!r} has more than {MAX_FACILITIES} facilities; filter them"
        raise InvalidInputError(msg)
    srid, closed = state.srid, state.closed
    start = (await snap(conn, network, [point], barriers=barriers, limit_m=limit_m, srid=srid,
                        closures=closed))[0]  # fmt: skip
    placed = await nearest_edges(conn, network, [(r[1], r[2]) for r in rows],
                                 barriers=barriers, srid=srid, closures=closed)  # fmt: skip
    near = [(row, s) for row, s in zip(rows, placed, strict=True) if s.distance_m <= limit_m]
    if not near:
        msg = f"no facility of {facilities.id!r} is within {limit_m:g} m of a road"
        raise InvalidInputError(msg)
    edges = edges_query(usable_edges(network, srid, barriers, closures=closed))
    spots = [s for _, s in near]
    if towards:
        seconds = {j: c for (_, j), c in (await costs(conn, edges, [start], spots)).items()}
    else:
        seconds = {i: c for (i, _), c in (await costs(conn, edges, spots, [start])).items()}
    ranked = sorted(seconds, key=lambda i: (seconds[i], i))[:k]
    chosen = [spots[i] for i in ranked]
    if towards:
        ways = {j: leg for (_, j), leg in (await legs(conn, edges, [start], chosen)).items()}
    else:
        ways = {i: leg for (i, _), leg in (await legs(conn, edges, chosen, [start])).items()}
    found = []
    for n, index in enumerate(ranked):
        row, spot = near[index]
        if n in ways:
            ends = [start, spot] if towards else [spot, start]
            found.append(Facility(int(row[0]), row[3] or {}, joined([ways[n]], ends)))
    if not found:
        msg = f"no facility of {facilities.id!r} can be reached by road from the point"
        raise NoPathError(msg)
    return found


def _properties(layer: LayerSchema) -> sql.Composable:
    if not layer.fields:
        return sql.SQL("'{}'::json")
    return sql.SQL("json_build_object({})").format(sql.SQL(", ").join(
        sql.SQL("{}, t.{}").format(sql.Literal(c), sql.Identifier(c)) for c in layer.fields
    ))  # fmt: skip
