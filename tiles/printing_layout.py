"""The printed page of :mod:`tiles.printing`: a layout drawn with ReportLab, the map frame
from the renderer placed into it with pypdf.

Page 1 is the map sheet: the title, the map's departments, the date and the scale over the
map frame; the CGCS2000 graticule (EPSG:4490 meridians and parallels projected into the
frame's CRS, labelled in degrees and minutes at the frame's edge), the highlighted features
and the drawn zone over the map; beside it (landscape) or under it (portrait) the north
arrow (pointing at true north: Gauss-Krüger grid north differs by the meridian convergence),
the scale bar, the legend and the frame's coordinates. Tables (the selected features'
attributes, a process's result) follow on further pages, split across as many as they need
(ReportLab's platypus).

The map frame is the renderer's vector PDF page (Mapnik over Cairo), made a Form XObject
(``/Map``) of page 1 and drawn first, so everything the layout draws lies over it and the
form's bounding box clips what Cairo drew beyond the frame. It stays vector: paths and
fills, with images only where a layer is imagery. Chinese text is set in WenQuanYi Micro
Hei (Debian's ``fonts-wqy-microhei``), embedded as a subset with its Unicode map, so the
text can be searched and copied.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

import numpy as np
import shapely
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    TextStringObject,
)
from pyproj import Transformer
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus import Frame as TextFrame

from spatial.crs import CGCS2000

FONT_FILE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
"""The Chinese font (Debian's fonts-wqy-microhei, installed by scripts/sysdeps.sh)."""
FONT = "WenQuanYiMicroHei"
PAPERS = {"A4": (595.2756, 841.8898), "A3": (841.8898, 1190.5512)}
"""Portrait width and height of each paper, in points (ISO 216)."""
POINT_M = 0.0254 / 72
"""Metres of paper per point."""
MARGIN = 28.35  # 10 mm
LABELS = 14.0  # the band around the frame that holds the graticule's labels
HEADER = 44.0
FOOTER = 12.0
GAP = 10.0
MAP_FORM = "/Map"
"""The name of the map frame's Form XObject on page 1."""
GRATICULE_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200,
                   10800, 18000, 36000)  # fmt: skip
"""Graticule intervals offered, in arc-seconds."""
HIGHLIGHT = colors.HexColor("#f08c00")
ZONE = colors.HexColor("#1971c2")
INK = colors.HexColor("#212529")
GRID = colors.HexColor("#495057")


@dataclass(frozen=True)
class Rect:
    """A rectangle on the page, in points from the lower left corner."""

    x: float
    y: float
    w: float
    h: float

    @property
    def top(self) -> float:
        return self.y + self.h

    @property
    def right(self) -> float:
        return self.x + self.w


@dataclass(frozen=True)
class Sheet:
    """Where things go on the map sheet (page 1)."""

    width: float
    height: float
    frame: Rect
    panel: Rect
    landscape: bool


def sheet(paper: str, orientation: str) -> Sheet:
    """The layout of a paper (``A4``, ``A3``) in an orientation (``portrait``,
    ``landscape``): landscape puts the legend panel right of the frame, portrait under it."""
    short, long = PAPERS[paper]
    small = paper == "A4"
    if orientation == "landscape":
        width, height = long, short
        side = 170.0 if small else 200.0
        frame = Rect(MARGIN + LABELS, MARGIN + FOOTER + LABELS, 0, 0)
        right = width - MARGIN - side - GAP - LABELS
        top = height - MARGIN - HEADER - LABELS
        frame = Rect(frame.x, frame.y, math.floor(right - frame.x), math.floor(top - frame.y))
        panel = Rect(width - MARGIN - side, MARGIN + FOOTER, side, top + LABELS - MARGIN - FOOTER)
        return Sheet(width, height, frame, panel, landscape=True)
    width, height = short, long
    below = 190.0 if small else 250.0
    panel = Rect(MARGIN, MARGIN + FOOTER, width - 2 * MARGIN, below)
    bottom = panel.top + GAP + LABELS
    top = height - MARGIN - HEADER - LABELS
    frame = Rect(
        MARGIN + LABELS, bottom, math.floor(width - 2 * (MARGIN + LABELS)), math.floor(top - bottom)
    )
    return Sheet(width, height, frame, panel, landscape=False)


@dataclass(frozen=True)
class LegendBlock:
    """A layer's legend: its title and (label, colour, symbol) entries."""

    title: str
    entries: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class TableBlock:
    """A table for the pages after the map: a caption, notes, columns and rows of text;
    ``totals`` a last row set apart (None: no totals)."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    totals: tuple[str, ...] | None = None
    numeric: frozenset[int] = frozenset()
    """The columns right-aligned (numbers)."""


@dataclass(frozen=True)
class Sheetful:
    """Everything page 1 shows besides the map itself."""

    title: str
    subtitle: str
    """Departments, date, scale (one line under the title)."""
    footer_left: str
    footer_right: str
    scale: float
    crs: int
    crs_name: str
    bbox: tuple[float, float, float, float]
    """The frame's bbox in ``crs`` (x = easting)."""
    legend: tuple[LegendBlock, ...]
    highlights: tuple[Any, ...] = ()
    """Shapely geometries in ``crs`` drawn over the map as the selection."""
    zone: Any | None = None
    """A shapely geometry in ``crs``: the drawn zone of a report."""
    tables: tuple[TableBlock, ...] = ()
    info: dict[str, str] = field(default_factory=dict)
    """Entries of the document information dictionary (``/Title``...)."""


# -- fonts and text --------------------------------------------------------------------------


@cache
def font() -> str:
    """The Chinese font's name, registered with ReportLab on first use."""
    pdfmetrics.registerFont(TTFont(FONT, str(FONT_FILE), subfontIndex=0))
    return FONT


def _text(c: Canvas, x: float, y: float, text: str, size: float, *, align: str = "left",
          colour: Any = INK) -> None:  # fmt: skip
    c.setFont(font(), size)
    c.setFillColor(colour)
    if align == "right":
        c.drawRightString(x, y, text)
    elif align == "centre":
        c.drawCentredString(x, y, text)
    else:
        c.drawString(x, y, text)


def _fit(text: str, size: float, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` at ``size``."""
    if pdfmetrics.stringWidth(text, font(), size) <= width:
        return text
    while text and pdfmetrics.stringWidth(f"{text}…", font(), size) > width:
        text = text[:-1]
    return f"{text}…"


def dms(value: float, positive: str, negative: str, seconds: bool) -> str:
    """Degrees and minutes (and seconds when ``seconds``) of an angle: ``112°00′30″E``."""
    hemisphere = positive if value >= 0 else negative
    total = round(abs(value) * 3600)
    degrees, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{degrees}°{minutes:02d}′"
    if seconds:
        text += f"{secs:02d}″"
    return text + hemisphere


# -- the map sheet ---------------------------------------------------------------------------


class _Place:
    """Frame CRS coordinates to page points."""

    def __init__(self, frame: Rect, bbox: tuple[float, float, float, float]) -> None:
        self.frame = frame
        self.minx, self.miny, maxx, maxy = bbox
        self.sx = frame.w / (maxx - self.minx)
        self.sy = frame.h / (maxy - self.miny)

    def __call__(self, x: Any, y: Any) -> tuple[Any, Any]:
        return (self.frame.x + (x - self.minx) * self.sx, self.frame.y + (y - self.miny) * self.sy)


def _clip(c: Canvas, frame: Rect) -> None:
    path = c.beginPath()
    path.rect(frame.x, frame.y, frame.w, frame.h)
    c.clipPath(path, stroke=0, fill=0)


def _shape_path(c: Canvas, geometry: Any, place: _Place) -> tuple[Any, bool, bool]:
    """A ReportLab path of a shapely geometry (polygons, lines; points as small circles):
    the path, whether it has areas, whether it has points only."""
    path = c.beginPath()
    areas = False
    for part in shapely.get_parts(geometry):
        if isinstance(part, shapely.Polygon):
            areas = True
            for ring in (part.exterior, *part.interiors):
                xs, ys = place(*np.asarray(ring.coords)[:, :2].T)
                path.moveTo(xs[0], ys[0])
                for x, y in zip(xs[1:], ys[1:], strict=True):
                    path.lineTo(x, y)
                path.close()
        elif isinstance(part, shapely.LineString):
            xs, ys = place(*np.asarray(part.coords)[:, :2].T)
            path.moveTo(xs[0], ys[0])
            for x, y in zip(xs[1:], ys[1:], strict=True):
                path.lineTo(x, y)
        elif isinstance(part, shapely.Point):
            x, y = place(part.x, part.y)
            path.circle(x, y, 3.5)
            areas = True
    return path, areas, False


def _overlay(
    c: Canvas, geometries: Sequence[Any], place: _Place, colour: Any, *,
    dash: Sequence[float] = (), alpha: float = 0.25, width: float = 1.8,
) -> None:  # fmt: skip
    for geometry in geometries:
        if geometry is None or geometry.is_empty:
            continue
        path, areas, _ = _shape_path(c, geometry, place)
        c.setStrokeColor(colour)
        c.setLineWidth(width)
        c.setDash(list(dash) or [])
        c.setFillColor(colour, alpha=alpha)
        c.drawPath(path, stroke=1, fill=1 if areas else 0, fillMode=0)
    c.setDash([])


def graticule_step(lon_range: float, lat_range: float, most: int = 6) -> int:
    """The graticule interval (arc-seconds) that puts at most ``most`` lines across the
    longer side, and at least two where the steps allow."""
    span = max(lon_range, lat_range) * 3600
    for step in GRATICULE_STEPS:
        if span / step <= most:
            return step
    return GRATICULE_STEPS[-1]


def _crossing(xs: Any, ys: Any, along: Any, at: float) -> float | None:
    """Where a polyline (page points) crosses ``along == at``: the other coordinate."""
    for i in range(len(along) - 1):
        a, b = along[i], along[i + 1]
        if (a - at) * (b - at) <= 0 and a != b:
            t = (at - a) / (b - a)
            return float(xs[i] + t * (xs[i + 1] - xs[i])) if along is ys else float(
                ys[i] + t * (ys[i + 1] - ys[i]))  # fmt: skip
    return None


def _graticule(c: Canvas, content: Sheetful, frame: Rect, place: _Place) -> str:
    """Draw the CGCS2000 meridians and parallels across the frame, labelled at its edges;
    the interval, described."""
    to_lonlat = Transformer.from_crs(content.crs, CGCS2000, always_xy=True)
    minx, miny, maxx, maxy = content.bbox
    edge = np.linspace(0, 1, 33)
    ring_x = np.concatenate([minx + edge * (maxx - minx), np.full(33, maxx),
                             maxx - edge * (maxx - minx), np.full(33, minx)])  # fmt: skip
    ring_y = np.concatenate([np.full(33, miny), miny + edge * (maxy - miny), np.full(33, maxy),
                             maxy - edge * (maxy - miny)])  # fmt: skip
    lons, lats = to_lonlat.transform(ring_x, ring_y)
    west, east, south, north = lons.min(), lons.max(), lats.min(), lats.max()
    step = graticule_step(east - west, north - south)
    seconds = step % 60 != 0
    to_frame = Transformer.from_crs(CGCS2000, content.crs, always_xy=True)
    c.saveState()
    c.setStrokeColor(GRID)
    c.setLineWidth(0.35)
    c.setDash([3, 2])
    labels: list[tuple[float, float, str, str]] = []
    sample = np.linspace(-0.1, 1.1, 49)
    for k in range(math.ceil(west * 3600 / step), math.floor(east * 3600 / step) + 1):
        lon = k * step / 3600
        line_lats = south + sample * (north - south)
        xs, ys = place(*to_frame.transform(np.full(line_lats.size, lon), line_lats))
        label = dms(lon, "E", "W", seconds)
        for at, where in ((frame.y, "bottom"), (frame.top, "top")):
            x = _crossing(xs, ys, ys, at)
            if x is not None and frame.x + 12 < x < frame.right - 12:
                labels.append((x, at, label, where))
        _polyline(c, xs, ys, frame)
    for k in range(math.ceil(south * 3600 / step), math.floor(north * 3600 / step) + 1):
        lat = k * step / 3600
        line_lons = west + sample * (east - west)
        xs, ys = place(*to_frame.transform(line_lons, np.full(line_lons.size, lat)))
        label = dms(lat, "N", "S", seconds)
        for at, where in ((frame.x, "left"), (frame.right, "right")):
            y = _crossing(xs, ys, xs, at)
            if y is not None and frame.y + 12 < y < frame.top - 12:
                labels.append((at, y, label, where))
        _polyline(c, xs, ys, frame)
    c.restoreState()
    for x, y, label, where in labels:
        _edge_label(c, x, y, label, where)
    unit = f"{step // 60}′" if not seconds else f"{step}″"
    if step >= 3600 and step % 3600 == 0:
        unit = f"{step // 3600}°"
    return unit


def _polyline(c: Canvas, xs: Any, ys: Any, frame: Rect) -> None:
    c.saveState()
    _clip(c, frame)
    path = c.beginPath()
    path.moveTo(xs[0], ys[0])
    for x, y in zip(xs[1:], ys[1:], strict=True):
        path.lineTo(x, y)
    c.drawPath(path, stroke=1, fill=0)
    c.restoreState()


def _edge_label(c: Canvas, x: float, y: float, label: str, where: str) -> None:
    size = 6.5
    c.setStrokeColor(INK)
    c.setLineWidth(0.6)
    if where in {"bottom", "top"}:
        sign = -1 if where == "bottom" else 1
        c.line(x, y, x, y + sign * 3)
        _text(c, x, y + (sign * 5 if sign > 0 else -10), label, size, align="centre")
        return
    sign = -1 if where == "left" else 1
    c.line(x, y, x + sign * 3, y)
    c.saveState()
    c.translate(x + sign * 5 + (0 if sign > 0 else -1), y)
    c.rotate(90)
    _text(c, 0, -size if sign > 0 else 1.5, label, size, align="centre")
    c.restoreState()


def _north(c: Canvas, x: float, y: float, crs: int, centre: tuple[float, float]) -> None:
    """A north arrow at (x, y) (its foot), turned to true north at the frame's centre."""
    to_frame = Transformer.from_crs(CGCS2000, crs, always_xy=True)
    lon, lat = centre
    (x0, x1), (y0, y1) = to_frame.transform([lon, lon], [lat, lat + 0.01])
    angle = math.degrees(math.atan2(x1 - x0, y1 - y0))  # clockwise from grid north
    c.saveState()
    c.translate(x, y)
    c.rotate(-angle)
    c.setStrokeColor(INK)
    c.setLineWidth(0.6)
    left = c.beginPath()
    left.moveTo(0, 30)
    left.lineTo(-8, 0)
    left.lineTo(0, 7)
    left.close()
    right = c.beginPath()
    right.moveTo(0, 30)
    right.lineTo(8, 0)
    right.lineTo(0, 7)
    right.close()
    c.setFillColor(INK)
    c.drawPath(left, stroke=1, fill=1)
    c.setFillColor(colors.white)
    c.drawPath(right, stroke=1, fill=1)
    _text(c, 0, 33, "N", 10, align="centre")
    c.restoreState()
    side = "E" if angle > 0 else "W"  # true north to the right (east) of grid north, or left
    _text(c, x - 14, y - 10, f"真北 True north, {abs(angle):.2f}° {side} of grid north", 5.5)


def scale_bar_metres(scale: float, most_pt: float) -> float:
    """The longest round ground length (1, 2 or 5 x 10^n m) whose bar fits ``most_pt``."""
    longest = most_pt * POINT_M * scale
    power = 10 ** math.floor(math.log10(longest))
    for lead in (5, 2, 1):
        if lead * power <= longest:
            return float(lead * power)
    return float(power)


def _length(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def _scale_bar(c: Canvas, x: float, y: float, scale: float, most_pt: float) -> None:
    metres = scale_bar_metres(scale, most_pt)
    length = metres / scale / POINT_M
    part = length / 4
    c.setLineWidth(0.5)
    c.setStrokeColor(INK)
    for n in range(4):
        c.setFillColor(INK if n % 2 == 0 else colors.white)
        c.rect(x + n * part, y, part, 4, stroke=1, fill=1)
    for at, value in ((0, 0.0), (2 * part, metres / 2), (length, metres)):
        _text(c, x + at, y + 6, "0" if value == 0 else _length(value), 6, align="centre")


def _legend(c: Canvas, area: Rect, blocks: Sequence[LegendBlock], columns: int) -> None:
    """The legend blocks flowed down ``columns`` columns of ``area``; what does not fit ends
    in an ellipsis."""
    _text(c, area.x, area.top - 10, "图例 Legend", 9)
    width = area.w / columns
    column, top = 0, area.top - 16

    def lines() -> Iterator[tuple[str, str, tuple[str, str, str] | None]]:
        for block in blocks:
            yield "title", block.title, None
            for entry in block.entries:
                yield "entry", entry[0], entry

    y = top
    for kind, text, entry in lines():
        size = 7.0 if kind == "title" else 6.5
        indent = 0.0 if kind == "title" else 20.0
        wrapped = simpleSplit(text, font(), size, width - indent - 6) or [""]
        needed = len(wrapped) * (size + 1.5) + (3 if kind == "title" else 2)
        if y - needed < area.y:
            column += 1
            y = top
            if column >= columns:
                _text(c, area.right - 4, area.y + 2, "…", 8, align="right")
                return
        x = area.x + column * width
        if entry is not None:
            _swatch(c, x, y - size - 0.5, entry[1], entry[2])
        for n, line in enumerate(wrapped):
            _text(c, x + indent, y - size - n * (size + 1.5), line, size,
                  colour=INK if kind == "entry" else GRID)  # fmt: skip
        y -= needed


def _swatch(c: Canvas, x: float, y: float, colour: str, symbol: str) -> None:
    fill = _colour(colour)
    c.setLineWidth(0.5)
    if symbol == "line":
        c.setStrokeColor(fill)
        c.setLineWidth(1.6)
        c.line(x, y + 3.5, x + 15, y + 3.5)
        return
    c.setFillColor(fill)
    c.setStrokeColor(GRID)
    if symbol == "circle":
        c.circle(x + 7.5, y + 3.5, 3.5, stroke=1, fill=1)
    else:
        c.rect(x, y, 15, 8, stroke=1, fill=1)


def _colour(text: str) -> Any:
    """A legend colour (``#rgb``, ``#rrggbb[aa]``, ``rgb()``/``rgba()``) for ReportLab."""
    value = text.strip()
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) in {3, 4}:
            digits = "".join(ch * 2 for ch in digits)
        return colors.HexColor(f"#{digits[:6]}")
    inside = value[value.index("(") + 1 : value.rindex(")")]
    parts = [float(v) for v in inside.split(",")]
    return colors.Color(parts[0] / 255, parts[1] / 255, parts[2] / 255)


def _coordinates(c: Canvas, area: Rect, content: Sheetful, centre: tuple[float, float],
                 graticule: str) -> None:  # fmt: skip
    minx, miny, maxx, maxy = content.bbox
    projected = content.crs != 3857
    x_name, y_name = ("X(北)", "Y(东)") if projected else ("N", "E")
    lines = [
        ("坐标系 CRS", 7.0),
        (f"{content.crs_name} (EPSG:{content.crs})", 6.0),
        (f"中心 Centre {dms(centre[0], 'E', 'W', True)} {dms(centre[1], 'N', 'S', True)}", 6.0),
        (f"西南角 SW {x_name} {miny:.1f}  {y_name} {minx:.1f}", 6.0),
        (f"东北角 NE {x_name} {maxy:.1f}  {y_name} {maxx:.1f}", 6.0),
        (f"经纬网 Graticule CGCS2000 (EPSG:4490), {graticule}", 6.0),
    ]
    y = area.top - 8
    for text, size in lines:
        _text(c, area.x, y, _fit(text, size, area.w), size)
        y -= size + 3


def draw_sheet(c: Canvas, layout: Sheet, content: Sheetful, centre: tuple[float, float]) -> None:
    """Page 1 without the map (drawn under it later): header, graticule, highlights, frame
    line, north arrow, scale bar, legend, coordinates and footer."""
    frame = layout.frame
    top = layout.height - MARGIN
    _text(c, MARGIN, top - 17, _fit(content.title, 16, layout.width - 2 * MARGIN), 16)
    _text(c, MARGIN, top - 32, _fit(content.subtitle, 8.5, layout.width - 2 * MARGIN), 8.5)
    c.setStrokeColor(INK)
    c.setLineWidth(0.8)
    c.line(MARGIN, top - HEADER + 6, layout.width - MARGIN, top - HEADER + 6)
    place = _Place(frame, content.bbox)
    c.saveState()
    _clip(c, frame)
    _overlay(c, [content.zone], place, ZONE, dash=(4, 2), alpha=0.08, width=2.0)
    _overlay(c, content.highlights, place, HIGHLIGHT, alpha=0.3, width=2.0)
    c.restoreState()
    graticule = _graticule(c, content, frame, place)
    c.setStrokeColor(INK)
    c.setLineWidth(0.9)
    c.rect(frame.x, frame.y, frame.w, frame.h, stroke=1, fill=0)
    panel = layout.panel
    if layout.landscape:
        info = Rect(panel.x, panel.top - 78, panel.w, 78)
        coords = Rect(panel.x, panel.y, panel.w, 66)
        legend = Rect(panel.x, coords.top + 6, panel.w, info.y - coords.top - 12)
        columns = 1
    else:
        side = 190.0
        info = Rect(panel.right - side, panel.top - 78, side, 78)
        coords = Rect(info.x, panel.y, side, info.y - panel.y - 6)
        legend = Rect(panel.x, panel.y, panel.w - side - GAP, panel.h)
        columns = max(1, int(legend.w // 150))
    _north(c, info.x + 16, info.top - 42, content.crs, centre)
    _text(c, info.x + 40, info.top - 14, f"比例尺 Scale 1:{content.scale:,.0f}", 9)
    _scale_bar(c, info.x + 44, info.top - 44, content.scale, info.w - 60)
    _legend(c, legend, content.legend, columns)
    _coordinates(c, coords, content, centre, graticule)
    _text(c, MARGIN, MARGIN, _fit(content.footer_left, 6.5, layout.width / 2 - MARGIN), 6.5,
          colour=GRID)  # fmt: skip
    _text(c, layout.width - MARGIN, MARGIN, content.footer_right, 6.5, align="right",
          colour=GRID)  # fmt: skip


# -- the table pages -------------------------------------------------------------------------


def _table_flowables(block: TableBlock, width: float) -> list[Flowable]:
    head = ParagraphStyle("head", fontName=font(), fontSize=11, leading=14, spaceAfter=4)
    note = ParagraphStyle("note", fontName=font(), fontSize=7.5, leading=10, wordWrap="CJK")
    cell = ParagraphStyle("cell", fontName=font(), fontSize=7, leading=8.6, wordWrap="CJK")
    right = ParagraphStyle("right", parent=cell, alignment=2)
    out: list[Flowable] = [Paragraph(_escape(block.caption), head)]
    out += [Paragraph(_escape(n), note) for n in block.notes]
    out.append(Spacer(1, 4))

    def row(values: Sequence[str]) -> list[Paragraph]:
        return [Paragraph(_escape(v), right if n in block.numeric else cell)
                for n, v in enumerate(values)]  # fmt: skip

    data = [row(block.columns), *(row(r) for r in block.rows)]
    if block.totals is not None:
        data.append(row(block.totals))
    widths = _widths(block, width)
    table = Table(data, colWidths=widths, repeatRows=1)
    style = [
        ("GRID", (0, 0), (-1, -1), 0.3, GRID),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e9ecef")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    if block.totals is not None:
        style.append(("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#f1f3f5")))
        style.append(("LINEABOVE", (0, -1), (-1, -1), 0.9, INK))
    table.setStyle(TableStyle(style))
    out += [table, Spacer(1, 14)]
    return out


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _widths(block: TableBlock, width: float) -> list[float]:
    """Column widths in proportion to their longest text (each 4-40 % of the width)."""
    longest = [
        max(pdfmetrics.stringWidth(v, font(), 7) for v in column)
        for column in zip(block.columns, *block.rows[:200], strict=False)
    ]  # fmt: skip
    bounded = [min(max(w + 6, width * 0.04), width * 0.4) for w in longest]
    total = sum(bounded)
    return [w * width / total for w in bounded]


def compose(layout: Sheet, content: Sheetful, centre: tuple[float, float], map_pdf: bytes) -> bytes:
    """The printed document: page 1 the map sheet with the map frame in it, then the
    tables' pages."""
    buffer = io.BytesIO()
    body = Rect(MARGIN, MARGIN + FOOTER, layout.width - 2 * MARGIN,
                layout.height - 2 * MARGIN - FOOTER - 24)  # fmt: skip

    def first(c: Canvas, _doc: Any) -> None:
        draw_sheet(c, layout, content, centre)

    def later(c: Canvas, doc: Any) -> None:
        top = layout.height - MARGIN
        _text(c, MARGIN, top - 12, _fit(content.title, 11, layout.width * 0.7), 11)
        _text(c, layout.width - MARGIN, top - 12, f"第 {doc.page} 页 Page {doc.page}", 8,
              align="right")  # fmt: skip
        _text(c, MARGIN, MARGIN, content.footer_right, 6.5, colour=GRID)

    doc = BaseDocTemplate(buffer, pagesize=(layout.width, layout.height), title=content.title,
                          author="3S", creator="3S spatial platform (tiles.printing)",
                          leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                          bottomMargin=MARGIN)  # fmt: skip
    doc.addPageTemplates([
        PageTemplate("sheet", [TextFrame(0, 0, 100, 40, id="sheet")], onPage=first),
        PageTemplate("rows", [TextFrame(body.x, body.y, body.w, body.h, id="rows")],
                     onPage=later),
    ])  # fmt: skip
    story: list[Flowable] = [Spacer(1, 1)]
    if content.tables:
        story = [NextPageTemplate("rows"), PageBreak()]
        for block in content.tables:
            story += _table_flowables(block, body.w - 12)
    doc.build(story)
    return place_map(buffer.getvalue(), map_pdf, layout.frame, content.info)


def place_map(document: bytes, map_pdf: bytes, frame: Rect, info: dict[str, str]) -> bytes:
    """Put the map frame (a one-page PDF the frame's size) under page 1 of ``document`` as
    the Form XObject ``/Map``, at ``frame``; add ``info`` to the document information."""
    writer = PdfWriter(clone_from=io.BytesIO(document))
    drawn = PdfReader(io.BytesIO(map_pdf)).pages[0]
    box = drawn.mediabox
    form = DecodedStreamObject()
    drawing = drawn.get_contents()  # a ContentStream without entries is falsy: test for None
    form.set_data(drawing.get_data() if drawing is not None else b"")
    used = cast("DictionaryObject", drawn.get("/Resources", DictionaryObject()).get_object())
    form.update({
        NameObject("/Type"): NameObject("/XObject"),
        NameObject("/Subtype"): NameObject("/Form"),
        NameObject("/BBox"): ArrayObject([FloatObject(v) for v in (0, 0, box.width, box.height)]),
        NameObject("/Resources"): used.clone(writer),
    })  # fmt: skip
    if "/Group" in drawn:  # Cairo's transparency group: blending as Cairo meant it
        form[NameObject("/Group")] = cast("DictionaryObject", drawn["/Group"]).clone(writer)
    reference = writer._add_object(form.flate_encode())
    page = writer.pages[0]
    resources = cast("DictionaryObject", page[NameObject("/Resources")].get_object())
    if "/XObject" not in resources:
        resources[NameObject("/XObject")] = DictionaryObject()
    xobjects = cast("DictionaryObject", resources["/XObject"].get_object())
    xobjects[NameObject(MAP_FORM)] = reference
    sx, sy = frame.w / float(box.width), frame.h / float(box.height)
    under = f"q {sx:.6f} 0 0 {sy:.6f} {frame.x:.4f} {frame.y:.4f} cm {MAP_FORM} Do Q\n".encode()
    contents = page.get_contents()
    stream = DecodedStreamObject()
    stream.set_data(under + (contents.get_data() if contents is not None else b""))
    page[NameObject("/Contents")] = writer._add_object(stream.flate_encode())
    writer.add_metadata({f"/{k}": TextStringObject(v) for k, v in info.items()})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
