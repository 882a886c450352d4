"""The reference data set "parcels": a seeded cadastral coverage written as a GeoPackage.

About 200,000 four-sided parcels (~60 m) around 112.0-112.27°E, 22.85-23.12°N, in
EPSG:4490 (CGCS2000, lon/lat). The parcels are the cells of a jittered grid whose corner
vertices are shared by the neighbouring cells, so together they form a clean coverage: no
overlaps, no gaps, every polygon valid and convex. Attributes, one row per parcel:

- ``parcel_id`` (text, unique): ``44530`` + district + an 8-digit sequence number,
- ``land_use`` (text): one of 8 first-level classes of GB/T 21010-2017, in patches,
- ``district`` (integer 1-5): Voronoi zones around five fixed seats,
- ``owner_type`` (text): the kind of rights holder,
- ``registered`` (date): between 1990-01-01 and 2024-12-31.

The same ``size`` and generator version always give the same file content, so figures
from different runs and machines compare. ``build`` keeps a sidecar JSON beside the file
and skips the work when both already match.

Run ``python benchmarks/parcels.py --size 20000`` to build a small copy by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import shapely

GENERATOR_VERSION = 1
"""Bump whenever the generated content changes, so cached files are rebuilt."""

SEED = 20_260_401
DEFAULT_SIZE = 200_000
LAYER = "parcels"
CRS = "EPSG:4490"
EXTENT = (112.0, 22.85, 112.27, 23.12)
"""West, south, east, north in degrees (CGCS2000 lon/lat)."""

JITTER = 0.25
"""Largest corner shift as a fraction of the cell side; below 0.5 every quad stays convex."""

LAND_USE: tuple[tuple[str, float], ...] = (
    ("耕地", 0.30),
    ("园地", 0.10),
    ("林地", 0.22),
    ("草地", 0.04),
    ("商服用地", 0.05),
    ("工矿仓储用地", 0.07),
    ("住宅用地", 0.17),
    ("公共管理与公共服务用地", 0.05),
)
"""First-level land-use classes and their share of the patches."""

OWNER_TYPES: tuple[tuple[str, float], ...] = (
    ("集体", 0.55),
    ("国有", 0.25),
    ("个人", 0.12),
    ("企业", 0.08),
)

DISTRICT_SEATS = (
    (112.06, 22.92),
    (112.20, 22.91),
    (112.13, 23.00),
    (112.05, 23.07),
    (112.22, 23.06),
)
"""Lon/lat of the five district seats; each parcel belongs to the nearest one."""

PATCH = 8
"""Land use comes in patches of PATCH x PATCH cells that mostly share one class."""

PATCH_SHARE = 0.7
"""Share of a patch's parcels that take the patch's class (the rest draw freely)."""

_FIRST_DAY = np.datetime64("1990-01-01")
_LAST_DAY = np.datetime64("2024-12-31")
_METRES_PER_DEGREE = 111_320.0

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def default_path(size: int = DEFAULT_SIZE) -> Path:
    """Where the benchmarks keep the data set of a given size (under the ignored ``var/``).

    Args:
        size: the number of parcels.

    Returns:
        ``var/bench/parcels_<size>.gpkg`` of the checkout.
    """
    return Path(__file__).resolve().parent.parent / "var" / "bench" / f"parcels_{size}.gpkg"


def build(path: Path, size: int = DEFAULT_SIZE) -> Path:
    """Write the parcels GeoPackage at ``path`` unless an identical one is already there.

    The file is written beside its final name and renamed into place, then a sidecar
    ``<path>.json`` records the size, seed and generator version it was built with.

    Args:
        path: the GeoPackage to write (parent directories are created).
        size: the number of parcels, at least 1.

    Returns:
        ``path``.

    Raises:
        ValueError: ``size`` is not positive.
        RuntimeError: the generated geometry is invalid, or ``ogrinfo`` (gdal-bin) is
            missing or fails.
    """
    if size < 1:
        msg = f"size must be at least 1, not {size}"
        raise ValueError(msg)
    sidecar = path.with_name(path.name + ".json")
    stamp = {"generator": "parcels", "version": GENERATOR_VERSION, "seed": SEED, "size": size}
    if path.is_file() and sidecar.is_file() and _read_json(sidecar) == stamp:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar.unlink(missing_ok=True)
    partial = path.with_name(f".{path.stem}.partial.gpkg")
    partial.unlink(missing_ok=True)
    frame = generate(size)
    # VERSION=1.3 keeps the file fully readable by the older GDAL of gdal-bin (ogr2ogr).
    pyogrio.write_dataframe(frame, partial, layer=LAYER, dataset_options={"VERSION": "1.3"})
    _declare_date(partial, "registered")
    partial.replace(path)
    tmp_sidecar = sidecar.with_name(f".{sidecar.name}.partial")
    tmp_sidecar.write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    tmp_sidecar.replace(sidecar)
    return path


def generate(size: int = DEFAULT_SIZE) -> gpd.GeoDataFrame:
    """Generate the parcels in memory.

    Args:
        size: the number of parcels, at least 1.

    Returns:
        A GeoDataFrame in EPSG:4490 with ``registered`` as ``YYYY-MM-DD`` text (``build``
        declares the column a date in the file).

    Raises:
        RuntimeError: a generated polygon is invalid (a bug in the generator).
    """
    rng = np.random.default_rng(SEED)
    nx, ny = _grid_shape(size)
    vx, vy = _vertices(rng, nx, ny)
    cell = np.arange(size, dtype=np.int64)
    row, col = np.divmod(cell, nx)
    # Rings run counter-clockwise from the south-west corner; neighbours index the same
    # vertices, so their shared edges are identical.
    rows = np.stack([row, row, row + 1, row + 1, row], axis=1)
    cols = np.stack([col, col + 1, col + 1, col, col], axis=1)
    coords = np.stack([vx[rows, cols], vy[rows, cols]], axis=-1)
    geometry = shapely.polygons(coords)
    if not shapely.is_valid(geometry).all():
        msg = "the parcel generator produced invalid polygons"
        raise RuntimeError(msg)

    centre_x = coords[:, :4, 0].mean(axis=1)
    centre_y = coords[:, :4, 1].mean(axis=1)
    district = _districts(centre_x, centre_y)
    return gpd.GeoDataFrame(
        {
            "parcel_id": _parcel_ids(cell, district),
            "land_use": _land_use(rng, row, col),
            "district": district.astype(np.int32),
            "owner_type": _draw(rng, OWNER_TYPES, size),
            "registered": _dates(rng, size),
        },
        geometry=geometry,
        crs=CRS,
    )


def _grid_shape(size: int) -> tuple[int, int]:
    """Columns and rows of a grid of roughly square cells over EXTENT with >= size cells."""
    west, south, east, north = EXTENT
    mid_lat = math.radians((south + north) / 2)
    width_m = (east - west) * _METRES_PER_DEGREE * math.cos(mid_lat)
    height_m = (north - south) * _METRES_PER_DEGREE
    nx = max(1, round(math.sqrt(size * width_m / height_m)))
    ny = math.ceil(size / nx)
    return nx, ny


def _vertices(rng: np.random.Generator, nx: int, ny: int) -> tuple[FloatArray, FloatArray]:
    """Jittered corner vertices, shape (ny + 1, nx + 1); the outer frame stays straight."""
    west, south, east, north = EXTENT
    dx = (east - west) / nx
    dy = (north - south) / ny
    jx = rng.uniform(-JITTER, JITTER, (ny + 1, nx + 1)) * dx
    jy = rng.uniform(-JITTER, JITTER, (ny + 1, nx + 1)) * dy
    jx[:, [0, -1]] = 0.0
    jy[[0, -1], :] = 0.0
    xs = west + np.arange(nx + 1) * dx
    ys = south + np.arange(ny + 1) * dy
    # Rounding the shared vertex once (~1 mm) keeps neighbours' edges identical.
    vx = np.round(xs[np.newaxis, :] + jx, 8)
    vy = np.round(ys[:, np.newaxis] + jy, 8)
    return vx, vy


def _districts(x: FloatArray, y: FloatArray) -> IntArray:
    """District 1-5: the nearest seat (distances in a local equirectangular frame)."""
    seats = np.asarray(DISTRICT_SEATS)
    scale = math.cos(math.radians(sum(EXTENT[1::2]) / 2))
    d2 = ((x[:, np.newaxis] - seats[:, 0]) * scale) ** 2 + (y[:, np.newaxis] - seats[:, 1]) ** 2
    nearest: IntArray = np.argmin(d2, axis=1).astype(np.int64)
    return nearest + 1


def _parcel_ids(cell: IntArray, district: IntArray) -> npt.NDArray[np.str_]:
    prefix = np.char.add("44530", district.astype(str))
    return np.char.add(prefix, np.char.zfill(cell.astype(str), 8))


def _land_use(rng: np.random.Generator, row: IntArray, col: IntArray) -> npt.NDArray[np.str_]:
    """Mostly the class of the cell's patch, sometimes a free draw."""
    patch_rows = int(row.max()) // PATCH + 1
    patch_cols = int(col.max()) // PATCH + 1
    patch_class = _draw(rng, LAND_USE, patch_rows * patch_cols)
    own = patch_class[(row // PATCH) * patch_cols + col // PATCH]
    free = _draw(rng, LAND_USE, len(row))
    return np.where(rng.random(len(row)) < PATCH_SHARE, own, free)


def _draw(
    rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int
) -> npt.NDArray[np.str_]:
    names = np.array([name for name, _ in table])
    weights = np.array([weight for _, weight in table])
    return names[rng.choice(len(names), size=n, p=weights / weights.sum())]


def _dates(rng: np.random.Generator, n: int) -> npt.NDArray[np.str_]:
    span = int((_LAST_DAY - _FIRST_DAY).astype(int))
    days = _FIRST_DAY + rng.integers(0, span + 1, n).astype("timedelta64[D]")
    return days.astype(str)


def _declare_date(path: Path, column: str) -> None:
    """Make ``column`` a GeoPackage DATE field (its values are already ``YYYY-MM-DD``).

    pyogrio infers text for date values unless pyarrow is installed, which the project
    does not require; GDAL's ALTER changes only the declared type, the values conform.
    """
    ogrinfo = shutil.which("ogrinfo")
    if ogrinfo is None:
        msg = "ogrinfo is not installed (Debian: apt-get install gdal-bin)"
        raise RuntimeError(msg)
    done = subprocess.run(
        [
            ogrinfo,
            "-q",
            str(path),
            "-dialect",
            "OGRSQL",
            "-sql",
            f"ALTER TABLE {LAYER} ALTER COLUMN {column} TYPE date",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or "ERROR" in done.stderr:
        msg = f"ogrinfo could not declare {column} a date: {done.stderr.strip()}"
        raise RuntimeError(msg)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Build the data set from the command line.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="number of parcels")
    parser.add_argument("--out", type=Path, help="GeoPackage to write [var/bench/parcels_N.gpkg]")
    args = parser.parse_args(argv)
    path = args.out or default_path(args.size)
    started = time.perf_counter()
    try:
        build(path, args.size)
    except (ValueError, RuntimeError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    elapsed = time.perf_counter() - started
    mib = path.stat().st_size / 2**20
    sys.stdout.write(f"{path} ({args.size:,} parcels, {mib:.1f} MiB) ready in {elapsed:.1f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
