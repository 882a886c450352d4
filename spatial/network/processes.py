"""The routing processes' inputs and answers (OGC API - Processes, :mod:`spatial.processes`).

``service-area``: ``network``, ``points`` (one or more ``[lon, lat]``), ``minutes`` (bands,
e.g. ``[5, 10, 15]``), ``barriers``, ``max_snap_distance``: a FeatureCollection of one
polygon per band. ``closest-facility``: ``network``, ``point``, ``collection`` (the
facilities, optionally ``filter``-ed by CQL2), ``k``, ``direction`` (``to-facility``, the
default, or ``from-facility``), ``barriers``: the k nearest by travel time with routes.

``route``: ``network``, ``from`` and ``to`` (``[lon, lat]``), optional ``via`` points,
``barriers`` and ``max_snap_distance`` (metres). A barrier is a GeoJSON polygon (or a
Feature of one, named by its ``name`` property), or ``{"collection": id, "filter": CQL2}``:
the polygons of a collection the caller may read, e.g. the high-risk flood zones. A caller
routes on a network only when they may read the collection it was built from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from spatial import filters
from spatial.analysis import geometry_input
from spatial.errors import InvalidInputError
from spatial.features import LayerSchema, Params, source
from spatial.inputs import number, required, text
from spatial.network import reach, routing
from spatial.network.routing import Barrier

MAX_BARRIERS = 50
MAX_SNAP_M = 5_000.0


def _point(value: Any, name: str) -> tuple[float, float]:
    ok = (
        isinstance(value, list) and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and -180 <= value[0] <= 180 and -90 <= value[1] <= 90
    )  # fmt: skip
    if not ok:
        msg = f"input {name!r} must be [lon, lat] in degrees"
        raise InvalidInputError(msg)
    return float(value[0]), float(value[1])


def points(inputs: dict[str, Any]) -> list[tuple[float, float]]:
    """``from``, the ``via`` points in order, ``to``."""
    via = inputs.get("via") or []
    if not isinstance(via, list):
        msg = "input 'via' must be a list of [lon, lat]"
        raise InvalidInputError(msg)
    middle = [_point(v, f"via[{i}]") for i, v in enumerate(via)]
    return [_point(required(inputs, "from"), "from"), *middle, _point(required(inputs, "to"), "to")]


async def barriers(
    conn: psycopg.AsyncConnection[Any], lookup: Callable[[str], LayerSchema],
    inputs: dict[str, Any],
) -> list[Barrier]:  # fmt: skip
    """The request's barriers, each a polygon in CRS84 with a name."""
    given = inputs.get("barriers") or []
    if not isinstance(given, list) or len(given) > MAX_BARRIERS:
        msg = f"input 'barriers' must be a list of at most {MAX_BARRIERS} polygons or collections"
        raise InvalidInputError(msg)
    found = []
    for i, item in enumerate(given):
        if isinstance(item, dict) and "collection" in item:
            found.append(await _collection_barrier(conn, lookup, item, i))
            continue
        name, shape = f"barrier {i + 1}", item
        if isinstance(item, dict) and item.get("type") == "Feature":
            name = str((item.get("properties") or {}).get("name") or name)
            shape = item.get("geometry")
        wkt = geometry_input({f"barriers[{i}]": shape}, f"barriers[{i}]", polygonal=True)
        found.append(Barrier(name, wkt))
    return found


async def _collection_barrier(
    conn: psycopg.AsyncConnection[Any], lookup: Callable[[str], LayerSchema],
    item: dict[str, Any], i: int,
) -> Barrier:  # fmt: skip
    layer = lookup(str(required(item, "collection")))
    where: sql.Composable = sql.SQL("TRUE")
    params = Params()
    condition = text(item, "filter")
    if condition is not None:
        where = filters.compile_filter(filters.parse(condition), layer, params)
    cur = await conn.execute(
        sql.SQL(
            "SELECT ST_AsText(ST_Transform(ST_Union(t.geom), 4326)), count(*), "
            "bool_and(GeometryType(t.geom) IN ('POLYGON', 'MULTIPOLYGON')) "
            "FROM {table} t WHERE {where}"
        ).format(table=source(layer), where=where),
        params,
    )
    row = await cur.fetchone()
    if row is None or not row[1]:
        msg = f"barriers[{i}]: no feature of {layer.id!r} matches {condition or 'the collection'}"
        raise InvalidInputError(msg)
    if not row[2]:
        msg = f"barriers[{i}]: {layer.id!r} holds features that are not polygons"
        raise InvalidInputError(msg)
    name = f"{layer.id} ({condition})" if condition else layer.id
    return Barrier(name, row[0])


async def _network(
    conn: psycopg.AsyncConnection[Any], lookup: Callable[[str], LayerSchema],
    inputs: dict[str, Any],
) -> tuple[str, routing.NetworkState]:  # fmt: skip
    """The ``network`` input, a network whose roads the caller may read, and its state
    (read once for the whole request)."""
    network = str(text(inputs, "network") or required(inputs, "network"))
    state = await routing.network_state(conn, network)  # raises, listing the networks
    lookup(state.collection)  # the caller must be able to read the roads
    return network, state


def _limit(inputs: dict[str, Any]) -> float:
    return number(inputs, "max_snap_distance", 1, MAX_SNAP_M, routing.SNAP_LIMIT_M)


async def run_service_area(
    conn: psycopg.AsyncConnection[Any], lookup: Callable[[str], LayerSchema],
    inputs: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The ``service-area`` process: polygons reached within each band of minutes."""
    network, state = await _network(conn, lookup, inputs)
    given = required(inputs, "points")
    if not isinstance(given, list) or not 1 <= len(given) <= routing.MAX_POINTS:
        msg = f"input 'points' must be a list of 1 to {routing.MAX_POINTS} [lon, lat]"
        raise InvalidInputError(msg)
    minutes = inputs.get("minutes", [5, 10, 15])
    if not isinstance(minutes, list) or not all(
        isinstance(m, int | float) and not isinstance(m, bool) for m in minutes
    ):
        msg = "input 'minutes' must be a list of numbers, e.g. [5, 10, 15]"
        raise InvalidInputError(msg)
    areas = await reach.service_area(
        conn, network, [_point(p, f"points[{i}]") for i, p in enumerate(given)], minutes,
        barriers=await barriers(conn, lookup, inputs), limit_m=_limit(inputs), state=state,
    )  # fmt: skip
    return {"areas": areas}


async def run_closest_facility(
    conn: psycopg.AsyncConnection[Any], lookup: Callable[[str], LayerSchema],
    inputs: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The ``closest-facility`` process: the k nearest facilities with their routes."""
    network, state = await _network(conn, lookup, inputs)
    layer = lookup(str(text(inputs, "collection") or required(inputs, "collection")))
    condition, params = text(inputs, "filter"), Params()
    where: sql.Composable = sql.SQL("TRUE")
    if condition is not None:
        where = filters.compile_filter(filters.parse(condition), layer, params)
    direction = text(inputs, "direction") or "to-facility"
    if direction not in {"to-facility", "from-facility"}:
        msg = "input 'direction' must be 'to-facility' or 'from-facility'"
        raise InvalidInputError(msg)
    found = await reach.closest_facility(
        conn, network, _point(required(inputs, "point"), "point"), layer,
        int(number(inputs, "k", 1, 50, 3)), where=where, params=params,
        towards=direction == "to-facility",
        barriers=await barriers(conn, lookup, inputs), limit_m=_limit(inputs), state=state,
    )  # fmt: skip
    return {"facilities": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": f.id, "geometry": f.route.geometry, "properties": {
            "facility": f.id, **f.properties, "rank": rank, "seconds": f.route.seconds,
            "minutes": round(f.route.seconds / 60, 2), "length_m": f.route.length_m,
            "roads": f.route.roads}}
        for rank, f in enumerate(found, start=1)
    ]}}  # fmt: skip


async def run_route(
    conn: psycopg.AsyncConnection[Any], lookup: Callable[[str], LayerSchema],
    inputs: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The ``route`` process: a GeoJSON Feature of the fastest route."""
    network, state = await _network(conn, lookup, inputs)
    limit = _limit(inputs)
    found = await routing.route(
        conn, network, points(inputs), barriers=await barriers(conn, lookup, inputs),
        limit_m=limit, state=state,
    )  # fmt: skip
    return {
        "route": {
            "type": "Feature",
            "geometry": found.geometry,
            "properties": {
                "network": network, "length_m": found.length_m, "seconds": found.seconds,
                "minutes": round(found.seconds / 60, 2), "roads": found.roads,
                "snapped_m": [s.distance_m for s in found.snapped],
            },
        }
    }  # fmt: skip
