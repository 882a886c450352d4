"""The routing processes' inputs and answers (OGC API - Processes, :mod:`spatial.processes`).

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
from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import LayerSchema, Params, source
from spatial.inputs import number, required, text
from spatial.network import routing
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


async def run_route(
    conn: psycopg.AsyncConnection[Any], lookup: Callable[[str], LayerSchema],
    inputs: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The ``route`` process: a GeoJSON Feature of the fastest route."""
    network = str(text(inputs, "network") or required(inputs, "network"))
    cur = await conn.execute("SELECT collection FROM net.networks WHERE id = %s", (network,))
    row = await cur.fetchone()
    if row is None:
        await routing.network_srid(conn, network)  # raises, listing the networks
        raise NotFoundError(network)  # pragma: no cover - network_srid raised
    lookup(row[0])  # the caller must be able to read the roads
    limit = number(inputs, "max_snap_distance", 1, MAX_SNAP_M, routing.SNAP_LIMIT_M)
    found = await routing.route(
        conn, network, points(inputs), barriers=await barriers(conn, lookup, inputs),
        limit_m=limit,
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
