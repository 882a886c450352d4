"""Flood extent: the platform's level method against ``gdal_calc.py`` + ``gdal_polygonize.py``.

A synthetic DEM of ``size`` x ``size`` cells (10,000 by default: 20 km square at 2 m,
EPSG:4546, float32, tiled, uncompressed): a meandering river valley falling 30 m west to
east, rolling ground, and closed pits away from the river that go below the level. It is
built once, deterministically and strip by strip, into ``benchmarks/var/flood/`` and
reused while its size and generator version are unchanged.

One run, ``--rounds`` rounds (3) alternating which goes first, for the same level (the
bed at the seed plus 6 m):

- the platform: the engine of the ``flood-extent`` process's level method
  (``spatial.flood.engine.below_in_strips`` reading the DEM in strips, ``level_extent``:
  the cells below the level 4-connected to the seed, ``spatial.flood.process.shapes_of``:
  GDAL's polygonize, pieces under 100 m² dropped, then the polygons in CRS84 as GeoJSON
  as the process answers them), timed inside a fresh Python process;
- the peer: ``gdal_calc.py -A dem.tif --calc "A<level" --type Byte --NoDataValue 0`` then
  ``gdal_polygonize.py`` of that mask into a GeoPackage (Debian gdal-bin), timed as
  processes. GDAL floods every cell below the level, the closed pits too: it does not
  know which water the seed's is, so it does less (no connectivity, no small pieces
  dropped, no CRS84) and answers more (the pits' polygons).

Goal: the platform at most 30 s on 2 cores; the ratio platform/GDAL is reported. The
figures are appended to ``benchmarks/RESULTS.md`` unless ``--no-record``. Smoke run:
``--size 2000 --rounds 1 --no-record``.

    .venv/bin/python benchmarks/flood.py [--size 10000] [--rounds 3] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "var" / "flood"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
VERSION = 2
"""The DEM generator's version: a DEM built by another is built again."""
CELL = 2.0
X0, Y0 = 590_000.0, 2_545_000.0
SEED = 27
GOAL_S = 30.0
DEPTH = 6.0
"""The level: this far above the river bed at the seed."""
MIN_AREA = 100.0
STRIP = 500

STEP = r"""
import json, sys, time
started = time.perf_counter()
from spatial import analysis, mosaic
from spatial.flood import engine, process
imported = time.perf_counter()
path, level, row, col, min_area = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), float(sys.argv[5])
below, profile = engine.below_in_strips(path, level)
grid = mosaic.Grid(profile["crs"], profile["transform"], profile["width"], profile["height"])
flooded = engine.level_extent(below, (row, col)).flooded
del below
found = process.shapes_of(flooded, grid, min_area)
cells = int(flooded.sum())
del flooded
areas = [round(float(p.area), 1) for p in found]
features = analysis.lonlat_features(found, grid.crs, [{"area_m2": a} for a in areas])
done = time.perf_counter()
print(json.dumps({"step": done - imported, "import": imported - started,
                  "polygons": len(features), "area_m2": sum(areas), "cells": cells}))
"""


def river_row(col: np.ndarray, size: int) -> np.ndarray:
    """The river's row at each column: a meander about the middle."""
    x = col / size
    return np.asarray(size * (0.5 + 0.15 * np.sin(2 * np.pi * 2.5 * x)
                              + 0.03 * np.sin(2 * np.pi * 8.7 * x)))  # fmt: skip


def bed(col: np.ndarray, size: int) -> np.ndarray:
    """The river bed's height: 60 m at the west edge, 30 m at the east."""
    return np.asarray(60.0 - 30.0 * col / size)


def _ripples(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ground detail of tens of metres (mounds, hollows, field banks): islands and inlets
    along the water's edge, as real terrain gives them."""
    return np.asarray(0.5 * np.sin(x / 37.0 + 0.7 * np.sin(y / 61.0)) * np.cos(y / 43.0)
                      + 0.3 * np.sin((x + y) / 17.0))  # fmt: skip


def _pits(size: int) -> list[tuple[float, float, float, float]]:
    """Closed pits (row, column, depth, radius in cells) away from the river."""
    generator = np.random.default_rng(SEED)
    pits = []
    while len(pits) < 12:
        r, c = generator.uniform(0.05, 0.95, 2) * size
        if abs(r - float(river_row(np.array([c]), size)[0])) > 0.2 * size:
            pits.append((r, c, float(generator.uniform(15, 30)), size * 0.015))
    return pits


def _strip(top: int, rows: int, size: int, pits: list[tuple[float, ...]]) -> np.ndarray:
    r = np.arange(top, top + rows, dtype=np.float64)[:, None]
    c = np.arange(size, dtype=np.float64)[None, :]
    x, y = c * CELL, r * CELL
    across = np.abs(r - river_row(c, size)) * CELL
    height = (bed(c, size) + 1.5 + 0.008 * across
              + 2.0 * np.sin(x / 700.0) * np.cos(y / 900.0)
              + 0.8 * np.sin(x / 230.0 + y / 310.0) + _ripples(x, y))  # fmt: skip
    height = np.where(across < 12.0, bed(c, size) - 1.0, height)
    for pr, pc, depth, radius in pits:
        height -= depth * np.exp(-((r - pr) ** 2 + (c - pc) ** 2) / (2 * radius**2))
    return height.astype(np.float32)


def build(size: int) -> Path:
    """The DEM (built when missing or by another generator version)."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"dem_{size}.tif"
    stamp = WORK / f"dem_{size}.json"
    if path.exists() and stamp.exists() and json.loads(stamp.read_text())["version"] == VERSION:
        return path
    pits = _pits(size)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1,
               "dtype": "float32", "crs": "EPSG:4546",
               "transform": from_origin(X0, Y0, CELL, CELL), "tiled": True,
               "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER"}  # fmt: skip
    started = time.perf_counter()
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, STRIP):
            rows = min(STRIP, size - top)
            dst.write(_strip(top, rows, size, pits), 1, window=Window(0, top, size, rows))
    stamp.write_text(json.dumps({"version": VERSION, "size": size}))
    _say(f"built {path.relative_to(ROOT)} in {time.perf_counter() - started:.1f} s")
    return path


def seed(size: int) -> tuple[int, int, float]:
    """The seed (on the river, a fifth of the way downstream) and the level."""
    col = size // 5
    row = round(float(river_row(np.array([col]), size)[0]))
    return row, col, float(bed(np.array([col]), size)[0]) - 1.0 + DEPTH


def _platform(dem: Path, row: int, col: int, level: float) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STEP, str(dem), repr(level), str(row), str(col), repr(MIN_AREA)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    found["process"] = time.perf_counter() - started
    return found


def _gdal_commands(dem: Path, level: float) -> list[list[str]]:
    mask, out = WORK / "gdal_mask.tif", WORK / "gdal_extent.gpkg"
    return [
        ["gdal_calc.py", "--quiet", "--overwrite", "-A", str(dem), f"--outfile={mask}",
         f"--calc=A<{level!r}", "--type=Byte", "--NoDataValue=0",
         "--co=TILED=YES", "--co=BIGTIFF=IF_SAFER"],
        ["gdal_polygonize.py", "-q", "-overwrite", str(mask), "-f", "GPKG", str(out), "flood",
         "DN"],
    ]  # fmt: skip


def _gdal(commands: list[list[str]]) -> dict[str, float]:
    (WORK / "gdal_extent.gpkg").unlink(missing_ok=True)
    took = []
    for command in commands:
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        took.append(time.perf_counter() - started)
    return {"calc": took[0], "polygonize": took[1], "total": sum(took)}


def _gdal_answer() -> dict[str, float]:
    """What GDAL found: polygons and their area (pits included)."""
    import pyogrio  # noqa: PLC0415 - only to read GDAL's answer

    frame = pyogrio.read_dataframe(WORK / "gdal_extent.gpkg")
    return {"polygons": len(frame), "area_m2": float(frame.geometry.area.sum())}


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> None:
    """Build, run the rounds, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    load = [os.getloadavg()]
    dem = build(args.size)
    row, col, level = seed(args.size)
    commands = _gdal_commands(dem, level)
    times: dict[str, list[float]] = {"platform": [], "process": [], "gdal": [], "calc": [],
                                     "polygonize": []}  # fmt: skip
    mine: dict[str, float] = {}
    for n in range(args.rounds):
        for side in ("platform", "gdal") if n % 2 == 0 else ("gdal", "platform"):
            if side == "platform":
                mine = _platform(dem, row, col, level)
                times["platform"].append(mine["step"])
                times["process"].append(mine["process"])
            else:
                gdal = _gdal(commands)
                for key, name in (
                    ("total", "gdal"),
                    ("calc", "calc"),
                    ("polygonize", "polygonize"),
                ):
                    times[name].append(gdal[key])
        _say(f"round {n + 1}: platform {times['platform'][-1]:.2f} s (process "
             f"{times['process'][-1]:.2f} s), gdal_calc + gdal_polygonize "
             f"{times['gdal'][-1]:.2f} s")  # fmt: skip
    theirs = _gdal_answer()
    load.append(os.getloadavg())
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["platform"] / medians["gdal"]
    _say(f"level {level:.2f} m, seed row {row} col {col}; platform {mine['polygons']:,.0f} "
         f"polygons, {mine['area_m2'] / 1e6:.2f} km² (connected to the seed); GDAL "
         f"{theirs['polygons']:,.0f} polygons, {theirs['area_m2'] / 1e6:.2f} km² (every cell "
         "below the level)")  # fmt: skip
    _say(
        f"platform median {medians['platform']:.2f} s (whole process "
        f"{medians['process']:.2f} s; goal <= {GOAL_S:g} s: {medians['platform'] <= GOAL_S})"
    )
    _say(f"gdal_calc + gdal_polygonize median {medians['gdal']:.2f} s")
    _say(f"ratio platform/GDAL {ratio:.2f}")
    if not args.no_record:
        _record(args, level=level, times=times, medians=medians, mine=mine, theirs=theirs,
                commands=commands, load=load)  # fmt: skip


def _record(args: Any, *, level: float, times: dict[str, list[float]],
            medians: dict[str, float], mine: dict[str, float], theirs: dict[str, float],
            commands: list[list[str]], load: list[Any]) -> None:  # fmt: skip
    gdal = subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=ROOT, check=False).stdout.strip()  # fmt: skip
    loads = ", ".join(f"{a:.1f}/{b:.1f}/{c:.1f}" for a, b, c in load)
    figures = {k: ", ".join(f"{v:.2f}" for v in values) for k, values in times.items()}
    shown = [shlex.join(c).replace(str(ROOT) + "/", "") for c in commands]
    lines = [
        (f"## {now} · flood extent, DEM {args.size:,}² ({args.size * CELL / 1000:g} km "
         f"square at {CELL:g} m)"),
        "",
        (f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs, load averages (start, end) "
         f"{loads}; {gdal}; rasterio {rasterio.__version__} with GDAL "
         f"{rasterio.__gdal_version__}; platform at {revision}"),
        (f"- DEM `benchmarks/var/flood/dem_{args.size}.tif` (float32, EPSG:4546, tiled, "
         f"generator version {VERSION}); level {level:.2f} m (6 m over the bed at the seed)"),
        ("- platform: the level method's engine (strips read, 4-connected to the seed, "
         "polygonized, pieces under 100 m² dropped, answered in CRS84) in a fresh Python process; "
         f"GDAL: `{shown[0]}` then `{shown[1]}`"),
        (f"- answers: platform {mine['polygons']:,.0f} polygons, {mine['area_m2'] / 1e6:.2f} "
         f"km² connected to the seed; GDAL {theirs['polygons']:,.0f} polygons, "
         f"{theirs['area_m2'] / 1e6:.2f} km²: every cell below the level, the closed pits "
         "too (gdal_calc knows no connectivity)"),
        "",
        "| side | median (s) | rounds |",
        "|---|---:|---|",
        f"| platform engine | {medians['platform']:.2f} | {figures['platform']} |",
        f"| platform, whole python process | {medians['process']:.2f} | {figures['process']} |",
        f"| gdal_calc + gdal_polygonize | {medians['gdal']:.2f} | {figures['gdal']} |",
        f"| (gdal_calc alone) | {medians['calc']:.2f} | {figures['calc']} |",
        f"| (gdal_polygonize alone) | {medians['polygonize']:.2f} | {figures['polygonize']} |",
        "",
        (f"- **platform {medians['platform']:.1f} s** (goal ≤ {GOAL_S:g} s on 2 cores); "
         f"**platform/GDAL {medians['platform'] / medians['gdal']:.2f}**"),
        "",
    ]  # fmt: skip
    previous = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    gap = "\n" if previous and not previous.endswith("\n\n") else ""
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(gap + "\n".join(lines) + "\n")
    _say(f"appended to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
