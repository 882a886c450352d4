"""The catalog repository: read and write ``platform.collections``.

Functions take an open SQLAlchemy connection and plain values; the caller owns the
transaction, so registering a collection commits together with the data it describes.
The statements are plain SQL with bound values, not built from
:class:`spatial.models.Collection` as the accounts' are: the vector ingest imports this
module and its whole process is timed against ogr2ogr, and the models (the ORM and
geoalchemy2) would add 0.22 s to every load (measured 2026-12-07: ``spatial.models``
imported after a ``spatial ingest vector`` process's own imports, median of 9 runs on the
shared 2-core machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ARRAY, Connection, Text, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from spatial import changes
from spatial.errors import NotFoundError

LAYERS = "layers"
"""The schema of vector layer tables."""


class Kind(StrEnum):
    """What a collection holds; each kind has its class in :mod:`layers.collections`."""

    VECTOR = "vector"
    """A vector layer: a table of ``layers`` with typed columns and a geometry."""
    RASTER = "raster"
    """Imagery: scenes (``rs.items``) with their COGs in the raster store."""
    GPS = "gps"
    """A read-only view of the GPS schema (latest positions, tracks, stops...)."""


@dataclass(frozen=True)
class CollectionRecord:
    """One catalog entry as plain values."""

    id: str
    title: str
    kind: Kind
    description: str | None = None
    subsystems: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    storage_schema: str | None = None
    storage_table: str | None = None
    storage_path: str | None = None
    crs: str | None = None
    srid: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    """lon/lat bounds of the data (CRS84 order), from the stored footprint."""
    temporal_start: datetime | None = None
    temporal_end: datetime | None = None
    owner_department: str | None = None
    is_public: bool = False
    version: int = 1
    feature_count: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


_COLUMNS = (
    "id",
    "title",
    "kind",
    "description",
    "subsystems",
    "keywords",
    "storage_schema",
    "storage_table",
    "storage_path",
    "crs",
    "srid",
    "temporal_start",
    "temporal_end",
    "owner_department",
    "is_public",
    "version",
    "feature_count",
    "properties",
    "updated_at",
)


_SELECT = (
    f"SELECT {', '.join(_COLUMNS)}, "  # noqa: S608 - constant column names, no user input
    "ST_XMin(footprint), ST_YMin(footprint), ST_XMax(footprint), ST_YMax(footprint) "
    "FROM platform.collections"
)
_WRITTEN = tuple(name for name in _COLUMNS if name not in {"version", "updated_at"})
_UPSERT = text(
    f"INSERT INTO platform.collections ({', '.join(_WRITTEN)}, footprint) "  # noqa: S608
    f"VALUES ({', '.join(':' + name for name in _WRITTEN)}, "
    "ST_Multi(ST_CollectionExtract(ST_GeomFromText(:footprint, 4326), 3))) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in (*_WRITTEN[1:], "footprint"))
    + ", version = platform.collections.version + 1, updated_at = now()"
).bindparams(
    bindparam("subsystems", type_=ARRAY(Text)),
    bindparam("keywords", type_=ARRAY(Text)),
    bindparam("properties", type_=JSONB),
)


def _record(row: Sequence[Any]) -> CollectionRecord:
    values = dict(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True))
    box = row[len(_COLUMNS) :]
    values["kind"] = Kind(values["kind"])
    values["subsystems"] = tuple(values["subsystems"] or ())
    values["keywords"] = tuple(values["keywords"] or ())
    bbox = None if box[0] is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    return CollectionRecord(**values, bbox=bbox)


def list_collections(conn: Connection) -> list[CollectionRecord]:
    """Every catalog entry, ordered by id."""
    rows = conn.execute(text(f"{_SELECT} ORDER BY id")).all()
    return [_record(row) for row in rows]


def get_collection(conn: Connection, collection_id: str) -> CollectionRecord:
    """One catalog entry.

    Raises:
        NotFoundError: no collection has that id.
    """
    row = conn.execute(text(f"{_SELECT} WHERE id = :id"), {"id": collection_id}).first()
    if row is None:
        msg = f"collection {collection_id!r} does not exist"
        raise NotFoundError(msg)
    return _record(row)


def upsert_collection(
    conn: Connection, record: CollectionRecord, footprint_wkt: str | None = None
) -> CollectionRecord:
    """Insert or replace a catalog entry; a replaced entry's version goes up by one.

    Args:
        conn: an open connection; the caller commits.
        record: the entry (its ``version`` and ``bbox`` are ignored).
        footprint_wkt: the data's extent as lon/lat WKT (any polygonal geometry).
    """
    values: dict[str, Any] = {name: getattr(record, name) for name in _WRITTEN}
    values["subsystems"] = list(record.subsystems)
    values["keywords"] = list(record.keywords)
    values["footprint"] = footprint_wkt
    conn.execute(_UPSERT, values)
    return get_collection(conn, record.id)


def delete_collection(conn: Connection, collection_id: str) -> None:
    """Remove a catalog entry (its grants go with it).

    Raises:
        NotFoundError: no collection has that id.
    """
    result = conn.execute(
        text("DELETE FROM platform.collections WHERE id = :id"), {"id": collection_id}
    )
    if result.rowcount == 0:
        msg = f"collection {collection_id!r} does not exist"
        raise NotFoundError(msg)
    conn.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": changes.CHANNEL, "payload": changes.everything_payload(collection_id)},
    )
