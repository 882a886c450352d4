"""The imagery catalog as STAC (SpatioTemporal Asset Catalog) documents, and item search.

Scenes live in ``rs.items`` next to the rest of the platform's tables, rather than in a
separate pgSTAC schema: the catalog, the access policy and the CQL2 compiler are then the
platform's own, the same for parcels and scenes (one ``filter`` grammar, one grant), and
a search is one indexed statement (GiST on the footprint, B-tree on the time). pgSTAC
(with its own roles, partitions and CQL2 implementation) and stac-fastapi (asyncpg, its
own app) would each have duplicated one of these.

Search takes ``bbox``, ``intersects``, ``datetime``, ``collections``, ``ids``, ``limit``,
a CQL2 ``filter`` (text or JSON) over the :data:`QUERYABLES` and a ``token`` for the
next page (keyset paging on time, collection and id, newest first).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from spatial import filters
from spatial.catalog import CollectionRecord
from spatial.errors import InvalidInputError
from spatial.features import LayerSchema, Params, parse_datetime

STAC_VERSION = "1.0.0"
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
]
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
]
QUERYABLES: dict[str, tuple[str, str, str]] = {
    "collection": ("text", "t.collection", "The collection's id"),
    "datetime": ("timestamp", "t.datetime", "Acquisition time"),
    "platform": ("text", "t.properties->>'platform'", "Satellite or aircraft"),
    "sensor": ("text", "t.properties->>'sensor'", "Sensor band table"),
    "gsd": ("double precision", "(t.properties->>'gsd')::float8", "Ground sample distance (m)"),
    "eo:cloud_cover": (
        "double precision",
        "(t.properties->>'eo:cloud_cover')::float8",
        "Cloud cover (%)",
    ),
    "proj:code": ("text", "t.properties->>'proj:code'", "CRS of the data"),
}
"""What a ``filter`` may name (besides ``id`` and ``geometry``): type, SQL, title."""
MAX_LIMIT = 1000
RASTER_STATISTICS = frozenset({"minimum", "maximum", "mean", "stddev", "valid_percent"})
"""The members of a band's ``statistics`` in the raster extension v1.1 (no others)."""


def _items_table() -> sql.Composable:
    columns = [
        sql.SQL("{} AS {}").format(sql.SQL(expr.replace("t.", "i.")), sql.Identifier(name))
        for name, (_t, expr, _d) in QUERYABLES.items()
        if name not in {"collection", "datetime"}
    ]
    return sql.SQL(
        "(SELECT i.collection_id AS collection, i.id AS fid, i.datetime, i.geom, "
        "i.properties, i.assets, {} FROM rs.items i)"
    ).format(sql.SQL(", ").join(columns))


SCHEMA = LayerSchema(
    id="stac items",
    schema="rs",
    table="items",
    srid=4326,
    fields={name: pgtype for name, (pgtype, _e, _d) in QUERYABLES.items()},
    temporal="datetime",
    key_kind="text",
)


@dataclass(frozen=True)
class Search:
    """An item search, as parsed from GET parameters or a POST body."""

    collections: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    intersects: dict[str, Any] | None = None
    datetime: tuple[str | None, str | None] | None = None
    filter: dict[str, Any] | None = None
    limit: int = 10
    token: tuple[str, str, str] | None = None

    @classmethod
    def parse(cls, values: dict[str, Any]) -> Search:
        """From GET parameters (strings) or a POST body (JSON values).

        Raises:
            InvalidInputError: a bad value, with the parameter named.
        """
        bbox = values.get("bbox")
        if isinstance(bbox, str):
            bbox = [v for v in bbox.split(",") if v.strip()]
        box = None
        if bbox is not None:
            try:
                numbers = [float(v) for v in bbox]
            except (TypeError, ValueError):
                numbers = []
            if len(numbers) == 6:
                numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
            if len(numbers) != 4 or numbers[1] > numbers[3]:
                raise InvalidInputError(f"bbox {bbox!r} must be 4 numbers: west,south,east,north")
            box = (numbers[0], numbers[1], numbers[2], numbers[3])
        intersects = values.get("intersects")
        if intersects is not None and (
            not isinstance(intersects, dict) or "type" not in intersects
        ):
            raise InvalidInputError("intersects must be a GeoJSON geometry object")
        if box is not None and intersects is not None:
            raise InvalidInputError("give bbox or intersects, not both")
        tree = None
        raw = values.get("filter")
        if raw is not None:
            lang = values.get("filter-lang") or values.get("filter_lang")
            tree = raw if isinstance(raw, dict) else filters.parse(str(raw), lang)
        return cls(
            collections=_names(values.get("collections"), "collections"),
            ids=_names(values.get("ids"), "ids"),
            bbox=box,
            intersects=intersects,
            datetime=parse_datetime(values.get("datetime")),
            filter=tree,
            limit=_limit(values.get("limit")),
            token=_token(values.get("token")),
        )


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"{what} must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _limit(value: Any) -> int:
    if value is None:
        return 10
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(
            f"limit must be a whole number from 1 to {MAX_LIMIT}, not {value!r}"
        )
    return limit


def token_of(row: dict[str, Any]) -> str:
    """The paging token after ``row``."""
    key = [row["datetime"].isoformat(), row["collection"], row["id"]]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _token(value: Any) -> tuple[str, str, str] | None:
    if value is None or value == "":
        return None
    try:
        text = str(value)
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        dt.datetime.fromisoformat(key[0])
        return (str(key[0]), str(key[1]), str(key[2]))
    except (ValueError, TypeError, IndexError, KeyError):
        raise InvalidInputError(
            f"token {str(value)[:40]!r} is not a token this server gave"
        ) from None


def search_statement(search: Search, readable: list[str]) -> tuple[sql.Composed, Params]:
    """One page of matching items (one row more than the limit, to know if there is a next
    page), newest first, among the collections the caller may read."""
    params = Params()
    wanted = [c for c in search.collections if c in readable] if search.collections else readable
    where: list[sql.Composable] = [
        sql.SQL("t.collection = ANY({})").format(params.bind(list(wanted)))
    ]
    if search.ids:
        where.append(sql.SQL("t.fid = ANY({})").format(params.bind(list(search.ids))))
    if search.bbox is not None:
        w, s, e, n = search.bbox
        where.append(
            sql.SQL("t.geom && ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
                params.bind(w), params.bind(s), params.bind(e), params.bind(n)
            )
        )
    if search.intersects is not None:
        where.append(
            sql.SQL("ST_Intersects(t.geom, ST_SetSRID(ST_GeomFromGeoJSON({}), 4326))").format(
                params.bind(json.dumps(search.intersects))
            )
        )
    if search.datetime is not None:
        start, end = search.datetime
        if start is not None:
            where.append(sql.SQL("t.datetime >= {}::timestamptz").format(params.bind(start)))
        if end is not None:
            bound = end + ("T23:59:59.999999Z" if len(end) == 10 else "")
            where.append(sql.SQL("t.datetime <= {}::timestamptz").format(params.bind(bound)))
    if search.filter is not None:
        where.append(filters.compile_filter(search.filter, SCHEMA, params))
    if search.token is not None:
        at, collection, fid = search.token
        where.append(
            sql.SQL("(t.datetime, t.collection, t.fid) < ({}::timestamptz, {}, {})").format(
                params.bind(at), params.bind(collection), params.bind(fid)
            )
        )
    statement = sql.SQL(
        "SELECT t.collection, t.fid AS id, t.datetime, ST_AsGeoJSON(t.geom, 9)::json AS geometry, "
        "t.properties, t.assets, ARRAY[ST_XMin(t.geom), ST_YMin(t.geom), ST_XMax(t.geom), "
        "ST_YMax(t.geom)] AS bbox FROM {} t WHERE {} "
        "ORDER BY t.datetime DESC, t.collection DESC, t.fid DESC LIMIT {}"
    ).format(_items_table(), sql.SQL(" AND ").join(where), params.bind(search.limit + 1))
    return statement, params


def item_document(row: dict[str, Any], base: str) -> dict[str, Any]:
    """A STAC Item from a search row; asset hrefs become API URLs, and data assets carry
    their ``raster:bands`` (see :func:`_raster_bands`)."""
    cid, iid = row["collection"], row["id"]
    href = f"{base}/stac/collections/{cid}/items/{iid}"
    bands = _raster_bands(row["properties"])
    assets = {
        key: _asset(asset, f"{href}/assets/{key}", bands) for key, asset in row["assets"].items()
    }
    tiles = f"{base}/collections/{cid}/items/{iid}/map/tiles/WebMercatorQuad"
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": EXTENSIONS,
        "id": iid,
        "collection": cid,
        "geometry": row["geometry"],
        "bbox": [float(v) for v in row["bbox"]],
        "properties": row["properties"],
        "assets": assets,
        "links": [
            {"rel": "self", "type": "application/geo+json", "href": href},
            {"rel": "parent", "type": "application/json", "href": f"{base}/stac/collections/{cid}"},
            {
                "rel": "collection",
                "type": "application/json",
                "href": f"{base}/stac/collections/{cid}",
            },
            {"rel": "root", "type": "application/json", "href": f"{base}/stac"},
            {
                "rel": "xyz",
                "type": "image/png",
                "title": "Map tiles (WebMercatorQuad)",
                "href": f"{tiles}/{{z}}/{{y}}/{{x}}",
            },
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage",
                "type": "image/tiff",
                "href": f"{base}/collections/{cid}/items/{iid}/coverage",
            },
        ],
    }


def _raster_bands(properties: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Band name: its ``raster:bands`` entry as the raster extension (v1.1) has it.

    The ingest keeps the band table in the item's properties (the tile and coverage code
    read it there), but the raster extension v1.1 defines ``raster:bands`` on assets only,
    where clients (pystac, rio-tiler's STAC reader) look for it. It allows no ``null``
    nodata (a band without nodata leaves the member out) and no statistics but its own
    (the percentiles the map tiles stretch by stay in the properties).
    """
    names = [band.get("name") for band in properties.get("eo:bands", [])]
    table = properties.get("raster:bands", [])
    if len(names) != len(table):
        return {}
    out = {}
    for name, entry in zip(names, table, strict=True):
        band = {k: v for k, v in entry.items() if not (k == "nodata" and v is None)}
        if isinstance(entry.get("statistics"), dict):
            band["statistics"] = {
                k: v for k, v in entry["statistics"].items() if k in RASTER_STATISTICS
            }
        out[name] = band
    return out


def _asset(asset: dict[str, Any], href: str, bands: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An asset with its API URL; a data asset also gets the raster bands of its own
    ``eo:bands`` (the display copy is resampled, so the source's statistics do not hold)."""
    served = {**asset, "href": href}
    own = [bands.get(band.get("name")) for band in asset.get("eo:bands", [])]
    if "data" in asset.get("roles", []) and own and all(entry is not None for entry in own):
        served["raster:bands"] = own
    return served


def collection_document(record: CollectionRecord, base: str) -> dict[str, Any]:
    """A STAC Collection from a raster collection's catalog entry."""
    props = record.properties
    interval = [
        [
            record.temporal_start.isoformat() if record.temporal_start else None,
            record.temporal_end.isoformat() if record.temporal_end else None,
        ]
    ]
    summaries: dict[str, Any] = {"eo:bands": props.get("bands", [])}
    if props.get("gsd"):
        summaries["gsd"] = [props["gsd"]]
    if props.get("sensor"):
        summaries["sensor"] = [props["sensor"]]
    href = f"{base}/stac/collections/{record.id}"
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": EXTENSIONS[:1],
        "id": record.id,
        "title": record.title,
        "description": record.description or record.title,
        "keywords": list(record.keywords) + list(record.subsystems),
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [list(record.bbox) if record.bbox else [-180, -90, 180, 90]]},
            "temporal": {"interval": interval},
        },
        "summaries": summaries,
        "links": [
            {"rel": "self", "type": "application/json", "href": href},
            {"rel": "items", "type": "application/geo+json", "href": f"{href}/items"},
            {"rel": "parent", "type": "application/json", "href": f"{base}/stac"},
            {"rel": "root", "type": "application/json", "href": f"{base}/stac"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-map",
                "type": "application/json",
                "href": f"{base}/collections/{record.id}/map/tiles",
            },
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage",
                "type": "image/tiff",
                "href": f"{base}/collections/{record.id}/coverage",
            },
        ],
    }


def queryables(base: str) -> dict[str, Any]:
    """The JSON Schema of what a filter may name."""
    kinds = {
        "text": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "double precision": {"type": "number"},
    }
    properties: dict[str, Any] = {
        "id": {"type": "string", "title": "Item id"},
        "geometry": {"$ref": "https://geojson.org/schema/Geometry.json", "title": "Footprint"},
    }
    for name, (pgtype, _expr, title) in QUERYABLES.items():
        properties[name] = {**kinds[pgtype], "title": title}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": f"{base}/stac/queryables",
        "type": "object",
        "title": "Queryables of the imagery catalog",
        "properties": properties,
        "additionalProperties": False,
    }
