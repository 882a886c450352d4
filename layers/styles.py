"""One translation of a subsystem layer's MapLibre style into rules, written three ways.

The subsystem YAML files (:mod:`layers.subsystems`) hold each layer's style as MapLibre
style fragments: what the web maps draw. :func:`rules` turns a layer's fragments into
:class:`Rule` objects (a filter, constant symbolizers and a zoom range), and every other
client's style is written from those rules, so a parcel has the same colour everywhere:

- :func:`mapnik_style` - Mapnik XML ``<Style>`` elements (``tiles.render`` draws with them:
  WMS, WMTS, OGC API - Maps, print);
- :func:`layers.sld.sld` - SLD 1.1 / SE 1.1 (QGIS, GeoServer);
- :func:`maplibre_document` - the MapLibre style document (version 8) the web maps use,
  made from the same configuration as ``/maps/{id}/config``.

How the expressions become rules:

- ``match`` on ``get x`` gives one rule per label (``x = label``), ``match`` on
  ``slice(to-string(get x), 0, n)`` one per prefix (``PropertyIsLike 'ab%'`` in SLD, a
  regular expression in Mapnik); the default output is the rule where no label matches;
- ``case`` over ``in "text" (get x)`` (substring) or comparisons: one rule per branch, each
  excluding the earlier ones; ``step``: one rule per interval;
- ``interpolate`` ``linear`` on a property: classes between the stops, each drawn with the
  value in its middle (colours are mixed), below the first and above the last stop the
  end values; on ``zoom``: rules per zoom band (scale denominators), each with the value
  at its middle zoom;
- several data-driven properties of one fragment: the product of their classes, except
  when they classify by the same expression and labels (then their values go together).

A collection no subsystem draws gets :func:`default_layer`, a style by geometry type.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from layers.subsystems import Fragment, LegendEntry, MapLayer

WEB_MERCATOR_Z0 = 559_082_264.028_717_4
"""The scale denominator of zoom 0 (256-pixel tiles of 0.28 mm pixels, OGC's standard
rendering pixel): zoom ``z`` is ``WEB_MERCATOR_Z0 / 2**z``."""
DEFAULT_COLOUR = "#3f7fd8"
"""The default style's colour (a collection no subsystem draws)."""


# -- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Test:
    """A comparison of one property: ``eq`` (``value`` a string or number), ``prefix``
    (the text starts with ``value``), ``contains`` (the text holds ``value``), ``lt``, ``ge``
    (numbers), ``in`` (``value`` a tuple of values)."""

    op: str
    prop: str
    value: Any


@dataclass(frozen=True)
class Not:
    """Not ``of``."""

    of: Filter


@dataclass(frozen=True)
class All:
    """Every one of ``of``."""

    of: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one of ``of``."""

    of: tuple[Filter, ...]


Filter = Test | Not | All | AnyOf


def _and(parts: Iterable[Filter | None]) -> Filter | None:
    kept: list[Filter] = []
    for part in parts:
        if part is None:
            continue
        kept.extend(part.of if isinstance(part, All) else (part,))
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else All(tuple(kept))


def _none_of(parts: Sequence[Filter]) -> Filter | None:
    if not parts:
        return None
    return Not(parts[0] if len(parts) == 1 else AnyOf(tuple(parts)))


# -- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Symbol:
    """One symbolizer with constant values: ``fill`` (``color``, ``opacity``), ``line``
    (``color``, ``width``, ``opacity``, ``dasharray`` in pixels, ``cap``, ``join``) or
    ``circle`` (``radius``, ``color``, ``opacity``, ``stroke_color``, ``stroke_width``,
    ``stroke_opacity``). Colours are ``#rrggbb``; opacities 0 to 1."""

    kind: str
    values: tuple[tuple[str, Any], ...]

    def get(self, name: str, default: Any = None) -> Any:
        """A value by name."""
        return dict(self.values).get(name, default)


@dataclass(frozen=True)
class Rule:
    """Features matching ``filter`` (None: all) drawn with ``symbols`` at zooms from
    ``minzoom`` (inclusive) to ``maxzoom`` (exclusive; None: no bound)."""

    filter: Filter | None
    symbols: tuple[Symbol, ...]
    minzoom: float | None = None
    maxzoom: float | None = None
    title: str = ""


@dataclass(frozen=True)
class Group:
    """The rules of one fragment, drawn together before the next fragment's (a
    FeatureTypeStyle in SE, a Mapnik style)."""

    rules: tuple[Rule, ...] = field(default_factory=tuple)


Case = tuple[Filter | None, Any]
"""A class of a data-driven value: the features it applies to, and the value."""


class StyleError(ValueError):
    """A MapLibre expression this translation does not know."""


def _prop_of(expr: Any) -> tuple[str, int | None]:
    """The property an input expression reads, and the prefix length for
    ``slice(to-string(get x), 0, n)``."""
    if isinstance(expr, list) and len(expr) == 2 and expr[0] == "get":
        return str(expr[1]), None
    if (
        isinstance(expr, list) and len(expr) == 4 and expr[0] == "slice" and expr[2] == 0
        and isinstance(expr[3], int) and isinstance(expr[1], list)
    ):  # fmt: skip
        inner = expr[1]
        if inner[0] == "to-string" and len(inner) == 2:
            return _prop_of(inner[1])[0], expr[3]
        return _prop_of(inner)[0], expr[3]
    msg = f"an input {expr!r} (expected [get, name] or [slice, [to-string, [get, name]], 0, n])"
    raise StyleError(msg)


def _label_test(prop: str, prefix: int | None, label: Any) -> Filter:
    labels = label if isinstance(label, list) else [label]
    tests: list[Filter] = [
        Test("prefix", prop, str(v)) if prefix is not None else Test("eq", prop, v) for v in labels
    ]
    return tests[0] if len(tests) == 1 else AnyOf(tuple(tests))


def condition(expr: Any) -> Filter | None:  # noqa: PLR0911 - one return per operator
    """A MapLibre boolean expression (a layer ``filter`` or a ``case`` branch) as a filter.

    Raises:
        StyleError: an expression this translation does not know.
    """
    if expr is True:
        return None
    if not isinstance(expr, list) or not expr:
        raise StyleError(f"a condition {expr!r}")
    op, args = expr[0], expr[1:]
    if op == "all":
        return _and(condition(a) for a in args)
    if op == "any":
        return AnyOf(tuple(c for a in args if (c := condition(a)) is not None))
    if op == "!":
        inner = condition(args[0])
        return Not(inner) if inner is not None else Not(AnyOf(()))
    if op == "in" and len(args) == 2:
        needle, haystack = args
        if isinstance(needle, str) and isinstance(haystack, list) and haystack[0] == "get":
            return Test("contains", str(haystack[1]), needle)
        if isinstance(haystack, list) and haystack[0] == "literal":
            prop, prefix = _prop_of(needle)
            return _label_test(prop, prefix, list(haystack[1]))
    if op in {"==", "!="} and len(args) == 2:
        prop, prefix = _prop_of(args[0])
        test = _label_test(prop, prefix, args[1])
        return test if op == "==" else Not(test)
    if op in {"<", ">=", ">", "<="} and len(args) == 2 and isinstance(args[1], int | float):
        prop, _ = _prop_of(args[0])
        below = Test("lt", prop, float(args[1]))
        above = Test("ge", prop, float(args[1]))
        if op in {"<", ">="}:
            return below if op == "<" else above
        # x > v is not (x <= v); x <= v is x < v or x == v
        at_most = AnyOf((below, Test("eq", prop, args[1])))
        return at_most if op == "<=" else Not(at_most)
    raise StyleError(f"a condition {expr!r}")


def _mix(a: Any, b: Any, t: float) -> Any:
    """The value a fraction ``t`` of the way from ``a`` to ``b`` (numbers or colours)."""
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a + (b - a) * t
    ca, cb = colour(str(a)), colour(str(b))
    ra, rb = _rgb(ca[0]), _rgb(cb[0])
    mixed = tuple(round(x + (y - x) * t) for x, y in zip(ra, rb, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*mixed)


def cases(value: Any) -> tuple[str, list[Case]]:
    """A paint value's classes: ``(key, [(filter, value), ...])``; ``key`` names what the
    classes depend on (equal keys: the same filters), empty for a constant.

    Raises:
        StyleError: an expression this translation does not know.
    """
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        return "", [(None, value)]
    op = value[0]
    if op == "literal":
        return "", [(None, value[1])]
    if op == "match":
        prop, prefix = _prop_of(value[1])
        pairs = value[2:-1]
        tests = [_label_test(prop, prefix, label) for label in pairs[0::2]]
        found: list[Case] = list(zip(tests, pairs[1::2], strict=True))
        found.append((_none_of(tests), value[-1]))
        return f"match:{value[1]!r}:{pairs[0::2]!r}", found
    if op == "case":
        branches = value[1:-1]
        conditions = [condition(c) for c in branches[0::2]]
        found = []
        for i, (cond, out) in enumerate(zip(conditions, branches[1::2], strict=True)):
            earlier = [c for c in conditions[:i] if c is not None]
            found.append((_and([cond, _none_of(earlier)]), out))
        found.append((_none_of([c for c in conditions if c is not None]), value[-1]))
        return f"case:{branches[0::2]!r}", found
    if op == "step":
        prop, _ = _prop_of(value[1])
        stops = value[3::2]
        outs = [value[2], *value[4::2]]
        return f"step:{prop}:{stops!r}", _intervals(prop, [float(s) for s in stops], outs)
    if op == "interpolate":
        if value[1] != ["linear"]:
            raise StyleError(f"interpolate {value[1]!r} (only linear)")
        if value[2] == ["zoom"]:
            raise StyleError("zoom")  # handled by zoom_bands
        prop, _ = _prop_of(value[2])
        stops = [float(s) for s in value[3::2]]
        outs = value[4::2]
        middles = [_mix(a, b, 0.5) for a, b in itertools.pairwise(outs)]
        values = [outs[0], *middles, outs[-1]]
        return f"interpolate:{prop}:{stops!r}", _intervals(prop, stops, values)
    raise StyleError(f"a paint expression {op!r}")


def _intervals(prop: str, stops: Sequence[float], outs: Sequence[Any]) -> list[Case]:
    """Classes below the first stop, between stops, and from the last one."""
    found: list[Case] = [(Test("lt", prop, stops[0]), outs[0])]
    for i, (low, high) in enumerate(itertools.pairwise(stops)):
        found.append((All((Test("ge", prop, low), Test("lt", prop, high))), outs[i + 1]))
    found.append((Test("ge", prop, stops[-1]), outs[len(stops)]))
    return found


def _is_zoom(value: Any) -> bool:
    return isinstance(value, list) and len(value) > 2 and value[0] in {"interpolate", "step"} \
        and [value[2] if value[0] == "interpolate" else value[1]][0] == ["zoom"]  # fmt: skip


def zoom_bands(value: Any) -> list[tuple[float | None, float | None, Any]]:
    """A zoom-dependent value as bands ``(minzoom, maxzoom, value)``: one per whole zoom
    between the first and the last stop (the value at its middle), the end values beyond.
    """
    if value[0] == "step":
        stops = [float(s) for s in value[3::2]]
        outs = [value[2], *value[4::2]]
        edges: list[float | None] = [None, *stops, None]
        return [(edges[i], edges[i + 1], outs[i]) for i in range(len(outs))]
    stops = [float(s) for s in value[3::2]]
    outs = value[4::2]
    bands: list[tuple[float | None, float | None, Any]] = [(None, stops[0], outs[0])]
    z = stops[0]
    while z < stops[-1]:
        top = min(math.floor(z) + 1.0, stops[-1])
        bands.append((z, top, _interpolate_at(stops, outs, (z + top) / 2)))
        z = top
    bands.append((stops[-1], None, outs[-1]))
    return bands


def _interpolate_at(stops: Sequence[float], outs: Sequence[Any], x: float) -> Any:
    for (s0, s1), (v0, v1) in zip(itertools.pairwise(stops), itertools.pairwise(outs),
                                  strict=True):  # fmt: skip
        if s0 <= x <= s1:
            return _mix(v0, v1, (x - s0) / (s1 - s0) if s1 > s0 else 0.0)
    return outs[-1]


_PAINT = {
    "fill": {"fill-color": "color", "fill-opacity": "opacity",
             "fill-outline-color": "outline"},
    "fill-extrusion": {"fill-extrusion-color": "color", "fill-extrusion-opacity": "opacity"},
    "line": {"line-color": "color", "line-width": "width", "line-opacity": "opacity",
             "line-dasharray": "dasharray"},
    "circle": {"circle-radius": "radius", "circle-color": "color", "circle-opacity": "opacity",
               "circle-stroke-color": "stroke_color", "circle-stroke-width": "stroke_width",
               "circle-stroke-opacity": "stroke_opacity"},
}  # fmt: skip
"""The paint properties drawn, by fragment type, and their names in a :class:`Symbol`."""
_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "fill": {"color": "#000000", "opacity": 1.0},
    "line": {"color": "#000000", "width": 1.0, "opacity": 1.0},
    "circle": {"radius": 5.0, "color": "#000000", "opacity": 1.0, "stroke_width": 0.0,
               "stroke_color": "#000000", "stroke_opacity": 1.0},
}  # fmt: skip
"""MapLibre's defaults."""


def fragment_rules(  # noqa: PLR0912 - a branch per kind of value
    fragment: Fragment, title: str = "", opacity: float = 1.0
) -> Group:
    """The rules of one fragment (empty for a type other clients cannot draw: raster,
    symbol, heatmap).

    Raises:
        StyleError: an expression this translation does not know.
    """
    kind = "fill" if fragment.type == "fill-extrusion" else fragment.type
    if kind not in _DEFAULTS:
        return Group()
    names = _PAINT[fragment.type]
    base = condition(fragment.filter) if fragment.filter is not None else None
    constant: dict[str, Any] = dict(_DEFAULTS[kind])
    constant["opacity"] = opacity  # the layer's, unless the paint sets its own (as the web map)
    classed: dict[str, tuple[list[Filter | None], dict[str, list[Any]]]] = {}
    zoomed: dict[str, Any] = {}
    for key, value in fragment.paint.items():
        name = names.get(key)
        if name is None:
            continue
        if _is_zoom(value):
            zoomed[name] = value
            continue
        what, found = cases(value)
        if not what:
            constant[name] = found[0][1]
        else:
            _, outs = classed.setdefault(what, ([f for f, _ in found], {}))
            outs[name] = [v for _, v in found]
    if kind == "line":
        for key in ("line-cap", "line-join"):
            if key in fragment.layout:
                constant[key.removeprefix("line-")] = fragment.layout[key]
    bands: list[tuple[float | None, float | None, dict[str, Any]]] = [
        (fragment.minzoom, fragment.maxzoom, {})
    ]
    for name, value in zoomed.items():
        bands = [
            (_max(lo, zlo), _min(hi, zhi), {**vals, name: v})
            for lo, hi, vals in bands for zlo, zhi, v in zoom_bands(value)
            if _overlap(_max(lo, zlo), _min(hi, zhi))
        ]  # fmt: skip
    rules = []
    groups = list(classed.values())
    for combo in itertools.product(*(range(len(filters)) for filters, _ in groups)):
        values = dict(constant)
        for (_, outs), i in zip(groups, combo, strict=True):
            for prop, out in outs.items():
                values[prop] = out[i]
        where = _and([base, *(filters[i] for (filters, _), i in zip(groups, combo, strict=True))])
        for lo, hi, zvals in bands:
            symbol = _symbol(kind, {**values, **zvals})
            if symbol is not None:
                rules.append(Rule(where, (symbol,), lo, hi, title))
    return Group(tuple(rules))


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _overlap(lo: float | None, hi: float | None) -> bool:
    return lo is None or hi is None or lo < hi


def _symbol(kind: str, values: Mapping[str, Any]) -> Symbol | None:
    """A symbolizer of constant values: colours as ``#rrggbb``, their alpha folded into
    the opacity; None when it draws nothing."""
    out: dict[str, Any] = {}
    hex_, alpha = colour(str(values["color"]))
    out["color"] = hex_
    out["opacity"] = round(float(values.get("opacity", 1.0)) * alpha, 4)
    if kind == "line":
        width = float(values["width"])
        if width <= 0:
            return None
        out["width"] = width
        dashes = values.get("dasharray")
        if dashes:
            out["dasharray"] = tuple(round(float(d) * width, 3) for d in dashes)
        for key in ("cap", "join"):
            if key in values:
                out[key] = str(values[key])
    elif kind == "circle":
        out["radius"] = float(values["radius"])
        stroke, stroke_alpha = colour(str(values["stroke_color"]))
        out["stroke_color"] = stroke
        out["stroke_width"] = float(values["stroke_width"])
        out["stroke_opacity"] = round(float(values["stroke_opacity"]) * stroke_alpha, 4)
    elif "outline" in values:
        out["outline"] = colour(str(values["outline"]))[0]
    if out["opacity"] <= 0 and kind != "circle":
        return None
    return Symbol(kind, tuple(sorted(out.items())))


def rules(layer: MapLayer, opacity: float = 1.0) -> list[Group]:
    """A layer's rules, one group per fragment in drawing order.

    Raises:
        StyleError: an expression this translation does not know.
    """
    return [fragment_rules(f, layer.title, opacity) for f in layer.style]


def default_layer(collection: str, title: str, geometry_type: str) -> MapLayer:
    """The style of a collection no subsystem draws, by its geometry type."""
    kind = geometry_type.lower()
    fragments: list[dict[str, Any]]
    if "point" in kind:
        fragments = [{"type": "circle", "paint": {
            "circle-radius": 4, "circle-color": DEFAULT_COLOUR,
            "circle-stroke-color": "#ffffff", "circle-stroke-width": 1}}]  # fmt: skip
    elif "line" in kind:
        fragments = [{"type": "line", "paint": {"line-color": DEFAULT_COLOUR, "line-width": 1.5}}]
    else:
        fragments = [
            {"type": "fill", "paint": {"fill-color": DEFAULT_COLOUR, "fill-opacity": 0.35}},
            {"type": "line", "paint": {"line-color": DEFAULT_COLOUR, "line-width": 1}},
        ]
    symbol = "circle" if "point" in kind else "line" if "line" in kind else "fill"
    return MapLayer.model_validate({
        "id": "default", "collection": collection, "kind": "vector", "title": title,
        "style": fragments, "legend": [{"label": title, "color": DEFAULT_COLOUR,
                                        "symbol": symbol}],
    })  # fmt: skip


def prefix_column(prop: str, length: int) -> str:
    """The name of the column of ``prop``'s first ``length`` characters that a Mapnik
    prefix test compares (a string comparison; a regular expression per rule and feature
    was half the drawing time of a parcel tile)."""
    return f"{prop}__{length}"


def attributes(layer: MapLayer) -> set[str]:
    """The properties a layer's rules read."""
    return {prop for prop, _ in columns(layer)}


def columns(layer: MapLayer) -> set[tuple[str, int]]:
    """What a layer's Mapnik rules read: ``(property, 0)`` for a property, ``(property,
    n)`` for its first ``n`` characters (:func:`prefix_column`)."""
    found: set[tuple[str, int]] = set()

    def walk(f: Filter | None) -> None:
        if isinstance(f, Test):
            found.add((f.prop, len(str(f.value)) if f.op == "prefix" else 0))
        elif isinstance(f, Not):
            walk(f.of)
        elif isinstance(f, All | AnyOf):
            for part in f.of:
                walk(part)

    for group in rules(layer):
        for rule in group.rules:
            walk(rule.filter)
    return found


# -- colours ----------------------------------------------------------------------------------

_RGBA = re.compile(r"^rgba?\(([^)]*)\)$")


def colour(text: str) -> tuple[str, float]:
    """A CSS colour (``#rgb``, ``#rgba``, ``#rrggbb``, ``#rrggbbaa``, ``rgb()``, ``rgba()``)
    as ``#rrggbb`` and its alpha.

    Raises:
        StyleError: another form.
    """
    text = text.strip().lower()
    if text.startswith("#"):
        digits = text[1:]
        if len(digits) in {3, 4}:
            digits = "".join(c * 2 for c in digits)
        if len(digits) in {6, 8} and all(c in "0123456789abcdef" for c in digits):
            alpha = int(digits[6:8], 16) / 255 if len(digits) == 8 else 1.0
            return f"#{digits[:6]}", alpha
    match = _RGBA.match(text)
    if match:
        parts = [p.strip() for p in match[1].split(",")]
        if len(parts) in {3, 4}:
            rgb = [max(0, min(255, round(float(p)))) for p in parts[:3]]
            alpha = float(parts[3]) if len(parts) == 4 else 1.0
            return "#{:02x}{:02x}{:02x}".format(*rgb), alpha
    raise StyleError(f"a colour {text!r}")


def _rgb(hex_: str) -> tuple[int, int, int]:
    return int(hex_[1:3], 16), int(hex_[3:5], 16), int(hex_[5:7], 16)


def scale_of(zoom: float) -> float:
    """The scale denominator of a zoom level."""
    return float(WEB_MERCATOR_Z0 / 2.0**zoom)


# -- Mapnik -----------------------------------------------------------------------------------


def mapnik_filter(f: Filter | None) -> str:  # noqa: PLR0911 - one return per test
    """A filter as a Mapnik expression (``"true"`` for None)."""
    if f is None:
        return "true"
    if isinstance(f, Not):
        return f"not ({mapnik_filter(f.of)})"
    if isinstance(f, All | AnyOf):
        if not f.of:
            return "true" if isinstance(f, All) else "false"
        joiner = " and " if isinstance(f, All) else " or "
        return joiner.join(f"({mapnik_filter(p)})" for p in f.of)
    field_ = f"[{f.prop}]"
    if f.op == "eq":
        return f"{field_} = {_mapnik_literal(f.value)}"
    if f.op == "prefix":
        return f"[{prefix_column(f.prop, len(str(f.value)))}] = {_mapnik_literal(str(f.value))}"
    if f.op == "contains":
        return f"{field_}.match({_mapnik_literal('.*' + re.escape(str(f.value)) + '.*')})"
    if f.op == "lt":
        return f"{field_} < {float(f.value)!r}"
    if f.op == "ge":
        return f"{field_} >= {float(f.value)!r}"
    if f.op == "in":
        return " or ".join(f"({field_} = {_mapnik_literal(v)})" for v in f.value) or "false"
    raise StyleError(f"a test {f.op!r}")  # pragma: no cover - the ops above are all made


def _mapnik_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _attr(name: str, value: Any) -> str:
    return f" {name}={quoteattr(str(value))}"


def mapnik_symbolizers(symbol: Symbol) -> str:
    """A symbol's Mapnik symbolizer elements."""
    v = dict(symbol.values)
    if symbol.kind == "fill":
        text = (
            "<PolygonSymbolizer" + _attr("fill", v["color"]) + _attr("fill-opacity", v["opacity"])
        )
        text += _attr("gamma", 0.7) + "/>"
        if "outline" in v:
            text += (
                "<LineSymbolizer" + _attr("stroke", v["outline"]) + _attr("stroke-width", 1) + "/>"
            )
        return text
    if symbol.kind == "line":
        text = "<LineSymbolizer" + _attr("stroke", v["color"]) + _attr("stroke-width", v["width"])
        text += _attr("stroke-opacity", v["opacity"])
        if "dasharray" in v:
            text += _attr("stroke-dasharray", ",".join(f"{d:g}" for d in v["dasharray"]))
        if "cap" in v:
            text += _attr("stroke-linecap", v["cap"])
        if "join" in v:
            text += _attr("stroke-linejoin", v["join"])
        return text + "/>"
    size = 2 * v["radius"]
    text = "<MarkersSymbolizer" + _attr("width", size) + _attr("height", size)
    text += _attr("fill", v["color"]) + _attr("fill-opacity", v["opacity"])
    text += _attr("stroke", v["stroke_color"]) + _attr("stroke-width", v["stroke_width"])
    text += _attr("stroke-opacity", v["stroke_opacity"] if v["stroke_width"] > 0 else 0)
    return text + _attr("allow-overlap", "true") + _attr("ignore-placement", "true") + "/>"


def mapnik_style(name: str, group: Group) -> str:
    """One group as a Mapnik ``<Style>`` element named ``name``."""
    parts = [f'<Style name={quoteattr(name)} filter-mode="first">']  # the rules never overlap
    for rule in group.rules:
        parts.append("<Rule>")
        if rule.maxzoom is not None:
            parts.append(f"<MinScaleDenominator>{scale_of(rule.maxzoom) * 1.0001!r}"
                         "</MinScaleDenominator>")  # fmt: skip
        if rule.minzoom is not None:
            parts.append(f"<MaxScaleDenominator>{scale_of(rule.minzoom) * 1.0001!r}"
                         "</MaxScaleDenominator>")  # fmt: skip
        if rule.filter is not None:
            parts.append(f"<Filter>{escape(mapnik_filter(rule.filter))}</Filter>")
        parts.extend(mapnik_symbolizers(s) for s in rule.symbols)
        parts.append("</Rule>")
    parts.append("</Style>")
    return "".join(parts)


def describe(f: Filter | None) -> str:
    """A short human reading of a filter (a rule's title)."""
    if f is None:
        return ""
    if isinstance(f, Test):
        sign = {"eq": "=", "lt": "<", "ge": ">=", "prefix": "starts with",
                "contains": "contains", "in": "in"}[f.op]  # fmt: skip
        return f"{f.prop} {sign} {f.value}"
    if isinstance(f, Not):
        return "other" if isinstance(f.of, AnyOf | Test) else f"not ({describe(f.of)})"
    return (" and " if isinstance(f, All) else " or ").join(describe(p) for p in f.of)


# -- MapLibre ---------------------------------------------------------------------------------


def maplibre_document(
    config: Mapping[str, Any], *, only: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """The MapLibre style document (version 8) of a map configuration as
    :func:`layers.subsystems.resolve` makes it (the web map's own sources and layers,
    absolute tile URLs of this server, no glyphs or sprite: no layer draws text or icons);
    ``only``: the one layer of that id."""
    entries = [e for e in config["layers"] if only is None or e["id"] == only]
    sources = {e["source"]: config["sources"][e["source"]] for e in entries}
    layers: list[dict[str, Any]] = []
    for entry in entries:
        for style_layer in entry["maplibre"]:
            copy = dict(style_layer)
            if only is not None:
                copy["layout"] = {**copy.get("layout", {}), "visibility": "visible"}
            layers.append(copy)
    west, south, east, north = config["extent"]
    return {
        "version": 8,
        "name": name or config["title"],
        "metadata": {
            "3s:map": config["id"],
            "3s:legend": {e["id"]: e["legend"] for e in entries},
        },
        "center": [(west + east) / 2, (south + north) / 2],
        "zoom": 13,
        "sources": sources,
        "layers": layers,
    }


def legend_entries(layer: MapLayer) -> list[LegendEntry]:
    """The legend of a layer: its own entries, or one per rule colour when it has none."""
    if layer.legend:
        return list(layer.legend)
    seen: dict[str, LegendEntry] = {}
    for group in rules(layer):
        for rule in group.rules:
            for s in rule.symbols:
                label = describe(rule.filter) or layer.title
                entry = {"label": label, "color": s.get("color"), "symbol": s.kind}
                seen.setdefault(s.get("color"), LegendEntry.model_validate(entry))
    return list(seen.values())
