"""Four-band demo scenes (blue, green, red, NIR) rendered from the cadastre's land use.

Each pixel takes the typical reflectance of the class of the parcel under it, times a
per-parcel brightness factor and per-pixel noise; road strips and gaps look like asphalt,
the margin outside the city like mixed vegetation. NDVI is therefore high on farmland,
orchards, forest and grass, low on built-up land and negative on water, and parcels that
were built on between the editions show an NDVI drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize

from spatial.samples import landuse
from spatial.samples.city import Parcels
from spatial.samples.constants import CRS_PROJECTED
from spatial.samples.grid import Grid
from spatial.samples.streams import STREAM_SCENE_2025, STREAM_SCENE_2026, rng

PIXEL = 10.0
MARGIN = 200.0
BANDS = ("blue", "green", "red", "nir")
SENSOR = "demo-4band"


@dataclass(frozen=True)
class Scene:
    """Acquisition facts of one scene."""

    year: int
    datetime_tag: str
    acquired: str
    stream: int
    gain: float


SCENES = {
    2025: Scene(2025, "2025:10:15 03:00:00", "2025-10-15T03:00:00Z", STREAM_SCENE_2025, 1.0),
    2026: Scene(2026, "2026:10:20 03:00:00", "2026-10-20T03:00:00Z", STREAM_SCENE_2026, 1.02),
}


def scene_transform(grid: Grid) -> tuple[Affine, int, int]:
    """Geotransform and size of the scenes: the city extent plus a margin, 10 m pixels.

    Args:
        grid: the city frame.

    Returns:
        (transform, width, height).
    """
    west, north = grid.x0 - MARGIN, grid.y1 + MARGIN
    width = round((grid.width + 2 * MARGIN) / PIXEL)
    height = round((grid.height + 2 * MARGIN) / PIXEL)
    return Affine(PIXEL, 0.0, west, 0.0, -PIXEL, north), width, height


def _base_spectra(parcels: Parcels) -> npt.NDArray[np.float64]:
    """Row 0: asphalt; row 1: countryside; row k + 2: parcel k."""
    rows = [landuse.ROAD_SPECTRUM, landuse.COUNTRYSIDE_SPECTRUM]
    rows += [landuse.spectrum(str(code)) for code in parcels.dlbm]
    return np.array(rows, dtype=np.float64)


def _geojson(geometry: npt.NDArray[np.object_]) -> list[dict[str, Any]]:
    """GeoJSON-like dicts for ``rasterize``, built in bulk for the plain four-sided cells.

    (Asking each shapely geometry for ``__geo_interface__`` costs more than rasterizing.)
    """
    plain = (
        (shapely.get_num_coordinates(geometry) == 5)
        & (shapely.get_type_id(geometry) == 3)
        & (shapely.get_num_interior_rings(geometry) == 0)
    )
    rings = iter(shapely.get_coordinates(geometry[plain]).reshape(-1, 5, 2).tolist())
    return [
        {"type": "Polygon", "coordinates": [next(rings)]} if is_plain else g.__geo_interface__
        for g, is_plain in zip(geometry, plain, strict=True)
    ]


def render(grid: Grid, parcels: Parcels, scene: Scene) -> npt.NDArray[np.uint16]:
    """Render the bands of one scene.

    Args:
        grid: the city frame.
        parcels: the cadastre edition seen by this scene.
        scene: acquisition facts (noise stream, overall brightness).

    Returns:
        Array (4, height, width) of reflectance x 10000 in 1..10000.
    """
    generator = rng(scene.stream)
    transform, width, height = scene_transform(grid)
    shapes = zip(_geojson(parcels.geometry), range(2, len(parcels) + 2), strict=True)
    index = rasterize(shapes, out_shape=(height, width), transform=transform, fill=0, dtype="int32")
    cols = np.arange(width) * PIXEL + transform.c + PIXEL / 2
    rows = transform.f - (np.arange(height) + 0.5) * PIXEL
    outside = (
        (cols[None, :] < grid.x0)
        | (cols[None, :] > grid.x1)
        | (rows[:, None] < grid.y0)
        | (rows[:, None] > grid.y1)
    )
    index = np.where((index == 0) & outside, 1, index)
    # Per-parcel brightness: stable between scenes for parcels that keep their DKBM.
    keys = np.array([int(str(k)[:18]) % 1_000_003 for k in parcels.dkbm], dtype=np.int64)
    factor = np.concatenate([[1.0, 1.0], 0.92 + 0.16 * ((keys * 7919) % 1000) / 1000.0])
    spectra = _base_spectra(parcels) * factor[:, None] * scene.gain
    pixels = spectra[index]  # (height, width, 4)
    noise = generator.normal(1.0, 0.035, pixels.shape)
    values = np.clip(np.rint(pixels * noise), 1, 10000).astype(np.uint16)
    return np.ascontiguousarray(np.moveaxis(values, -1, 0))


def write_scene(target: Path, grid: Grid, parcels: Parcels, year: int) -> None:
    """Write one scene as a tiled, DEFLATE-compressed GeoTIFF in EPSG:4546.

    Args:
        target: the ``.tif`` to write.
        grid: the city frame.
        parcels: the cadastre edition seen by this scene.
        year: 2025 or 2026 (selects date tag and noise stream).
    """
    scene = SCENES[year]
    data = render(grid, parcels, scene)
    transform, width, height = scene_transform(grid)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": len(BANDS),
        "dtype": "uint16",
        "crs": CRS.from_epsg(CRS_PROJECTED),
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = BANDS
        dst.update_tags(
            TIFFTAG_DATETIME=scene.datetime_tag, SENSOR=SENSOR, ACQUISITION_DATETIME=scene.acquired
        )


def ndvi(red: npt.NDArray[np.floating], nir: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Normalised difference vegetation index.

    Args:
        red: red reflectance.
        nir: near-infrared reflectance.

    Returns:
        (nir - red) / (nir + red).
    """
    r, n = red.astype(np.float64), nir.astype(np.float64)
    return np.asarray((n - r) / np.maximum(n + r, 1.0), dtype=np.float64)
