"""Raster benchmark: COG conversion and NDVI PNG tiles of the reference scene, the platform
against ``gdal_translate`` and TiTiler, and the limit (rio-tiler in-process).

The reference scene (built here, seeded, cached under ``var/bench/rasters/``): 4 bands
(blue, green, red, nir), uint16, 4096 x 4096 cells of 10 m in EPSG:4546 (CGCS2000 3-degree
Gauss-Kruger CM 111E) over about 112.0-112.4°E, 22.9-23.27°N, a tiled DEFLATE GeoTIFF with
nodata 0. Land-cover patches of 32-64 cells (water, forest, cropland, built-up, bare soil;
built-up denser near a centre, a river across) carry each class's reflectance, varied by
patch, with 3.5 % noise per cell, so NDVI tiles compress like real imagery.

One run, side by side:

- COG conversion, 3 rounds alternating which goes first: ``gdal_translate -of COG`` (Debian
  gdal-bin; the whole process) against the platform's ``spatial.ingest.cog.to_cog`` (called
  in a fresh Python process each round, the call alone timed: no interpreter start-up).
  Goal: platform at most 1.1 x gdal_translate. For information, the whole
  ``spatial ingest raster <scene> --collection bench_scene --public`` process (validation,
  native COG, WebMercatorQuad display COG, catalog) is timed once, as it loads the scene
  into the scratch database ``spatial_bench_rasters`` for the tiles.
- NDVI PNG tiles: every WebMercatorQuad tile of zooms 13-14 whose footprint overlaps the
  scene, as ``(nir-red)/(nir+red)`` rescaled -1..1 with the ``rdylgn`` colormap:

  - the platform, cold: ``api.main:app_factory`` under uvicorn, 2 workers, its tile cache
    off (``SPATIAL_TILES_CACHE_MB=0``);
  - TiTiler: stock ``titiler.core`` (``TilerFactory`` in a bare FastAPI app) under uvicorn,
    2 workers, on the COG ``gdal_translate`` made; it lives in its own virtualenv
    ``var/bench/peers/titiler`` (created from PyPI on first use);
  - the limit: rio-tiler in this process on 2 threads (``Reader(path).tile()``, rescale,
    ``render`` to PNG), no server, on the gdal_translate COG and on the platform's own
    display COG (found under ``<data_dir>/rasters/bench_scene/``);
  - the platform, warm: its cache on and filled first, reported separately.

  Load comes from ``wrk -t2 -c8`` cycling over the tiles (a 3 s warm-up first; the limit
  gets the same warm-up); the cold platform, TiTiler and both limits are measured in turn,
  three rounds, and their medians compared. Before measuring, sampled tiles of every side
  must be 256 x 256 PNGs, and the platform's mean colour must agree with TiTiler's.

The platform's files (native and display COGs) go to ``var/bench/rasters/data``
(``SPATIAL_DATA_DIR``), emptied at every run. The last lines are the conversion times and
their ratio (goal <= 1.1), then tiles per second and the ratios platform cold/TiTiler
(goal >= 2) and platform cold/limit; ``benchmarks/RESULTS.md`` gets the same figures.

Usage: ``.venv/bin/python benchmarks/rasters.py [--size 4096] [--duration 15] [--no-record]
[--smoke]``; ``--smoke`` is a 1024 x 1024 scene, 3 s of load, one round, nothing recorded.
Needs ``wrk`` and ``gdal_translate`` (Debian: ``apt-get install wrk gdal-bin``). The scene
alone: ``.venv/bin/python benchmarks/rasters.py --scene-only [--size 4096]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import morecantile
import numpy as np
import numpy.typing as npt
import psycopg
import pyproj
import rasterio
import shapely
from features import WORK, Side, _quiet, _serving, _wrk, wrk_script
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
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

# --- the reference scene -------------------------------------------------------------

GENERATOR_VERSION = 2
"""Bump whenever the generated content changes, so cached scenes are rebuilt."""

SEED = 20_261_129
DEFAULT_SIZE = 4096
SMOKE_SIZE = 1024
CRS = "EPSG:4546"
"""CGCS2000 / 3-degree Gauss-Kruger CM 111E (false easting 500 km)."""
ORIGIN = (602_600.0, 2_574_760.0)
"""North-west corner (x, y): 112.00°E, 23.27°N; a full scene reaches about 112.40°E,
22.90°N."""
CELL = 10.0
BANDS = ("blue", "green", "red", "nir")
ACQUIRED = "2026:03:15 03:05:00"
"""The acquisition time, in the file's TIFFTAG_DATETIME (the platform catalogs it)."""
NOISE = 0.035
"""Standard deviation of the multiplicative noise on every cell."""
PATCH_MIN, PATCH_MAX = 32, 64
"""Land-cover patches are 32-64 cells a side (before their edges are warped)."""
WARP = 10.0
"""Largest shift, in cells, of the warp that makes the patch edges irregular."""

CLASSES: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("water", (620, 540, 330, 160)),
    ("forest", (280, 560, 290, 3600)),
    ("cropland", (480, 820, 690, 2900)),
    ("built-up", (1180, 1240, 1330, 1480)),
    ("bare soil", (980, 1290, 1690, 2150)),
)
"""Surface reflectance x 10,000 of each class in blue, green, red, nir (Sentinel-2-like):
water dark with NDVI < 0, vegetation with a high nir, built-up with nir close to red."""

RURAL = (0.05, 0.40, 0.37, 0.08, 0.10)
URBAN = (0.03, 0.07, 0.08, 0.72, 0.10)
"""Class shares of the patches far from and at the city centre (blended in between)."""
CENTRE = (0.45, 0.55)
"""The city centre, as fractions of the scene's width (from west) and height (from north)."""

# --- the benchmark -------------------------------------------------------------------

DATABASE = "spatial_bench_rasters"
COLLECTION = "bench_scene"
RASTERS_WORK = ROOT / "var" / "bench" / "rasters"
DATA_DIR = RASTERS_WORK / "data"
TITILER_VENV = ROOT / "var" / "bench" / "peers" / "titiler"
TITILER_PACKAGES = ("titiler.core", "uvicorn")
ZOOMS = range(13, 15)
ROUNDS = 3
"""The sides are measured in turn this many times (medians are compared)."""
THREADS = 2
"""The limit's threads: the machine's cores, and each server's uvicorn workers."""
WARM_UP = 3
"""Seconds of load before each measurement (wrk's warm-up in ``features._wrk``)."""
GOAL_TITILER = 2.0
GOAL_COG = 1.1
COLOUR_TOLERANCE = 25.0
"""Largest difference of the mean colour (0-255) of a tile between the platform and
TiTiler: the two resample differently, but the same NDVI and colormap agree closely."""
EXPRESSION = "(nir-red)/(nir+red)"
COLORMAP = "rdylgn"

TITILER_APP = '''"""Stock TiTiler: the core tiler factory in a bare FastAPI app
(written by benchmarks/rasters.py)."""

from fastapi import FastAPI
from titiler.core.factory import TilerFactory

app = FastAPI()
app.include_router(TilerFactory().router)
'''

PLATFORM_COG = """\
import sys, time
from pathlib import Path
from spatial.ingest.cog import to_cog
started = time.perf_counter()
to_cog(Path(sys.argv[1]), Path(sys.argv[2]))
print(time.perf_counter() - started)
"""
"""Times ``to_cog`` alone, in a fresh process (no block cache from an earlier round)."""

Tile = tuple[int, int, int]
"""(z, row, col): OGC tileMatrix, tileRow, tileCol."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails or disagrees."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=None, help="cells a side [4096]")
    parser.add_argument("--duration", type=int, default=None, help="seconds of load per side")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--smoke", action="store_true", help="1024 cells, 3 s, 1 round, not recorded"
    )
    parser.add_argument("--scene-only", action="store_true", help="build the scene and stop")
    args = parser.parse_args(argv)
    size = args.size or (SMOKE_SIZE if args.smoke else DEFAULT_SIZE)
    if size < 256:
        parser.error("--size must be at least 256")
    if args.scene_only:
        started = time.perf_counter()
        path = build_scene(size)
        mib = path.stat().st_size / 2**20
        _say(f"{path} ({mib:.1f} MiB) ready in {time.perf_counter() - started:.1f} s")
        return 0
    duration = args.duration or (3 if args.smoke else 15)
    try:
        return _run(
            size=size,
            duration=duration,
            rounds=1 if args.smoke else ROUNDS,
            record=not (args.no_record or args.smoke),
        )
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


# --- the reference scene -------------------------------------------------------------


def scene_path(size: int = DEFAULT_SIZE) -> Path:
    """Where the scene of a given size is kept (under the ignored ``var/``)."""
    return RASTERS_WORK / f"scene_{size}.tif"


def build_scene(size: int = DEFAULT_SIZE) -> Path:
    """Write the scene unless an identical one is already there (a sidecar JSON records the
    size, seed and generator version it was built with); return its path."""
    path = scene_path(size)
    sidecar = path.with_name(path.name + ".json")
    stamp = {"generator": "scene", "version": GENERATOR_VERSION, "seed": SEED, "size": size}
    if path.is_file() and sidecar.is_file() and _read_json(sidecar) == stamp:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar.unlink(missing_ok=True)
    partial = path.with_name(f".{path.stem}.partial.tif")
    data = generate_scene(size)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": len(BANDS),
        "dtype": "uint16", "crs": CRS, "transform": from_origin(*ORIGIN, CELL, CELL),
        "nodata": 0, "tiled": True, "blockxsize": 256, "blockysize": 256,
        "compress": "deflate", "interleave": "pixel", "num_threads": "all_cpus",
    }  # fmt: skip
    with rasterio.open(partial, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(TIFFTAG_DATETIME=ACQUIRED)
        for band, name in enumerate(BANDS, start=1):
            dst.set_band_description(band, name)
    partial.replace(path)
    tmp_sidecar = sidecar.with_name(f".{sidecar.name}.partial")
    tmp_sidecar.write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    tmp_sidecar.replace(sidecar)
    return path


def generate_scene(size: int) -> npt.NDArray[np.uint16]:
    """The scene's cells, shape (4, size, size); never 0 (nodata)."""
    rng = np.random.default_rng(SEED)
    classes, patch = _land_cover(rng, size)
    patches = int(patch.max()) + 1
    reflectance = np.asarray([r for _, r in CLASSES], dtype=np.float32)  # (class, band)
    # Each patch varies its class's brightness, and its vegetation vigour (nir) apart.
    brightness = rng.uniform(0.85, 1.15, patches).astype(np.float32)
    vigour = rng.uniform(0.88, 1.12, patches).astype(np.float32)
    out = np.empty((len(BANDS), size, size), dtype=np.uint16)
    factor = brightness[patch]
    for band in range(len(BANDS)):
        value = reflectance[classes, band] * factor
        if BANDS[band] == "nir":
            value *= vigour[patch]
        value *= 1 + NOISE * rng.standard_normal((size, size), dtype=np.float32)
        out[band] = np.clip(np.rint(value), 1, 65535)
    return out


def _land_cover(
    rng: np.random.Generator, size: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The class (index into CLASSES) and the patch number of every cell."""
    rows = np.cumsum(rng.integers(PATCH_MIN, PATCH_MAX + 1, size // PATCH_MIN + 2))
    cols = np.cumsum(rng.integers(PATCH_MIN, PATCH_MAX + 1, size // PATCH_MIN + 2))
    i = np.arange(size, dtype=np.float32)[:, np.newaxis]
    j = np.arange(size, dtype=np.float32)[np.newaxis, :]
    di, dj = _warp(rng, i, j), _warp(rng, i, j)
    row = np.searchsorted(rows, np.clip(i + di, 0, size - 1), side="right")
    col = np.searchsorted(cols, np.clip(j + dj, 0, size - 1), side="right")
    patch = row * len(cols) + col
    # The class of each patch: shares blended from urban (at the centre) to rural.
    centre_i = (rows - np.diff(rows, prepend=0) / 2) / size - CENTRE[1]
    centre_j = (cols - np.diff(cols, prepend=0) / 2) / size - CENTRE[0]
    distance = np.hypot(centre_i[:, np.newaxis], centre_j[np.newaxis, :]).ravel()
    urban = np.exp(-((distance / 0.18) ** 2))[:, np.newaxis]
    shares = urban * np.asarray(URBAN) + (1 - urban) * np.asarray(RURAL)
    cumulative = np.cumsum(shares / shares.sum(axis=1, keepdims=True), axis=1)
    draw = rng.random(len(cumulative))[:, np.newaxis]
    patch_class = np.minimum((draw > cumulative).sum(axis=1), len(CLASSES) - 1)
    classes = patch_class[patch]
    # A river of 12-30 cells meandering from north to south.
    across = np.zeros((1, 1), dtype=np.float32)
    centre = size * 0.3 + _warp(rng, i, across, amplitude=size * 0.08, waves=(600, 2400))
    width = 6 + 9 * (0.5 + 0.5 * np.sin(i / 700 + 1.3))
    classes = np.where(np.abs(j - centre) < width, 0, classes)
    return classes.astype(np.intp), patch.astype(np.intp)


def _warp(
    rng: np.random.Generator,
    i: npt.NDArray[np.float32],
    j: npt.NDArray[np.float32],
    amplitude: float = WARP,
    waves: tuple[float, float] = (60, 260),
) -> npt.NDArray[np.float32]:
    """A smooth displacement field: four plane waves of random direction and phase."""
    total = np.zeros(np.broadcast_shapes(i.shape, j.shape), dtype=np.float32)
    for _ in range(4):
        angle = rng.uniform(0, 2 * math.pi)
        length = rng.uniform(*waves)
        phase = rng.uniform(0, 2 * math.pi)
        k_i = np.float32(2 * math.pi * math.sin(angle) / length)
        k_j = np.float32(2 * math.pi * math.cos(angle) / length)
        total += np.sin(i * k_i + j * k_j + np.float32(phase))
    return total * np.float32(amplitude / 4)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- the run -------------------------------------------------------------------------


def _run(*, size: int, duration: int, rounds: int, record: bool) -> int:
    wrk, gdal_translate = shutil.which("wrk"), shutil.which("gdal_translate")
    if wrk is None or gdal_translate is None:
        msg = "wrk and gdal_translate are needed (Debian: apt-get install wrk gdal-bin)"
        raise BenchmarkError(msg)
    for folder in (RASTERS_WORK, WORK, LOGS):
        folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scene = build_scene(size)
    mib, seconds = scene.stat().st_size / 2**20, time.perf_counter() - started
    _say(f"scene: {scene.relative_to(ROOT)} ({mib:.1f} MiB) ready in {seconds:.1f} s")
    python = _titiler()
    target = _prepare_database(DATABASE)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
    gdal_cog = RASTERS_WORK / f"gdal_cog_{size}.tif"
    cog = _conversions(gdal_translate, scene, gdal_cog, rounds)
    ingest = _ingest(scene, target)
    display = _display_cog()
    tiles = scene_tiles(scene)
    _say(f"{len(tiles)} WebMercatorQuad tiles at zooms {ZOOMS.start}-{ZOOMS.stop - 1}")
    cold, warm, titiler = _sides(target, python, gdal_cog, tiles[0])
    limits = {"limit": gdal_cog, "limit, platform COG": display}
    measured: dict[str, list[float]] = {cold.name: [], titiler.name: [], **{k: [] for k in limits}}
    with _serving(cold) as cold_port, _serving(titiler) as titiler_port:
        ports = {cold.name: cold_port, titiler.name: titiler_port}
        scripts = {side.name: _script(side, gdal_cog, tiles) for side in (cold, titiler)}
        sample = tiles[:: max(1, len(tiles) // 8)]
        _check(cold, cold_port, gdal_cog, sample, titiler_port)
        _check(titiler, titiler_port, gdal_cog, sample)
        _check_uncached(cold, cold_port, gdal_cog, tiles[0])
        for number in range(1, rounds + 1):
            for side in (cold, titiler):
                _quiet(target)
                measured[side.name].append(
                    _wrk(wrk, side, ports[side.name], scripts[side.name], duration)
                )
            for name, path in limits.items():
                measured[name].append(_limit(path, tiles, duration))
            _say(f"round {number}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in measured.items()))
    rates = {name: statistics.median(values) for name, values in measured.items()}
    with _serving(warm) as port:
        _fill(warm, port, gdal_cog, tiles)
        rates[warm.name] = _wrk(wrk, warm, port, _script(warm, gdal_cog, tiles), duration)
        _say(f"{warm.name:19} {rates[warm.name]:8.1f} tiles/s (cache filled first)")
    versions = {
        "gdal_translate": _output(gdal_translate, "--version"),
        "TiTiler": _output(str(python), "-c", "import titiler.core as t; print(t.__version__)"),
        "rio-tiler": _output(sys.executable, "-c", "import rio_tiler as r; print(r.__version__)"),
    }
    if record:
        _record(size=size, duration=duration, rounds=rounds, scene=scene, count=len(tiles),
                rates=rates, measured=measured, cog=cog, ingest=ingest, server=server,
                versions=versions)  # fmt: skip
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    _verdict(rates, cog, ingest)
    return 0


# --- COG conversion ------------------------------------------------------------------


def _conversions(
    gdal_translate: str, scene: Path, gdal_cog: Path, rounds: int
) -> dict[str, list[float]]:
    """Seconds of each conversion per round, alternating which goes first."""
    platform_cog = RASTERS_WORK / f"platform_cog_{scene.stem.split('_')[-1]}.tif"
    scene.read_bytes()  # the first command should not pay for a cold page cache alone
    times: dict[str, list[float]] = {"gdal_translate": [], "platform": []}
    for number in range(1, rounds + 1):
        order = ("gdal_translate", "platform") if number % 2 else ("platform", "gdal_translate")
        for side in order:
            if side == "gdal_translate":
                gdal_cog.unlink(missing_ok=True)
                cmd = [gdal_translate, "-of", "COG", str(scene), str(gdal_cog)]
                times[side].append(_timed(cmd, _env(), LOGS / f"gdal_cog-{number}.log"))
            else:
                platform_cog.unlink(missing_ok=True)
                times[side].append(_to_cog(scene, platform_cog, number))
        _say(
            f"COG round {number}: gdal_translate {times['gdal_translate'][-1]:6.2f} s   "
            f"platform {times['platform'][-1]:6.2f} s"
        )
    for path in (gdal_cog, platform_cog):
        _say(f"  {path.name}: {_describe_cog(path)}")
    return times


def _to_cog(scene: Path, out: Path, number: int) -> float:
    """``spatial.ingest.cog.to_cog`` in a fresh process; the seconds of the call alone."""
    log = LOGS / f"platform_cog-{number}.log"
    done = subprocess.run(
        [sys.executable, "-c", PLATFORM_COG, str(scene), str(out)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        msg = f"spatial.ingest.cog.to_cog failed (log: {log}):\n{done.stderr.strip()}"
        raise BenchmarkError(msg)
    return float(done.stdout.strip().splitlines()[-1])


def _describe_cog(path: Path) -> str:
    """Size, compression, overviews and CRS of a COG, and whether it validates."""
    from rio_cogeo.cogeo import cog_validate  # noqa: PLC0415 - only for the report

    valid, errors, _warnings = cog_validate(str(path), quiet=True)
    with rasterio.open(path) as src:
        compression = src.compression.name if src.compression else "none"
        overviews = len(src.overviews(1))
        crs = src.crs.to_string() if src.crs else "no CRS"
    state = "valid COG" if valid else f"NOT a valid COG: {'; '.join(errors)}"
    mib = path.stat().st_size / 2**20
    return f"{mib:.1f} MiB, {compression}, {overviews} overviews, {crs}, {state}"


def _ingest(scene: Path, target: Target) -> float:
    """``spatial ingest raster`` into the scratch database (its files in DATA_DIR): the
    whole process's seconds."""
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    DATA_DIR.mkdir(parents=True)
    cmd = [str(SPATIAL), "ingest", "raster", str(scene), "--collection", COLLECTION, "--public"]
    env = _env(SPATIAL_DATABASE_URL=target.url, SPATIAL_DATA_DIR=str(DATA_DIR))
    seconds = _timed(cmd, env, LOGS / "raster-ingest.log")
    _say(f"spatial ingest raster: {seconds:.2f} s")
    return seconds


def _display_cog() -> Path:
    """The platform's WebMercatorQuad display COG of the scene."""
    folder = DATA_DIR / "rasters" / COLLECTION
    found = []
    for path in sorted(folder.rglob("*.tif")):
        with rasterio.open(path) as src:
            epsg = src.crs.to_epsg() if src.crs else None
        found.append(f"{path.relative_to(DATA_DIR)} (EPSG:{epsg})")
        if epsg == 3857:
            _say(f"platform display COG: {path.relative_to(ROOT)}: {_describe_cog(path)}")
            return path
    msg = f"no EPSG:3857 COG under {folder}: {', '.join(found) or 'no .tif at all'}"
    raise BenchmarkError(msg)


# --- tiles ---------------------------------------------------------------------------


def scene_tiles(scene: Path) -> list[Tile]:
    """(z, row, col) of the WebMercatorQuad tiles of ZOOMS that overlap the scene's
    footprint (not just its lon/lat box, nor only touching it)."""
    with rasterio.open(scene) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    steps = np.linspace(0, 1, 65)
    ring = np.concatenate([
        np.stack([left + (right - left) * steps, np.full(65, bottom)], axis=1),
        np.stack([np.full(65, right), bottom + (top - bottom) * steps], axis=1),
        np.stack([right - (right - left) * steps, np.full(65, top)], axis=1),
        np.stack([np.full(65, left), top - (top - bottom) * steps], axis=1),
    ])  # fmt: skip
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    footprint = shapely.Polygon(np.column_stack(to_lonlat.transform(ring[:, 0], ring[:, 1])))
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = []
    west, south, east, north = footprint.bounds
    for tile in tms.tiles(west, south, east, north, list(ZOOMS)):
        box = shapely.box(*tms.bounds(tile))
        if footprint.intersection(box).area > 0:
            tiles.append((tile.z, tile.y, tile.x))
    return tiles


def _ndvi(path: Path) -> str:
    """The NDVI expression in rio-tiler's band names (b1...) for a file's bands."""
    with rasterio.open(path) as src:
        names = [d.lower() if d else "" for d in src.descriptions]
    band = {name: f"b{i}" for i, name in enumerate(names, start=1) if name}
    nir, red = band.get("nir", "b4"), band.get("red", "b3")
    return f"({nir}-{red})/({nir}+{red})"


def _path(side: str, tile: Tile, cog: Path) -> str:
    z, row, col = tile
    if side == "titiler":
        expression = _ndvi(cog).replace("+", "%2B")
        return (
            f"/tiles/WebMercatorQuad/{z}/{col}/{row}.png?url={cog}&expression={expression}"
            f"&rescale=-1,1&colormap_name={COLORMAP}"
        )
    expression = EXPRESSION.replace("+", "%2B")
    return (
        f"/collections/{COLLECTION}/map/tiles/WebMercatorQuad/{z}/{row}/{col}"
        f"?expression={expression}&rescale=-1,1&colormap={COLORMAP}&f=png"
    )


def _key(side: Side) -> str:
    return "titiler" if side.name == "titiler" else "platform"


def _titiler() -> Path:
    """TiTiler's virtualenv (created and filled from PyPI the first time), and its app."""
    python = TITILER_VENV / "bin" / "python"
    if not python.exists():
        _say(f"creating {TITILER_VENV.relative_to(ROOT)} with {', '.join(TITILER_PACKAGES)}")
        subprocess.run([sys.executable, "-m", "venv", str(TITILER_VENV)], check=True)
    missing = subprocess.run(
        [str(python), "-c", "import titiler.core, uvicorn"], capture_output=True, check=False
    )
    if missing.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *TITILER_PACKAGES], check=True
        )
    (RASTERS_WORK / "titiler_app.py").write_text(TITILER_APP, encoding="utf-8")
    return python


def _sides(target: Target, python: Path, cog: Path, first: Tile) -> tuple[Side, Side, Side]:
    probe = "http://127.0.0.1:{port}"
    platform_cmd = [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
                    "--workers", "2", "--log-level", "warning"]  # fmt: skip
    platform_env = {"SPATIAL_DATABASE_URL": target.url, "SPATIAL_DATA_DIR": str(DATA_DIR)}
    return (
        Side("platform cold", platform_cmd, _env(**platform_env, SPATIAL_TILES_CACHE_MB="0"),
             probe + _path("platform", first, cog)),
        Side("platform warm", platform_cmd, _env(**platform_env),
             probe + _path("platform", first, cog)),
        Side("titiler", [str(python), "-m", "uvicorn", "titiler_app:app", "--app-dir",
                         str(RASTERS_WORK), "--workers", "2", "--log-level", "warning"],
             _env(), probe + _path("titiler", first, cog)),
    )  # fmt: skip


def _script(side: Side, cog: Path, tiles: list[Tile]) -> Path:
    paths = [_path(_key(side), tile, cog) for tile in tiles]
    return wrk_script(RASTERS_WORK / f"{side.name.replace(' ', '_')}.lua", paths)


def _get(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=120)


def _png(name: str, tile: Tile, response: httpx.Response) -> npt.NDArray[np.uint8]:
    """The tile's pixels, (bands, 256, 256); a non-PNG or another size is an error."""
    if response.status_code != 200 or not response.content.startswith(b"\x89PNG"):
        msg = (
            f"{name} answered {response.status_code} "
            f"({response.headers.get('content-type')}) for tile {tile}: {response.text[:300]}"
        )
        raise BenchmarkError(msg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(response.content) as memory, memory.open() as image:
            pixels: npt.NDArray[np.uint8] = image.read()
    if pixels.shape[1:] != (256, 256):
        msg = f"{name}: tile {tile} is {pixels.shape[2]} x {pixels.shape[1]}, not 256 x 256"
        raise BenchmarkError(msg)
    return pixels


def _mean_colour(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64] | None:
    """Mean RGB of the opaque pixels (None if none is opaque)."""
    opaque = pixels[3] > 0 if len(pixels) == 4 else np.ones(pixels.shape[1:], dtype=bool)
    if not opaque.any():
        return None
    return np.asarray([float(band[opaque].mean()) for band in pixels[:3]])


def _check(
    side: Side, port: int, cog: Path, sample: list[Tile], reference_port: int | None = None
) -> None:
    """Every sampled tile is a 256 x 256 PNG with NDVI colours; with a reference (TiTiler),
    the tile's mean colour agrees with the reference's."""
    worst = 0.0
    for tile in sample:
        colour = _mean_colour(_png(side.name, tile, _get(port, _path(_key(side), tile, cog))))
        if colour is None:
            msg = f"{side.name}: tile {tile} is transparent, though it overlaps the scene"
            raise BenchmarkError(msg)
        if reference_port is None:
            continue
        reference = _get(reference_port, _path("titiler", tile, cog))
        expected = _mean_colour(_png("titiler", tile, reference))
        difference = float(np.abs(colour - expected).max()) if expected is not None else 0.0
        worst = max(worst, difference)
        if difference > COLOUR_TOLERANCE:
            msg = (
                f"{side.name} and TiTiler disagree on tile {tile}: mean colour "
                f"{colour.round(1).tolist()} against {expected.round(1).tolist()}"  # type: ignore[union-attr]
            )
            raise BenchmarkError(msg)
    agree = f", mean colours within {worst:.1f} of TiTiler's" if reference_port else ""
    _say(f"{side.name}: {len(sample)} sampled tiles are 256 x 256 PNGs{agree}")


def _check_uncached(side: Side, port: int, cog: Path, tile: Tile) -> None:
    """The cold platform builds every tile: a repeated one is no cache hit."""
    for _ in range(3):
        state = _get(port, _path("platform", tile, cog)).headers.get("x-tile-cache")
        if state == "hit":
            msg = f"{side.name} answered a tile from its cache: the cache is not off"
            raise BenchmarkError(msg)


def _fill(side: Side, port: int, cog: Path, tiles: list[Tile]) -> None:
    """Request every tile until both workers answer each from their cache (one pass, or
    two, when the answers do not say whether they came from the cache)."""
    base = f"http://127.0.0.1:{port}"
    paths = [_path("platform", tile, cog) for tile in tiles]
    with httpx.Client(base_url=base, timeout=120) as client, ThreadPoolExecutor(8) as pool:
        for number in range(1, 9):
            states = list(pool.map(lambda p: client.get(p).headers.get("x-tile-cache"), paths))
            if states.count("hit") == len(states) or (number >= 2 and None in states):
                break
    hits = states.count("hit")
    _say(f"{side.name}: {number} priming passes ({hits}/{len(states)} hits on the last)")


def _limit(cog: Path, tiles: list[Tile], duration: int) -> float:
    """rio-tiler in this process on THREADS threads: the tiles rendered per second."""
    from rio_tiler.colormap import cmap  # noqa: PLC0415 - only the limit needs rio-tiler
    from rio_tiler.io import Reader  # noqa: PLC0415

    colormap = cmap.get(COLORMAP)
    expression = _ndvi(cog)
    order = itertools.cycle(tiles)
    lock = threading.Lock()

    def render(until: float) -> int:
        done = 0
        while time.monotonic() < until:
            with lock:
                z, row, col = next(order)
            with Reader(str(cog)) as src:
                image = src.tile(col, row, z, expression=expression)
            image.rescale(((-1, 1),))
            image.render(img_format="PNG", colormap=colormap)
            done += 1
        return done

    with ThreadPoolExecutor(THREADS) as pool:
        until = time.monotonic() + WARM_UP
        list(pool.map(render, [until] * THREADS))
        started = time.monotonic()
        counts = list(pool.map(render, [started + duration] * THREADS))
        elapsed = time.monotonic() - started
    return sum(counts) / elapsed


# --- report --------------------------------------------------------------------------


def _output(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def _verdict(rates: dict[str, float], cog: dict[str, list[float]], ingest: float) -> None:
    met = {True: "met", False: "NOT met"}
    gdal, mine = (statistics.median(cog[k]) for k in ("gdal_translate", "platform"))
    _say(f"COG gdal_translate      {gdal:6.2f} s (median)")
    _say(f"COG platform to_cog     {mine:6.2f} s (median)")
    _say(f"spatial ingest raster   {ingest:6.2f} s (whole CLI: validation, 2 COGs, catalog)")
    _say(f"ratio COG platform/gdal_translate {mine / gdal:.2f} "
         f"(goal <= {GOAL_COG}: {met[mine / gdal <= GOAL_COG]})")  # fmt: skip
    for name in ("platform cold", "titiler", "limit", "limit, platform COG", "platform warm"):
        _say(f"{name:19} {rates[name]:8.2f} tiles/s")
    cold = rates["platform cold"]
    titiler = cold / rates["titiler"]
    _say(f"ratio platform warm/cold {rates['platform warm'] / cold:.1f}")
    _say(f"ratio platform cold/limit on its own COG {cold / rates['limit, platform COG']:.2f}")
    _say(f"ratio platform cold/limit {cold / rates['limit']:.2f}")
    _say(f"ratio platform cold/titiler {titiler:.2f} "
         f"(goal >= {GOAL_TITILER}: {met[titiler >= GOAL_TITILER]})")  # fmt: skip


def _record(
    *, size: int, duration: int, rounds: int, scene: Path, count: int, rates: dict[str, float],
    measured: dict[str, list[float]], cog: dict[str, list[float]], ingest: float, server: str,
    versions: dict[str, str],
) -> None:  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    gdal, mine = (statistics.median(cog[k]) for k in ("gdal_translate", "platform"))
    cold = rates["platform cold"]
    mib = scene.stat().st_size / 2**20
    lines = [
        f"## {now} · raster tiles z{ZOOMS.start}-{ZOOMS.stop - 1} and COG, scene {size}²",
        "",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}; "
        + "; ".join(f"{name} {version}" for name, version in versions.items()),
        f"- scene: `{scene.relative_to(ROOT)}` ({mib:.1f} MiB), 4 x uint16, 10 m, {CRS}",
        (
            f"- {count} WebMercatorQuad tiles, NDVI rescaled -1..1, {COLORMAP}, PNG; "
            f"wrk -t2 -c8 -d{duration}s per server (2 uvicorn workers each), {rounds} rounds "
            f"of platform cold, TiTiler and the limits in turn (medians); the limit: "
            f"rio-tiler in-process on {THREADS} threads, on the gdal_translate COG (TiTiler's) "
            f"and on the platform's display COG"
        ),
        f"- platform at {_git_revision()}",
        "",
        "| side | tiles/s | rounds |",
        "|---|---:|---|",
        *(
            f"| {name} | {rate:.2f} | {_figures(measured.get(name, []))} |"
            for name, rate in rates.items()
        ),
        "",
        "| COG conversion | median (s) | rounds |",
        "|---|---:|---|",
        f"| gdal_translate -of COG | {gdal:.2f} | {_figures(cog['gdal_translate'])} |",
        f"| platform to_cog | {mine:.2f} | {_figures(cog['platform'])} |",
        f"| spatial ingest raster (whole CLI, once) | {ingest:.2f} | |",
        "",
        (
            f"- **platform cold/TiTiler {cold / rates['titiler']:.2f}** (goal ≥ {GOAL_TITILER}), "
            f"**platform cold/limit {cold / rates['limit']:.2f}**, on its own COG "
            f"{cold / rates['limit, platform COG']:.2f}, warm/cold "
            f"{rates['platform warm'] / cold:.1f}"
        ),
        f"- **COG platform/gdal_translate {mine / gdal:.2f}** (goal ≤ {GOAL_COG})",
        "",
    ]
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def _figures(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
