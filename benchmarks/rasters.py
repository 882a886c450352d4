"""Raster benchmark: COG conversion and NDVI PNG tiles of the reference scene, the platform
against ``gdal_translate`` and TiTiler, and the limit (rio-tiler on the platform's display
COG, no server).

The reference scene (``scene.py``: seeded, cached under ``var/bench/rasters/``): 4 bands
(blue, green, red, nir), uint16, 4096 x 4096 cells of 10 m in EPSG:4546 with nodata 0.

One run, side by side:

- COG conversion, 3 rounds alternating which goes first, both timed the same way (the
  whole process, start-up included): ``gdal_translate -of COG`` (Debian gdal-bin) against
  a fresh ``python -c`` process running the platform's ``spatial.ingest.cog.to_cog``. The
  gdal_translate command asks for what the platform does (:func:`_gdal_command`):
  DEFLATE at GDAL's default level 6, the horizontal predictor (2; 3 for floats), 512-pixel
  blocks, internal overviews averaged, as many as rio-cogeo makes (halving until the
  smaller side is at most a block), BIGTIFF=IF_SAFER, every CPU (``NUM_THREADS`` and
  ``GDAL_NUM_THREADS``, as the platform's ``GDAL_NUM_THREADS=ALL_CPUS``). One difference
  is left: the platform stores bands separately (``INTERLEAVE=BAND``, an index reads only
  its bands) and GDAL 3.6's COG driver has no ``INTERLEAVE`` option, so its COG is
  pixel-interleaved. Both COGs are checked to hold these settings (else the run stops).
  Goal: platform at most 1.1 x gdal_translate. For information, the whole
  ``spatial ingest raster <scene> --collection bench_scene --public`` process (validation,
  native COG, WebMercatorQuad display COG, catalog) is timed once, as it loads the scene
  into the scratch database ``spatial_bench_rasters`` for the tiles.
- NDVI PNG tiles: every WebMercatorQuad tile of zooms 13-14 whose footprint overlaps the
  scene, as ``(nir-red)/(nir+red)`` rescaled -1..1 with the ``rdylgn`` colormap:

  - the platform, cold: ``api.main:app_factory`` under uvicorn, 2 workers, its tile cache
    off (``SPATIAL_TILES_CACHE_MB=0``); it reads its display COG (EPSG:3857, warped onto
    the WebMercatorQuad grid at ingest: one aligned read a tile);
  - TiTiler: stock ``titiler.core`` (``TilerFactory`` in a bare FastAPI app) under uvicorn,
    2 workers; it reads the COG ``gdal_translate`` made (the scene's EPSG:4546 grid), which
    it warps for every tile; it lives in its own virtualenv ``var/bench/peers/titiler``
    (created from PyPI on first use);
  - the limit: rio-tiler reading the platform's display COG with no server, in 2
    processes (one a core, as the platform's 2 workers), each keeping the COG open:
    ``Reader.tile`` of the red and nir bands, then the platform's own pixel work (NDVI,
    ``spatial.imagery`` rescale, colormap and PNG encoder). It is the same work as the
    platform's minus HTTP, the catalog look-up and the file opens: a ceiling;
  - the platform, warm: its cache on and filled first, reported separately.

  Load comes from ``wrk -t2 -c8`` cycling over the tiles (a 3 s warm-up first; the limit
  gets the same warm-up); the cold platform, TiTiler and the limit are measured in turn,
  three rounds, and their medians compared. Before measuring, sampled tiles of every side
  must be 256 x 256 PNGs, and the platform's mean colour must agree with TiTiler's and
  the limit's.

The platform's files (native and display COGs) go to ``var/bench/rasters/data``
(``SPATIAL_DATA_DIR``), emptied at every run. The last lines are the conversion times and
their ratio (goal <= 1.1), then tiles per second and the ratios platform cold/TiTiler
(goal >= 2) and platform cold/limit; ``benchmarks/RESULTS.md`` gets the same figures, the
gdal_translate command line, the platform's settings and the load average before and after.

Usage: ``.venv/bin/python benchmarks/rasters.py [--size 4096] [--duration 15] [--no-record]
[--smoke]``; ``--smoke`` is a 1024 x 1024 scene, 3 s of load, one round, nothing recorded.
Needs ``wrk`` and ``gdal_translate`` (Debian: ``apt-get install wrk gdal-bin``). The scene
alone: ``.venv/bin/python benchmarks/rasters.py --scene-only [--size 4096]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import morecantile
import numpy as np
import numpy.typing as npt
import psycopg
import pyproj
import raster_limit
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
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_validate
from scene import CRS, DEFAULT_SIZE, SMOKE_SIZE, build_scene
from scene import WORK as RASTERS_WORK

# --- the benchmark -------------------------------------------------------------------

DATABASE = "spatial_bench_rasters"
COLLECTION = "bench_scene"
DATA_DIR = RASTERS_WORK / "data"
TITILER_VENV = ROOT / "var" / "bench" / "peers" / "titiler"
TITILER_PACKAGES = ("titiler.core", "uvicorn")
ZOOMS = range(13, 15)
ROUNDS = 3
"""The sides are measured in turn this many times (medians are compared)."""
GOAL_TITILER = 2.0
GOAL_COG = 1.1
COLOUR_TOLERANCE = 25.0
"""Largest difference of the mean colour (0-255) of a tile between the platform and
TiTiler (or the limit): the two resample differently, but the same NDVI and colormap agree
closely."""
BLOCK = 512
"""The native COG's block size (``spatial.ingest.cog``); gdal_translate is asked the same."""
PLATFORM_SETTINGS = (
    "spatial.ingest.cog.to_cog (rio-cogeo cog_translate on rasterio's GDAL): DEFLATE at "
    "GDAL's default level 6, PREDICTOR=2 (3 for floats), 512 x 512 blocks, INTERLEAVE=BAND, "
    "internal overviews AVERAGE (halving until the smaller side is at most 512), "
    "BIGTIFF=IF_SAFER, GDAL_NUM_THREADS=ALL_CPUS"
)
"""What the platform's native COG is (read from spatial/ingest/cog.py; the COGs are checked
against it)."""
PLATFORM_READS = (
    "the platform reads its display COG (EPSG:3857, warped onto the WebMercatorQuad grid at "
    "ingest: one aligned read a tile)"
)
TITILER_READS = (
    "TiTiler reads the COG gdal_translate made (the scene's EPSG:4546 grid), which it warps "
    "for every tile"
)
NO_INTERLEAVE = "GDAL 3.6's COG driver has no INTERLEAVE option: pixel-interleaved"
LIMIT_IS = (
    f"the limit: rio-tiler reading the platform's display COG, no server, in "
    f"{raster_limit.PROCESSES} processes each keeping it open, doing the platform's pixel "
    "work (NDVI, spatial.imagery rescale, colormap and PNG)"
)
EXPRESSION = "(nir-red)/(nir+red)"
COLORMAP = "rdylgn"

TITILER_APP = '''"""Stock TiTiler: the core tiler factory in a bare FastAPI app
(written by benchmarks/rasters.py)."""

from fastapi import FastAPI
from titiler.core.factory import TilerFactory

app = FastAPI()
app.include_router(TilerFactory().router)
'''

PLATFORM_COG = (
    "import sys; from pathlib import Path; from spatial.ingest.cog import to_cog; "
    "to_cog(Path(sys.argv[1]), Path(sys.argv[2]))"
)
"""The platform's side of the conversion: a fresh ``python -c`` process, timed whole
(start-up and imports included) as gdal_translate's process is."""

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


# --- the run -------------------------------------------------------------------------


def _run(*, size: int, duration: int, rounds: int, record: bool) -> int:
    wrk, gdal_translate = shutil.which("wrk"), shutil.which("gdal_translate")
    if wrk is None or gdal_translate is None:
        msg = "wrk and gdal_translate are needed (Debian: apt-get install wrk gdal-bin)"
        raise BenchmarkError(msg)
    load = [os.getloadavg()]
    for folder in (RASTERS_WORK, LOGS):
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
    gdal_cmd = _gdal_command(scene, gdal_cog)
    cog = _conversions(gdal_cmd, scene, gdal_cog, rounds)
    ingest = _ingest(scene, target)
    display = _display_cog()
    tiles = scene_tiles(scene)
    _say(f"{len(tiles)} WebMercatorQuad tiles at zooms {ZOOMS.start}-{ZOOMS.stop - 1}")
    for line in (PLATFORM_READS, TITILER_READS, LIMIT_IS):
        _say(f"  {line}")
    cold, warm, titiler = _sides(target, python, gdal_cog, tiles[0])
    measured = _tile_rounds(wrk, target, (cold, titiler), (display, gdal_cog), tiles,
                            duration=duration, rounds=rounds)  # fmt: skip
    rates = {name: statistics.median(values) for name, values in measured.items()}
    with _serving(warm) as port:
        _fill(warm, port, gdal_cog, tiles)
        rates[warm.name] = _wrk(wrk, warm, port, _script(warm, gdal_cog, tiles), duration)
        _say(f"{warm.name:19} {rates[warm.name]:8.1f} tiles/s (cache filled first)")
    load.append(os.getloadavg())
    versions = {
        "gdal_translate": _output(gdal_translate, "--version"),
        "rasterio's GDAL": rasterio.__gdal_version__,
        "TiTiler": _output(str(python), "-c", "import titiler.core as t; print(t.__version__)"),
        "rio-tiler": _output(sys.executable, "-c", "import rio_tiler as r; print(r.__version__)"),
    }
    if record:
        _record(size=size, duration=duration, rounds=rounds, scene=scene, count=len(tiles),
                rates=rates, measured=measured, cog=cog, ingest=ingest, server=server,
                versions=versions, load=load)  # fmt: skip
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    _verdict(rates, cog, ingest, load)
    return 0


def _tile_rounds(
    wrk: str, target: Target, servers: tuple[Side, Side], cogs: tuple[Path, Path],
    tiles: list[Tile], *, duration: int, rounds: int,
) -> dict[str, list[float]]:  # fmt: skip
    """Tiles per second of the cold platform, TiTiler and the limit, measured in turn for
    ``rounds`` rounds, after the checks of their tiles."""
    cold, titiler = servers
    display, gdal_cog = cogs
    measured: dict[str, list[float]] = {cold.name: [], titiler.name: [], "limit": []}
    with (
        raster_limit.processes(display, _bands(display), COLORMAP, tiles[0]) as pool,
        _serving(cold) as cold_port,
        _serving(titiler) as titiler_port,
    ):
        ports = {cold.name: cold_port, titiler.name: titiler_port}
        scripts = {side.name: _script(side, gdal_cog, tiles) for side in servers}
        sample = tiles[:: max(1, len(tiles) // 8)]
        _check(cold, cold_port, gdal_cog, sample, titiler_port)
        _check(titiler, titiler_port, gdal_cog, sample)
        _check_limit(pool, cold_port, gdal_cog, sample)
        _check_uncached(cold, cold_port, gdal_cog, tiles[0])
        for number in range(1, rounds + 1):
            for side in servers:
                _quiet(target)
                measured[side.name].append(
                    _wrk(wrk, side, ports[side.name], scripts[side.name], duration)
                )
            measured["limit"].append(raster_limit.rate(pool, tiles, duration))
            _say(f"round {number}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in measured.items()))
    return measured


# --- COG conversion ------------------------------------------------------------------


def _gdal_command(scene: Path, out: Path) -> list[str]:
    """``gdal_translate -of COG`` asked for what ``spatial.ingest.cog.to_cog`` does (see
    PLATFORM_SETTINGS): run from ROOT, paths relative to it, so the line is the same on
    every checkout."""
    with rasterio.open(scene) as src:
        floating = np.dtype(src.dtypes[0]).kind == "f"
        levels = _overview_levels(src.width, src.height)
    options = {
        "COMPRESS": "DEFLATE", "LEVEL": "6", "PREDICTOR": "3" if floating else "2",
        "BLOCKSIZE": str(BLOCK), "OVERVIEW_RESAMPLING": "AVERAGE",
        "OVERVIEW_COUNT": str(levels), "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    return [
        "gdal_translate", "-q", "--config", "GDAL_NUM_THREADS", "ALL_CPUS",
        "--config", "GDAL_PAM_ENABLED", "NO", "-of", "COG",
        *(f for key, value in options.items() for f in ("-co", f"{key}={value}")),
        _relative(scene), _relative(out),
    ]  # fmt: skip


def _overview_levels(width: int, height: int) -> int:
    """The overviews rio-cogeo makes (so the platform's): halving until the smaller side is
    at most a block."""
    levels = 0
    while min(width, height) // 2**levels > BLOCK:
        levels += 1
    return levels


def _relative(path: Path | str) -> str:
    """``path`` relative to ROOT when it lies under it (the commands run from ROOT)."""
    resolved = Path(path).absolute()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)


def _conversions(gdal_cmd: list[str], scene: Path, gdal_cog: Path, rounds: int) -> dict[str, Any]:
    """Seconds of each conversion per round (alternating which goes first), both commands
    and what each COG holds; the COGs must hold the settings asked."""
    platform_cog = RASTERS_WORK / f"platform_cog_{scene.stem.split('_')[-1]}.tif"
    platform_cmd = [_relative(sys.executable), "-c", PLATFORM_COG, _relative(scene),
                    _relative(platform_cog)]  # fmt: skip
    commands = {"gdal_translate": gdal_cmd, "platform": platform_cmd}
    outputs = {"gdal_translate": gdal_cog, "platform": platform_cog}
    _say(f"COG gdal_translate: {shlex.join(gdal_cmd)}")
    _say(f"COG platform:       {shlex.join(platform_cmd)}")
    _say(f"  the platform's settings: {PLATFORM_SETTINGS}")
    scene.read_bytes()  # the first command should not pay for a cold page cache alone
    times: dict[str, list[float]] = {"gdal_translate": [], "platform": []}
    for number in range(1, rounds + 1):
        order = ("gdal_translate", "platform") if number % 2 else ("platform", "gdal_translate")
        for side in order:
            outputs[side].unlink(missing_ok=True)
            log = LOGS / f"{side}_cog-{number}.log"
            times[side].append(_timed(commands[side], _env(), log, cwd=ROOT))
        _say(
            f"COG round {number}: gdal_translate {times['gdal_translate'][-1]:6.2f} s   "
            f"platform {times['platform'][-1]:6.2f} s"
        )
    held = {side: _cog_settings(path) for side, path in outputs.items()}
    for side, path in outputs.items():
        _say(f"  {path.name}: {_describe_cog(path)}; {_settings_text(held[side])}")
    differ = {k for k in held["platform"] if held["platform"][k] != held["gdal_translate"][k]}
    if differ - {"interleave"}:
        msg = (f"the two COGs differ in {', '.join(sorted(differ))}: platform "
               f"{held['platform']}, gdal_translate {held['gdal_translate']}; the "
               "gdal_translate options no longer match spatial.ingest.cog")  # fmt: skip
        raise BenchmarkError(msg)
    return {"times": times, "commands": commands, "held": held}


def _cog_settings(path: Path) -> dict[str, str]:
    """What a COG holds of the settings compared: compression, predictor, blocks (of the
    full resolution and of the overviews), overviews, interleave."""
    with rasterio.open(path) as src:
        structure = src.tags(ns="IMAGE_STRUCTURE")
        overviews = src.overviews(1)
        blocks = "x".join(map(str, src.block_shapes[0]))
    overview_blocks = "none"
    if overviews:
        with rasterio.open(path, overview_level=0) as level:
            overview_blocks = "x".join(map(str, level.block_shapes[0]))
    return {
        "compression": structure.get("COMPRESSION", "NONE"),
        "predictor": structure.get("PREDICTOR", "1"),
        "blocks": blocks,
        "overview factors": ",".join(map(str, overviews)) or "none",
        "overview blocks": overview_blocks,
        "interleave": structure.get("INTERLEAVE", "unknown"),
    }


def _settings_text(held: dict[str, str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in held.items())


def _describe_cog(path: Path) -> str:
    """Size, compression, overviews and CRS of a COG, and whether it validates."""
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


def _bands(path: Path) -> tuple[int, int]:
    """The red and nir band numbers of a file (by its band names; else 3 and 4)."""
    with rasterio.open(path) as src:
        names = [d.lower() if d else "" for d in src.descriptions]
    band = {name: i for i, name in enumerate(names, start=1) if name}
    return band.get("red", 3), band.get("nir", 4)


def _ndvi(path: Path) -> str:
    """The NDVI expression in rio-tiler's band names (b1...) for a file's bands."""
    red, nir = _bands(path)
    return f"(b{nir}-b{red})/(b{nir}+b{red})"


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
    """The tile's pixels, (bands, 256, 256); an error status, a non-PNG or another size
    is an error."""
    if response.status_code != 200:
        msg = (
            f"{name} answered {response.status_code} "
            f"({response.headers.get('content-type')}) for tile {tile}: {response.text[:300]}"
        )
        raise BenchmarkError(msg)
    return _pixels(name, tile, response.content)


def _pixels(name: str, tile: Tile, content: bytes) -> npt.NDArray[np.uint8]:
    if not content.startswith(b"\x89PNG"):
        msg = f"{name}: tile {tile} is not a PNG: {content[:60]!r}"
        raise BenchmarkError(msg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(content) as memory, memory.open() as image:
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


def _check_limit(pool: ProcessPoolExecutor, port: int, cog: Path, sample: list[Tile]) -> None:
    """The limit draws the sampled tiles as the platform does (mean colours agree)."""
    worst = 0.0
    for tile, content in zip(sample, pool.map(raster_limit.draw, sample), strict=True):
        colour = _mean_colour(_pixels("limit", tile, content))
        expected = _mean_colour(_png("platform", tile, _get(port, _path("platform", tile, cog))))
        if colour is None or expected is None:
            if colour is not expected:
                msg = f"the limit and the platform disagree on whether tile {tile} is empty"
                raise BenchmarkError(msg)
            continue
        worst = max(worst, float(np.abs(colour - expected).max()))
        if worst > COLOUR_TOLERANCE:
            msg = (
                f"the limit and the platform disagree on tile {tile}: mean colour "
                f"{colour.round(1).tolist()} against {expected.round(1).tolist()}"
            )
            raise BenchmarkError(msg)
    _say(f"limit: {len(sample)} sampled tiles, mean colours within {worst:.1f} of the platform's")


# --- report --------------------------------------------------------------------------


def _output(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def _loads(load: list[tuple[float, float, float]]) -> str:
    start, end = (", ".join(f"{v:.1f}" for v in figures) for figures in (load[0], load[-1]))
    return f"load average at the start {start}, at the end {end}"


def _verdict(
    rates: dict[str, float], cog: dict[str, Any], ingest: float,
    load: list[tuple[float, float, float]],
) -> None:  # fmt: skip
    met = {True: "met", False: "NOT met"}
    gdal, mine = (statistics.median(cog["times"][k]) for k in ("gdal_translate", "platform"))
    held = cog["held"]
    _say(f"COG gdal_translate: {shlex.join(cog['commands']['gdal_translate'])}")
    _say(f"COG platform: {PLATFORM_SETTINGS}")
    _say(f"COG interleave: platform {held['platform']['interleave']}, gdal_translate "
         f"{held['gdal_translate']['interleave']} ({NO_INTERLEAVE})")  # fmt: skip
    _say(f"COG gdal_translate      {gdal:6.2f} s (median, whole process)")
    _say(f"COG platform to_cog     {mine:6.2f} s (median, whole python -c process)")
    _say(f"spatial ingest raster   {ingest:6.2f} s (whole CLI: validation, 2 COGs, catalog)")
    _say(f"ratio COG platform/gdal_translate {mine / gdal:.2f} "
         f"(goal <= {GOAL_COG}: {met[mine / gdal <= GOAL_COG]})")  # fmt: skip
    for name in ("platform cold", "titiler", "limit", "platform warm"):
        _say(f"{name:19} {rates[name]:8.2f} tiles/s")
    for line in (PLATFORM_READS, TITILER_READS, LIMIT_IS, _loads(load)):
        _say(line)
    cold = rates["platform cold"]
    titiler, limit = _ratio(cold, rates["titiler"]), _ratio(cold, rates["limit"])
    ceiling = "" if limit <= 1 else " (above 1: the limit was no ceiling in this run)"
    _say(f"ratio platform warm/cold {_ratio(rates['platform warm'], cold):.1f}")
    _say(f"ratio platform cold/limit {limit:.2f}{ceiling}")
    _say(f"ratio platform cold/titiler {titiler:.2f} "
         f"(goal >= {GOAL_TITILER}: {met[titiler >= GOAL_TITILER]})")  # fmt: skip


def _record(
    *, size: int, duration: int, rounds: int, scene: Path, count: int, rates: dict[str, float],
    measured: dict[str, list[float]], cog: dict[str, Any], ingest: float, server: str,
    versions: dict[str, str], load: list[tuple[float, float, float]],
) -> None:  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    times, held = cog["times"], cog["held"]
    gdal, mine = (statistics.median(times[k]) for k in ("gdal_translate", "platform"))
    cold = rates["platform cold"]
    mib = scene.stat().st_size / 2**20
    lines = [
        f"## {now} · raster tiles z{ZOOMS.start}-{ZOOMS.stop - 1} and COG, scene {size}²",
        "",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs, {_loads(load)}; {server}; "
        + "; ".join(f"{name} {version}" for name, version in versions.items()),
        f"- scene: `{scene.relative_to(ROOT)}` ({mib:.1f} MiB), 4 x uint16, 10 m, {CRS}",
        (
            f"- {count} WebMercatorQuad tiles, NDVI rescaled -1..1, {COLORMAP}, PNG; "
            f"wrk -t2 -c8 -d{duration}s per server (2 uvicorn workers each), {rounds} rounds "
            f"of platform cold, TiTiler and the limit in turn (medians)"
        ),
        f"- {PLATFORM_READS}; {TITILER_READS}; {LIMIT_IS}",
        f"- platform at {_git_revision()}",
        "",
        "| side | tiles/s | rounds |",
        "|---|---:|---|",
        *(
            f"| {name} | {rate:.2f} | {_figures(measured.get(name, []))} |"
            for name, rate in rates.items()
        ),
        "",
        f"- COG conversion, both timed as whole processes, {rounds} rounds alternating:",
        f"  - gdal_translate: `{shlex.join(cog['commands']['gdal_translate'])}`",
        f"  - platform: `{shlex.join(cog['commands']['platform'])}`: {PLATFORM_SETTINGS}",
        (
            f"  - the COGs hold: platform {_settings_text(held['platform'])}; gdal_translate "
            f"{_settings_text(held['gdal_translate'])} ({NO_INTERLEAVE})"
        ),
        "",
        "| COG conversion (whole process) | median (s) | rounds |",
        "|---|---:|---|",
        f"| gdal_translate -of COG | {gdal:.2f} | {_figures(times['gdal_translate'])} |",
        f"| platform to_cog (python -c) | {mine:.2f} | {_figures(times['platform'])} |",
        f"| spatial ingest raster (whole CLI, once) | {ingest:.2f} | |",
        "",
        (
            f"- **platform cold/TiTiler {_ratio(cold, rates['titiler']):.2f}** "
            f"(goal ≥ {GOAL_TITILER}; the platform on its display COG, TiTiler on the "
            f"gdal_translate COG), "
            f"**platform cold/limit {_ratio(cold, rates['limit']):.2f}** (the limit on the "
            f"platform's display COG), warm/cold {_ratio(rates['platform warm'], cold):.1f}"
        ),
        f"- **COG platform/gdal_translate {mine / gdal:.2f}** (goal ≤ {GOAL_COG})",
        "",
    ]
    # A blank line before the heading, whatever the run before left at the end.
    previous = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    gap = "\n" if previous and not previous.endswith("\n\n") else ""
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(gap + "\n".join(lines) + "\n")


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; infinite when a side drew no tile at all (a smoke run's
    few seconds on a loaded machine can end before TiTiler's first tile)."""
    return numerator / denominator if denominator else math.inf


def _figures(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
