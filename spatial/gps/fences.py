"""Geofences: polygons from a collection or drawn, and the enter / exit / dwell events of
devices, evaluated as fixes are stored (in the same transaction, :func:`evaluate`).

Only fixes newer than a device's previous latest position move it through fences: a late
fix is stored but does not rewrite its history of events. A device's state in each fence
(inside or not, since when, dwell sent) is kept per device and fence, so an exit is found
even when the fix that leaves is far from the fence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import shapely
from psycopg import sql

from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import LayerSchema, source
from spatial.gps.fix import Fix


@dataclass(frozen=True)
class Event:
    """A device entering, leaving or dwelling in a fence."""

    device: str
    fence: int
    kind: str
    time: dt.datetime
    lon: float
    lat: float


def add_fence(
    conn: psycopg.Connection[Any], name: str, geometry: dict[str, Any], *,
    dwell_s: int | None = None,
) -> int:  # fmt: skip
    """A drawn fence (GeoJSON polygon in lon/lat); returns its id.

    Raises:
        InvalidInputError: not a valid polygon, an empty name, or a bad dwell time.
    """
    try:
        shape = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.GEOSException) as exc:
        msg = f"fence {name!r}: not a GeoJSON geometry ({exc})"
        raise InvalidInputError(msg) from None
    if shape.geom_type not in {"Polygon", "MultiPolygon"} or shape.is_empty or not shape.is_valid:
        msg = f"fence {name!r}: a fence is a valid polygon in lon/lat"
        raise InvalidInputError(msg)
    if not name.strip():
        raise InvalidInputError("a fence needs a name")
    if dwell_s is not None and dwell_s <= 0:
        raise InvalidInputError("the dwell time must be a positive number of seconds")
    row = conn.execute(
        "INSERT INTO gps.fences (name, geom, dwell_s) VALUES "
        "(%s, ST_Multi(ST_SetSRID(ST_GeomFromText(%s), 4326)), %s) RETURNING id",
        (name.strip(), shape.wkt, dwell_s),
    ).fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING
    return int(row[0])


def import_fences(
    conn: psycopg.Connection[Any], layer: LayerSchema, *, name_field: str | None = None,
    dwell_s: int | None = None,
) -> int:  # fmt: skip
    """Copy the polygons of a vector layer into fences (again: replaced, by feature);
    returns how many.

    Raises:
        InvalidInputError: no such name property, or no polygon in the layer.
    """
    label: sql.Composable = sql.SQL("t.fid::text")
    if name_field is not None:
        label = sql.SQL("coalesce(t.{}::text, t.fid::text)").format(
            sql.Identifier(layer.column(name_field)))  # fmt: skip
    statement = sql.SQL(
        "INSERT INTO gps.fences (name, source_collection, source_feature, geom, dwell_s) "
        "SELECT {}, %s, t.fid, ST_Multi(ST_CollectionExtract(ST_Transform(t.geom, 4326), 3)), %s "
        "FROM {} t WHERE ST_Dimension(t.geom) = 2 "
        "ON CONFLICT (source_collection, source_feature) DO UPDATE SET name = excluded.name, "
        "geom = excluded.geom, dwell_s = excluded.dwell_s, active = true"
    ).format(label, source(layer))
    count = conn.execute(statement, (layer.id, dwell_s)).rowcount
    if count == 0:
        msg = f"collection {layer.id!r} has no polygons to make fences of"
        raise InvalidInputError(msg)
    return int(count)


def remove_fence(conn: psycopg.Connection[Any], fence_id: int) -> None:
    """Delete a fence with its state and events.

    Raises:
        NotFoundError: no such fence.
    """
    if conn.execute("DELETE FROM gps.fences WHERE id = %s", (fence_id,)).rowcount == 0:
        msg = f"fence {fence_id} does not exist"
        raise NotFoundError(msg)


_CANDIDATES = """
WITH pts AS (
    SELECT * FROM unnest(%(devices)s::text[], %(times)s::timestamptz[], %(lons)s::float8[],
                         %(lats)s::float8[]) AS u(d, t, x, y)
), env AS (
    SELECT d, ST_SetSRID(ST_Extent(ST_MakePoint(x, y))::geometry, 4326) AS e FROM pts GROUP BY d
), cand AS (
    SELECT env.d, f.id, f.geom, f.dwell_s FROM env JOIN gps.fences f ON f.active AND f.geom && env.e
    UNION
    SELECT s.device_id, f.id, f.geom, f.dwell_s FROM gps.fence_state s
    JOIN gps.fences f ON f.id = s.fence_id
    WHERE s.inside AND s.device_id = ANY(%(devices)s)
)
SELECT p.d, c.id, c.dwell_s, p.t, p.x, p.y,
       ST_Intersects(c.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
FROM pts p JOIN cand c ON c.d = p.d ORDER BY p.d, c.id, p.t
"""


def evaluate(conn: psycopg.Connection[Any], moving: Sequence[Fix]) -> list[Event]:
    """Move devices through the fences with their new fixes (in the caller's transaction);
    returns the events, already stored."""
    if not moving:
        return []
    rows = conn.execute(_CANDIDATES, {
        "devices": [f.device for f in moving], "times": [f.time for f in moving],
        "lons": [f.lon for f in moving], "lats": [f.lat for f in moving]}).fetchall()  # fmt: skip
    if not rows:
        return []
    states = {(r[0], r[1]): [r[2], r[3], r[4]] for r in conn.execute(
        "SELECT device_id, fence_id, inside, since, dwelt FROM gps.fence_state "
        "WHERE device_id = ANY(%s)", (sorted({r[0] for r in rows}),))}  # fmt: skip
    events: list[Event] = []
    touched: set[tuple[str, int]] = set()
    for device, fence, dwell_s, time, lon, lat, inside in rows:
        state = states.setdefault((device, fence), [False, time, False])
        if bool(inside) != state[0]:
            events.append(Event(device, fence, "enter" if inside else "exit", time, lon, lat))
            state[:] = [bool(inside), time, False]
            touched.add((device, fence))
        elif inside and dwell_s and not state[2] and (time - state[1]).total_seconds() >= dwell_s:
            events.append(Event(device, fence, "dwell", time, lon, lat))
            state[2] = True
            touched.add((device, fence))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gps.fence_state (device_id, fence_id, inside, since, dwelt) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (device_id, fence_id) DO UPDATE SET "
            "inside = excluded.inside, since = excluded.since, dwelt = excluded.dwelt",
            [(d, f, *states[(d, f)]) for d, f in sorted(touched)],
        )
        cur.executemany(
            "INSERT INTO gps.events (device_id, fence_id, kind, time, geom) VALUES "
            "(%s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            [(e.device, e.fence, e.kind, e.time, e.lon, e.lat) for e in events],
        )
    return events
