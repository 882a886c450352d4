"""RPC orthorectification: the raster ingest's step against ``gdalwarp -rpc``.

A Gaofen-like scene of 4 bands (blue, green, red, nir), uint16, ``size`` x ``size``
pixels (4096 by default), georeferenced by RPCs only, over the demo city (Yunfu, about
10 m a pixel), and a DEM of the area (EPSG:4546, 30 m, hills up to about 600 m) as the
platform keeps one: a COG written by ``spatial.ingest.cog.to_cog``. Both are built
deterministically into ``benchmarks/var/rpc/`` and reused while their size and generator
version are unchanged (the scene's pixels are the raster benchmark's reference scene,
``scene.py``).

One run, ``--rounds`` rounds (3) alternating which goes first:

- the platform: what the ingest does for such a file (``spatial.ingest.orthorectify``:
  ``read_scene`` checks the model and its footprint, ``grid`` asks GDAL for the output
  grid, ``orthorectify`` warps into a tiled GeoTIFF), timed inside a fresh Python process
  (the step) and as the whole process;
- the peer: ``gdalwarp -rpc -to RPC_DEM=<the DEM COG>`` (Debian gdal-bin) onto the same
  grid (``-te``/``-ts`` of the platform's grid, in the same CRS), with the same
  resampling (bilinear), error threshold (none: with ``RPC_DEM`` gdalwarp's default is
  the exact transformer, and so is the platform's), DEM interpolation (bilinear) and
  missing height (the DEM's mean), warp memory (256 MB), threads (``-multi -wo
  NUM_THREADS=ALL_CPUS``: the platform warps on every core) and output layout (tiled 512,
  no compression), timed as the whole process.

Both outputs are compared (the same grid and, pixel for pixel, the same values), and the
run stops if they are not. Goal: the platform's step at most 1.5 x gdalwarp. The figures
are appended to ``benchmarks/RESULTS.md`` unless ``--no-record``. Smoke run: ``--size
1024 --rounds 1 --no-record``.

    .venv/bin/python benchmarks/rpc.py [--size 4096] [--rounds 3] [--no-record]
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
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.rpc import RPC
from rasterio.transform import from_origin
from rasterio.warp import transform as transform_points

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from scene import generate_scene  # noqa: E402 - a sibling script, not a package

WORK = ROOT / "benchmarks" / "var" / "rpc"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
GENERATOR_VERSION = 1
SEED = 20_261_207
CENTRE = (112.05, 22.95)
"""The scene's centre (lon, lat)."""
SPAN = 0.19
"""Degrees of latitude and longitude a 4096-pixel scene spans (about 10 m a pixel)."""
DEM_CELL = 30.0
GOAL = 1.5
WARP_MEMORY_MB = 256

STEP = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from spatial.ingest import orthorectify as o
t1 = time.perf_counter()
scene = o.read_scene(Path(sys.argv[1]))
dem = o.Dem(**json.loads(sys.argv[3]))
props = o.orthorectify(scene, dem, Path(sys.argv[2]))
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "step": t2 - t1}))
"""
"""The platform's step in a fresh process: its own timing of the step and of the import."""


def _rpc(size: int) -> RPC:
    """A pushbroom-like model: rows southward, columns eastward with a small skew and a
    curvature, and a height parallax of about 25 pixels per 500 m along the rows
    (RPC00B term order: 1 L P H LP LH PH L2 P2 H2 ...)."""
    line, samp, den = [0.0] * 20, [0.0] * 20, [0.0] * 20
    line[2], line[3], line[7] = -1.0, 0.012, 0.002
    samp[1], samp[4], samp[8] = 1.0, 0.01, 0.001
    den[0] = 1.0
    half = SPAN * size / 4096 / 2
    return RPC(height_off=200.0, height_scale=500.0, lat_off=CENTRE[1], lat_scale=half,
               line_den_coeff=den, line_num_coeff=line, line_off=size / 2,
               line_scale=size / 2, long_off=CENTRE[0], long_scale=half,
               samp_den_coeff=den, samp_num_coeff=samp, samp_off=size / 2,
               samp_scale=size / 2)  # fmt: skip


def build(size: int) -> tuple[Path, Path]:
    """The scene and the DEM COG (rebuilt only when their stamp changed)."""
    WORK.mkdir(parents=True, exist_ok=True)
    scene, dem = WORK / f"rpc_scene_{size}.tif", WORK / f"dem_{size}.cog.tif"
    stamp_file = WORK / f"stamp_{size}.json"
    stamp = {"version": GENERATOR_VERSION, "seed": SEED, "size": size}
    built = scene.is_file() and dem.is_file() and stamp_file.is_file()
    if built and json.loads(stamp_file.read_text()) == stamp:
        return scene, dem
    stamp_file.unlink(missing_ok=True)
    data = generate_scene(size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            scene, "w", driver="GTiff", width=size, height=size, count=4, dtype="uint16",
            rpcs=_rpc(size), tiled=True, blockxsize=256, blockysize=256, nodata=0,
            interleave="pixel",
        ) as dst:  # fmt: skip
            dst.write(data)
            dst.update_tags(ACQUISITION_DATETIME="2026-03-15T03:05:00Z")
    _dem(dem, size)
    stamp_file.write_text(json.dumps(stamp))
    return scene, dem


def _dem(target: Path, size: int) -> None:
    """Hills on EPSG:4546 covering the scene with a margin: a few broad ones and ridges."""
    from spatial.ingest.cog import to_cog  # noqa: PLC0415 - the platform's own COG writer

    half = SPAN * size / 4096 / 2 * 1.4
    xs, ys = transform_points("EPSG:4326", "EPSG:4546",
                              [CENTRE[0] - half, CENTRE[0] + half],
                              [CENTRE[1] - half, CENTRE[1] + half])  # fmt: skip
    width = int((xs[1] - xs[0]) / DEM_CELL)
    height = int((ys[1] - ys[0]) / DEM_CELL)
    rng = np.random.default_rng(SEED)
    rows, cols = np.mgrid[0:height, 0:width].astype("float32")
    heights = np.zeros((height, width), "float32") + 20
    for _ in range(12):
        r, c = rng.uniform(0, height), rng.uniform(0, width)
        spread = rng.uniform(0.05, 0.2) * width
        heights += rng.uniform(80, 450) * np.exp(-((rows - r) ** 2 + (cols - c) ** 2)
                                                 / (2 * spread**2))  # fmt: skip
    heights += 30 * np.sin(rows / 37.0) * np.cos(cols / 53.0)
    plain = target.with_name(target.stem + ".plain.tif")
    with rasterio.open(
        plain, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
        crs="EPSG:4546", transform=from_origin(xs[0], ys[1], DEM_CELL, DEM_CELL),
        nodata=-9999,
    ) as dst:  # fmt: skip
        dst.write(heights[None])
    to_cog(plain, target)
    plain.unlink()


def _dem_args(dem: Path) -> dict[str, Any]:
    with rasterio.open(dem) as src:
        mean = float(src.read(1, masked=True).mean())
        wkt = src.crs.to_wkt()
    return {"collection": "bench_dem", "item": dem.stem, "gdal_path": str(dem),
            "crs_wkt": wkt, "mean": mean, "coverage": 1.0}  # fmt: skip


def _platform(scene: Path, out: Path, dem: dict[str, Any]) -> dict[str, float]:
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STEP, str(scene), str(out), json.dumps(dem)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    whole = time.perf_counter() - started
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    return {"step": timings["step"], "import": timings["import"], "process": whole}


def _gdalwarp_command(scene: Path, out: Path, dem: dict[str, Any], grid: Any) -> list[str]:
    left, bottom, right, top = rasterio.transform.array_bounds(
        grid.height, grid.width, grid.transform
    )
    return [
        "gdalwarp", "-q", "-overwrite", "--config", "GDAL_PAM_ENABLED", "NO",
        "-rpc", "-to", f"RPC_DEM={dem['gdal_path']}", "-to", "RPC_DEM_INTERPOLATION=bilinear",
        "-to", f"RPC_DEM_MISSING_VALUE={dem['mean']!r}",
        "-t_srs", grid.crs.to_string(), "-te", *(repr(v) for v in (left, bottom, right, top)),
        "-ts", str(grid.width), str(grid.height), "-r", "bilinear",
        "-dstnodata", "0", "-wm", str(WARP_MEMORY_MB),
        "-multi", "-wo", "NUM_THREADS=ALL_CPUS",
        "-co", "TILED=YES", "-co", "BLOCKXSIZE=512", "-co", "BLOCKYSIZE=512",
        "-co", "BIGTIFF=IF_SAFER", str(scene), str(out),
    ]  # fmt: skip


def _gdalwarp(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def _compare(mine: Path, theirs: Path) -> dict[str, float]:
    """How alike the two outputs are; exits when they are not the same image."""
    with rasterio.open(mine) as a, rasterio.open(theirs) as b:
        same_grid = a.transform.almost_equals(b.transform, precision=1e-6)
        if (a.crs, a.shape, a.count) != (b.crs, b.shape, b.count) or not same_grid:
            sys.exit(f"different grids: {a.crs} {a.transform} {a.shape} vs "
                     f"{b.crs} {b.transform} {b.shape}")  # fmt: skip
        x, y = a.read(), b.read()
    found = {
        "outline": float(np.mean((x > 0) == (y > 0))),
        "equal": float(np.mean(x == y)),
        "largest": float(np.abs(x.astype("int32") - y).max()),
    }
    if found["equal"] < 0.999:
        sys.exit(f"the outputs differ: {found}")
    return found


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> None:
    """Build, run the rounds, compare, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    from spatial.ingest import orthorectify  # noqa: PLC0415 - after the path is set

    load = [os.getloadavg()]
    scene, dem_path = build(args.size)
    dem = _dem_args(dem_path)
    grid = orthorectify.grid(orthorectify.read_scene(scene), orthorectify.Dem(**dem))
    mine, theirs = WORK / f"platform_{args.size}.tif", WORK / f"gdalwarp_{args.size}.tif"
    command = _gdalwarp_command(scene, theirs, dem, grid)
    times: dict[str, list[float]] = {"platform": [], "process": [], "gdalwarp": []}
    for n in range(args.rounds):
        order = ("platform", "gdalwarp") if n % 2 == 0 else ("gdalwarp", "platform")
        for side in order:
            if side == "platform":
                took = _platform(scene, mine, dem)
                times["platform"].append(took["step"])
                times["process"].append(took["process"])
            else:
                times["gdalwarp"].append(_gdalwarp(command))
        _say(f"round {n + 1}: platform step {times['platform'][-1]:.2f} s (process "
             f"{times['process'][-1]:.2f} s), gdalwarp {times['gdalwarp'][-1]:.2f} s")  # fmt: skip
    alike = _compare(mine, theirs)
    load.append(os.getloadavg())
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["platform"] / medians["gdalwarp"]
    _say(f"grid {grid.width} x {grid.height} on {grid.crs}; equal pixels "
         f"{alike['equal']:.5f}, outline agreement {alike['outline']:.5f}")  # fmt: skip
    _say(f"platform step median {medians['platform']:.2f} s (whole process "
         f"{medians['process']:.2f} s)")  # fmt: skip
    _say(f"gdalwarp median {medians['gdalwarp']:.2f} s")
    _say(f"ratio platform/gdalwarp {ratio:.2f} (goal <= {GOAL}: {ratio <= GOAL}); whole "
         f"process {medians['process'] / medians['gdalwarp']:.2f}")  # fmt: skip
    if not args.no_record:
        _record(args, grid=grid, times=times, medians=medians, alike=alike, command=command,
                load=load)  # fmt: skip


def _record(args: Any, *, grid: Any, times: dict[str, list[float]],
            medians: dict[str, float], alike: dict[str, float], command: list[str],
            load: list[Any]) -> None:  # fmt: skip
    gdal = subprocess.run(["gdalwarp", "--version"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=ROOT, check=False).stdout.strip()  # fmt: skip
    loads = ", ".join(f"{a:.1f}/{b:.1f}/{c:.1f}" for a, b, c in load)
    figures = {k: ", ".join(f"{v:.2f}" for v in values) for k, values in times.items()}
    ratio = medians["platform"] / medians["gdalwarp"]
    lines = [
        f"## {now} · RPC orthorectification, scene {args.size}² x 4 bands",
        "",
        (f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs, load averages (start, end) "
         f"{loads}; {gdal.strip()}; rasterio {rasterio.__version__} with GDAL "
         f"{rasterio.__gdal_version__}; platform at {revision}"),
        (f"- scene `benchmarks/var/rpc/rpc_scene_{args.size}.tif`: RPCs only, uint16, the "
         f"reference scene's pixels; DEM `benchmarks/var/rpc/dem_{args.size}.cog.tif` "
         f"(EPSG:4546, {DEM_CELL:g} m, a COG by spatial.ingest.cog.to_cog); output grid "
         f"{grid.width} x {grid.height} on {grid.crs} (GDAL's suggestion, both sides)"),
        ("- platform: spatial.ingest.orthorectify (read_scene, orthorectify) timed inside a "
         f"fresh Python process; gdalwarp timed as a process: "
         f"`{shlex.join(command).replace(str(ROOT) + '/', '')}`"),
        (f"- {args.rounds} rounds alternating; both use the exact RPC transformer (gdalwarp's "
         f"default with RPC_DEM); equal pixels {alike['equal']:.5f}, largest difference "
         f"{alike['largest']:g}"),
        "",
        "| side | median (s) | rounds |",
        "|---|---:|---|",
        (f"| platform orthorectification step | {medians['platform']:.2f} | "
         f"{figures['platform']} |"),
        f"| platform, whole python process | {medians['process']:.2f} | {figures['process']} |",
        (f"| gdalwarp -rpc (same grid and options) | {medians['gdalwarp']:.2f} | "
         f"{figures['gdalwarp']} |"),
        "",
        (f"- **platform/gdalwarp {ratio:.2f}** (goal ≤ {GOAL}); whole process "
         f"{medians['process'] / medians['gdalwarp']:.2f}"),
        "",
    ]  # fmt: skip
    previous = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    gap = "\n" if previous and not previous.endswith("\n\n") else ""
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(gap + "\n".join(lines) + "\n")
    _say(f"appended to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
