"""Write a checked layer into PostGIS in one transaction: stage, diff, swap, register.

The rows go into a staging table with binary COPY (the source WKB, not re-encoded),
then indexes, then the diff against the current edition, then the
staging table takes the layer's name, and the catalog, edition and audit rows are
written, all before the single commit. Readers see the old edition until that commit;
a failure anywhere rolls all of it back.

Staging does not wait for validation: :class:`Preload` copies and indexes every row
whose geometry type fits the layer in a background thread (the database works while
the checks run), and :func:`publish` then deletes the rows the checks refused and
rewrites the repaired ones. When the guess was wrong or the preload failed (an
unreadable geometry, a duplicate key), it is rolled back to its savepoint and the
checked rows are staged again the plain way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import shapely
from psycopg import Connection as PgConnection
from psycopg import Cursor, sql
from psycopg.types.json import Jsonb
from psycopg.types.string import BytesBinaryDumper
from pyproj import Transformer
from sqlalchemy import Connection

from spatial import audit, changes
from spatial.audit import Actor
from spatial.catalog import LAYERS, CollectionRecord, Kind, upsert_collection
from spatial.errors import InvalidInputError
from spatial.ingest import history
from spatial.ingest.read import COPY_TYPES, Table

_MULTI_CODE = {1: 4, 2: 5, 3: 6}
_FAMILY_OF_CODE = {1: "Point", 2: "LineString", 3: "Polygon"}
_MULTI_NAME = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}
_DIMS = ("", "Z", "M", "ZM")
_PROGRESS_EVERY = 10_000
RESERVED_IDS = {
    "catalog": "the searchable catalog of all collections",
    "incidents": "the emergency command's incidents (migration 0015)",
}

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
    preloaded: bool
    """True when the background staging was used (False: staged after the checks)."""


class Preload:
    """Stage a read layer in a background thread while the main thread checks it.

    Use as a context manager around the checks and :func:`publish` (which takes the
    result); leaving it early (an error, an interrupt) cancels the work, and the caller's
    rollback removes it.
    """

    def __init__(self, conn: Connection, table: Table, *, srid: int, key: str | None, job_id: str):
        """Get ready to stage (nothing runs before the context is entered).

        Args:
            conn: the SQLAlchemy connection :func:`publish` will use, in its transaction.
            table: the layer as read.
            srid: the layer's SRID.
            key: the key's column name (indexed unique), if any.
            job_id: the ingest job (names the staging table).
        """
        self._raw = _driver(conn)
        self.table = table
        self.srid = srid
        self.key = key
        self.stage = _stage_name(job_id)
        self.rows = np.zeros(0, dtype=np.int64)
        self.column_type = ""
        self.multi = False
        self.error: BaseException | None = None
        self._staged = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._load, name=f"preload-{self.stage}")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._raw.cancel()
            self._thread.join()

    def _load(self) -> None:
        """Guess the layer's geometry type from the WKB headers, then stage those rows."""
        try:
            self.rows, self.column_type, self.multi = _guess_type(self.table.wkb_types)
            if not len(self.rows) or self._stop.is_set():
                return
            with self._raw.cursor() as cur:
                cur.execute("SAVEPOINT spatial_preload")
                self._staged = True
                _create_stage(cur, self.table, self.stage, self.column_type, self.srid)
                _copy(cur, self.table, self.stage, self.rows, multi=self.multi)
                _index(cur, self.stage, self.key)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread by take()
            self.error = exc

    def take(self, layer: Layer) -> bool:
        """Wait for the staging; make it hold exactly ``layer``'s rows, if it can.

        Returns:
            True when the staging table holds the layer; False when it was rolled back
            (the layer must then be staged the plain way).
        """
        if not self._thread.ident:
            return False
        self._thread.join()
        if not self._staged:
            return False
        with self._raw.cursor() as cur:
            fits = (layer.column_type, layer.srid, layer.key) == (
                self.column_type,
                self.srid,
                self.key,
            )
            if self.error is not None or not fits:
                cur.execute("ROLLBACK TO SAVEPOINT spatial_preload")
                return False
            cur.execute("RELEASE SAVEPOINT spatial_preload")
            n = len(layer.table)
            staged, wanted, repaired = (np.zeros(n, dtype=bool) for _ in range(3))
            staged[self.rows] = True
            wanted[layer.rows] = True
            repaired[list(layer.repaired)] = True
            drop = np.flatnonzero(staged & (~wanted | repaired))
            add = np.flatnonzero(wanted & (~staged | repaired))
            if len(drop):
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE fid = ANY(%s)").format(
                        sql.Identifier(LAYERS, self.stage)
                    ),
                    ((drop + 1).tolist(),),
                )
            if len(add):
                _copy(
                    cur,
                    layer.table,
                    self.stage,
                    add,
                    multi=layer.multi,
                    geoms=layer.geoms,
                    repaired=layer.repaired,
                )
        return True


def publish(
    conn: Connection,
    layer: Layer,
    *,
    job_id: str,
    actor: Actor,
    valid_from: dt.datetime,
    quarantine: Sequence[tuple[int, list[dict[str, str]]]] = (),
    preload: Preload | None = None,
    on_progress: Progress | None = None,
) -> Published:
    """Load ``layer`` and make it the collection's current edition.

    Args:
        conn: an open SQLAlchemy connection inside a transaction the caller commits.
        layer: the checked layer.
        job_id: the ingest job (recorded with the edition and the quarantine).
        actor: who ingests (for the editions and the audit log).
        valid_from: when the new edition becomes valid.
        quarantine: (row, reasons) of features kept aside instead of loaded.
        preload: the layer's background staging on ``conn``, if one was started.
        on_progress: called with (stage, fraction of the stage done).
    """
    raw = _driver(conn)
    cid = layer.collection_id
    stage = _stage_name(job_id)
    columns = [f.column for f in layer.table.fields]
    if on_progress:
        on_progress("loading", 0.0)
    staged = preload is not None and preload.take(layer)
    with raw.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('spatial.ingest'), hashtext(%s))", (cid,)
        )
        previous = history.previous_edition(cur, cid)
        history.check_valid_from(previous, valid_from)
        edition = 1 if previous is None else previous[0] + 1
        if not staged:
            _create_stage(cur, layer.table, stage, layer.column_type, layer.srid)
            _copy(
                cur,
                layer.table,
                stage,
                layer.rows,
                multi=layer.multi,
                geoms=layer.geoms,
                repaired=layer.repaired,
                on_progress=on_progress,
            )
            _index(cur, stage, layer.key)
        if on_progress:
            on_progress("loading", 1.0)
        if quarantine:
            _quarantine(cur, layer, job_id, quarantine)
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
                actor.name,
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
        # The tile caches drop what changed (all of a first edition: nothing was cached).
        if diff is not None:
            geoms = sql.SQL("SELECT old_geom AS g FROM _diff UNION ALL SELECT new_geom FROM _diff")
            cur.execute(changes.changed_area(cid, geoms), {"cid": cid})
        else:
            cur.execute(*changes.everything(cid))
        cur.execute(
            audit.INSERT,
            (
                actor.name,
                actor.user_id,
                actor.address,
                "ingest",
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
    return Published(record=record, edition=edition, diff=diff, preloaded=staged)


def _driver(conn: Connection) -> PgConnection[Any]:
    raw = conn.connection.driver_connection
    if raw is None:  # pragma: no cover - a live SQLAlchemy connection always has one
        msg = "no database connection"
        raise RuntimeError(msg)
    return raw  # type: ignore[no-any-return]


def _stage_name(job_id: str) -> str:
    return f"_stage_{job_id.replace('-', '')[:20]}"


def _guess_type(
    code: npt.NDArray[np.uint32],
) -> tuple[npt.NDArray[np.int64], str, bool]:
    """What the checks will most likely decide, from the WKB type codes alone.

    Returns:
        (rows of the most common family and dimensions, their column type, multi); no
        rows when no header is readable.
    """
    base, dims = code % 1000, code // 1000
    family = np.where((base >= 1) & (base <= 6) & (dims <= 3), (base - 1) % 3 + 1, 0)
    if not family.any():
        return np.zeros(0, dtype=np.int64), "", False
    kind = family * 4 + dims  # family and dimensions in one number
    common = int(np.bincount(kind[family > 0]).argmax())
    rows = np.flatnonzero(kind == common)
    name = _FAMILY_OF_CODE[common // 4]
    multi = bool((base[rows] > 3).any())
    return rows, (_MULTI_NAME[name] if multi else name) + _DIMS[common % 4], multi


def _create_stage(cur: Cursor[Any], table: Table, stage: str, column_type: str, srid: int) -> None:
    cols = [
        sql.SQL("{} {}").format(sql.Identifier(f.column), sql.SQL(f.pgtype)) for f in table.fields
    ]
    cur.execute(
        sql.SQL("CREATE TABLE {} (fid bigint NOT NULL, {} geom geometry({}, {}) NOT NULL)").format(
            sql.Identifier(LAYERS, stage),
            sql.SQL("").join(sql.SQL("{}, ").format(c) for c in cols),
            sql.SQL(column_type),
            sql.Literal(srid),
        )
    )


def _copy(
    cur: Cursor[Any],
    table: Table,
    stage: str,
    rows: npt.NDArray[np.int64],
    *,
    multi: bool,
    geoms: npt.NDArray[np.object_] | None = None,
    repaired: frozenset[int] = frozenset(),
    on_progress: Progress | None = None,
) -> None:
    """COPY ``rows`` of ``table`` into the staging table (fid = row + 1).

    Geometries are the source WKB (wrapped in a multi geometry where the column is
    multi), except ``repaired`` rows, which are written from ``geoms``. PostGIS gives
    WKB without an SRID the column's SRID, so the coordinates are sent as GDAL read them.
    """
    fields = table.fields
    names = sql.SQL(", ").join(sql.Identifier(f.column) for f in fields)
    sep = sql.SQL(", ") if fields else sql.SQL("")
    statement = sql.SQL("COPY {} (fid, {}{}geom) FROM STDIN (FORMAT binary)").format(
        sql.Identifier(LAYERS, stage), names, sep
    )
    total = len(rows)
    picked = rows.tolist()
    wkb = table.wkb
    sources = [wkb[r] for r in picked]
    if repaired and geoms is not None:
        sources = [
            shapely.to_wkb(geoms[r], flavor="iso") if r in repaired else w
            for r, w in zip(picked, sources, strict=True)
        ]
    ewkb = _as_multi(sources) if multi else sources
    everything = total == len(wkb)
    columns = [f.values if everything else [f.values[r] for r in picked] for f in fields]
    fids = [r + 1 for r in picked]
    with cur.copy(statement) as copy:
        # bytea through psycopg's C dumper (the default one for the type name is Python).
        cur.adapters.register_dumper(bytes, BytesBinaryDumper)
        copy.set_types(["int8", *(COPY_TYPES[f.pgtype] for f in fields), "bytea"])
        for done, values in enumerate(zip(fids, *columns, ewkb, strict=True)):
            copy.write_row(values)
            if on_progress and done % _PROGRESS_EVERY == 0:
                on_progress("loading", done / total)


def _as_multi(wkb: list[bytes]) -> list[bytes]:
    """Single geometries wrapped in their multi type (a multi geometry of one part).

    Only the header is worked out, once per distinct header (layers have few).
    """
    prefixes: dict[bytes, bytes] = {}
    out = []
    for w in wkb:
        head = w[:5]
        prefix = prefixes.get(head)
        if prefix is None:
            prefix = prefixes[head] = _multi_prefix(head)
        out.append(prefix + w if prefix else w)
    return out


def _multi_prefix(head: bytes) -> bytes:
    """The ISO WKB header of a one-part multi geometry around a geometry with ``head``
    (empty when it is a multi geometry already)."""
    fmt = "<I" if head[0] == 1 else ">I"
    code = struct.unpack_from(fmt, head, 1)[0]
    base, dims = code % 1000, code // 1000
    if base not in _MULTI_CODE:
        return b""
    return head[:1] + struct.pack(fmt, _MULTI_CODE[base] + 1000 * dims) + struct.pack(fmt, 1)


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


def _index(cur: Cursor[Any], stage: str, key: str | None) -> None:
    table = sql.Identifier(LAYERS, stage)
    cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (fid)").format(table))
    cur.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(table))
    if key is not None:
        cur.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(table, sql.Identifier(key)))
    # No ANALYZE: CREATE INDEX records the row and page counts, the GiST index serves
    # spatial queries without column statistics, and autovacuum gathers them within a
    # minute of the swap (the inserts count towards its threshold). Doing it here cost
    # a fifth of a first load's server time.


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
        kind=Kind.VECTOR,
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
    if collection_id in RESERVED_IDS:
        msg = f"collection id {collection_id!r} is reserved ({RESERVED_IDS[collection_id]})"
        raise InvalidInputError(msg)
