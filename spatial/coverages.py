"""Coverages of imagery (OGC API - Coverages): a collection's domain, and the part of it a
request asks for.

The **domain** of a raster collection (its mosaic, latest scene on top) is a grid in the CRS
of its newest scene, at that scene's resolution and on that scene's pixel grid (same origin),
stretched outward, whole cells at a time, over every scene's extent (each transformed into
that CRS). So a mosaic of scenes in several CRSs or resolutions is read as the newest scene
sees the world; older scenes are resampled onto its grid. A collection with more than one
acquisition time also has a time axis (the scenes' datetimes). One item's domain is its own
grid.

A **request** names a part of the domain with ``subset`` (OGC API - Coverages Part 1:
``subset=Lat(22.9:23.0),Lon(112.0:112.1)``, ``E(..:..),N(..:..)``, ``time("2025-01-01":
"2025-12-31")``, ``*`` for an open end, several ``subset`` parameters or comma-separated
axes), or with ``bbox`` (``bbox-crs``), and ``datetime``:

- spatial axes are ``Lat``/``Lon`` (``Long``) in a geographic CRS and ``E``/``N`` in a
  projected one. ``subset-crs`` names the CRS (an OGC URI, a safe CURIE or ``EPSG:n``); when
  it is absent, ``Lat``/``Lon`` are in CRS84 (the standard's default) and ``E``/``N`` in the
  coverage's own CRS (the domain set's ``srsName``: what GDAL's OGCAPI driver sends, without a
  ``subset-crs``). A ``subset-crs`` that none of the axes belongs to is ignored, as the
  standard says;
- an interval trims (the same pixels as the equivalent ``bbox``/``bbox-crs``); a single value
  slices, keeping the one row or column of cells that holds it (a GeoTIFF keeps its two
  dimensions); a ``Lon`` interval with low above high crosses the antimeridian;
- ``time`` maps to the mosaic's time window (:func:`spatial.mosaic.window`): an interval
  mosaics the scenes inside it, a single instant is the mosaic as seen then (the newest
  scene at or before it), ``*`` the latest;
- a spatial subset entirely outside the domain is a :class:`~spatial.errors.NotFoundError`
  (the standard asks for 204 or 404); other faults (an unknown axis, an axis twice, a
  malformed interval, low above high, ``subset`` with ``bbox``, ``time`` with ``datetime``)
  are :class:`~spatial.errors.InvalidInputError`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pyproj
from pyproj.exceptions import CRSError
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds

from spatial import mosaic
from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import CRS84, parse_bbox

Box = tuple[float, float, float, float]
TimeWindow = tuple[dt.datetime | None, dt.datetime | None]
"""The scenes' times: from, to (None: open), as :func:`spatial.mosaic.window` gives them."""
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
MAX_SIZE = 20_000
"""Largest ``width``, ``height`` or ``scale-size`` of one axis, in cells."""
_EPS = 1e-6
"""Cells this close to whole are whole (coordinates carry rounding from transforms)."""


@dataclass(frozen=True)
class Domain:
    """A coverage's grid: north-up cells of ``res_x`` by ``res_y`` from the top-left corner
    (``left``, ``top``), ``width`` by ``height`` of them, in ``crs``; and its times."""

    crs: pyproj.CRS
    left: float
    top: float
    res_x: float
    res_y: float
    width: int
    height: int
    times: tuple[dt.datetime, ...]

    @property
    def bounds(self) -> Box:
        """Left, bottom, right, top: the outer edges of the cells."""
        right = self.left + self.width * self.res_x
        return self.left, self.top - self.height * self.res_y, right, self.top

    @property
    def uri(self) -> str | None:
        """The CRS's OGC URI (None for a CRS that matches no EPSG code)."""
        code = self.crs.to_epsg()
        return EPSG_URI.format(code) if code is not None else None

    @property
    def crs_text(self) -> str:
        """The CRS as rasterio reads it: ``EPSG:n``, else its WKT."""
        return _text(self.crs)

    @property
    def name(self) -> str:
        """How a message names the CRS."""
        code = self.crs.to_epsg()
        return f"EPSG:{code}" if code is not None else str(self.crs.name)

    def snap(self, box: Box) -> tuple[Box, int, int]:
        """The whole cells of the grid that ``box`` (in :attr:`crs`) meets, as their outer
        edges, and their number across and down (at least one each)."""
        first = math.floor((box[0] - self.left) / self.res_x + _EPS)
        last = max(first + 1, math.ceil((box[2] - self.left) / self.res_x - _EPS))
        top = math.floor((self.top - box[3]) / self.res_y + _EPS)
        bottom = max(top + 1, math.ceil((self.top - box[1]) / self.res_y - _EPS))
        snapped = (self.left + first * self.res_x, self.top - bottom * self.res_y,
                   self.left + last * self.res_x, self.top - top * self.res_y)  # fmt: skip
        return snapped, last - first, bottom - top


@dataclass(frozen=True)
class Axis:
    """A spatial axis of a CRS as a subset names it."""

    label: str
    """``Lat``, ``Lon``, ``E`` or ``N``."""
    x: bool
    """True for the axis across (easting, longitude)."""
    unit: str
    """Its unit, as CIS labels it (``m``, ``deg``)."""


_UNITS = {"metre": "m", "meter": "m", "degree": "deg", "US survey foot": "ftUS", "foot": "ft"}


def axes(crs: pyproj.CRS) -> tuple[Axis, Axis]:
    """The two horizontal axes of ``crs``, in the CRS's own order (EPSG:4546 is northing
    first, EPSG:4326 latitude first)."""
    found = []
    for info in crs.axis_info[:2]:
        across = info.direction.lower() in {"east", "west"}
        label = ("Lon" if across else "Lat") if crs.is_geographic else ("E" if across else "N")
        found.append(Axis(label, across, _UNITS.get(info.unit_name, info.unit_name)))
    if len(found) != 2 or found[0].x == found[1].x:
        found = [Axis("E", True, "m"), Axis("N", False, "m")]  # not north-up: say E, N
    return found[0], found[1]


# -- the domain of a collection -------------------------------------------------------------

_DOMAIN = """
WITH i AS (
  SELECT id, datetime, properties AS p FROM rs.items
  WHERE collection_id = %(cid)s AND (%(item)s::text IS NULL OR id = %(item)s)
)
SELECT
  (SELECT jsonb_build_object('code', p->'proj:code', 'wkt2', p->'proj:wkt2',
                             'transform', p->'proj:transform')
   FROM i ORDER BY datetime DESC, id LIMIT 1),
  (SELECT jsonb_agg(jsonb_build_array(code, wkt2, w, s, e, n)) FROM (
     SELECT p->>'proj:code' AS code, p->>'proj:wkt2' AS wkt2,
            min((p->'proj:bbox'->>0)::float8) AS w, min((p->'proj:bbox'->>1)::float8) AS s,
            max((p->'proj:bbox'->>2)::float8) AS e, max((p->'proj:bbox'->>3)::float8) AS n
     FROM i GROUP BY 1, 2) AS g),
  (SELECT array_agg(DISTINCT datetime ORDER BY datetime) FROM i)
"""


async def domain(
    conn: psycopg.AsyncConnection[Any], collection_id: str, item_id: str | None = None
) -> Domain:
    """The domain of a raster collection's mosaic (or of its one item ``item_id``).

    Raises:
        NotFoundError: the collection has no scenes, or no item ``item_id``.
    """
    cur = await conn.execute(_DOMAIN, {"cid": collection_id, "item": item_id})
    row = await cur.fetchone()
    if row is None or row[0] is None:
        what = f"no item {item_id!r}" if item_id is not None else "no scenes"
        msg = f"collection {collection_id!r} has {what}"
        raise NotFoundError(msg)
    newest, groups, times = row
    return grid(newest, groups or [], tuple(times or ()))


def _crs(code: str | None, wkt: str | None) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(code or wkt)


def _text(crs: pyproj.CRS) -> str:
    """``crs`` as rasterio reads it."""
    code = crs.to_epsg()
    return f"EPSG:{code}" if code is not None else str(crs.to_wkt())


def grid(
    newest: Mapping[str, Any], extents: Sequence[Sequence[Any]], times: tuple[dt.datetime, ...]
) -> Domain:
    """The domain on ``newest``'s grid (its ``code`` or ``wkt2`` and ``transform``, as in a
    STAC item's ``proj:`` fields) over ``extents`` (``[code, wkt2, w, s, e, n]`` per CRS).

    Raises:
        InvalidInputError: a scene grid that is rotated or has no size.
    """
    crs = _crs(newest.get("code"), newest.get("wkt2"))
    a, b, c, d, e, f = (float(v) for v in list(newest["transform"])[:6])
    if b or d or a <= 0 or e >= 0:
        msg = "the newest scene's grid is rotated or flipped: it has no regular domain"
        raise InvalidInputError(msg)
    boxes = []
    for code, wkt, *box in extents:
        source = _crs(code, wkt)
        bounds = tuple(float(v) for v in box)
        if source != crs:
            bounds = transform_bounds(_text(source), _text(crs), *bounds, densify_pts=21)
        boxes.append(bounds)
    union = (min(x[0] for x in boxes), min(x[1] for x in boxes),
             max(x[2] for x in boxes), max(x[3] for x in boxes))  # fmt: skip
    start = Domain(crs, c, f, a, -e, 0, 0, times)
    (left, _bottom, _right, top), width, height = start.snap(union)
    return Domain(crs, left, top, a, -e, width, height, times)


# -- a request --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubsetCrs:
    """A CRS a ``subset`` or ``bbox`` is given in."""

    text: str
    """As rasterio reads it (``OGC:CRS84``, ``EPSG:4546``, or WKT)."""
    name: str
    """As a message names it."""
    geographic: bool

    @property
    def labels(self) -> dict[str, bool]:
        """Axis names (lower case) that belong to it, each True for the axis across."""
        if self.geographic:
            return {"lat": False, "lon": True, "long": True}
        return {"e": True, "n": False}


CRS84_SUBSET = SubsetCrs("OGC:CRS84", "CRS84", geographic=True)
_CRS_URI = re.compile(
    r"^(?:https?://www\.opengis\.net/def/crs/(?:EPSG/0/(?P<epsg>\d{1,9})|OGC/1\.3/(?P<ogc>CRS84))"
    r"|\[?(?:EPSG:(?P<short>\d{1,9})|(?:OGC:)?(?P<bare>CRS84))\]?)$",
    re.IGNORECASE,
)


def parse_crs(text: str | None, what: str) -> SubsetCrs:
    """A ``subset-crs`` or ``bbox-crs`` value: an OGC CRS URI, a safe CURIE
    (``[EPSG:4546]``) or ``EPSG:n``, ``OGC:CRS84``; CRS84 when absent.

    Raises:
        InvalidInputError: not a CRS URI, or an EPSG code PROJ does not know.
    """
    if text is None or not text.strip():
        return CRS84_SUBSET
    match = _CRS_URI.match(text.strip())
    if match is None:
        msg = f"{what} {text[:100]!r} is not a CRS URI; use e.g. {CRS84} or {EPSG_URI.format(4546)}"
        raise InvalidInputError(msg)
    if match["ogc"] or match["bare"]:
        return CRS84_SUBSET
    code = int(match["epsg"] or match["short"])
    try:
        crs = pyproj.CRS.from_epsg(code)
    except CRSError:
        msg = f"{what} EPSG:{code} is not a CRS this server knows"
        raise InvalidInputError(msg) from None
    return SubsetCrs(f"EPSG:{code}", f"EPSG:{code}", geographic=crs.is_geographic)


def native_crs(found: Domain) -> SubsetCrs:
    """The coverage's own CRS, as a subset is given in it."""
    return SubsetCrs(found.crs_text, found.name, geographic=bool(found.crs.is_geographic))


@dataclass(frozen=True)
class AxisSubset:
    """One ``axis(low:high)`` or ``axis(value)`` of a ``subset`` (None: ``*``)."""

    axis: str
    low: str | None
    high: str | None
    slice: bool
    text: str
    """As it was given, for messages."""


_ALIASES = {"long": "lon"}
_SPEC = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*\((.*)\)\s*$", re.DOTALL)


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside double quotes and parentheses."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif char == sep and not quoted and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


_OPEN = "*"


def _value(token: str, spec: str) -> str | None:
    token = token.strip()
    if token == _OPEN:
        return None
    if len(token) >= 2 and token[0] == token[-1] == '"':
        token = token[1:-1].strip()
    if not token or '"' in token:
        msg = f"subset {spec!r}: {token or 'an empty value'!r} is not a value (a number, "
        msg += 'a quoted time such as "2025-06-01", or * for an open end)'
        raise InvalidInputError(msg)
    return token


def parse_subset(values: Sequence[str]) -> list[AxisSubset]:
    """Every ``axis(...)`` of the ``subset`` parameters, in order.

    Raises:
        InvalidInputError: a part that is not ``axis(low:high)`` or ``axis(value)``, or an
            axis given twice.
    """
    found: list[AxisSubset] = []
    for value in values:
        for part in _split(value, ","):
            spec = part.strip()
            match = _SPEC.match(spec)
            if match is None:
                msg = (
                    f"subset {spec[:100]!r} is not axis(low:high) or axis(value), e.g. "
                    'Lat(22.9:23.0), E(600000:601000) or time("2025-01-01":"2025-12-31")'
                )
                raise InvalidInputError(msg)
            name, inner = match[1], match[2]
            bounds = _split(inner, ":")
            if len(bounds) > 2:
                msg = f"subset {spec[:100]!r}: an interval is low:high (quote times with colons)"
                raise InvalidInputError(msg)
            low = _value(bounds[0], spec)
            high = _value(bounds[-1], spec)
            if any(
                _ALIASES.get(a.axis.lower(), a.axis.lower())
                == _ALIASES.get(name.lower(), name.lower())
                for a in found
            ):
                msg = f"subset names axis {name!r} twice"
                raise InvalidInputError(msg)
            found.append(AxisSubset(name, low, high, len(bounds) == 1, spec[:100]))
    return found


def _number(value: str | None, part: AxisSubset) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        msg = f"subset {part.text!r}: {value!r} is not a finite number"
        raise InvalidInputError(msg)
    return number


def _time(part: AxisSubset) -> TimeWindow:
    """The scenes' time window a ``time(...)`` subset picks."""
    if part.slice:
        text = part.low
    elif part.low is None and part.high is None:
        text = None
    else:
        text = f"{part.low or '..'}/{part.high or '..'}"
    try:
        start, end = mosaic.window(text)
    except (InvalidInputError, ValueError) as exc:
        msg = f"subset {part.text!r}: {str(exc).replace('datetime', 'time')}"
        raise InvalidInputError(msg) from None
    if start is not None and end is not None and start > end:
        msg = f"subset {part.text!r}: the start {part.low} is after the end {part.high}"
        raise InvalidInputError(msg)
    return start, end


@dataclass(frozen=True)
class Asked:
    """A coverage request's domain parameters, parsed (not yet placed in a domain)."""

    spatial: tuple[AxisSubset, ...] = ()
    subset_crs: SubsetCrs | None = None
    bbox: Box | None = None
    bbox_crs: SubsetCrs = CRS84_SUBSET
    when: TimeWindow = (None, None)
    width: int | None = None
    height: int | None = None
    sized: tuple[str, ...] = ()
    """The directions ``scale-size`` scales (``x`` across, ``y`` down)."""
    factors: tuple[float | None, float | None] = (None, None)
    """``scale-factor`` or ``scale-axes``: the native cells across and down are divided by
    these (None: that axis keeps its native cells, or the size asked)."""


def _size(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_SIZE:
        msg = f"{name} must be a whole number of pixels from 1 to {MAX_SIZE}, not {text[:30]!r}"
        raise InvalidInputError(msg)
    return int(text)


_ACROSS = {"lon", "long", "e", "i"}
_DOWN = {"lat", "n", "j"}


def _scale_size(values: Sequence[str]) -> dict[str, int]:
    """``scale-size=E(256),N(256)``: cells across (``x``) and down (``y``)."""
    sizes: dict[str, int] = {}
    for value in values:
        for part in _split(value, ","):
            match = _SPEC.match(part)
            axis = match[1].lower() if match else ""
            if match is None or axis not in _ACROSS | _DOWN:
                msg = (
                    f"scale-size {part.strip()[:100]!r} is not E(cells), N(cells), Lon, Lat, i or j"
                )
                raise InvalidInputError(msg)
            key = "x" if axis in _ACROSS else "y"
            if key in sizes:
                msg = f"scale-size gives the cells {'across' if key == 'x' else 'down'} twice"
                raise InvalidInputError(msg)
            sizes[key] = _size(match[2], f"scale-size {match[1]}") or 1
    return sizes


def _factor(text: str, name: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0 or number > MAX_SIZE:
        msg = f"{name} must be a number above 0 (2 halves the cells), not {text.strip()[:30]!r}"
        raise InvalidInputError(msg)
    return number


def _factors(
    scale_factor: str | None, scale_axes: Sequence[str]
) -> tuple[float | None, float | None]:
    """``scale-factor=2`` (every axis) or ``scale-axes=E(2),N(4)``: divisors of the native
    cells across and down."""
    if scale_factor is not None and scale_axes:
        raise InvalidInputError("give scale-factor or scale-axes, not both")
    if scale_factor is not None:
        factor = _factor(scale_factor, "scale-factor")
        return factor, factor
    found: dict[str, float] = {}
    for value in scale_axes:
        for part in _split(value, ","):
            match = _SPEC.match(part)
            axis = match[1].lower() if match else ""
            if match is None or axis not in _ACROSS | _DOWN:
                msg = (
                    f"scale-axes {part.strip()[:100]!r} is not E(factor), N(factor), Lon, Lat, "
                    "i or j"
                )
                raise InvalidInputError(msg)
            key = "x" if axis in _ACROSS else "y"
            if key in found:
                msg = f"scale-axes gives the axis {'across' if key == 'x' else 'down'} twice"
                raise InvalidInputError(msg)
            found[key] = _factor(match[2], f"scale-axes {match[1]}")
    return found.get("x"), found.get("y")


def parse_request(
    *, subset: Sequence[str] = (), subset_crs: str | None = None, bbox: str | None = None,
    bbox_crs: str | None = None, datetime: str | None = None, width: str | None = None,
    height: str | None = None, scale_size: Sequence[str] = (), scale_factor: str | None = None,
    scale_axes: Sequence[str] = (),
) -> Asked:  # fmt: skip
    """The request's domain parameters, checked on their own (the domain is not needed).

    Raises:
        InvalidInputError: a malformed parameter, ``subset`` with ``bbox`` on space or with
            ``datetime`` on time, ``scale-size`` with ``width``/``height``.
    """
    parts = parse_subset(subset)
    timed = [p for p in parts if p.axis.lower() == "time"]
    spatial = tuple(p for p in parts if p.axis.lower() != "time")
    if spatial and bbox is not None:
        msg = "give bbox or a spatial subset (e.g. Lat/Lon, E/N), not both"
        raise InvalidInputError(msg)
    if timed and datetime is not None:
        msg = "give the time in subset=time(...) or in datetime, not both"
        raise InvalidInputError(msg)
    when = _time(timed[0]) if timed else mosaic.window(datetime)
    sizes = _scale_size(scale_size)
    if sizes and (width is not None or height is not None):
        msg = "give scale-size or width/height, not both"
        raise InvalidInputError(msg)
    factors = _factors(scale_factor, scale_axes)
    if factors != (None, None) and (sizes or width is not None or height is not None):
        msg = "give scale-factor/scale-axes or a size (scale-size, width/height), not both"
        raise InvalidInputError(msg)
    for part in spatial:
        for value in (part.low, part.high):
            _number(value, part)
    # A subset-crs without a spatial subset, or a bbox-crs without a bbox, is ignored.
    return Asked(
        spatial=spatial,
        subset_crs=parse_crs(subset_crs, "subset-crs") if subset_crs and spatial else None,
        bbox=parse_bbox(bbox) if bbox is not None else None,
        bbox_crs=parse_crs(bbox_crs, "bbox-crs") if bbox is not None else CRS84_SUBSET,
        when=when,
        width=sizes["x"] if "x" in sizes else _size(width, "width"),
        height=sizes["y"] if "y" in sizes else _size(height, "height"),
        sized=tuple(sizes),
        factors=factors,
    )


# -- a request placed in a domain -------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """What to read: a box in a CRS, the scenes' lon/lat filter, and the output size."""

    box: Box
    crs: str
    """The box's CRS as rasterio reads it."""
    lonlat: Box | None
    """The scenes to consider (their footprints meet it); None: all of them."""
    width: int | None
    height: int | None
    by: str
    """``bbox``, ``subset`` or ``domain`` (no spatial subset): for messages."""


def _lonlat(box: Box, crs: SubsetCrs) -> Box | None:
    """``box`` in lon/lat for the scenes' filter (None where it crosses the antimeridian or
    cannot be transformed: then every scene is considered)."""
    if box[0] > box[2]:
        return None
    try:
        found = box if crs is CRS84_SUBSET else transform_bounds(crs.text, "OGC:CRS84", *box)
    except (RasterioError, CRSError, ValueError):
        return None
    values = tuple(float(v) for v in found)
    return (values[0], values[1], values[2], values[3]) if all(map(math.isfinite, values)) else None


def _in(found: Domain, crs: SubsetCrs, box: Box) -> Box | None:
    """``box`` (in ``crs``) in the domain's CRS, cut to the domain; None when they do not
    meet (or the box cannot be transformed there)."""
    try:
        native = transform_bounds(crs.text, found.crs_text, *box, densify_pts=21)
    except (RasterioError, CRSError, ValueError):
        return None
    left, bottom, right, top = found.bounds
    cut = (max(native[0], left), max(native[1], bottom), min(native[2], right), min(native[3], top))
    if not all(map(math.isfinite, cut)) or cut[0] > cut[2] or cut[1] > cut[3]:
        return None
    touching = (cut[0] == cut[2] and native[0] != native[2]) or (
        cut[1] == cut[3] and native[1] != native[3]
    )
    if touching:  # the box only touches the domain's edge: no cell's interior meets it
        return None
    return float(cut[0]), float(cut[1]), float(cut[2]), float(cut[3])


def _subset_crs(asked: Asked, found: Domain) -> SubsetCrs:
    """The CRS of the spatial axes: ``subset-crs`` when an axis belongs to it; else CRS84
    for ``Lat``/``Lon``, the coverage's own CRS for ``E``/``N``."""
    names = {p.axis.lower() for p in asked.spatial}
    given = asked.subset_crs
    if given is not None and names & set(given.labels):
        crs = given
    elif names <= set(CRS84_SUBSET.labels):
        crs = CRS84_SUBSET
    else:
        crs = native_crs(found)
    unknown = sorted(p.axis for p in asked.spatial if p.axis.lower() not in crs.labels)
    if unknown:
        own = "/".join(a.label for a in axes(found.crs))
        msg = (
            f"subset axis {unknown[0]!r} is not an axis of {crs.name} (its axes are "
            f"{', '.join(sorted({n.capitalize() for n in crs.labels}))}); this coverage's axes "
            f"are Lat/Lon (CRS84, or subset-crs), {own} ({found.name}) and time"
        )
        raise InvalidInputError(msg)
    return crs


def _ranges(
    asked: Asked, crs: SubsetCrs, found: Domain
) -> tuple[list[float | None], list[float | None]]:
    """The asked x and y ranges (None: open, filled from the domain later)."""
    ranges: dict[bool, list[float | None]] = {True: [None, None], False: [None, None]}
    for part in asked.spatial:
        across = crs.labels[part.axis.lower()]
        low, high = _number(part.low, part), _number(part.high, part)
        wraps = across and crs.geographic and not part.slice
        if low is not None and high is not None and low > high and not wraps:
            msg = f"subset {part.text!r}: the low value {low:g} is above the high value {high:g}"
            raise InvalidInputError(msg)
        if part.slice and ("x" if across else "y") in asked.sized:
            msg = f"subset {part.text!r} slices the axis that scale-size scales"
            raise InvalidInputError(msg)
        ranges[across] = [low, high]
    if any(v is None for v in (*ranges[True], *ranges[False])):
        try:
            whole = transform_bounds(found.crs_text, crs.text, *found.bounds, densify_pts=21)
        except (RasterioError, CRSError, ValueError):
            msg = f"the coverage's domain cannot be expressed in {crs.name}; give every bound"
            raise InvalidInputError(msg) from None
        for across, (low_at, high_at) in ((True, (0, 2)), (False, (1, 3))):
            low, high = ranges[across]
            ranges[across] = [whole[low_at] if low is None else low,
                              whole[high_at] if high is None else high]  # fmt: skip
    return ranges[True], ranges[False]


def resolve(asked: Asked, found: Domain) -> Read:
    """Where ``asked`` reads in the domain ``found``, and at what size: the native cells of
    the box, ``width``/``height``, ``scale-size`` (an axis it does not name keeps its native
    cells), or the native cells divided by ``scale-factor``/``scale-axes``.

    Raises:
        InvalidInputError: an axis that is not the subset CRS's, low above high.
        NotFoundError: a spatial subset that lies wholly outside the domain.
    """
    read = _place(asked, found)
    if asked.factors == (None, None) and len(asked.sized) != 1:
        return read
    across, down = _native_cells(read, found)
    fx, fy = asked.factors
    width = max(1, round(across / fx)) if fx else read.width or across
    height = max(1, round(down / fy)) if fy else read.height or down
    return replace(read, width=width, height=height)


def _native_cells(read: Read, found: Domain) -> tuple[int, int]:
    """The domain's cells across and down in a read's box (as the read counts them)."""
    if read.crs == found.crs_text:
        box = read.box
    else:
        try:
            box = transform_bounds(read.crs, found.crs_text, *read.box, densify_pts=21)
        except (RasterioError, CRSError, ValueError):
            msg = f"the {read.by} cannot be placed in the coverage's grid to scale it"
            raise InvalidInputError(msg) from None
    across = max(1, math.ceil((box[2] - box[0]) / found.res_x - _EPS))
    down = max(1, math.ceil((box[3] - box[1]) / found.res_y - _EPS))
    return across, down


def _place(asked: Asked, found: Domain) -> Read:
    if asked.bbox is not None:
        box, crs = asked.bbox, asked.bbox_crs
        return Read(box, crs.text, _lonlat(box, crs), asked.width, asked.height, "bbox")
    if not asked.spatial:
        if asked.width is None and asked.height is None:
            return Read(found.bounds, found.crs_text, None, found.width, found.height, "domain")
        return Read(found.bounds, found.crs_text, None, asked.width, asked.height, "domain")
    crs = _subset_crs(asked, found)
    (x0, x1), (y0, y1) = _ranges(asked, crs, found)
    box = (float(x0 or 0.0), float(y0 or 0.0), float(x1 or 0.0), float(y1 or 0.0))  # all set
    native = _in(found, crs, box)
    if native is None:
        left, bottom, right, top = found.bounds
        across, down = sorted(axes(found.crs), key=lambda a: not a.x)
        msg = (
            f"the subset {', '.join(p.text for p in asked.spatial)} lies outside the coverage "
            f"({found.name}: {across.label} {left:g} to {right:g}, {down.label} {bottom:g} to "
            f"{top:g})"
        )
        raise NotFoundError(msg)
    if any(p.slice for p in asked.spatial):
        # A slice keeps the cells holding the value: whole cells of the domain's grid.
        cells, width, height = found.snap(native)
        return Read(cells, found.crs_text, _lonlat(box, crs), asked.width or width,
                    asked.height or height, "subset")  # fmt: skip
    return Read(box, crs.text, _lonlat(box, crs), asked.width, asked.height, "subset")
