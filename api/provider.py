"""pygeoapi's feature provider plugin for the platform's vector layers.

pygeoapi loads it by its dotted name (``api.provider.PlatformProvider``) from the
configuration :mod:`api.engine` generates from the catalog, and calls it for what its
handlers serve from data: queryables and schemas (:meth:`get_fields`), and the pages it
renders itself (HTML and JSON-LD items). The SQL is the platform's own
(:mod:`spatial.features`, :mod:`spatial.filters`): bound parameters, PostGIS-built
GeoJSON, geometry transformed in the database.

pygeoapi runs providers on worker threads, so this one reads through the app's
thread pool (:meth:`api.db.Database.sync`, the database in the provider definition).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from psycopg import sql
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)
from pygeofilter.backends.cql2_json import to_cql2

from api.db import Database
from spatial import features, filters
from spatial.errors import InvalidInputError

PLATFORM_FILTER: ContextVar[sql.Composable | None] = ContextVar("platform_filter", default=None)
"""The request's ``filter`` and queryable parameters, parsed and compiled by the platform
(CQL2; pygeoapi parses ``filter`` as ECQL). The routes set it; pygeoapi's handler runs in
a copy of their context and never sees the parameters (:class:`~api.engine.Engine`)."""
PLATFORM_PARAMS: ContextVar[features.Params | None] = ContextVar("platform_params", default=None)
PLATFORM_EDITION: ContextVar[int | None] = ContextVar("platform_edition", default=None)
"""The past edition the request's ``as-of`` asks for (None: the layer as it is)."""


class PlatformProvider(BaseProvider):  # type: ignore[misc]
    """A platform vector collection, as pygeoapi's ``feature`` provider.

    The provider definition carries ``db`` (the worker's :class:`~api.db.Database`), ``layer`` (the
    :class:`~spatial.features.LayerSchema` from the catalog) and ``storage_crs``.
    """

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        self.layer: features.LayerSchema = provider_def["layer"].value
        self.storage_crs = provider_def["storage_crs"]
        self.titles: dict[str, str] = provider_def.get("titles") or {}
        self.db: Database = provider_def["db"].value
        self.id_field = "id"
        self.time_field = self.layer.temporal
        self.get_fields()

    def get_fields(self) -> dict[str, dict[str, str]]:
        if not self._fields:
            for column, pgtype in self.layer.fields.items():
                kind, fmt = features.JSON_TYPES.get(pgtype, ("string", None))
                field = {"title": self.titles.get(column, column), "type": kind}
                self._fields[column] = field | ({"format": fmt} if fmt else {})
        return dict(self._fields)

    def query(  # noqa: PLR0917 - pygeoapi's provider interface
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list[float] | None = None,
        datetime_: str | None = None,
        properties: list[tuple[str, str]] | None = None,
        sortby: list[dict[str, str]] | None = None,
        select_properties: list[str] | None = None,
        skip_geometry: bool = False,
        q: str | None = None,
        filterq: Any = None,
        crs_transform_spec: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """A page of features as a GeoJSON FeatureCollection (a dict, as pygeoapi wants).

        ``bbox`` is in the storage CRS and its axis order (pygeoapi transformed it);
        ``properties`` are equality conditions on queryables; ``filterq`` is the
        pygeofilter tree of ``filter``, compiled as CQL2-JSON by the platform.
        """
        try:
            query = self._items_query(
                offset=offset, limit=limit, bbox=bbox, datetime_=datetime_,
                properties=properties, sortby=sortby, select_properties=select_properties,
                skip_geometry=skip_geometry, filterq=filterq, spec=crs_transform_spec,
            )  # fmt: skip
        except InvalidInputError as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc)) from exc
        layer = self._layer()
        statement, params = features.page_statement(layer, query)
        with self.db.sync() as conn:
            row = conn.execute(statement, params).fetchone()
        page, returned, counted, _ = row if row else ("", 0, None, None)
        matched = counted if features.needs_count(layer, query) else layer.feature_count
        body: dict[str, Any] = {"type": "FeatureCollection", "numberReturned": returned}
        if matched is not None:
            body["numberMatched"] = matched
        body["features"] = [] if resulttype == "hits" else json.loads(f"[{page}]")
        if resulttype == "hits":
            body["numberReturned"] = 0
        return body

    def get(self, identifier: Any, crs_transform_spec: Any = None, **kwargs: Any) -> dict[str, Any]:
        """One feature by id.

        Raises:
            ProviderItemNotFoundError: no such feature.
        """
        text = str(identifier)
        digits = text.removeprefix("-")
        if not digits.isdigit() or len(digits) > 18:
            raise ProviderItemNotFoundError(user_msg=f"no feature {text!r}")
        query = features.ItemsQuery(crs=self._crs(crs_transform_spec))
        statement, params = features.item_statement(self._layer(), int(text), query)
        with self.db.sync() as conn:
            row = conn.execute(statement, params).fetchone()
        if row is None:
            raise ProviderItemNotFoundError(user_msg=f"no feature {text!r}")
        feature: dict[str, Any] = json.loads(row[0])
        return feature

    def _layer(self) -> features.LayerSchema:
        edition = PLATFORM_EDITION.get()
        return self.layer if edition is None else replace(self.layer, edition=edition)

    def _crs(self, spec: Any) -> features.ServingCrs:
        return features.serving_crs(spec.target_crs_uri if spec else self.storage_crs)

    def _items_query(
        self, *, offset: int, limit: int, bbox: list[float] | None, datetime_: str | None,
        properties: list[tuple[str, str]] | None, sortby: list[dict[str, str]] | None,
        select_properties: list[str] | None, skip_geometry: bool, filterq: Any, spec: Any,
    ) -> features.ItemsQuery:  # fmt: skip
        params = features.Params(PLATFORM_PARAMS.get() or {})
        where = PLATFORM_FILTER.get()
        if where is None and (properties or filterq is not None):
            args = filters.equalities(self.layer, list(properties or []))
            if filterq is not None:
                args.append(filters.parse(to_cql2(filterq), "cql2-json"))
            tree = args[0] if len(args) == 1 else {"op": "and", "args": args}
            where = filters.compile_filter(tree, self.layer, params)
        return features.ItemsQuery(
            limit=limit,
            offset=offset,
            bbox=tuple(bbox) if bbox else None,  # type: ignore[arg-type]
            bbox_crs=features.serving_crs(self.storage_crs),
            datetime=features.parse_datetime(datetime_),
            properties=tuple(select_properties) if select_properties else None,
            skip_geometry=skip_geometry,
            sortby=tuple(
                (self.layer.column(s["property"]), s.get("order", "+") != "-") for s in sortby or []
            ),
            crs=self._crs(spec),
            where=where,
            params=params,
        )

    def __repr__(self) -> str:
        return f"<PlatformProvider {self.layer.id}>"


RECORD_FIELDS: dict[str, dict[str, Any]] = {
    "id": {"type": "string"},
    "type": {"type": "string", "enum": ["vector", "raster", "gps"]},
    "title": {"type": "string"},
    "description": {"type": "string"},
    "keywords": {"type": "string"},
    "subsystems": {"type": "string"},
    "crs": {"type": "string"},
    "featureCount": {"type": "integer"},
    "version": {"type": "integer"},
    "updated": {"type": "string", "format": "date-time"},
}
"""The properties of a catalog record, and what they can be searched by (``keywords``
and ``subsystems`` match when the record has the value)."""
RECORD_PROFILE = "http://www.opengis.net/def/profile/OGC/0/ogc-record"
"""The profile every record links (OGC API - Records, ``/req/record-core/default-mediatype``)."""


class SceneProvider(BaseProvider):  # type: ignore[misc]
    """pygeoapi's view of an imagery collection: the grid its documents show, from the
    catalog entry (the newest scene's shape and resolution). It reads no file: the
    platform serves the pixels itself (:mod:`api.routers.rasters`)."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        height, width = provider_def.get("shape") or (0, 0)
        step = provider_def.get("resolution") or 0
        self._coverage_properties = {"width": width, "height": height, "resx": step,
                                     "resy": step}  # fmt: skip


class CatalogProvider(BaseProvider):  # type: ignore[misc]
    """The catalog as pygeoapi's ``record`` provider: one record per collection.

    Records come from the worker's catalog snapshot in the provider definition
    (``catalog``), which follows every change, so a search costs no database round trip.
    """

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        self.catalog = provider_def["catalog"].value
        self.base = provider_def["base"]
        self.id_field = "id"
        self.time_field = "updated"
        self._fields = {k: dict(v) for k, v in RECORD_FIELDS.items()}

    def get_fields(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in RECORD_FIELDS.items()}

    def query(  # noqa: PLR0917 - pygeoapi's provider interface
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list[float] | None = None,
        datetime_: str | None = None,
        properties: list[tuple[str, str]] | None = None,
        sortby: list[dict[str, str]] | None = None,
        select_properties: list[str] | None = None,
        skip_geometry: bool = False,
        q: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Records matching every criterion: ``q`` (any of its comma-separated terms in
        the id, title, description or a keyword; a term's words together, in order, in
        any case: OGC API - Records), ``bbox`` (the footprint intersects), ``datetime``
        (the temporal extent overlaps) and property values; sorted before the
        ``properties`` are selected, so that any property sorts."""
        try:
            window = features.parse_datetime(datetime_)
        except InvalidInputError as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc)) from exc
        terms = _terms(q)
        hits = [
            self._record(c, None, skip_geometry)
            for c in self.catalog
            if _matches(c, terms, bbox, window, properties or [])
        ]
        for key in reversed(sortby or []):
            hits.sort(key=_by(key["property"]), reverse=key.get("order") == "-")
        page = [] if resulttype == "hits" else hits[offset : offset + limit]
        for record in page:
            # pygeoapi adds the catalog's link to a record served alone, not to a list's
            record["links"].append(self._catalog_link())
            if select_properties:
                record["properties"] = {
                    k: v for k, v in record["properties"].items() if k in select_properties
                }
        return {"type": "FeatureCollection", "features": page,
                "numberMatched": len(hits), "numberReturned": len(page)}  # fmt: skip

    def get(self, identifier: Any, **kwargs: Any) -> dict[str, Any]:
        """Raises:
        ProviderItemNotFoundError: no such collection."""
        found = next((c for c in self.catalog if c.id == str(identifier)), None)
        if found is None:
            raise ProviderItemNotFoundError(user_msg=f"the catalog has no record {identifier!r}")
        return self._record(found, None, False)

    def _record(self, c: Any, select: list[str] | None, skip_geometry: bool) -> dict[str, Any]:
        geometry = None
        if c.bbox and not skip_geometry:
            w, s, e, n = c.bbox
            ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
            geometry = {"type": "Polygon", "coordinates": [ring]}
        props = {
            "type": c.kind,
            "title": c.title,
            "description": c.description or "",
            "keywords": list(c.keywords),
            "subsystems": list(c.subsystems),
            "crs": c.crs,
            "featureCount": c.feature_count,
            "version": c.version,
            "updated": c.updated_at.isoformat() if c.updated_at else None,
        }
        if select:
            props = {k: v for k, v in props.items() if k in select}
        return {
            "id": c.id,
            "type": "Feature",
            "geometry": geometry,
            "properties": props,
            "links": [
                {
                    "rel": "describes",
                    "type": "application/json",
                    "title": c.title,
                    "href": f"{self.base}/collections/{c.id}",
                },
                # a type on every link (OGC API - Features /req/core/f-links): the
                # definition server answers this URI with a page
                {"rel": "profile", "type": "text/html", "href": RECORD_PROFILE},
            ],
        }

    def _catalog_link(self) -> dict[str, str]:
        return {"rel": "collection", "type": "application/json", "title": "Catalog",
                "href": f"{self.base}/collections/{self.data}"}  # fmt: skip


def _by(name: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    """The sort key of records by one property, by its value (numbers as numbers;
    missing values last)."""

    def key(record: dict[str, Any]) -> tuple[bool, Any]:
        value = record["id"] if name == "id" else record["properties"].get(name)
        return (value is None, value)

    return key


def _terms(q: str | None) -> list[re.Pattern[str]]:
    """The search terms of ``q``: separated by commas, each its words in order with any
    white space between them, case-folded."""
    phrases = [term.casefold().split() for term in (q or "").split(",")]
    return [re.compile(r"\s+".join(map(re.escape, words))) for words in phrases if words]


def _matches(
    c: Any,
    terms: list[re.Pattern[str]],
    bbox: list[float] | None,
    window: tuple[str | None, str | None] | None,
    properties: list[tuple[str, str]],
) -> bool:
    texts = [t.casefold() for t in (c.id, c.title, c.description or "", *c.keywords)]
    values = {"type": [c.kind], "title": [c.title], "crs": [c.crs], "keywords": c.keywords,
              "subsystems": c.subsystems, "description": [c.description]}  # fmt: skip
    return (
        (not terms or any(term.search(text) for term in terms for text in texts))
        and all(value in values.get(name, ()) for name, value in properties)
        and (not bbox or _overlaps(c.bbox, bbox))
        and (window is None or _during(c.temporal_start, c.temporal_end, window))
    )


def _overlaps(box: tuple[float, ...] | None, bbox: list[float]) -> bool:
    if box is None:
        return False
    w, s, e, n = box
    return not (e < bbox[0] or w > bbox[2] or n < bbox[1] or s > bbox[3])


def _during(
    first: dt.datetime | None, last: dt.datetime | None, window: tuple[str | None, str | None]
) -> bool:
    """Whether a temporal extent overlaps an interval (ISO 8601 ends, None when open)."""
    begin, end = _aware(first or last), _aware(last or first)
    if begin is None or end is None:
        return False
    start, stop = (_aware(dt.datetime.fromisoformat(t)) if t else None for t in window)
    return (stop is None or begin <= stop) and (start is None or end >= start)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)
