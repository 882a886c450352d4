"""Terrain tiles of an elevation collection: heights for MapLibre's 3D terrain, and
hillshade map tiles.

- :func:`terrarium_tile`: a 256-pixel RGB PNG of the heights in Mapzen's Terrarium encoding
  (``height = R * 256 + G + B / 256 - 32768`` metres), what a MapLibre ``raster-dem``
  source with ``encoding: "terrarium"`` reads. Opaque: a pixel with no data takes the
  height of the nearest one with data, so MapLibre sees no hole (a hole would be a pit to
  -32768 m); a tile with no data at all is None (the API's 204). Rounded to the nearest
  1/256 m (rio-tiler's ``mapzen_elevation_rgb`` truncates, a bias of half a step).
- :func:`hillshade_tile`: an RGBA PNG to lay over a map: grey from the shading, and an
  alpha that grows with how far the shading is from a flat surface's (flat land is clear,
  slopes towards the light are whitened, slopes away from it darkened). Horn's gradient
  on the true cell size in metres (:mod:`spatial.terrain`): rio-tiler has no hillshade,
  and TiTiler's algorithm divides by the pixel count, not the pixel's ground size, so its
  relief changes with the zoom; here a slope is shaded the same at every zoom. The tile
  is read with one pixel of buffer so the gradients at its edges match its neighbours'
  (no seams).

Both read the display COGs (WebMercatorQuad, an overview per zoom: a WebMercatorQuad
tile is one aligned read) of the collection's items, latest on top; a tile finer than the
COG is resampled bilinearly (heights between pixels are interpolated, never stepped).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import morecantile
import numpy as np
import numpy.typing as npt
from affine import Affine
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

from spatial import imagery, rasterstore
from spatial import terrain as surface
from spatial.mosaic import Scene
from tiles.tms import tile_matrix_set

TILE_SIZE = 256
ALPHA_GAIN = 4.0
"""A hillshade pixel's opacity per unit of shading away from flat land's (a 10° slope
facing the light or away from it: about 0.5)."""
MAX_ALPHA = 0.8
OFFSET = 32768.0
"""Terrarium's offset (m): encoded values are height + 32768."""


@dataclass(frozen=True)
class Shading:
    """How a hillshade tile is lit."""

    azimuth: float = 315.0
    """Where the light comes from, degrees clockwise from north."""
    altitude: float = 45.0
    """The light's height above the horizon, degrees."""
    z_factor: float = 1.0
    """Vertical exaggeration."""

    @property
    def key(self) -> str:
        """The tile cache's part of the key for this lighting."""
        return f"{self.azimuth:g},{self.altitude:g},{self.z_factor:g}"


def read_heights(
    items: Sequence[Scene], tile: tuple[str, int, int, int], *, buffer: int = 0
) -> np.ma.MaskedArray | None:
    """The heights of a tile (``tms``, ``z``, ``col``, ``row``), ``buffer`` pixels wider
    on each side, from the items' display COGs (latest first, later ones filling the
    holes); None when no item has data there."""
    tms_id, z, x, y = tile
    tms = tile_matrix_set(tms_id)
    result: np.ma.MaskedArray | None = None
    with rasterstore.reading():
        for item in items:
            with Reader(str(item.web), tms=tms) as reader:
                # Finer than the COG: interpolate (nearest would step); at or above its
                # resolution a tile is an aligned read of a level, nearest reads it as is.
                finer = tms.matrix(z).cellSize < abs(reader.dataset.res[0]) * 0.99
                method: Any = "bilinear" if finer else "nearest"
                try:
                    img = reader.tile(x, y, z, indexes=1, buffer=buffer or None,
                                      resampling_method=method,
                                      reproject_method=method)  # fmt: skip
                except TileOutsideBounds:
                    continue
            layer: np.ma.MaskedArray = np.ma.asarray(img.array[0].astype("float32"))
            if result is None:
                result = layer
                if not np.ma.getmaskarray(result).any():
                    break
            else:
                holes = np.ma.getmaskarray(result) & ~np.ma.getmaskarray(layer)
                result[holes] = layer[holes]
                if not np.ma.getmaskarray(result).any():
                    break
    if result is None or np.ma.getmaskarray(result).all():
        return None
    return result


def fill(heights: np.ma.MaskedArray) -> npt.NDArray[np.float64]:
    """The heights with every masked pixel given a valid height near it: the nearest valid
    one of its row (rows with none take the nearest row's). Outside a DEM's edge the edge
    carries on flat; a Euclidean distance transform would cost more than the tile's read."""
    data = np.ma.getdata(heights).astype("float64")
    mask = np.ma.getmaskarray(heights)
    if not mask.any():
        return data
    rows, cols = data.shape
    at = np.arange(cols)
    valid_rows = np.flatnonzero(~mask.all(axis=1))
    left = np.maximum.accumulate(np.where(mask, -1, at), axis=1)
    right = np.minimum.accumulate(np.where(mask, cols, at)[:, ::-1], axis=1)[:, ::-1]
    use_right = (left < 0) | ((right < cols) & (right - at < at - left))
    index = np.clip(np.where(use_right, right, left), 0, cols - 1)
    filled = np.take_along_axis(data, index, axis=1)
    if len(valid_rows) < rows:
        r = np.arange(rows)
        after = np.clip(np.searchsorted(valid_rows, r), 0, len(valid_rows) - 1)
        before = np.clip(after - 1, 0, len(valid_rows) - 1)
        closer = np.where(np.abs(valid_rows[before] - r) < np.abs(valid_rows[after] - r),
                          valid_rows[before], valid_rows[after])  # fmt: skip
        filled = filled[closer]
    return np.asarray(filled, dtype=np.float64)


def terrarium(heights: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Heights (m) as Terrarium RGB pixels, rounded to the nearest 1/256 m."""
    steps = np.rint((np.clip(heights, -OFFSET, OFFSET - 1.0) + OFFSET) * 256.0).astype(np.int32)
    pixels = np.empty((*heights.shape, 3), dtype=np.uint8)
    pixels[..., 0] = steps >> 16
    pixels[..., 1] = (steps >> 8) & 0xFF
    pixels[..., 2] = steps & 0xFF
    return pixels


def png_rgb(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An opaque RGB PNG with PNG's "sub" filter on every row (smooth heights become small
    differences: a third smaller and faster to deflate than unfiltered;
    :func:`spatial.imagery.png` writes RGBA, unfiltered)."""
    height, width, _ = pixels.shape
    flat = pixels.reshape(height, width * 3)
    raw = np.empty((height, width * 3 + 1), np.uint8)
    raw[:, 0] = 1
    raw[:, 1:4] = flat[:, :3]
    np.subtract(flat[:, 3:], flat[:, :-3], out=raw[:, 4:], casting="unsafe")

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(raw.tobytes(), 2)
    return b"".join((b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"IDAT", body),
                     chunk(b"IEND", b"")))  # fmt: skip


def decode_terrarium(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Heights (m) from Terrarium pixels (RGB or RGBA)."""
    rgb = pixels[..., :3].astype("float64")
    return np.asarray(rgb[..., 0] * 256.0 + rgb[..., 1] + rgb[..., 2] / 256.0 - OFFSET)


def terrarium_tile(items: Sequence[Scene], tile: tuple[str, int, int, int]) -> bytes | None:
    """A Terrarium PNG of the heights of a tile; None when no item has data there."""
    heights = read_heights(items, tile)
    if heights is None:
        return None
    return png_rgb(terrarium(fill(heights)))


def shading_pixels(
    heights: np.ma.MaskedArray, tile: tuple[str, int, int, int], shading: Shading
) -> npt.NDArray[np.uint8]:
    """RGBA hillshade pixels of a tile from its heights read with one pixel of buffer."""
    tms_id, z, x, y = tile
    tms = tile_matrix_set(tms_id)
    bounds = tms.xy_bounds(morecantile.Tile(x, y, z))
    step_x = (bounds.right - bounds.left) / TILE_SIZE
    step_y = (bounds.top - bounds.bottom) / TILE_SIZE
    transform = Affine(step_x, 0.0, bounds.left, 0.0, -step_y, bounds.top)
    east, north = surface.cell_size(tms.crs.to_wkt(), transform, TILE_SIZE, col=TILE_SIZE / 2)
    # No data is NaN: a cell next to it has no gradient and stays clear (a filled edge
    # would draw a ridge along the DEM's outline).
    gx, gy = surface.horn(np.ma.filled(heights.astype("float64"), np.nan), east, north)
    shaded = surface.shade(gx, gy, azimuth=shading.azimuth, altitude=shading.altitude,
                           z_factor=shading.z_factor)  # fmt: skip
    valid = np.isfinite(gx) & np.isfinite(gy)
    flat = float(np.sin(np.radians(shading.altitude)))
    lit = np.where(valid, shaded, flat)
    alpha = np.where(valid, np.clip(np.abs(lit - flat) * ALPHA_GAIN, 0.0, MAX_ALPHA), 0.0)
    pixels = np.empty((TILE_SIZE, TILE_SIZE, 4), dtype=np.uint8)
    grey = np.rint(lit * 255.0).astype(np.uint8)
    pixels[..., 0] = pixels[..., 1] = pixels[..., 2] = grey
    pixels[..., 3] = np.rint(alpha * 255.0).astype(np.uint8)
    return pixels


def hillshade_tile(
    items: Sequence[Scene], tile: tuple[str, int, int, int], shading: Shading
) -> bytes | None:
    """A hillshade PNG (RGBA) of a tile; None when no item has data there."""
    heights = read_heights(items, tile, buffer=1)
    if heights is None:
        return None
    return imagery.png(shading_pixels(heights, tile, shading))


def zoom_range(items: Sequence[Scene]) -> tuple[int, int]:
    """The WebMercatorQuad zooms of the items' display COGs: from the coarsest overview's
    to the full resolution's (MapLibre magnifies the deepest tiles beyond it)."""
    tms = tile_matrix_set("WebMercatorQuad")
    low, high = 24, 0
    with rasterstore.reading():
        for item in items:
            with Reader(str(item.web), tms=tms) as reader:
                low, high = min(low, reader.minzoom), max(high, reader.maxzoom)
    return min(low, high), high
