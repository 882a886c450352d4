"""The demo city's digital elevation model: valleys under the rivers, hills under the forest.

The heights start from :meth:`Grid.elevation` (the valley the gauges' warning levels were
drawn from, :func:`spatial.samples.themes.water_gauges`) and are shaped by the rivers:

- each river cuts a channel (:data:`CHANNELS`: half-width by class, the same widths the
  cadastre's water parcels use) whose bed lies ``depth`` metres under the ground at the
  river (the valley height at the nearest point of its centre line, smoothed across the
  meanders), so every bed is below its gauges' warning levels (ground + 3 to 4.5 m);
- beside the channel a flood plain rises steadily (``rise`` metres at ``plain`` metres from
  the centre line), so that a level at a gauge's danger level (warning + 1 m, 4 to 5.5 m
  above the ground) floods a band of about 210-280 m each side of the main river (its
  flood-risk zones, :mod:`spatial.samples.floods`, reach 200 m for the 50-year flood and
  400 m for the 100-year one) and 110-150 m beside a tributary;
- further out the valley sides keep rising, by at most :data:`LIFT` metres more, and give
  way to the valley of :meth:`Grid.elevation` where that is higher (hills are kept, hollows
  lower than the river's valley are filled);
- forest land of the cadastre (first-level class ``03``) stands on hills 15-75 m high, away
  from the flood plains;
- smooth noise of a metre or two (less on the flood plains);
- one closed basin (:class:`Basin`), away from the rivers and the forest, whose floor lies
  3 m under the lowest danger level of the main river's gauges and whose rim stands 2 m
  above the highest: water at any of those levels reaches it only by rain, so a flood
  extent "connected to the river" must leave it dry.

Deterministic: the noise comes from its own random stream; the output is a float32
GeoTIFF in EPSG:4546 on the scenes' grid (:func:`spatial.samples.rasters.scene_transform`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from scipy import ndimage

from spatial.samples import landuse, themes
from spatial.samples.city import Parcels
from spatial.samples.constants import CRS_PROJECTED, FILE_DATE
from spatial.samples.grid import FloatArray, Grid, smooth_noise
from spatial.samples.network import River
from spatial.samples.rasters import PIXEL, scene_transform
from spatial.samples.streams import STREAM_TERRAIN, rng

NODATA = -9999.0
"""Declared nodata (no pixel of the demo DEM has it)."""


@dataclass(frozen=True)
class Channel:
    """The cross-section of one river class."""

    half_width: float
    """Half the channel's width (m)."""
    depth: float
    """The bed under the ground at the river (m)."""
    plain: float
    """Distance from the centre line (m) at which the flood plain has risen ``rise``."""
    rise: float
    """Height of the flood plain's outer edge above the ground at the river (m)."""


CHANNELS = {
    "main": Channel(half_width=30.0, depth=5.0, plain=300.0, rise=6.0),
    "tributary": Channel(half_width=8.0, depth=4.5, plain=160.0, rise=6.0),
    "canal": Channel(half_width=5.0, depth=4.5, plain=150.0, rise=6.0),
}
LIFT = 10.0
"""How much more the valley sides rise beyond the flood plain, at most (m)."""
LIFT_SCALE = 400.0
"""Distance over which the valley sides approach that lift (m)."""
BLEND = 300.0
"""Width of the band beyond the flood plain where the river's valley gives way (m)."""
SAMPLE_STEP = 5.0
"""Spacing of the points a river's distance and ground are taken from (m)."""
PAD = 600.0
"""How far beyond the raster the rivers' points are still taken (m)."""
SMOOTH_RIVER_PX = 8.0
"""Smoothing of the ground at the river (pixels): no step where two meanders' nearest
points meet."""
FOREST_RELIEF = (15.0, 75.0)
"""Height range of the forest hills (m): their ridges and valleys, steep enough that the
hills hold land of every cultivated-land slope grade (up to >25°)."""
FOREST_WAVELENGTH = 450.0
"""Typical spacing of the forest hills' ridges (m)."""
BASIN_RADIUS = 300.0
"""Radius of the closed basin (m) where its floor rises to the rim height."""


@dataclass(frozen=True)
class Basin:
    """The closed low basin: its centre (EPSG:4546), radius, floor and rim heights."""

    x: float
    y: float
    radius: float
    floor: float
    rim: float


@dataclass(frozen=True)
class Terrain:
    """The DEM's heights on the scenes' grid and the basin dug into it."""

    heights: npt.NDArray[np.float32]
    transform: Affine
    basin: Basin


def _smoothstep(t: FloatArray) -> FloatArray:
    t = np.clip(t, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), dtype=np.float64)


def _river_field(
    grid: Grid, river: River, transform: Affine, shape: tuple[int, int]
) -> tuple[FloatArray, FloatArray]:
    """Distance (m) from each pixel centre to the river and the ground at its nearest point.

    The nearest of the points sampled along the river comes from a Euclidean distance
    transform of the pixels they fall in (a k-d tree query of every pixel is ten times
    slower), then the distance is measured to the two pieces of line beside that point.
    """
    length = river.line.length
    along = np.linspace(0.0, length, max(int(np.ceil(length / SAMPLE_STEP)), 2) + 1)
    samples = shapely.get_coordinates(shapely.line_interpolate_point(river.line, along))
    ground = grid.elevation(samples[:, 0], samples[:, 1])
    pad = round(PAD / PIXEL)
    rows, cols = shape[0] + 2 * pad, shape[1] + 2 * pad
    col = np.floor((samples[:, 0] - transform.c) / PIXEL).astype(np.int64) + pad
    row = np.floor((transform.f - samples[:, 1]) / PIXEL).astype(np.int64) + pad
    keep = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    label = np.zeros((rows, cols), dtype=np.int64)
    label[row[keep], col[keep]] = np.flatnonzero(keep) + 1
    near_r, near_c = ndimage.distance_transform_edt(
        label == 0, return_distances=False, return_indices=True
    )
    inner = (slice(pad, pad + shape[0]), slice(pad, pad + shape[1]))
    nearest = label[near_r[inner], near_c[inner]] - 1
    x = transform.c + (np.arange(shape[1]) + 0.5) * PIXEL
    y = transform.f - (np.arange(shape[0]) + 0.5) * PIXEL
    px, py = np.broadcast_to(x[None, :], shape), np.broadcast_to(y[:, None], shape)
    distance = np.full(shape, np.inf)
    last = len(samples) - 1
    for first in (nearest - 1, nearest):
        a, b = np.clip(first, 0, last), np.clip(first + 1, 0, last)
        ax, ay, bx, by = samples[a, 0], samples[a, 1], samples[b, 0], samples[b, 1]
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0, 1)
        distance = np.minimum(distance, np.hypot(px - ax - t * dx, py - ay - t * dy))
    at_river = ndimage.gaussian_filter(ground[nearest], SMOOTH_RIVER_PX)
    return distance, at_river


def _valley(channel: Channel, distance: FloatArray, ground: FloatArray) -> FloatArray:
    """Heights of a river's channel, flood plain and valley sides."""
    # At least a cell each side: a narrower channel would fall between the pixel centres.
    hw = max(channel.half_width, PIXEL)
    slope = channel.rise / (channel.plain - hw)
    bed = -channel.depth * (1.0 - (np.minimum(distance, hw) / hw) ** 2)
    plain = slope * np.clip(distance - hw, 0.0, channel.plain - hw)
    beyond = LIFT * (1.0 - np.exp(-np.maximum(distance - channel.plain, 0.0) / LIFT_SCALE))
    return np.asarray(ground + bed + plain + beyond, dtype=np.float64)


def _forest(parcels: Parcels, transform: Affine, shape: tuple[int, int]) -> FloatArray:
    """Share of forest land around each pixel (0..1, smoothed over about 150 m)."""
    forest = np.array([landuse.first_level(str(c)) == "03" for c in parcels.dlbm], dtype=bool)
    shapes = [(g, 1) for g in parcels.geometry[forest]]
    mask = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="uint8")
    return np.asarray(ndimage.gaussian_filter(mask.astype(np.float64), 15.0), dtype=np.float64)


def _basin(
    grid: Grid, rivers: list[River], heights: FloatArray, away: FloatArray, forest: FloatArray
) -> Basin:
    """Where to dig the closed basin: inside the city, out of the rivers' valleys and
    (nearly) out of the forest, on ground at least the rim height all around; the flattest
    such place."""
    levels = [
        float(props["warning_level_m"]) + 1.0
        for props, _ in themes.water_gauges(grid, rivers)
        if props["river_id"] == rivers[0].river_id
    ]
    floor, rim = min(levels) - 3.0, max(levels) + 2.0
    size = 2 * round(2 * BASIN_RADIUS / PIXEL) + 1
    low = ndimage.minimum_filter(heights, size=size, mode="nearest")
    high = ndimage.maximum_filter(heights, size=size, mode="nearest")
    river = ndimage.minimum_filter(away, size=size, mode="nearest")
    trees = ndimage.uniform_filter(forest, size=size, mode="nearest")
    transform, width, height = scene_transform(grid)
    cols = transform.c + (np.arange(width) + 0.5) * PIXEL
    rows = transform.f - (np.arange(height) + 0.5) * PIXEL
    inside = (
        (cols[None, :] > grid.x0 + 2 * BASIN_RADIUS)
        & (cols[None, :] < grid.x1 - 2 * BASIN_RADIUS)
        & (rows[:, None] > grid.y0 + 2 * BASIN_RADIUS)
        & (rows[:, None] < grid.y1 - 2 * BASIN_RADIUS)
    )
    fits = inside & (low >= rim) & (river >= 0.999) & (trees < 0.05)
    if not fits.any():
        raise RuntimeError("no place for the closed basin: the terrain parameters changed")
    score = np.where(fits, high - low + 0.1 * (high - rim), np.inf)
    r, c = np.unravel_index(int(np.argmin(score)), score.shape)
    return Basin(float(cols[c]), float(rows[r]), BASIN_RADIUS, round(floor, 2), round(rim, 2))


def dem(grid: Grid, rivers: list[River], parcels: Parcels) -> Terrain:
    """The demo DEM's heights (metres, float32) on the scenes' grid.

    Args:
        grid: the city frame.
        rivers: the river system (main river first).
        parcels: the cadastre whose forest land stands on hills.

    Returns:
        The heights, their geotransform (EPSG:4546) and the closed basin.
    """
    transform, width, height = scene_transform(grid)
    shape = (height, width)
    cols = transform.c + (np.arange(width) + 0.5) * PIXEL
    rows = transform.f - (np.arange(height) + 0.5) * PIXEL
    x, y = np.meshgrid(cols, rows)
    valley = grid.elevation(x, y)
    heights = np.full(shape, np.inf)
    away = np.ones(shape)
    for river in rivers:
        channel = CHANNELS[river.river_class]
        distance, ground = _river_field(grid, river, transform, shape)
        own = _valley(channel, distance, ground)
        near = 1.0 - _smoothstep((distance - channel.plain) / BLEND)
        heights = np.minimum(heights, near * own + (1.0 - near) * np.maximum(valley, own))
        away = np.minimum(away, 1.0 - near)
    generator = rng(STREAM_TERRAIN)
    forest = _forest(parcels, transform, shape)
    ridges = 0.6 * smooth_noise(generator, x, y, 2 * FOREST_WAVELENGTH) + 0.4 * smooth_noise(
        generator, x, y, FOREST_WAVELENGTH
    )
    low, high = FOREST_RELIEF
    relief = low + (high - low) * 0.5 * (1.0 + np.tanh(1.5 * ridges))
    heights += forest * relief * away
    heights += smooth_noise(generator, x, y, 450.0) * (0.4 + 1.1 * away)
    basin = _basin(grid, rivers, heights, away, forest)
    r = np.hypot(x - basin.x, y - basin.y)
    bowl = basin.floor + (basin.rim - basin.floor) * (r / basin.radius) ** 2
    heights = np.where(r < 2 * basin.radius, np.minimum(heights, bowl), heights)
    return Terrain(heights.astype(np.float32), transform, basin)


def write_dem(path: Path, grid: Grid, rivers: list[River], parcels: Parcels) -> None:
    """Write the demo DEM as a tiled, compressed float32 GeoTIFF in EPSG:4546 (10 m pixels,
    the scenes' extent, nodata -9999 declared, band unit metre, dated
    :data:`~spatial.samples.constants.FILE_DATE`).

    Args:
        path: the ``.tif`` to write.
        grid: the city frame.
        rivers: the river system (main river first).
        parcels: the cadastre (its forest land stands on hills).
    """
    terrain = dem(grid, rivers, parcels)
    height, width = terrain.heights.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "float32",
        "crs": CRS.from_epsg(CRS_PROJECTED),
        "transform": terrain.transform,
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3,
    }
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
        dst.write(terrain.heights, 1)
        dst.descriptions = ("elevation",)
        dst.units = ("metre",)
        # The survey's date (a DEM has no acquisition; the catalog's items need a time).
        dst.update_tags(TIFFTAG_DATETIME=f"{FILE_DATE.replace('-', ':')} 00:00:00")
