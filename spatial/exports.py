"""Features as files: CSV and FlatGeobuf written by PostGIS, GeoPackage by GDAL.

The same query as the GeoJSON items (filters, sorting, paging, CRS), for the formats
desktop tools open directly. CSV comes from ``COPY ... TO STDOUT`` (the statement's
values bound client-side by psycopg, since COPY takes no parameters) with the geometry as
WKT; FlatGeobuf is ``ST_AsFlatGeobuf``; GeoPackage is that FlatGeobuf converted by GDAL
(pyogrio) in a worker thread.
"""

from __future__ import annotations

import asyncio
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

import psycopg
import pyogrio.raw
from psycopg import sql

from spatial import features

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "fgb": "application/flatgeobuf",
    "gpkg": "application/geopackage+sqlite3",
}
"""The file formats and their media types."""


async def export(
    conn: psycopg.AsyncConnection[Any],
    layer: features.LayerSchema,
    q: features.ItemsQuery,
    fmt: str,
) -> bytes:
    """The page of ``q`` as a CSV, FlatGeobuf or GeoPackage file (``fmt`` of :data:`MEDIA`)."""
    statement, params = features.rows_statement(layer, q)
    columns = ["id", *(q.properties if q.properties is not None else layer.fields)]
    if fmt == "csv":
        # COPY takes no parameters: psycopg binds the values into the text client-side.
        text = psycopg.AsyncClientCursor(conn).mogrify(statement, params)
        copy = sql.SQL("COPY (SELECT {}, ST_AsText(p.geom) AS wkt FROM ({}) p) TO STDOUT "
                       "(FORMAT csv, HEADER)").format(
            sql.SQL(", ").join(sql.Identifier("p", c) for c in columns), sql.SQL(text)
        )  # fmt: skip
        chunks = []
        async with conn.cursor() as cur, cur.copy(copy) as out:
            async for chunk in out:
                chunks.append(bytes(chunk))
        return b"".join(chunks)
    # Dates go as ISO text: GDAL cannot read the date fields PostGIS 3.3 writes.
    select = sql.SQL(", ").join(
        sql.SQL("r.{}::text AS {}").format(sql.Identifier(c), sql.Identifier(c))
        if layer.fields.get(c) in {"date", "timestamp"}
        else sql.SQL("r.{}").format(sql.Identifier(c))
        for c in columns
    )
    cur = await conn.execute(
        sql.SQL(
            "SELECT ST_AsFlatGeobuf(p, false, 'geom') FROM (SELECT {}, r.geom FROM ({}) r) p"
        ).format(select, statement),
        params,
    )
    row = await cur.fetchone()
    fgb = bytes(row[0]) if row and row[0] is not None else b""
    if fmt == "fgb":
        return fgb
    return await asyncio.to_thread(geopackage, fgb, layer.id)


def geopackage(fgb: bytes, layer: str) -> bytes:
    """A FlatGeobuf file's features as a GeoPackage of one layer named ``layer``."""
    with tempfile.TemporaryDirectory(prefix="spatial-gpkg-") as folder:
        path = Path(folder) / f"{layer}.gpkg"
        meta, _, geometry, values = pyogrio.raw.read(BytesIO(fgb))
        pyogrio.raw.write(
            path, geometry, values, meta["fields"], driver="GPKG", layer=layer,
            geometry_type=meta["geometry_type"], crs=meta["crs"], encoding="UTF-8",
        )  # fmt: skip
        return path.read_bytes()
