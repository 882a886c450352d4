"""Coordinate reference systems: identify a file's CRS, check coordinates against it, and
carry coordinates from a CRS that has no EPSG code into one that has.

Chinese data arrives in CGCS2000, Beijing 1954 and Xi'an 1980, in many spellings: EPSG WKT,
Esri ``.prj`` text as ArcGIS writes it (``PROJCS["Beijing_1954_3_Degree_GK_Zone_37", ...]``),
SuperMap's Esri-style ``.prj`` (a PROJCS named by the user, datums such as ``D_Xian_1980``)
and hand-written variants whose names match nothing. :func:`identify` gives each an EPSG
code when one fits: PROJ's identification at :data:`CONFIDENCE`, then the Gauss-Krüger
parameters of those three datums (:data:`GAUSS_KRUGER`). A CRS that still matches no EPSG
code (an unnamed datum on GRS80, a scale factor rounded in the file) is kept as the file
gives it (``CrsInfo.epsg`` is None): :func:`reprojection` picks the storage CRS and the PROJ
operation that carries the coordinates there, and says how accurate it is.

:func:`diagnose_extent` compares data with the CRS's area of use and names the usual
causes when they disagree: projected metres tagged as degrees, swapped lat/lon, a
Gauss-Krüger zone prefix missing or unexpected. Areas of use that cross the antimeridian
(west > east: NAD27, NAD83, Pulkovo 1942) wrap around it.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from pyproj.transformer import AreaOfInterest, TransformerGroup

from spatial.errors import InvalidInputError

Bounds = tuple[float, float, float, float]
WORLD: Bounds = (-180.0, -90.0, 180.0, 90.0)
CGCS2000 = 4490
WGS84 = 4326
CONFIDENCE = 70
"""PROJ's identification confidence (percent) at which a CRS is taken for an EPSG code.

PROJ gives 100 when the names and definitions match, 90 when the definitions match and
the names nearly do, 70 when the definitions are equivalent (datum, ellipsoid, method,
parameters, units) and only the names differ, and 25-60 for a similar name alone. 70 is
the lowest level at which the definition itself matches, which is what places the
coordinates: a SuperMap ``.prj`` names its PROJCS as the user liked, so demanding a name
match (90) would refuse it. A scale factor rounded in the file is not equivalent and stays
unidentified (it is transformed instead)."""
_MARGIN_DEG = 0.5
"""Data may reach a little beyond a zone's official area (parcels straddle zone edges)."""
_GRS80 = (6378137.0, 298.257222101)
"""Semi-major axis and inverse flattening of GRS80, which CGCS2000's ellipsoid equals."""


@dataclass(frozen=True)
class GaussKruger:
    """The Gauss-Krüger EPSG codes of one Chinese datum: four series, each in zone order.

    6-degree zones 13-23 (central meridians 75E-135E) and 3-degree zones 25-45 (75E-135E),
    each with the zone number written in front of the false easting (``zone6``, ``zone3``:
    x = 37 500 000 at the central meridian of zone 37) or without it (``cm6``, ``cm3``).
    """

    datum: str
    geographic: int
    """The EPSG code of the datum's geographic CRS."""
    names: re.Pattern[str]
    """Datum or geographic CRS names that mean this datum (Esri, SuperMap, Chinese)."""
    semi_major: float
    zone6: int
    cm6: int
    zone3: int
    cm3: int

    def code(self, width: int, zone: int, *, prefixed: bool) -> int | None:
        """The EPSG code of a zone (``width`` 3 or 6 degrees), with or without prefix."""
        if width == 3 and 25 <= zone <= 45:
            return (self.zone3 if prefixed else self.cm3) + zone - 25
        if width == 6 and 13 <= zone <= 23:
            return (self.zone6 if prefixed else self.cm6) + zone - 13
        return None


GAUSS_KRUGER = (
    GaussKruger(
        "CGCS2000",
        CGCS2000,
        re.compile(
            r"cgcs[ _]?2000|china[ _]?(geodetic[ _]coordinate[ _]system[ _]?)?2000"
            r"|国家.*2000|2000.*国家",
            re.I,
        ),
        6378137.0,
        4491,
        4502,
        4513,
        4534,
    ),
    GaussKruger(
        "Beijing 1954",
        4214,
        re.compile(r"beijing[ _-]?(19)?54|(?<![a-z])bj[ _-]?54|北京[ _-]?(19)?54", re.I),
        6378245.0,
        21413,
        21453,
        2401,
        2422,
    ),
    GaussKruger(
        "Xian 1980",
        4610,
        re.compile(r"xi'?[ _-]?an[ _-]?(19)?80|(?<![a-z])xa[ _-]?80|西安[ _-]?(19)?80", re.I),
        6378140.0,
        2327,
        2338,
        2349,
        2370,
    ),
)
"""CGCS2000, Beijing 1954 and Xi'an 1980 (the series are checked against PROJ's database
in ``tests/test_crs_prj.py``)."""
_FAMILIES = {f.datum: f for f in GAUSS_KRUGER}
_GK_METHODS = {"transverse mercator", "gauss-kruger", "gauss kruger", "gauss_kruger"}


@dataclass(frozen=True)
class CrsInfo:
    """A CRS as the ingest uses it: identified by an EPSG code, or kept as WKT."""

    epsg: int | None
    """The EPSG code; None when the CRS matches none (``wkt`` then defines it)."""
    name: str
    geographic: bool
    area: Bounds
    """Area of use in lon/lat degrees (west, south, east, north); west > east when it
    crosses the antimeridian. A CRS without an EPSG code takes it from its WKT, else from
    its datum's geographic CRS, else the whole world."""
    family: str | None = None
    """The Chinese datum (a key of ``GAUSS_KRUGER``'s datums) when it is one of them."""
    gauss_kruger: tuple[float, float] | None = None
    """(central meridian, false easting) of a Gauss-Krüger / Transverse Mercator CRS with
    scale 1, latitude of origin 0 and false northing 0."""
    wkt: str | None = None
    """The CRS as the file (or ``--crs``) gives it, when it has no EPSG code: GDAL's WKT
    of the ``.prj``, say. Kept as given: PROJ reads a datum called ``unknown`` in Esri
    WKT as one it cannot relate (a ballpark shift), and WKT2 written back from it as one
    equal to any datum on its ellipsoid."""
    identified_by: str = ""
    """How the EPSG code was found (empty when it was not)."""

    @property
    def code(self) -> str:
        """``EPSG:nnnn``, or the CRS's name when it has no code."""
        return self.name if self.epsg is None else f"EPSG:{self.epsg}"

    @property
    def label(self) -> str:
        """The code and name, as messages name the CRS."""
        if self.epsg is None:
            return f"the CRS {self.name!r} (no EPSG code)"
        return f"{self.code} {self.name}"


def identify(crs_text: str) -> CrsInfo:
    """Identify a CRS given as an authority code, WKT (EPSG or Esri) or PROJ string.

    The EPSG code comes from PROJ's identification at :data:`CONFIDENCE` (70: equivalent
    definitions, names free; the axis order is not held against it, since stored
    coordinates are always east, north), else from the Gauss-Krüger parameters of a
    CGCS2000, Beijing 1954 or Xi'an 1980 CRS. Among equally confident matches (a central
    meridian that is both a 3- and a 6-degree zone's) the first is taken, with the union
    of their areas of use. A compound CRS is identified by its horizontal part, a CRS bound
    to WGS 84 (``TOWGS84``) by its base.

    Returns:
        The identified CRS, or (``epsg`` None) the CRS as WKT when nothing matches.

    Raises:
        InvalidInputError: unreadable text, or a CRS that is neither geographic nor
            projected (PROJ cannot place it on the earth).
    """
    try:
        crs = _planar(CRS.from_user_input(crs_text))
    except CRSError as exc:
        msg = f"cannot read the coordinate reference system {_clip(crs_text)!r}: {exc}"
        raise InvalidInputError(msg) from exc
    if not (crs.is_geographic or crs.is_projected):
        msg = (
            f"the coordinate reference system {crs.name!r} is neither geographic nor "
            "projected, so PROJ cannot place it on the earth; give the right one with --crs"
        )
        raise InvalidInputError(msg)
    base = crs.source_crs if crs.is_bound and crs.source_crs is not None else crs
    codes, how = _match(base)
    if not codes:
        return _unidentified(crs, crs_text)
    first = info(codes[0])
    if re.fullmatch(r"epsg:\d+", crs_text.strip(), re.I):
        how = "EPSG code"  # as GDAL read it from the file, or as --crs gave it
    area = _union([info(c).area for c in codes])
    return replace(first, area=area, identified_by=how)


@lru_cache(maxsize=128)
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
    family = _family(crs)
    return CrsInfo(
        epsg=epsg,
        name=crs.name,
        geographic=crs.is_geographic,
        area=WORLD if aou is None else aou.bounds,
        family=None if family is None else family.datum,
        gauss_kruger=_tm_parameters(crs),
        identified_by="EPSG code",
    )


def _planar(crs: CRS) -> CRS:
    """The horizontal part of a compound CRS (the vertical part does not place x, y)."""
    while crs.is_compound and crs.sub_crs_list:
        crs = crs.sub_crs_list[0]
    return crs


def _match(crs: CRS) -> tuple[list[int], str]:
    """EPSG codes that fit ``crs`` equally well (best first) and how they were found."""
    for candidate in (crs, _wkt1(crs)):
        if candidate is None:
            continue
        matches = candidate.list_authority(auth_name="EPSG", min_confidence=CONFIDENCE)
        if matches:
            top = max(m.confidence for m in matches)
            codes = [int(m.code) for m in matches if m.confidence == top]
            return codes, f"PROJ identification (confidence {top}%)"
    code = _by_parameters(crs)
    if code is not None:
        return [code], "Gauss-Kruger parameters (datum, central meridian, false easting)"
    return [], ""


def _wkt1(crs: CRS) -> CRS | None:
    """``crs`` read back from WKT1, which PROJ identifies without regard to axis order."""
    try:
        return CRS.from_wkt(crs.to_wkt("WKT1_GDAL"))
    except (CRSError, TypeError):  # not expressible in WKT1 (to_wkt gives None)
        return None


def _union(areas: list[Bounds]) -> Bounds:
    if len(areas) == 1 or any(a[0] > a[2] for a in areas):
        return areas[0]
    return (
        min(a[0] for a in areas),
        min(a[1] for a in areas),
        max(a[2] for a in areas),
        max(a[3] for a in areas),
    )


def _unidentified(crs: CRS, text: str) -> CrsInfo:
    """A CRS that matches no EPSG code, kept as given."""
    base = crs.source_crs if crs.is_bound and crs.source_crs is not None else crs
    aou = crs.area_of_use or base.area_of_use
    geodetic = geodetic_epsg(crs)
    area = aou.bounds if aou is not None else (info(geodetic).area if geodetic else WORLD)
    family = _family(base)
    return CrsInfo(
        epsg=None,
        name=crs.name,
        geographic=crs.is_geographic,
        area=area,
        family=None if family is None else family.datum,
        gauss_kruger=_tm_parameters(base),
        wkt=text,
    )


@lru_cache(maxsize=16)
def _custom(text: str) -> CRS:
    """The CRS of a :class:`CrsInfo` without EPSG code, read as :func:`identify` read it."""
    return _planar(CRS.from_user_input(text))


@lru_cache(maxsize=16)
def geodetic_epsg(crs: CRS) -> int | None:
    """The EPSG code of the geographic CRS of ``crs``'s datum, if PROJ identifies one."""
    base = crs.source_crs if crs.is_bound and crs.source_crs is not None else crs
    geodetic = base.geodetic_crs
    if geodetic is None:
        return None
    # Read back from WKT1 so the axis order (lon, lat in a PROJCS) is not held against it.
    for candidate in (_wkt1(geodetic), geodetic):
        if candidate is None:
            continue
        for match in candidate.list_authority(auth_name="EPSG", min_confidence=CONFIDENCE):
            code = int(match.code)
            found = CRS.from_epsg(code)
            if found.is_geographic and len(found.axis_info) == 2:
                return code
    return None


def _family(crs: CRS) -> GaussKruger | None:
    """The Chinese datum of ``crs``, by its name and ellipsoid."""
    datum = crs.datum
    ellipsoid = crs.ellipsoid
    if datum is None or ellipsoid is None:
        return None
    geodetic = crs.geodetic_crs
    names = f"{datum.name} {geodetic.name if geodetic else ''}"
    for family in GAUSS_KRUGER:
        if family.names.search(names) and abs(ellipsoid.semi_major_metre - family.semi_major) < 1:
            return family
    return None


def _by_parameters(crs: CRS) -> int | None:
    """The EPSG code of a Chinese geographic or Gauss-Krüger CRS recognised by its
    datum (name and ellipsoid), central meridian and false easting.

    Esri and hand-made ``.prj`` files name these systems freely. Returns None unless the
    central meridian is a zone's and the false easting is 500 000 m, with or without that
    zone's number in front.
    """
    family = _family(crs)
    if family is None:
        return None
    if crs.is_geographic:
        degrees = bool(crs.axis_info) and math.isclose(
            crs.axis_info[0].unit_conversion_factor, math.pi / 180, rel_tol=1e-9
        )
        return family.geographic if degrees else None
    params = _tm_parameters(crs)
    if params is None:
        return None
    lon0, false_easting = params
    for width, zone in _zones(lon0):
        if false_easting in {5e5, zone * 1e6 + 5e5}:
            return family.code(width, zone, prefixed=false_easting != 5e5)
    return None


def _zones(lon0: float) -> list[tuple[int, int]]:
    """(width, zone) of the Chinese Gauss-Krüger zones with this central meridian."""
    out = []
    if lon0 % 3 == 0 and 75 <= lon0 <= 135:
        out.append((3, int(lon0 // 3)))
    if (lon0 + 3) % 6 == 0 and 75 <= lon0 <= 135:
        out.append((6, int((lon0 + 3) // 6)))
    return out


def _tm_parameters(crs: CRS) -> tuple[float, float] | None:
    """(central meridian, false easting) of a Transverse Mercator CRS in metres with k=1,
    lat0=0, FN=0."""
    op = crs.coordinate_operation
    if op is None or op.method_name.lower().replace("ü", "u") not in _GK_METHODS:
        return None
    if not crs.axis_info or crs.axis_info[0].unit_conversion_factor != 1.0:
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


# --------------------------------------------------------------------------- area of use


@lru_cache(maxsize=64)
def _to_lonlat(definition: str | int) -> Transformer:
    source = CRS.from_epsg(definition) if isinstance(definition, int) else _custom(definition)
    return Transformer.from_crs(source, WGS84, always_xy=True)


def to_lonlat(
    crs: CrsInfo, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Longitude and latitude of points given in ``crs`` (infinite where PROJ fails).

    Good to the datum shift (metres to a few hundred metres): enough to compare with an
    area of use, not to store.
    """
    if crs.epsg is not None and crs.geographic:
        return x, y
    transformer = _to_lonlat(crs.epsg if crs.epsg is not None else str(crs.wkt))
    lon, lat = transformer.transform(x, y, errcheck=False)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def outside_area(
    crs: CrsInfo, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """True for each point that lies outside the CRS's area of use (with a small margin).

    A projected CRS without an EPSG code also counts points that look like degrees
    (|x| <= 180 and |y| <= 90 metres from its origin) as outside: its area of use is
    often unknown (the whole world), and such points would otherwise land near the
    origin instead of being refused.
    """
    lon, lat = to_lonlat(crs, x, y)
    west, south, east, north = crs.area
    with np.errstate(invalid="ignore"):
        inside = (
            _in_lon_range(lon, west, east)
            & (lat >= south - _MARGIN_DEG)
            & (lat <= north + _MARGIN_DEG)
            & (np.abs(lat) <= 90.0)
        )
        degrees_like = (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0)
    if crs.geographic:
        inside &= degrees_like
    elif crs.epsg is None:
        inside &= ~degrees_like
    return ~inside


def _in_lon_range(lon: npt.NDArray[np.float64], west: float, east: float) -> npt.NDArray[np.bool_]:
    """Longitudes within [west, east] and a margin; west > east wraps at the antimeridian."""
    after_west = lon >= west - _MARGIN_DEG
    before_east = lon <= east + _MARGIN_DEG
    if west > east:
        return (after_west | before_east) & (np.abs(lon) <= 180.0)
    return after_west & before_east


def area_overlaps(box: Bounds, area: Bounds, margin: float = _MARGIN_DEG) -> bool:
    """Whether a lon/lat box (west <= east) touches an area of use, widened by ``margin``
    degrees; an area with west > east crosses the antimeridian."""
    west, south, east, north = box
    a_west, a_south, a_east, a_north = area
    if north < a_south - margin or south > a_north + margin:
        return False
    if a_west > a_east:  # [a_west, 180] and [-180, a_east]
        return east >= a_west - margin or west <= a_east + margin
    return not (east < a_west - margin or west > a_east + margin)


def mostly_inside(crs: CrsInfo, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centres of features' ``bounds`` (rows of minx, miny, maxx, maxy in ``crs``) and
    which lie outside its area of use, once it is known that most do not.

    Raises:
        InvalidInputError: more than half lie outside: the file's CRS is wrong, and the
            message names the likely cause (:func:`diagnose_extent`).
    """
    cx, cy = (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2
    outside = outside_area(crs, cx, cy)
    if outside.sum() * 2 > len(bounds):
        box = (float(bounds[:, 0].min()), float(bounds[:, 1].min()),
               float(bounds[:, 2].max()), float(bounds[:, 3].max()))  # fmt: skip
        raise InvalidInputError(diagnose_extent(crs, box))
    return cx, cy, outside


def diagnose_extent(crs: CrsInfo, bounds: Bounds) -> str:
    """Why data with these bounds does not fit ``crs``: the likely cause, in one sentence."""
    xmin, ymin, xmax, ymax = bounds
    box = f"x {xmin:,.6g}..{xmax:,.6g}, y {ymin:,.6g}..{ymax:,.6g}"
    west, south, east, north = crs.area
    head = (
        f"coordinates ({box}) lie outside the area of use of {crs.label} "
        f"(lon {west:g}..{east:g}, lat {south:g}..{north:g})"
    )
    cause = _geographic_cause(crs, bounds) if crs.geographic else _projected_cause(crs, bounds)
    return head if cause is None else f"{head}: {cause}"


def _geographic_cause(crs: CrsInfo, bounds: Bounds) -> str | None:
    xmin, ymin, xmax, ymax = bounds
    if max(abs(xmin), abs(xmax)) > 1000 or max(abs(ymin), abs(ymax)) > 1000:
        return f"these look like projected metres, not degrees; {_suggest_gk(crs, bounds)}"
    if _inside((ymin, xmin, ymax, xmax), crs.area):
        return "the data fits with x and y exchanged, so latitude and longitude are swapped"
    return None


def _projected_cause(crs: CrsInfo, bounds: Bounds) -> str | None:
    xmin, ymin, xmax, ymax = bounds
    family = _FAMILIES.get(crs.family or "")
    if max(abs(xmin), abs(xmax)) <= 180 and max(abs(ymin), abs(ymax)) <= 90:
        geographic = f"EPSG:{family.geographic}" if family else "EPSG:4490 or EPSG:4326"
        return f"these look like degrees; the file is probably geographic ({geographic})"
    zone = _zone_prefix(xmin, xmax)
    prefixed = _expected_prefix(crs)
    if prefixed is not None and zone is None and xmin >= 1e5 and xmax <= 1e6:
        width = 3 if prefixed >= 25 else 6
        plain = family.code(width, prefixed, prefixed=False) if family else None
        same = f"EPSG:{plain}" if plain is not None else "the same CRS with false easting 500000"
        return (
            f"{crs.code} expects eastings with the zone prefix ({prefixed}xxxxxx.x) but x has "
            f"none; the matching system without prefix is {same}"
        )
    if prefixed is None and zone is not None:
        return (
            f"x carries a Gauss-Kruger zone prefix ({zone}); "
            f"the file is probably in {_suggest_gk(crs, bounds)}"
        )
    return None


def _expected_prefix(crs: CrsInfo) -> int | None:
    """The zone number a Gauss-Krüger CRS expects in front of its eastings, if any."""
    if crs.gauss_kruger is None:
        return None
    false_easting = crs.gauss_kruger[1]
    zone = int(false_easting // 1e6)
    return zone if 13 <= zone <= 45 and false_easting == zone * 1e6 + 5e5 else None


def _inside(bounds: Bounds, area: Bounds) -> bool:
    """Whether a box (xmin <= xmax) lies within an area of use, with the margin."""
    west, south, east, north = area
    after_west = bounds[0] >= west - _MARGIN_DEG
    before_east = bounds[2] <= east + _MARGIN_DEG
    # An area across the antimeridian holds boxes wholly east of its west edge or wholly
    # west of its east edge.
    lon = (after_west or before_east) if west > east else (after_west and before_east)
    return lon and bounds[1] >= south - _MARGIN_DEG and bounds[3] <= north + _MARGIN_DEG


def _zone_prefix(xmin: float, xmax: float) -> int | None:
    """The 3- or 6-degree zone number written in front of Gauss-Krüger eastings, if any."""
    zmin, zmax = math.floor(xmin / 1e6), math.floor(xmax / 1e6)
    if zmin == zmax and 13 <= zmin <= 45:
        return int(zmin)
    return None


def _suggest_gk(crs: CrsInfo, bounds: Bounds) -> str:
    """The Gauss-Krüger CRS the eastings suggest, in the CRS's datum (else CGCS2000)."""
    family = _FAMILIES.get(crs.family or "", GAUSS_KRUGER[0])
    zone = _zone_prefix(bounds[0], bounds[2])
    if zone is not None:
        width = 3 if zone >= 25 else 6
        code = family.code(width, zone, prefixed=True)
        if code is not None:
            return (
                f"a {width}-degree Gauss-Kruger zone with prefix: EPSG:{code} "
                f"({family.datum}, zone {zone})"
            )
    first, last = family.cm3, family.cm3 + 20
    example = family.code(3, 37, prefixed=False)
    return (
        f"perhaps a {family.datum} Gauss-Kruger zone without prefix (EPSG:{first}-{last}, "
        f"e.g. EPSG:{example} for central meridian 111E); give it with --crs"
    )


# --------------------------------------------------------------------------- transformation


@dataclass(frozen=True)
class Reprojection:
    """How coordinates in a CRS with no EPSG code reach the CRS they are stored in."""

    source: CrsInfo
    target: CrsInfo
    srid: int
    """The target's EPSG code."""
    transformer: Transformer
    """One PROJ operation (not a set PROJ would choose from point by point), so the one
    reported is the one applied."""
    best_available: bool
    """False when PROJ knows a better operation that needs a grid not installed here."""
    missing_grids: tuple[str, ...] = ()

    @property
    def accuracy(self) -> float | None:
        """The operation's accuracy in metres (None: PROJ does not know it)."""
        value = self.transformer.accuracy
        return None if value < 0 else float(value)

    @property
    def ballpark(self) -> bool:
        """Whether a step is a ballpark one (datums assumed equal, errors of up to
        hundreds of metres)."""
        steps = self.transformer.operations or ()
        return any(op.has_ballpark_transformation for op in steps) or (
            "ballpark" in self.transformer.description.lower()
        )

    @property
    def proj(self) -> str:
        """The operation as a PROJ string (a pipeline)."""
        try:
            return str(self.transformer.to_proj4())
        except ProjError:  # pragma: no cover - PROJ can write every operation it built
            return str(self.transformer.definition)

    def transform(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The points in the target CRS, east then north (infinite where PROJ fails)."""
        tx, ty = self.transformer.transform(x, y, errcheck=False)
        return np.asarray(tx, dtype=float), np.asarray(ty, dtype=float)

    def as_report(self) -> dict[str, Any]:
        """What an ingest report says about the transformation."""
        return {
            "source_crs": {"name": self.source.name, "wkt": self.source.wkt},
            "target_crs": self.target.code,
            "operation": self.transformer.description,
            "proj": self.proj,
            "accuracy_m": self.accuracy,
            "ballpark": self.ballpark,
            "best_available": self.best_available,
            "missing_grids": list(self.missing_grids),
        }

    def note(self) -> str:
        """One sentence for the report's notes."""
        accuracy = "unknown" if self.accuracy is None else f"{self.accuracy:g} m"
        ballpark = (
            "; a ballpark operation: the datums are taken as equal, which may be off by "
            "up to a few hundred metres"
            if self.ballpark
            else ""
        )
        return (
            f"the CRS {self.source.name!r} matches no EPSG code (PROJ confidence below "
            f"{CONFIDENCE}%): "
            f"the coordinates were transformed to {self.target.label} by PROJ's "
            f"{self.transformer.description!r} (accuracy {accuracy}{ballpark})"
        )


def storage_epsg(crs: CrsInfo, lonlat: Bounds) -> int:
    """The EPSG code to store data in a CRS that has none.

    The geographic CRS of its datum when PROJ identifies one (only the projection is
    undone, exactly; the datum is kept as the file has it); a CRS bound to WGS 84 by
    ``TOWGS84``: EPSG:4326 (the file says how to get there); an unknown datum on the
    GRS80 / CGCS2000 ellipsoid with data in China: CGCS2000 (EPSG:4490), China's datum
    on that ellipsoid; anything else: EPSG:4326.

    Args:
        crs: the CRS (``wkt`` set).
        lonlat: the data's extent in lon/lat degrees.
    """
    source = _custom(str(crs.wkt))
    if source.is_bound:
        hub = source.target_crs
        if hub is not None and hub.to_epsg() == WGS84:
            return WGS84
    geodetic = geodetic_epsg(source)
    if geodetic is not None:
        return geodetic
    ellipsoid = source.ellipsoid
    grs80 = ellipsoid is not None and (
        abs(ellipsoid.semi_major_metre - _GRS80[0]) < 1e-3
        and abs(ellipsoid.inverse_flattening - _GRS80[1]) < 1e-7
    )
    centre = np.array([(lonlat[0] + lonlat[2]) / 2]), np.array([(lonlat[1] + lonlat[3]) / 2])
    if grs80 and not outside_area(info(CGCS2000), *centre)[0]:
        return CGCS2000
    return WGS84


def reprojection(crs: CrsInfo, lonlat: Bounds) -> Reprojection:
    """The operation that carries data in ``crs`` (a CRS with no EPSG code) to storage.

    The storage CRS is :func:`storage_epsg`'s; the operation is the first that PROJ
    proposes for the data's extent (PROJ sorts them by relevance to the area, then by
    accuracy) among those it can run here.

    Args:
        crs: the CRS (``wkt`` set).
        lonlat: the data's extent in lon/lat degrees (west, south, east, north).

    Raises:
        InvalidInputError: PROJ knows no operation it can run between them.
    """
    code = storage_epsg(crs, lonlat)
    target = info(code)
    west, south, east, north = (float(v) for v in lonlat)
    aoi = None
    if all(math.isfinite(v) for v in lonlat) and south <= north:
        aoi = AreaOfInterest(
            max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0)
        )
    with warnings.catch_warnings():
        # The group says so itself (best_available); the report carries it.
        warnings.filterwarnings("ignore", "Best transformation is not available", UserWarning)
        try:
            group = TransformerGroup(
                _custom(str(crs.wkt)),
                CRS.from_epsg(code),
                always_xy=True,
                area_of_interest=aoi,
            )
        except (CRSError, ProjError) as exc:
            msg = f"PROJ cannot transform {crs.label} to {target.label}: {exc}"
            raise InvalidInputError(msg) from exc
    if not group.transformers:
        msg = (
            f"PROJ knows no operation it can run here from {crs.label} to {target.label}; "
            "give an equivalent EPSG code with --crs"
        )
        raise InvalidInputError(msg)
    grids = tuple(
        sorted(
            {
                g.short_name
                for op in group.unavailable_operations
                for g in op.grids
                if not g.available
            }
        )
    )
    return Reprojection(
        source=crs,
        target=target,
        srid=code,
        transformer=group.transformers[0],
        best_available=bool(group.best_available),
        missing_grids=grids,
    )


def _clip(text: str, size: int = 80) -> str:
    return text if len(text) <= size else text[:size] + "..."
