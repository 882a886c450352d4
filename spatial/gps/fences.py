"""Geofences: polygons from a collection or drawn, and the enter / exit / dwell events of
devices, evaluated as fixes are stored (in the same transaction, by
:func:`spatial.gps.store.store`: :func:`locate`, then :func:`advance` and :func:`save`
while the devices are locked).

Only fixes newer than a device's previous latest position move it through fences: a late
fix is stored but does not rewrite its history of events. A device's state in each fence
(inside or not, since when, dwell sent) is kept per device and fence, so an exit is found
even when the fix that leaves is far from the fence.

Every change to the fences (:func:`add_fence`, :func:`import_fences`, :func:`remove_fence`)
is audited in the transaction that makes it, whoever calls it (the API, a command, a script).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import shapely
from psycopg import sql

from spatial.audit import Actor, record
from spatial.catalog import get_collection
from spatial.db import engine
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


AUDITED_IDS = 10_000
"""At most this many fence ids in one audit row (the count is always there)."""


def add_fence(
    conn: psycopg.Connection[Any], name: str, geometry: dict[str, Any], *,
    dwell_s: int | None = None, department: str | None = None, actor: Actor | None = None,
) -> int:  # fmt: skip
    """A drawn fence (GeoJSON polygon in lon/lat), audited as ``fence-add``; returns its id.

    Args:
        department: whose stewards manage it (None: admins only).
        actor: who draws it [default: the OS user, :meth:`Actor.local`].

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
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO gps.fences (name, geom, dwell_s, department) VALUES "
            "(%s, ST_Multi(ST_SetSRID(ST_GeomFromText(%s), 4326)), %s, %s) RETURNING id",
            (name.strip(), shape.wkt, dwell_s, department),
        ).fetchone()
        assert row is not None  # noqa: S101 - INSERT ... RETURNING
        fence_id = int(row[0])
        record(conn, actor or Actor.local(), "fence-add", feature_ids=[str(fence_id)],
               details={"id": fence_id, "name": name.strip(), "dwell_s": dwell_s,
                        "department": department})  # fmt: skip
    return fence_id


def import_fences(
    conn: psycopg.Connection[Any], layer: LayerSchema, *, name_field: str | None = None,
    dwell_s: int | None = None, actor: Actor | None = None, empty_ok: bool = False,
) -> int:  # fmt: skip
    """Make (or bring up to date) a fence of every polygon of a vector layer, each named
    by its feature's key (the layer's key attribute, else its number): fences of features
    gone are retired (kept inactive, with their events), and the layer is followed from
    now on (:func:`follow`: ``gps.fence_sources`` records how). The fences belong to the
    layer's owner department. Audited as ``fence-import`` with the fences' ids; returns
    how many are active.

    Args:
        actor: who imports them [default: the OS user, :meth:`Actor.local`].
        empty_ok: a layer without polygons retires its fences rather than being refused
            (following a layer whose polygons were all removed).

    Raises:
        InvalidInputError: no such name property, or no polygon in the layer.
    """
    label: sql.Composable = sql.SQL("t.fid::text")
    if name_field is not None:
        label = sql.SQL("coalesce(t.{}::text, t.fid::text)").format(
            sql.Identifier(layer.column(name_field)))  # fmt: skip
    key = (
        sql.SQL("t.{}::text").format(sql.Identifier(layer.key))
        if layer.key
        else sql.SQL("t.fid::text")
    )
    statement = sql.SQL(
        "INSERT INTO gps.fences (name, source_collection, source_feature, source_key, geom, "
        "dwell_s, department) SELECT {label}, %(c)s, t.fid, {key}, "
        "ST_Multi(ST_CollectionExtract(ST_Transform(t.geom, 4326), 3)), %(dwell)s, "
        "(SELECT owner_department FROM platform.collections WHERE id = %(c)s) "
        "FROM {rows} t WHERE ST_Dimension(t.geom) = 2 AND {key} IS NOT NULL "
        "ON CONFLICT (source_collection, source_key) DO UPDATE SET name = excluded.name, "
        "source_feature = excluded.source_feature, geom = excluded.geom, "
        "dwell_s = excluded.dwell_s, department = excluded.department, active = true "
        "RETURNING id"
    ).format(label=label, key=key, rows=source(layer))
    values = {"c": layer.id, "dwell": dwell_s}
    with conn.transaction():
        ids = sorted(int(r[0]) for r in conn.execute(statement, values))
        if not ids and not empty_ok:
            msg = f"collection {layer.id!r} has no polygons to make fences of"
            raise InvalidInputError(msg)
        retired = [int(r[0]) for r in conn.execute(
            "UPDATE gps.fences SET active = false WHERE source_collection = %s AND active "
            "AND NOT (id = ANY(%s)) RETURNING id", (layer.id, ids))]  # fmt: skip
        conn.execute(
            "INSERT INTO gps.fence_sources (collection, name_field, dwell_s, collection_version) "
            "SELECT %(c)s, %(name)s, %(dwell)s, version FROM platform.collections WHERE id = %(c)s "
            "ON CONFLICT (collection) DO UPDATE SET name_field = excluded.name_field, "
            "dwell_s = excluded.dwell_s, collection_version = excluded.collection_version, "
            "followed_at = now(), follow_error = NULL",
            {**values, "name": name_field},
        )
        record(conn, actor or Actor.local(), "fence-import",
               feature_ids=[str(i) for i in ids[:AUDITED_IDS]],
               details={"collection": layer.id, "fences": len(ids), "retired": retired,
                        "name_field": name_field, "dwell_s": dwell_s})  # fmt: skip
    return len(ids)


STALE = (
    "SELECT s.collection, s.name_field, s.dwell_s FROM gps.fence_sources s "
    "JOIN platform.collections c ON c.id = s.collection "
    "WHERE s.collection_version IS DISTINCT FROM c.version "
    "AND (%(c)s::text IS NULL OR c.id = %(c)s)"
)
"""The collections whose fences were made from an older version of them (an edit or a
re-import bumps the catalog version)."""


def follow(
    url: str, collection: str | None = None, actor: Actor | None = None
) -> list[dict[str, Any]]:
    """Bring the fences of the collections that changed since their fences were made up
    to date (of one collection, or all), each in its own transaction; one that another
    process is following is left to it. Returns a summary per collection, or its error
    (a name field gone: the fences stay as they were and the source says why)."""
    with psycopg.connect(url, autocommit=True) as conn:
        stale = conn.execute(STALE, {"c": collection}).fetchall()
    done: list[dict[str, Any]] = []
    for collection_id, name_field, dwell_s in stale:
        with psycopg.connect(url) as conn:
            lock = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                                (f"spatial.fences:{collection_id}",)).fetchone()  # fmt: skip
            still = conn.execute(STALE, {"c": collection_id}).fetchone()
            if not (lock and lock[0]) or still is None:
                continue
            try:
                with engine(url) as eng, eng.connect() as sconn:
                    # A collection that is no longer a vector layer is an error of this
                    # source (recorded below), not of every following pass.
                    layer = LayerSchema.of(get_collection(sconn, collection_id))
                count = import_fences(conn, layer, name_field=name_field, dwell_s=dwell_s,
                                      actor=actor, empty_ok=True)  # fmt: skip
            except InvalidInputError as exc:
                conn.rollback()
                conn.execute(
                    "UPDATE gps.fence_sources SET follow_error = %s, collection_version = "
                    "(SELECT version FROM platform.collections WHERE id = %s) "
                    "WHERE collection = %s",
                    (str(exc), collection_id, collection_id),
                )
                done.append({"collection": collection_id, "error": str(exc)})
                continue
        done.append({"collection": collection_id, "fences": count})
    return done


LIST = """
SELECT f.id, f.name, f.source_collection AS collection, f.source_key AS key, f.department,
       f.dwell_s, f.active, f.created_at, ST_AsGeoJSON(f.geom, 7)::json AS geometry
FROM gps.fences f
WHERE (%(active)s::boolean IS NULL OR f.active = %(active)s)
ORDER BY f.id
"""


def list_fences(
    conn: psycopg.Connection[Any], *, active: bool | None = True
) -> list[dict[str, Any]]:
    """The fences (the active ones by default), each with its polygon as GeoJSON."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(LIST, {"active": active}).fetchall()


def fence_department(conn: psycopg.Connection[Any], fence_id: int) -> str | None:
    """The department whose stewards manage a fence.

    Raises:
        NotFoundError: no such fence.
    """
    row = conn.execute("SELECT department FROM gps.fences WHERE id = %s", (fence_id,)).fetchone()
    if row is None:
        msg = f"fence {fence_id} does not exist"
        raise NotFoundError(msg)
    return None if row[0] is None else str(row[0])


def sources(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The collections whose fences follow them: how they were made, from which version,
    whether they are behind and why."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT s.collection, s.name_field, s.dwell_s, s.collection_version, "
        "c.version AS current_version, s.followed_at, s.follow_error "
        "FROM gps.fence_sources s JOIN platform.collections c ON c.id = s.collection "
        "ORDER BY s.collection"
    ).fetchall()


def unfollow(conn: psycopg.Connection[Any], collection: str, *, actor: Actor | None = None) -> int:
    """Stop following a collection: its fences are deleted with their state and events,
    audited as ``fence-unfollow``; returns how many.

    Raises:
        NotFoundError: its fences do not follow it.
    """
    with conn.transaction():
        if conn.execute("DELETE FROM gps.fence_sources WHERE collection = %s RETURNING 1",
                        (collection,)).fetchone() is None:  # fmt: skip
            msg = f"no fences follow collection {collection!r}"
            raise NotFoundError(msg)
        gone = conn.execute(
            "DELETE FROM gps.fences WHERE source_collection = %s RETURNING id", (collection,)
        )
        ids = sorted(int(r[0]) for r in gone)
        record(conn, actor or Actor.local(), "fence-unfollow",
               feature_ids=[str(i) for i in ids[:AUDITED_IDS]],
               details={"collection": collection, "fences": len(ids)})  # fmt: skip
    return len(ids)


def remove_fence(
    conn: psycopg.Connection[Any], fence_id: int, *, actor: Actor | None = None
) -> None:
    """Delete a fence with its state and events, audited as ``fence-remove``. A fence made
    of a collection comes back when that collection next changes; :func:`unfollow` stops
    that.

    Args:
        actor: who removes it [default: the OS user, :meth:`Actor.local`].

    Raises:
        NotFoundError: no such fence.
    """
    with conn.transaction():
        row = conn.execute("DELETE FROM gps.fences WHERE id = %s RETURNING name, "
                           "source_collection", (fence_id,)).fetchone()  # fmt: skip
        if row is None:
            msg = f"fence {fence_id} does not exist"
            raise NotFoundError(msg)
        record(conn, actor or Actor.local(), "fence-remove", feature_ids=[str(fence_id)],
               details={"id": fence_id, "name": row[0], "collection": row[1]})  # fmt: skip


@dataclass(frozen=True)
class _Fences:
    """The active fences of one database at one version, ready for point queries."""

    version: int
    ids: list[int]
    dwell: list[int | None]
    tree: shapely.STRtree


_LOADED: dict[tuple[str | None, int | None, str], _Fences] = {}
"""Each database's fences, as this process last loaded them."""


def _fences(conn: psycopg.Connection[Any], version: int | None) -> _Fences:
    """The active fences, from memory unless ``gps.fences_version`` (read by the caller)
    moved on (a new version and its fences are read by one statement, so they agree)."""
    key = (conn.info.host, conn.info.port, conn.info.dbname)
    known = _LOADED.get(key)
    if known is not None and known.version == version:
        return known
    rows = conn.execute(
        "SELECT v.version, f.id, f.dwell_s, ST_AsBinary(f.geom) FROM gps.fences_version v "
        "LEFT JOIN gps.fences f ON f.active ORDER BY f.id"
    ).fetchall()
    present = [r for r in rows if r[1] is not None]
    shapes = shapely.from_wkb([bytes(r[3]) for r in present])
    shapely.prepare(shapes)
    loaded = _Fences(int(rows[0][0]), [int(r[1]) for r in present], [r[2] for r in present],
                     shapely.STRtree(shapes))  # fmt: skip
    _LOADED[key] = loaded
    return loaded


@dataclass
class Located:
    """Which fences the fixes of a batch are inside (found before any lock is taken)."""

    dwell: dict[int, int | None]
    """Every active fence's dwell time (None: no dwell events)."""
    inside: set[tuple[int, int]]
    """(index of the fix, fence) for each fix inside a fence."""
    hit: dict[str, set[int]]
    """The fences each device has a fix inside."""


def locate(conn: psycopg.Connection[Any], fixes: Sequence[Fix], *, version: int | None) -> Located:
    """Find the fences each fix is inside, in memory (an R-tree of the prepared polygons,
    :func:`_fences`); ``version`` is ``gps.fences_version`` as the caller read it."""
    fences = _fences(conn, version)
    located = Located(dict(zip(fences.ids, fences.dwell, strict=True)), set(), {})
    if fences.ids and fixes:
        points = shapely.points([f.lon for f in fixes], [f.lat for f in fixes])
        found = fences.tree.query(points, predicate="intersects")
        for i, j in zip(found[0].tolist(), found[1].tolist(), strict=True):
            fence = fences.ids[j]
            located.inside.add((i, fence))
            located.hit.setdefault(str(fixes[i].device), set()).add(fence)
    return located


STATES = """
SELECT device_id, fence_id, inside, since, dwelt FROM gps.fence_state WHERE device_id = ANY(%s)
"""
"""The devices' state in each fence (run after the devices are locked)."""

ALIVE = """
SELECT id FROM gps.fences
WHERE id = ANY(%(hit)b)
   OR id IN (SELECT fence_id FROM gps.fence_state WHERE device_id = ANY(%(devices)s) AND inside)
ORDER BY id FOR KEY SHARE
"""
"""The fences that may get events, locked so that none is deleted before they are written
(a fence deleted meanwhile is not returned)."""

State = list[Any]
"""[inside, since, dwelt]."""


def advance(
    located: Located,
    fixes: Sequence[Fix],
    moving: Sequence[int],
    states: dict[tuple[str, int], State],
    alive: set[int],
) -> tuple[list[Event], dict[tuple[str, int], State]]:
    """Move devices through the fences with the fixes at the indexes ``moving`` (those newer
    than their device's latest position); returns the events and the changed states.

    Args:
        states: each device's state in each fence, as read (changed in place).
        alive: the fences that still exist (:data:`ALIVE`).
    """
    hit = {device: {f for f in fences if f in alive} for device, fences in located.hit.items()}
    for device, fence in [k for k, v in states.items() if v[0] and k[1] in alive]:
        hit.setdefault(device, set()).add(fence)  # inside: a fix outside is an exit
    events: list[Event] = []
    touched: set[tuple[str, int]] = set()
    for i in sorted(moving, key=lambda i: (str(fixes[i].device), fixes[i].time)):
        fix = fixes[i]
        device = str(fix.device)
        for fence in sorted(hit.get(device, ())):
            now_inside = (i, fence) in located.inside
            state = states.setdefault((device, fence), [False, fix.time, False])
            if now_inside != state[0]:
                kind = "enter" if now_inside else "exit"
                events.append(Event(device, fence, kind, fix.time, fix.lon, fix.lat))
                state[:] = [now_inside, fix.time, False]
                touched.add((device, fence))
            elif now_inside and not state[2] and (limit := located.dwell.get(fence)) \
                    and (fix.time - state[1]).total_seconds() >= limit:  # fmt: skip
                events.append(Event(device, fence, "dwell", fix.time, fix.lon, fix.lat))
                state[2] = True
                touched.add((device, fence))
    return events, {k: states[k] for k in sorted(touched)}


def save(conn: psycopg.Connection[Any], events: list[Event],
         states: dict[tuple[str, int], State]) -> None:  # fmt: skip
    """Write the changed states and the events (in the caller's transaction; it may be
    in pipeline mode)."""
    if states:
        conn.cursor().executemany(
            "INSERT INTO gps.fence_state (device_id, fence_id, inside, since, dwelt) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (device_id, fence_id) DO UPDATE SET "
            "inside = excluded.inside, since = excluded.since, dwelt = excluded.dwelt",
            [(d, f, *state) for (d, f), state in states.items()],
        )
    if events:
        conn.cursor().executemany(
            "INSERT INTO gps.events (device_id, fence_id, kind, time, geom) VALUES "
            "(%s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            [(e.device, e.fence, e.kind, e.time, e.lon, e.lat) for e in events],
        )
