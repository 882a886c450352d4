"""The tile matrix sets the platform serves (OGC Two Dimensional Tile Matrix Set, via
morecantile), and the checks of a requested tile.

- ``WebMercatorQuad`` (EPSG:3857), what MapLibre, Leaflet and most clients use;
- ``WorldCRS84Quad`` (CRS84, 2 x 1 tiles at zoom 0);
- ``CGCS2000Quad``: China Geodetic Coordinate System 2000 (EPSG:4490), geographic,
  the same layout as WorldCRS84Quad: at zoom z, 2^(z+1) x 2^z tiles of 256 x 256 cells
  over longitude -180..180 and latitude -90..90, tile (0, 0) at the north-west corner.
  China's national standard grids (天地图 "c" tiles) use this layout on CGCS2000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import morecantile
import pyproj

from spatial.errors import InvalidInputError, NotFoundError

CGCS2000_QUAD = morecantile.TileMatrixSet.custom(
    [-180.0, -90.0, 180.0, 90.0],
    pyproj.CRS.from_epsg(4490),
    matrix_scale=[2, 1],
    id="CGCS2000Quad",
    title="CGCS2000 geographic quad (EPSG:4490)",
    minzoom=0,
    maxzoom=24,
)
TILE_MATRIX_SETS: dict[str, morecantile.TileMatrixSet] = {
    "WebMercatorQuad": morecantile.tms.get("WebMercatorQuad"),
    "WorldCRS84Quad": morecantile.tms.get("WorldCRS84Quad"),
    "CGCS2000Quad": CGCS2000_QUAD,
}
SRID = {"WebMercatorQuad": 3857, "WorldCRS84Quad": 4326, "CGCS2000Quad": 4490}
EARTH_RADIUS = 6_378_137.0
"""The sphere of Web Mercator (EPSG:3857)."""
"""The PostGIS SRID each set's tiles are cut in (x = easting or longitude)."""


@dataclass(frozen=True)
class TileAddress:
    """One tile of one set: its bounds in the set's CRS (x/y order) and in lon/lat."""

    tms: str
    z: int
    row: int
    col: int
    bounds: tuple[float, float, float, float]
    lonlat: tuple[float, float, float, float]

    @property
    def srid(self) -> int:
        return SRID[self.tms]


def tile_matrix_set(tms_id: str) -> morecantile.TileMatrixSet:
    """Raises:
    NotFoundError: an unknown set."""
    try:
        return TILE_MATRIX_SETS[tms_id]
    except KeyError:
        msg = f"tile matrix set {tms_id!r} is not served; use one of {', '.join(TILE_MATRIX_SETS)}"
        raise NotFoundError(msg) from None


def address(tms_id: str, z: int, row: int, col: int, max_zoom: int) -> TileAddress:
    """The tile at matrix ``z``, ``row``, ``col`` (OGC order).

    Raises:
        NotFoundError: an unknown set, a zoom beyond ``max_zoom`` (the collection's range)
            or the set's, or a row or column outside the matrix.
    """
    tms = tile_matrix_set(tms_id)
    deepest = min(max_zoom, tms.maxzoom)
    if not 0 <= z <= deepest:
        msg = f"zoom {z} is outside this collection's range 0..{deepest} in {tms_id}"
        raise NotFoundError(msg)
    left, top, width, height, columns, rows = _matrix(tms_id, z)
    if not (0 <= row < rows and 0 <= col < columns):
        msg = (
            f"tile {z}/{row}/{col} is outside the {tms_id} matrix {z}, which has "
            f"{rows} rows and {columns} columns"
        )
        raise NotFoundError(msg)
    bounds = (
        left + col * width,
        top - (row + 1) * height,
        left + (col + 1) * width,
        top - row * height,
    )
    return TileAddress(
        tms=tms_id, z=z, row=row, col=col, bounds=bounds, lonlat=_lonlat(tms_id, bounds)
    )


@lru_cache(maxsize=256)
def _matrix(tms_id: str, z: int) -> tuple[float, float, float, float, int, int]:
    """Matrix ``z``: its left and top edges, the width and height of its tiles, and how
    many columns and rows it has."""
    tms = TILE_MATRIX_SETS[tms_id]
    first = tms.xy_bounds(morecantile.Tile(x=0, y=0, z=z))
    matrix = tms.matrix(z)
    return (first.left, first.top, first.right - first.left, first.top - first.bottom,
            matrix.matrixWidth, matrix.matrixHeight)  # fmt: skip


def _lonlat(
    tms_id: str, bounds: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """A tile's bounds as lon/lat (the geographic sets' own; Web Mercator inverted)."""
    if SRID[tms_id] != 3857:
        return bounds
    west, south, east, north = bounds
    return (
        math.degrees(west / EARTH_RADIUS),
        math.degrees(2 * math.atan(math.exp(south / EARTH_RADIUS)) - math.pi / 2),
        math.degrees(east / EARTH_RADIUS),
        math.degrees(2 * math.atan(math.exp(north / EARTH_RADIUS)) - math.pi / 2),
    )


MAX_COVERING = 2_000_000
"""The most tiles :func:`tiles_covering` lists (a seed or an export beyond is refused)."""


def tiles_covering(
    tms_id: str, lonlat: tuple[float, float, float, float], zooms: range
) -> list[tuple[int, int, int]]:
    """(z, row, col) of the tiles of ``zooms`` that cover a lon/lat box.

    Raises:
        InvalidInputError: more than :data:`MAX_COVERING` tiles.
    """
    tms = tile_matrix_set(tms_id)
    west, south, east, north = lonlat
    count = 0
    for z in zooms:
        nw, se = tms.tile(west, north, z), tms.tile(east, south, z)
        count += (abs(se.x - nw.x) + 1) * (abs(se.y - nw.y) + 1)
    if count > MAX_COVERING:
        msg = (
            f"zooms {zooms.start}-{zooms.stop - 1} over that area are {count:,} tiles, more "
            f"than {MAX_COVERING:,}: narrow the zoom range or the bbox"
        )
        raise InvalidInputError(msg)
    return [(t.z, t.y, t.x) for t in tms.tiles(west, south, east, north, list(zooms))]
