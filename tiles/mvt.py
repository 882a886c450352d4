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
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import psycopg
import pyproj
from psycopg import sql

from layers.collections import TileLayer
from spatial.features import Rows, geographic, table_rows
from tiles.tms import EARTH_RADIUS, TileAddress

EXTENT = 4096
BUFFER = 64
SIMPLIFY_BELOW_ZOOM = 12
"""Below this zoom geometries are simplified to half a tile pixel before encoding."""
AFFINE_TOLERANCE = 0.25
"""A tile's features go from the layer's CRS into the tile's by an affine map fitted to the
tile when it is exact to this many tile units (1/4096 of the tile's width; MVT rounds to
whole units), not by projecting every vertex: over a few kilometres two CRSs differ by an
affine map to far less than a unit (CGCS2000 lon/lat to Web Mercator from zoom 12, a
Gauss-Krüger zone from zoom 14; the error halves with each zoom), and PROJ was half the
cost of a tile."""
_TEXT_TYPES = {"date", "timestamp"}


def render(
    conn: psycopg.Connection[Any], layers: Sequence[TileLayer], tile: TileAddress, max_features: int
) -> bytes:
    """A tile's MVT bytes on a synchronous connection (empty: no feature)."""
    statement = tile_statement(layers, tile, max_features)
    if statement is None:
        return b""
    row = conn.execute(*statement, binary=True).fetchone()
    return bytes(row[0]) if row and row[0] else b""


def tile_statement(
    layers: Sequence[TileLayer], tile: TileAddress, max_features: int
) -> tuple[str, dict[str, Any]] | None:
    """One row, one column: the tile's bytes (empty when no feature is in it), or None
    when no layer's extent reaches the tile (an empty tile without a query).

    The text depends only on the layers and a few choices (:data:`Shape`), so it is
    composed once and reused; each tile only computes its values.
    """
    parts: list[tuple[LayerKey, Shape]] = []
    values: list[Any] = []
    for tl in layers:
        planned = _layer_values(tl, tile, max_features)
        if planned is not None:
            parts.append((_key(tl), planned[0]))
            values += planned[1]
    if not parts:
        return None
    return _statement_text(tuple(parts)), {f"p{i}": v for i, v in enumerate(values)}


@lru_cache(maxsize=32)
def _transformer(source: int, target: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


LONLAT = frozenset({4326, 4490})
"""Lon/lat CRSs that PROJ relates by a null ("ballpark") transformation: the same numbers."""
IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def local_affine(srid: int, tile: TileAddress) -> tuple[float, ...] | None:
    """``(a, b, d, e, xoff, yoff)`` of ``ST_Affine`` taking coordinates of ``srid`` into the
    tile's CRS across the tile (and its buffer), or None when no affine map is exact to
    :data:`AFFINE_TOLERANCE` tile units there. Lon/lat into Web Mercator is worked out
    (longitude maps linearly; latitude by the secant of the Mercator curve); any other
    pair is fitted to PROJ on a 3 x 3 grid."""
    west, south, east, north = tile.bounds
    unit = (east - west) / EXTENT
    pad = unit * BUFFER
    if srid in LONLAT and tile.srid in LONLAT:
        return IDENTITY
    if srid in LONLAT and tile.srid == 3857:
        r = EARTH_RADIUS
        lat1 = 2 * math.atan(math.exp((south - pad) / r)) - math.pi / 2
        lat2 = 2 * math.atan(math.exp((north + pad) / r)) - math.pi / 2
        middle = (lat1 + lat2) / 2
        sag = r / math.cos(middle) * math.tan(abs(middle)) * (lat2 - lat1) ** 2 / 8
        if sag / unit > AFFINE_TOLERANCE:
            return None
        e = (north - south + 2 * pad) / math.degrees(lat2 - lat1)
        return r * math.pi / 180, 0.0, 0.0, e, 0.0, (south - pad) - e * math.degrees(lat1)
    grid = np.linspace(0.0, 1.0, 3)
    gx, gy = np.meshgrid(west - pad + grid * (east - west + 2 * pad),
                         south - pad + grid * (north - south + 2 * pad))  # fmt: skip
    target = np.column_stack([gx.ravel(), gy.ravel()])
    sx, sy = _transformer(tile.srid, srid).transform(target[:, 0], target[:, 1])
    source = np.column_stack([sx, sy])
    if not np.isfinite(source).all():
        return None
    origin, centre = source.mean(axis=0), target.mean(axis=0)
    design = np.column_stack([source - origin, np.ones(len(source))])
    coef, *_ = np.linalg.lstsq(design, target - centre, rcond=None)
    if np.abs(design @ coef - (target - centre)).max() / unit > AFFINE_TOLERANCE:
        return None
    (a, d), (b, e), (cx, cy) = coef
    xoff = centre[0] + cx - a * origin[0] - b * origin[1]
    yoff = centre[1] + cy - d * origin[0] - e * origin[1]
    return float(a), float(b), float(d), float(e), float(xoff), float(yoff)


LayerKey = tuple[
    str, str, str, int, tuple[tuple[str, str], ...], bool, tuple[str, ...] | None, Rows | None
]
"""What fixes a layer's SQL text: id, schema, table, SRID, columns and types, points,
selected properties, the caller's row restriction."""
Shape = tuple[bool, bool, str, bool]
"""What else fixes it: envelope transformed, size filter, geometry path (``same``,
``affine`` or ``transform``), simplified."""


def _layer_values(
    tl: TileLayer, tile: TileAddress, max_features: int
) -> tuple[Shape, list[Any]] | None:
    """The shape of a layer's part of the statement and its values, in placeholder order;
    None when the layer's extent does not reach the tile."""
    layer = tl.layer
    west, south, east, north = tile.lonlat
    margin = (east - west) * BUFFER / EXTENT
    box = (west - margin, south - margin, east + margin, north + margin)
    if tl.bbox is not None:
        lw, ls, le, ln = tl.bbox
        box = (max(box[0], lw), max(box[1], ls), min(box[2], le), min(box[3], ln))
        if box[0] > box[2] or box[1] > box[3]:
            return None
    transform_envelope = layer.srid not in LONLAT
    values: list[Any] = [*box, 4326 if transform_envelope else layer.srid]
    if transform_envelope:
        values += [max(box[2] - box[0], box[3] - box[1]) / 8 or 1.0, layer.srid]
    if not tl.points:
        # A feature smaller than a tile unit in both directions draws nothing.
        pixel_deg = (east - west) / EXTENT
        lat = math.radians((max(south, -85.0) + min(north, 85.0)) / 2)
        pixel = pixel_deg if geographic(layer.srid) else pixel_deg * 111_320 * math.cos(lat)
        values.append(pixel)
    path = "same"
    if layer.srid != tile.srid:
        fit = local_affine(layer.srid, tile)
        if fit is None:
            path = "transform"
            values.append(tile.srid)
        elif fit != IDENTITY:
            path = "affine"
            values += fit
    simplify = tile.z < SIMPLIFY_BELOW_ZOOM and not tl.points
    if simplify:
        values.append((tile.bounds[2] - tile.bounds[0]) / EXTENT / 2)
    values += [*tile.bounds, tile.srid, max_features]
    return (transform_envelope, not tl.points, path, simplify), values


def _key(tl: TileLayer) -> LayerKey:
    layer = tl.layer
    return (layer.id, layer.schema, layer.table, layer.srid, tuple(layer.fields.items()),
            tl.points, tl.properties, layer.restriction)  # fmt: skip


@lru_cache(maxsize=512)
def _statement_text(parts: tuple[tuple[LayerKey, Shape], ...]) -> str:
    """The statement of a tile of these layers, with placeholders ``p0``, ``p1``, ... in
    the order :func:`_layer_values` gives the values."""
    counter = iter(range(10_000))

    def p() -> sql.Composable:
        return sql.Placeholder(f"p{next(counter)}")

    selects = [_layer_sql(key, shape, p) for key, shape in parts]
    joined = sql.SQL(" || ").join(sql.SQL("coalesce(({}), ''::bytea)").format(q) for q in selects)
    return sql.SQL("SELECT {}").format(joined).as_string(None)


def _layer_sql(key: LayerKey, shape: Shape, p: Callable[[], sql.Composable]) -> sql.Composable:
    name, schema, table, _, fields, _, properties, restriction = key
    transform_envelope, size_filter, path, simplify = shape
    types = dict(fields)
    envelope: sql.Composable = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})").format(
        p(), p(), p(), p(), p()
    )
    if transform_envelope:
        envelope = sql.SQL("ST_Transform(ST_Segmentize({}, {}), {})").format(envelope, p(), p())
    conditions: list[sql.Composable] = [sql.SQL("t.geom && {}").format(envelope)]
    if size_filter:
        conditions.append(
            sql.SQL(
                "(ST_XMax(t.geom) - ST_XMin(t.geom) >= {px} "
                "OR ST_YMax(t.geom) - ST_YMin(t.geom) >= {px})"
            ).format(px=p())
        )
    geom: sql.Composable = sql.SQL("t.geom")
    if path == "transform":
        geom = sql.SQL("ST_Transform({}, {})").format(geom, p())
    elif path == "affine":
        geom = sql.SQL("ST_Affine({}, {}, {}, {}, {}, {}, {})").format(
            geom, p(), p(), p(), p(), p(), p()
        )
    if simplify:
        geom = sql.SQL("ST_Simplify({}, {}, true)").format(geom, p())
    bounds = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})::box2d").format(p(), p(), p(), p(), p())
    columns = properties if properties is not None else tuple(types)
    props = [
        sql.SQL("t.{}::text AS {}" if types.get(c) in _TEXT_TYPES else "t.{} AS {}").format(
            sql.Identifier(c), sql.Identifier(c)
        )
        for c in columns
    ]
    return sql.SQL(
        "SELECT ST_AsMVT(m, {name}, {extent}, 'geom', 'fid') FROM ("
        "SELECT t.fid{props}, ST_AsMVTGeom({geom}, {bounds}, {extent}, {buffer}, true) AS geom "
        "FROM {table} t WHERE {where} LIMIT {cap}) m WHERE m.geom IS NOT NULL"
    ).format(
        name=sql.Literal(name),
        extent=sql.Literal(EXTENT),
        buffer=sql.Literal(BUFFER),
        props=sql.SQL("").join(sql.SQL(", ") + q for q in props),
        geom=geom,
        bounds=bounds,
        table=table_rows(schema, table, restriction),
        where=sql.SQL(" AND ").join(conditions),
        cap=p(),
    )
