"""SLD 1.1 / SE 1.1 documents of the subsystem layers' styles (QGIS and GeoServer load
them): the rules of :mod:`layers.styles` written as Symbology Encoding, one
``se:FeatureTypeStyle`` per MapLibre fragment (drawn in order), filters in Filter Encoding
1.1 (``ogc:``), sizes in pixels, zoom ranges as scale denominators (zoom ``z``:
``559082264.03 / 2**z``).

``match`` on a prefix is a ``PropertyIsLike`` (``wildCard="%"``); classes of a data-driven
value are rules with explicit filters (QGIS reads rules; it ignores SE's ``Recode`` and
``Interpolate``). A layer's opacity is its symbols' where the paint gives none, as in the web map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from layers.styles import (
    All,
    AnyOf,
    Filter,
    Group,
    Not,
    Rule,
    Symbol,
    Test,
    describe,
    rules,
    scale_of,
)
from layers.subsystems import MapLayer

SLD_NS = "http://www.opengis.net/sld"
SE_NS = "http://www.opengis.net/se"
OGC_NS = "http://www.opengis.net/ogc"
SLD_MEDIA_TYPE = "application/vnd.ogc.sld+xml;version=1.1"
"""The media type OGC API - Styles gives SLD 1.1 (and ``f=sld11``)."""


def _ogc_filter(f: Filter) -> str:  # noqa: PLR0911 - one return per test
    if isinstance(f, Not):
        return f"<ogc:Not>{_ogc_filter(f.of)}</ogc:Not>"
    if isinstance(f, All | AnyOf):
        tag = "ogc:And" if isinstance(f, All) else "ogc:Or"
        if not f.of:  # nothing: always true (And) or false (Or), written as a test of 1 = 1
            same = "<ogc:Literal>1</ogc:Literal><ogc:Literal>1</ogc:Literal>"
            test = f"<ogc:PropertyIsEqualTo>{same}</ogc:PropertyIsEqualTo>"
            return test if tag == "ogc:And" else f"<ogc:Not>{test}</ogc:Not>"
        if len(f.of) == 1:
            return _ogc_filter(f.of[0])
        return f"<{tag}>{''.join(_ogc_filter(p) for p in f.of)}</{tag}>"
    prop = f"<ogc:PropertyName>{escape(f.prop)}</ogc:PropertyName>"
    if f.op in {"prefix", "contains"}:
        pattern = _like_escape(str(f.value))
        pattern = f"{pattern}%" if f.op == "prefix" else f"%{pattern}%"
        literal = f"<ogc:Literal>{escape(pattern)}</ogc:Literal>"
        return ('<ogc:PropertyIsLike wildCard="%" singleChar="_" escapeChar="\\">'
                f"{prop}{literal}</ogc:PropertyIsLike>")  # fmt: skip
    tags = {"eq": "PropertyIsEqualTo", "lt": "PropertyIsLessThan",
            "ge": "PropertyIsGreaterThanOrEqualTo"}  # fmt: skip
    if f.op == "in":
        return _ogc_filter(AnyOf(tuple(Test("eq", f.prop, v) for v in f.value)))
    value = f"{f.value:g}" if isinstance(f.value, float) else str(f.value)
    tag = tags[f.op]
    return f"<ogc:{tag}>{prop}<ogc:Literal>{escape(value)}</ogc:Literal></ogc:{tag}>"


def _like_escape(text: str) -> str:
    return "".join("\\" + c if c in "%_\\" else c for c in text)


def _svg(name: str, value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f'<se:SvgParameter name="{name}">{escape(text)}</se:SvgParameter>'


def _se_stroke(colour_: str, width: float, opacity: float, v: Mapping[str, Any]) -> str:
    parts = [_svg("stroke", colour_), _svg("stroke-width", float(width)),
             _svg("stroke-opacity", float(opacity))]  # fmt: skip
    if "join" in v:
        parts.append(_svg("stroke-linejoin", v["join"]))
    if "cap" in v:
        parts.append(_svg("stroke-linecap", v["cap"]))
    if "dasharray" in v:
        parts.append(_svg("stroke-dasharray", " ".join(f"{d:g}" for d in v["dasharray"])))
    return f"<se:Stroke>{''.join(parts)}</se:Stroke>"


def se_symbolizer(symbol: Symbol, opacity: float = 1.0) -> str:
    """A symbol as an SE 1.1 symbolizer (sizes in pixels), ``opacity`` times its own
    (1 for the rules of :func:`layers.styles.rules`, which carry the layer's)."""
    v = dict(symbol.values)
    alpha = float(v["opacity"]) * opacity
    if symbol.kind == "fill":
        fill = f"<se:Fill>{_svg('fill', v['color'])}{_svg('fill-opacity', alpha)}</se:Fill>"
        stroke = _se_stroke(v["outline"], 1.0, opacity, {}) if "outline" in v else ""
        return f"<se:PolygonSymbolizer>{fill}{stroke}</se:PolygonSymbolizer>"
    if symbol.kind == "line":
        stroke = _se_stroke(v["color"], v["width"], alpha, v)
        return f"<se:LineSymbolizer>{stroke}</se:LineSymbolizer>"
    fill = f"<se:Fill>{_svg('fill', v['color'])}{_svg('fill-opacity', alpha)}</se:Fill>"
    stroke = ""
    if v["stroke_width"] > 0:
        stroke = _se_stroke(v["stroke_color"], v["stroke_width"],
                            float(v["stroke_opacity"]) * opacity, {})  # fmt: skip
    size = 2 * float(v["radius"]) + float(v["stroke_width"])
    mark = f"<se:Mark><se:WellKnownName>circle</se:WellKnownName>{fill}{stroke}</se:Mark>"
    return (f"<se:PointSymbolizer><se:Graphic>{mark}<se:Size>{size:g}</se:Size>"
            "</se:Graphic></se:PointSymbolizer>")  # fmt: skip


def _rule_name(rule: Rule, n: int) -> str:
    return f"{rule.title or 'rule'} {n}" if rule.title else f"rule {n}"


def se_feature_type_style(group: Group, opacity: float = 1.0, legend: str = "") -> str:
    """One group as an ``se:FeatureTypeStyle``."""
    parts = ["<se:FeatureTypeStyle>"]
    for n, rule in enumerate(group.rules, start=1):
        parts.append("<se:Rule>")
        parts.append(f"<se:Name>{escape(_rule_name(rule, n))}</se:Name>")
        title = describe(rule.filter) or legend or rule.title
        if title:
            parts.append(f"<se:Description><se:Title>{escape(title)}</se:Title></se:Description>")
        if rule.filter is not None:
            parts.append(f'<ogc:Filter xmlns:ogc="{OGC_NS}">{_ogc_filter(rule.filter)}'
                         "</ogc:Filter>")  # fmt: skip
        if rule.maxzoom is not None:
            parts.append(f"<se:MinScaleDenominator>{scale_of(rule.maxzoom):.4f}"
                         "</se:MinScaleDenominator>")  # fmt: skip
        if rule.minzoom is not None:
            parts.append(f"<se:MaxScaleDenominator>{scale_of(rule.minzoom):.4f}"
                         "</se:MaxScaleDenominator>")  # fmt: skip
        parts.extend(se_symbolizer(s, opacity) for s in rule.symbols)
        parts.append("</se:Rule>")
    parts.append("</se:FeatureTypeStyle>")
    return "".join(parts)


def sld(named: Sequence[tuple[str, str, MapLayer, float]]) -> str:
    """An SLD 1.1 document: one ``NamedLayer`` per ``(layer name, style name, layer,
    opacity)`` (a layer's name is its collection id, what WMS and OGC API name it).

    Raises:
        StyleError: an expression this translation does not know.
    """
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        (
            f'<StyledLayerDescriptor version="1.1.0" xmlns="{SLD_NS}" xmlns:se="{SE_NS}" '
            f'xmlns:ogc="{OGC_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        ),
    ]
    for layer_name, style_name, layer, opacity in named:
        out.append(f"<NamedLayer><se:Name>{escape(layer_name)}</se:Name>")
        out.append(f"<UserStyle><se:Name>{escape(style_name)}</se:Name>")
        out.append(f"<se:Description><se:Title>{escape(layer.title)}</se:Title>"
                   "</se:Description>")  # fmt: skip
        for group in rules(layer, opacity):
            if group.rules:
                out.append(se_feature_type_style(group))
        out.append("</UserStyle></NamedLayer>")
    out.append("</StyledLayerDescriptor>")
    return "\n".join(out)
