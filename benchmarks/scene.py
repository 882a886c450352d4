"""The reference scene of the raster benchmark (``rasters.py``), built seeded and cached.

4 bands (blue, green, red, nir), uint16, ``size`` x ``size`` cells of 10 m in EPSG:4546
(CGCS2000 3-degree Gauss-Kruger CM 111E) from 112.0°E, 23.27°N (a 4096-cell scene reaches
about 112.4°E, 22.9°N), a tiled DEFLATE GeoTIFF with nodata 0 and an acquisition time.
Land-cover patches of 32-64 cells (water, forest, cropland, built-up, bare soil; built-up
denser near a centre, a river across) carry each class's reflectance, varied by patch, with
3.5 % noise per cell, so NDVI tiles compress like real imagery. Kept in
``var/bench/rasters/scene_<size>.tif`` and reused while its size and generator version are
unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.transform import from_origin

WORK = Path(__file__).resolve().parent.parent / "var" / "bench" / "rasters"
"""The raster benchmark's folder (the scene, the COGs, the scripts)."""

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


def scene_path(size: int = DEFAULT_SIZE) -> Path:
    """Where the scene of a given size is kept (under the ignored ``var/``)."""
    return WORK / f"scene_{size}.tif"


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
