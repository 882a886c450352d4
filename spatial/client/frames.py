"""GeoJSON pages of the OGC API to typed GeoDataFrames, and the small value conversions
the client's arguments need (bbox, datetimes, CRS, CQL2).

The items pages are GeoJSON: exact for numbers and text, while dates and timestamps come
as ISO text. The collection's queryables (a JSON Schema: ``type`` and ``format`` of each
property) say which is which, so columns get the types the layer has: integers as
``int64`` (``Int64`` with nulls), dates as ``datetime64``, timestamps as UTC
``datetime64``, booleans as ``bool``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from spatial.errors import InvalidInputError

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
_EPSG = re.compile(r"(?:EPSG:+|.*/def/crs/EPSG/[^/]+/)(\d+)$", re.IGNORECASE)
_CRS84 = re.compile(r"^(?:OGC:)?CRS84$|/def/crs/OGC/[^/]+/CRS84$", re.IGNORECASE)

Bbox = tuple[float, float, float, float]
When = str | dt.datetime | dt.date


def check_bbox(bbox: Sequence[float] | None) -> Bbox | None:
    """A ``(west, south, east, north)`` box checked before it is sent.

    Raises:
        InvalidInputError: not four finite numbers, or west >= east or south >= north.
    """
    if bbox is None:
        return None
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        msg = f"bbox must be 4 numbers (west, south, east, north), not {bbox!r}"
        raise InvalidInputError(msg)
    west, south, east, north = values
    if west >= east or south >= north:
        msg = (
            f"bbox {bbox!r} is in the wrong order: give (west, south, east, north) "
            "with west < east and south < north"
        )
        raise InvalidInputError(msg)
    return west, south, east, north


def bbox_text(bbox: Bbox) -> str:
    """The ``bbox`` query parameter."""
    return ",".join(repr(v) for v in bbox)


def instant(value: When) -> str:
    """An RFC 3339 instant: a datetime (naive means UTC), a date, or text as given."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def interval(start: When | None, end: When | None) -> str | None:
    """The ``datetime`` parameter of ``start``/``end`` (either may be open), or None."""
    if start is None and end is None:
        return None
    if start is not None and end is not None and instant(start) == instant(end):
        return instant(start)
    return f"{'..' if start is None else instant(start)}/{'..' if end is None else instant(end)}"


def crs_uri(crs: int | str | CRS | None) -> str | None:
    """The OGC URI of a CRS given as an EPSG code, ``"EPSG:4546"``, a URI or a pyproj CRS."""
    if crs is None:
        return None
    if isinstance(crs, int):
        return EPSG_URI.format(crs)
    if isinstance(crs, CRS):
        code = crs.to_epsg()
        if code is None:
            msg = f"crs {crs.name!r} has no EPSG code; the platform serves EPSG CRSs"
            raise InvalidInputError(msg)
        return EPSG_URI.format(code)
    text = str(crs).strip()
    if _CRS84.search(text):
        return CRS84
    match = _EPSG.match(text)
    if match:
        return EPSG_URI.format(int(match[1]))
    if text.isdigit():
        return EPSG_URI.format(int(text))
    msg = f"crs {crs!r} is not an EPSG code (4546, 'EPSG:4546') or a CRS URI"
    raise InvalidInputError(msg)


def frame_crs(uri: str | None) -> tuple[CRS, bool]:
    """The CRS a frame gets for a served CRS URI, and whether the served coordinates are
    in north-east axis order (to be swapped: GeoPandas holds x = east)."""
    if uri is None or _CRS84.search(uri):
        return CRS.from_epsg(4326), False
    match = _EPSG.match(uri)
    crs = CRS.from_epsg(int(match[1])) if match else CRS.from_user_input(uri)
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return crs, first in {"north", "south"}


def cql2(filter_: str | Mapping[str, Any] | None) -> dict[str, str]:
    """The ``filter`` and ``filter-lang`` parameters of CQL2 text or CQL2 JSON."""
    if filter_ is None:
        return {}
    if isinstance(filter_, Mapping):
        return {"filter": json.dumps(filter_), "filter-lang": "cql2-json"}
    return {"filter": str(filter_), "filter-lang": "cql2-text"}


def names(value: str | Iterable[str] | None) -> str | None:
    """A comma-separated list parameter from a name or names."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


def quoted(value: str) -> str:
    """A CQL2 text string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Pages:
    """Features gathered page by page, turned into one frame at the end."""

    fields: Mapping[str, Mapping[str, Any]]
    """The collection's properties (JSON Schema) in order: the column types."""
    crs_uri: str | None = None
    ids: list[Any] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    geometries: list[Any] = field(default_factory=list)

    def add(self, page: Mapping[str, Any]) -> int:
        """Take a page's features; returns how many."""
        found = page.get("features") or []
        for feature in found:
            self.ids.append(feature.get("id"))
            self.rows.append(feature.get("properties") or {})
            geometry = feature.get("geometry")
            self.geometries.append(shapely.geometry.shape(geometry) if geometry else None)
        return len(found)

    def frame(self, properties: Sequence[str] | None = None) -> gpd.GeoDataFrame:
        """The features as a GeoDataFrame: ``id``, the properties (typed), ``geometry``."""
        crs, flip = frame_crs(self.crs_uri)
        geoms = np.array(self.geometries, dtype=object)
        if flip and len(geoms):
            geoms = shapely.transform(geoms, lambda xy: xy[:, ::-1])
        wanted = list(self.fields) if properties is None else list(properties)
        data = pd.DataFrame.from_records(self.rows) if self.rows else pd.DataFrame()
        columns: dict[str, Any] = {}
        if "id" not in wanted:
            columns["id"] = _typed(pd.Series(self.ids, dtype=object), {"type": "integer"})
        for name in [*wanted, *(c for c in data.columns if c not in wanted)]:
            raw = data[name] if name in data else pd.Series([None] * len(self.rows), dtype=object)
            columns[name] = _typed(raw.reset_index(drop=True), self.fields.get(name, {}))
        return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)


def _integers(values: pd.Series) -> pd.Series:
    exact = not values.isna().any() and all(isinstance(v, int) for v in values)
    return values.astype("int64" if exact else "Int64")


def _booleans(values: pd.Series) -> pd.Series:
    return values.astype("boolean" if values.isna().any() else "bool")


def _texts(values: pd.Series) -> pd.Series:
    return values if values.isna().any() else values.astype("str")


_CONVERT: dict[str, Callable[[pd.Series], pd.Series]] = {
    "integer": _integers,
    "number": lambda v: v.astype("float64"),
    "boolean": _booleans,
    "date": lambda v: pd.to_datetime(v, format="ISO8601"),
    "date-time": lambda v: pd.to_datetime(v, format="ISO8601", utc=True),
    "string": _texts,
}
"""Column conversions by JSON Schema ``format`` (first) or ``type``."""


def _typed(values: pd.Series, spec: Mapping[str, Any]) -> pd.Series:
    """A column in the type its schema gives (values as they came when it gives none or
    they do not fit)."""
    convert = _CONVERT.get(str(spec.get("format"))) or _CONVERT.get(str(spec.get("type")))
    if convert is None:
        return values
    try:
        return convert(values)
    except (TypeError, ValueError, OverflowError):
        return values
