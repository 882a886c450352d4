"""Query parameters, declared once: what a route reads, how it is parsed, and how the
OpenAPI document describes it.

A :class:`Params` lists a route's parameters (name, description, JSON schema). The route
refuses any other (``check``), the parsing functions here read exactly those, and
:meth:`api.routing.Router.fast_get` documents them from the same object, so the document
and the code cannot drift apart. Values are read as text and validated here, so a bad
value is a 400 with an OGC exception body naming the parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from api.ogc import check_parameters
from spatial import features, filters
from spatial.errors import InvalidInputError, NotFoundError
from spatial.ingest import history
from tiles import raster
from tiles.tms import TileAddress, address

MAX_OFFSET = 10**15
"""Larger offsets (and ids) are lowered to this: far beyond any layer, within bigint."""


@dataclass(frozen=True)
class Param:
    """One query parameter."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})

    def openapi(self) -> dict[str, Any]:
        """The parameter in an OpenAPI operation."""
        return {"name": self.name, "in": "query", "required": False,
                "description": self.description, "schema": dict(self.schema)}  # fmt: skip


@dataclass(frozen=True)
class Params:
    """A route's query parameters."""

    params: tuple[Param, ...]

    def __add__(self, other: Params) -> Params:
        return Params(self.params + other.params)

    @property
    def names(self) -> frozenset[str]:
        """The parameters' names."""
        return frozenset(p.name for p in self.params)

    def openapi(self) -> list[dict[str, Any]]:
        """The parameters as an OpenAPI operation lists them."""
        return [p.openapi() for p in self.params]

    def check(self, request: HTTPConnection, extra: Iterable[str] = ()) -> None:
        """Refuse parameters the route does not define (/req/core/query-param-unknown);
        ``extra``: names the route also takes (a layer's queryables).

        Raises:
            InvalidInputError: an unknown parameter, named with the ones the route takes.
        """
        check_parameters(request, self.names | frozenset(extra))


def _text(name: str, description: str) -> Param:
    return Param(name, description)


F = _text("f", "Response format: json (GeoJSON) or html; items also csv, fgb, gpkg.")
LANG = _text("lang", "The language of HTML pages.")
CRS = _text("crs", "CRS of the response geometries (a CRS URI, see the collection's crs list).")
PROPERTIES = _text("properties", "Comma-separated properties to return.")
SKIP_GEOMETRY = _text("skipGeometry", "true: features without geometry.")
AS_OF = _text(
    "as-of",
    "The collection as it was at this moment (an RFC 3339 date-time, or a date: its first "
    "moment, UTC): its edition then. Features replaced since have negative ids.",
)
DATETIME = _text("datetime", "An instant or an interval start/end (.. for an open end).")
ITEMS = Params((
    F, LANG,
    Param("limit", "Features per page (up to the server's maximum; more is lowered).",
          {"type": "integer", "minimum": 1}),
    Param("offset", "Features to skip.", {"type": "integer", "minimum": 0}),
    Param("after", "Only features with a larger id (the next links use it).",
          {"type": "integer"}),
    _text("bbox", "minx,miny,maxx,maxy in bbox-crs (CRS84 by default)."),
    _text("bbox-crs", "CRS of bbox."),
    DATETIME, PROPERTIES, SKIP_GEOMETRY,
    _text("sortby", "Properties to sort by, e.g. -area,+name."),
    CRS,
    _text("filter", "A CQL2 filter (see queryables)."),
    _text("filter-lang", "cql2-text (default) or cql2-json."),
    _text("filter-crs", "CRS of geometries in filter."),
    AS_OF,
))  # fmt: skip
"""The items of a vector collection (also: any queryable as an equality)."""
HANDLED = frozenset({"filter", "filter-lang", "filter-crs", "as-of"})
"""Items parameters the platform reads before handing a page to pygeoapi (which must not)."""
ITEM = Params((F, LANG, CRS, PROPERTIES, SKIP_GEOMETRY, AS_OF))
"""One feature."""
RECORDS = Params((
    F, LANG, _text("limit", "Records per page."), _text("offset", "Records to skip."),
    _text("bbox", "minx,miny,maxx,maxy (CRS84)."), DATETIME,
    _text("q", "Free text, in titles, descriptions and keywords."),
    _text("sortby", "Properties to sort by."), PROPERTIES, SKIP_GEOMETRY,
    _text("type", "vector, raster or gps."), _text("title", "Words of the title."),
    _text("keywords", "Keywords."), _text("subsystems", "Subsystems (e.g. land)."),
    CRS, _text("description", "Words of the description."),
))  # fmt: skip
"""A search of the catalog's records (``/collections/catalog/items``)."""
VECTOR_TILE = Params((_text("f", "mvt (the default)."), PROPERTIES))
"""A collection's vector tile."""
SUBSYSTEM_TILE = Params((_text("f", "mvt (the default)."),))
"""A subsystem's multi-layer vector tile."""
_STYLE = (
    _text("bands", "Band names, comma-separated (1 or 3)."),
    _text("expression", "Band math, e.g. (nir-red)/(nir+red), or ndvi, ndwi."),
)
MAP_TILE = Params((
    *_STYLE,
    _text("rescale", "min,max per output band."),
    _text("colormap", "A colormap for one band, e.g. rdylgn, viridis."),
    _text("datetime", "The mosaic as seen then (an instant), or of an interval's scenes."),
    _text("f", "png (default), webp or jpeg."),
))  # fmt: skip
"""A map tile of imagery."""
VALUE_TILE = Params((
    *_STYLE,
    _text("datetime", "The mosaic as seen then (an instant), or of an interval's scenes."),
    _text("f", "tif (the default): float32 GeoTIFF."),
))  # fmt: skip
"""A value tile of imagery."""


def integer(request: HTTPConnection, name: str, default: int, low: int, high: int | None) -> int:
    """An integer query parameter, at least ``low`` (at most ``high``: larger is lowered).

    Raises:
        InvalidInputError: not an integer, or below ``low``.
    """
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        msg = f"{name} must be an integer of at least {low}, not {text!r}"
        raise InvalidInputError(msg)
    return value if high is None else min(value, high)


def flag(request: HTTPConnection, name: str) -> bool:
    """A ``true``/``false`` query parameter (false when absent).

    Raises:
        InvalidInputError: another value.
    """
    text = request.query_params.get(name, "false").lower()
    if text not in {"true", "false"}:
        msg = f"{name} must be true or false, not {text!r}"
        raise InvalidInputError(msg)
    return text == "true"


def items_query(request: HTTPConnection, layer: features.LayerSchema) -> features.ItemsQuery:
    """The validated query of an items request (:data:`ITEMS`, and queryables as equalities).

    Raises:
        InvalidInputError: a malformed or unknown parameter, or an unknown property.
    """
    ITEMS.check(request, layer.fields)
    settings = request.app.state.settings.server
    p = request.query_params
    params = features.Params()
    where = None
    trees = filters.equalities(
        layer, [(k, v) for k, v in p.items() if k in layer.fields and k not in ITEMS.names]
    )
    if p.get("filter"):
        trees.append(filters.parse(p["filter"], p.get("filter-lang")))
    if trees:
        tree = trees[0] if len(trees) == 1 else {"op": "and", "args": trees}
        where = filters.compile_filter(
            tree, layer, params, features.serving_crs(p.get("filter-crs"))
        )
    return features.ItemsQuery(
        where=where,
        params=params,
        limit=integer(request, "limit", settings.default_limit, 1, settings.max_limit),
        offset=integer(request, "offset", 0, 0, MAX_OFFSET),
        bbox=features.parse_bbox(p["bbox"]) if "bbox" in p else None,
        bbox_crs=features.serving_crs(p.get("bbox-crs")),
        datetime=features.parse_datetime(p.get("datetime")),
        properties=features.parse_properties(layer, p.get("properties")),
        skip_geometry=flag(request, "skipGeometry"),
        sortby=features.parse_sortby(layer, p.get("sortby")),
        crs=features.serving_crs(p.get("crs")),
        # Below zero: past versions (as-of) come first.
        after=integer(request, "after", 0, -MAX_OFFSET, MAX_OFFSET) if "after" in p else None,
    )


def item_query(request: HTTPConnection, layer: features.LayerSchema) -> features.ItemsQuery:
    """The validated query of a one-feature request (:data:`ITEM`).

    Raises:
        InvalidInputError: a malformed or unknown parameter, or an unknown property.
    """
    ITEM.check(request)
    p = request.query_params
    return features.ItemsQuery(
        properties=features.parse_properties(layer, p.get("properties")),
        skip_geometry=flag(request, "skipGeometry"),
        crs=features.serving_crs(p.get("crs")),
    )


def as_of(request: HTTPConnection) -> dt.datetime | None:
    """The ``as-of`` parameter: the moment whose edition to read (None: as it is).

    Raises:
        InvalidInputError: not a date or date-time.
    """
    text = request.query_params.get("as-of")
    return None if text is None else history.parse_as_of(text)


def feature_id(collection_id: str, text: str) -> int:
    """A feature id from a path (a feature that cannot exist is a 404, not a 400).

    Raises:
        NotFoundError: not an integer of at most 18 digits.
    """
    digits = text.removeprefix("-")  # negative: a past version (as-of)
    if not digits.isdigit() or len(digits) > 18:
        msg = f"collection {collection_id!r} has no feature {text!r}"
        raise NotFoundError(msg)
    return int(text)


def tile(request: HTTPConnection) -> TileAddress:
    """The tile of the path (``tms_id``, ``z``, ``row``, ``col``), checked.

    Raises:
        InvalidInputError: a part that is not a whole number.
        NotFoundError: an unknown tile matrix set, or a tile outside it.
    """
    p = request.path_params
    numbers = []
    for name in ("z", "row", "col"):
        text = str(p[name])
        if not text.isdigit() or len(text) > 9:
            msg = f"{name} must be a whole number, not {text[:20]!r}"
            raise InvalidInputError(msg)
        numbers.append(int(text))
    max_zoom = request.app.state.settings.tiles.max_zoom
    return address(str(p["tms_id"]), numbers[0], numbers[1], numbers[2], max_zoom)


def style(request: HTTPConnection, bands_param: str = "bands") -> raster.Style:
    """What a raster tile or subset shows: bands or an expression, rescaling, colours.

    Raises:
        InvalidInputError: bands and an expression together.
    """
    q = request.query_params
    bands = tuple(b.strip() for b in (q.get(bands_param) or "").split(",") if b.strip())
    if q.get("expression") and bands:
        msg = f"give {bands_param} or an expression, not both"
        raise InvalidInputError(msg)
    return raster.Style(q.get("expression") or None, bands, q.get("rescale"), q.get("colormap"))


def image_format(request: HTTPConnection, allowed: Mapping[str, str]) -> str:
    """``f`` among ``allowed`` (the first when absent).

    Raises:
        InvalidInputError: a format the resource does not serve.
    """
    fmt = (request.query_params.get("f") or next(iter(allowed))).lower()
    if fmt not in allowed:
        msg = f"f={fmt!r} is not served here; use one of {', '.join(allowed)}"
        raise InvalidInputError(msg)
    return fmt
