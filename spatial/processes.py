"""The platform's processes (OGC API - Processes): analyses run by PostGIS on the layers.

Each process is described (inputs and outputs as JSON Schema, for the process list) and
executed by one SQL statement over the catalog's tables, with every input checked first:
collections must exist and be vector layers, property names must be their columns,
geometries must be valid GeoJSON (CRS84), numbers must be in range. Values are bound.

Areas and distances are in metres: in the layer's own CRS when it is projected (the
Gauss-Krüger zones, so the figures match the cadastre's), on the CGCS2000/WGS 84
spheroid (``geography``) when it is geographic.

- ``buffer``: a geometry grown by a distance;
- ``intersect-summarise``: the features of a layer within a polygon, grouped by a
  property: count and intersected area (e.g. parcel area by land use in a planning zone);
- ``area-by-zone``: a layer's area within each zone of another layer (e.g. by district);
- ``nearest``: the k features nearest a point, optionally within a distance;
- ``route``, ``service-area`` and ``closest-facility``: by road on a network
  (:mod:`spatial.network.processes`).

With imagery (:mod:`spatial.analysis`): ``zonal-statistics``, ``change-detection`` and
``water-extraction``; with elevation, ``flood-extent`` (:mod:`spatial.flood`), ``slope``
and ``aspect`` (:mod:`spatial.terrain`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import shapely
from psycopg import sql
from psycopg.rows import dict_row

from spatial import analysis, distributed, terrain
from spatial.errors import InvalidInputError
from spatial.features import LayerSchema, source
from spatial.flood import process as flood
from spatial.inputs import number, required
from spatial.network import processes as routing

MAX_NEAREST = 100
_GEOJSON = {"type": "object", "contentMediaType": "application/geo+json",
            "description": "A GeoJSON geometry in CRS84 (lon/lat)."}  # fmt: skip

Lookup = Callable[[str], LayerSchema]
"""The catalog: a vector collection by id (raises NotFoundError). The object passed to a
process is also its context: ``.raster(id)`` (an imagery collection, checked against the
caller's view), ``.data_dir``, ``.rasters`` (the raster store,
:mod:`spatial.rasterstore`) and ``await .publish(frame,
collection_id, title)`` (a result written back as a new vector collection)."""


@dataclass(frozen=True)
class Process:
    """A process: its description and how to run it."""

    id: str
    title: str
    description: str
    inputs: Mapping[str, dict[str, Any]]
    outputs: Mapping[str, dict[str, Any]]
    run: Callable[[psycopg.AsyncConnection, Lookup, dict[str, Any]], Awaitable[dict[str, Any]]]

    def summary(self, base: str) -> dict[str, Any]:
        """The entry of the process list."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "version": "1.0.0",
            "jobControlOptions": ["sync-execute", "async-execute", "dismiss"],
            "outputTransmission": ["value"],
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{base}/processes/{self.id}"},
                {"rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                 "type": "application/json", "href": f"{base}/processes/{self.id}/execution"},
            ],
        }  # fmt: skip

    def describe(self, base: str) -> dict[str, Any]:
        """The full description, with the inputs and outputs."""
        return {
            **self.summary(base),
            "inputs": {name: {"title": name, **spec} for name, spec in self.inputs.items()},
            "outputs": {name: {"title": name, **spec} for name, spec in self.outputs.items()},
        }


def _layer(lookup: Lookup, inputs: dict[str, Any], name: str) -> LayerSchema:
    value = required(inputs, name)
    if not isinstance(value, str):
        msg = f"input {name!r} must be a collection id"
        raise InvalidInputError(msg)
    return lookup(value)


def _projected(layer: LayerSchema) -> bool:
    from pyproj import CRS  # noqa: PLC0415 - only to tell projected from geographic

    return not CRS.from_epsg(layer.srid).is_geographic


def _area(layer: LayerSchema, expr: sql.Composable) -> sql.Composable:
    template = "ST_Area({})" if _projected(layer) else "ST_Area(ST_Transform({}, 4326)::geography)"
    return sql.SQL(template).format(expr)


def _in_layer(layer: LayerSchema, wkt_param: str) -> sql.Composable:
    return sql.SQL("ST_Transform(ST_GeomFromText({}, 4326), {})").format(
        sql.Placeholder(wkt_param), sql.Literal(layer.srid)
    )


async def _rows(
    conn: psycopg.AsyncConnection, statement: sql.Composed | sql.SQL, params: dict[str, Any]
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, params)
        return list(await cur.fetchall())


async def _buffer(
    conn: psycopg.AsyncConnection, lookup: Lookup, inputs: dict[str, Any]
) -> dict[str, Any]:
    wkt = analysis.geometry_input(inputs, "geometry")
    distance = number(inputs, "distance", 0, 100_000)
    rows = await _rows(
        conn,
        sql.SQL("SELECT ST_AsGeoJSON(ST_Buffer(ST_GeomFromText(%(g)s, 4326)::geography, "
                "%(d)s)::geometry, 9)::json AS geometry"),
        {"g": wkt, "d": distance},
    )  # fmt: skip
    return {"geometry": rows[0]["geometry"]}


async def _intersect_summarise(
    conn: psycopg.AsyncConnection, lookup: Lookup, inputs: dict[str, Any]
) -> dict[str, Any]:
    layer = _layer(lookup, inputs, "collection")
    group = layer.column(str(required(inputs, "group_by")))
    wkt = analysis.geometry_input(inputs, "geometry", polygonal=True)
    statement = sql.SQL(
        "WITH g AS (SELECT {g} AS geom) "
        "SELECT t.{group} AS value, count(*) AS count, "
        "sum({area}) AS area_m2 FROM {table} t, g WHERE ST_Intersects(t.geom, g.geom) "
        "GROUP BY 1 ORDER BY 3 DESC NULLS LAST"
    ).format(
        g=_in_layer(layer, "g"), group=sql.Identifier(group),
        area=_area(layer, sql.SQL("ST_Intersection(t.geom, g.geom)")),
        table=source(layer),
    )  # fmt: skip
    if await _on_dask(conn, layer, inputs):
        zone = sql.SQL("SELECT 'zone' AS name, ST_AsBinary({}) AS wkb").format(
            _in_layer(layer, "g")
        )
        rows = await _overlaid(conn, layer, group, zone, {"g": wkt})
        rows.sort(key=lambda r: -r["area_m2"])
    else:
        rows = await _rows(conn, statement, {"g": wkt})
    return {"summary": [{"value": r["value"], "count": r["count"],
                         "area_m2": round(float(r["area_m2"] or 0), 3)} for r in rows]}  # fmt: skip


async def _area_by_zone(
    conn: psycopg.AsyncConnection, lookup: Lookup, inputs: dict[str, Any]
) -> dict[str, Any]:
    layer = _layer(lookup, inputs, "collection")
    zones = _layer(lookup, inputs, "zones")
    zone_name = zones.column(str(required(inputs, "zone_property")))
    statement = sql.SQL(
        "SELECT z.{name} AS zone, count(t.fid) AS count, sum({area}) AS area_m2 "
        "FROM {zones} z0 CROSS JOIN LATERAL "
        "(SELECT z0.{name}, ST_Transform(z0.geom, {srid}) AS geom) z "
        "JOIN {table} t ON ST_Intersects(t.geom, z.geom) GROUP BY 1 ORDER BY 1"
    ).format(
        name=sql.Identifier(zone_name), zones=source(zones),
        srid=sql.Literal(layer.srid), table=source(layer),
        area=_area(layer, sql.SQL("ST_Intersection(t.geom, z.geom)")),
    )  # fmt: skip
    if await _on_dask(conn, layer, inputs):
        zone = sql.SQL("SELECT z.{name} AS name, ST_AsBinary(ST_Transform(z.geom, {srid})) AS wkb "
                       "FROM {zones} z").format(name=sql.Identifier(zone_name), zones=source(zones),
                                              srid=sql.Literal(layer.srid))  # fmt: skip
        rows = await _overlaid(conn, layer, None, zone, {})
        rows = [{**r, "zone": r["value"]} for r in rows]
        rows.sort(key=lambda r: (r["zone"] is None, r["zone"]))
    else:
        rows = await _rows(conn, statement, {})
    return {"zones": [{"zone": r["zone"], "count": r["count"],
                       "area_m2": round(float(r["area_m2"] or 0), 3)} for r in rows]}  # fmt: skip


async def _on_dask(
    conn: psycopg.AsyncConnection, layer: LayerSchema, inputs: dict[str, Any]
) -> bool:
    """Whether an overlay runs on Dask: asked, or more features than the threshold."""
    threshold = distributed.DaskSettings().threshold_features
    size = 0
    if inputs.get("engine") is None and threshold > 0:
        count = sql.SQL("SELECT count(*) AS n FROM {} t").format(source(layer))
        found = await _rows(conn, count, {})
        size = int(found[0]["n"])
    return distributed.engine_of(inputs, size, threshold)


async def _overlaid(
    conn: psycopg.AsyncConnection, layer: LayerSchema, group: str | None,
    zones: sql.Composable, params: dict[str, Any],
) -> list[dict[str, Any]]:  # fmt: skip
    """The layer's features meeting ``zones`` (rows of name, wkb in the layer's CRS)
    intersected on the Dask cluster: count and area per zone (``group`` None) or per
    ``group`` value, as the SQL of the single-process path measures them."""
    zone_rows = await _rows(conn, sql.SQL("SELECT * FROM ({}) z").format(zones), params)
    shapes = shapely.from_wkb([bytes(z["wkb"]) for z in zone_rows])
    extent = shapely.box(*shapely.total_bounds(shapes)) if len(shapes) else None
    if extent is None or extent.is_empty:
        return []
    chosen = sql.SQL("t.{}").format(sql.Identifier(group)) if group else sql.SQL("NULL")
    statement = sql.SQL(
        "SELECT ST_AsBinary(t.geom) AS wkb, {g} AS value FROM {table} t "
        "WHERE t.geom && ST_GeomFromText(%(extent)s, {srid})"
    ).format(g=chosen, table=source(layer), srid=sql.Literal(layer.srid))
    features = await _rows(conn, statement, {"extent": extent.wkt})
    conf = distributed.DaskSettings()

    def work() -> Any:
        return distributed.overlay(
            shapely.from_wkb([bytes(f["wkb"]) for f in features]),
            [f["value"] for f in features], shapes, [z["name"] for z in zone_rows],
            geographic=not _projected(layer), srid=layer.srid,
            dask=distributed.client(conf), partition=conf.partition,
        )  # fmt: skip

    table = await analysis.threaded(work)
    key = "group" if group else "zone"
    table = table.groupby(key, dropna=False).agg(count=("count", "sum"), area=("area", "sum"))
    return [{"value": None if k is None or k != k else k, "count": int(r["count"]),  # noqa: PLR0124
             "area_m2": float(r["area"])} for k, r in table.iterrows()]  # fmt: skip


async def _nearest(
    conn: psycopg.AsyncConnection, lookup: Lookup, inputs: dict[str, Any]
) -> dict[str, Any]:
    layer = _layer(lookup, inputs, "collection")
    point = required(inputs, "point")
    numbers = isinstance(point, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in point
    )
    if not numbers or len(point) != 2:
        msg = "input 'point' must be [lon, lat]"
        raise InvalidInputError(msg)
    analysis.geometry_input({"p": {"type": "Point", "coordinates": point}}, "p")
    k = int(number(inputs, "k", 1, MAX_NEAREST, default=5))
    within = inputs.get("max_distance")
    if within is not None:
        within = number(inputs, "max_distance", 0, 1_000_000)
    statement = sql.SQL(
        "WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326) AS g) "
        "SELECT t.fid AS id, {props} AS properties, "
        "ST_Distance(ST_Transform(t.geom, 4326)::geography, p.g::geography) AS distance_m "
        "FROM {table} t, p WHERE %(within)s::float8 IS NULL OR "
        "ST_DWithin(ST_Transform(t.geom, 4326)::geography, p.g::geography, %(within)s) "
        "ORDER BY t.geom <-> ST_Transform(p.g, {srid}) LIMIT %(k)s"
    ).format(
        props=sql.SQL("json_build_object({})").format(sql.SQL(", ").join(
            sql.SQL("{}, t.{}").format(sql.Literal(c), sql.Identifier(c)) for c in layer.fields
        )) if layer.fields else sql.SQL("'{{}}'::json"),
        table=source(layer), srid=sql.Literal(layer.srid),
    )  # fmt: skip
    rows = await _rows(conn, statement, {"x": float(point[0]), "y": float(point[1]),
                                         "within": within, "k": k})  # fmt: skip
    rows.sort(key=lambda r: r["distance_m"])
    return {
        "features": [
            {"id": r["id"], "properties": r["properties"],
             "distance_m": round(float(r["distance_m"]), 3)}
            for r in rows
        ]
    }  # fmt: skip


def _optional(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}, "minOccurs": 0,
            "maxOccurs": 1}  # fmt: skip


def _collection_input(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"},
            "minOccurs": 1, "maxOccurs": 1}  # fmt: skip


_LONLAT = {
    "description": "[lon, lat]",
    "schema": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}},
}
_SNAP = {
    "description": "metres from a point to its road",
    "minOccurs": 0,
    "schema": {"type": "number", "minimum": 1, "maximum": 5000, "default": 500},
}
_BARRIERS = {
    "description": "Polygons whose roads are closed for this request: GeoJSON geometries, "
    'Features (named by their \'name\'), or {"collection": id, "filter": '
    "CQL2 text} (that collection's polygons).",
    "schema": {"type": "array", "maxItems": 50, "items": {"type": "object"}},
    "minOccurs": 0,
}


PROCESSES: dict[str, Process] = {
    p.id: p
    for p in (
        Process(
            "buffer", "Buffer",
            "A geometry grown by a distance in metres (on the spheroid).",
            {"geometry": {"schema": _GEOJSON, "minOccurs": 1},
             "distance": {"description": "metres", "schema": {"type": "number", "minimum": 0,
                                                               "maximum": 100000}}},
            {"geometry": {"schema": _GEOJSON}},
            _buffer,
        ),
        Process(
            "intersect-summarise", "Intersect and summarise",
            "The features of a layer within a polygon, grouped by a property: how many, and "
            "their area inside the polygon (m²).",
            {"collection": _collection_input("The layer to summarise."),
             "geometry": {"schema": _GEOJSON, "minOccurs": 1},
             "group_by": {"description": "The property to group by.",
                          "schema": {"type": "string"}}},
            {"summary": {"schema": {"type": "array"}}},
            _intersect_summarise,
        ),
        Process(
            "area-by-zone", "Area by zone",
            "A layer's feature count and area (m²) within each zone of another layer, "
            "e.g. parcels by district.",
            {"collection": _collection_input("The layer to measure."),
             "zones": _collection_input("The polygon layer of zones."),
             "zone_property": {"description": "The zones' name property.",
                               "schema": {"type": "string"}}},
            {"zones": {"schema": {"type": "array"}}},
            _area_by_zone,
        ),
        Process(
            "nearest", "Nearest features",
            f"The k (at most {MAX_NEAREST}) features of a layer nearest a point, optionally "
            "within a distance in metres, with their distances.",
            {"collection": _collection_input("The layer to search."),
             "point": {"description": "[lon, lat]", "schema": {"type": "array", "minItems": 2,
                                                             "maxItems": 2,
                                                             "items": {"type": "number"}}},
             "k": {"schema": {"type": "integer", "minimum": 1, "maximum": MAX_NEAREST,
                              "default": 5}, "minOccurs": 0},
             "max_distance": {"description": "metres", "schema": {"type": "number"},
                              "minOccurs": 0}},
            {"features": {"schema": {"type": "array"}}},
            _nearest,
        ),
        Process(
            "route", "Route by road",
            "The fastest route by road between two points through optional via points, on a "
            "road network (pgRouting): its line, length, travel time and the roads in order. "
            "Points are placed on the nearest road; barriers (polygons, or the polygons of a "
            "collection matching a CQL2 filter) and the standing road closures are avoided.",
            {"network": _collection_input("The road network (spatial network build)."),
             "from": _LONLAT, "to": _LONLAT,
             "via": {"description": "Points to pass, in order.",
                     "schema": {"type": "array", "items": _LONLAT["schema"],
                                "maxItems": 23}, "minOccurs": 0},
             "barriers": _BARRIERS, "max_snap_distance": _SNAP},
            {"route": {"schema": {"type": "object",
                                  "contentMediaType": "application/geo+json"}}},
            routing.run_route,
        ),
        Process(
            "service-area", "Service area by road",
            "The areas reachable by road within each of some minutes (e.g. 5, 10, 15) from "
            "one or more points, as polygons, avoiding barriers and road closures.",
            {"network": _collection_input("The road network (spatial network build)."),
             "points": {"description": "Where from: [[lon, lat], ...].",
                        "schema": {"type": "array", "items": _LONLAT["schema"], "minItems": 1,
                                   "maxItems": 25}},
             "minutes": {"description": "Bands of travel time [default: 5, 10, 15].",
                         "schema": {"type": "array", "items": {"type": "number",
                                    "exclusiveMinimum": 0, "maximum": 180}, "maxItems": 10},
                         "minOccurs": 0},
             "barriers": _BARRIERS, "max_snap_distance": _SNAP},
            {"areas": {"schema": {"type": "object", "contentMediaType": "application/geo+json"}}},
            routing.run_service_area,
        ),
        Process(
            "closest-facility", "Closest facilities by road",
            "The k features of a collection (hospitals, fire stations, shelters) nearest a "
            "point by travel time, each with its route, to them or from them.",
            {"network": _collection_input("The road network (spatial network build)."),
             "point": _LONLAT,
             "collection": _collection_input("The facilities."),
             "filter": _optional("CQL2 text: only these facilities."),
             "k": {"schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 3},
                   "minOccurs": 0},
             "direction": {"schema": {"enum": ["to-facility", "from-facility"],
                                      "default": "to-facility"}, "minOccurs": 0},
             "barriers": _BARRIERS, "max_snap_distance": _SNAP},
            {"facilities": {"schema": {"type": "object",
                                       "contentMediaType": "application/geo+json"}}},
            routing.run_closest_facility,
        ),
        Process(
            "zonal-statistics", "Zonal statistics of imagery",
            "Statistics (exact pixel coverage) of a band or an index of a scene over each "
            "feature of a vector layer, e.g. mean NDVI per parcel or per district, or over a "
            "drawn polygon; optionally written back as a new collection.",
            {"raster": _collection_input("The imagery collection."),
             "item": _optional("The scene [default: the newest, or at datetime]."),
             "datetime": _optional("The newest scene at or before this time."),
             "expression": _optional("Band math or ndvi/ndwi [default: ndvi]."),
             "band": _optional("A band name, instead of an expression."),
             "zones": _optional("The vector layer of zones (parcels, districts); with "
                                "'geometry', only the zones meeting the polygon."),
             "geometry": {"schema": _GEOJSON, "minOccurs": 0,
                          "description": "A polygon (CRS84): without 'zones', the one zone."},
             "stats": {"schema": {"type": "array", "items": {"enum": list(analysis.STATS)}},
                       "minOccurs": 0},
             "properties": {"schema": {"type": "array", "items": {"type": "string"}},
                            "minOccurs": 0, "description": "Zone properties to return."},
             "output_collection": _optional("Write the result as this new collection.")},
            {"zones": {"schema": {"type": "array"}}},
            analysis.run_zonal,
        ),
        Process(
            "change-detection", "Change detection between two scenes",
            "An index (default NDVI) of two scenes differenced; changes beyond a threshold "
            "as polygons, and the parcels they cover with their changed area.",
            {"raster": _collection_input("The imagery collection."),
             "before": _collection_input("The earlier scene (item id)."),
             "after": _collection_input("The later scene (item id)."),
             "index": _optional("Band math or ndvi/ndwi [default: ndvi]."),
             "threshold": {"schema": {"type": "number", "default": 0.3}, "minOccurs": 0},
             "direction": {"schema": {"enum": ["decrease", "increase", "both"]},
                           "minOccurs": 0},
             "min_area": {"schema": {"type": "number", "default": 300}, "minOccurs": 0,
                          "description": "Smallest change kept (m²)."},
             "parcels": _optional("A polygon layer to report the changed features of."),
             "min_parcel_share": {"schema": {"type": "number", "default": 0.25},
                                  "minOccurs": 0},
             "properties": {"schema": {"type": "array", "items": {"type": "string"}},
                            "minOccurs": 0}},
            {"changes": {"schema": _GEOJSON}, "parcels": {"schema": {"type": "array"}}},
            analysis.run_change,
        ),
        Process(
            "flood-extent", "Flood extent",
            "The land a water level floods on an elevation model, connected to the river (not "
            "every low basin): at a gauge (its latest reading, warning or danger level, or a "
            "level, carried along the river as a depth above its bed) or from a seed point at a "
            "flat level; with the features and people inside it (layers/floods.yaml), "
            "optionally closing its roads until an expiry and written as a collection.",
            {"dem": _optional("The elevation collection [default: layers/floods.yaml's]."),
             "gauge": _optional("A water gauge's key (the river method)."),
             "gauges": _optional("The gauges' collection [default: water_gauges]."),
             "seed": {"schema": _GEOJSON, "minOccurs": 0,
                      "description": "A Point (CRS84) the water reaches (the level method)."},
             "level": {"schema": {"oneOf": [{"type": "number"},
                                            {"enum": ["warning", "danger", "latest"]}]},
                       "minOccurs": 0, "description": "Metres on the DEM's datum, or a "
                       "gauge's level [default: its latest reading]; required with 'seed'."},
             "reach_m": {"schema": {"type": "number", "minimum": 10, "maximum": 50000,
                                    "default": 3000}, "minOccurs": 0},
             "min_area_m2": {"schema": {"type": "number", "minimum": 0, "default": 100},
                             "minOccurs": 0},
             "close_roads": {"schema": {"type": "boolean", "default": False}, "minOccurs": 0},
             "closure_hours": {"schema": {"type": "number", "minimum": 0.1, "maximum": 336,
                                          "default": 12}, "minOccurs": 0},
             "network": _optional("The road network to close [default: roads]."),
             "collection": _optional("Write the polygons as this collection (the gauge's "
                                     "earlier ones replaced).")},
            {"extent": {"schema": _GEOJSON}, "affected": {"schema": {"type": "array"}},
             "population": {"schema": {"type": "object"}},
             "closures": {"schema": {"type": "array"}}},
            flood.run_flood,
        ),
        Process("slope", "Slope", terrain.SLOPE_DESCRIPTION, terrain.SLOPE_INPUTS,
                terrain.SLOPE_OUTPUTS, terrain.run_slope),
        Process("aspect", "Aspect", terrain.ASPECT_DESCRIPTION, terrain.ASPECT_INPUTS,
                terrain.ASPECT_OUTPUTS, terrain.run_aspect),
        Process(
            "water-extraction", "Water extraction",
            "Water polygons where an index (default NDWI) is above a threshold, e.g. a "
            "flood extent; optionally written back as a new collection.",
            {"raster": _collection_input("The imagery collection."),
             "item": _optional("The scene [default: the newest, or at datetime]."),
             "datetime": _optional("The newest scene at or before this time."),
             "index": _optional("Band math [default: ndwi]."),
             "threshold": {"schema": {"type": "number", "default": 0}, "minOccurs": 0},
             "min_area": {"schema": {"type": "number", "default": 500}, "minOccurs": 0},
             "output_collection": _optional("Write the result as this new collection.")},
            {"water": {"schema": _GEOJSON}},
            analysis.run_water,
        ),
    )
}  # fmt: skip
"""The registry: every process by id."""
