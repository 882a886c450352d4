"""The ``flood-extent`` process (OGC API - Processes): a flood extent on an elevation
collection, what it covers, and optionally its road closures and its polygons written as
a collection.

Inputs: ``dem`` (an elevation collection), and either ``gauge`` (a gauge of ``gauges``)
with ``level`` (metres on the DEM's datum, ``warning``, ``danger``; default the gauge's
latest water-level reading): the river method (:func:`spatial.flood.engine.river_extent`,
``reach_m`` of river around the gauge); or ``seed`` (a GeoJSON point) and ``level``: the
level method (:func:`spatial.flood.engine.level_extent`). ``min_area_m2`` drops smaller
pieces; ``close_roads`` (with ``closure_hours`` and ``network``) closes the roads the
extent covers, for the department that closes roads as ``/network/closures``;
``collection`` writes the polygons (that gauge's earlier ones replaced).

The gauge's warning and danger levels are those of the alarm rules
(``layers/alarms/water.yaml``, in ``sta.alarm_levels``), read for its Thing; its latest
reading is ``sta.latest`` of its Thing's water-level datastream. The defaults and the
affected layers come from ``layers/floods.yaml`` (:mod:`spatial.flood.config`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import rasterio
import shapely
from psycopg import sql
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.windows import Window, from_bounds

from spatial import analysis, mosaic, terrain
from spatial.catalog import CollectionRecord
from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import LayerSchema, source
from spatial.flood import affected, config, engine
from spatial.inputs import number, text
from spatial.network import routing

MAX_CELLS = 100_000_000
"""The largest DEM the level method reads (its masks are one byte a cell)."""
MAX_RIVER_CELLS = 40_000_000
"""The largest window the river method computes on (about 20 bytes a cell)."""
LEVELS = ("warning", "danger")
METHODS = ("river", "level")


@dataclass(frozen=True)
class Gauge:
    """A gauge: where it is (CRS84), its thresholds by level, its latest reading."""

    key: str
    lon: float
    lat: float
    thresholds: dict[str, float]
    latest: float | None


_GAUGE_STREAM = """
SELECT l.result_number AS latest,
       (SELECT json_object_agg(lv.level, coalesce(lv.above, sta.feature_number(
                t.collection, t.feature_key, lv.attribute) + lv."offset"))
        FROM sta.alarm_rules r JOIN sta.alarm_levels lv ON lv.rule_id = r.id
        WHERE (lower(r.property) = lower(p.name) OR r.property = p.definition)
          AND (r.collection IS NULL OR r.collection = t.collection)
          AND r."window" IS NULL) AS thresholds
FROM sta.things t
JOIN sta.datastreams d ON d.thing_id = t.id
JOIN sta.observed_properties p ON p.id = d.observed_property_id
LEFT JOIN sta.latest l ON l.datastream_id = d.id
WHERE t.collection = %(c)s AND t.feature_key = %(k)s AND NOT t.retired
  AND (lower(p.name) = lower(%(p)s) OR p.definition = %(p)s)
ORDER BY d.id LIMIT 1
"""


async def gauge_of(
    conn: psycopg.AsyncConnection[Any], layer: LayerSchema, key: str, water_level: str
) -> Gauge:
    """A gauge of the gauges layer by its key, with its thresholds and latest reading.

    Raises:
        InvalidInputError: the layer has no key, or no such gauge.
    """
    if layer.key is None or layer.key not in layer.fields:
        msg = f"collection {layer.id!r} has no key attribute to name its gauges by"
        raise InvalidInputError(msg)
    statement = sql.SQL(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(t.geom), 4326) "
        "AS p FROM {} t WHERE t.{}::text = %s ORDER BY t.fid LIMIT 1) g"
    ).format(source(layer), sql.Identifier(layer.key))
    cur = await conn.execute(statement, (key,))
    row = await cur.fetchone()
    if row is None:
        msg = f"no gauge {key!r} in collection {layer.id!r}"
        raise InvalidInputError(msg)
    cur = await conn.execute(_GAUGE_STREAM, {"c": layer.id, "k": key, "p": water_level})
    stream = await cur.fetchone()
    latest, thresholds = stream if stream else (None, None)
    return Gauge(key, float(row[0]), float(row[1]),
                 {k: float(v) for k, v in (thresholds or {}).items() if v is not None},
                 None if latest is None else float(latest))  # fmt: skip


def level_of(inputs: dict[str, Any], gauge: Gauge, water_level: str) -> float:
    """The ``level`` input for a gauge: a number, ``warning``, ``danger``, ``latest``
    (the default)."""
    given = inputs.get("level", "latest")
    if given is None or given == "latest":
        if gauge.latest is None:
            msg = f"gauge {gauge.key!r} has no {water_level} reading: give a level"
            raise InvalidInputError(msg)
        return gauge.latest
    if isinstance(given, str):
        if given not in gauge.thresholds:
            known = ", ".join(sorted(gauge.thresholds)) or "none"
            msg = (f"input 'level': gauge {gauge.key!r} has no {given!r} level (its alarm "
                   f"levels: {known}); give a number, warning, danger or latest")  # fmt: skip
            raise InvalidInputError(msg)
        return gauge.thresholds[given]
    return number(inputs, "level", -500.0, 9000.0)


def elevation(record: CollectionRecord) -> None:
    """Refuse a raster collection that is not elevation (ingested with ``--kind elevation``).

    Raises:
        InvalidInputError: another kind of raster (imagery).
    """
    if not terrain.is_elevation(record):
        msg = (f"collection {record.id!r} is not an elevation model (it is imagery); "
               "ingest a DEM with --kind elevation")  # fmt: skip
        raise InvalidInputError(msg)


@dataclass(frozen=True)
class Window2:
    """A DEM read for the river method: heights, grid, the gauge's cell."""

    heights: engine.Heights
    grid: mosaic.Grid
    cell: tuple[int, int]


def _to_dem(crs: Any, lon: float, lat: float) -> tuple[float, float]:
    x, y = Transformer.from_crs("OGC:CRS84", crs, always_xy=True).transform(lon, lat)
    return float(x), float(y)


def read_window(path: Any, lon: float, lat: float, half_m: float) -> Window2:
    """The DEM around a point (``half_m`` each way, cut to the DEM), NaN where no data.

    Raises:
        InvalidInputError: the point is off the DEM, or the window is too large.
    """
    with rasterio.open(path) as src:
        x, y = _to_dem(src.crs, lon, lat)
        row, col = src.index(x, y)
        if not (0 <= row < src.height and 0 <= col < src.width):
            msg = f"the point ({lon:.6f}, {lat:.6f}) is outside the DEM"
            raise InvalidInputError(msg)
        win = (from_bounds(x - half_m, y - half_m, x + half_m, y + half_m, src.transform)
               .round_offsets().round_lengths()
               .intersection(Window(0, 0, src.width, src.height)))  # fmt: skip
        if win.width * win.height > MAX_RIVER_CELLS:
            msg = (f"the DEM window is {int(win.width)} x {int(win.height)} cells, more than "
                   f"{MAX_RIVER_CELLS:,}; give a smaller reach_m")  # fmt: skip
            raise InvalidInputError(msg)
        data = src.read(1, window=win, masked=True).astype("float32")
        transform = src.window_transform(win)
        grid = mosaic.Grid(src.crs, transform, int(win.width), int(win.height))
    heights = np.ma.filled(data, np.nan).astype(np.float32)
    return Window2(heights, grid, (int(row - win.row_off), int(col - win.col_off)))


def full_grid(path: Any) -> mosaic.Grid:
    """The whole DEM's grid.

    Raises:
        InvalidInputError: more than :data:`MAX_CELLS` cells.
    """
    with rasterio.open(path) as src:
        if src.width * src.height > MAX_CELLS:
            msg = (f"the DEM is {src.width} x {src.height} cells, more than {MAX_CELLS:,}: "
                   "too large for one flood extent")  # fmt: skip
            raise InvalidInputError(msg)
        return mosaic.Grid(src.crs, src.transform, src.width, src.height)


def seed_height(path: Any, lon: float, lat: float, level: float) -> tuple[int, int]:
    """The seed's cell, checked: on the DEM, with data, below the level.

    Raises:
        InvalidInputError: off the DEM, no data there, or ground at or above the level.
    """
    with rasterio.open(path) as src:
        x, y = _to_dem(src.crs, lon, lat)
        row, col = src.index(x, y)
        if not (0 <= row < src.height and 0 <= col < src.width):
            msg = f"input 'seed' ({lon:.6f}, {lat:.6f}) is outside the DEM"
            raise InvalidInputError(msg)
        value = src.read(1, window=Window(col, row, 1, 1), masked=True)
    if np.ma.is_masked(value):
        msg = f"input 'seed': the DEM has no height at ({lon:.6f}, {lat:.6f})"
        raise InvalidInputError(msg)
    ground = float(value[0, 0])
    if ground >= level:
        msg = (f"input 'level' ({level:g} m) is not above the ground at the seed "
               f"({ground:.2f} m): nothing is flooded there")  # fmt: skip
        raise InvalidInputError(msg)
    return int(row), int(col)


def channel_of(rivers: gpd.GeoDataFrame | None, grid: mosaic.Grid) -> engine.Mask | None:
    """The rivers rasterized on the grid (every cell a line touches), or None."""
    if rivers is None or rivers.empty:
        return None
    burnt = rasterize(((g, 1) for g in rivers.geometry if g is not None and not g.is_empty),
                      out_shape=(grid.height, grid.width), transform=grid.transform,
                      fill=0, dtype="uint8", all_touched=True)  # fmt: skip
    found: engine.Mask = burnt.astype(bool)
    return found if found.any() else None


def shapes_of(mask: engine.Mask, grid: mosaic.Grid, min_area: float) -> list[shapely.Geometry]:
    """The extent's polygons in the grid's CRS, pieces under ``min_area`` (m²) dropped
    (by their polygons' areas: a raster sieve would label the whole grid once more, the
    largest cost on a big DEM; small dry holes stay holes)."""
    found = [shapely.geometry.shape(g) for g in engine.polygons(mask, grid.transform)]
    return [p for p in found if p.area >= min_area]


def published(
    found: list[shapely.Geometry], areas: list[float], crs: Any, props: dict[str, Any],
    earlier: gpd.GeoDataFrame | None,
) -> gpd.GeoDataFrame:  # fmt: skip
    """The rows to write: this run's polygons and the earlier rows of other gauges."""
    frame = gpd.GeoDataFrame(
        {**{k: [v] * len(found) for k, v in props.items()}, "area_m2": areas},
        geometry=found, crs=crs.to_wkt(),
    )  # fmt: skip
    if earlier is not None and not earlier.empty:
        frame = pd.concat([earlier.to_crs(crs.to_wkt()), frame], ignore_index=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=crs.to_wkt())


async def earlier_rows(
    conn: psycopg.AsyncConnection[Any], layer: LayerSchema | None, gauge: str | None
) -> gpd.GeoDataFrame | None:
    """The rows of an extents collection that are not this gauge's (other gauges', or the
    gauges' when this is a seed's: a seed's run replaces the earlier seeds')."""
    wanted = ("level", "gauge", "method", "area_m2", "computed_at")
    if layer is None or any(c not in layer.fields for c in wanted):
        return None
    statement = sql.SQL(
        "SELECT t.level, t.gauge, t.method, t.area_m2, t.computed_at::text AS computed_at, "
        "ST_AsBinary(ST_Transform(t.geom, 4326)) AS wkb FROM {} t "
        "WHERE t.gauge IS DISTINCT FROM %(g)s::text"
    ).format(source(layer))
    cur = await conn.execute(statement, {"g": gauge})
    rows = await cur.fetchall()
    if not rows:
        return None
    columns = {c: [r[i] for r in rows] for i, c in enumerate(wanted)}
    frame = gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries.from_wkb(
        [bytes(r[5]) for r in rows], crs="OGC:CRS84"))  # fmt: skip
    frame["computed_at"] = pd.to_datetime(frame["computed_at"], utc=True, format="ISO8601")
    return frame


async def network_of(
    conn: psycopg.AsyncConnection[Any], lookup: Any, network: str
) -> routing.NetworkState:
    """A network whose roads the caller may read.

    Raises:
        NotFoundError: no such network, or its roads are not the caller's to read.
    """
    state = await routing.network_state(conn, network)
    lookup(state.collection)
    return state


def now() -> dt.datetime:
    """The time an extent is computed at (UTC)."""
    return dt.datetime.now(dt.UTC)


def check_method_inputs(inputs: dict[str, Any]) -> str:
    """``river`` (a gauge) or ``level`` (a seed and a level).

    Raises:
        InvalidInputError: both, neither, or a seed without a level.
    """
    has_gauge, has_seed = inputs.get("gauge") is not None, inputs.get("seed") is not None
    if has_gauge and has_seed:
        raise InvalidInputError("give either 'gauge' or 'seed' (with 'level'), not both")
    if has_seed:
        if not isinstance(inputs.get("level"), int | float) or isinstance(
            inputs.get("level"), bool
        ):
            raise InvalidInputError("input 'level' (metres, the DEM's datum) goes with 'seed'")
        return "level"
    if not has_gauge:
        msg = "give 'gauge' (a water gauge's key) or 'seed' (a GeoJSON point) and 'level'"
        raise InvalidInputError(msg)
    text(inputs, "gauge")
    return "river"


def seed_point(inputs: dict[str, Any]) -> tuple[float, float]:
    """The ``seed`` input: a GeoJSON Point in CRS84 (or ``[lon, lat]``)."""
    given = inputs.get("seed")
    if isinstance(given, list):
        given = {"type": "Point", "coordinates": given}
    wkt = analysis.geometry_input({"seed": given}, "seed")
    point = shapely.from_wkt(wkt)
    if point.geom_type != "Point":
        raise InvalidInputError(f"input 'seed' must be a Point, not a {point.geom_type}")
    return float(point.x), float(point.y)


def flag(inputs: dict[str, Any], name: str) -> bool:
    """A boolean input (default false)."""
    value = inputs.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInputError(f"input {name!r} must be true or false")
    return value


def hours(inputs: dict[str, Any]) -> float:
    """``closure_hours``: how long the closure lasts (default 12)."""
    return number(inputs, "closure_hours", 0.1, config.MAX_CLOSURE_HOURS, 12.0)


def collection_input(inputs: dict[str, Any]) -> str | None:
    """``collection``: the id to write the polygons as (checked like an ingest's)."""
    from spatial.ingest.publish import check_collection_id  # noqa: PLC0415 - the ingests' rule

    target = text(inputs, "collection")
    if target is not None:
        check_collection_id(target)
    return target


def missing(exc: NotFoundError, what: str) -> InvalidInputError:
    """A NotFoundError about an input, said as bad input."""
    return InvalidInputError(f"input {what!r}: {exc}")


async def run_flood(conn: psycopg.AsyncConnection[Any], ctx: Any, inputs: dict[str, Any],
                    conf: config.Floods | None = None) -> dict[str, Any]:  # fmt: skip
    """flood-extent: every input checked, and the closing of roads allowed, before any
    work; then the extent, what it covers, the closure and the collection (``conf``: the
    floods configuration, by default :func:`spatial.flood.config.load`'s)."""
    conf = conf or config.load()
    method = check_method_inputs(inputs)
    dem_id = text(inputs, "dem") or conf.dem
    elevation(ctx.raster(dem_id))
    min_area = number(inputs, "min_area_m2", 0.0, 1e7, conf.min_area_m2)
    reach = number(inputs, "reach_m", 10.0, 50_000.0, conf.reach_m)
    close, target = flag(inputs, "close_roads"), collection_input(inputs)
    closure_hours, network = hours(inputs), text(inputs, "network") or conf.network
    if close:
        ctx.may_close_roads()
        await network_of(conn, ctx, network)
    done = await _compute(conn, ctx, conf, inputs, dem_id=dem_id, reach=reach)
    mask, grid, level, gauge, bed = done.mask, done.grid, done.level, done.gauge, done.bed
    lon, lat = done.lonlat
    found = await analysis.threaded(shapes_of, mask, grid, min_area)
    del mask
    areas = [round(float(p.area), 1) for p in found]
    features = analysis.lonlat_features(found, grid.crs, [{"area_m2": a} for a in areas])
    shape = _shape(found, grid.crs, features)
    out: dict[str, Any] = {
        "level": round(level, 3), "gauge": gauge.key if gauge else None,
        "seed": [round(lon, 7), round(lat, 7)], "method": method, "dem": dem_id,
        "area_m2": round(sum(areas), 1),
        "extent": {"type": "FeatureCollection", "features": features},
        "affected": [], "population": {"total": 0, "by_district": []},
        "closures": [], "collection": None,
    }  # fmt: skip
    if bed is not None:
        out["bed"] = round(bed, 3)
    if shape is not None:
        out["affected"], out["population"] = await _covered(conn, ctx, conf, shape)
    computed = now()
    if close and shape is not None:
        reason = (
            f"洪水淹没 Flood extent at {level:.2f} m "
            f"({f'gauge {gauge.key}' if gauge else f'seed {lon:.5f}, {lat:.5f}'}, "
            f"{method} method, computed {computed.isoformat(timespec='seconds')})"
        )
        made = await ctx.close_roads(network, reason, _lonlat_union(features).wkt,
                                     computed + dt.timedelta(hours=closure_hours))  # fmt: skip
        out["closures"] = [{"id": made.id, "reason": made.reason,
                            "expires_at": made.expires_at.isoformat()}]  # fmt: skip
    if target is not None:
        out["collection"] = await _publish(conn, ctx, target, found=found, areas=areas,
                                           crs=grid.crs, props={
            "level": round(level, 3), "gauge": gauge.key if gauge else None, "method": method,
            "computed_at": pd.Timestamp(computed)})  # fmt: skip
    return out


@dataclass(frozen=True)
class Computed:
    """An extent as computed: the mask on its grid, the level, where the water comes from."""

    mask: engine.Mask
    grid: mosaic.Grid
    level: float
    lonlat: tuple[float, float]
    gauge: Gauge | None = None
    bed: float | None = None


async def _compute(conn: psycopg.AsyncConnection[Any], ctx: Any, conf: config.Floods,
                   inputs: dict[str, Any], *, dem_id: str, reach: float) -> Computed:  # fmt: skip
    """The flooded cells by the river method (a gauge) or the level method (a seed)."""
    scene = await mosaic.newest(conn, ctx.rasters, dem_id, None, None)
    rivers = affected.optional(ctx, conf.rivers)
    if inputs.get("gauge") is None:
        lon, lat = seed_point(inputs)
        level = number(inputs, "level", -500.0, 9000.0)
        grid = await analysis.threaded(full_grid, scene.data)
        cell = await analysis.threaded(seed_height, scene.data, lon, lat, level)
        frame = (await analysis.zones_frame(conn, rivers, grid.crs, grid.bounds, [])
                 if rivers is not None else None)  # fmt: skip
        mask = await analysis.threaded(_level, scene.data, grid, frame, level, cell)
        return Computed(mask, grid, level, (lon, lat))
    if rivers is None:
        msg = f"the river method needs the rivers (collection {conf.rivers!r})"
        raise InvalidInputError(msg)
    gauges = ctx(text(inputs, "gauges") or conf.gauges)
    gauge = await gauge_of(conn, gauges, str(text(inputs, "gauge")), conf.water_level)
    level = level_of(inputs, gauge, conf.water_level)
    area = await analysis.threaded(read_window, scene.data, gauge.lon, gauge.lat, 2 * reach)
    frame = await analysis.zones_frame(conn, rivers, area.grid.crs, area.grid.bounds, [])
    mask, bed = await analysis.threaded(_river, area, frame, level, reach)
    return Computed(mask, area.grid, level, (gauge.lon, gauge.lat), gauge, bed)


def _river(area: Window2, rivers: gpd.GeoDataFrame, level: float, reach: float
           ) -> tuple[engine.Mask, float]:  # fmt: skip
    channel = channel_of(rivers, area.grid)
    if channel is None:
        raise InvalidInputError("no river runs through the DEM near the gauge")
    # The drainage is the gauge's own river, the one nearest to it: a main river's stage
    # says nothing of a tributary's depth (measured from a tributary's shallower bed, the
    # main river's depth would flood its whole valley). The other rivers' channels are
    # still no flooded land.
    row, col = area.cell
    x, y = area.grid.transform * (col + 0.5, row + 0.5)
    lines = rivers.geometry[~(rivers.geometry.isna() | rivers.geometry.is_empty)]
    own = channel_of(rivers.loc[[lines.distance(shapely.Point(x, y)).idxmin()]], area.grid)
    cell = float(abs(area.grid.transform.a))
    extent = engine.river_extent(area.heights, own if own is not None else channel, area.cell,
                                 None, level=level, reach_cells=reach / cell)  # fmt: skip
    return extent.flooded & ~channel, float(extent.bed if extent.bed is not None else np.nan)


def _level(path: Any, grid: mosaic.Grid, rivers: gpd.GeoDataFrame | None, level: float,
           cell: tuple[int, int]) -> engine.Mask:  # fmt: skip
    below, _ = engine.below_in_strips(path, level)
    return engine.level_extent(below, cell, channel_of(rivers, grid)).flooded


def _multi(parts: list[shapely.Geometry]) -> shapely.Geometry:
    return shapely.make_valid(shapely.MultiPolygon(
        [g for p in parts for g in getattr(p, "geoms", [p])]))  # fmt: skip


def _lonlat_union(features: list[dict[str, Any]]) -> shapely.Geometry:
    """The extent as one (Multi)Polygon in CRS84 (what a closure covers)."""
    return _multi([shapely.geometry.shape(f["geometry"]) for f in features])


def _shape(found: list[shapely.Geometry], crs: Any, features: list[dict[str, Any]]
           ) -> affected.Shape | None:  # fmt: skip
    """The extent for the SQL: in the DEM's CRS when it has an EPSG code (the layers' CRS
    as often as not: exact), else in CRS84; None when nothing is flooded."""
    if not found:
        return None
    srid = crs.to_epsg()
    if srid is not None:
        return affected.Shape(bytes(shapely.to_wkb(_multi(found))), int(srid))
    return affected.Shape(bytes(shapely.to_wkb(_lonlat_union(features))), 4326)


async def _covered(conn: psycopg.AsyncConnection[Any], ctx: Any, conf: config.Floods,
                   wkb: affected.Shape) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """The affected layers' features and the population inside the extent."""
    districts = None
    if conf.districts is not None:
        zones = affected.optional(ctx, conf.districts.collection)
        if zones is not None and {conf.districts.key, conf.districts.name} <= set(zones.fields):
            districts = (zones, conf.districts)
    listed = []
    for entry in conf.affected:
        layer = affected.optional(ctx, entry.collection)
        if layer is not None:
            listed.append(await affected.listed(conn, layer, entry, wkb, districts))
    people = await affected.population(conn, ctx, conf.population, districts, wkb)
    return listed, people


async def _publish(conn: psycopg.AsyncConnection[Any], ctx: Any, target: str, *,
                   found: list[shapely.Geometry], areas: list[float], crs: Any,
                   props: dict[str, Any]) -> str | None:  # fmt: skip
    """Write the polygons as ``target`` (that gauge's earlier ones replaced)."""
    layer = affected.optional(ctx, target)
    earlier = await earlier_rows(conn, layer, props["gauge"])
    frame = published(found, areas, crs, props, earlier)
    if frame.empty:
        return None
    title = f"洪水淹没范围 Flood extent ({props['gauge'] or 'seed'}, {props['level']:g} m)"
    result: str = await ctx.publish(frame, target, title)
    return result
