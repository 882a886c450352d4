"""The legend of map images (:func:`tiles.render.legend`): each layer's title and its
entries, every swatch drawn by Mapnik with the layer's own symbolizers (the rules of
:mod:`layers.styles`, the colour of the entry), the labels in the Chinese font.

The legend is laid out in pixels: a Mapnik map whose coordinates are the image's pixels
(y up), with one GeoJSON layer of swatches (a square, a line or a circle per entry) and
one of labels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from layers import styles
from layers.subsystems import LegendEntry, MapLayer
from tiles.render_mapnik import FONT, mapnik

ROW = 22
"""Pixels per legend row."""
SWATCH = 16
"""The swatch's side, pixels."""
MARGIN = 8
WIDTH_PER_CHAR = 7.5
"""An estimate of a label's width per character (CJK characters count double)."""
_PROJ = "+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0=0 +y_0=0 +k=1 +units=m +no_defs"


def _entries(title: str, layer: MapLayer | None) -> list[LegendEntry]:
    if layer is None:
        return []
    return styles.legend_entries(layer)


def _symbols(layer: MapLayer | None, entry: LegendEntry) -> dict[str, Any]:
    """The look of an entry's swatch: the layer's own first symbol of the entry's kind
    (widths, strokes, radii), in the entry's colour."""
    kind = {"fill": "fill", "line": "line", "circle": "circle"}.get(entry.symbol, "fill")
    found: dict[str, Any] = {}
    if layer is not None and layer.kind != "raster":
        mine = [dict(symbol.values) for group in styles.rules(layer) for rule in group.rules
                for symbol in rule.symbols if symbol.kind == kind]  # fmt: skip
        if mine:  # the largest circle (zoom-dependent radii), else the first
            found = max(mine, key=lambda v: float(v.get("radius", 0)))
    colour, alpha = styles.colour(entry.color)
    return {"kind": kind, "color": colour, "opacity": alpha,
            "width": min(float(found.get("width", 2.0)), 6.0),
            "radius": min(float(found.get("radius", 5.0)), SWATCH / 2 - 1),
            "stroke_color": found.get("stroke_color", "#ffffff"),
            "stroke_width": min(float(found.get("stroke_width", 0.0)), 2.0)}  # fmt: skip


def _text_width(text: str) -> float:
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text) * WIDTH_PER_CHAR


def legend_image(
    layers: Sequence[tuple[str, MapLayer | None]], fmt: str = "png", font: str = ""
) -> bytes:
    """The legend of ``(title, styled layer)`` pairs as a PNG or JPEG."""
    rows: list[tuple[str, LegendEntry | None, MapLayer | None]] = []
    for title, layer in layers:
        rows.append((title, None, layer))
        rows.extend((e.label, e, layer) for e in _entries(title, layer))
    width = int(max([_text_width(label) + SWATCH + 3 * MARGIN for label, _, _ in rows] or [100]))
    height = max(1, len(rows)) * ROW + 2 * MARGIN
    swatches: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for n, (label, entry, layer) in enumerate(rows):
        y = height - MARGIN - (n + 0.5) * ROW
        if entry is None:
            labels.append(_point(MARGIN, y, {"label": label, "heading": 1}))
            continue
        look = _symbols(layer, entry)
        x0, x1 = MARGIN, MARGIN + SWATCH
        geometry: dict[str, Any]
        if look["kind"] == "line":
            geometry = {"type": "LineString", "coordinates": [[x0, y], [x1, y]]}
        elif look["kind"] == "circle":
            geometry = {"type": "Point", "coordinates": [(x0 + x1) / 2, y]}
        else:
            half = SWATCH / 2
            ring = [[x0, y - half], [x1, y - half], [x1, y + half], [x0, y + half], [x0, y - half]]
            geometry = {"type": "Polygon", "coordinates": [ring]}
        swatches.append({"type": "Feature", "geometry": geometry, "properties": look})
        labels.append(_point(x1 + MARGIN, y, {"label": label, "heading": 0}))
    made = mapnik.Map(width, height)
    mapnik.load_map_from_string(made, _xml(font))
    made.background = mapnik.Color(255, 255, 255, 255)
    for layer_, features in zip(made.layers, (swatches, labels), strict=True):
        if features:
            text = json.dumps({"type": "FeatureCollection", "features": features})
            layer_.datasource = mapnik.Datasource(type="geojson", inline=text)
        else:
            layer_.datasource = mapnik.MemoryDatasource()
    made.zoom_to_box(mapnik.Box2d(0, 0, width, height))
    image = mapnik.Image(width, height)
    mapnik.render(made, image)
    return bytes(image.to_string("jpeg90" if fmt == "jpeg" else "png32"))


def _point(x: float, y: float, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": properties}  # fmt: skip


def _xml(font: str) -> str:
    face = font or FONT
    return (
        f'<Map srs="{_PROJ}">'
        '<Style name="swatch">'
        "<Rule><Filter>[kind] = 'fill'</Filter>"
        '<PolygonSymbolizer fill="[color]" fill-opacity="[opacity]"/>'
        '<LineSymbolizer stroke="#666666" stroke-width="0.5"/></Rule>'
        "<Rule><Filter>[kind] = 'line'</Filter>"
        '<LineSymbolizer stroke="[color]" stroke-width="[width]" stroke-opacity="[opacity]"/>'
        "</Rule>"
        "<Rule><Filter>[kind] = 'circle'</Filter>"
        '<MarkersSymbolizer fill="[color]" fill-opacity="[opacity]" width="[radius] * 2" '
        'height="[radius] * 2" stroke="[stroke_color]" stroke-width="[stroke_width]" '
        'allow-overlap="true" ignore-placement="true"/></Rule>'
        "</Style>"
        '<Style name="label"><Rule>'
        f'<TextSymbolizer face-name="{face}" size="12" fill="#222222" placement="point" '
        'horizontal-alignment="right" vertical-alignment="middle" allow-overlap="true">'
        "[label]</TextSymbolizer></Rule></Style>"
        f'<Layer name="swatches" srs="{_PROJ}"><StyleName>swatch</StyleName></Layer>'
        f'<Layer name="labels" srs="{_PROJ}"><StyleName>label</StyleName></Layer>'
        "</Map>"
    )
