"""Raster layers of a map image (:mod:`tiles.render`): imagery and elevation drawn by the
platform's raster engines onto the image's grid, for Mapnik to lay under the vector layers.

- imagery: the mosaic of the scenes (latest on top) read from their display COGs by
  rio-tiler onto the grid, its bands or index rescaled and coloured as the map tiles are
  (:mod:`tiles.raster`, :mod:`spatial.imagery`);
- elevation: a hillshade (Horn's gradient on the cells' ground size, lit as the hillshade
  tiles are, :mod:`tiles.terrain`), grey with an alpha that grows with the shading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio.crs
from affine import Affine
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

from layers.subsystems import Render
from spatial import imagery, mosaic, rasterstore
from spatial import terrain as surface
from tiles import raster, terrain

TRUE_COLOUR = Render(bands=["red", "green", "blue"])


@dataclass(frozen=True)
class Grid:
    """The image's grid: bbox (x = easting/longitude) in EPSG ``crs``, pixels."""

    bbox: tuple[float, float, float, float]
    crs: int
    width: int
    height: int


def pixels(
    scenes: Sequence[mosaic.Scene], render_: Render | None, grid: Grid, elevation: bool
) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
    """RGBA pixels of a raster layer on ``grid`` (the mosaic of ``scenes``, latest first,
    read from their display COGs) drawn as ``render_`` (None: true colour), or for an
    ``elevation`` model as a hillshade; None when no scene covers it."""
    crs = rasterio.crs.CRS.from_epsg(grid.crs)
    if elevation:
        return _hillshade(scenes, grid, crs)
    render_ = render_ or TRUE_COLOUR
    style = raster.Style(render_.expression, tuple(render_.bands or ()), render_.rescale,
                         render_.colormap)  # fmt: skip
    result = None
    first = None
    with rasterstore.reading():
        for item in scenes:
            indexes, expr = style.plan(item)
            with Reader(str(item.web)) as reader:
                try:
                    img = reader.part(grid.bbox, dst_crs=crs, bounds_crs=crs, width=grid.width,
                                      height=grid.height, indexes=indexes)  # fmt: skip
                except TileOutsideBounds:
                    continue
            values = raster._values(img, indexes, expr)  # the tiles' own mosaic
            first = first or item
            result = raster._merge(result, values)
            if not np.ma.getmaskarray(result).all(axis=0).any():
                break
    if result is None or first is None:
        return None
    lut = imagery.colormap(style.colormap) if style.colormap else None
    scaled = imagery.to_bytes(result, style.ranges(first, result.shape[0]))
    return imagery.rgba(scaled, lut)


def _hillshade(
    scenes: Sequence[mosaic.Scene], grid: Grid, crs: rasterio.crs.CRS
) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
    minx, miny, maxx, maxy = grid.bbox
    dx, dy = (maxx - minx) / grid.width, (maxy - miny) / grid.height
    box = (minx - dx, miny - dy, maxx + dx, maxy + dy)
    heights = None
    with rasterstore.reading():
        for item in scenes:
            with Reader(str(item.web)) as reader:
                try:
                    img = reader.part(box, dst_crs=crs, bounds_crs=crs, width=grid.width + 2,
                                      height=grid.height + 2, indexes=1,
                                      resampling_method="bilinear",
                                      reproject_method="bilinear")  # fmt: skip
                except TileOutsideBounds:
                    continue
            heights = np.ma.asarray(img.array[0].astype("float64"))
            break
    if heights is None or np.ma.getmaskarray(heights).all():
        return None
    transform = Affine(dx, 0.0, box[0], 0.0, -dy, box[3])
    east, north = surface.cell_size(crs.to_wkt(), transform, grid.height,
                                    col=grid.width / 2, row_off=1)  # fmt: skip
    gx, gy = surface.horn(np.ma.filled(heights, np.nan), east, north)
    shading = terrain.Shading()
    lit = surface.shade(gx, gy, azimuth=shading.azimuth, altitude=shading.altitude)
    flat = float(np.sin(np.radians(shading.altitude)))
    valid = np.isfinite(lit)
    lit = np.where(valid, lit, flat)
    alpha = np.where(
        valid, np.clip(np.abs(lit - flat) * terrain.ALPHA_GAIN, 0, terrain.MAX_ALPHA), 0
    )
    pixels = np.empty((grid.height, grid.width, 4), dtype=np.uint8)
    grey = np.rint(lit * 255.0).astype(np.uint8)
    pixels[..., 0] = pixels[..., 1] = pixels[..., 2] = grey
    pixels[..., 3] = np.rint(alpha * 255.0).astype(np.uint8)
    return pixels
