"""The SQL of a map image's vector layers (:mod:`tiles.render`): one statement, one row,
one GeoJSON FeatureCollection per layer, the caller's rows only.

For each layer PostGIS selects the features meeting the frame (its box carried into the
layer's CRS, so the spatial index is used), drops those smaller than a pixel, carries them
into the frame's CRS by an affine map fitted to the frame where it is exact to 1/16 pixel
(:func:`tiles.mvt.local_affine`) or ``ST_Transform``, writes their coordinates from the
frame's lower left corner (a translation: scales unchanged, fewer characters to parse),
clips those larger than the frame, simplifies below zoom 13 and writes them with only the
attributes the style reads (:func:`layers.styles.columns`). The rows are read through
:func:`spatial.features.table_rows`, with the caller's restriction. Values are bound;
names are quoted identifiers; a statement's text depends only on the layer and a few
choices, so it is composed once and cached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

import pyproj
from psycopg import sql

from layers import styles
from layers.collections import TileLayer
from spatial.errors import InvalidInputError
from spatial.features import table_rows
from tiles import mvt
from tiles.render_raster import Grid
from tiles.tms import TileAddress

Box = tuple[float, float, float, float]
"""minx, miny, maxx, maxy."""
MAX_FEATURES = 50_000
"""Features drawn per layer and image at most."""
SIMPLIFY_PIXEL_M = 20.0
"""Lines and polygons are simplified to half a pixel when a pixel is larger than this
(below zoom 13): finer, the vertices of a parcel are pixels apart and simplifying them
costs a fifth of the statement."""
PAD_PIXELS = 16
"""The frame is read this many pixels wider on each side (strokes and circles that
reach into it from features outside)."""


@lru_cache(maxsize=64)
def crs_of(code: int) -> pyproj.CRS:
    """An EPSG CRS.

    Raises:
        InvalidInputError: a code PROJ does not know.
    """
    try:
        return pyproj.CRS.from_epsg(code)
    except pyproj.exceptions.CRSError:
        msg = f"EPSG:{code} is not a CRS PROJ knows"
        raise InvalidInputError(msg) from None


@lru_cache(maxsize=256)
def transformer(source_srid: int, target: int) -> pyproj.Transformer:
    """x/y order transformer between two EPSG CRSs."""
    return pyproj.Transformer.from_crs(crs_of(source_srid), crs_of(target), always_xy=True)


def lonlat_of(
    bbox: tuple[float, float, float, float], crs: int
) -> tuple[float, float, float, float]:
    """A box's lon/lat bounds."""
    if crs in mvt.LONLAT:
        return bbox
    west, south, east, north = transformer(crs, 4326).transform_bounds(*bbox, densify_pts=21)
    return west, south, east, north


Columns = tuple[tuple[str, int], ...]
"""What a layer's style reads: ``(property, 0)``, or ``(property, n)`` its first n
characters (:func:`layers.styles.columns`)."""


class _Box:
    """What :func:`tiles.mvt.local_affine` reads of a tile: bounds and CRS."""

    def __init__(self, bounds: tuple[float, float, float, float], srid: int) -> None:
        self.bounds = bounds
        self.srid = srid


def _layer_part(
    tl: TileLayer, props: Columns, frame: Grid, pad: Box
) -> tuple[tuple[Any, ...], list[Any]] | None:
    """The shape of one layer's part of the statement and its values (placeholder order);
    None when the layer's extent misses the frame."""
    layer = tl.layer
    lonlat = lonlat_of(pad, frame.crs)
    if tl.bbox is not None:
        w, s, e, n = tl.bbox
        if w > lonlat[2] or e < lonlat[0] or s > lonlat[3] or n < lonlat[1]:
            return None
    if layer.srid == frame.crs or (layer.srid in mvt.LONLAT and frame.crs in mvt.LONLAT):
        envelope = pad
    else:
        envelope = transformer(frame.crs, layer.srid).transform_bounds(*pad, densify_pts=21)
    pixel_src = (envelope[2] - envelope[0]) / (frame.width + 2 * PAD_PIXELS)
    values: list[Any] = []  # in the statement's order: the geometry's, the conditions'
    # Coordinates are written from the frame's lower left corner (a translation: the
    # scale, and so the styles' zoom ranges, stay): a third fewer characters to parse.
    ox, oy = frame.bbox[0], frame.bbox[1]
    fit = mvt.IDENTITY
    if layer.srid != frame.crs:
        fit = mvt.local_affine(layer.srid, cast(TileAddress, _Box(pad, frame.crs)))  # type: ignore[assignment]
    if fit is None:
        path = "transform"
        values += [frame.crs, -ox, -oy]
    else:
        path = "affine"
        a, b, d, e, xoff, yoff = fit
        values += [a, b, d, e, xoff - ox, yoff - oy]
    pixel = (frame.bbox[2] - frame.bbox[0]) / frame.width
    metres = pixel * (111_320.0 if crs_of(frame.crs).is_geographic else 1.0)
    clip = not tl.points
    simplify = clip and metres > SIMPLIFY_PIXEL_M
    if simplify:
        values.append(pixel / 2)
    if clip:
        values += [pad[0] - ox, pad[1] - oy, pad[2] - ox, pad[3] - oy]
    values += [*envelope, layer.srid]
    if not tl.points:
        values += [pixel_src, pixel_src]
    digits = max(0, min(9, math.ceil(-math.log10(pixel / 8)))) if pixel > 0 else 9
    values.append(MAX_FEATURES)
    key = (layer.schema, layer.table, layer.restriction, props, tl.points, path, simplify,
           clip, digits)  # fmt: skip
    return key, values


@lru_cache(maxsize=512)
def _layer_sql(key: tuple[Any, ...]) -> sql.Composable:
    schema, table, restriction, props, points, path, simplify, clip, digits = key
    p = sql.Placeholder()
    conditions: list[sql.Composable] = [
        sql.SQL("t.geom && ST_MakeEnvelope({}, {}, {}, {}, {})").format(p, p, p, p, p)
    ]
    if not points:
        conditions.append(sql.SQL(
            "(ST_XMax(t.geom) - ST_XMin(t.geom) >= {px} "
            "OR ST_YMax(t.geom) - ST_YMin(t.geom) >= {px})"
        ).format(px=sql.SQL("{}::float8").format(p)))  # fmt: skip
    geom: sql.Composable = sql.SQL("t.geom")
    if path == "transform":
        geom = sql.SQL("ST_Translate(ST_Transform({}, {}), {}, {})").format(geom, p, p, p)
    elif path == "affine":
        geom = sql.SQL("ST_Affine({}, {}, {}, {}, {}, {}, {})").format(geom, p, p, p, p, p, p)
    if simplify:
        geom = sql.SQL("ST_Simplify({}, {}, true)").format(geom, p)
    if clip:
        geom = sql.SQL("ST_ClipByBox2D({}, ST_MakeEnvelope({}, {}, {}, {}))").format(
            geom, p, p, p, p
        )
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, left(t.{}::text, {})").format(
            sql.Literal(styles.prefix_column(c, n)), sql.Identifier(c), sql.Literal(n)
        )
        if n
        else sql.SQL("{}, t.{}").format(sql.Literal(c), sql.Identifier(c))
        for c, n in props
    )
    properties = sql.SQL("json_build_object({})::text").format(pairs) if props else sql.SQL("'{}'")
    feature = sql.SQL(
        "SELECT '{{\"type\":\"Feature\",\"geometry\":' || ST_AsGeoJSON(g.geom, {digits}) || "
        "',\"properties\":' || g.props || '}}' AS f FROM (SELECT {geom} AS geom, {properties} "
        "AS props FROM {source} t WHERE {where} LIMIT {cap}) g "
        "WHERE g.geom IS NOT NULL AND NOT ST_IsEmpty(g.geom)"
    ).format(
        digits=sql.Literal(digits), geom=geom, properties=properties,
        source=table_rows(schema, table, restriction),
        where=sql.SQL(" AND ").join(conditions), cap=p,
    )  # fmt: skip
    return sql.SQL(
        '(SELECT \'{{"type":"FeatureCollection","features":[\' || '
        "coalesce(string_agg(x.f, ','), '') || ']}}' FROM ({}) x)"
    ).format(feature)


def vector_statement(
    layers_: Sequence[tuple[TileLayer, Columns]], frame: Grid
) -> tuple[sql.Composable, list[Any], list[int]] | None:
    """One statement, one row: a GeoJSON FeatureCollection per layer that meets the frame
    (their indexes in ``layers_`` returned), the caller's rows only; None when none
    does."""
    px = (frame.bbox[2] - frame.bbox[0]) / frame.width * PAD_PIXELS
    py = (frame.bbox[3] - frame.bbox[1]) / frame.height * PAD_PIXELS
    minx, miny, maxx, maxy = frame.bbox
    pad: Box = (minx - px, miny - py, maxx + px, maxy + py)
    parts: list[sql.Composable] = []
    values: list[Any] = []
    used: list[int] = []
    for i, (tl, props) in enumerate(layers_):
        planned = _layer_part(tl, props, frame, pad)
        if planned is None:
            continue
        parts.append(_layer_sql(planned[0]))
        values += planned[1]
        used.append(i)
    if not parts:
        return None
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(parts)), values, used
