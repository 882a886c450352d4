"""Editions of a vector collection: the diff of a re-import, feature history, ``as_of``.

Each ingest of a collection is an *edition* (1, 2, ...) with a ``valid_from`` time. The
layer table holds only the current edition, so serving it costs nothing extra. When a
new edition replaces it, the diff by key (added, removed, geometry changed, attributes
changed) goes to ``platform.feature_changes`` and the replaced versions of changed and
removed features go to ``platform.feature_history`` with their valid-from/valid-to. A
layer without a key is diffed by content (a feature whose geometry or attributes
changed counts as removed and added).

Any past edition is then: the current rows not changed since it, plus the history rows
that were current at it: :func:`spatial.features.source` reads a layer so when it is
asked for a past edition (the items API's ``as-of``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import Cursor, sql

from spatial.catalog import LAYERS
from spatial.errors import InvalidInputError

_FIELDS_PER_OBJECT = 45  # jsonb_build_object takes at most 100 arguments


@dataclass(frozen=True)
class Diff:
    """What changed from the previous edition."""

    added: int = 0
    removed: int = 0
    geometry_changed: int = 0
    attributes_changed: int = 0
    unchanged: int = 0
    keys: tuple[str, ...] = ()
    """Keys of the changed features (at most 10,000, for the audit log)."""

    def as_dict(self) -> dict[str, int]:
        """The counts."""
        return {
            "added": self.added,
            "removed": self.removed,
            "geometry_changed": self.geometry_changed,
            "attributes_changed": self.attributes_changed,
            "unchanged": self.unchanged,
        }


def props_expr(alias: str, columns: list[str]) -> sql.Composable:
    """``jsonb_build_object('a', t.a, ...)`` for the given columns of table alias ``alias``."""
    if not columns:
        return sql.SQL("'{}'::jsonb")
    chunks = []
    for start in range(0, len(columns), _FIELDS_PER_OBJECT):
        pairs = sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier(alias, c))
            for c in columns[start : start + _FIELDS_PER_OBJECT]
        )
        chunks.append(sql.SQL("jsonb_build_object({})").format(pairs))
    return sql.SQL(" || ").join(chunks)


def key_expr(alias: str, key: str | None, columns: list[str]) -> sql.Composable:
    """A feature's identity: its key as text, or a hash of its content when there is none."""
    if key is not None:
        return sql.SQL("{}::text").format(sql.Identifier(alias, key))
    return sql.SQL("md5(ST_AsEWKB({}) || convert_to(({})::text, 'UTF8'))").format(
        sql.Identifier(alias, "geom"), props_expr(alias, columns)
    )


def previous_edition(cur: Cursor[Any], collection_id: str) -> tuple[int, dt.datetime] | None:
    """The latest edition number and its valid-from time, if the collection has one."""
    row = cur.execute(
        "SELECT edition, valid_from FROM platform.editions WHERE collection_id = %s "
        "ORDER BY edition DESC LIMIT 1",
        (collection_id,),
    ).fetchone()
    return None if row is None else (int(row[0]), row[1])


def check_valid_from(previous: tuple[int, dt.datetime] | None, valid_from: dt.datetime) -> None:
    """Editions follow each other in time.

    Raises:
        InvalidInputError: ``valid_from`` is not later than the previous edition's.
    """
    if previous is not None and valid_from <= previous[1]:
        msg = (
            f"valid-from {valid_from.isoformat()} is not later than edition {previous[0]}'s "
            f"({previous[1].isoformat()})"
        )
        raise InvalidInputError(msg)


def diff_and_archive(
    cur: Cursor[Any],
    *,
    collection_id: str,
    stage: str,
    new_columns: list[str],
    old_columns: list[str],
    key: str | None,
    edition: int,
    valid_from: dt.datetime,
) -> Diff:
    """Compare the staged edition with the current table; record changes and history.

    Must run after the new edition's row exists in ``platform.editions`` and before the
    current table is dropped.
    """
    current = sql.Identifier(LAYERS, collection_id)
    staged = sql.Identifier(LAYERS, stage)
    cur.execute(
        sql.SQL("""
        CREATE TEMP TABLE _diff ON COMMIT DROP AS
        WITH n AS (SELECT DISTINCT ON (1) {nkey} AS key, s.geom, {nprops} AS props FROM {staged} s),
             o AS (SELECT DISTINCT ON (1) {okey} AS key, c.geom, {oprops} AS props FROM {current} c)
        SELECT coalesce(n.key, o.key) AS key,
               CASE WHEN o.key IS NULL THEN 'added'
                    WHEN n.key IS NULL THEN 'removed'
                    WHEN NOT n.geom = o.geom AND n.props <> o.props THEN 'geometry+attributes'
                    WHEN NOT n.geom = o.geom THEN 'geometry'
                    ELSE 'attributes' END AS change,
               CASE WHEN n.key IS NOT NULL AND o.key IS NOT NULL AND n.props <> o.props THEN
                    ARRAY(SELECT f FROM jsonb_object_keys(n.props || o.props) AS f
                          WHERE n.props -> f IS DISTINCT FROM o.props -> f ORDER BY f)
               END AS fields,
               o.geom AS old_geom, o.props AS old_props, n.geom AS new_geom
        FROM n FULL JOIN o ON n.key = o.key
        WHERE n.key IS NULL OR o.key IS NULL OR NOT n.geom = o.geom OR n.props <> o.props
        """).format(
            nkey=key_expr("s", key, new_columns),
            nprops=props_expr("s", new_columns),
            okey=key_expr("c", key, old_columns),
            oprops=props_expr("c", old_columns),
            staged=staged,
            current=current,
        )
    )
    first = cur.execute(
        "SELECT min(edition) FROM platform.editions WHERE collection_id = %s", (collection_id,)
    ).fetchone()
    cur.execute(
        """
        INSERT INTO platform.feature_history
            (collection_id, key, edition_from, edition_to, valid_from, valid_to, properties, geom)
        SELECT %(cid)s, d.key, e.edition, %(edition)s, e.valid_from, %(valid_from)s,
               d.old_props, d.old_geom
        FROM _diff d
        CROSS JOIN LATERAL (
            SELECT coalesce(max(fc.edition), %(first)s) AS edition
            FROM platform.feature_changes fc
            WHERE fc.collection_id = %(cid)s AND fc.key = d.key AND fc.edition < %(edition)s
              AND fc.change <> 'removed') AS started
        JOIN platform.editions e ON e.collection_id = %(cid)s AND e.edition = started.edition
        WHERE d.change <> 'added'
        """,
        {
            "cid": collection_id,
            "edition": edition,
            "valid_from": valid_from,
            "first": first[0] if first else edition,
        },
    )
    cur.execute(
        "INSERT INTO platform.feature_changes (collection_id, edition, key, change, fields) "
        "SELECT %s, %s, key, change, fields FROM _diff",
        (collection_id, edition),
    )
    counts = dict(cur.execute("SELECT change, count(*) FROM _diff GROUP BY change").fetchall())
    keys = tuple(r[0] for r in cur.execute("SELECT key FROM _diff ORDER BY key LIMIT 10000"))
    total = cur.execute(sql.SQL("SELECT count(*) FROM {}").format(staged)).fetchone()
    both = counts.get("geometry+attributes", 0)
    geometry = counts.get("geometry", 0) + both
    attributes = counts.get("attributes", 0) + both
    changed = counts.get("geometry", 0) + counts.get("attributes", 0) + both
    added = counts.get("added", 0)
    return Diff(
        added=added,
        removed=counts.get("removed", 0),
        geometry_changed=geometry,
        attributes_changed=attributes,
        unchanged=(total[0] if total else 0) - added - changed,
        keys=keys,
    )


EDITION_AT = (
    "SELECT max(edition) FILTER (WHERE valid_from <= %(when)s), max(edition), min(valid_from) "
    "FROM platform.editions WHERE collection_id = %(cid)s"
)
"""The edition current at ``when``, the latest, and when the first began (one row)."""


def parse_as_of(text: str) -> dt.datetime:
    """An ``as-of`` value: an RFC 3339 date-time (UTC when it has no offset) or a date
    (its first moment, UTC).

    Raises:
        InvalidInputError: not a date or date-time.
    """
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
        if when.tzinfo is not None:
            when.astimezone(dt.UTC)  # 0001-01-01T00:00+01:00 is before the year 1
    except (ValueError, OverflowError):
        msg = f"as-of {text[:40]!r} is not an RFC 3339 date or date-time (e.g. 2025-06-01T08:00Z)"
        raise InvalidInputError(msg) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def past_edition(collection_id: str, when: dt.datetime, row: Any) -> int | None:
    """From :data:`EDITION_AT`'s row: the edition current at ``when``, or None when that
    is the latest (the layer table itself).

    Raises:
        InvalidInputError: the collection has no editions, or its first began after ``when``.
    """
    at, latest, first = row if row is not None else (None, None, None)
    if latest is None or first is None:
        msg = f"collection {collection_id!r} keeps no editions, so it has no as-of"
        raise InvalidInputError(msg)
    if at is None:
        msg = (
            f"as-of {when.isoformat()} is before collection {collection_id!r} began: its first "
            f"edition is valid from {first.isoformat()}"
        )
        raise InvalidInputError(msg)
    return None if at == latest else int(at)


EDITIONS = (
    "SELECT edition, valid_from, recorded_at, job_id::text AS job_id, actor, source, "
    "checksum, key, feature_count, counts FROM platform.editions "
    "WHERE collection_id = %s ORDER BY edition"
)
"""A collection's editions in order (parameter: the collection id)."""
_CHANGED = (
    "collection_id = %(cid)s AND edition > %(from)s AND edition <= %(to)s "
    "AND (%(kind)s::text IS NULL OR change LIKE '%%' || %(kind)s || '%%')"
)
CHANGE_COUNTS = (
    f"SELECT change, count(*) AS n FROM platform.feature_changes WHERE {_CHANGED} "  # noqa: S608 - constant text
    "GROUP BY change"
)
"""How many changes of each kind the editions after ``from`` up to ``to`` made."""
CHANGES = (
    f"SELECT edition, key, change, fields FROM platform.feature_changes WHERE {_CHANGED} "  # noqa: S608 - constant text
    "ORDER BY edition, key LIMIT %(limit)s OFFSET %(offset)s"
)
"""A page of those changes, by edition and key."""
