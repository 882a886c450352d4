"""Tracks, trips and stops derived from positions.

Storing fixes marks their device-days dirty (``gps.tracks_dirty``, in the store's
transaction); :func:`rebuild` derives them again: the day's line (full, and simplified to
about :data:`SIMPLIFY_M` for display), then the day split into stops (the device stays
within :data:`STOP_RADIUS_M` of where it stopped for at least :data:`STOP_S`) and trips
(the moves between stops, also cut where nothing came for :data:`GAP_S`). The API runs it
every few seconds; ``spatial gps tracks`` runs it now. Derived data never delays a fix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from spatial.gps.store import distance_m

GAP_S = 300.0
STOP_RADIUS_M = 50.0
STOP_S = 180.0
SIMPLIFY_M = 5.0
BATCH = 200
"""Device-days derived per transaction."""
_DERIVING = 0x5A7_0001
"""The advisory lock held while deriving (``pg_try_advisory_lock``)."""

Point = tuple[dt.datetime, float, float]


@dataclass(frozen=True)
class Segment:
    """A trip (``kind`` ``trip``, its points) or a stop (``stop``, where it stood)."""

    kind: str
    points: list[Point]


def segment(points: list[Point], *, gap_s: float = GAP_S, radius_m: float = STOP_RADIUS_M,
            stop_s: float = STOP_S) -> list[Segment]:  # fmt: skip
    """Split a day's points (in time order) into trips and stops."""
    out: list[Segment] = []
    trip: list[Point] = []
    i, n = 0, len(points)

    def close_trip() -> None:
        if len(trip) >= 2:
            out.append(Segment("trip", list(trip)))
        trip.clear()

    while i < n:
        # The longest run from i that stays within the radius of point i.
        j = i
        while j + 1 < n and distance_m(points[i][1], points[i][2], points[j + 1][1],
                                       points[j + 1][2]) <= radius_m \
                and (points[j + 1][0] - points[j][0]).total_seconds() <= gap_s:  # fmt: skip
            j += 1
        if (points[j][0] - points[i][0]).total_seconds() >= stop_s:
            trip.append(points[i])
            close_trip()
            out.append(Segment("stop", points[i : j + 1]))
            trip.append(points[j])
            i = j + 1
            continue
        if trip and (points[i][0] - trip[-1][0]).total_seconds() > gap_s:
            close_trip()
        trip.append(points[i])
        i += 1
    close_trip()
    return out


_TRACK = """
INSERT INTO gps.tracks (device_id, day, geom, simple, points, started, ended, length_m)
SELECT %(device)s, %(day)s, line, ST_SimplifyPreserveTopology(line, %(tolerance)s), n, a, b,
       ST_Length(line::geography)
FROM (SELECT ST_MakeLine(geom ORDER BY time) AS line, count(*) AS n, min(time) AS a,
             max(time) AS b
      FROM gps.positions WHERE device_id = %(device)s AND time >= %(start)s
      AND time < %(end)s) s
WHERE n >= 2
ON CONFLICT (device_id, day) DO UPDATE SET geom = excluded.geom, simple = excluded.simple,
    points = excluded.points, started = excluded.started, ended = excluded.ended,
    length_m = excluded.length_m
"""


def rebuild(conn: psycopg.Connection[Any], *, limit: int = BATCH) -> int:
    """Derive the tracks, trips and stops of up to ``limit`` dirty device-days; returns
    how many were done (:func:`rebuild_all` lets one process at a time do it).

    The days are taken off ``gps.tracks_dirty`` in a short transaction of their own, so a
    store marking them dirty again never waits for the derivation; when the derivation
    fails they are put back."""
    with conn.transaction():
        dirty = conn.execute(
            "DELETE FROM gps.tracks_dirty WHERE (device_id, day) IN (SELECT device_id, day "
            "FROM gps.tracks_dirty ORDER BY day, device_id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING device_id, day", (limit,)).fetchall()  # fmt: skip
    try:
        with conn.transaction():
            for device, day in dirty:
                _derive(conn, device, day)
    except BaseException:
        with contextlib.suppress(psycopg.Error), conn.transaction():
            conn.cursor().executemany(
                "INSERT INTO gps.tracks_dirty (device_id, day) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING", dirty)  # fmt: skip
        raise
    return len(dirty)


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    return row[0] if row is not None else None


def _derive(conn: psycopg.Connection[Any], device: str, day: dt.date) -> None:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    end = start + dt.timedelta(days=1)
    span = {"device": device, "day": day, "start": start, "end": end,
            "tolerance": SIMPLIFY_M / 111_320}  # fmt: skip
    if conn.execute(_TRACK, span).rowcount == 0:
        conn.execute("DELETE FROM gps.tracks WHERE device_id = %s AND day = %s", (device, day))
    points = [(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT time, ST_X(geom), ST_Y(geom) FROM gps.positions WHERE device_id = %s "
        "AND time >= %s AND time < %s ORDER BY time", (device, start, end))]  # fmt: skip
    _write_segments(conn, device, day, segment(points))


def _write_segments(
    conn: psycopg.Connection[Any], device: str, day: dt.date, parts: list[Segment]
) -> None:
    conn.execute("DELETE FROM gps.trips WHERE device_id = %s AND day = %s", (device, day))
    conn.execute("DELETE FROM gps.stops WHERE device_id = %s AND day = %s", (device, day))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gps.trips (device_id, day, started, ended, geom, length_m) "
            "SELECT %s, %s, %s, %s, line, ST_Length(line::geography) FROM "
            "(SELECT ST_SetSRID(ST_MakeLine(ARRAY(SELECT ST_MakePoint(x, y) FROM "
            "unnest(%s::float8[], %s::float8[]) AS u(x, y))), 4326) AS line) s",
            [(device, day, p.points[0][0], p.points[-1][0], [q[1] for q in p.points],
              [q[2] for q in p.points]) for p in parts if p.kind == "trip"],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO gps.stops (device_id, day, started, ended, geom) VALUES "
            "(%s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            [(device, day, p.points[0][0], p.points[-1][0],
              sum(q[1] for q in p.points) / len(p.points),
              sum(q[2] for q in p.points) / len(p.points))
             for p in parts if p.kind == "stop"],
        )  # fmt: skip


def rebuild_all(conn: psycopg.Connection[Any], *, wait: bool = True) -> int:
    """Derive every dirty device-day; returns how many. One process at a time derives (so
    no two derive the same day): the others wait, or return 0 at once unless ``wait``."""
    with conn.transaction():
        if wait:
            conn.execute("SELECT pg_advisory_lock(%s)", (_DERIVING,))
        elif not _one(conn.execute("SELECT pg_try_advisory_lock(%s)", (_DERIVING,))):
            return 0
    try:
        total = 0
        while done := rebuild(conn):
            total += done
        return total
    finally:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_unlock(%s)", (_DERIVING,))


def refresh_extents(conn: psycopg.Connection[Any]) -> int:
    """Set the catalog extent and time span of each GPS collection to its data's, where
    they changed (a change reloads every worker's catalog, so only then); returns how
    many changed."""
    views = conn.execute(
        "SELECT id, storage_table FROM platform.collections WHERE kind = 'gps'"
    ).fetchall()
    changed = 0
    for collection_id, table in views:
        statement = sql.SQL(
            "UPDATE platform.collections c SET footprint = ST_Multi(ST_Envelope(e.box)), "
            "temporal_start = e.first, temporal_end = e.last, updated_at = now() "
            "FROM (SELECT ST_SetSRID(ST_Extent(t.geom)::geometry, 4326) AS box, "
            "min(t.time) AS first, max(t.time) AS last FROM {} t) e "
            "WHERE c.id = %s AND e.box IS NOT NULL AND (c.footprint IS NULL "
            "OR NOT ST_Equals(c.footprint, ST_Multi(ST_Envelope(e.box))) "
            "OR c.temporal_end IS DISTINCT FROM e.last)"
        ).format(sql.Identifier("gps", table))
        changed += conn.execute(statement, (collection_id,)).rowcount
    return changed
