"""Feature edits (OGC API - Features Part 4): create, replace, update, delete one feature.

Each edit is one transaction under the collection's lock (the same lock an ingest
takes), and is versioned exactly like an ingest: it becomes a new *edition* of the
collection (source ``api``), the replaced version goes to ``platform.feature_history``
and the change to ``platform.feature_changes``, so ``as_of`` and the changes API see
every version; the catalog entry's version and feature count follow, and the audit log
records who changed which feature.

A feature's ETag is a hash of its stored content (geometry and properties): an edit
that names an ETag (``If-Match``) that is no longer current is refused, and nothing
is written. Only collections marked editable, with a key, can be edited; the key
identifies the feature across versions and cannot be changed by an edit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
import shapely
import shapely.geometry
from psycopg import sql
from psycopg.types.json import Jsonb

from spatial import audit, changes, jsonbody
from spatial.audit import Actor
from spatial.catalog import CollectionRecord
from spatial.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
)
from spatial.features import LayerSchema, Params, ServingCrs, etag_expr, source
from spatial.ingest.history import props_expr

_FAMILY = {
    "Point": "Point",
    "MultiPoint": "Point",
    "LineString": "LineString",
    "MultiLineString": "LineString",
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
}


@dataclass(frozen=True)
class Editable:
    """A collection that may be edited, with what an edit needs to know."""

    layer: LayerSchema
    key: str
    geometry_type: str

    @classmethod
    def of(cls, record: CollectionRecord, layer: LayerSchema | None = None) -> Editable:
        """The collection, if it is an editable vector layer with a key; ``layer``: its
        schema with the rows the editor may write (:meth:`spatial.access.View.writable`).

        Raises:
            InvalidInputError: it is not a vector layer, not marked editable, or has no key.
        """
        layer = layer or LayerSchema.of(record)
        key = record.properties.get("key")
        if not record.properties.get("editable"):
            msg = f"collection {record.id!r} is not editable (ingest it with --editable)"
            raise InvalidInputError(msg)
        if not key:
            msg = f"collection {record.id!r} has no key, so its features cannot be versioned"
            raise InvalidInputError(msg)
        return cls(layer, str(key), str(record.properties.get("geometry_type") or "Geometry"))


@dataclass(frozen=True)
class Edited:
    """The outcome of an edit."""

    fid: int
    etag: str | None
    """The feature's new ETag (None once deleted)."""
    edition: int
    version: int


def parse_feature(body: bytes) -> dict[str, Any]:
    """A GeoJSON Feature from a request body.

    Raises:
        InvalidInputError: not JSON, or not a Feature.
    """
    feature = jsonbody.loads(body, "the body")
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        msg = "the body must be a GeoJSON Feature ({'type': 'Feature', ...})"
        raise InvalidInputError(msg)
    if not isinstance(feature.get("properties") or {}, dict):
        msg = "the feature's properties must be an object"
        raise InvalidInputError(msg)
    return feature


def etag_statement(layer: LayerSchema, fid: int) -> tuple[sql.Composed, Params]:
    """One row with the feature's ETag, or none."""
    params = Params()
    statement = sql.SQL("SELECT {} FROM {} t WHERE t.fid = {}").format(
        etag_expr(layer), sql.Identifier(layer.schema, layer.table), params.bind(fid)
    )
    return statement, params


async def create(
    conn: psycopg.AsyncConnection, target: Editable, feature: dict[str, Any], *,
    crs: ServingCrs, actor: Actor,
) -> Edited:  # fmt: skip
    """Add a feature; it gets the next free id.

    Raises:
        InvalidInputError: a bad geometry or property, or no key value.
        ConflictError: the key is already used.
    """
    props = feature.get("properties") or {}
    if props.get(target.key) in {None, ""}:
        msg = f"the feature needs its key property {target.key!r}"
        raise InvalidInputError(msg)
    async with conn.transaction():
        edition = await _begin(conn, target, actor)
        values = _values(target, props, feature.get("geometry"), crs, full=True)
        table = sql.Identifier(target.layer.schema, target.layer.table)
        params = Params(values.params)
        try:
            cur = await conn.execute(
                sql.SQL(
                    "INSERT INTO {t} (fid, {cols}) SELECT coalesce(max(fid), 0) + 1, {vals} "
                    "FROM {t} RETURNING fid"
                ).format(t=table, cols=values.columns, vals=values.values),
                params,
            )
        except psycopg.errors.UniqueViolation as exc:
            msg = f"{target.key} {props[target.key]!r} is already used by another feature"
            raise ConflictError(msg) from exc
        row = await cur.fetchone()
        fid = int(row[0]) if row else 0
        key = str(props[target.key])
        await _change(conn, target, edition, key, change="added", fields=None)
        return await _finish(conn, target, edition, fid=fid, actor=actor, action="create", key=key)


async def replace(
    conn: psycopg.AsyncConnection, target: Editable, fid: int, feature: dict[str, Any], *,
    crs: ServingCrs, actor: Actor, if_match: str | None, partial: bool = False,
) -> Edited:  # fmt: skip
    """Replace a feature (PUT), or with ``partial`` update what the body names (PATCH).

    Raises:
        NotFoundError: no such feature.
        PreconditionFailedError: ``if_match`` is not its current ETag.
        InvalidInputError: a bad geometry or property, or a changed key.
    """
    props = dict(feature.get("properties") or {})
    async with conn.transaction():
        edition = await _begin(conn, target, actor)
        key, old = await _current(conn, target, fid, if_match)
        if target.key in props and str(props[target.key]) != key:
            msg = f"the key {target.key!r} of a feature cannot change (delete it and create one)"
            raise InvalidInputError(msg)
        props.setdefault(target.key, key)
        geometry = feature.get("geometry", None if not partial else ...)
        values = _values(
            target, props, None if geometry is ... else geometry, crs, full=not partial,
            keep_geometry=geometry is ...,
        )  # fmt: skip
        table = sql.Identifier(target.layer.schema, target.layer.table)
        await conn.execute(
            sql.SQL("UPDATE {} SET ({}) = ROW({}) WHERE fid = {}").format(
                table, values.columns, values.values, sql.Placeholder("fid")
            ),
            {**values.params, "fid": fid},
        )
        await _archive(conn, target, edition, key, old)
        changed = await _changed_fields(conn, target, fid, old)
        kind = ("geometry+attributes" if changed[1] else "geometry") if changed[0] else "attributes"
        await _change(conn, target, edition, key, change=kind, fields=changed[1] or None)
        action = "update" if partial else "replace"
        return await _finish(conn, target, edition, fid=fid, actor=actor, action=action, key=key)


async def delete(
    conn: psycopg.AsyncConnection, target: Editable, fid: int, *, actor: Actor,
    if_match: str | None,
) -> Edited:  # fmt: skip
    """Remove a feature (its last version stays in the history).

    Raises:
        NotFoundError: no such feature.
        PreconditionFailedError: ``if_match`` is not its current ETag.
    """
    async with conn.transaction():
        edition = await _begin(conn, target, actor)
        key, old = await _current(conn, target, fid, if_match)
        table = sql.Identifier(target.layer.schema, target.layer.table)
        await conn.execute(sql.SQL("DELETE FROM {} WHERE fid = %s").format(table), (fid,))
        await _archive(conn, target, edition, key, old)
        await _change(conn, target, edition, key, change="removed", fields=None)
        return await _finish(
            conn, target, edition, fid=fid, actor=actor, action="delete", key=key, deleted=True
        )


@dataclass(frozen=True)
class _Values:
    columns: sql.Composable
    values: sql.Composable
    params: dict[str, Any]


def _values(
    target: Editable, props: dict[str, Any], geometry: Any, crs: ServingCrs, *,
    full: bool, keep_geometry: bool = False,
) -> _Values:  # fmt: skip
    """The columns an edit writes and their bound, typed values.

    With ``full`` every property not given becomes NULL (PUT, POST); otherwise only the
    given ones are written (PATCH).
    """
    layer = target.layer
    unknown = sorted(set(props) - set(layer.fields))
    if unknown:
        layer.column(unknown[0])  # raises with the list of properties
    params = Params()
    columns: list[sql.Composable] = []
    values: list[sql.Composable] = []
    for column, pgtype in layer.fields.items():
        if column not in props and not full:
            continue
        value = props.get(column)
        columns.append(sql.Identifier(column))
        values.append(
            sql.SQL("{}::{}").format(params.bind(_plain(column, pgtype, value)), sql.SQL(pgtype))
        )
    if not keep_geometry:
        columns.append(sql.Identifier("geom"))
        values.append(_geometry(target, geometry, crs, params))
    return _Values(sql.SQL(", ").join(columns), sql.SQL(", ").join(values), dict(params))


def _plain(column: str, pgtype: str, value: Any) -> Any:
    """A JSON value checked against its column type (the database casts it)."""
    if value is None:
        return None
    numeric = pgtype in {"smallint", "integer", "bigint", "real", "double precision"}
    ok = (
        (numeric and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (pgtype == "boolean" and isinstance(value, bool))
        or (pgtype not in {"boolean"} and not numeric and isinstance(value, str))
    )
    if not ok:
        msg = f"property {column!r} is {pgtype}; {json.dumps(value)[:40]} does not fit"
        raise InvalidInputError(msg)
    return str(value) if numeric else value


def _geometry(target: Editable, geometry: Any, crs: ServingCrs, params: Params) -> sql.Composable:
    if geometry is None:
        msg = "the feature needs a geometry"
        raise InvalidInputError(msg)
    try:
        shape = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.ShapelyError) as exc:
        msg = f"the geometry is not valid GeoJSON: {exc}"
        raise InvalidInputError(msg) from exc
    family = _FAMILY.get(target.geometry_type.rstrip("ZM"))
    if family is not None and _FAMILY.get(shape.geom_type) != family:
        msg = f"a {shape.geom_type} does not fit a layer of {target.geometry_type}"
        raise InvalidInputError(msg)
    if shape.is_empty or not shape.is_valid:
        reason = "it is empty" if shape.is_empty else shapely.is_valid_reason(shape)
        msg = f"the geometry is not valid: {reason}"
        raise InvalidInputError(msg)
    if crs.flip:
        shape = shapely.transform(shape, lambda xy: xy[:, ::-1])
    expr: sql.Composable = sql.SQL("ST_GeomFromText({}, {})").format(
        params.bind(shape.wkt), params.bind(crs.srid)
    )
    if crs.srid != target.layer.srid:
        expr = sql.SQL("ST_Transform({}, {})").format(expr, params.bind(target.layer.srid))
    if target.geometry_type.startswith("Multi"):
        expr = sql.SQL("ST_Multi({})").format(expr)
    return expr


async def _begin(conn: psycopg.AsyncConnection, target: Editable, actor: Actor) -> int:
    """Lock the collection (as an ingest does) and open the edit's edition."""
    cid = target.layer.id
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('spatial.ingest'), hashtext(%s))", (cid,)
    )
    cur = await conn.execute(
        "INSERT INTO platform.editions (collection_id, edition, valid_from, actor, source, key, "
        "feature_count) SELECT %(cid)s, coalesce(max(edition), 0) + 1, now(), %(actor)s, 'api', "
        "%(key)s, 0 FROM platform.editions WHERE collection_id = %(cid)s RETURNING edition",
        {"cid": cid, "actor": actor.name, "key": target.key},
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 1


async def _current(
    conn: psycopg.AsyncConnection, target: Editable, fid: int, if_match: str | None
) -> tuple[str, tuple[Any, ...]]:
    """The feature's key and stored version (properties, geometry), locked for the edit."""
    layer = target.layer
    cur = await conn.execute(
        sql.SQL("SELECT {etag}, t.{key}::text, {props}, t.geom FROM {t} t WHERE t.fid = %s "
                "FOR UPDATE").format(
            etag=etag_expr(layer), key=sql.Identifier(target.key),
            props=props_expr("t", list(layer.fields)), t=source(layer),
        ),
        (fid,),
    )  # fmt: skip
    row = await cur.fetchone()
    if row is None:
        msg = f"collection {layer.id!r} has no feature {fid}"
        raise NotFoundError(msg)
    etag, key, props, geom = row
    if if_match is not None and if_match.strip().strip('"') not in {etag, "*"}:
        msg = (
            f"feature {fid} of {layer.id!r} changed since that version (its ETag is now "
            f'"{etag}"); read it again and repeat the edit'
        )
        raise PreconditionFailedError(msg)
    return key, (props, geom)


async def _within(conn: psycopg.AsyncConnection, layer: LayerSchema, fid: int) -> None:
    """Refuse (and so roll back) an edit that leaves the feature outside the rows the
    editor may write."""
    if layer.restriction is None:
        return
    cur = await conn.execute(
        sql.SQL("SELECT 1 FROM {} t WHERE t.fid = %s").format(source(layer)), (fid,)
    )
    if await cur.fetchone() is None:
        msg = f"the edit would put feature {fid} outside the rows of {layer.id!r} you may edit"
        raise ForbiddenError(msg)


async def _grow_footprint(conn: psycopg.AsyncConnection, layer: LayerSchema, fid: int) -> None:
    """Take the feature into the collection's footprint when it lies outside (tiles and
    extents read only inside it)."""
    await conn.execute(
        sql.SQL("""
        UPDATE platform.collections c
        SET footprint = ST_Multi(ST_CollectionExtract(
            ST_Union(coalesce(c.footprint, f.box), f.box), 3))
        FROM (SELECT ST_Expand(ST_Envelope(ST_Transform(t.geom, 4326)), 1e-7) AS box
              FROM {} t WHERE t.fid = %s AND t.geom IS NOT NULL) f
        WHERE c.id = %s AND (c.footprint IS NULL OR NOT ST_Covers(c.footprint, f.box))
        """).format(sql.Identifier(layer.schema, layer.table)),
        (fid, layer.id),
    )


async def _archive(
    conn: psycopg.AsyncConnection, target: Editable, edition: int, key: str, old: tuple[Any, ...]
) -> None:
    """The replaced version into the history, valid from when it became current."""
    cid = target.layer.id
    await conn.execute(
        """
        INSERT INTO platform.feature_history
            (collection_id, key, edition_from, edition_to, valid_from, valid_to, properties, geom)
        SELECT %(cid)s, %(key)s, e.edition, %(edition)s, e.valid_from, now(), %(props)s, %(geom)s
        FROM platform.editions e
        WHERE e.collection_id = %(cid)s AND e.edition = coalesce(
            (SELECT max(fc.edition) FROM platform.feature_changes fc
             WHERE fc.collection_id = %(cid)s AND fc.key = %(key)s AND fc.edition < %(edition)s
               AND fc.change <> 'removed'),
            (SELECT min(edition) FROM platform.editions WHERE collection_id = %(cid)s))
        """,
        {"cid": cid, "key": key, "edition": edition, "props": Jsonb(old[0]),
         "geom": old[1]},
    )  # fmt: skip


async def _changed_fields(
    conn: psycopg.AsyncConnection, target: Editable, fid: int, old: tuple[Any, ...]
) -> tuple[bool, list[str]]:
    """Whether the geometry changed, and which properties did."""
    layer = target.layer
    cur = await conn.execute(
        sql.SQL("SELECT NOT (t.geom = %s::geometry), {} FROM {} t WHERE t.fid = %s").format(
            props_expr("t", list(layer.fields)), sql.Identifier(layer.schema, layer.table)
        ),
        (old[1], fid),
    )
    row = await cur.fetchone()
    if row is None:  # pragma: no cover - the row was just updated under a lock
        return False, []
    new_props: dict[str, Any] = row[1]
    fields = sorted(k for k in set(new_props) | set(old[0]) if new_props.get(k) != old[0].get(k))
    return bool(row[0]), fields


async def _change(
    conn: psycopg.AsyncConnection, target: Editable, edition: int, key: str, *, change: str,
    fields: list[str] | None,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO platform.feature_changes (collection_id, edition, key, change, fields) "
        "VALUES (%s, %s, %s, %s, %s)",
        (target.layer.id, edition, key, change, fields),
    )


async def _finish(
    conn: psycopg.AsyncConnection, target: Editable, edition: int, *, fid: int, actor: Actor,
    action: str, key: str, deleted: bool = False,
) -> Edited:  # fmt: skip
    """The edition row, the catalog entry and the audit record of an edit."""
    layer = target.layer
    delta = {"create": 1, "delete": -1}.get(action, 0)
    cur = await conn.execute(
        "UPDATE platform.collections SET version = version + 1, "
        "feature_count = coalesce(feature_count, 0) + %s, "
        "properties = jsonb_set(properties, '{edition}', to_jsonb(%s::int)), updated_at = now() "
        "WHERE id = %s RETURNING version, feature_count",
        (delta, edition, layer.id),
    )
    row = await cur.fetchone()
    version, count = (int(row[0]), int(row[1])) if row else (0, 0)
    await conn.execute(
        "UPDATE platform.editions SET feature_count = %s, counts = %s "
        "WHERE collection_id = %s AND edition = %s",
        (count, Jsonb({"action": action, "fid": fid, "key": key}), layer.id, edition),
    )
    if not deleted:
        await _within(conn, layer, fid)
        await _grow_footprint(conn, layer, fid)
    await conn.execute(
        audit.INSERT,
        (actor.name, actor.user_id, actor.address, f"feature.{action}", layer.id, [key],
         version - 1, version, Jsonb({"fid": fid, "edition": edition})),
    )  # fmt: skip
    # The tile caches drop what the edit touched: the replaced version and the new one.
    await conn.execute(
        changes.changed_area(
            layer.id,
            sql.SQL(
                "SELECT geom AS g FROM platform.feature_history "
                "WHERE collection_id = %(cid)s AND edition_to = %(edition)s "
                "UNION ALL SELECT t.geom FROM {} t WHERE t.fid = %(fid)s"
            ).format(sql.Identifier(layer.schema, layer.table)),
        ),
        {"cid": layer.id, "edition": edition, "fid": fid},
    )
    etag = None
    if not deleted:
        statement, params = etag_statement(layer, fid)
        cur = await conn.execute(statement, params)
        row = await cur.fetchone()
        etag = str(row[0]) if row else None
    return Edited(fid=fid, etag=etag, edition=edition, version=version)
