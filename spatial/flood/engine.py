"""The flood extent on a DEM grid: numpy and scipy only, no database (what the benchmark
times and the process runs off the event loop).

Two methods, both keeping only the cells connected (4-connected, edge to edge) to where
the water comes from, not every low basin of the grid (:func:`connected`):

- :func:`level_extent` ("bathtub"): the cells below a flat water level connected to a
  seed cell;
- :func:`river_extent` (Height Above Nearest Drainage): a depth above the river bed at a
  gauge carried along the river. A flat level on a sloping valley floods everything
  downstream, where the ground is lower than the level at the gauge, and nothing
  upstream; a river's water surface slopes with its bed. So every cell is measured
  against the river cell nearest to it (HAND = its height minus that cell's), and is
  flooded when HAND is at most the depth at the gauge, for the reach of river around the
  gauge the reading speaks for.

The permanent channel (the rivers rasterized) is not part of the extent: the extent is
the inundated land. :func:`below_in_strips` builds the level mask of a file strip by
strip, so a 10,000² DEM needs its masks (one byte a cell) and not its heights in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.windows import Window
from scipy import ndimage

Mask = npt.NDArray[np.bool_]
Heights = npt.NDArray[np.float32]
FOUR = ndimage.generate_binary_structure(2, 1)
"""Edge neighbours only: water does not flow through the corner between two dry cells."""
STRIP_ROWS = 1024


@dataclass(frozen=True)
class Extent:
    """A flood extent on a grid: the inundated cells, and the river bed the depth was
    measured from (river method) or None (level method)."""

    flooded: Mask
    bed: float | None = None


def connected(mask: Mask, seeds: Mask) -> Mask:
    """The cells of ``mask`` 4-connected to any cell of ``seeds`` (seeds outside the
    mask reach nothing)."""
    labels, count = ndimage.label(mask, structure=FOUR)
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    touched = np.unique(labels[seeds & mask])
    touched = touched[touched > 0]
    if touched.size == 0:
        return np.zeros(mask.shape, dtype=bool)
    keep = np.zeros(count + 1, dtype=bool)
    keep[touched] = True
    found: Mask = keep[labels]
    return found


def level_extent(below: Mask, seed: tuple[int, int], channel: Mask | None = None) -> Extent:
    """The cells of ``below`` (under the level) 4-connected to the seed cell, without the
    permanent channel. The channel carries water: it connects what it touches."""
    seeds = np.zeros(below.shape, dtype=bool)
    seeds[seed] = True
    reached = connected(below | channel if channel is not None else below, seeds)
    if channel is not None:
        reached &= ~channel
    return Extent(reached)


def below_level(dem: Heights, level: float) -> Mask:
    """Cells strictly below ``level`` (NaN, no data, never)."""
    with np.errstate(invalid="ignore"):
        found: Mask = dem < level
    return found


def below_in_strips(path: Path, level: float, rows: int = STRIP_ROWS) -> tuple[Mask, Any]:
    """The level mask of a one-band DEM file, read :data:`STRIP_ROWS` rows at a time,
    and the file's profile (transform, CRS, size)."""
    with rasterio.open(path) as src:
        mask = np.zeros((src.height, src.width), dtype=bool)
        nodata = src.nodata
        for top in range(0, src.height, rows):
            height = min(rows, src.height - top)
            strip = src.read(1, window=Window(0, top, src.width, height))
            found = strip < level
            if nodata is not None:
                found &= strip != nodata
            mask[top : top + height] = found
        return mask, src.profile


def river_extent(
    dem: Heights, channel: Mask, gauge: tuple[int, int], depth_above_bed: float | None,
    *, level: float | None = None, reach_cells: float,
) -> Extent:  # fmt: skip
    """Height Above Nearest Drainage: the cells whose height above their nearest channel
    cell is at most the depth at the gauge, for the channel cells within ``reach_cells``
    of the gauge's channel cell, connected to those channel cells; without the channel.

    Args:
        dem: heights (NaN: no data).
        channel: the rivers rasterized (must hold at least one cell).
        gauge: the gauge's cell; its channel cell is the nearest channel cell to it.
        depth_above_bed: the water's depth above the bed at the gauge; None: give
            ``level`` (the water surface at the gauge, the DEM's datum) instead.
        level: the water level at the gauge (used when ``depth_above_bed`` is None).
        reach_cells: how far (straight line, in cells) from the gauge's channel cell
            the reading speaks for.
    """
    index_r, index_c = ndimage.distance_transform_edt(
        ~channel, return_distances=False, return_indices=True
    )
    near_r, near_c = int(index_r[gauge]), int(index_c[gauge])
    bed = float(dem[near_r, near_c])
    depth = depth_above_bed if depth_above_bed is not None else float(level or 0.0) - bed
    if not np.isfinite(bed) or depth <= 0:
        return Extent(np.zeros(dem.shape, dtype=bool), bed)
    rr, cc = np.nonzero(channel)
    within = np.hypot(rr - near_r, cc - near_c) <= reach_cells
    reach = np.zeros(dem.shape, dtype=bool)
    reach[rr[within], cc[within]] = True
    served = reach[index_r, index_c]
    with np.errstate(invalid="ignore"):
        low = (dem - dem[index_r, index_c]) <= depth
    del index_r, index_c
    reached = connected((low & served) | reach, reach)
    reached &= ~channel
    return Extent(reached, bed)


def polygons(mask: Mask, transform: Any) -> Iterable[dict[str, Any]]:
    """The true cells of ``mask`` as GeoJSON polygon geometries in the grid's CRS (GDAL's
    polygonize, which ``gdal_polygonize`` runs too)."""
    from rasterio.features import shapes  # noqa: PLC0415 - GDAL's polygonize, only here

    data = mask.view(np.uint8)
    for geometry, value in shapes(data, mask=mask, transform=transform, connectivity=4):
        if value == 1:
            yield geometry
