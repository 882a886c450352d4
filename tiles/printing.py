"""Printed maps and reports: ``POST /maps/{subsystem}/print`` (:mod:`api.routers.printing`).

A print request is a JSON body (:class:`PrintBody`): paper and orientation, a scale and a
centre (or a CRS84 bbox, the scale then fitting it), the layers (the map's visible ones by
default), the imagery date, the CRS (the CGCS2000 3-degree Gauss-Krüger zone of the centre
by default), selected features (their attributes in a table, highlighted on the map) and a
process result as a report (its rows in a table, the drawn zone on the map).
:func:`plan` checks it against the map and the caller's view and works out the frame: the
frame's size on the paper (:func:`tiles.printing_layout.sheet`) times the scale is its
ground size, so the map is printed at the exact scale (the projection's point scale factor
at the centre taken into account). :func:`make` reads what the page needs (the departments,
the selected features through the caller's rows), has the renderer draw the frame as a
vector PDF page (:func:`tiles.render.render`, Mapnik over Cairo) and lays the page out
(:func:`tiles.printing_layout.compose`).

A report's table is the one the page already shows (the process's rows as the page got
them): the server does not run the process again, it prints what the user saw, with the
totals of counts and areas.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import shapely
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pyproj import CRS, Geod, Proj, Transformer

from layers import View
from layers.subsystems import MapLayer, Subsystem, Subsystems
from spatial import features as feats
from spatial.crs import CGCS2000
from spatial.errors import InvalidInputError, NotFoundError
from spatial.processes import PROCESSES
from tiles import printing_layout as layout
from tiles import render as renderer

MIN_SCALE = 100
MAX_SCALE = 1_000_000
DEFAULT_SCALE = 2000.0
"""The scale of a print around a point (a zone or bbox without extent) when none is given."""
MAX_GROUND_M = 40_000.0
"""The longest side of ground a frame may cover (the renderer draws every feature in it)."""
MAX_PICKED = 500
MAX_REPORT_ROWS = 2000
MAX_BODY = 4 * 2**20
GAUSS_KRUGER_3 = range(4513, 4555)
"""CGCS2000 3-degree Gauss-Krüger zones 25-45 with the zone prefix (4513-4533) and
without (4534-4554): the projected CRSs the features are served in."""
PRINT_CRS = (3857, *GAUSS_KRUGER_3)
SCALES = (1.0, 2.0, 2.5, 5.0)
"""Round scales: 1:1,000, 1:2,000, 1:2,500, 1:5,000 times powers of ten."""
CHINA = dt.timezone(dt.timedelta(hours=8), "UTC+8")
"""The date printed is China Standard Time's."""
_AREA = re.compile(r"(^|_)m2$")
Scalar = str | int | float | bool | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selected(_Model):
    """Features whose attributes go in a table, highlighted on the map."""

    collection: str = Field(min_length=1, max_length=100)
    ids: list[int] = Field(min_length=1, max_length=MAX_PICKED)


class Report(_Model):
    """A process result as the page shows it: its rows, and the zone drawn for it."""

    title: str = Field(min_length=1, max_length=200)
    process: str = Field(min_length=1, max_length=100)
    inputs: dict[str, Any] = Field(default_factory=dict)
    columns: list[str] = Field(min_length=1, max_length=30)
    rows: list[dict[str, Scalar]] = Field(default_factory=list, max_length=MAX_REPORT_ROWS)
    geometry: dict[str, Any] | None = None
    """GeoJSON geometry in CRS84 (the drawn zone)."""


class PrintBody(_Model):
    """The body of ``POST /maps/{subsystem}/print``."""

    paper: Literal["A4", "A3"] = "A4"
    orientation: Literal["portrait", "landscape"] = "landscape"
    scale: float | None = None
    """The denominator: 10000 for 1:10,000 (default: what fits ``bbox``)."""
    center: tuple[float, float] | None = None
    """Lon, lat (CRS84) of the frame's centre."""
    bbox: tuple[float, float, float, float] | None = None
    """West, south, east, north (CRS84): the frame's centre, and its scale when none given."""
    title: str | None = Field(default=None, min_length=1, max_length=200)
    layers: list[str] | None = Field(default=None, min_length=1, max_length=100)
    datetime: str | None = Field(default=None, max_length=40)
    crs: int | str | None = None
    selected: Selected | None = None
    report: Report | None = None


@dataclass(frozen=True)
class Plan:
    """A checked print request: what to draw, where, and at which scale."""

    subsystem: Subsystem
    body: PrintBody
    sheet: layout.Sheet
    scale: float
    centre: tuple[float, float]
    frame: renderer.Frame
    drawables: tuple[renderer.Drawable, ...]
    zone: Any | None
    """The report's zone in the frame's CRS."""


# -- checking the request --------------------------------------------------------------------


def parse(document: Any) -> PrintBody:
    """The print body, checked field by field.

    Raises:
        InvalidInputError: a field missing its form, named with the reason.
    """
    if not isinstance(document, dict):
        raise InvalidInputError("the body must be a JSON object (see POST /maps/{id}/print)")
    try:
        return PrintBody.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors()[:8])
        raise InvalidInputError(f"the print request: {problems}") from None


def _problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(body)"
    given = error.get("input")
    shown = f" (got {json.dumps(given, ensure_ascii=False)[:60]})" if isinstance(
        given, str | int | float) and error["type"] != "missing" else ""  # fmt: skip
    return f"{where}: {error['msg']}{shown}"


def plan(document: Any, subsystem: Subsystem, seen: View, maps: Subsystems) -> Plan:
    """Check a print request against the map and the caller's view.

    Raises:
        UnauthorizedError, ForbiddenError: the caller may not open the map.
        InvalidInputError: anything the request asks that cannot be printed, named.
    """
    subsystem.check_open(seen.principal)
    body = parse(document)
    if body.center is not None and body.bbox is not None:
        raise InvalidInputError("give center or bbox, not both")
    zone_lonlat = _zone(body.report.geometry) if body.report and body.report.geometry else None
    box = body.bbox or (zone_lonlat.bounds if zone_lonlat is not None else None)
    if body.bbox is not None:
        _lonlat_box(body.bbox)
    if body.center is not None:
        centre = _lonlat(body.center)
    elif box is not None:
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    else:
        west, south, east, north = subsystem.extent
        centre = ((west + east) / 2, (south + north) / 2)
    crs = _crs(body.crs, centre)
    sheet = layout.sheet(body.paper, body.orientation)
    scale = body.scale
    if scale is None:
        scale = _fitting(box or subsystem.extent, sheet.frame, crs, centre)
    _check_scale(scale, sheet.frame)
    if body.datetime is not None:
        feats.iso_instant(body.datetime, "datetime")
    drawables = _drawables(seen, maps, subsystem, body.layers)
    if body.report is not None:
        _check_report(body.report, subsystem, seen)
    bbox = frame_bbox(centre, crs, sheet.frame.w, sheet.frame.h, scale)
    frame = renderer.Frame(bbox=bbox, crs=crs, width=int(sheet.frame.w),
                           height=int(sheet.frame.h), format="pdf", transparent=True,
                           datetime=body.datetime)  # fmt: skip
    zone = _project(zone_lonlat, crs) if zone_lonlat is not None else None
    return Plan(subsystem, body, sheet, scale, centre, frame, tuple(drawables), zone)


def _lonlat(point: tuple[float, float]) -> tuple[float, float]:
    lon, lat = point
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -85 <= lat <= 85):
        msg = f"center {list(point)} must be lon, lat in degrees (CRS84, latitude within ±85)"
        raise InvalidInputError(msg)
    return float(lon), float(lat)


def _lonlat_box(box: tuple[float, float, float, float]) -> None:
    west, south, east, north = box
    finite = all(math.isfinite(v) for v in box)
    if not (finite and -180 <= west < east <= 180 and -85 <= south < north <= 85):
        msg = f"bbox {list(box)} must be west, south, east, north in degrees (CRS84), west < east"
        raise InvalidInputError(msg)


def default_crs(lon: float) -> int:
    """The CGCS2000 3-degree Gauss-Krüger zone (no zone prefix) whose central meridian is
    nearest ``lon``: EPSG:4546 for 109.5-112.5E; Web Mercator outside China's zones."""
    zone = round(lon / 3)
    return 4534 + zone - 25 if 25 <= zone <= 45 else 3857


def _crs(given: int | str | None, centre: tuple[float, float]) -> int:
    if given is None:
        return default_crs(centre[0])
    text = f"EPSG:{given}" if isinstance(given, int) else given
    srid = feats.serving_crs(text).srid
    if srid not in PRINT_CRS:
        msg = (f"crs {text!r}: a paper map is drawn in metres: a CGCS2000 3-degree "
               "Gauss-Krüger zone (EPSG:4513-4554) or EPSG:3857")  # fmt: skip
        raise InvalidInputError(msg)
    if srid != 3857:
        meridian = _central_meridian(srid)
        if abs(centre[0] - meridian) > 4.5:
            fits = default_crs(centre[0])
            msg = (f"crs EPSG:{srid} has its central meridian at {meridian:g}E, too far from "
                   f"the centre's {centre[0]:g}; EPSG:{fits} fits it")  # fmt: skip
            raise InvalidInputError(msg)
    return srid


def _central_meridian(srid: int) -> float:
    zone = srid - 4513 + 25 if srid < 4534 else srid - 4534 + 25
    return 3.0 * zone


@lru_cache(maxsize=64)
def _to(crs: int) -> Transformer:
    return Transformer.from_crs(CGCS2000, crs, always_xy=True)


def point_scale(crs: int, centre: tuple[float, float]) -> float:
    """The projection's scale factor at ``centre``: CRS metres per metre of ground."""
    factors = Proj(CRS.from_epsg(crs)).get_factors(*centre)
    return float(factors.parallel_scale)


def frame_bbox(centre: tuple[float, float], crs: int, width_pt: float, height_pt: float,
               scale: float) -> tuple[float, float, float, float]:  # fmt: skip
    """The bbox (in ``crs``) a frame of ``width_pt`` x ``height_pt`` points shows at
    1:``scale`` around ``centre``."""
    x, y = _to(crs).transform(*centre)
    k = point_scale(crs, centre)
    half_w = width_pt * layout.POINT_M * scale * k / 2
    half_h = height_pt * layout.POINT_M * scale * k / 2
    return (x - half_w, y - half_h, x + half_w, y + half_h)


def _fitting(box: Sequence[float], frame: layout.Rect, crs: int, centre: tuple[float, float]
             ) -> float:  # fmt: skip
    """The round scale at which ``box`` (CRS84) fits the frame."""
    west, south, east, north = box
    xs, ys = _to(crs).transform([west, east, west, east], [south, south, north, north])
    k = point_scale(crs, centre)
    need = max((max(xs) - min(xs)) / frame.w, (max(ys) - min(ys)) / frame.h) / k / layout.POINT_M
    if need <= 0:  # a point: nothing to fit
        return DEFAULT_SCALE
    need = max(need * 1.05, MIN_SCALE)
    power = 10 ** math.floor(math.log10(need))
    return float(next(lead * power for lead in (*SCALES, 10.0) if lead * power >= need))


def _check_scale(scale: float, frame: layout.Rect) -> None:
    if not (math.isfinite(scale) and MIN_SCALE <= scale <= MAX_SCALE):
        msg = f"scale 1:{scale:g} is out of range: from 1:{MIN_SCALE:,} to 1:{MAX_SCALE:,}"
        raise InvalidInputError(msg)
    ground = max(frame.w, frame.h) * layout.POINT_M * scale
    if ground > MAX_GROUND_M:
        msg = (f"at 1:{scale:,.0f} the frame covers {ground / 1000:.1f} km of ground; at most "
               f"{MAX_GROUND_M / 1000:g} km: choose a larger scale (a smaller number) "
               "or smaller paper")  # fmt: skip
        raise InvalidInputError(msg)


def _readable_layers(seen: View, maps: Subsystems, subsystem: Subsystem) -> list[MapLayer]:
    """The map's layers the caller may read (those the renderer resolves for them)."""
    out = []
    for layer in subsystem.layers:
        try:
            renderer.resolve(seen, maps, f"{subsystem.id}:{layer.id}")
        except NotFoundError:
            continue
        out.append(layer)
    return out


def _drawables(
    seen: View, maps: Subsystems, subsystem: Subsystem, wanted: Sequence[str] | None
) -> list[renderer.Drawable]:
    """The drawables of the layers asked for (the map's visible ones when None), bottom
    first in the map's order. A layer the caller may not read is as unknown as a layer the
    map does not have."""
    if wanted is None:
        return list(renderer.resolve(seen, maps, subsystem.id))
    readable = _readable_layers(seen, maps, subsystem)
    ids = {layer.id for layer in readable}
    unknown = [name for name in wanted if name not in ids]
    if unknown:
        msg = (f"layers {unknown} are not layers of map {subsystem.id!r} you may read; "
               f"its layers: {', '.join(layer.id for layer in readable) or 'none'}")  # fmt: skip
        raise InvalidInputError(msg)
    out: list[renderer.Drawable] = []
    for layer in readable:
        if layer.id in wanted:
            out += renderer.resolve(seen, maps, f"{subsystem.id}:{layer.id}")
    return out


def _zone(geometry: Mapping[str, Any]) -> Any:
    try:
        shape = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.GEOSException) as exc:
        msg = f"report.geometry is not a GeoJSON geometry: {exc}"
        raise InvalidInputError(msg) from None
    if shape.is_empty or not shape.is_valid:
        reason = "it is empty" if shape.is_empty else shapely.is_valid_reason(shape)
        msg = f"report.geometry is not a valid geometry: {reason}"
        raise InvalidInputError(msg)
    west, south, east, north = shape.bounds
    if west < -180 or east > 180 or south < -85 or north > 85:
        raise InvalidInputError("report.geometry must be in lon/lat degrees (CRS84)")
    if shapely.get_num_coordinates(shape) > 100_000:
        raise InvalidInputError("report.geometry has more than 100,000 vertices")
    return shape


def _project(shape: Any, crs: int) -> Any:
    transformer = _to(crs)
    return shapely.transform(shape, lambda xy: list(zip(*transformer.transform(*xy.T),
                                                         strict=True)))  # fmt: skip


def _check_report(report: Report, subsystem: Subsystem, seen: View) -> None:
    readable = seen.catalog.collections.keys()
    offered = sorted({p.id for p in subsystem.processes if p.collections <= readable})
    if report.process not in offered:
        msg = (f"report.process {report.process!r} is not a process map {subsystem.id!r} "
               f"offers you; it offers: {', '.join(offered) or 'none'}")  # fmt: skip
        raise InvalidInputError(msg)
    if len(set(report.columns)) != len(report.columns):
        raise InvalidInputError("report.columns names a column twice")
    for n, row in enumerate(report.rows):
        extra = sorted(set(row) - set(report.columns))
        if extra:
            msg = f"report.rows[{n}] has values of columns not in report.columns: {extra[:5]}"
            raise InvalidInputError(msg)


# -- reading what the page shows -------------------------------------------------------------


_DEPARTMENTS = "SELECT id, name, name_en FROM platform.departments WHERE id = ANY(%(ids)s)"


async def departments(conn: Any, seen: View, subsystem: Subsystem,
                      drawables: Sequence[renderer.Drawable]) -> list[str]:  # fmt: skip
    """The map's departments, Chinese and English names: those its access names, the one
    it is named after, and the owners of the collections shown."""
    readable = seen.catalog.collections
    owners = [readable[d.collection].owner_department for d in drawables
              if d.collection in readable]  # fmt: skip
    ids = list(dict.fromkeys([*subsystem.access.departments, subsystem.id, *owners]))
    cur = await conn.execute(_DEPARTMENTS, {"ids": [i for i in ids if i]})
    names = {row[0]: " ".join(v for v in row[1:] if v) for row in await cur.fetchall()}
    return [names[i] for i in ids if i in names]


@dataclass(frozen=True)
class Features:
    """Selected features read through the caller's rows: a table and the geometries."""

    table: layout.TableBlock
    geometries: tuple[Any, ...]


async def selected_features(conn: Any, seen: View, maps: Subsystems, subsystem: Subsystem, *,
                            chosen: Selected, crs: int) -> Features:  # fmt: skip
    """The selected features' attributes (the layer's popup attributes) and geometries in
    ``crs``, read as the caller may read them.

    Raises:
        InvalidInputError: a collection that is not on the map or that the caller may not
            read (the same answer); ids that are not among the caller's rows.
    """
    vectors = [layer for layer in _readable_layers(seen, maps, subsystem) if layer.kind != "raster"]
    on_map = [layer for layer in vectors if layer.collection == chosen.collection]
    if not on_map:
        collections = sorted({layer.collection for layer in vectors})
        msg = (f"selected.collection {chosen.collection!r} is not a collection of map "
               f"{subsystem.id!r} you may read; its collections: "
               f"{', '.join(collections)}")  # fmt: skip
        raise InvalidInputError(msg)
    try:
        collection = seen.features(chosen.collection)
    except NotFoundError:
        msg = f"selected.collection {chosen.collection!r} has no features to select"
        raise InvalidInputError(msg) from None
    layer = on_map[0]
    columns = tuple(p for p in layer.popup if p in collection.fields) or tuple(
        collection.fields)[:12]  # fmt: skip
    ids = sorted(set(chosen.ids))
    query = feats.ItemsQuery(
        limit=len(ids), properties=columns, crs=feats.serving_crs(f"EPSG:{crs}"),
        where=sql.SQL("t.fid = ANY({})").format(sql.Placeholder("ids")), params={"ids": ids},
    )  # fmt: skip
    statement, params = feats.rows_statement(collection.layer, query)
    cur = await conn.execute(statement, params)
    rows = await cur.fetchall()
    missing = sorted(set(ids) - {int(r[0]) for r in rows})
    if missing:
        msg = (f"selected.ids {missing[:20]} are not features of {chosen.collection!r} "
               "you may read")  # fmt: skip
        raise InvalidInputError(msg)
    names = ("id", *columns)
    values = [row[:-1] for row in rows]
    numeric = frozenset(
        n for n in range(len(names))
        if all(isinstance(v[n], int | float) for v in values if v[n] is not None)
    )  # fmt: skip
    table = layout.TableBlock(
        caption=f"所选要素 Selected features: {layer.title} ({len(rows)})",
        columns=names,
        rows=tuple(
            tuple(cell(c, v) for c, v in zip(names, value, strict=True)) for value in values
        ),
        numeric=numeric,
    )
    geometries = tuple(shapely.from_wkb(r[-1]) for r in rows if r[-1] is not None)
    return Features(table, geometries)


def cell(column: str, value: Any) -> str:
    """A table cell's text: numbers with thousands separators, areas in m² and hectares."""
    if value is None:
        text = "—"
    elif isinstance(value, bool):
        text = "是 yes" if value else "否 no"
    elif isinstance(value, int | float) and _AREA.search(column):
        text = f"{value:,.1f} m² ({value / 1e4:,.4f} ha)"
    elif isinstance(value, int | float) and float(value).is_integer():
        text = str(int(value)) if column == "id" else f"{int(value):,}"
    elif isinstance(value, float):
        text = f"{value:,.4f}".rstrip("0").rstrip(".")
    elif isinstance(value, dt.date | dt.datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return text


def report_table(report: Report, subsystem: Subsystem) -> layout.TableBlock:
    """The report's rows as the page showed them, with totals of counts and areas."""
    offer = next((p for p in subsystem.processes if p.id == report.process), None)
    process = PROCESSES[report.process]
    shown = {k: v for k, v in report.inputs.items()
             if not (offer and k == offer.geometry_input)}  # fmt: skip
    inputs = "; ".join(f"{k} = {_short(v)}" for k, v in shown.items()) or "—"
    notes = [f"过程 Process: {offer.title if offer else process.title} ({report.process})",
             f"输入 Inputs: {inputs}"]  # fmt: skip
    if report.geometry is not None:
        area = abs(Geod(ellps="GRS80").geometry_area_perimeter(_zone(report.geometry))[0])
        if area > 0:
            notes.append(f"范围 Zone: 所画范围 the drawn area, {area:,.1f} m² "
                         f"({area / 1e4:,.4f} ha)")  # fmt: skip
    columns = report.columns
    rows = tuple(tuple(cell(c, row.get(c)) for c in columns) for row in report.rows)
    summed = [c for c in columns if (c == "count" or _AREA.search(c))
              and any(isinstance(r.get(c), int | float) for r in report.rows)]  # fmt: skip
    totals = None
    if summed and len(report.rows) > 1:
        totals = tuple(
            cell(c, sum(v for r in report.rows if isinstance(v := r.get(c), int | float)))
            if c in summed else ("合计 Total" if n == 0 else "")
            for n, c in enumerate(columns)
        )  # fmt: skip
    numeric = frozenset(n for n, c in enumerate(columns)
                        if any(isinstance(r.get(c), int | float) for r in report.rows))  # fmt: skip
    return layout.TableBlock(caption=report.title, columns=tuple(columns), rows=rows,
                             notes=tuple(notes), totals=totals, numeric=numeric)  # fmt: skip


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else f"{text[:79]}…"


# -- the document ----------------------------------------------------------------------------


def legend(drawables: Sequence[renderer.Drawable]) -> tuple[layout.LegendBlock, ...]:
    """The legend entries of the layers drawn, top layer first (the web page's order)."""
    blocks: list[layout.LegendBlock] = []
    seen: set[str] = set()
    for drawable in reversed(drawables):
        layer = drawable.layer
        if layer is None or not layer.legend or layer.id in seen:
            continue
        seen.add(layer.id)
        entries = tuple((e.label, e.color, e.symbol) for e in layer.legend)
        blocks.append(layout.LegendBlock(layer.title, entries))
    return tuple(blocks)


async def make(conn: Any, seen: View, store: Any, maps: Subsystems, subsystem: Subsystem, *,
               document: Any) -> bytes:  # fmt: skip
    """The printed map (and report) as PDF bytes.

    Raises:
        UnauthorizedError, ForbiddenError: the caller may not open the map.
        InvalidInputError: a request that cannot be printed, with the reason.
    """
    printed = plan(document, subsystem, seen, maps)
    body = printed.body
    crs = printed.frame.crs
    names = await departments(conn, seen, subsystem, printed.drawables)
    tables: list[layout.TableBlock] = []
    highlights: tuple[Any, ...] = ()
    if body.report is not None:
        tables.append(report_table(body.report, subsystem))
    if body.selected is not None:
        chosen = await selected_features(conn, seen, maps, subsystem, chosen=body.selected, crs=crs)
        tables.append(chosen.table)
        highlights = chosen.geometries
    drawn = await renderer.render(conn, seen, store, printed.drawables, printed.frame)
    now = dt.datetime.now(CHINA)
    title = body.title or (body.report.title if body.report else subsystem.title)
    imagery = any(d.kind == "raster" for d in printed.drawables) and body.datetime
    subtitle = " · ".join(filter(None, [
        f"部门 Department: {'、'.join(names) or '—'}",
        f"日期 Date: {now:%Y-%m-%d}",
        f"比例尺 Scale 1:{printed.scale:,.0f}",
        f"影像日期 Imagery as of {body.datetime}" if imagery else None,
    ]))  # fmt: skip
    who = seen.principal
    frame = printed.sheet.frame
    content = layout.Sheetful(
        title=title, subtitle=subtitle,
        footer_left=f"3S 空间平台 3S spatial platform · {subsystem.title} · /maps/{subsystem.id}",
        footer_right=(f"打印 Printed {now:%Y-%m-%d %H:%M} UTC+8 · "
                      f"{'匿名 anonymous' if who.anonymous else who.username}"),
        scale=printed.scale, crs=crs, crs_name=CRS.from_epsg(crs).name,
        bbox=printed.frame.bbox, legend=legend(printed.drawables), highlights=highlights,
        zone=printed.zone, tables=tuple(tables),
        info={"Title": title, "Subject": f"map {subsystem.id} at 1:{printed.scale:.0f}",
              "SpatialCRS": f"EPSG:{crs}",
              "SpatialBBox": ",".join(f"{v:.3f}" for v in printed.frame.bbox),
              "SpatialFrame": ",".join(f"{v:.3f}" for v in (frame.x, frame.y, frame.w, frame.h)),
              "SpatialScale": f"{printed.scale:.0f}"},
    )  # fmt: skip
    return await asyncio.to_thread(layout.compose, printed.sheet, content, printed.centre, drawn)
