"""Load a vector file into a ``layers`` table and register it in the catalog.

The file is read through GDAL (pyogrio), written into a staging table with COPY, and
swapped in under its final name in the same transaction that updates the catalog, so
readers see the old layer or the new one, never half of either. Geometry is kept in the
source CRS, coordinates untouched (polygons and lines are promoted to their multi type).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from psycopg import sql
from pyproj import CRS
from shapely import to_wkb
from shapely.geometry import MultiLineString, MultiPolygon
from sqlalchemy import Connection

from spatial.catalog import CollectionRecord, upsert_collection
from spatial.errors import InvalidInputError
from spatial.models import LAYERS

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PG_TYPES = {
    "b": "boolean",
    "i": "bigint",
    "u": "bigint",
    "f": "double precision",
    "M": "timestamp",
    "O": "text",
}
_MULTI = {
    "Polygon": "MultiPolygon",
    "LineString": "MultiLineString",
    "Point": "Point",
    "MultiPolygon": "MultiPolygon",
    "MultiLineString": "MultiLineString",
    "MultiPoint": "MultiPoint",
}
_COPY_BATCH = 5000


@dataclass(frozen=True)
class VectorSource:
    """What to load and how to describe it in the catalog."""

    path: Path
    collection_id: str
    title: str
    subsystems: tuple[str, ...] = ()
    layer: str | None = None
    crs: str | None = None
    encoding: str | None = None
    description: str | None = None
    key: str | None = None
    checksum: str | None = None
    """sha256 of the source file, kept in the catalog so an unchanged file is not reloaded."""


def read_source(source: VectorSource) -> gpd.GeoDataFrame:
    """Read the file with GDAL, decoding attributes with the declared or detected encoding.

    Raises:
        InvalidInputError: unreadable file, no geometry, or no CRS and none given.
    """
    if not _ID_RE.match(source.collection_id):
        msg = (
            f"collection id {source.collection_id!r} must be lower-case letters, digits and "
            "underscores, starting with a letter, at most 63 characters"
        )
        raise InvalidInputError(msg)
    path = str(source.path)
    if path.lower().endswith(".zip") and not path.startswith("/vsizip/"):
        path = "/vsizip/" + str(Path(path).resolve())
    kwargs: dict[str, Any] = {"layer": source.layer}
    if path.lower().endswith(".csv"):
        # Point CSVs: coordinates in lon/lat columns (a WKT column is detected by GDAL).
        kwargs.update(
            X_POSSIBLE_NAMES="lon,longitude,x",
            Y_POSSIBLE_NAMES="lat,latitude,y",
            KEEP_GEOM_COLUMNS="NO",
        )
    if source.encoding:
        kwargs["encoding"] = source.encoding
    try:
        frame = pyogrio.read_dataframe(path, **kwargs)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        msg = f"cannot read {source.path}: {exc}"
        raise InvalidInputError(msg) from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.isna().all():
        msg = f"{source.path} has no geometry"
        raise InvalidInputError(msg)
    if source.crs:
        frame = frame.set_crs(source.crs, allow_override=True)
    if frame.crs is None:
        msg = f"{source.path} declares no coordinate reference system; give one with --crs"
        raise InvalidInputError(msg)
    return frame


def load_vector(
    conn: Connection, source: VectorSource, on_progress: Callable[[int, int], None] | None = None
) -> CollectionRecord:
    """Load ``source`` into ``layers.<collection_id>`` and register it.

    Args:
        conn: an open SQLAlchemy connection in a transaction the caller commits.
        source: the file and its catalog description.
        on_progress: called with (rows written, total rows).

    Returns:
        The catalog entry as stored (version incremented on re-load).
    """
    frame = read_source(source)
    srid = _srid(frame.crs)
    geom_type = _geometry_type(frame)
    columns = _columns(frame)
    raw = conn.connection.driver_connection
    if raw is None:  # pragma: no cover - a live SQLAlchemy connection always has one
        msg = "no database connection"
        raise RuntimeError(msg)
    stage = f"_stage_{source.collection_id}"[:63]
    table = sql.Identifier(LAYERS, source.collection_id)
    staging = sql.Identifier(LAYERS, stage)
    col_defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pgtype)) for name, pgtype in columns
    )
    with raw.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {}, "
                "geom geometry({}, {}))"
            ).format(staging, col_defs, sql.SQL(geom_type), sql.Literal(srid))
        )
        _copy_rows(
            cur,
            staging,
            frame,
            columns=columns,
            geom_type=geom_type,
            srid=srid,
            on_progress=on_progress,
        )
        cur.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(staging))
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        cur.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                staging, sql.Identifier(source.collection_id)
            )
        )
        cur.execute(sql.SQL("ANALYZE {}").format(table))
        row = cur.execute(
            sql.SQL(
                "SELECT ST_AsText(ST_Transform(ST_SetSRID(ST_Extent(geom)::geometry, {}), 4326)) "
                "FROM {}"
            ).format(sql.Literal(srid), table)
        ).fetchone()
    footprint = row[0] if row else None
    record = CollectionRecord(
        id=source.collection_id,
        title=source.title,
        kind="vector",
        description=source.description,
        subsystems=source.subsystems,
        storage_schema=LAYERS,
        storage_table=source.collection_id,
        crs=f"EPSG:{srid}",
        srid=srid,
        feature_count=len(frame),
        properties={
            "fields": dict(columns),
            "geometry_type": geom_type,
            "source": Path(source.path).name,
            "key": source.key,
            "checksum": source.checksum,
        },
    )
    return upsert_collection(conn, record, footprint_wkt=footprint)


def _srid(crs: CRS) -> int:
    epsg = CRS.from_user_input(crs).to_epsg(min_confidence=70)
    if epsg is None:
        msg = f"the file's CRS is not an EPSG system: {CRS.from_user_input(crs).name}"
        raise InvalidInputError(msg)
    return int(epsg)


def _geometry_type(frame: gpd.GeoDataFrame) -> str:
    kinds = set(frame.geometry.dropna().geom_type)
    promoted = {_MULTI.get(kind, "Geometry") for kind in kinds}
    return promoted.pop() if len(promoted) == 1 else "Geometry"


def _columns(frame: gpd.GeoDataFrame) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in frame.columns:
        if name == frame.geometry.name:
            continue
        col = re.sub(r"[^0-9a-z_]", "_", str(name).lower()) or "field"
        if col[0].isdigit() or col in {"fid", "geom"}:
            col = f"f_{col}"
        while col in seen:
            col += "_"
        seen.add(col)
        dtype = frame[name].dtype
        pgtype = _PG_TYPES.get(dtype.kind, "text")
        out.append((col, pgtype))
    return out


def _copy_rows(
    cur: Any,
    staging: sql.Identifier,
    frame: gpd.GeoDataFrame,
    *,
    columns: list[tuple[str, str]],
    geom_type: str,
    srid: int,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    geoms = np.asarray(frame.geometry.array)
    if geom_type.startswith("Multi"):
        geoms = np.array([_to_multi(g) for g in geoms], dtype=object)
    wkb = to_wkb(shapely.set_srid(geoms, srid), hex=True, include_srid=True)
    attrs = frame.drop(columns=frame.geometry.name)
    attrs = attrs.astype(object).where(attrs.notna(), None)
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    copy = sql.SQL("COPY {} ({}, geom) FROM STDIN").format(staging, names)
    total = len(frame)
    with cur.copy(copy) as out:
        for i, (values, geom) in enumerate(zip(attrs.itertuples(index=False), wkb, strict=True)):
            out.write_row((*values, geom))
            if on_progress and (i + 1) % _COPY_BATCH == 0:
                on_progress(i + 1, total)
    if on_progress:
        on_progress(total, total)


def _to_multi(geom: Any) -> Any:
    if geom is None:
        return None
    if geom.geom_type == "Polygon":
        return MultiPolygon([geom])
    if geom.geom_type == "LineString":
        return MultiLineString([geom])
    return geom
