"""Heavy analytics on Dask: speed-up with 1 and 2 workers, and the memory ceiling.

(a) zonal NDVI statistics of a generated mosaic (``--size`` cells a side, 4 uint16
bands, a tiled DEFLATE COG written by GDAL) over 25 district-like zones; (b) the overlay
of the 200,000 reference parcels (``parcels.py``) with 36 planning zones (count and
spheroid area per zone and land use). Each on a LocalCluster of 1 and of 2 workers (one
thread each, a new cluster each time), ``--rounds`` rounds alternating which goes first
(medians), checked equal to each other. Then the memory ceiling: the zonal run again on
2 workers limited to ``--memory`` each, every worker's RSS sampled every 0.1 s; the run
must finish with every peak under the limit and no worker restarted by its nanny, while
the raster's uncompressed size (reported) is above it. Appended to
``benchmarks/RESULTS.md`` unless ``--no-record``; exit status 1 if the ceiling failed.
"""

# ruff: noqa: E402, SIM105, PLR0915, T201, S101, ISC004 - a script: prints, checks, path set-up
from __future__ import annotations

import sys
from pathlib import Path

# This file's folder must not shadow the ``dask`` package (nor in the workers).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import threading
import time
from typing import Any

import geopandas as gpd
import numpy as np
import psutil
import pyogrio
import shapely
from dask.utils import parse_bytes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))

import parcels as parcel_set
from ingest import _git_revision

from spatial import distributed
from spatial.mosaic import Scene

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
BENCH = ROOT / "var" / "bench" / "dask"
BANDS = tuple({"name": n, "common_name": n} for n in ("blue", "green", "red", "nir"))
STRIP = 1024


def build_mosaic(size: int) -> Path:
    """The mosaic COG (reused while its size is unchanged)."""
    out = BENCH / f"mosaic_{size}.tif"
    if out.exists():
        return out
    BENCH.mkdir(parents=True, exist_ok=True)
    import rasterio  # noqa: PLC0415
    from rasterio.transform import from_origin  # noqa: PLC0415

    raw = BENCH / f"raw_{size}.tif"
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint16",
               "crs": "EPSG:4546", "transform": from_origin(380000, 2600000, 10, 10),
               "nodata": 0, "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "zlevel": 1, "num_threads": "all_cpus",
               "bigtiff": "yes"}  # fmt: skip
    rng = np.random.default_rng(12)
    cols = np.arange(size)
    with rasterio.open(raw, "w", **profile) as dst:
        for row in range(0, size, STRIP):
            rows = np.arange(row, min(size, row + STRIP))[:, None]
            patch = ((rows // 64) * 7 + (cols // 64) * 13) % 97  # land-cover patches
            noise = rng.integers(0, 200, size=(len(rows), size), dtype="uint16")
            for band in range(4):
                value = (patch * (band + 3) * 9 + 300 + noise).astype("uint16")
                dst.write(value, band + 1, window=((row, row + len(rows)), (0, size)))
    subprocess.run(["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=DEFLATE", "-co",
                    "LEVEL=1", "-co", "BLOCKSIZE=512", "-co", "NUM_THREADS=ALL_CPUS",
                    "-co", "OVERVIEWS=NONE", "-co", "BIGTIFF=YES", str(raw), str(out)],
                   check=True)  # fmt: skip
    raw.unlink()
    return out


def districts(grid: Any) -> gpd.GeoDataFrame:
    """25 district-like zones: a 5 x 5 Voronoi tessellation of jittered seats."""
    west, south, east, north = grid.bounds
    rng = np.random.default_rng(3)
    xs, ys = np.meshgrid(np.linspace(0.1, 0.9, 5), np.linspace(0.1, 0.9, 5))
    seats = np.column_stack([xs.ravel(), ys.ravel()]) + rng.uniform(-0.05, 0.05, (25, 2))
    points = shapely.points(
        west + seats[:, 0] * (east - west), south + seats[:, 1] * (north - south)
    )
    box = shapely.box(west, south, east, north)
    cells = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=box)
    shapes = [shapely.intersection(c, box) for c in shapely.get_parts(cells)]
    return gpd.GeoDataFrame({"id": np.arange(len(shapes)) + 1}, geometry=shapes, crs="EPSG:4546")


def planning_zones() -> gpd.GeoSeries:
    west, south, east, north = parcel_set.EXTENT
    step_x, step_y = (east - west) / 6, (north - south) / 6
    return gpd.GeoSeries([shapely.box(west + i * step_x, south + j * step_y,
                                      west + (i + 1) * step_x, south + (j + 1) * step_y)
                          for i in range(6) for j in range(6)], crs=parcel_set.CRS)  # fmt: skip


class Sampler:
    """Peak RSS of each worker process, sampled every 0.1 s."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self.peaks = dict.fromkeys(pids, 0)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            for p in self.procs:
                try:
                    self.peaks[p.pid] = max(self.peaks[p.pid], p.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.1)

    def done(self) -> dict[int, int]:
        self.stop.set()
        self.thread.join()
        return self.peaks


def _cluster(workers: int, memory: str) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster  # noqa: PLC0415

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           memory_limit=memory, dashboard_address=":0")  # fmt: skip
    return cluster, Client(cluster)


def _zonal(client: Any, item: Any, grid: Any, zones: gpd.GeoDataFrame, chunk: int) -> Any:
    stats = ["count", "mean", "min", "max", "stdev"]
    return distributed.zonal(item, "ndvi", grid, zones, stats, dask=client, chunk=chunk)


def _secs(runs: list[float]) -> str:
    """Median and the rounds: ``12.3 s (12.1, 12.3, 14.0)``."""
    each = ", ".join(f"{r:.1f}" for r in runs)
    return f"{statistics.median(runs):.1f} s ({each})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=20000, help="mosaic cells a side [20000]")
    parser.add_argument("--parcels", type=int, default=parcel_set.DEFAULT_SIZE)
    parser.add_argument("--memory", default="1GiB", help="worker limit of the ceiling run")
    parser.add_argument("--chunk", type=int, default=2048, help="window side in pixels")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of 1 and 2 workers, alternating which goes first [3]",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    mosaic = build_mosaic(args.size)
    print(f"mosaic {mosaic.name} ready in {time.monotonic() - started:.0f} s", flush=True)
    item = Scene("bench", mosaic.stem, dt.datetime.now(dt.UTC), mosaic, mosaic, BANDS)
    grid = distributed.full_grid(mosaic)
    zones = districts(grid)
    uncompressed = grid.width * grid.height * 4 * 2
    path = parcel_set.build(parcel_set.default_path(args.parcels), args.parcels)
    frame = pyogrio.read_dataframe(path, columns=["land_use"])
    plan = planning_zones()
    times: dict[str, dict[int, list[float]]] = {"zonal": {1: [], 2: []},
                                                  "overlay": {1: [], 2: []}}  # fmt: skip
    results: dict[str, dict[int, Any]] = {"zonal": {}, "overlay": {}}
    for number in range(args.rounds):  # alternating which cluster goes first
        for workers in (1, 2) if number % 2 == 0 else (2, 1):
            cluster, client = _cluster(workers, "auto")
            try:
                t = time.monotonic()
                results["zonal"][workers] = _zonal(client, item, grid, zones, args.chunk)
                times["zonal"][workers].append(time.monotonic() - t)
                t = time.monotonic()
                results["overlay"][workers] = distributed.overlay(
                    frame.geometry, frame["land_use"], plan, list(range(len(plan))),
                    geographic=True, srid=4490, dask=client, partition=10_000)  # fmt: skip
                times["overlay"][workers].append(time.monotonic() - t)
            finally:
                client.close()
                cluster.close()
            print(f"round {number + 1}, {workers} worker(s): zonal "
                  f"{times['zonal'][workers][-1]:.1f} s, overlay "
                  f"{times['overlay'][workers][-1]:.1f} s", flush=True)  # fmt: skip
    a, b = results["zonal"][1], results["zonal"][2]
    assert np.allclose(a[["count", "mean"]], b[["count", "mean"]], rtol=1e-9)
    assert a[["min", "max"]].equals(b[["min", "max"]])
    a, b = (r.sort_values(["zone", "group"]).reset_index(drop=True)
            for r in (results["overlay"][1], results["overlay"][2]))  # fmt: skip
    assert (a["count"] == b["count"]).all() and np.allclose(a["area"], b["area"], rtol=1e-9)
    median = {k: {w: statistics.median(v) for w, v in per.items()} for k, per in times.items()}
    limit = parse_bytes(args.memory)
    cluster, client = _cluster(2, args.memory)
    try:
        pids = sorted(client.run(os.getpid).values())
        idle = [psutil.Process(p).memory_info().rss for p in pids]
        sampler = Sampler(pids)
        t = time.monotonic()
        ceiling = _zonal(client, item, grid, zones, args.chunk)
        ceiling_s = time.monotonic() - t
        peaks = sampler.done()
        # A worker over 95 % of its limit is killed and replaced by its nanny (and its
        # task run again): the sampled peaks would then hide it. The same pids must remain.
        restarted = sorted(client.run(os.getpid).values()) != pids
    finally:
        client.close()
        cluster.close()
    assert np.allclose(ceiling["mean"], results["zonal"][1]["mean"], rtol=1e-9)
    held = all(p < limit for p in peaks.values()) and not restarted
    gib = 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"\n## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · Dask analytics: zonal statistics "
        "and overlay, 1 and 2 workers, memory ceiling\n",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / gib:.0f} GiB; load average at the end {load}",
        f"- platform at {_git_revision()}; LocalCluster workers of one thread each",
        f"- (a) zonal NDVI (count, mean, min, max, stdev) of a {grid.width} x {grid.height} x 4 "
        f"uint16 COG ({uncompressed / gib:.2f} GiB uncompressed, "
        f"{mosaic.stat().st_size / gib:.2f} GiB on disk) over {len(zones)} districts, windows "
        f"of {args.chunk} px: 1 worker {_secs(times['zonal'][1])}, 2 workers "
        f"{_secs(times['zonal'][2])}; median speed-up "
        f"{median['zonal'][1] / median['zonal'][2]:.2f} x.",
        f"- (b) overlay of {len(frame):,} parcels with {len(plan)} planning zones (count and "
        f"spheroid area per zone and land use), partitions of 10,000: 1 worker "
        f"{_secs(times['overlay'][1])}, 2 workers {_secs(times['overlay'][2])}; median "
        f"speed-up {median['overlay'][1] / median['overlay'][2]:.2f} x.",
        f"- Memory ceiling: (a) on 2 workers of {args.memory} each in {ceiling_s:.1f} s; peak "
        f"RSS per worker {', '.join(f'{p / gib:.2f}' for p in peaks.values())} GiB (idle "
        f"{', '.join(f'{p / gib:.2f}' for p in idle)} GiB; "
        f"{'under' if held else 'OVER'} the limit"
        f"{', a worker was restarted' if restarted else ', no worker restarted'}; "
        f"uncompressed raster / worker limit {uncompressed / limit:.1f} x); the "
        "single-process path would hold the "
        f"index in float64 alone: {grid.width * grid.height * 8 / gib:.2f} GiB.",
    ]
    print("\n".join(lines))
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
