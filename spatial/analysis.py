"""Imagery x vector processes, the 3S link (OGC API - Processes):

- ``zonal-statistics``: statistics of a band or an index (``ndvi``, any band math) of a
  scene over each feature of a vector layer (exactextract: exact pixel coverage
  fractions), returned, and optionally written back as a new vector collection;
- ``change-detection``: the index of two scenes differenced on one grid, changes beyond a
  threshold polygonised (small blobs sieved out), and the parcels they touch with their
  changed area: "which parcels were built on this year";
- ``water-extraction``: NDWI above a threshold as water polygons (a flood extent),
  optionally written back.

Scenes are read from their native COGs; a second scene on another grid is warped onto
the first's. Areas are in square metres in the scene's CRS when it is projected.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from exactextract import exact_extract
from psycopg import sql
from rasterio.features import shapes, sieve

from spatial import distributed
from spatial.errors import InvalidInputError
from spatial.features import LayerSchema, source
from spatial.inputs import number, text
from spatial.mosaic import Grid, Scene, grid_of, index_values, newest
from spatial.rasterstore import reading

STATS = ("mean", "min", "max", "median", "stdev", "sum", "count", "majority")
MAX_ZONES = 250_000


def polygons(mask: np.ndarray, grid: Grid, min_area: float) -> list[shapely.Geometry]:
    """The true areas of a boolean raster as polygons in the grid's CRS, blobs smaller
    than ``min_area`` (m²) removed before polygonising."""
    pixels = max(1, round(min_area / grid.pixel_area))
    cleaned = (
        sieve(mask.astype("uint8"), size=pixels, connectivity=8)
        if pixels > 1
        else mask.astype("uint8")
    )
    found = [
        shapely.geometry.shape(g)
        for g, v in shapes(cleaned, mask=cleaned.astype(bool), transform=grid.transform)
        if v == 1
    ]
    return [p for p in found if p.area >= min_area]


async def zones_frame(
    conn: Any, layer: LayerSchema, crs: Any, bounds: tuple[float, ...] | None, columns: list[str],
    *, within: str | None = None,
) -> gpd.GeoDataFrame:  # fmt: skip
    """The features of a vector layer (as the caller may see them) in ``crs``, within
    ``bounds`` (in ``crs``) when given, and meeting the polygon ``within`` (WKT in CRS84)
    when given.

    Raises:
        InvalidInputError: more than :data:`MAX_ZONES` features.
    """
    missing = [c for c in columns if c not in layer.fields]
    if missing:
        msg = f"collection {layer.id!r} has no property {missing[0]!r}"
        raise InvalidInputError(msg)
    where: sql.Composable = sql.SQL("TRUE")
    params: dict[str, Any] = {}
    if bounds is not None:
        srid = pyproj.CRS.from_user_input(crs.to_wkt()).to_epsg()
        if srid is not None:
            where = sql.SQL(
                "t.geom && ST_Transform(ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, %(srid)s), {})"
            ).format(sql.Literal(layer.srid))
            params = dict(zip(("w", "s", "e", "n"), bounds, strict=True)) | {"srid": srid}
    if within is not None:
        meets = "{} AND ST_Intersects(t.geom, ST_Transform(ST_GeomFromText(%(within)s, 4326), {}))"
        where = sql.SQL(meets).format(where, sql.Literal(layer.srid))
        params["within"] = within
    select = sql.SQL(", ").join(
        [sql.SQL("t.fid"), sql.SQL("ST_AsBinary(t.geom)")]
        + [sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns]
    )
    statement = sql.SQL("SELECT {} FROM {} t WHERE {} LIMIT {}").format(
        select, source(layer), where, sql.Literal(MAX_ZONES + 1)
    )
    cur = await conn.execute(statement, params)
    rows = await cur.fetchall()
    if len(rows) > MAX_ZONES:
        msg = f"more than {MAX_ZONES:,} features; filter the layer or use a smaller area"
        raise InvalidInputError(msg)
    frame = gpd.GeoDataFrame(
        {
            "id": [r[0] for r in rows],
            **{c: [r[i + 2] for r in rows] for i, c in enumerate(columns)},
        },
        geometry=gpd.GeoSeries.from_wkb([bytes(r[1]) for r in rows], crs=f"EPSG:{layer.srid}"),
    )
    return frame.to_crs(crs.to_wkt())


def zonal(
    values: np.ma.MaskedArray, grid: Grid, zones: gpd.GeoDataFrame, stats: list[str]
) -> pd.DataFrame:
    """``stats`` of ``values`` over each zone (exact coverage fractions)."""
    if zones.empty:
        return pd.DataFrame(columns=["id", *stats])
    filled = np.ma.filled(values.astype("float64"), np.nan)
    west, south, east, north = grid.bounds
    from exactextract.raster import NumPyRasterSource  # noqa: PLC0415 - only here

    raster = NumPyRasterSource(
        filled, west, south, east, north, nodata=np.nan, srs_wkt=grid.crs.to_wkt()
    )
    # exactextract takes a column named "id" for its own numbering: pass another name.
    keyed = zones[["id", "geometry"]].rename(columns={"id": "zone_key"})
    result = exact_extract(
        raster,
        keyed,
        stats,
        include_cols=["zone_key"],
        output="pandas",
        strategy="feature-sequential",
    )
    result = result.rename(columns={"zone_key": "id"})
    result["id"] = result["id"].astype(zones["id"].dtype)
    return result


def lonlat_features(
    geoms: list[shapely.Geometry], crs: Any, props: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """GeoJSON features in CRS84 from geometries in ``crs``."""
    if not geoms:
        return []
    series = gpd.GeoSeries(geoms, crs=crs.to_wkt()).to_crs("OGC:CRS84")
    return [
        {
            "type": "Feature",
            "geometry": json.loads(shapely.to_geojson(shapely.set_precision(g, 1e-7))),
            "properties": p,
        }
        for g, p in zip(series, props, strict=True)
    ]


def write_gpkg(frame: gpd.GeoDataFrame, folder: Path, name: str) -> Path:
    """A GeoPackage of ``frame`` to ingest as a new collection."""
    path = folder / f"{name}.gpkg"
    frame.to_file(path, layer=name, driver="GPKG")
    return path


async def threaded(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run CPU work off the event loop (rasters opened from the raster store)."""

    def work() -> Any:
        with reading():
            return fn(*args, **kwargs)

    return await asyncio.to_thread(work)


def stats_input(inputs: Mapping[str, Any]) -> list[str]:
    """The ``stats`` input: names of :data:`STATS` (default mean)."""
    asked = inputs.get("stats") or ["mean"]
    if isinstance(asked, str):
        asked = [asked]
    if not isinstance(asked, list) or not asked or any(s not in STATS for s in asked):
        msg = f"input 'stats' must be a list of {', '.join(STATS)}"
        raise InvalidInputError(msg)
    return list(dict.fromkeys(asked))


def temp_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="spatial-process-")


def geometry_input(inputs: Mapping[str, Any], name: str, *, polygonal: bool = False) -> str:
    """A GeoJSON geometry input, checked, as WKT (CRS84)."""
    value = inputs.get(name)
    if value is None:
        msg = f"input {name!r} is required"
        raise InvalidInputError(msg)
    try:
        shape = shapely.geometry.shape(value)
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.GEOSException) as exc:
        msg = f"input {name!r} is not a GeoJSON geometry: {exc}"
        raise InvalidInputError(msg) from exc
    if shape.is_empty or not shape.is_valid:
        reason = "it is empty" if shape.is_empty else shapely.is_valid_reason(shape)
        msg = f"input {name!r} is not a valid geometry: {reason}"
        raise InvalidInputError(msg)
    if polygonal and shape.geom_type not in {"Polygon", "MultiPolygon"}:
        msg = f"input {name!r} must be a polygon, not a {shape.geom_type}"
        raise InvalidInputError(msg)
    west, south, east, north = shape.bounds
    if west < -180 or east > 180 or south < -90 or north > 90:
        msg = f"input {name!r} must be in lon/lat degrees (CRS84)"
        raise InvalidInputError(msg)
    return str(shape.wkt)


async def _scene_input(conn: Any, ctx: Any, inputs: Mapping[str, Any], item_key: str) -> Scene:
    collection = text(inputs, "raster")
    if collection is None:
        raise InvalidInputError("input 'raster' (an imagery collection id) is required")
    ctx.raster(collection)
    return await newest(
        conn,
        ctx.rasters,
        collection,
        text(inputs, item_key),
        text(inputs, "datetime") if item_key == "item" else None,
    )


async def run_zonal(conn: Any, ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """zonal-statistics: ``stats`` of ``expression`` (or ``band``) of a scene per zone."""
    item = await _scene_input(conn, ctx, inputs, "item")
    expression = text(inputs, "expression") or text(inputs, "band") or "ndvi"
    stats = stats_input(inputs)
    zones_id = text(inputs, "zones")
    drawn = None
    if inputs.get("geometry") is not None:
        drawn = geometry_input(inputs, "geometry", polygonal=True)
    elif zones_id is None:
        msg = "input 'zones' (a vector collection id) or 'geometry' (a polygon) is required"
        raise InvalidInputError(msg)
    keep = [c for c in (inputs.get("properties") or []) if isinstance(c, str)]
    on_dask = await _on_dask(inputs, item)
    grid = await threaded(distributed.full_grid if on_dask else grid_of, item.data)
    if zones_id is None:  # the drawn polygon is the one zone
        shape = shapely.from_wkt(drawn)
        zones = gpd.GeoDataFrame({"id": [1]}, geometry=[shape], crs="OGC:CRS84")
        zones = zones.to_crs(grid.crs.to_wkt())
        zones_id = "the drawn area"
    else:
        layer = ctx(zones_id)
        zones = await zones_frame(conn, layer, grid.crs, grid.bounds, keep, within=drawn)
    if on_dask:
        conf = distributed.DaskSettings()
        table = await threaded(distributed.zonal, item, expression, grid, zones, stats,
                               dask=distributed.client(conf), chunk=conf.chunk)  # fmt: skip
    else:
        values = await threaded(index_values, item, expression, grid)
        table = await threaded(zonal, values, grid, zones, stats)
    merged = zones.drop(columns="geometry").merge(table, on="id", how="left")
    records = json.loads(merged.to_json(orient="records", date_format="iso"))
    out: dict[str, Any] = {
        "item": item.id,
        "datetime": item.datetime.isoformat(),
        "expression": expression,
        "zones": records,
    }
    target = text(inputs, "output_collection")
    if target is not None:
        frame = zones.merge(table, on="id", how="left").rename(columns={"id": "zone_id"})
        out["collection"] = await ctx.publish(frame, target, f"{expression} by {zones_id}")
    return out


async def _on_dask(inputs: Mapping[str, Any], item: Scene) -> bool:
    """Whether a raster process runs on Dask (asked, or a scene above the threshold)."""
    size = await threaded(lambda: (g := distributed.full_grid(item.data)).width * g.height)
    return distributed.engine_of(dict(inputs), size, distributed.DaskSettings().threshold_pixels)


async def run_change(conn: Any, ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """change-detection: ``index`` of ``before`` minus ``after`` beyond ``threshold``."""
    before = await _scene_input(conn, ctx, inputs, "before")
    after = await _scene_input(conn, ctx, inputs, "after")
    if before.id == after.id:
        raise InvalidInputError("inputs 'before' and 'after' must be two different scenes")
    expression = text(inputs, "index") or "ndvi"
    threshold = number(inputs, "threshold", 0.0, 1000.0, 0.3)
    direction = text(inputs, "direction") or "decrease"
    if direction not in {"decrease", "increase", "both"}:
        raise InvalidInputError("input 'direction' must be decrease, increase or both")
    min_area = number(inputs, "min_area", 0.0, 1e7, 300.0)
    min_share = number(inputs, "min_parcel_share", 0.0, 1.0, 0.25)
    on_dask = await _on_dask(inputs, after)
    grid = await threaded(distributed.full_grid if on_dask else grid_of, after.data)
    if on_dask:
        conf = distributed.DaskSettings()
        changed = await threaded(distributed.changed_mask, before, after, expression, grid,
                                 threshold, direction, dask=distributed.client(conf),
                                 chunk=conf.chunk)  # fmt: skip
    else:
        old = await threaded(index_values, before, expression, grid)
        new = await threaded(index_values, after, expression, grid)
        delta = (
            np.ma.filled(old - new, 0.0)
            if direction != "increase"
            else np.ma.filled(new - old, 0.0)
        )
        changed = np.abs(delta) >= threshold if direction == "both" else delta >= threshold
    found = await threaded(polygons, changed, grid, min_area)
    areas = [round(p.area, 1) for p in found]
    out: dict[str, Any] = {
        "before": before.id,
        "after": after.id,
        "index": expression,
        "threshold": threshold,
        "changed_area_m2": round(sum(areas), 1),
        "changes": {
            "type": "FeatureCollection",
            "features": lonlat_features(found, grid.crs, [{"area_m2": a} for a in areas]),
        },
    }
    parcels_id = text(inputs, "parcels")
    if parcels_id is not None and found:
        layer = ctx(parcels_id)
        keep = [c for c in (inputs.get("properties") or []) if isinstance(c, str)]
        parcels = await zones_frame(conn, layer, grid.crs, grid.bounds, keep)
        out["parcels"] = await threaded(_affected, parcels, found, min_share, on_dask)
    elif parcels_id is not None:
        out["parcels"] = []
    return out


def _affected(
    parcels: gpd.GeoDataFrame, found: list[shapely.Geometry], min_share: float,
    on_dask: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    """Parcels with at least ``min_share`` of their area changed."""
    if on_dask:  # the parcels in spatial partitions on the cluster
        conf = distributed.DaskSettings()
        parts = distributed.overlay(
            parcels.geometry, parcels["id"], gpd.GeoSeries(found), [0] * len(found),
            geographic=False, srid=0, dask=distributed.client(conf), partition=conf.partition,
        )  # fmt: skip
        parts = parts[parts["area"] > 0]
        if parts.empty:
            return []
        per = parts.groupby("group")["area"].sum().rename("changed").rename_axis("id")
    else:
        changes = gpd.GeoDataFrame(geometry=found, crs=parcels.crs)
        hits = gpd.overlay(parcels, changes, how="intersection", keep_geom_type=True)
        if hits.empty:
            return []
        hits["changed"] = hits.geometry.area
        per = hits.groupby("id")["changed"].sum()
    total = parcels.set_index("id").geometry.area
    share = per / total.loc[per.index]
    rows = parcels.set_index("id").loc[per.index].drop(columns="geometry")
    rows["changed_area_m2"] = per.round(1)
    rows["changed_share"] = share.round(4)
    rows = rows[rows["changed_share"] >= min_share].sort_values("changed_area_m2", ascending=False)
    listed: list[dict[str, Any]] = json.loads(
        rows.reset_index().to_json(orient="records", date_format="iso")
    )
    return listed


async def run_water(conn: Any, ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """water-extraction: ``index`` (NDWI) above ``threshold`` as polygons."""
    item = await _scene_input(conn, ctx, inputs, "item")
    expression = text(inputs, "index") or "ndwi"
    threshold = number(inputs, "threshold", -1000.0, 1000.0, 0.0)
    min_area = number(inputs, "min_area", 0.0, 1e7, 500.0)
    grid = await threaded(grid_of, item.data)
    values = await threaded(index_values, item, expression, grid)
    water = np.ma.filled(values > threshold, False)
    found = await threaded(polygons, water, grid, min_area)
    areas = [round(p.area, 1) for p in found]
    out: dict[str, Any] = {
        "item": item.id,
        "index": expression,
        "threshold": threshold,
        "water_area_m2": round(sum(areas), 1),
        "water": {
            "type": "FeatureCollection",
            "features": lonlat_features(found, grid.crs, [{"area_m2": a} for a in areas]),
        },
    }
    target = text(inputs, "output_collection")
    if target is not None and found:
        frame = gpd.GeoDataFrame({"area_m2": areas}, geometry=found, crs=grid.crs.to_wkt())
        out["collection"] = await ctx.publish(frame, target, f"Water from {item.id}")
    return out
