"""What a flood extent covers, counted in PostGIS: the features of the configured layers
inside it (with the district each lies in), and the people living there by district.

The extent is bound as WKB in the DEM's CRS (CRS84 when it has no EPSG code) and
transformed to each layer's CRS in the statement; every layer is read through
:func:`spatial.features.source`, so the caller's row restriction applies. A building
counts whole when its footprint meets the extent (its residents are not shared out by the
flooded share of its footprint: the people of a building whose ground floor is under
water are affected); it and each listed feature lie in the district that holds a point on
its surface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pyproj import CRS

from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import LayerSchema, source
from spatial.flood.config import Affected, Districts, Population

MAX_LISTED = 200
"""Features listed per layer (the count and total are of all of them)."""
NUMBERS = {"smallint", "integer", "bigint", "real", "double precision", "numeric"}

Lookup = Callable[[str], LayerSchema]


@dataclass(frozen=True)
class Shape:
    """The extent for SQL: WKB and its CRS (the DEM's EPSG code, or 4326)."""

    wkb: bytes
    srid: int

    @property
    def params(self) -> dict[str, Any]:
        """The statement's values."""
        return {"wkb": self.wkb, "srid": self.srid}


def optional(lookup: Lookup, collection: str) -> LayerSchema | None:
    """A vector layer the caller may read, or None (missing, unreadable, not vector)."""
    try:
        return lookup(collection)
    except (NotFoundError, InvalidInputError):
        return None


def _projected(layer: LayerSchema) -> bool:
    return not CRS.from_epsg(layer.srid).is_geographic


def _measure(layer: LayerSchema, measure: str | None) -> sql.Composable:
    """The measure of a feature ``t`` inside the extent: summed over the extent's pieces
    (:func:`_hits`), each small, where one intersection with the whole extent would walk
    its thousands of vertices for every feature."""
    if measure is None:
        return sql.SQL("NULL::float8")
    cut = "ST_Intersection(t.geom, pc.g)"
    fn = "ST_Area" if measure == "area_m2" else "ST_Length"
    one = f"{fn}({cut})" if _projected(layer) else f"{fn}(ST_Transform({cut}, 4326)::geography)"
    return sql.SQL(f"(SELECT sum({one}) FROM pieces pc WHERE pc.g && t.geom)")  # noqa: S608 - constants


SHRINK = {True: 0.005, False: 5e-8}
"""How far inside the extent a feature must reach to be in it, in the layer's CRS units
(projected: metres; geographic: degrees): a parcel whose edge runs along the water's is
dry, and the extent's edge, come through a transformation, is not exactly the parcel's."""


def _hits(layer: LayerSchema) -> sql.Composable:
    """The CTEs ``pieces`` (the extent in the layer's CRS, subdivided) and ``hits`` (the
    features reaching inside it), found by the layer's spatial index."""
    return sql.SQL(
        "x AS (SELECT ST_Transform(ST_GeomFromWKB(%(wkb)s, %(srid)s), {srid}) AS g), "
        "pieces AS MATERIALIZED (SELECT ST_Subdivide(x.g, 128) AS g FROM x), "
        "inner_pieces AS MATERIALIZED (SELECT ST_Subdivide(ST_Buffer(x.g, -{eps}), 128) AS g "
        "FROM x), "
        "hits AS MATERIALIZED (SELECT DISTINCT t.fid FROM inner_pieces i "
        "JOIN {table} t ON ST_Intersects(t.geom, i.g))"
    ).format(srid=sql.Literal(layer.srid), eps=sql.Literal(SHRINK[_projected(layer)]),
             table=source(layer))  # fmt: skip


def _column(layer: LayerSchema, name: str | None) -> sql.Composable:
    """A feature's name or key as text: the column when the layer has it, else its number."""
    if name is not None and name in layer.fields:
        return sql.SQL("t.{}::text").format(sql.Identifier(name))
    return sql.SQL("t.fid::text")


def _district(districts: tuple[LayerSchema, Districts] | None, point: str) -> sql.Composable:
    """The key of the district holding ``point`` (an SQL expression), or NULL."""
    if districts is None:
        return sql.SQL("NULL::text")
    layer, conf = districts
    return sql.SQL(
        "(SELECT z.{key}::text FROM {zones} z WHERE ST_Intersects(z.geom, "
        "ST_Transform({point}, {srid})) ORDER BY z.fid LIMIT 1)"
    ).format(key=sql.Identifier(conf.key), zones=source(layer), point=sql.SQL(point),
             srid=sql.Literal(layer.srid))  # fmt: skip


async def listed(
    conn: psycopg.AsyncConnection[Any], layer: LayerSchema, entry: Affected, wkb: Shape,
    districts: tuple[LayerSchema, Districts] | None,
) -> dict[str, Any]:  # fmt: skip
    """The features of ``layer`` meeting the extent: how many, the measure inside it in
    total, and the first :data:`MAX_LISTED` (largest measure first) with their district."""
    statement = sql.SQL(
        "WITH {hits}, "
        "hit AS (SELECT t.fid, {id} AS id, {label} AS label, {measure} AS measure, "
        "ST_PointOnSurface(t.geom) AS p FROM {table} t JOIN hits USING (fid)), "
        "n AS (SELECT count(*) AS count, sum(measure) AS total FROM hit) "
        "SELECT n.count, n.total, h.id, h.label, h.measure, {district} AS district "
        "FROM n LEFT JOIN LATERAL (SELECT * FROM hit ORDER BY measure DESC NULLS LAST, fid "
        "LIMIT %(limit)s) h ON true"
    ).format(
        hits=_hits(layer), id=_column(layer, layer.key),
        label=_column(layer, entry.label or layer.key), measure=_measure(layer, entry.measure),
        table=source(layer), district=_district(districts, "h.p"),
    )  # fmt: skip
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, {**wkb.params, "limit": MAX_LISTED})
        rows = await cur.fetchall()
    count = int(rows[0]["count"]) if rows else 0
    total = rows[0]["total"] if rows else None
    features = [
        {"id": r["id"], "label": r["label"], "district": r["district"],
         "measure": None if r["measure"] is None else round(float(r["measure"]), 2)}
        for r in rows if r["id"] is not None
    ]  # fmt: skip
    return {
        "collection": layer.id,
        "title": entry.title,
        "count": count,
        "measure": entry.measure,
        "total": None if entry.measure is None else round(float(total or 0.0), 2),
        "features": features,
        "truncated": count > len(features),
    }


async def population(
    conn: psycopg.AsyncConnection[Any], lookup: Lookup, conf: Population | None,
    districts: tuple[LayerSchema, Districts] | None, wkb: Shape,
) -> dict[str, Any]:  # fmt: skip
    """The residents of the buildings meeting the extent, in total and by district (the
    district's code and name); none when the layer is missing, unreadable or has no such
    number."""
    empty: dict[str, Any] = {"total": 0, "by_district": []}
    layer = optional(lookup, conf.collection) if conf is not None else None
    if conf is None or layer is None or layer.fields.get(conf.field) not in NUMBERS:
        return empty
    named: sql.Composable = sql.SQL("NULL::text")
    if districts is not None:
        zones, dconf = districts
        name = _column(zones, dconf.name)
        named = sql.SQL(
            "(SELECT {name} FROM {zones} t WHERE t.{key}::text = d.code ORDER BY t.fid LIMIT 1)"
        ).format(name=name, zones=source(zones), key=sql.Identifier(dconf.key))
    statement = sql.SQL(
        "WITH {hits}, "
        "hit AS (SELECT t.{field} AS n, ST_PointOnSurface(t.geom) AS p FROM {table} t "
        "JOIN hits USING (fid) WHERE t.{field} IS NOT NULL), "
        "d AS (SELECT {district} AS code, sum(n) AS people FROM hit GROUP BY 1) "
        "SELECT d.code, {named} AS name, d.people FROM d ORDER BY d.people DESC, d.code"
    ).format(
        hits=_hits(layer), field=sql.Identifier(conf.field), table=source(layer),
        district=_district(districts, "hit.p"), named=named,
    )  # fmt: skip
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, wkb.params)
        rows = await cur.fetchall()
    return {
        "total": int(sum(round(float(r["people"] or 0)) for r in rows)),
        "by_district": [
            {"district": r["code"], "name": r["name"], "population": round(float(r["people"]))}
            for r in rows if r["code"] is not None
        ],
    }  # fmt: skip
