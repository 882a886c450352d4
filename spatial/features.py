"""The features of a vector collection, as GeoJSON built by PostGIS.

This is the data path of OGC API - Features (items and item). Each request is one SQL
statement that returns the page already serialised: every feature is written by
``ST_AsGeoJSON`` and ``json_build_object`` and the page joined by ``string_agg``, so
Python only frames the bytes (no feature is parsed or re-serialised on the way out).

Every value from a request is bound; identifiers (the layer's own column names, checked
against its schema first) are quoted by psycopg. Filters from CQL2 arrive as composed
SQL built the same way (:mod:`spatial.filters`). A caller's row restriction is a
:class:`Rows` (composed SQL), applied by :func:`source`.

``numberMatched`` is exact and free without a filter (the catalog's feature count, kept
by every writer), exact up to :data:`COUNT_CAP` matches with one (counted in the same
statement as the page), and beyond the cap it is the planner's estimate, flagged as such.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from psycopg import sql
from pyproj import CRS
from pyproj.exceptions import CRSError

from spatial.catalog import CollectionRecord, Kind
from spatial.errors import InvalidInputError
from spatial.ingest.history import key_expr

COUNT_CAP = 100_000
"""Matches counted exactly; beyond this, ``numberMatched`` is estimated."""
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
SERVED_EPSG = (4326, 3857, 4490, *range(4513, 4555))
"""The CRSs every layer can be served in, besides CRS84 (Part 2)."""
_URI = re.compile(
    r"^(?:https?://www\.opengis\.net/def/crs/(?:EPSG/0/(?P<epsg>\d+)|OGC/1\.3/(?P<ogc>CRS84))"
    r"|\[?EPSG:(?P<short>\d+)\]?|(?P<bare>CRS84))$",
    re.I,
)


@dataclass(frozen=True)
class ServingCrs:
    """A CRS a response is written in (or a bbox is given in)."""

    uri: str
    srid: int
    """The PostGIS SRID with lon/lat or easting/northing storage order."""
    flip: bool
    """True when the CRS's axis order is lat/lon or northing/easting (EPSG:4326, 4490,
    the Gauss-Krüger zones): coordinates are swapped on the way in and out."""
    digits: int
    """Decimal digits written: 9 for degrees (below a millimetre), 4 for metres."""


@lru_cache(maxsize=64)
def serving_crs(uri: str | None) -> ServingCrs:
    """Parse a ``crs`` or ``bbox-crs`` value (an OGC URI, ``EPSG:n`` or ``CRS84``).

    Raises:
        InvalidInputError: not a CRS URI, or not one the platform serves.
    """
    if uri is None or not uri.strip():
        return serving_crs(CRS84)
    match = _URI.match(uri.strip())
    if match is None:
        msg = f"crs {uri!r} is not a CRS URI (e.g. {CRS84} or {_EPSG_URI.format(4490)})"
        raise InvalidInputError(msg)
    if match["ogc"] or match["bare"]:
        return ServingCrs(uri=CRS84, srid=4326, flip=False, digits=9)
    digits = match["epsg"] or match["short"]
    epsg = int(digits) if digits.isascii() and len(digits) <= 9 else 0
    if epsg not in SERVED_EPSG:
        msg = f"crs EPSG:{digits[:20]} is not served; use one of {', '.join(supported_crs())}"
        raise InvalidInputError(msg)
    try:
        crs = CRS.from_epsg(epsg)
    except CRSError as exc:  # pragma: no cover - every served code is in PROJ's database
        raise InvalidInputError(str(exc)) from exc
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return ServingCrs(
        uri=_EPSG_URI.format(epsg),
        srid=epsg,
        flip=first in {"north", "south"},
        digits=9 if crs.is_geographic else 4,
    )


def supported_crs() -> list[str]:
    """Every CRS URI a collection can be served in, CRS84 first."""
    return [CRS84, *(_EPSG_URI.format(code) for code in SERVED_EPSG)]


def storage_crs_uri(srid: int) -> str:
    """The URI of a layer's storage CRS."""
    return _EPSG_URI.format(srid)


FEATURE_KINDS = (Kind.VECTOR, Kind.GPS)
"""Collections served as features: vector layers, and the GPS views (read only)."""


def is_vector_layer(record: CollectionRecord) -> bool:
    """Whether a catalog entry is a vector layer with a table (features and tiles)."""
    return record.kind in FEATURE_KINDS and bool(record.storage_table) and record.srid is not None


JSON_TYPES = {
    "smallint": ("integer", None),
    "integer": ("integer", None),
    "bigint": ("integer", None),
    "real": ("number", None),
    "double precision": ("number", None),
    "boolean": ("boolean", None),
    "text": ("string", None),
    "date": ("string", "date"),
    "timestamp": ("string", "date-time"),
}
"""JSON Schema type and format of each column type a vector layer may have."""


@dataclass(frozen=True)
class Rows:
    """The rows of a layer a caller may see: a condition over the row ``t`` as composed SQL,
    its values written as literals quoted by the driver (a restriction is part of statement
    texts that are cached and shared). Equal, and hashed, by its text (:attr:`key`)."""

    condition: sql.Composable = field(compare=False)
    key: str = ""
    """The condition's SQL text: what identifies it in caches and groupings."""

    @classmethod
    def of(cls, condition: sql.Composable) -> Rows:
        """The rows matching ``condition`` (composed SQL over ``t``, values as literals)."""
        return cls(condition, condition.as_string(None))

    @classmethod
    def any_of(cls, parts: Iterable[Rows]) -> Rows:
        """The rows of any of ``parts`` (none: no row at all)."""
        unique = list({p.key: p for p in parts}.values())
        if not unique:
            return NO_ROWS
        if len(unique) == 1:
            return unique[0]
        return cls.of(sql.SQL(" OR ").join(sql.SQL("({})").format(p.condition) for p in unique))


NO_ROWS = Rows(sql.SQL("FALSE"), "FALSE")
"""A restriction that leaves no row (a grant whose filter no longer fits its layer)."""


@dataclass(frozen=True)
class LayerSchema:
    """What the SQL needs to know about a vector layer's table."""

    id: str
    schema: str
    table: str
    srid: int
    fields: Mapping[str, str]
    """Attribute columns and their PostgreSQL types, in table order."""
    feature_count: int | None = None
    temporal: str | None = None
    """The date or timestamp column ``datetime`` filters on, if the layer has one."""
    restriction: Rows | None = None
    """The rows the caller may see (from the access policy, :mod:`spatial.access`), or
    None for every row. :func:`source` applies it."""
    key_kind: str = "numeric"
    """What ``id`` (the column ``fid``) holds: ``numeric`` feature numbers, or ``text``
    (STAC item ids)."""
    key: str | None = None
    """The attribute that keeps a feature's identity across editions (None: its content)."""
    edition: int | None = None
    """A past edition to read instead of the current rows (the ``as-of`` parameter), or
    None for the layer as it is. :func:`source` applies it."""

    @classmethod
    def of(cls, record: CollectionRecord, restriction: Rows | None = None) -> LayerSchema:
        """The schema recorded in a vector collection's catalog entry, seen through a
        row restriction.

        Raises:
            InvalidInputError: the collection is not a vector layer.
        """
        if not is_vector_layer(record) or record.storage_table is None or record.srid is None:
            msg = f"collection {record.id!r} is not a vector layer"
            raise InvalidInputError(msg)
        fields: dict[str, str] = dict(record.properties.get("fields") or {})
        temporal = record.properties.get("temporal_field")
        if temporal is None:
            temporal = next((c for c, t in fields.items() if t in {"date", "timestamp"}), None)
        return cls(
            id=record.id,
            schema=record.storage_schema or "layers",
            table=record.storage_table,
            srid=record.srid,
            fields=fields,
            feature_count=record.feature_count,
            temporal=temporal,
            restriction=restriction,
            key=record.properties.get("key"),
        )

    def column(self, name: str) -> str:
        """A property name checked against the layer's columns.

        Raises:
            InvalidInputError: the layer has no such property.
        """
        if name in self.fields:
            return name
        known = ", ".join(self.fields) or "none"
        msg = f"collection {self.id!r} has no property {name!r}; its properties are: {known}"
        raise InvalidInputError(msg)


@dataclass(frozen=True)
class ItemsQuery:
    """One items request, validated."""

    limit: int = 10
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: ServingCrs = field(default_factory=lambda: serving_crs(CRS84))
    datetime: tuple[str | None, str | None] | None = None
    """An instant (start == end) or an interval with open ends as None, ISO 8601."""
    properties: tuple[str, ...] | None = None
    skip_geometry: bool = False
    sortby: tuple[tuple[str, bool], ...] = ()
    """(column, ascending) pairs."""
    crs: ServingCrs = field(default_factory=lambda: serving_crs(CRS84))
    after: int | None = None
    """Keyset paging: only features with a larger id (with the default order only; the
    ``next`` links carry it, so deep pages cost what the first one does)."""
    where: sql.Composable | None = None
    """A filter condition built from CQL2, its values as placeholders in ``params``."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The values of ``where``'s placeholders (names not starting with ``p``)."""

    @property
    def filtered(self) -> bool:
        """Whether anything narrows the layer (then matches must be counted)."""
        return self.bbox is not None or self.datetime is not None or self.where is not None


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """A ``bbox`` parameter: four numbers (a 3D bbox of six keeps its x/y).

    Raises:
        InvalidInputError: not 4 or 6 finite numbers, or min above max.
    """
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        msg = f"bbox {text!r} must be 4 numbers: minx,miny,maxx,maxy"
        raise InvalidInputError(msg)
    xmin, ymin, xmax, ymax = values
    if ymin > ymax:
        msg = f"bbox {text!r}: the lower bound {ymin} is above the upper bound {ymax}"
        raise InvalidInputError(msg)
    return xmin, ymin, xmax, ymax


def parse_sortby(layer: LayerSchema, text: str | None) -> tuple[tuple[str, bool], ...]:
    """``sortby=+name,-area`` (a leading ``+``, ``-`` or none; ``id`` sorts by feature id).

    Raises:
        InvalidInputError: an unknown property.
    """
    out: list[tuple[str, bool]] = []
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        ascending = not item.startswith("-")
        name = item.lstrip("+-").strip()
        out.append(("fid" if name == "id" else layer.column(name), ascending))
    return tuple(out)


def parse_properties(layer: LayerSchema, text: str | None) -> tuple[str, ...] | None:
    """``properties=a,b``: the properties to return (None: all).

    Raises:
        InvalidInputError: an unknown property.
    """
    if text is None:
        return None
    return tuple(layer.column(p.strip()) for p in text.split(",") if p.strip())


def parse_datetime(text: str | None) -> tuple[str | None, str | None] | None:
    """``datetime``: an instant or ``start/end`` with ``..`` (or nothing) for an open end.

    Raises:
        InvalidInputError: an interval of two open ends, or more than two parts.
    """
    if text is None or not text.strip():
        return None
    parts = [p.strip() for p in text.split("/")]
    if len(parts) == 1:
        instant = iso_instant(parts[0], "datetime")
        return instant, instant
    if len(parts) != 2:
        msg = f"datetime {text!r} must be an instant or an interval start/end"
        raise InvalidInputError(msg)
    start, end = (None if p in {"", ".."} else iso_instant(p, "datetime") for p in parts)
    if start is None and end is None:
        msg = f"datetime {text!r}: an interval needs at least one end"
        raise InvalidInputError(msg)
    return start, end


class Params(dict[str, Any]):
    """Bound values of a statement under construction, by placeholder name."""

    def bind(self, value: Any) -> sql.Composable:
        """A placeholder for ``value`` (never the value in the SQL text)."""
        name = f"p{len(self)}"
        self[name] = value
        return sql.Placeholder(name)


@lru_cache(maxsize=64)
def geographic(srid: int) -> bool:
    try:
        return bool(CRS.from_epsg(srid).is_geographic)
    except CRSError:
        return False


def iso_instant(text: str, what: str) -> str:
    """An RFC 3339 date or date-time, checked (and returned as given).

    Only the forms PostgreSQL reads too (``2024-05-01``, ``2024-05-01T08:00[:00[.5]]``
    with ``Z``, ``±hh[:mm]`` or no offset, ``T``, ``t`` or a space between), and only
    instants between the years 1 and 9999 once in UTC (no offset is UTC).

    Raises:
        InvalidInputError: not a date or date-time, or out of range.
    """
    try:
        if not _RFC3339.fullmatch(text):
            raise ValueError
        parsed = dt.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
        if parsed.tzinfo is not None:
            parsed.astimezone(dt.UTC)  # 0001-01-01T00:00+01:00 is before the year 1
    except (ValueError, OverflowError):
        msg = (
            f"{what} {text[:40]!r} is not an RFC 3339 date or date-time (e.g. 2024-05-01T08:00:00Z)"
        )
        raise InvalidInputError(msg) from None
    return text


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
    r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)


def _geometry(layer: LayerSchema, crs: ServingCrs, params: Params) -> sql.Composable:
    geom: sql.Composable = sql.SQL("t.geom")
    if crs.srid != layer.srid:
        geom = sql.SQL("ST_Transform({}, {})").format(geom, params.bind(crs.srid))
    if crs.flip:
        geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
    return geom


def _conditions(layer: LayerSchema, q: ItemsQuery, params: Params) -> sql.Composable:
    conds: list[sql.Composable] = []
    if q.bbox is not None:
        xmin, ymin, xmax, ymax = q.bbox
        if q.bbox_crs.flip:
            xmin, ymin, xmax, ymax = ymin, xmin, ymax, xmax
        envelope: sql.Composable = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})").format(
            *(params.bind(float(v)) for v in (xmin, ymin, xmax, ymax)),
            params.bind(q.bbox_crs.srid),
        )
        if q.bbox_crs.srid != layer.srid:
            if not (geographic(q.bbox_crs.srid) and geographic(layer.srid)):
                # Edges stay straight in the layer's CRS only when they are short; between
                # two lon/lat CRSs they stay meridians and parallels.
                step = max(xmax - xmin, ymax - ymin) / 16 or 1.0
                envelope = sql.SQL("ST_Segmentize({}, {})").format(envelope, params.bind(step))
            envelope = sql.SQL("ST_Transform({}, {})").format(envelope, params.bind(layer.srid))
        conds.append(sql.SQL("ST_Intersects(t.geom, {})").format(envelope))
    if q.datetime is not None:
        if layer.temporal is None:
            msg = f"collection {layer.id!r} has no date or time property to filter on"
            raise InvalidInputError(msg)
        column = sql.SQL("t.{}").format(sql.Identifier(layer.temporal))
        start, end = q.datetime
        if start is not None:
            conds.append(sql.SQL("{} >= {}::timestamptz").format(column, params.bind(start)))
        if end is not None:
            conds.append(sql.SQL("{} <= {}::timestamptz").format(column, params.bind(end)))
    if q.where is not None:
        conds.append(sql.SQL("({})").format(q.where))
    if not conds:
        return sql.SQL("TRUE")
    return sql.SQL(" AND ").join(conds)


def _feature(layer: LayerSchema, q: ItemsQuery, params: Params) -> sql.Composable:
    """The SQL text of one feature, for the row ``t``."""
    columns = q.properties if q.properties is not None else tuple(layer.fields)
    props: sql.Composable = (
        sql.SQL("json_build_object({})::text").format(
            sql.SQL(", ").join(
                sql.SQL("{}, t.{}").format(sql.Literal(c), sql.Identifier(c)) for c in columns
            )
        )
        if columns
        else sql.Literal("{}")  # ``properties=`` (none): an empty object
    )
    geometry: sql.Composable = (
        sql.SQL("'null'")
        if q.skip_geometry
        else sql.SQL("coalesce(ST_AsGeoJSON({}, {}, 0), 'null')").format(
            _geometry(layer, q.crs, params), params.bind(q.crs.digits)
        )
    )
    return sql.SQL(
        """'{{"type":"Feature","id":' || t.fid || ',"geometry":' || {} """
        """|| ',"properties":' || {} || '}}'"""
    ).format(geometry, props)


def source(layer: LayerSchema) -> sql.Composable:
    """The layer's rows as a caller may read them: the table (or, with an edition, the
    rows as they were then), or only its rows that match the caller's restriction. Every
    statement that reads a layer names it through this (alias it ``t``); PostgreSQL folds
    the subquery into the plan."""
    if layer.edition is None:
        return table_rows(layer.schema, layer.table, layer.restriction)
    rows = sql.SQL("({})").format(edition_rows(layer))
    if layer.restriction is None:
        return rows
    return sql.SQL("(SELECT * FROM {} t WHERE {})").format(rows, layer.restriction.condition)


_TYPE_NAME = re.compile(r"[a-z][a-z0-9 ]*")


def edition_rows(layer: LayerSchema) -> sql.Composed:
    """The layer as it was in ``layer.edition``, with the table's columns: the current
    rows not changed since, and the versions in ``platform.feature_history`` current then.

    Past versions are numbered ``-id`` of their history row, so they never meet a current
    feature's number; their properties are cast back to the columns' types, and a property
    the layer did not have then is null.
    """
    if layer.edition is None:  # pragma: no cover - source() reads the table itself
        msg = "edition_rows needs an edition"
        raise ValueError(msg)
    columns = list(layer.fields)
    casts = []
    for column, pgtype in layer.fields.items():
        if not _TYPE_NAME.fullmatch(pgtype):  # types come from the catalog, never a request
            msg = f"collection {layer.id!r}: column {column!r} has an unknown type {pgtype!r}"
            raise InvalidInputError(msg)
        casts.append(
            sql.SQL("(h.properties ->> {})::{}").format(sql.Literal(column), sql.SQL(pgtype))
        )
    selected = sql.SQL("").join(sql.SQL(", c.{}").format(sql.Identifier(c)) for c in columns)
    past = sql.SQL("").join(sql.SQL(", {}").format(cast) for cast in casts)
    return sql.SQL("""
        SELECT c.fid{selected}, c.geom FROM {table} c
        WHERE NOT EXISTS (
            SELECT 1 FROM platform.feature_changes fc
            WHERE fc.collection_id = {cid} AND fc.edition > {edition} AND fc.key = {ckey})
        UNION ALL
        SELECT -h.id{past}, ST_Transform(h.geom, {srid})
        FROM platform.feature_history h
        WHERE h.collection_id = {cid} AND h.edition_from <= {edition} AND h.edition_to > {edition}
        """).format(
        selected=selected,
        past=past,
        table=sql.Identifier(layer.schema, layer.table),
        ckey=key_expr("c", layer.key, columns),
        cid=sql.Literal(layer.id),
        edition=sql.Literal(layer.edition),
        srid=sql.Literal(layer.srid),
    )


def table_rows(schema: str, table: str, restriction: Rows | None) -> sql.Composable:
    """A layer table, or its rows that match ``restriction`` (see :func:`source`)."""
    name = sql.Identifier(schema, table)
    if restriction is None:
        return name
    return sql.SQL("(SELECT * FROM {} t WHERE {})").format(name, restriction.condition)


def _order(q: ItemsQuery) -> list[sql.Composable]:
    """The page order: the ``sortby`` columns, then the feature id (a total order)."""
    order: list[sql.Composable] = [
        sql.SQL("t.{} {} NULLS LAST").format(sql.Identifier(c), sql.SQL("ASC" if up else "DESC"))
        for c, up in q.sortby
    ]
    order.append(sql.SQL("t.fid ASC NULLS LAST"))
    return order


def _page_where(where: sql.Composable, q: ItemsQuery, params: Params) -> tuple[sql.Composable, int]:
    """The page's condition and offset: keyset paging replaces the offset when it can."""
    if q.after is not None and not q.sortby:
        return sql.SQL("{} AND t.fid > {}").format(where, params.bind(q.after)), 0
    return where, q.offset


def needs_count(layer: LayerSchema, q: ItemsQuery) -> bool:
    """Whether the matches must be counted: the catalog's count is of every current row,
    so it serves only an unfiltered query of an unrestricted layer as it is."""
    return q.filtered or layer.restriction is not None or layer.edition is not None


def page_statement(layer: LayerSchema, q: ItemsQuery) -> tuple[sql.Composed, Params]:
    """One row: (the page's features joined by commas, how many, matches or None, the
    largest feature id of the page).

    The matches are counted (up to :data:`COUNT_CAP` + 1) only when the query filters;
    without a filter the caller has the exact count from the catalog.
    """
    params = Params(q.params)
    exprs: list[sql.Composable] = [sql.SQL("t.{}").format(sql.Identifier(c)) for c, _ in q.sortby]
    exprs.append(sql.SQL("t.fid"))
    ups = [up for _, up in q.sortby] + [True]
    keys: list[sql.Composable] = [sql.Identifier(f"s{i}") for i in range(len(exprs))]
    # The aggregate orders by the sort keys the page query carries out.
    agg_order = sql.SQL(", ").join(
        sql.SQL("{} {} NULLS LAST").format(k, sql.SQL("ASC" if up else "DESC"))
        for k, up in zip(keys, ups, strict=True)
    )
    where = _conditions(layer, q, params)
    page_where, offset = _page_where(where, q, params)
    count: sql.Composable = (
        sql.SQL("(SELECT count(*) FROM (SELECT 1 FROM {} t WHERE {} LIMIT {}) c)").format(
            source(layer), where, params.bind(COUNT_CAP + 1)
        )
        if needs_count(layer, q)
        else sql.SQL("NULL::bigint")
    )
    statement = sql.SQL(
        "SELECT coalesce(string_agg(p.f, ',' ORDER BY {agg}), ''), count(p.f), {count}, "
        "max(p.{last}) FROM (SELECT {feature} AS f, {sorts} FROM {table} t WHERE {where} "
        "ORDER BY {order} LIMIT {limit} OFFSET {offset}) p"
    ).format(
        last=keys[-1],
        agg=agg_order,
        count=count,
        feature=_feature(layer, q, params),
        sorts=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(e, k) for e, k in zip(exprs, keys, strict=True)
        ),
        table=source(layer),
        where=page_where,
        order=sql.SQL(", ").join(_order(q)),
        limit=params.bind(q.limit),
        offset=params.bind(offset),
    )
    return statement, params


def rows_statement(layer: LayerSchema, q: ItemsQuery) -> tuple[sql.Composed, Params]:
    """The page as rows ``(id, properties..., geom)`` for file formats (CSV, FlatGeobuf).

    The geometry is in the response CRS with x/y in easting/northing (lon/lat) order, as
    GIS files store it whatever the CRS's axis order.
    """
    params = Params(q.params)
    columns = q.properties if q.properties is not None else tuple(layer.fields)
    where, offset = _page_where(_conditions(layer, q, params), q, params)
    unflipped = ServingCrs(uri=q.crs.uri, srid=q.crs.srid, flip=False, digits=q.crs.digits)
    statement = sql.SQL(
        "SELECT t.fid AS id{cols}, {geom} AS geom FROM {table} t WHERE {where} "
        "ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    ).format(
        cols=sql.SQL("").join(sql.SQL(", t.{}").format(sql.Identifier(c)) for c in columns),
        geom=sql.SQL("NULL::geometry") if q.skip_geometry else _geometry(layer, unflipped, params),
        table=source(layer),
        where=where,
        order=sql.SQL(", ").join(_order(q)),
        limit=params.bind(q.limit),
        offset=params.bind(offset),
    )
    return statement, params


def estimate_statement(layer: LayerSchema, q: ItemsQuery) -> tuple[sql.Composed, Params]:
    """``EXPLAIN`` of the matching rows, whose top plan row count estimates the matches."""
    params = Params(q.params)
    statement = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} t WHERE {}").format(
        source(layer), _conditions(layer, q, params)
    )
    return statement, params


def plan_rows(plan: Any) -> int:
    """The estimated row count at the top of an ``EXPLAIN (FORMAT JSON)`` result."""
    return int(plan[0]["Plan"]["Plan Rows"])


def etag_expr(layer: LayerSchema) -> sql.Composable:
    """A feature's ETag: a hash of its stored geometry and properties (for row ``t``)."""
    return key_expr("t", None, list(layer.fields))


def item_statement(layer: LayerSchema, fid: int, q: ItemsQuery) -> tuple[sql.Composed, Params]:
    """One row with the feature's text and its ETag, or no row."""
    params = Params()
    statement = sql.SQL("SELECT {}, {} FROM {} t WHERE t.fid = {}").format(
        _feature(layer, q, params), etag_expr(layer), source(layer), params.bind(fid)
    )
    return statement, params
