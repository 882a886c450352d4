"""Terrain from an elevation collection: gradients, slope, aspect and shading (numpy), and
the ``slope`` and ``aspect`` processes (OGC API - Processes).

Gradients are Horn's (1981) third-order finite differences over the 3 x 3 neighbourhood
(what GDAL's ``gdaldem`` and ArcGIS use), divided by the **true** size of a cell on the
ground in metres, row by row (:func:`cell_size`): on a projected DEM the grid step over
the projection's scale factor there (Gauss-Krüger: within 0.1 % of the step; Web Mercator:
the step times cos(latitude), which a map tile's pixel must be divided by), and on a
geographic DEM the geodesic length of a cell's sides on its ellipsoid. Heights are metres
(the ingest's contract for ``--kind elevation``).

Slope grades are those of China's Third National Land Survey for cultivated land
(第三次全国国土调查 耕地坡度分级, TD/T 1055-2019): ≤2°, 2-6°, 6-15°, 15-25°, >25°. Aspect is
the compass direction a slope faces (downhill), clockwise from north, in eight 45° sectors
centred on N, NE, ... NW; a cell of at most 2° of slope is ``flat`` (the survey's first
grade, land it treats as level), where an aspect means nothing.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyproj
import rasterio
import shapely
from rasterio.errors import WindowError
from rasterio.features import geometry_mask
from rasterio.windows import Window, from_bounds

from spatial import analysis, mosaic
from spatial.catalog import CollectionRecord
from spatial.errors import InvalidInputError
from spatial.inputs import text
from spatial.rasterstore import reading

FloatArray = npt.NDArray[np.float64]
GRADES = ((2.0, "≤2°"), (6.0, "2-6°"), (15.0, "6-15°"), (25.0, "15-25°"), (90.0, ">25°"))
"""Upper bound (inclusive) and label of each cultivated-land slope grade (TD/T 1055)."""
FLAT_DEG = 2.0
"""Slopes of at most this many degrees have no aspect (``flat``)."""
SECTORS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
MAX_CELLS = 16_000_000
"""The most DEM cells a slope or aspect area may cover (a 40 km square of 10 m cells)."""
MAX_AREA_KM2 = 2_000.0
"""The largest area (km²) a slope or aspect request may draw."""


def cell_size(
    crs: Any, transform: Any, rows: int, *, col: float = 0.0, row_off: float = 0.0
) -> tuple[FloatArray, FloatArray]:
    """The ground size (m) of a cell, east-west and north-south, for each of ``rows`` rows.

    Computed at column ``col`` of the grid (the scale of the projections used here varies
    along a row by far less than it does down a column); ``row_off``: the first row's
    number in ``transform``'s grid.
    """
    crs = pyproj.CRS.from_user_input(crs)
    step_x, step_y = abs(transform.a), abs(transform.e)
    ys = np.arange(rows, dtype=np.float64) + row_off + 0.5
    x, y = transform * (np.full(rows, col + 0.5), ys)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if crs.is_geographic:
        geod = crs.get_geod() or pyproj.Geod(ellps="WGS84")
        lon = np.clip(x, -179.0, 179.0)
        lat = np.clip(y, -89.0, 89.0)
        _, _, east = geod.inv(lon - step_x / 2, lat, lon + step_x / 2, lat)
        _, _, north = geod.inv(lon, lat - step_y / 2, lon, lat + step_y / 2)
        return np.asarray(east, dtype=np.float64), np.asarray(north, dtype=np.float64)
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    to_lonlat = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    lon, lat = to_lonlat.transform(x, y)
    factors = pyproj.Proj(crs).get_factors(lon, lat, errcheck=False)
    parallel = np.asarray(factors.parallel_scale, dtype=np.float64)
    meridional = np.asarray(factors.meridional_scale, dtype=np.float64)
    parallel = np.where(np.isfinite(parallel) & (parallel > 0), parallel, 1.0)
    meridional = np.where(np.isfinite(meridional) & (meridional > 0), meridional, 1.0)
    return step_x * unit / parallel, step_y * unit / meridional


def horn(
    heights: FloatArray, east: FloatArray | float, north: FloatArray | float
) -> tuple[FloatArray, FloatArray]:
    """Horn's gradient (dz/dx eastward, dz/dy northward) of the inner cells of ``heights``
    (a ``(rows, cols)`` array, rows from north to south, NaN where no data): the result has
    two rows and columns fewer. ``east``/``north``: the cells' ground size (m), one value
    or one per inner row."""
    z = heights
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dx = np.asarray(east, dtype=np.float64).reshape(-1, 1) if np.ndim(east) else east
    dy = np.asarray(north, dtype=np.float64).reshape(-1, 1) if np.ndim(north) else north
    gx = ((c + 2.0 * f + i) - (a + 2.0 * d + g)) / (8.0 * dx)
    gy = ((a + 2.0 * b + c) - (g + 2.0 * h + i)) / (8.0 * dy)
    return np.asarray(gx, dtype=np.float64), np.asarray(gy, dtype=np.float64)


def slope_deg(gx: FloatArray, gy: FloatArray) -> FloatArray:
    """Slope in degrees from Horn's gradient."""
    return np.asarray(np.degrees(np.arctan(np.hypot(gx, gy))), dtype=np.float64)


def aspect_deg(gx: FloatArray, gy: FloatArray) -> FloatArray:
    """The direction a slope faces (downhill), degrees clockwise from north in [0, 360)."""
    return np.asarray(np.degrees(np.arctan2(-gx, -gy)) % 360.0, dtype=np.float64)


def shade(
    gx: FloatArray, gy: FloatArray, *, azimuth: float, altitude: float, z_factor: float = 1.0
) -> FloatArray:
    """Lambertian shading in [0, 1] of the surface with gradient (gx, gy) (times
    ``z_factor``) lit from ``azimuth`` (degrees clockwise from north) at ``altitude``
    (degrees above the horizon)."""
    az, alt = math.radians(azimuth), math.radians(altitude)
    light = (math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt))
    px, py = gx * z_factor, gy * z_factor
    lit = (-px * light[0] - py * light[1] + light[2]) / np.sqrt(1.0 + px * px + py * py)
    return np.asarray(np.clip(lit, 0.0, 1.0), dtype=np.float64)


def grade_of(slope: FloatArray) -> npt.NDArray[np.int8]:
    """The cultivated-land slope grade (1-5) of each slope (0 where NaN)."""
    bounds = np.array([b for b, _ in GRADES[:-1]])
    grade = (np.searchsorted(bounds, slope, side="left") + 1).astype(np.int8)
    return np.where(np.isfinite(slope), grade, 0).astype(np.int8)


def sector_of(slope: FloatArray, aspect: FloatArray) -> npt.NDArray[np.int8]:
    """The aspect sector of each cell: 1 (N) ... 8 (NW), 9 flat, 0 no data."""
    sector = (np.floor(((aspect + 22.5) % 360.0) / 45.0) + 1).astype(np.int8)
    sector = np.where(slope <= FLAT_DEG, 9, sector)
    return np.where(np.isfinite(slope), sector, 0).astype(np.int8)


# --- the processes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """Slope and aspect over an area: per cell (NaN outside the area or where no data),
    the cells' ground areas (m²), and the grid they are on."""

    slope: FloatArray
    aspect: FloatArray
    area: FloatArray
    grid: mosaic.Grid
    item: str


def is_elevation(record: CollectionRecord) -> bool:
    """Whether a raster collection holds elevation (ingested with ``--kind elevation``)."""
    return (record.properties or {}).get("spatial:kind") == "elevation"


def surface(path: Any, area: shapely.Geometry, item: str) -> Surface:
    """Slope and aspect of the DEM at ``path`` over ``area`` (a polygon in CRS84).

    Raises:
        InvalidInputError: the area misses the DEM, or covers more than :data:`MAX_CELLS`.
    """
    with reading(), rasterio.open(path) as src:
        to_dem = pyproj.Transformer.from_crs("OGC:CRS84", src.crs, always_xy=True)
        shape = shapely.transform(area, lambda xy: np.column_stack(to_dem.transform(*xy.T)))
        west, south, east, north = shape.bounds
        outer = from_bounds(west, south, east, north, src.transform)
        try:
            win = (Window(outer.col_off - 1, outer.row_off - 1, outer.width + 2, outer.height + 2)
                   .round_offsets().round_lengths()
                   .intersection(Window(0, 0, src.width, src.height)))  # fmt: skip
        except WindowError:
            raise InvalidInputError("the area is outside the DEM") from None
        cells = int(win.width) * int(win.height)
        if cells > MAX_CELLS:
            msg = (f"the area covers {cells:,} cells of the DEM, more than {MAX_CELLS:,}: "
                   "draw a smaller area")  # fmt: skip
            raise InvalidInputError(msg)
        heights = np.ma.filled(src.read(1, window=win, masked=True).astype("float64"), np.nan)
        transform = src.window_transform(win)
        crs = src.crs
    rows, cols = heights.shape
    if rows < 3 or cols < 3:
        raise InvalidInputError("the area is smaller than three cells of the DEM")
    east_m, north_m = cell_size(crs, transform, rows - 2, col=cols / 2, row_off=1)
    gx, gy = horn(heights, east_m, north_m)
    inner = transform * transform.translation(1, 1)
    grid = mosaic.Grid(crs, inner, cols - 2, rows - 2)
    outside = geometry_mask([shape], out_shape=(rows - 2, cols - 2), transform=inner)
    slope = np.where(outside, np.nan, slope_deg(gx, gy))
    aspect = np.where(np.isnan(slope), np.nan, aspect_deg(gx, gy))
    if not np.isfinite(slope).any():
        raise InvalidInputError("the area has no cell of the DEM with data (or misses it)")
    cell_area = np.broadcast_to((east_m * north_m).reshape(-1, 1), slope.shape)
    return Surface(slope, aspect, np.asarray(cell_area, dtype=np.float64), grid, item)


def slope_summary(s: Surface) -> dict[str, Any]:
    """Slope statistics (degrees) and the area in each cultivated-land slope grade."""
    valid = np.isfinite(s.slope)
    values, weights = s.slope[valid], s.area[valid]
    total = float(weights.sum())
    grades = grade_of(s.slope)
    out = []
    for n, (upper, label) in enumerate(GRADES, start=1):
        m2 = float(weights[grades[valid] == n].sum())
        out.append({"grade": n, "range": label, "max_deg": upper, "area_m2": round(m2, 1),
                    "share": round(m2 / total, 4)})  # fmt: skip
    mean = float(np.average(values, weights=weights))
    return {
        "cells": int(valid.sum()),
        "area_m2": round(total, 1),
        "slope_deg": {
            "min": round(float(values.min()), 3),
            "max": round(float(values.max()), 3),
            "mean": round(mean, 3),
            "median": round(float(np.median(values)), 3),
            "stdev": round(float(np.sqrt(np.average((values - mean) ** 2, weights=weights))), 3),
        },
        "grades": out,
        "grading": "TD/T 1055-2019 (第三次全国国土调查 耕地坡度分级)",
    }


def aspect_summary(s: Surface) -> dict[str, Any]:
    """The area facing each of the eight compass sectors, and the flat area."""
    valid = np.isfinite(s.slope)
    sectors = sector_of(s.slope, s.aspect)[valid]
    weights = s.area[valid]
    total = float(weights.sum())
    out = []
    for n, name in enumerate((*SECTORS, "flat"), start=1):
        m2 = float(weights[sectors == n].sum())
        entry: dict[str, Any] = {"sector": name, "area_m2": round(m2, 1),
                                 "share": round(m2 / total, 4)}  # fmt: skip
        if name != "flat":
            entry["from_deg"], entry["to_deg"] = (45.0 * (n - 1) - 22.5) % 360, 45.0 * n - 22.5
        out.append(entry)
    sloping = [e for e in out[:-1] if e["area_m2"] > 0]
    dominant = max(sloping, key=lambda e: e["area_m2"])["sector"] if sloping else "flat"
    return {"cells": int(valid.sum()), "area_m2": round(total, 1), "sectors": out,
            "dominant": dominant, "flat_max_deg": FLAT_DEG}  # fmt: skip


def per_zone(s: Surface, zones: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Each zone's mean and maximum slope, slope grade of its mean, dominant aspect (the
    sector with most area, flat when it is mostly flat) and flat share, by exact coverage
    (:func:`spatial.analysis.zonal`)."""
    slope = np.ma.masked_invalid(s.slope)
    sectors = np.ma.masked_equal(sector_of(s.slope, s.aspect).astype("float64"), 0)
    flat = np.ma.masked_array((sectors == 9).astype("float64"), mask=np.ma.getmaskarray(sectors))
    table = analysis.zonal(slope, s.grid, zones, ["mean", "max"])
    major = analysis.zonal(sectors, s.grid, zones, ["majority"])
    share = analysis.zonal(flat, s.grid, zones, ["mean"]).rename(columns={"mean": "flat"})
    merged = zones.merge(table, on="id", how="left").merge(major, on="id", how="left")
    merged = merged.merge(share, on="id", how="left")
    names = dict(enumerate((*SECTORS, "flat"), start=1))
    mean = merged["mean"].astype("float64")
    return merged.assign(
        mean_slope_deg=mean.round(3),
        max_slope_deg=merged["max"].astype("float64").round(3),
        slope_grade=[int(grade_of(np.array([m]))[0]) or None for m in mean],
        dominant_aspect=[None if np.isnan(v) else names.get(int(v)) for v in merged["majority"]],
        flat_share=merged["flat"].astype("float64").round(4),
    ).drop(columns=["mean", "max", "majority", "flat"])


async def _threaded(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def _run(conn: Any, ctx: Any, inputs: dict[str, Any], what: str) -> dict[str, Any]:
    """``slope`` or ``aspect``: read, compute, summarise, per zone, write back."""
    dem_id = text(inputs, "dem")
    if dem_id is None:
        raise InvalidInputError("input 'dem' (an elevation collection id) is required")
    if not is_elevation(ctx.raster(dem_id)):
        msg = (f"collection {dem_id!r} is not an elevation collection (it is imagery): "
               "ingest a DEM with --kind elevation")  # fmt: skip
        raise InvalidInputError(msg)
    if inputs.get("geometry") is None:
        raise InvalidInputError("input 'geometry' (a polygon in CRS84, the area) is required")
    area = shapely.from_wkt(analysis.geometry_input(inputs, "geometry", polygonal=True))
    km2 = _area_km2(area)
    if km2 > MAX_AREA_KM2:
        msg = f"the area is {km2:,.0f} km², more than {MAX_AREA_KM2:,.0f}: draw a smaller area"
        raise InvalidInputError(msg)
    scenes = await mosaic.scenes(conn, ctx.rasters, dem_id, lonlat=tuple(area.bounds))
    if not scenes:
        raise InvalidInputError(f"the area is outside the elevation collection {dem_id!r}")
    s: Surface = await _threaded(surface, scenes[0].data, area, scenes[0].id)
    summary = slope_summary if what == "slope" else aspect_summary
    out: dict[str, Any] = {"dem": dem_id, "item": s.item, **summary(s)}
    zones_id, keep = text(inputs, "zones"), _keep(inputs)
    if zones_id is not None:
        frame = await analysis.zones_frame(conn, ctx(zones_id), s.grid.crs, s.grid.bounds, keep,
                                           within=area.wkt)  # fmt: skip
    else:
        frame = gpd.GeoDataFrame({"id": [1]}, geometry=[area], crs="OGC:CRS84")
        frame = frame.to_crs(s.grid.crs.to_wkt())
    zoned = await _threaded(per_zone, s, frame)
    if zones_id is not None:
        out["zones"] = json.loads(zoned.drop(columns="geometry").to_json(orient="records"))
    target = text(inputs, "collection")
    if target is not None:
        title = f"{what.capitalize()} of {dem_id}" + (f" by {zones_id}" if zones_id else "")
        written = zoned.rename(columns={"id": "zone_id"})
        out["collection"] = await ctx.publish(written, target, title)
    return out


def _keep(inputs: dict[str, Any]) -> list[str]:
    return [c for c in (inputs.get("properties") or []) if isinstance(c, str)]


def _area_km2(area: shapely.Geometry) -> float:
    geod = pyproj.Geod(ellps="WGS84")
    return abs(float(geod.geometry_area_perimeter(area)[0])) / 1e6


async def run_slope(conn: Any, ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The ``slope`` process."""
    return await _run(conn, ctx, inputs, "slope")


async def run_aspect(conn: Any, ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """The ``aspect`` process."""
    return await _run(conn, ctx, inputs, "aspect")


_AREA = {"schema": {"type": "object", "contentMediaType": "application/geo+json"},
         "minOccurs": 1, "description": f"The area: a polygon in CRS84 (at most "
         f"{MAX_AREA_KM2:,.0f} km² and {MAX_CELLS:,} DEM cells)."}  # fmt: skip
_COMMON = {
    "dem": {"description": "The elevation collection (--kind elevation).",
            "schema": {"type": "string"}, "minOccurs": 1, "maxOccurs": 1},
    "geometry": _AREA,
    "zones": {"description": "A polygon layer (parcels, districts): a result per feature "
              "meeting the area.", "schema": {"type": "string"}, "minOccurs": 0},
    "properties": {"schema": {"type": "array", "items": {"type": "string"}}, "minOccurs": 0,
                   "description": "Zone properties to return."},
    "collection": {"description": "Write the per-zone results (or the area's) as this new "
                   "collection.", "schema": {"type": "string"}, "minOccurs": 0},
}  # fmt: skip
SLOPE_INPUTS = _COMMON
ASPECT_INPUTS = _COMMON
SLOPE_OUTPUTS = {"slope_deg": {"schema": {"type": "object"}},
                 "grades": {"schema": {"type": "array"}},
                 "zones": {"schema": {"type": "array"}}}  # fmt: skip
ASPECT_OUTPUTS = {"sectors": {"schema": {"type": "array"}},
                  "dominant": {"schema": {"type": "string"}},
                  "zones": {"schema": {"type": "array"}}}  # fmt: skip
SLOPE_DESCRIPTION = (
    "Slope (degrees, Horn's method on the cells' true size in metres) over an area of an "
    "elevation collection: statistics and the area in each cultivated-land slope grade of "
    "the Third National Land Survey (≤2°, 2-6°, 6-15°, 15-25°, >25°); with zones, each "
    "zone's mean and maximum slope; optionally written back as a collection."
)
ASPECT_DESCRIPTION = (
    "Aspect (the direction slopes face) over an area of an elevation collection: the area "
    "facing each of eight compass sectors, and the flat area (slope ≤2°); with zones, each "
    "zone's dominant aspect; optionally written back as a collection."
)
