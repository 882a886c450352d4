"""Coverages of imagery (OGC API - Coverages): a subset of a collection's mosaic (or of one
scene) as a float32 GeoTIFF, and the coverage's domain set and range type as CIS 1.1 JSON.

- :func:`plan` places a parsed request (:func:`spatial.coverages.parse_request`) in the
  coverage's domain (:func:`spatial.coverages.domain`) and picks the scenes under it;
  :func:`render` reads them (:func:`tiles.raster.coverage`, latest on top);
- :func:`domainset`: the domain as a CIS ``DomainSetType`` with a ``generalGrid``: the CRS
  (``srsName``), its axes with their outer bounds and resolution, the grid limits, and a
  time axis (the acquisition times) when the collection has more than one;
- :func:`rangetype`: the bands as a CIS ``DataRecordType``, a ``QuantityType`` per band
  with its name, its data type as ``definition`` (an OGC data type URI, as CIS does), its
  nodata value and its unit when known. The values as stored: a coverage response carries
  them widened to float32, nodata as NaN.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from layers.collections import RasterCollection
from spatial import coverages, rasterstore
from spatial.coverages import Asked, Axis, Domain, Read
from spatial.errors import InvalidInputError, NotFoundError
from spatial.mosaic import Scene
from tiles import raster

DATA_TYPE = "http://www.opengis.net/def/dataType/OGC/0/{}"
_DATA_TYPES = {
    "uint8": "unsignedByte", "int8": "signedByte", "uint16": "unsignedShort",
    "int16": "signedShort", "uint32": "unsignedInt", "int32": "signedInt",
    "uint64": "unsignedLong", "int64": "signedLong", "float32": "float32", "float64": "float64",
}  # fmt: skip
NIL_MISSING = "http://www.opengis.net/def/nil/OGC/0/missing"
ANSI_DATE = "http://www.opengis.net/def/crs/OGC/0/AnsiDate"
COMPOUND = "http://www.opengis.net/def/crs-compound?1={}&2={}"
INDEX_CRS = "http://www.opengis.net/def/crs/OGC/0/Index{}D"


@dataclass(frozen=True)
class Plan:
    """What a coverage request reads: the scenes (newest first) and where."""

    items: list[Scene]
    read: Read
    domain: Domain


async def plan(
    conn: psycopg.AsyncConnection[Any], store: rasterstore.RasterStore,
    found: RasterCollection, asked: Asked, *, item_id: str | None = None,
) -> Plan:  # fmt: skip
    """Place ``asked`` in the domain of ``found`` (or of its item ``item_id``) and find the
    scenes under it.

    Raises:
        NotFoundError: no such item, a subset outside the domain, or no scene in the
            time window (or under the subset).
        InvalidInputError: a bad axis or interval, or a ``bbox`` away from every scene.
    """
    domain = await coverages.domain(conn, found.id, item_id)
    read = coverages.resolve(asked, domain)
    items = await found.scenes(conn, store, item_id=item_id, lonlat=read.lonlat, when=asked.when)
    if not items:
        if read.by == "bbox" and read.lonlat is not None:
            raise InvalidInputError("the bbox does not overlap the data of any scene")
        where = " under the subset" if read.by == "subset" else ""
        when = " in the time asked" if asked.when != (None, None) else ""
        msg = f"no scene of {found.id!r} has data{where}{when}"
        raise NotFoundError(msg)
    return Plan(items, read, domain)


def _fields(style: raster.Style, names: Sequence[str]) -> raster.Style:
    """The bands ``properties`` asks for, by name, by index from 0 (a name wins over an
    index) or ``*`` (all of them); all bands when it names none and there is no expression."""
    if not style.bands:
        return style if style.expression else replace(style, bands=tuple(names))
    wanted: list[str] = []
    for band in style.bands:
        if band == "*":
            wanted.extend(names)
        elif band not in names and band.isdigit() and int(band) < len(names):
            wanted.append(names[int(band)])
        else:
            wanted.append(band)  # an unknown name: refused with the bands' names
    return replace(style, bands=tuple(wanted))


async def render(made: Plan, style: raster.Style) -> bytes:
    """The planned subset as a float32 GeoTIFF (nodata NaN), with the bands ``style``
    names (by name, index or ``*``: :func:`_fields`) or its expression, else all bands.

    Raises:
        InvalidInputError: an unknown band, a bad expression, too many pixels, or a box
            away from the data.
    """
    style = _fields(style, made.items[0].names())
    read = made.read
    try:
        return await asyncio.to_thread(
            raster.coverage, made.items, style, read.box, read.crs,
            width=read.width, height=read.height,
        )  # fmt: skip
    except (ValueError, KeyError) as exc:
        msg = f"the {read.by} cannot be read from the scenes: {exc}"
        raise InvalidInputError(msg) from None


def _regular(axis: Axis, domain: Domain) -> dict[str, Any]:
    left, bottom, right, top = domain.bounds
    low, high, step = (left, right, domain.res_x) if axis.x else (bottom, top, -domain.res_y)
    return {"type": "RegularAxisType", "axisLabel": axis.label, "lowerBound": low,
            "upperBound": high, "uomLabel": axis.unit, "resolution": step}  # fmt: skip


def domainset(domain: Domain) -> dict[str, Any]:
    """The domain as CIS 1.1 JSON: a ``DomainSetType`` with a ``generalGrid``.

    ``axisLabels`` lists the CRS's axes in the CRS's order (EPSG:4546: ``N``, ``E``). The
    ``axis`` entries, each naming its label, are in that order too, but for a projected CRS
    whose first axis is northing (the Gauss-Krüger zones), which lists ``E`` first: GDAL's
    OGCAPI driver (3.6 to 3.10) takes the first entry as x for every CRS but a
    latitude-first one. Bounds are the outer edges of the cells; ``N`` (``Lat``) has a
    negative resolution, rows running south. ``gridLimits`` counts the cells of each entry
    (``i``, ``j``; ``k`` for time).
    """
    first, second = coverages.axes(domain.crs)
    entries = [first, second] if domain.crs.is_geographic or first.x else [second, first]
    labels = [first.label, second.label]
    axis = [_regular(a, domain) for a in entries]
    counts = [domain.width if a.x else domain.height for a in entries]
    srs = domain.uri
    if len(domain.times) > 1:
        stamps = [t.isoformat().replace("+00:00", "Z") for t in domain.times]
        labels.append("time")
        axis.append({"type": "IrregularAxisType", "axisLabel": "time", "uomLabel": "d",
                     "coordinate": stamps})  # fmt: skip
        counts.append(len(stamps))
        srs = COMPOUND.format(srs, ANSI_DATE) if srs else None
    limits = [
        {"type": "IndexAxisType", "axisLabel": index, "lowerBound": 0, "upperBound": count - 1}
        for index, count in zip("ijk", counts, strict=False)
    ]
    general: dict[str, Any] = {"type": "GeneralGridCoverageType"}
    if srs is not None:
        general["srsName"] = srs
    general.update(
        axisLabels=labels,
        axis=axis,
        gridLimits={"type": "GridLimitsType", "srsName": INDEX_CRS.format(len(limits)),
                    "axisLabels": [x["axisLabel"] for x in limits], "axis": limits},
    )  # fmt: skip
    return {"type": "DomainSetType", "generalGrid": general}


def _nil(value: Any) -> float | int | str:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    return int(number) if number.is_integer() else number


def _description(band: Mapping[str, Any]) -> str | None:
    parts = []
    if band.get("common_name"):
        parts.append(f"common name {band['common_name']}")
    if band.get("center_wavelength") is not None:
        parts.append(f"centre wavelength {band['center_wavelength']} µm")
    if band.get("description"):
        parts.append(str(band["description"]))
    return "; ".join(parts) or None


def rangetype(
    bands: Sequence[Mapping[str, Any]], raster_bands: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The bands (``eo:bands`` and ``raster:bands`` of a STAC item) as CIS 1.1 JSON: a
    ``DataRecordType`` with a ``QuantityType`` field per band."""
    fields = []
    for number, band in enumerate(bands, start=1):
        info = raster_bands[number - 1] if number <= len(raster_bands) else {}
        field: dict[str, Any] = {"type": "QuantityType", "name": str(band.get("name") or number)}
        kind = _DATA_TYPES.get(str(info.get("data_type")))
        if kind is not None:
            field["definition"] = DATA_TYPE.format(kind)
        described = _description(band)
        if described is not None:
            field["description"] = described
        if info.get("nodata") is not None:
            field["nilValues"] = [{"reason": NIL_MISSING, "value": _nil(info["nodata"])}]
        if info.get("unit"):
            field["uom"] = {"type": "UnitReference", "code": str(info["unit"])}
        fields.append(field)
    return {"type": "DataRecordType", "field": fields}


async def domain_of(conn: psycopg.AsyncConnection[Any], found: RasterCollection) -> dict[str, Any]:
    """The domain set of a collection's mosaic (:func:`domainset`).

    Raises:
        NotFoundError: the collection has no scenes.
    """
    return domainset(await coverages.domain(conn, found.id))


def range_of(found: RasterCollection) -> dict[str, Any]:
    """The range type of a collection (its newest scene's bands, from the catalog)."""
    props = found.record.properties
    return rangetype(props.get("bands") or [], props.get("raster:bands") or [])
