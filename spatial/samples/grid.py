"""The city frame: a block grid in EPSG:4546 centred on Yunfu, terrain and coordinate helpers.

The city is ``BLOCKS_X`` x ``BLOCKS_Y`` blocks; each block is ``BLOCK`` cells of ``CELL``
metres on a side, of which the first cell row/column is a road strip and the other
``BLOCK - 1`` carry cadastral parcels. Road centre lines therefore run along
``x0 + k * BLOCK_SIZE`` and ``y0 + k * BLOCK_SIZE``; the city extent is bounded by the
outermost road centre lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

from spatial.samples.constants import CENTRE_LONLAT, CRS_GEOGRAPHIC, CRS_PROJECTED

FloatArray = npt.NDArray[np.float64]

CELL = 60.0
"""Side of one parcel cell in metres."""

BLOCK = 9
"""Cells per block period (one road strip plus eight parcel cells)."""

BLOCK_SIZE = CELL * BLOCK
"""Block period in metres (road centre line to road centre line)."""

BLOCKS_X = 19
BLOCKS_Y = 17
NCOLS = BLOCKS_X * BLOCK + 1
NROWS = BLOCKS_Y * BLOCK + 1


@dataclass(frozen=True)
class Grid:
    """Where the city lies and how to move between its coordinate systems."""

    cx: float
    cy: float

    @classmethod
    def around_yunfu(cls) -> Grid:
        """Return the grid centred on Yunfu (rounded to 10 m so pixels align).

        Returns:
            The city grid.
        """
        to_gk = Transformer.from_crs(CRS_GEOGRAPHIC, CRS_PROJECTED, always_xy=True)
        x, y = to_gk.transform(*CENTRE_LONLAT)
        return cls(cx=round(float(x) / 10.0) * 10.0, cy=round(float(y) / 10.0) * 10.0)

    @property
    def x0(self) -> float:
        """West edge of the city extent (centre line of the westernmost road)."""
        return self.cx - BLOCKS_X * BLOCK_SIZE / 2

    @property
    def y0(self) -> float:
        """South edge of the city extent."""
        return self.cy - BLOCKS_Y * BLOCK_SIZE / 2

    @property
    def x1(self) -> float:
        """East edge of the city extent."""
        return self.x0 + BLOCKS_X * BLOCK_SIZE

    @property
    def y1(self) -> float:
        """North edge of the city extent."""
        return self.y0 + BLOCKS_Y * BLOCK_SIZE

    @property
    def width(self) -> float:
        """East-west size of the extent in metres."""
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        """North-south size of the extent in metres."""
        return self.y1 - self.y0

    @property
    def cell_origin(self) -> tuple[float, float]:
        """South-west corner of cell (0, 0): half a road strip outside the extent."""
        return self.x0 - CELL / 2, self.y0 - CELL / 2

    @cached_property
    def to_lonlat(self) -> Transformer:
        """Transformer EPSG:4546 -> EPSG:4490 with x = longitude."""
        return Transformer.from_crs(CRS_PROJECTED, CRS_GEOGRAPHIC, always_xy=True)

    def lonlat(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Project grid coordinates to CGCS2000 longitude/latitude.

        Args:
            x: eastings in EPSG:4546.
            y: northings in EPSG:4546.

        Returns:
            Longitudes and latitudes in degrees.
        """
        lon, lat = self.to_lonlat.transform(x, y)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    def radius(self, x: FloatArray, y: FloatArray) -> FloatArray:
        """Normalised elliptical distance from the centre (1.0 at the middle of an edge).

        Args:
            x: eastings.
            y: northings.

        Returns:
            Distance in units of the half extent.
        """
        dx = (x - self.cx) / (self.width / 2)
        dy = (y - self.cy) / (self.height / 2)
        return np.asarray(np.hypot(dx, dy), dtype=np.float64)

    def elevation(self, x: FloatArray, y: FloatArray) -> FloatArray:
        """Terrain height in metres: a valley floor with hills to the north and south-west.

        Args:
            x: eastings.
            y: northings.

        Returns:
            Heights above the CGCS2000 vertical datum (demo values).
        """
        u = (x - self.x0) / self.width
        v = (y - self.y0) / self.height
        hills = (
            (260.0, 0.30, 1.05, 0.22),
            (180.0, 0.80, 0.95, 0.18),
            (220.0, 0.05, 0.05, 0.20),
            (120.0, 0.95, 0.10, 0.15),
        )
        height = 38.0 + 12.0 * u
        for top, hu, hv, spread in hills:
            height = height + top * np.exp(-((u - hu) ** 2 + (v - hv) ** 2) / (2 * spread**2))
        return np.asarray(height, dtype=np.float64)


def smooth_noise(
    generator: np.random.Generator, x: FloatArray, y: FloatArray, wavelength: float
) -> FloatArray:
    """A smooth pseudo-random field (a sum of random plane waves), roughly in [-1, 1].

    Args:
        generator: random source for the wave directions and phases.
        x: eastings.
        y: northings.
        wavelength: typical feature size in metres.

    Returns:
        The field sampled at the points.
    """
    waves = 6
    angles = generator.uniform(0.0, math.pi, waves)
    phases = generator.uniform(0.0, 2 * math.pi, waves)
    scales = generator.uniform(0.7, 1.4, waves)
    total = np.zeros_like(x, dtype=np.float64)
    for angle, phase, scale in zip(angles, phases, scales, strict=True):
        k = 2 * math.pi / (wavelength * scale)
        total += np.sin(k * (x * math.cos(angle) + y * math.sin(angle)) + phase)
    return np.asarray(total / math.sqrt(waves / 2), dtype=np.float64)
