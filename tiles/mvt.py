"""Mapbox Vector Tiles built by PostGIS: one statement per tile, any number of layers.

For each layer the statement selects the features whose stored geometry meets the tile
(the tile's lon/lat box, clipped to the layer's extent, transformed once into the layer's
CRS, so the spatial index is used and no tile transforms a whole table), drops those
smaller than a tile pixel (polygons and lines), simplifies at low zooms, transforms the
rest into the tile matrix set's CRS, and encodes them with ``ST_AsMVTGeom``/``ST_AsMVT``
(extent 4096, buffer 64, the feature id as the MVT id). Layers of a multi-layer tile are
concatenated in SQL. Values are bound; names are quoted identifiers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from spatial.catalog import CollectionRecord
from spatial.features import LayerSchema, Params, geographic
from tiles.tms import TileAddress

EXTENT = 4096
BUFFER = 64
SIMPLIFY_BELOW_ZOOM = 12
"""Below this zoom geometries are simplified to half a tile pixel before encoding."""
_TEXT_TYPES = {"date", "timestamp"}


@dataclass(frozen=True)
class TileLayer:
    """A vector collection as a tile layer."""

    layer: LayerSchema
    bbox: tuple[float, float, float, float] | None
    """The data's lon/lat extent (from the catalog); no tile outside it reads the table."""
    points: bool = False
    """Point layers keep every feature (no minimum size)."""
    properties: tuple[str, ...] | None = None
    """The attributes carried (all when None)."""

    @property
    def name(self) -> str:
        return self.layer.id

    @classmethod
    def of(cls, record: CollectionRecord, properties: tuple[str, ...] | None = None) -> TileLayer:
        """A vector collection's tile layer (``properties``: the attributes carried).

        Raises:
            InvalidInputError: the collection is not a vector layer.
        """
        kind = str(record.properties.get("geometry_type", "")).lower()
        return cls(
            layer=LayerSchema.of(record),
            bbox=record.bbox,
            points="point" in kind,
            properties=properties,
        )


def render(
    conn: psycopg.Connection[Any], layers: Sequence[TileLayer], tile: TileAddress, max_features: int
) -> bytes:
    """A tile's MVT bytes on a synchronous connection (empty: no feature)."""
    statement = tile_statement(layers, tile, max_features)
    if statement is None:
        return b""
    row = conn.execute(*statement).fetchone()
    return bytes(row[0]) if row and row[0] else b""


def tile_statement(
    layers: Sequence[TileLayer], tile: TileAddress, max_features: int
) -> tuple[sql.Composed, Params] | None:
    """One row, one column: the tile's bytes (empty when no feature is in it), or None
    when no layer's extent reaches the tile (an empty tile without a query)."""
    params = Params()
    parts = [_layer_sql(tl, tile, params, max_features) for tl in layers]
    present = [p for p in parts if p is not None]
    if not present:
        return None
    joined = sql.SQL(" || ").join(sql.SQL("coalesce(({}), ''::bytea)").format(p) for p in present)
    return sql.SQL("SELECT {}").format(joined), params


def _layer_sql(
    tl: TileLayer, tile: TileAddress, params: Params, max_features: int
) -> sql.Composable | None:
    layer = tl.layer
    west, south, east, north = tile.lonlat
    margin = (east - west) * BUFFER / EXTENT
    box = (west - margin, south - margin, east + margin, north + margin)
    if tl.bbox is not None:
        lw, ls, le, ln = tl.bbox
        box = (max(box[0], lw), max(box[1], ls), min(box[2], le), min(box[3], ln))
        if box[0] > box[2] or box[1] > box[3]:
            return None
    envelope: sql.Composable = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
        *(params.bind(v) for v in box)
    )
    if layer.srid != 4326:
        step = max(box[2] - box[0], box[3] - box[1]) / 8 or 1.0
        envelope = sql.SQL("ST_Transform(ST_Segmentize({}, {}), {})").format(
            envelope, params.bind(step), params.bind(layer.srid)
        )
    conditions: list[sql.Composable] = [sql.SQL("t.geom && {}").format(envelope)]
    pixel_deg = (east - west) / EXTENT
    if not tl.points:
        # A feature smaller than a pixel in both directions draws nothing.
        lat = math.radians((max(south, -85.0) + min(north, 85.0)) / 2)
        pixel = pixel_deg if geographic(layer.srid) else pixel_deg * 111_320 * math.cos(lat)
        conditions.append(
            sql.SQL(
                "(ST_XMax(t.geom) - ST_XMin(t.geom) >= {px} "
                "OR ST_YMax(t.geom) - ST_YMin(t.geom) >= {px})"
            ).format(px=params.bind(pixel))
        )
    geom: sql.Composable = sql.SQL("t.geom")
    if layer.srid != tile.srid:
        geom = sql.SQL("ST_Transform({}, {})").format(geom, params.bind(tile.srid))
    if tile.z < SIMPLIFY_BELOW_ZOOM and not tl.points:
        tolerance = (tile.bounds[2] - tile.bounds[0]) / EXTENT / 2
        geom = sql.SQL("ST_Simplify({}, {}, true)").format(geom, params.bind(tolerance))
    bounds = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})::box2d").format(
        *(params.bind(v) for v in tile.bounds), params.bind(tile.srid)
    )
    columns = tl.properties if tl.properties is not None else tuple(layer.fields)
    props = [
        sql.SQL("t.{}::text AS {}" if layer.fields.get(c) in _TEXT_TYPES else "t.{} AS {}").format(
            sql.Identifier(c), sql.Identifier(c)
        )
        for c in columns
    ]
    return sql.SQL(
        "SELECT ST_AsMVT(m, {name}, {extent}, 'geom', 'fid') FROM ("
        "SELECT t.fid{props}, ST_AsMVTGeom({geom}, {bounds}, {extent}, {buffer}, true) AS geom "
        "FROM {table} t WHERE {where} LIMIT {cap}) m WHERE m.geom IS NOT NULL"
    ).format(
        name=sql.Literal(tl.name),
        extent=sql.Literal(EXTENT),
        buffer=sql.Literal(BUFFER),
        props=sql.SQL("").join(sql.SQL(", ") + p for p in props),
        geom=geom,
        bounds=bounds,
        table=sql.Identifier(layer.schema, layer.table),
        where=sql.SQL(" AND ").join(conditions),
        cap=params.bind(max_features),
    )
