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
from typing import Any

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


# -- the documents a client reads -------------------------------------------------------------

OGC_TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/{}"
REGISTERED = frozenset({"WebMercatorQuad", "WorldCRS84Quad"})
"""The sets the OGC registers (their URIs resolve at the OGC definition server)."""
_AXES = {"WebMercatorQuad": ["X", "Y"], "WorldCRS84Quad": ["Lon", "Lat"],
         "CGCS2000Quad": ["Lat", "Lon"]}  # fmt: skip


def uri(tms_id: str, base: str) -> str:
    """The set's URI: the OGC's for a registered set, else its definition on this server
    (``tileMatrixSetURI`` of a tileset; GDAL's OGCAPI driver picks a set by a substring of
    it, e.g. ``-oo TILEMATRIXSET=CGCS2000Quad``)."""
    return OGC_TMS_URI.format(tms_id) if tms_id in REGISTERED else f"{base}/tileMatrixSets/{tms_id}"


def document(tms_id: str) -> dict[str, Any]:
    """The set as OGC Two Dimensional Tile Matrix Set 2.0 JSON (what OGC API - Tiles 1.0
    serves), with the TMS 1.0 keys beside it: GDAL before 3.7 (Debian 12's 3.6) reads only
    those (``type``, ``identifier``, ``supportedCRS``, ``boundingBox`` with
    ``lowerCorner``/``upperCorner``, and per matrix ``identifier`` and ``topLeftCorner``), and
    takes a document without them for a file name ("Invalid tiling matrix set name"). Both
    versions give the corners in the CRS's axis order (EPSG:4490: latitude first).

    Raises:
        NotFoundError: an unknown set.
    """
    tms = tile_matrix_set(tms_id)
    body: dict[str, Any] = tms.model_dump(mode="json", exclude_none=True)
    crs = str(tms.crs.root)
    box = tms.xy_bbox
    lower, upper = [box.left, box.bottom], [box.right, box.top]
    if SRID[tms_id] == 4490:  # latitude first
        lower, upper = lower[::-1], upper[::-1]
    body.pop("uri", None)
    if tms_id in REGISTERED:
        body["uri"] = OGC_TMS_URI.format(tms_id)
    body["orderedAxes"] = _AXES[tms_id]
    body.update(
        type="TileMatrixSetType", identifier=tms_id, supportedCRS=crs,
        boundingBox={"type": "BoundingBoxType", "crs": crs, "orderedAxes": _AXES[tms_id],
                     "lowerLeft": lower, "upperRight": upper,
                     "lowerCorner": lower, "upperCorner": upper},
    )  # fmt: skip
    for matrix in body["tileMatrices"]:
        matrix.update(type="TileMatrixType", identifier=matrix["id"],
                      topLeftCorner=matrix["pointOfOrigin"])  # fmt: skip
    return body


def limits(
    tms_id: str, lonlat: tuple[float, float, float, float], zooms: range, *, whole: bool = False
) -> list[dict[str, Any]]:
    """``tileMatrixSetLimits``: for each matrix of ``zooms``, the rows and columns of the
    tiles that cover a lon/lat box (OGC API - Tiles 1.0; GDAL reads only these matrices).

    ``whole``: every row and column of each matrix (the limits then only say which matrices
    hold the data). GDAL 3.6's OGCAPI driver reads a raster tileset only through listed
    matrices, but sizes its strip by the matrix's full height and numbers its columns from
    the first listed one: cut limits stretch its raster and shift its tiles."""
    tms = tile_matrix_set(tms_id)
    west, south, east, north = lonlat
    found = []
    for z in zooms:
        nw, se = tms.tile(west, north, z), tms.tile(east, south, z)
        rows, cols = (min(nw.y, se.y), max(nw.y, se.y)), (min(nw.x, se.x), max(nw.x, se.x))
        if whole:
            matrix = tms.matrix(z)
            rows, cols = (0, matrix.matrixHeight - 1), (0, matrix.matrixWidth - 1)
        found.append({"tileMatrix": str(z), "minTileRow": rows[0], "maxTileRow": rows[1],
                      "minTileCol": cols[0], "maxTileCol": cols[1]})  # fmt: skip
    return found


def native_zoom(tms_id: str, metres: float, lat: float) -> int:
    """The shallowest matrix of a set whose cells are as fine as ``metres`` on the ground at
    latitude ``lat`` (imagery's ``gsd``): deeper matrices add no detail to the data."""
    tms = tile_matrix_set(tms_id)
    if SRID[tms_id] == 3857:
        res = metres / max(math.cos(math.radians(lat)), 0.01)
    else:
        res = metres / (EARTH_RADIUS * math.pi / 180)  # degrees
    return int(tms.zoom_for_res(res, zoom_level_strategy="upper"))


def visible_zoom(tms_id: str, lonlat: tuple[float, float, float, float]) -> int:
    """The shallowest matrix of a set in which a lon/lat box spans at least two cells each way
    (coarser matrices show it as a dot; GDAL 3.6 cannot crop a raster to less than a cell)."""
    tms = tile_matrix_set(tms_id)
    left, bottom = tms.xy(lonlat[0], lonlat[1])
    right, top = tms.xy(lonlat[2], lonlat[3])
    span = min(abs(right - left), abs(top - bottom))
    for matrix in tms.tileMatrices:
        if span >= 2 * matrix.cellSize:
            return int(matrix.id)
    return tms.maxzoom
