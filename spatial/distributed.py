"""Heavy analytics on Dask: zonal statistics, change detection and vector overlays run
chunked on a cluster, with the single-process path's results.

The cluster is ``SPATIAL_DASK_SCHEDULER`` (an existing scheduler's address) or, when it
is empty, a :class:`~distributed.LocalCluster` started on first use (one worker process
per CPU, one thread each, ``SPATIAL_DASK_MEMORY_LIMIT`` per worker). Workers open the
scenes by their paths, in the caller's GDAL options (the raster store's, see
:func:`spatial.rasterstore.reading`): a remote cluster's workers must reach them (the S3
store, or a shared folder at the same path). Results never depend on the number of
workers:

- zonal statistics: the raster is cut into windows aligned with its (COG) blocks. Each
  window is read on a worker (the index evaluated one block row at a time, so a task
  holds the window's float64 values and one strip's temporaries: about 100 MB for 2048
  px) and exactextract gives, per zone meeting it, the partial moments of its covered
  pixels (the same coverage rule as the single-process path, which runs exactextract on
  the whole grid): count = sum of coverage, sum, min, max and the weighted variance (M2
  = variance x count); the client combines them (Chan's parallel formulas). ``median``
  and ``majority`` do not combine from partials: then each task takes whole zones (those
  whose bounds start in its window) and reads the window around them, so exactextract
  sees every pixel of a zone (a task's memory is then that of its largest zone's box);
- change detection: the changed mask is computed per window on workers (both scenes read
  and the index differenced there) and sent back bit-packed; sieving and polygonising
  the assembled mask stay one step, as blobs cross windows;
- overlays (``area-by-zone``, ``intersect-summarise``, the parcels of a change): the
  features are cut into spatial partitions (sorted by the Hilbert index of their
  centres), each partition is intersected with the zones on a worker, and the partial
  counts and areas per group are summed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio
import shapely
from affine import Affine
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from spatial.errors import InvalidInputError
from spatial.mosaic import Grid, index_values

ENGINES = ("dask", "single")
DECOMPOSABLE = frozenset({"count", "sum", "mean", "min", "max", "stdev"})


class DaskSettings(BaseSettings):
    """Where heavy analytics run, and when."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_DASK_", extra="ignore")

    scheduler: str = ""
    """An existing scheduler's address (``tcp://10.0.0.5:8786``); empty: a LocalCluster
    started on first use."""
    workers: int | None = Field(default=None, ge=1)
    """Workers of the LocalCluster [the CPUs]."""
    memory_limit: str = "auto"
    """Memory of each LocalCluster worker (``1GiB``; ``auto``: the machine's share)."""
    chunk: int = Field(default=2048, ge=64)
    """Side of a raster window in pixels (rounded up to whole blocks of the file)."""
    threshold_pixels: int = Field(default=100_000_000, ge=0)
    """A raster process over more pixels runs on Dask (0: only when asked)."""
    threshold_features: int = Field(default=1_000_000, ge=0)
    """An overlay of more features runs on Dask (0: only when asked)."""
    partition: int = Field(default=20_000, ge=100)
    """Features in a partition of an overlay."""


_lock = threading.Lock()
_client: Any = None


def client(settings: DaskSettings | None = None) -> Any:
    """The cluster's client, connected (or the LocalCluster started) on first use."""
    global _client  # noqa: PLW0603 - one client per process
    with _lock:
        if _client is None or _client.status not in {"running", "connecting"}:
            from distributed import Client, LocalCluster  # noqa: PLC0415 - heavy import

            settings = settings or DaskSettings()
            if settings.scheduler:
                _client = Client(settings.scheduler, set_as_default=False)  # type: ignore[no-untyped-call]
            else:
                cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=settings.workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=settings.memory_limit,
                    dashboard_address=":0",
                )
                _client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        return _client


def use(existing: Any) -> None:
    """Run on ``existing`` (a connected :class:`distributed.Client`) from now on."""
    global _client  # noqa: PLW0603
    with _lock:
        _client = existing


def close() -> None:
    """Close the client (and the LocalCluster it started)."""
    global _client  # noqa: PLW0603
    with _lock:
        if _client is not None:
            cluster = getattr(_client, "cluster", None)
            _client.close()
            if cluster is not None:
                cluster.close()
        _client = None


def engine_of(inputs: dict[str, Any], size: int, threshold: int) -> bool:
    """Whether a process runs on Dask: asked (``"engine": "dask"``), or ``size`` above
    ``threshold`` (unless ``"engine": "single"``).

    Raises:
        InvalidInputError: an unknown engine.
    """
    asked = inputs.get("engine")
    if asked is not None and asked not in ENGINES:
        msg = f"input 'engine' must be one of {', '.join(ENGINES)}"
        raise InvalidInputError(msg)
    if asked is not None:
        return bool(asked == "dask")
    return 0 < threshold < size


_NOT_SENT = frozenset({
    "GDAL_DATA", "PROJ_LIB", "PROJ_DATA",  # this machine's paths
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",  # rasterio's session's
})  # fmt: skip


def _gdal_options() -> dict[str, Any]:
    """The GDAL options of the caller's ``rasterio.Env`` (the raster store's S3 endpoint
    and the like, :func:`spatial.rasterstore.reading`), without this machine's paths and
    without credentials (never sent to the cluster): the workers take them from their own
    AWS_* environment (inherited by a LocalCluster; a remote cluster's workers need
    theirs)."""
    if not rasterio.env.hasenv():
        return {}
    return {k: v for k, v in rasterio.env.getenv().items() if k not in _NOT_SENT}


def _within(options: dict[str, Any], fn: Callable[..., Any], *args: Any) -> Any:
    """On a worker: ``fn(*args)`` inside the caller's GDAL options."""
    if not options:
        return fn(*args)
    with rasterio.Env(**options):
        return fn(*args)


def _run(tasks: Sequence[tuple[Any, ...]], fn: Callable[..., Any], dask: Any) -> list[Any]:
    """``fn(*task)`` for every task, on the cluster (``dask``, in the caller's GDAL
    options: rasters of an S3 store are read there too) or here (None)."""
    if dask is None:
        return [fn(*t) for t in tasks]
    options = _gdal_options()
    futures = [dask.submit(_within, options, fn, *t, pure=False) for t in tasks]
    results: list[Any] = dask.gather(futures)
    return results


# --- raster windows --------------------------------------------------------------------


def windows(path: Any, grid: Any, chunk: int) -> list[tuple[int, int, int, int]]:
    """(col, row, width, height) windows over ``grid``, sides whole blocks of the file."""
    with rasterio.open(path) as src:
        block_h, block_w = src.block_shapes[0]
    step_w = max(1, -(-chunk // block_w)) * block_w
    step_h = max(1, -(-chunk // block_h)) * block_h
    return [
        (col, row, min(step_w, grid.width - col), min(step_h, grid.height - row))
        for row in range(0, grid.height, step_h)
        for col in range(0, grid.width, step_w)
    ]


def subgrid(grid: Any, col: int, row: int, width: int, height: int) -> Any:
    """The part of ``grid`` from pixel (col, row), width x height."""

    return Grid(grid.crs, grid.transform * Affine.translation(col, row), width, height)


def full_grid(path: Any) -> Any:
    """A scene's whole native grid (no pixel limit: windows keep memory bounded)."""

    with rasterio.open(path) as src:
        return Grid(src.crs, src.transform, src.width, src.height)


def _strips(path: Any, grid: Any) -> list[tuple[int, int]]:
    """(row, height) strips of ``grid``, one block row of the file high: the index is
    evaluated strip by strip (its float64 temporaries take some 65 bytes a pixel), so a
    task's memory is the window's result and one strip's temporaries."""
    with rasterio.open(path) as src:
        step = max(64, src.block_shapes[0][0])
    return [(row, min(step, grid.height - row)) for row in range(0, grid.height, step)]


def _window_values(item: Any, expression: str, grid: Any) -> np.ndarray:
    """The index over ``grid`` as float64, NaN where masked (as the single-process path's
    ``index_values(...).astype("float64")`` filled with NaN: the index is per pixel)."""

    out = np.empty((grid.height, grid.width), dtype="float64")
    for row, height in _strips(item.data, grid):
        part = subgrid(grid, 0, row, grid.width, height)
        strip = index_values(item, expression, part)
        out[row : row + height] = np.ma.filled(strip.astype("float64"), np.nan)
        del strip
    return out


def _extract(values: np.ndarray, grid: Any, zones: gpd.GeoDataFrame, stats: list[str]) -> Any:
    from exactextract import exact_extract  # noqa: PLC0415 - only on the workers
    from exactextract.raster import NumPyRasterSource  # noqa: PLC0415 - only on the workers

    west, south, east, north = grid.bounds
    raster = NumPyRasterSource(
        values, west, south, east, north, nodata=np.nan, srs_wkt=grid.crs.to_wkt()
    )
    return exact_extract(raster, zones, stats, include_cols=["zone_key"], output="pandas",
                         strategy="feature-sequential")  # fmt: skip


def _zone_frame(keys: np.ndarray, wkb: list[bytes], crs: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"zone_key": keys}, geometry=shapely.from_wkb(wkb), crs=crs)


def _partials(
    item: Any, expression: str, grid: Any, keys: np.ndarray, wkb: list[bytes]
) -> pd.DataFrame:
    """On a worker: per zone of ``keys``, the partial moments of its pixels in ``grid``."""
    values = _window_values(item, expression, grid)
    # exactextract's own moments (no per-pixel arrays): count = sum of coverage, sum,
    # min, max, variance (coverage-weighted, about the zone's mean in the window).
    found = _extract(values, grid, _zone_frame(keys, wkb, grid.crs.to_wkt()),
                     ["count", "sum", "min", "max", "variance"])  # fmt: skip
    del values
    found = found[found["count"] > 0]  # no valid pixel of the zone in this window
    n = found["count"].to_numpy("float64")
    total = found["sum"].to_numpy("float64")
    return pd.DataFrame({
        "key": found["zone_key"].to_numpy(), "n": n, "sum": total, "mean": total / n,
        "m2": found["variance"].to_numpy("float64") * n,
        "min": found["min"].to_numpy("float64"), "max": found["max"].to_numpy("float64"),
    })  # fmt: skip


def _whole(  # noqa: PLR0917 - a task's arguments
    item: Any, expression: str, grid: Any, keys: np.ndarray, wkb: list[bytes], stats: list[str]
) -> pd.DataFrame:
    """On a worker: ``stats`` of whole zones, ``grid`` covering them."""
    values = _window_values(item, expression, grid)
    found = _extract(values, grid, _zone_frame(keys, wkb, grid.crs.to_wkt()), stats)
    return pd.DataFrame(found)


def _combine(parts: list[pd.DataFrame], keys: np.ndarray, stats: list[str]) -> pd.DataFrame:
    """The zones' statistics from the windows' partial moments (exactextract's
    definitions: coverage-weighted; a zone without pixels has count 0 and sum 0)."""
    frame = pd.concat([p for p in parts if not p.empty] or [_EMPTY], ignore_index=True)
    grouped = frame.groupby("key")
    n = grouped["n"].sum()
    total = grouped["sum"].sum()
    mean = total / n
    frame["spread"] = frame["m2"] + frame["n"] * (frame["mean"] - frame["key"].map(mean)) ** 2
    m2 = frame.groupby("key")["spread"].sum()
    table = pd.DataFrame({
        "count": n, "sum": total, "mean": mean, "min": grouped["min"].min(),
        "max": grouped["max"].max(), "stdev": np.sqrt(m2 / n),
    }).reindex(keys)  # fmt: skip
    table["count"] = table["count"].fillna(0.0)
    table["sum"] = table["sum"].fillna(0.0)
    return table[stats].rename_axis("zone_key").reset_index()


_EMPTY = pd.DataFrame(columns=["key", "n", "sum", "mean", "m2", "min", "max"], dtype="float64")


def zonal(
    item: Any, expression: str, grid: Any, zones: gpd.GeoDataFrame, stats: list[str], *,
    dask: Any = None, chunk: int = 2048,
) -> pd.DataFrame:  # fmt: skip
    """:func:`spatial.analysis.zonal` in windows: the same table (``id`` and ``stats``)."""
    if zones.empty:
        return pd.DataFrame(columns=["id", *stats])
    keys = np.arange(len(zones))
    bounds = zones.geometry.bounds.to_numpy()
    wkb = shapely.to_wkb(zones.geometry.to_numpy())
    cuts = windows(item.data, grid, chunk)
    tree = shapely.STRtree(zones.geometry.to_numpy())
    tasks: list[tuple[Any, ...]] = []
    if set(stats) <= DECOMPOSABLE:
        for col, row, width, height in cuts:
            part = subgrid(grid, col, row, width, height)
            hit = np.sort(tree.query(shapely.box(*part.bounds), predicate="intersects"))
            if hit.size:
                tasks.append((item, expression, part, keys[hit], [wkb[i] for i in hit]))
        table = _combine(_run(tasks, _partials, dask), keys, stats)
    else:
        inverse = ~grid.transform
        cols, rows = inverse * (bounds[:, 0], bounds[:, 3])
        owner = {}
        for number, (col, row, width, height) in enumerate(cuts):
            inside = (cols >= col) & (cols < col + width) & (rows >= row) & (rows < row + height)
            owner.update(dict.fromkeys(keys[inside].tolist(), number))
        groups: dict[int, list[int]] = {}
        for key in keys.tolist():  # zones starting outside the grid go to the nearest window
            groups.setdefault(owner.get(key, _nearest(cuts, cols[key], rows[key])), []).append(key)
        for members in groups.values():
            part = _cover(grid, bounds[members])
            if part is not None:
                tasks.append((item, expression, part, keys[members], [wkb[i] for i in members],
                              stats))  # fmt: skip
        done = _run(tasks, _whole, dask)
        table = pd.concat(done, ignore_index=True) if done else pd.DataFrame(columns=stats)
        table = table.set_index("zone_key").reindex(keys).rename_axis("zone_key").reset_index()
        if "count" in stats:
            table["count"] = table["count"].fillna(0.0)
    table["id"] = zones["id"].to_numpy()[table["zone_key"].to_numpy()]
    return table[["id", *stats]]


def _nearest(cuts: list[tuple[int, int, int, int]], col: float, row: float) -> int:
    gaps = [abs(c - col) + abs(r - row) for c, r, _, _ in cuts]
    return int(np.argmin(gaps))


def _cover(grid: Any, bounds: np.ndarray) -> Any:
    """The part of ``grid`` covering ``bounds`` (rows of west, south, east, north)."""
    inverse = ~grid.transform
    west, south = bounds[:, 0].min(), bounds[:, 1].min()
    east, north = bounds[:, 2].max(), bounds[:, 3].max()
    xs, ys = inverse * (np.array([west, east]), np.array([north, south]))
    col0, col1 = max(0, int(np.floor(xs.min())) - 1), min(grid.width, int(np.ceil(xs.max())) + 1)
    row0, row1 = max(0, int(np.floor(ys.min())) - 1), min(grid.height, int(np.ceil(ys.max())) + 1)
    if col1 <= col0 or row1 <= row0:
        return None
    return subgrid(grid, col0, row0, col1 - col0, row1 - row0)


# --- change detection ------------------------------------------------------------------


def _changed(  # noqa: PLR0917 - a task's arguments
    before: Any, after: Any, expression: str, grid: Any, threshold: float, direction: str
) -> tuple[np.ndarray, int]:
    """On a worker: the window's changed pixels, bit-packed (as in analysis.run_change)."""

    changed = np.empty((grid.height, grid.width), dtype=bool)
    for row, height in _strips(after.data, grid):  # per pixel: strips bound the memory
        part = subgrid(grid, 0, row, grid.width, height)
        old = index_values(before, expression, part)
        new = index_values(after, expression, part)
        delta = (
            np.ma.filled(old - new, 0.0)
            if direction != "increase"
            else np.ma.filled(new - old, 0.0)
        )
        strip = np.abs(delta) >= threshold if direction == "both" else delta >= threshold
        changed[row : row + height] = strip
    return np.packbits(changed, axis=None), changed.size


def changed_mask(  # noqa: PLR0917 - a task's arguments
    before: Any, after: Any, expression: str, grid: Any, threshold: float, direction: str, *,
    dask: Any = None, chunk: int = 2048,
) -> np.ndarray:  # fmt: skip
    """The boolean changed mask over ``grid``, computed in windows."""
    cuts = windows(after.data, grid, chunk)
    tasks = [(before, after, expression, subgrid(grid, *cut), threshold, direction)
             for cut in cuts]  # fmt: skip
    mask = np.zeros((grid.height, grid.width), dtype=bool)
    for (col, row, width, height), (bits, size) in zip(
        cuts, _run(tasks, _changed, dask), strict=True
    ):
        block = np.unpackbits(bits, count=size).astype(bool).reshape(height, width)
        mask[row : row + height, col : col + width] = block
    return mask


# --- overlays --------------------------------------------------------------------------


def _hilbert_order(geoms: np.ndarray) -> np.ndarray:
    """Indices of ``geoms`` sorted along a Hilbert curve of their bounds' centres."""
    if len(geoms) == 0:
        return np.arange(0)
    from dask_geopandas.hilbert_distance import _hilbert_distance  # noqa: PLC0415 - only for overlays on Dask

    series = gpd.GeoSeries(geoms)
    distances = _hilbert_distance(series, total_bounds=series.total_bounds, level=16)
    return np.argsort(np.asarray(distances), kind="stable")


def _measure(geoms: np.ndarray, geographic: bool, srid: int) -> np.ndarray:
    if not geographic:
        return np.asarray(shapely.area(geoms), dtype="float64")
    geod = pyproj.Geod(ellps="WGS84")
    if srid != 4326:
        move = pyproj.Transformer.from_crs(srid, 4326, always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(move.transform(*xy.T)))
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in geoms], dtype="float64")


def _overlay_part(  # noqa: PLR0917 - a task's arguments
    wkb: list[bytes], groups: list[Any], zone_wkb: list[bytes], zone_names: list[Any],
    geographic: bool, srid: int,
) -> pd.DataFrame:  # fmt: skip
    """On a worker: count and intersected area per (zone, group) of one partition."""
    geoms = shapely.from_wkb(wkb)
    zones = shapely.from_wkb(zone_wkb)
    tree = shapely.STRtree(geoms)
    zone_at, feature_at = tree.query(zones, predicate="intersects")
    if zone_at.size == 0:
        return pd.DataFrame(columns=["zone", "group", "count", "area"])
    pieces = shapely.intersection(geoms[feature_at], zones[zone_at])
    frame = pd.DataFrame({
        "zone": np.asarray(zone_names, dtype=object)[zone_at],
        "group": np.asarray(groups, dtype=object)[feature_at],
        "area": _measure(pieces, geographic, srid),
    })  # fmt: skip
    return (
        frame.groupby(["zone", "group"], dropna=False)
        .agg(count=("area", "size"), area=("area", "sum"))
        .reset_index()
    )


def overlay(
    features: gpd.GeoSeries, groups: Sequence[Any], zones: gpd.GeoSeries, zone_names: Sequence[Any],
    *, geographic: bool, srid: int, dask: Any = None, partition: int = 20_000,
) -> pd.DataFrame:  # fmt: skip
    """Count and area of the intersections of ``features`` with ``zones`` per (zone name,
    group): the features meeting a zone count once for it, touching ones too (with no
    area), as ``ST_Intersects`` and ``ST_Area(ST_Intersection(...))`` in PostGIS. Areas
    in the CRS's units, or m² on the WGS 84 spheroid when ``geographic``."""
    geoms = np.asarray(features, dtype=object)
    order = _hilbert_order(geoms)
    values = np.asarray(list(groups), dtype=object)
    zone_wkb = shapely.to_wkb(np.asarray(zones, dtype=object)).tolist()
    names = list(zone_names)
    tasks = []
    for start in range(0, len(order), partition):
        part = order[start : start + partition]
        tasks.append((shapely.to_wkb(geoms[part]).tolist(), values[part].tolist(), zone_wkb,
                      names, geographic, srid))  # fmt: skip
    parts = [p for p in _run(tasks, _overlay_part, dask) if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["zone", "group", "count", "area"])
    both = pd.concat(parts, ignore_index=True)
    return (
        both.groupby(["zone", "group"], dropna=False)
        .agg(count=("count", "sum"), area=("area", "sum"))
        .reset_index()
    )
