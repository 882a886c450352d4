"""Coordinate reference systems: identify a file's CRS and check coordinates against it.

China's CGCS2000 arrives in many spellings: EPSG WKT, Esri ``.prj`` text such as
``PROJCS["CGCS2000_3_Degree_GK_CM_111E", ...]`` and hand-written variants whose names
match nothing. :func:`identify` turns any of them into an EPSG code (PROJ's own
identification first, then the Gauss-Krüger parameters), and refuses to guess when
neither gives a certain answer.

:func:`diagnose_extent` compares data with the CRS's area of use and names the usual
causes when they disagree: projected metres tagged as degrees, swapped lat/lon, a
Gauss-Krüger zone prefix missing or unexpected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from spatial.errors import InvalidInputError

Bounds = tuple[float, float, float, float]

CGCS2000 = 4490
_CGCS2000_DATUM = re.compile(
    r"china[ _]?(geodetic[ _]coordinate[ _]system[ _]?)?2000|cgcs[ _]?2000", re.I
)
_GK_METHODS = {"transverse mercator", "gauss-kruger", "gauss kruger", "gauss_kruger"}
_MARGIN_DEG = 0.5
"""Data may reach a little beyond a zone's official area (parcels straddle zone edges)."""


@dataclass(frozen=True)
class CrsInfo:
    """An identified CRS."""

    epsg: int
    name: str
    geographic: bool
    area: Bounds
    """Area of use in lon/lat degrees (west, south, east, north)."""

    @property
    def code(self) -> str:
        """``EPSG:nnnn``."""
        return f"EPSG:{self.epsg}"


def identify(crs_text: str) -> CrsInfo:
    """Identify a CRS given as an authority code, WKT (EPSG or Esri) or PROJ string.

    Raises:
        InvalidInputError: unreadable text, or a CRS that matches no EPSG code with certainty.
    """
    try:
        crs = CRS.from_user_input(crs_text)
    except CRSError as exc:
        msg = f"cannot read the coordinate reference system {_clip(crs_text)!r}: {exc}"
        raise InvalidInputError(msg) from exc
    epsg = crs.to_epsg(min_confidence=90) or _cgcs2000_gauss_kruger(crs)
    if epsg is None:
        msg = (
            f"the coordinate reference system {crs.name!r} matches no EPSG code; "
            "give the right one with --crs (for CGCS2000: EPSG:4490, or 4513-4554 for the "
            "3-degree Gauss-Kruger zones)"
        )
        raise InvalidInputError(msg)
    return info(epsg)


@lru_cache(maxsize=64)
def info(epsg: int) -> CrsInfo:
    """The name, kind and area of use of an EPSG code.

    Raises:
        InvalidInputError: not a known EPSG CRS.
    """
    try:
        crs = CRS.from_epsg(epsg)
    except CRSError as exc:
        msg = f"EPSG:{epsg} is not a known coordinate reference system"
        raise InvalidInputError(msg) from exc
    aou = crs.area_of_use
    area = (-180.0, -90.0, 180.0, 90.0) if aou is None else aou.bounds
    return CrsInfo(epsg=epsg, name=crs.name, geographic=crs.is_geographic, area=area)


def _cgcs2000_gauss_kruger(crs: CRS) -> int | None:
    """The EPSG code of a CGCS2000 Gauss-Krüger CRS recognised by its parameters.

    Esri and hand-made ``.prj`` files name these systems freely; the datum, central
    meridian and false easting say which EPSG zone it is. Returns None unless every
    parameter matches that zone's EPSG definition.
    """
    datum = crs.datum.name if crs.datum else ""
    if not _CGCS2000_DATUM.search(datum.replace("D_", "")):
        return None
    if crs.is_geographic:
        return CGCS2000 if crs.axis_info and crs.axis_info[0].unit_name == "degree" else None
    params = _tm_parameters(crs)
    if params is None:
        return None
    lon0, false_easting = params
    candidates: list[int] = []
    if lon0 % 3 == 0 and 75 <= lon0 <= 135:
        zone3 = int(lon0 // 3)
        candidates += [4534 + zone3 - 25, 4513 + zone3 - 25]
    if (lon0 + 3) % 6 == 0 and 75 <= lon0 <= 135:
        zone6 = int((lon0 + 3) // 6)
        candidates += [4502 + zone6 - 13, 4491 + zone6 - 13]
    for code in candidates:
        reference = _tm_parameters(CRS.from_epsg(code))
        if reference == (lon0, false_easting):
            return code
    return None


def _tm_parameters(crs: CRS) -> tuple[float, float] | None:
    """(central meridian, false easting) of a Transverse Mercator CRS with k=1, lat0=0, FN=0."""
    op = crs.coordinate_operation
    if op is None or op.method_name.lower().replace("ü", "u") not in _GK_METHODS:
        return None
    values = {p.name.lower(): p.value for p in op.params}
    scale = values.get("scale factor at natural origin", values.get("scale_factor", 1.0))
    lat0 = values.get("latitude of natural origin", 0.0)
    north = values.get("false northing", 0.0)
    lon0 = values.get("longitude of natural origin")
    east = values.get("false easting")
    if lon0 is None or east is None or scale != 1.0 or lat0 != 0.0 or north != 0.0:
        return None
    return float(lon0), float(east)


@lru_cache(maxsize=64)
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def to_lonlat(
    epsg: int, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Longitude and latitude of points given in ``epsg`` (infinite where PROJ fails)."""
    if info(epsg).geographic:
        return x, y
    lon, lat = _to_lonlat(epsg).transform(x, y, errcheck=False)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def outside_area(
    crs: CrsInfo, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """True for each point that lies outside the CRS's area of use (with a small margin)."""
    lon, lat = to_lonlat(crs.epsg, x, y)
    west, south, east, north = crs.area
    with np.errstate(invalid="ignore"):
        inside = (
            (lon >= west - _MARGIN_DEG)
            & (lon <= east + _MARGIN_DEG)
            & (lat >= south - _MARGIN_DEG)
            & (lat <= north + _MARGIN_DEG)
            & (np.abs(lat) <= 90.0)
        )
    if crs.geographic:
        inside &= (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0)
    return ~inside


def diagnose_extent(crs: CrsInfo, bounds: Bounds) -> str:
    """Why data with these bounds does not fit ``crs``: the likely cause, in one sentence."""
    xmin, ymin, xmax, ymax = bounds
    box = f"x {xmin:,.6g}..{xmax:,.6g}, y {ymin:,.6g}..{ymax:,.6g}"
    west, south, east, north = crs.area
    head = (
        f"coordinates ({box}) lie outside the area of use of {crs.code} {crs.name} "
        f"(lon {west:g}..{east:g}, lat {south:g}..{north:g})"
    )
    cause = _geographic_cause(crs, bounds) if crs.geographic else _projected_cause(crs, bounds)
    return head if cause is None else f"{head}: {cause}"


def _geographic_cause(crs: CrsInfo, bounds: Bounds) -> str | None:
    xmin, ymin, xmax, ymax = bounds
    if max(abs(xmin), abs(xmax)) > 1000 or max(abs(ymin), abs(ymax)) > 1000:
        return f"these look like projected metres, not degrees; {_suggest_gk(bounds)}"
    if _inside((ymin, xmin, ymax, xmax), crs.area):
        return "the data fits with x and y exchanged, so latitude and longitude are swapped"
    return None


def _projected_cause(crs: CrsInfo, bounds: Bounds) -> str | None:
    xmin, ymin, xmax, ymax = bounds
    if max(abs(xmin), abs(xmax)) <= 180 and max(abs(ymin), abs(ymax)) <= 90:
        return "these look like degrees; the file is probably geographic (EPSG:4490 or EPSG:4326)"
    zone = _zone_prefix(xmin, xmax)
    prefixed = _gk_zone_of(crs.epsg)
    if prefixed is not None and zone is None and xmin >= 1e5 and xmax <= 1e6:
        return (
            f"{crs.code} expects eastings with the zone prefix ({prefixed}xxxxxx.x) but x has "
            f"none; the matching system without prefix is "
            f"EPSG:{crs.epsg + (21 if crs.epsg >= 4513 else 11)}"
        )
    if prefixed is None and zone is not None:
        return (
            f"x carries a Gauss-Kruger zone prefix ({zone}); "
            f"the file is probably in {_suggest_gk(bounds)}"
        )
    return None


def _inside(bounds: Bounds, area: Bounds) -> bool:
    west, south, east, north = area
    return (
        bounds[0] >= west - _MARGIN_DEG
        and bounds[2] <= east + _MARGIN_DEG
        and bounds[1] >= south - _MARGIN_DEG
        and bounds[3] <= north + _MARGIN_DEG
    )


def _zone_prefix(xmin: float, xmax: float) -> int | None:
    """The 3- or 6-degree zone number written in front of Gauss-Krüger eastings, if any."""
    zmin, zmax = math.floor(xmin / 1e6), math.floor(xmax / 1e6)
    if zmin == zmax and 13 <= zmin <= 45:
        return int(zmin)
    return None


def _gk_zone_of(epsg: int) -> int | None:
    """The zone number of a zone-prefixed CGCS2000 Gauss-Krüger EPSG code."""
    if 4513 <= epsg <= 4533:
        return epsg - 4513 + 25
    if 4491 <= epsg <= 4501:
        return epsg - 4491 + 13
    return None


def _suggest_gk(bounds: Bounds) -> str:
    zone = _zone_prefix(bounds[0], bounds[2])
    if zone is not None and 25 <= zone <= 45:
        return f"a 3-degree Gauss-Kruger zone with prefix: EPSG:{4513 + zone - 25} (zone {zone})"
    if zone is not None:
        return f"a 6-degree Gauss-Kruger zone with prefix: EPSG:{4491 + zone - 13} (zone {zone})"
    return (
        "perhaps a CGCS2000 Gauss-Kruger zone without prefix (EPSG:4534-4554, e.g. "
        "EPSG:4546 for central meridian 111E); give it with --crs"
    )


def _clip(text: str, size: int = 80) -> str:
    return text if len(text) <= size else text[:size] + "..."
