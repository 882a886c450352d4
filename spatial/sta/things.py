"""Station collections as SensorThings Things: each feature of ``water_gauges`` is a Thing
with its Location, named by the feature's key, not a copy that drifts.

:func:`link` makes (or brings up to date) the Things and Locations of a collection in one
statement per table, set-based: a new feature gets a Thing and a Location; a feature that
moved has its Location moved (and a HistoricalLocation recorded), and the Feature of
Interest made from that Location moves with it; a renamed one is renamed; a feature
gone retires its Thing (``retired``), whose Datastreams and readings stay. The collection
is then followed: ``sta.sources`` records the version linked, and :func:`follow` links
again every collection edited or re-imported since (the API workers call it, like the
geofences' :func:`spatial.gps.fences.follow`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from spatial.audit import Actor, record
from spatial.errors import InvalidInputError, NotFoundError

_COLLECTION = """
SELECT storage_schema, storage_table, properties->>'key', owner_department, version,
       properties->'fields'
FROM platform.collections WHERE id = %s AND kind = 'vector' AND storage_table IS NOT NULL
"""

_SOURCE = """
CREATE TEMP TABLE sta_source ON COMMIT DROP AS
SELECT t.{key}::text AS k, coalesce(t.{name}::text, t.{key}::text) AS name,
       ST_Transform(t.geom, 4326) AS g
FROM {table} t WHERE t.{key} IS NOT NULL AND NOT ST_IsEmpty(t.geom)
"""

_LINK = """
WITH things AS (
    INSERT INTO sta.things (name, description, department, collection, feature_key)
    SELECT s.name, format('Feature %%s of the collection %%s', s.k, %(c)s::text), %(department)s,
           %(c)s, s.k
    FROM sta_source s
    ON CONFLICT (collection, feature_key) DO UPDATE
        SET name = excluded.name, department = excluded.department, retired = false
        WHERE (sta.things.name, sta.things.department, sta.things.retired)
              IS DISTINCT FROM (excluded.name, excluded.department, false)
    RETURNING id
), retired AS (
    UPDATE sta.things t SET retired = true
    WHERE t.collection = %(c)s AND NOT t.retired
      AND NOT EXISTS (SELECT 1 FROM sta_source s WHERE s.k = t.feature_key)
    RETURNING id
), moved AS (
    INSERT INTO sta.locations (name, description, geom, department, collection, feature_key)
    SELECT s.name, format('Feature %%s of the collection %%s', s.k, %(c)s::text), s.g,
           %(department)s, %(c)s, s.k
    FROM sta_source s
    ON CONFLICT (collection, feature_key) DO UPDATE
        SET geom = excluded.geom, name = excluded.name, department = excluded.department
        WHERE NOT ST_Equals(sta.locations.geom, excluded.geom)
              OR (sta.locations.name, sta.locations.department)
                 IS DISTINCT FROM (excluded.name, excluded.department)
    RETURNING id, collection, feature_key, geom
)
SELECT (SELECT count(*) FROM things), (SELECT count(*) FROM retired),
       (SELECT coalesce(array_agg(id), '{}') FROM moved)
"""

_PAIR = """
INSERT INTO sta.things_locations (thing_id, location_id)
SELECT t.id, l.id FROM sta.things t
JOIN sta.locations l ON l.collection = t.collection AND l.feature_key = t.feature_key
WHERE t.collection = %(c)s
ON CONFLICT DO NOTHING
RETURNING thing_id, location_id
"""

_HISTORY = """
WITH h AS (
    INSERT INTO sta.historical_locations (thing_id)
    SELECT DISTINCT t.id FROM sta.things t
    JOIN sta.locations l ON l.collection = t.collection AND l.feature_key = t.feature_key
    WHERE t.collection = %(c)s AND (t.id = ANY(%(paired)s) OR l.id = ANY(%(moved)s))
    RETURNING id, thing_id
)
INSERT INTO sta.historical_locations_locations (historical_location_id, location_id)
SELECT h.id, tl.location_id FROM h JOIN sta.things_locations tl ON tl.thing_id = h.thing_id
"""

_FEATURES = """
UPDATE sta.features f SET geom = l.geom FROM sta.locations l
WHERE f.location_id = l.id AND l.collection = %(c)s AND NOT ST_Equals(f.geom, l.geom)
"""


def link(
    conn: psycopg.Connection[Any], collection: str, *, name_field: str | None = None,
    actor: Actor | None = None,
) -> dict[str, int]:  # fmt: skip
    """Make the features of ``collection`` Things with Locations, and follow it.

    In one transaction (the caller's connection must not be in one), audited as
    ``sta-link``. Returns how many Things were made or changed, retired, and Locations
    made or moved.

    Args:
        name_field: the attribute naming a Thing [default: ``name`` when the collection
            has one, else the key].
        actor: who links it [default: the OS user].

    Raises:
        NotFoundError: no such vector collection.
        InvalidInputError: a collection without a key attribute, or no such name field.
    """
    row = conn.execute(_COLLECTION, (collection,)).fetchone()
    if row is None:
        raise NotFoundError(f"no vector collection {collection!r}")
    schema, table, key, department, version, fields = row
    if not key:
        msg = f"collection {collection!r} has no key attribute: its features cannot be Things"
        raise InvalidInputError(msg)
    fields = fields or {}
    name = name_field or ("name" if "name" in fields else key)
    if name not in fields and name != key:
        raise InvalidInputError(f"collection {collection!r} has no field {name!r}")
    values = {"c": collection, "department": department}
    with conn.transaction():
        conn.execute(sql.SQL(_SOURCE).format(
            key=sql.Identifier(key), name=sql.Identifier(name),
            table=sql.Identifier(schema or "layers", table)))  # fmt: skip
        things, retired, moved = conn.execute(_LINK, values).fetchone() or (0, 0, [])
        paired = [r[0] for r in conn.execute(_PAIR, values).fetchall()]
        conn.execute(_HISTORY, {**values, "paired": paired, "moved": moved})
        conn.execute(_FEATURES, values)
        conn.execute(
            "INSERT INTO sta.sources (collection, name_field, collection_version) "
            "VALUES (%s, %s, %s) ON CONFLICT (collection) DO UPDATE SET name_field = "
            "excluded.name_field, collection_version = excluded.collection_version, "
            "followed_at = now(), follow_error = NULL",
            (collection, name_field, version),
        )
        done = {"things": int(things), "retired": int(retired), "locations": len(moved)}
        record(conn, actor or Actor.local(), "sta-link", collection_id=collection, details=done)
    return done


STALE = (
    "SELECT s.collection, s.name_field FROM sta.sources s "
    "JOIN platform.collections c ON c.id = s.collection "
    "WHERE s.collection_version IS DISTINCT FROM c.version "
    "AND (%(c)s::text IS NULL OR c.id = %(c)s)"
)
"""The linked collections edited or re-imported since they were linked."""


def follow(url: str, actor: Actor | None = None) -> list[dict[str, Any]]:
    """Link again every collection that changed since it was linked, each in its own
    transaction; one that another process is following is left to it. A collection that
    can no longer be linked (its key dropped) keeps its Things, and its source says why."""
    with psycopg.connect(url, autocommit=True) as conn:
        stale = conn.execute(STALE, {"c": None}).fetchall()
    done: list[dict[str, Any]] = []
    for collection, name_field in stale:
        with psycopg.connect(url, autocommit=True) as conn:
            lock = f"spatial.sta.things:{collection}"
            got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lock,)).fetchone()
            if not (got and got[0]):
                continue
            try:
                linked = link(conn, collection, name_field=name_field, actor=actor)
                done.append({"collection": collection, **linked})
            except (InvalidInputError, NotFoundError) as exc:
                conn.execute(
                    "UPDATE sta.sources SET follow_error = %s, collection_version = "
                    "(SELECT version FROM platform.collections WHERE id = %s) "
                    "WHERE collection = %s",
                    (str(exc), collection, collection),
                )
                done.append({"collection": collection, "error": str(exc)})
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
    return done
