"""Write a checked layer into PostGIS in one transaction: stage, diff, swap, register.

The rows go into a staging table with binary COPY (the source WKB with an SRID added,
not re-encoded), then indexes, then the diff against the current edition, then the
staging table takes the layer's name, and the catalog, edition and audit rows are
written, all before the single commit. Readers see the old edition until that commit;
a failure anywhere rolls all of it back.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from psycopg import Cursor, sql
from psycopg.types.json import Jsonb
from pyproj import Transformer
from sqlalchemy import Connection

from spatial.catalog import CollectionRecord, upsert_collection
from spatial.errors import InvalidInputError
from spatial.ingest import history
from spatial.ingest.read import COPY_TYPES, Table
from spatial.models import LAYERS

_SRID_FLAG = 0x20000000
_Z_FLAG = 0x80000000
_M_FLAG = 0x40000000
_MULTI_CODE = {1: 4, 2: 5, 3: 6}
_PROGRESS_EVERY = 10_000

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Layer:
    """What to publish: the rows to load, their geometry, and how to describe them."""

    collection_id: str
    table: Table
    rows: npt.NDArray[np.int64]
    """Source rows to load, in order."""
    column_type: str
    srid: int
    multi: bool
    geoms: npt.NDArray[np.object_]
    """Shapely geometries (used for repaired rows and the extent)."""
    repaired: frozenset[int]
    key: str | None
    """The key's column name."""
    record: CollectionRecord
    """Catalog description (feature count, version and footprint are filled in here)."""


@dataclass(frozen=True)
class Published:
    """What the transaction wrote."""

    record: CollectionRecord
    edition: int
    diff: history.Diff | None


def publish(
    conn: Connection,
    layer: Layer,
    *,
    job_id: str,
    actor: str,
    valid_from: dt.datetime,
    quarantine: Sequence[tuple[int, list[dict[str, str]]]] = (),
    on_progress: Progress | None = None,
) -> Published:
    """Load ``layer`` and make it the collection's current edition.

    Args:
        conn: an open SQLAlchemy connection inside a transaction the caller commits.
        layer: the checked layer.
        job_id: the ingest job (recorded with the edition and the quarantine).
        actor: who ingests (for the audit log).
        valid_from: when the new edition becomes valid.
        quarantine: (row, reasons) of features kept aside instead of loaded.
        on_progress: called with (stage, fraction of the stage done).
    """
    raw = conn.connection.driver_connection
    if raw is None:  # pragma: no cover - a live SQLAlchemy connection always has one
        msg = "no database connection"
        raise RuntimeError(msg)
    cid = layer.collection_id
    stage = f"_stage_{job_id.replace('-', '')[:20]}"
    columns = [f.column for f in layer.table.fields]
    with raw.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('spatial.ingest'), hashtext(%s))", (cid,)
        )
        previous = history.previous_edition(cur, cid)
        history.check_valid_from(previous, valid_from)
        edition = 1 if previous is None else previous[0] + 1
        _create_stage(cur, layer, stage)
        _copy(cur, layer, stage, on_progress)
        if quarantine:
            _quarantine(cur, layer, job_id, quarantine)
        _index(cur, layer, stage)
        old_columns = _existing_columns(cur, cid)
        record = upsert_collection(
            conn,
            _describe(layer, edition),
            footprint_wkt=_footprint(layer),
        )
        cur.execute(
            "INSERT INTO platform.editions (collection_id, edition, valid_from, job_id, actor, "
            "source, checksum, key, feature_count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                cid,
                edition,
                valid_from,
                job_id,
                actor,
                layer.record.properties.get("source"),
                layer.record.properties.get("checksum"),
                layer.key,
                len(layer.rows),
            ),
        )
        diff = None
        if old_columns is not None:
            if on_progress:
                on_progress("comparing with the previous edition", 0.0)
            same_key = layer.key is not None and layer.key in old_columns
            diff = history.diff_and_archive(
                cur,
                collection_id=cid,
                stage=stage,
                new_columns=columns,
                old_columns=old_columns,
                key=layer.key if same_key else None,
                edition=edition,
                valid_from=valid_from,
            )
            cur.execute(
                "UPDATE platform.editions SET counts = %s "
                "WHERE collection_id = %s AND edition = %s",
                (Jsonb(diff.as_dict()), cid, edition),
            )
        _swap(cur, cid, stage)
        cur.execute(
            "INSERT INTO platform.audit_log (actor, action, collection_id, feature_ids, "
            "version_before, version_after, details) VALUES (%s, 'ingest', %s, %s, %s, %s, %s)",
            (
                actor,
                cid,
                list(diff.keys) if diff else None,
                record.version - 1 if record.version > 1 else None,
                record.version,
                Jsonb(
                    {
                        "job_id": job_id,
                        "edition": edition,
                        "source": layer.record.properties.get("source"),
                        "feature_count": len(layer.rows),
                        "quarantined": len(quarantine),
                        "diff": diff.as_dict() if diff else None,
                    }
                ),
            ),
        )
    return Published(record=record, edition=edition, diff=diff)


def _create_stage(cur: Cursor[Any], layer: Layer, stage: str) -> None:
    cols = [
        sql.SQL("{} {}").format(sql.Identifier(f.column), sql.SQL(f.pgtype))
        for f in layer.table.fields
    ]
    cur.execute(
        sql.SQL("CREATE TABLE {} (fid bigint NOT NULL, {} geom geometry({}, {}) NOT NULL)").format(
            sql.Identifier(LAYERS, stage),
            sql.SQL("").join(sql.SQL("{}, ").format(c) for c in cols),
            sql.SQL(layer.column_type),
            sql.Literal(layer.srid),
        )
    )


def _copy(cur: Cursor[Any], layer: Layer, stage: str, on_progress: Progress | None) -> None:
    fields = layer.table.fields
    names = sql.SQL(", ").join(sql.Identifier(f.column) for f in fields)
    sep = sql.SQL(", ") if fields else sql.SQL("")
    statement = sql.SQL("COPY {} (fid, {}{}geom) FROM STDIN (FORMAT binary)").format(
        sql.Identifier(LAYERS, stage), names, sep
    )
    total = len(layer.rows)
    rows = layer.rows.tolist()
    wkb = layer.table.wkb
    geoms = [
        _ewkb(
            shapely.to_wkb(layer.geoms[row], flavor="iso") if row in layer.repaired else wkb[row],
            layer.srid,
            layer.multi,
        )
        for row in rows
    ]
    everything = len(rows) == len(wkb)
    columns = [f.values if everything else [f.values[r] for r in rows] for f in fields]
    fids = [r + 1 for r in rows]
    with cur.copy(statement) as copy:
        copy.set_types(["int8", *(COPY_TYPES[f.pgtype] for f in fields), "bytea"])
        for done, values in enumerate(zip(fids, *columns, geoms, strict=True)):
            copy.write_row(values)
            if on_progress and done % _PROGRESS_EVERY == 0:
                on_progress("loading", done / total)
    if on_progress:
        on_progress("loading", 1.0)


def _ewkb(wkb: bytes, srid: int, multi: bool) -> bytes:
    """PostGIS extended WKB: GDAL's ISO WKB with the SRID added (wrapped in a multi if asked).

    The coordinates are not touched: this only rewrites the 5-byte header.
    """
    fmt = "<I" if wkb[0] == 1 else ">I"
    code = struct.unpack_from(fmt, wkb, 1)[0]
    base, dims = code % 1000, code // 1000
    flags = (_Z_FLAG if dims in {1, 3} else 0) | (_M_FLAG if dims in {2, 3} else 0)
    if multi and base in _MULTI_CODE:
        header = wkb[:1] + struct.pack(fmt, _MULTI_CODE[base] | flags | _SRID_FLAG)
        return header + struct.pack(fmt, srid) + struct.pack(fmt, 1) + wkb
    return wkb[:1] + struct.pack(fmt, base | flags | _SRID_FLAG) + struct.pack(fmt, srid) + wkb[5:]


def _quarantine(
    cur: Cursor[Any], layer: Layer, job_id: str, rows: Sequence[tuple[int, list[dict[str, str]]]]
) -> None:
    key_field = next((f for f in layer.table.fields if f.column == layer.key), None)
    finite = {
        row
        for row, reasons in rows
        if not any(r["kind"] in {"non_finite", "unreadable_geometry"} for r in reasons)
    }
    cur.executemany(
        "INSERT INTO platform.quarantine (job_id, collection_id, source_fid, key, reasons, "
        "properties, geom) VALUES (%s, %s, %s, %s, %s, %s, "
        "ST_SetSRID(ST_GeomFromWKB(%s), %s))",
        [
            (
                job_id,
                layer.collection_id,
                int(layer.table.fids[row]),
                None
                if key_field is None or key_field.values[row] is None
                else str(key_field.values[row]),
                Jsonb(reasons),
                Jsonb({f.column: _jsonable(f.values[row]) for f in layer.table.fields}),
                layer.table.wkb[row] if row in finite else None,
                layer.srid,
            )
            for row, reasons in rows
        ],
    )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return json.loads(json.dumps(value, default=str))


def _index(cur: Cursor[Any], layer: Layer, stage: str) -> None:
    table = sql.Identifier(LAYERS, stage)
    cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (fid)").format(table))
    cur.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(table))
    if layer.key is not None:
        cur.execute(
            sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(table, sql.Identifier(layer.key))
        )
    cur.execute(sql.SQL("ANALYZE {}").format(table))


def _existing_columns(cur: Cursor[Any], collection_id: str) -> list[str] | None:
    """The attribute columns of the current layer table, or None if there is none."""
    rows = cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (f'{LAYERS}."{collection_id}"',),
    ).fetchall()
    if not rows:
        return None
    return [r[0] for r in rows if r[0] not in {"fid", "geom"}]


def _swap(cur: Cursor[Any], collection_id: str, stage: str) -> None:
    """Drop the old table, give the staging table (and its indexes) the layer's names."""
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(LAYERS, collection_id)))
    cur.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            sql.Identifier(LAYERS, stage), sql.Identifier(collection_id)
        )
    )
    indexes = cur.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = to_regclass(%s)",
        (f'{LAYERS}."{collection_id}"',),
    ).fetchall()
    for name, definition in indexes:
        suffix = (
            "pkey" if "(fid)" in definition else ("geom_idx" if "gist" in definition else "key_idx")
        )
        cur.execute(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(LAYERS, name.split(".")[-1].strip('"')),
                sql.Identifier(f"{collection_id[:50]}_{suffix}"),
            )
        )


def _footprint(layer: Layer) -> str | None:
    """The data's extent in lon/lat as WKT (the envelope of the densified transformed box)."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(layer.geoms[layer.rows])
    if not np.isfinite([xmin, ymin, xmax, ymax]).all():
        return None
    if layer.srid not in {4326, 4490}:
        transformer = Transformer.from_crs(layer.srid, 4326, always_xy=True)
        xmin, ymin, xmax, ymax = transformer.transform_bounds(
            xmin, ymin, xmax, ymax, densify_pts=21
        )
    if xmin == xmax or ymin == ymax:
        pad = 1e-6
        xmin, ymin, xmax, ymax = xmin - pad, ymin - pad, xmax + pad, ymax + pad
    return str(shapely.box(xmin, ymin, xmax, ymax).wkt)


def _describe(layer: Layer, edition: int) -> CollectionRecord:
    props = dict(layer.record.properties)
    props.update(
        {
            "fields": {f.column: f.pgtype for f in layer.table.fields},
            "source_fields": {f.column: f.source for f in layer.table.fields},
            "geometry_type": layer.column_type,
            "key": layer.key,
            "edition": edition,
        }
    )
    r = layer.record
    return CollectionRecord(
        id=r.id,
        title=r.title,
        kind="vector",
        description=r.description,
        subsystems=r.subsystems,
        keywords=r.keywords,
        storage_schema=LAYERS,
        storage_table=r.id,
        crs=f"EPSG:{layer.srid}",
        srid=layer.srid,
        owner_department=r.owner_department,
        is_public=r.is_public,
        feature_count=len(layer.rows),
        properties=props,
    )


def check_collection_id(collection_id: str) -> None:
    """Raises InvalidInputError unless the id is a safe table name."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", collection_id):
        msg = (
            f"collection id {collection_id!r} must be lower-case letters, digits and "
            "underscores, starting with a letter, at most 63 characters"
        )
        raise InvalidInputError(msg)
