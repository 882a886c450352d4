"""Terrain benchmark: Terrarium terrain tiles, cold, against the imagery's map tiles of the
same place at the same zooms, on one platform server, and the limit (the platform's
terrain tile function called with no server).

Data (built here, deterministic, under ``var/bench/terrain/``): the demo city's DEM
(``spatial.samples.terrain.write_dem``: float32, 1066 x 958 cells of 10 m in EPSG:4546) and
its 2025 scene (``spatial.samples.rasters.write_scene``: 4 bands uint16 on the same grid),
ingested with ``spatial ingest raster`` (``--kind elevation`` for the DEM) into the
scratch database ``spatial_bench_terrain`` (recreated at every run).

One run, side by side:

- the tiles: every WebMercatorQuad tile of zooms 13-15 whose footprint overlaps the DEM,
  the same list for every side;
- imagery: ``/collections/bench_imagery/map/tiles/WebMercatorQuad/{z}/{row}/{col}`` (the
  default drawing: red, green, blue stretched 2-98 %, PNG);
- terrain: ``/collections/bench_dem/terrain/tiles/WebMercatorQuad/{z}/{row}/{col}``
  (Terrarium PNG); hillshade (``/styles/hillshade/map/tiles/...``) reported too;
- one platform server (``api.main:app_factory`` under uvicorn, 2 workers, its tile cache
  off: ``SPATIAL_TILES_CACHE_MB=0``, every tile rendered), load from ``wrk -t2 -c8``
  cycling over the tiles (3 s warm-up); the paths measured in turn, three rounds, medians
  compared. Before measuring, sampled terrain tiles must decode to heights within the
  DEM's range and every side's tiles must be 256 x 256 PNGs;
- the limit: ``tiles.terrain.terrarium_tile`` on the display COG in 2 processes (one a
  core), no server, no catalog.

Goal: terrain tiles cold at least 0.8 x the imagery's map tiles' rate.

Usage: ``.venv/bin/python benchmarks/terrain.py [--duration 15] [--no-record] [--smoke]``
(``--smoke``: 3 s of load, one round, nothing recorded). Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import morecantile
import numpy as np
import psycopg
import pyproj
import rasterio
import shapely
from features import Side, _quiet, _serving, _wrk, wrk_script
from ingest import (
    LOGS,
    RESULTS,
    ROOT,
    SPATIAL,
    BenchmarkError,
    Target,
    _env,
    _git_revision,
    _prepare_database,
    _say,
    _server_versions,
    _timed,
)
from PIL import Image

DATABASE = "spatial_bench_terrain"
WORK = ROOT / "var" / "bench" / "terrain"
DATA_DIR = WORK / "data"
ZOOMS = range(13, 16)
ROUNDS = 3
GOAL = 0.8
PATHS = {
    "imagery": "/collections/bench_imagery/map/tiles/WebMercatorQuad/{z}/{row}/{col}",
    "terrain": "/collections/bench_dem/terrain/tiles/WebMercatorQuad/{z}/{row}/{col}",
    "hillshade": "/collections/bench_dem/styles/hillshade/map/tiles/WebMercatorQuad/"
    "{z}/{row}/{col}",
}
Tile = tuple[int, int, int]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails or disagrees."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=None, help="seconds of load a path")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--smoke", action="store_true", help="3 s, 1 round, not recorded")
    args = parser.parse_args(argv)
    try:
        return _run(duration=args.duration or (3 if args.smoke else 15),
                    rounds=1 if args.smoke else ROUNDS,
                    record=not (args.no_record or args.smoke))  # fmt: skip
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


def build_data() -> tuple[Path, Path]:
    """The demo city's DEM and 2025 scene, written afresh (a few seconds)."""
    from spatial.samples import rasters, terrain  # noqa: PLC0415 - the generator, only here
    from spatial.samples.city import build_city  # noqa: PLC0415
    from spatial.samples.grid import Grid  # noqa: PLC0415
    from spatial.samples.network import build_rivers  # noqa: PLC0415

    WORK.mkdir(parents=True, exist_ok=True)
    grid = Grid.around_yunfu()
    rivers = build_rivers(grid)
    parcels = build_city(grid, rivers).parcels
    dem, scene = WORK / "dem.tif", WORK / "scene_2025.tif"
    terrain.write_dem(dem, grid, rivers, parcels)
    rasters.write_scene(scene, grid, parcels, 2025)
    return dem, scene


def tiles_over(path: Path) -> list[Tile]:
    """(z, row, col) of the WebMercatorQuad tiles of ZOOMS overlapping the raster."""
    with rasterio.open(path) as src:
        left, bottom, right, top = src.bounds
        to_lonlat = pyproj.Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
    steps = np.linspace(0.0, 1.0, 33)
    xs, ys = left + (right - left) * steps, bottom + (top - bottom) * steps
    ring = np.concatenate([
        np.column_stack([xs, np.full(33, bottom)]),
        np.column_stack([np.full(33, right), ys]),
        np.column_stack([xs[::-1], np.full(33, top)]),
        np.column_stack([np.full(33, left), ys[::-1]]),
    ])  # fmt: skip
    footprint = shapely.Polygon([to_lonlat.transform(x, y) for x, y in ring])
    tms = morecantile.tms.get("WebMercatorQuad")
    found = []
    west, south, east, north = footprint.bounds
    for tile in tms.tiles(west, south, east, north, list(ZOOMS)):
        if footprint.intersection(shapely.box(*tms.bounds(tile))).area > 0:
            found.append((tile.z, tile.y, tile.x))
    return found


def _ingest(target: Target, dem: Path, scene: Path) -> dict[str, float]:
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    DATA_DIR.mkdir(parents=True)
    env = _env(SPATIAL_DATABASE_URL=target.url, SPATIAL_DATA_DIR=str(DATA_DIR))
    seconds = {}
    for name, path, extra in (("dem", dem, ["--kind", "elevation"]), ("imagery", scene, [])):
        cmd = [str(SPATIAL), "ingest", "raster", str(path), "--collection", f"bench_{name}",
               "--public", *extra]  # fmt: skip
        seconds[name] = _timed(cmd, env, LOGS / f"terrain-ingest-{name}.log")
        _say(f"spatial ingest raster {path.name}: {seconds[name]:.2f} s")
    return seconds


def _path(kind: str, tile: Tile) -> str:
    z, row, col = tile
    return PATHS[kind].format(z=z, row=row, col=col)


def _check(port: int, tiles: list[Tile], low: float, high: float) -> None:
    """Sampled tiles of every path are 256 x 256 PNGs; terrain decodes within the DEM."""
    for tile in tiles[:: max(1, len(tiles) // 10)]:
        for kind in PATHS:
            answer = httpx.get(f"http://127.0.0.1:{port}{_path(kind, tile)}", timeout=120)
            if answer.status_code == 204:
                continue
            if answer.status_code != 200 or answer.headers["content-type"] != "image/png":
                msg = f"{kind} tile {tile}: {answer.status_code} {answer.text[:200]}"
                raise BenchmarkError(msg)
            pixels = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGBA"))
            if pixels.shape != (256, 256, 4):
                raise BenchmarkError(f"{kind} tile {tile}: {pixels.shape}")
            if kind == "terrain":
                rgb = pixels[..., :3].astype("float64")
                heights = rgb[..., 0] * 256 + rgb[..., 1] + rgb[..., 2] / 256 - 32768
                if heights.min() < low - 1 or heights.max() > high + 1:
                    msg = f"terrain tile {tile} decodes to {heights.min():.1f}..{heights.max():.1f}"
                    raise BenchmarkError(msg)
    _say("sampled tiles checked (PNG 256 x 256; terrain heights within the DEM's range)")


def _limit_worker(web: str, tiles: list[Tile], duration: float) -> int:
    """Terrain tiles made by the platform's function with no server, for ``duration`` s."""
    import datetime as dt  # noqa: PLC0415 - in the worker process

    from spatial.mosaic import Scene  # noqa: PLC0415
    from tiles.terrain import terrarium_tile  # noqa: PLC0415

    scene = Scene("bench_dem", "dem", dt.datetime.now(dt.UTC), Path(web), Path(web), ())
    done, end, i = 0, time.monotonic() + duration, 0
    while time.monotonic() < end:
        z, row, col = tiles[i % len(tiles)]
        terrarium_tile([scene], ("WebMercatorQuad", z, col, row))
        done, i = done + 1, i + 1
    return done


def _limit(web: Path, tiles: list[Tile], duration: int) -> float:
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_limit_worker, [str(web)] * 2, [tiles] * 2, [3.0] * 2))  # warm-up
        started = time.monotonic()
        halves = [tiles[0::2], tiles[1::2]]
        counts = list(pool.map(_limit_worker, [str(web)] * 2, halves, [float(duration)] * 2))
        return sum(counts) / (time.monotonic() - started)


def _display_cog(collection: str) -> Path:
    for path in sorted((DATA_DIR / "rasters" / collection).rglob("*.web.tif")):
        return path
    raise BenchmarkError(f"no display COG for {collection}")


def _run(*, duration: int, rounds: int, record: bool) -> int:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError("wrk is needed (Debian: apt-get install wrk)")
    load = [os.getloadavg()]
    LOGS.mkdir(parents=True, exist_ok=True)
    dem, scene = build_data()
    with rasterio.open(dem) as src:
        stats = src.read(1, masked=True)
        low, high = float(stats.min()), float(stats.max())
    target = _prepare_database(DATABASE)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
    ingest = _ingest(target, dem, scene)
    tiles = tiles_over(dem)
    _say(f"{len(tiles)} WebMercatorQuad tiles at zooms {ZOOMS.start}-{ZOOMS.stop - 1}")
    command = [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
               "--workers", "2", "--log-level", "warning"]  # fmt: skip
    env = _env(SPATIAL_DATABASE_URL=target.url, SPATIAL_DATA_DIR=str(DATA_DIR),
               SPATIAL_TILES_CACHE_MB="0")  # fmt: skip
    probe = "http://127.0.0.1:{port}/collections/bench_dem/terrain/tilejson"
    side = Side("platform cold", command, env, probe)
    scripts = {k: wrk_script(WORK / f"{k}.lua", [_path(k, t) for t in tiles]) for k in PATHS}
    measured: dict[str, list[float]] = {k: [] for k in (*PATHS, "limit")}
    web = _display_cog("bench_dem")
    with _serving(side) as port:
        _check(port, tiles, low, high)
        for number in range(1, rounds + 1):
            for kind in PATHS:
                _quiet(target)
                measured[kind].append(_wrk(wrk, Side(kind, [], {}, ""), port, scripts[kind],
                                           duration))  # fmt: skip
            measured["limit"].append(_limit(web, tiles, duration))
            _say(f"round {number}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in measured.items()))
    load.append(os.getloadavg())
    rates = {k: statistics.median(v) for k, v in measured.items()}
    ratio = rates["terrain"] / rates["imagery"]
    if record:
        _record(rates, measured, ratio=ratio, count=len(tiles), duration=duration,
                server=server, ingest=ingest, load=load)  # fmt: skip
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    for kind, rate in rates.items():
        _say(f"{kind:10} {rate:8.1f} tiles/s")
    verdict = "met" if ratio >= GOAL else "NOT met"
    _say(f"ratio terrain/imagery {ratio:.2f} (goal >= {GOAL}: {verdict})")
    _say(f"ratio terrain/limit {rates['terrain'] / rates['limit']:.2f}")
    return 0


def _record(
    rates: dict[str, float], measured: dict[str, list[float]], *, ratio: float, count: int,
    duration: int, server: str, ingest: dict[str, float], load: list[tuple[float, float, float]],
) -> None:  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(
        f"| {k} | {rates[k]:.1f} | {', '.join(f'{v:.1f}' for v in measured[k])} |" for k in rates
    )
    text = f"""
## {now} · terrain tiles (benchmarks/terrain.py)

Demo city DEM (1066 x 958 float32 cells of 10 m, EPSG:4546) and its 2025 scene (4 bands
uint16, same grid); {count} WebMercatorQuad tiles at zooms {ZOOMS.start}-{ZOOMS.stop - 1};
one platform server (uvicorn, 2 workers, tile cache off), `wrk -t2 -c8 -d{duration}s`
cycling over the tiles, paths in turn, {len(measured["terrain"])} rounds (medians).
Commit {_git_revision()}, PostgreSQL/PostGIS {server}, ingest DEM {ingest["dem"]:.2f} s,
scene {ingest["imagery"]:.2f} s; load average {load[0][0]:.2f} before, {load[-1][0]:.2f} after.

| tiles | tiles/s (median) | rounds |
|---|---|---|
{rows}

Terrain (Terrarium PNG) / imagery map tiles: **{ratio:.2f}** (goal >= {GOAL}:
{"met" if ratio >= GOAL else "NOT met"}); terrain / limit (`tiles.terrain.terrarium_tile`
in 2 processes, no server): {rates["terrain"] / rates["limit"]:.2f}.
"""
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(text)


if __name__ == "__main__":
    raise SystemExit(main())
