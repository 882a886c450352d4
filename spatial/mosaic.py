"""Which scenes a read of imagery takes, and the grid it computes on.

A tile, a coverage subset or an analysis of a raster collection is a mosaic of its items,
latest on top (:mod:`tiles.raster`). ``datetime`` picks them: an instant means "as seen
then" (the items at or before it; a date, by its end), an interval the items inside it
(:func:`scenes`). An analysis reads one scene (:func:`newest`) on a :class:`Grid`: its
native grid, or another's onto which it is warped (:func:`index_values`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import rasterio
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds

from spatial import imagery, rasterstore
from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import parse_datetime

MAX_SCENES = 32
"""Most scenes stacked in one mosaic tile or subset."""
MAX_PIXELS = 200_000_000
"""Largest grid an analysis computes on (pixels)."""
TimeWindow = tuple[dt.datetime | None, dt.datetime | None]
"""The scenes' times: from, to (None: open)."""


@dataclass(frozen=True)
class Scene:
    """What reading an item needs (from its ``rs.items`` row)."""

    collection: str
    id: str
    datetime: dt.datetime
    data: Path
    """The native COG (or the VRT stacking the per-band COGs): the values."""
    web: Path
    """The display COG on the WebMercatorQuad grid: what map tiles read."""
    bands: tuple[dict[str, Any], ...]
    raster_bands: tuple[dict[str, Any], ...] = ()

    def names(self) -> tuple[str, ...]:
        """The bands' names, in order."""
        return tuple(str(b.get("name")) for b in self.bands)


def window(text: str | None) -> TimeWindow:
    """The scenes a ``datetime`` parameter picks: an instant means "the newest at or
    before it" (a date: by its end); an interval, the scenes inside it.

    Raises:
        InvalidInputError: not an RFC 3339 instant or interval.
    """
    parsed = parse_datetime(text)
    if parsed is None:
        return None, None
    start, end = (_instant(v, end=i == 1) if v else None for i, v in enumerate(parsed))
    if text and "/" not in text:
        return None, end
    return start, end


def _instant(text: str, *, end: bool) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("z", "Z"))
    if len(text) == 10 and end:
        value += dt.timedelta(days=1, microseconds=-1)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


_SCENES = (
    "SELECT id, datetime, data_path, web_path, properties->'eo:bands', "
    "properties->'raster:bands' FROM rs.items WHERE collection_id = %(cid)s "
    "AND (%(item)s::text IS NULL OR id = %(item)s) "
    "AND (%(w)s::float8 IS NULL OR geom && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)) "
    "AND (%(start)s::timestamptz IS NULL OR datetime >= %(start)s) "
    "AND (%(end)s::timestamptz IS NULL OR datetime <= %(end)s) "
    "ORDER BY datetime DESC, id LIMIT %(limit)s"
)
_ITEM_EXISTS = "SELECT 1 FROM rs.items WHERE collection_id = %s AND id = %s"


async def scenes(
    conn: psycopg.AsyncConnection[Any],
    store: rasterstore.RasterStore,
    collection_id: str,
    *,
    item_id: str | None = None,
    lonlat: tuple[float, float, float, float] | None = None,
    when: TimeWindow = (None, None),
) -> list[Scene]:
    """The scenes of a collection (or its one item ``item_id``) meeting ``lonlat`` in the
    time window, newest first, at most :data:`MAX_SCENES`.

    Raises:
        NotFoundError: ``item_id`` names no item of the collection.
    """
    w, s, e, n = lonlat or (None, None, None, None)
    values = {"cid": collection_id, "item": item_id, "w": w, "s": s, "e": e, "n": n,
              "start": when[0], "end": when[1], "limit": MAX_SCENES}  # fmt: skip
    cur = await conn.execute(_SCENES, values)
    rows = await cur.fetchall()
    if item_id is not None and not rows:
        cur = await conn.execute(_ITEM_EXISTS, (collection_id, item_id))
        if await cur.fetchone() is None:
            msg = f"collection {collection_id!r} has no item {item_id!r}"
            raise NotFoundError(msg)
    return [
        Scene(collection_id, r[0], r[1], store.gdal_path(r[2]), store.gdal_path(r[3]),
              tuple(r[4] or ()), tuple(r[5] or ()))
        for r in rows
    ]  # fmt: skip


_NEWEST = (
    "SELECT id, datetime, data_path, web_path, properties->'eo:bands', "
    "properties->'raster:bands' FROM rs.items "
    "WHERE collection_id = %(c)s AND (%(i)s::text IS NULL OR id = %(i)s) "
    "AND (%(w)s::timestamptz IS NULL OR datetime <= %(w)s::timestamptz) "
    "ORDER BY datetime DESC, id LIMIT 1"
)


async def newest(
    conn: psycopg.AsyncConnection[Any], store: rasterstore.RasterStore, collection: str,
    item: str | None, when: str | None,
) -> Scene:  # fmt: skip
    """An item by id, or the newest at or before ``when`` (or the newest of all).

    Raises:
        NotFoundError: no such item.
    """
    cur = await conn.execute(_NEWEST, {"c": collection, "i": item, "w": when})
    r = await cur.fetchone()
    if r is None:
        what = f"item {item!r}" if item else f"scene at or before {when}" if when else "scene"
        msg = f"collection {collection!r} has no {what}"
        raise NotFoundError(msg)
    return Scene(collection, r[0], r[1], store.gdal_path(r[2]), store.gdal_path(r[3]),
                 tuple(r[4] or ()), tuple(r[5] or ()))  # fmt: skip


@dataclass(frozen=True)
class Grid:
    """Where values are computed: CRS, transform and size."""

    crs: Any
    transform: Any
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """West, south, east, north in the grid's CRS."""
        west, north = self.transform.c, self.transform.f
        return (
            west,
            north + self.transform.e * self.height,
            west + self.transform.a * self.width,
            north,
        )

    @property
    def pixel_area(self) -> float:
        """A pixel's area in the CRS's units squared."""
        return float(abs(self.transform.a * self.transform.e))


def grid_of(path: Path, bounds: tuple[float, float, float, float] | None = None) -> Grid:
    """The native grid of a scene, cut to ``bounds`` (in its CRS) when given.

    Raises:
        InvalidInputError: the bounds miss the scene, or too many pixels.
    """
    with rasterio.open(path) as src:
        window = from_bounds(*bounds, transform=src.transform) if bounds else None
        if window is not None:
            window = (
                window.round_offsets()
                .round_lengths()
                .intersection(Window(0, 0, src.width, src.height))
            )
        transform = src.window_transform(window) if window else src.transform
        width = int(window.width) if window else src.width
        height = int(window.height) if window else src.height
        grid = Grid(src.crs, transform, width, height)
    if width * height > MAX_PIXELS:
        msg = f"the area is {width} x {height} pixels, more than {MAX_PIXELS:,}; use a smaller one"
        raise InvalidInputError(msg)
    return grid


def index_values(item: Scene, expression: str, grid: Grid) -> np.ma.MaskedArray:
    """An expression of an item's bands on ``grid`` (warped there when the item's own grid
    differs), masked where any band used is nodata."""
    parsed = imagery.Expression.parse(expression, item.bands)
    if len(parsed.trees) != 1:
        raise InvalidInputError("the expression must give one band")
    with rasterio.open(item.data) as src:
        same = src.crs == grid.crs and src.transform.a == grid.transform.a
        if same:
            window = from_bounds(*grid.bounds, transform=src.transform).round_offsets()
            window = Window(window.col_off, window.row_off, grid.width, grid.height)
            data = src.read(list(parsed.bands), window=window, masked=True, boundless=True)
        else:
            with WarpedVRT(
                src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height
            ) as vrt:
                data = vrt.read(list(parsed.bands), masked=True)
    values = parsed.evaluate({n: data[i] for i, n in enumerate(parsed.bands)})
    return np.ma.asarray(values[0])
