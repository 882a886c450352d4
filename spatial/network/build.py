"""A road network built from a line collection, in SQL, for pgRouting.

The steps, in one transaction (a failed build leaves the previous network as it was):

1. The collection's lines (multi-lines in parts) in a metric CRS: the storage CRS when it
   is projected, else the UTM zone of the data's centre, so that the snap tolerance and
   lengths are metres.
2. Each line is cut where it truly meets another line of the same level (``level`` field:
   a bridge, 1, crosses a street, 0, without a junction) and where an end of another line
   of the same level comes within the snap tolerance (a T-junction drawn a little short).
3. The pieces' ends within the tolerance of each other become one vertex, whatever their
   level (a bridge joins the streets at its ends), by PostGIS's DBSCAN clustering.
4. Each piece is an edge: its length on the ellipsoid, its speed from its class
   (:class:`~spatial.network.speeds.Speeds`), its cost and reverse cost in seconds (-1 in
   the direction a one-way road forbids).
5. pgRouting's ``pgr_connectedComponents`` finds the pieces of the graph: every piece but
   the largest is reported by road id, those of a single road as isolated segments.

PostGIS does the geometry (intersection, line substrings, clustering) and pgRouting the
graph; this module only composes their statements.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from spatial import audit
from spatial.audit import Actor
from spatial.catalog import CollectionRecord, get_collection
from spatial.db import engine
from spatial.errors import InvalidInputError
from spatial.features import LayerSchema, geographic
from spatial.network.speeds import Speeds

ONE_WAY = ("yes", "true", "1", "t", "y", "ft", "forward")
"""Values of the one-way field (any case) that allow only the line's own direction."""
REVERSE = ("-1", "reverse", "tf", "backward")
"""Values that allow only the opposite direction."""
NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
MAX_SNAP_M = 50.0
MAX_LISTED = 50
"""Road ids listed per disconnected piece (the counts are always whole)."""


@dataclass(frozen=True)
class Fields:
    """Which attributes of the collection the build reads."""

    speed: str
    """The road class (looked up in the speeds)."""
    name: str | None = None
    oneway: str | None = None
    level: str | None = None
    key: str | None = None
    """The road id reported (the collection's key by default, else the feature id)."""


@dataclass(frozen=True)
class Settings:
    """How a network is built from its collection (stored with it)."""

    fields: Fields
    speeds: Speeds
    snap_m: float = 1.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        """The settings stored with a network."""
        return cls(Fields(**data["fields"]), Speeds.parse(data["speeds"]), data["snap_m"])

    def as_json(self) -> dict[str, Any]:
        """The settings as stored in ``net.networks.settings``."""
        return {
            "fields": asdict(self.fields),
            "speeds": self.speeds.as_json(),
            "snap_m": self.snap_m,
        }


@dataclass
class Report:
    """What a build made, and what is not connected."""

    network: str
    collection: str
    rebuilt: str
    """``whole``: every edge was made again."""
    roads: int
    edges: int
    vertices: int
    length_km: float
    one_way_edges: int
    pieces: int
    """Connected pieces of the graph (1: everything reaches everything, ignoring one-ways)."""
    disconnected: list[dict[str, Any]] = field(default_factory=list)
    """Every piece but the largest: its number of edges and its road ids."""
    isolated: list[str] = field(default_factory=list)
    """Road ids of pieces made of one road alone."""
    default_speed_classes: dict[str, int] = field(default_factory=dict)
    """Classes the speeds do not name (roads counted), which got the default speed."""
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The report as stored and answered."""
        return asdict(self)


def build(
    conn: psycopg.Connection[Any], record: CollectionRecord, settings: Settings, *,
    network: str | None = None, actor: Actor | None = None,
) -> Report:  # fmt: skip
    """Build (or rebuild, whole) the network of a line collection, in the caller's
    transaction, and audit it.

    Raises:
        InvalidInputError: not a line collection, an unknown field, a snap tolerance out
            of (0, 50] m, or a level that is not a whole number.
    """
    started = time.perf_counter()
    layer = LayerSchema.of(record)
    name = network or record.id
    if not NAME.fullmatch(name):
        msg = f"network name {name!r}: lower-case letters, digits and _, starting with a letter"
        raise InvalidInputError(msg)
    _check(conn, layer, settings)
    metric = _metric_srid(conn, layer, record)
    conn.execute(
        "INSERT INTO net.networks (id, collection, srid, settings) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET collection = EXCLUDED.collection, "
        "srid = EXCLUDED.srid, settings = EXCLUDED.settings",
        (name, record.id, layer.srid, Jsonb(settings.as_json())),
    )
    conn.execute("DELETE FROM net.edges WHERE network = %s", (name,))
    conn.execute("DELETE FROM net.vertices WHERE network = %s", (name,))
    _lines(conn, layer, settings.fields, metric)
    _pieces(conn, settings.snap_m)
    _edges(conn, name, layer.srid, settings)
    report = _report(conn, name, record.id, settings)
    report.seconds = round(time.perf_counter() - started, 3)
    conn.execute(
        "UPDATE net.networks SET report = %s, built_at = now(), collection_version = %s "
        "WHERE id = %s",
        (Jsonb(report.as_json()), record.version, name),
    )
    record_actor = actor or Actor.local()
    details = {k: v for k, v in report.as_json().items() if k not in {"disconnected", "isolated"}}
    audit.record(
        conn, record_actor, "network.build", collection_id=record.id, feature_ids=[name],
        details=details,
    )  # fmt: skip
    return report


def _check(conn: psycopg.Connection[Any], layer: LayerSchema, settings: Settings) -> None:
    for column in (settings.fields.speed, settings.fields.name, settings.fields.oneway,
                   settings.fields.level, settings.fields.key):  # fmt: skip
        if column is not None:
            layer.column(column)
    if not (isinstance(settings.snap_m, int | float) and 0 < settings.snap_m <= MAX_SNAP_M):
        msg = f"the snap tolerance must be in (0, {MAX_SNAP_M:g}] m, not {settings.snap_m}"
        raise InvalidInputError(msg)
    kinds = conn.execute(
        sql.SQL("SELECT DISTINCT GeometryType(geom) FROM {}").format(
            sql.Identifier(layer.schema, layer.table)
        )
    ).fetchall()
    other = sorted({k for (k,) in kinds if k not in {"LINESTRING", "MULTILINESTRING", None}})
    if other:
        msg = f"collection {layer.id!r} holds {', '.join(other)}: a network is built from lines"
        raise InvalidInputError(msg)
    if settings.fields.level is not None:
        bad = conn.execute(
            sql.SQL(
                "SELECT fid, {level}::text FROM {table} WHERE {level} IS NOT NULL "
                "AND {level}::text !~ '^\\s*-?[0-9]{{1,4}}\\s*$' ORDER BY fid LIMIT 5"
            ).format(
                level=sql.Identifier(settings.fields.level),
                table=sql.Identifier(layer.schema, layer.table),
            )
        ).fetchall()
        if bad:
            shown = ", ".join(f"feature {fid}: {value!r}" for fid, value in bad)
            msg = f"the level field {settings.fields.level!r} must hold whole numbers ({shown})"
            raise InvalidInputError(msg)


def _metric_srid(
    conn: psycopg.Connection[Any], layer: LayerSchema, record: CollectionRecord
) -> int:
    """The CRS the geometry steps run in: the storage CRS if projected, else the UTM
    zone (WGS 84) of the data's centre."""
    if not geographic(layer.srid):
        return layer.srid
    if record.bbox is not None:
        west, south, east, north = record.bbox
    else:
        row = conn.execute(
            sql.SQL(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(ST_Transform(geom, 4326)) AS e FROM {}) x"
            ).format(sql.Identifier(layer.schema, layer.table))
        ).fetchone()
        if row is None or row[0] is None:
            return 3857
        west, south, east, north = row
    lon, lat = (west + east) / 2, (south + north) / 2
    zone = min(60, math.floor((lon + 180) / 6) + 1)
    return (32600 if lat >= 0 else 32700) + zone


def _text(column: str | None, fallback: str = "NULL") -> sql.Composable:
    if column is None:
        return sql.SQL(fallback + "::text")
    return sql.SQL("t.{}::text").format(sql.Identifier(column))


def _lines(conn: psycopg.Connection[Any], layer: LayerSchema, fields: Fields, metric: int) -> None:
    """``nw_lines``: every line part in metres with what the edges carry."""
    level = (sql.SQL("coalesce(trim(t.{}::text)::int, 0)").format(sql.Identifier(fields.level))
             if fields.level else sql.SQL("0"))  # fmt: skip
    key = fields.key or layer.key
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE nw_lines ON COMMIT DROP AS "
            "SELECT row_number() OVER () AS lid, t.fid, {key} AS road, {name} AS name, "
            "{cls} AS class, {level} AS level, lower(trim({oneway})) AS oneway, d.geom AS g "
            "FROM {table} t, LATERAL ST_Dump(ST_Transform(ST_Force2D(t.geom), {metric})) d "
            "WHERE NOT ST_IsEmpty(d.geom) AND ST_Length(d.geom) > 0"
        ).format(
            key=_text(key, "t.fid"),
            name=_text(fields.name),
            cls=_text(fields.speed),
            level=level,
            oneway=_text(fields.oneway),
            table=sql.Identifier(layer.schema, layer.table),
            metric=sql.Literal(metric),
        )
    )
    conn.execute("CREATE INDEX ON nw_lines USING gist (g)")
    conn.execute("ANALYZE nw_lines")


def _pieces(conn: psycopg.Connection[Any], snap: float) -> None:
    """``nw_pieces``: the lines cut at their junctions; ``nw_ends``: the pieces' ends
    clustered into vertices (``vid``, from 1)."""
    conn.execute(
        "CREATE TEMP TABLE nw_tips ON COMMIT DROP AS "
        "SELECT lid, level, ST_StartPoint(g) AS p FROM nw_lines "
        "UNION ALL SELECT lid, level, ST_EndPoint(g) FROM nw_lines"
    )
    conn.execute("CREATE INDEX ON nw_tips USING gist (p)")
    conn.execute("ANALYZE nw_tips")
    conn.execute(
        "CREATE TEMP TABLE nw_cuts ON COMMIT DROP AS "
        "SELECT a.lid, ST_LineLocatePoint(a.g, x.geom) AS f "
        "FROM nw_lines a JOIN nw_lines b ON a.lid <> b.lid AND a.level = b.level "
        "AND a.g && b.g AND ST_Intersects(a.g, b.g), "
        "LATERAL ST_DumpPoints(ST_Intersection(a.g, b.g)) x "
        "UNION ALL "
        "SELECT a.lid, ST_LineLocatePoint(a.g, e.p) FROM nw_lines a JOIN nw_tips e "
        "ON e.lid <> a.lid AND e.level = a.level AND ST_DWithin(a.g, e.p, %(snap)s)",
        {"snap": snap},
    )
    conn.execute("CREATE INDEX ON nw_cuts (lid)")
    conn.execute("ANALYZE nw_cuts")
    conn.execute(
        "CREATE TEMP TABLE nw_pieces ON COMMIT DROP AS "
        "SELECT row_number() OVER () AS pid, l.lid, ST_LineSubstring(l.g, c.f0, c.f1) AS g "
        "FROM nw_lines l, LATERAL ("
        "  SELECT f AS f0, lead(f) OVER (ORDER BY f) AS f1 FROM ("
        "    SELECT 0.0::float8 AS f UNION SELECT 1.0 UNION SELECT f FROM nw_cuts k "
        "    WHERE k.lid = l.lid) u) c "
        "WHERE c.f1 IS NOT NULL AND (c.f1 - c.f0) * ST_Length(l.g) > 0.001"
    )
    conn.execute(
        "CREATE TEMP TABLE nw_ends ON COMMIT DROP AS "
        "SELECT pid, side, p, "
        "1 + ST_ClusterDBSCAN(p, eps := %(snap)s, minpoints := 1) OVER () AS vid "
        "FROM (SELECT pid, 0 AS side, ST_StartPoint(g) AS p FROM nw_pieces "
        "      UNION ALL SELECT pid, 1, ST_EndPoint(g) FROM nw_pieces) e",
        {"snap": snap},
    )
    conn.execute("CREATE INDEX ON nw_ends (pid, side)")


def _edges(conn: psycopg.Connection[Any], network: str, srid: int, settings: Settings) -> None:
    """The vertices (each cluster's centre) and the edges between them, in the
    collection's CRS; pieces whose two ends became one vertex are dropped."""
    values = {"network": network, "srid": srid, "speeds": Jsonb(settings.speeds.classes),
              "default": settings.speeds.default, "one_way": list(ONE_WAY),
              "reverse": list(REVERSE)}  # fmt: skip
    conn.execute(
        "CREATE TEMP TABLE nw_vertices ON COMMIT DROP AS "
        "SELECT vid, ST_Centroid(ST_Collect(p)) AS p FROM nw_ends GROUP BY vid"
    )
    conn.execute(
        "INSERT INTO net.vertices (network, id, geom) "
        "SELECT %(network)s, vid, ST_Transform(p, %(srid)s) FROM nw_vertices",
        values,
    )
    conn.execute(
        "WITH pieces AS ("
        "  SELECT l.fid, l.road, l.name, l.class, l.level, l.oneway, s.vid AS source, "
        "  e.vid AS target, ST_Transform(ST_SetPoint(ST_SetPoint(x.g, 0, vs.p), "
        "  ST_NPoints(x.g) - 1, ve.p), %(srid)s) AS geom, "
        "  coalesce((%(speeds)s::jsonb ->> l.class)::float8, %(default)s) AS kmh "
        "  FROM nw_pieces x JOIN nw_lines l USING (lid) "
        "  JOIN nw_ends s ON s.pid = x.pid AND s.side = 0 "
        "  JOIN nw_ends e ON e.pid = x.pid AND e.side = 1 "
        "  JOIN nw_vertices vs ON vs.vid = s.vid JOIN nw_vertices ve ON ve.vid = e.vid "
        "  WHERE s.vid <> e.vid), "
        "measured AS (SELECT *, ST_Length(ST_Transform(geom, 4326)::geography) AS length_m "
        "  FROM pieces) "
        "INSERT INTO net.edges (network, fid, road, name, class, level, source, target, "
        "length_m, kmh, cost, reverse_cost, geom) "
        "SELECT %(network)s, fid, road, name, class, level, source, target, length_m, kmh, "
        "CASE WHEN oneway = ANY(%(reverse)s) THEN -1 ELSE length_m / (kmh / 3.6) END, "
        "CASE WHEN oneway = ANY(%(one_way)s) THEN -1 ELSE length_m / (kmh / 3.6) END, geom "
        "FROM measured",
        values,
    )


STALE = (
    "SELECT n.id, n.collection, n.settings FROM net.networks n "
    "JOIN platform.collections c ON c.id = n.collection "
    "WHERE n.collection_version IS DISTINCT FROM c.version "
    "AND (%(c)s::text IS NULL OR c.id = %(c)s)"
)
"""The networks built from an older version of their collection (an edit or a re-import
bumps the catalog version)."""


def follow(
    url: str, collection: str | None = None, actor: Actor | None = None
) -> list[dict[str, Any]]:
    """Rebuild, whole, the networks whose collection changed since they were built (of
    one collection, or all), each in its own transaction; one that another process is
    rebuilding is left to it. Returns a summary per network (or its error: the build
    refused the new data, and the network stays as it was)."""
    with psycopg.connect(url, autocommit=True) as conn:
        stale = conn.execute(STALE, {"c": collection}).fetchall()
    done: list[dict[str, Any]] = []
    for network, collection_id, stored in stale:
        with engine(url) as eng, eng.connect() as sconn:
            record = get_collection(sconn, collection_id)
        with psycopg.connect(url) as conn:
            lock = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                                (f"spatial.network:{network}",)).fetchone()  # fmt: skip
            still = conn.execute(STALE + " AND n.id = %(n)s",
                                 {"c": collection_id, "n": network}).fetchone()  # fmt: skip
            if not (lock and lock[0]) or still is None:
                continue
            try:
                report = build(conn, record, Settings.from_json(stored), network=network,
                               actor=actor)  # fmt: skip
            except InvalidInputError as exc:
                conn.rollback()  # the network stays; it says why it is behind
                conn.execute(
                    "UPDATE net.networks SET collection_version = %s, report = "
                    "coalesce(report, '{}') || jsonb_build_object('follow_error', %s::text) "
                    "WHERE id = %s",
                    (record.version, str(exc), network),
                )
                done.append({"network": network, "error": str(exc)})
                continue
        done.append({"network": network, "rebuilt": report.rebuilt, "edges": report.edges,
                     "pieces": report.pieces, "seconds": report.seconds})  # fmt: skip
    return done


def described(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every network: its collection, CRS, settings, when it was built and the report."""
    rows = conn.execute(
        "SELECT id, collection, srid, settings, built_at, collection_version, report "
        "FROM net.networks ORDER BY id"
    ).fetchall()
    keys = ("id", "collection", "srid", "settings", "built_at", "collection_version", "report")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def edges_sql(network: str) -> str:
    """pgRouting's edges query of a network (its name a quoted literal: pgRouting takes
    the query as text)."""
    return (
        sql.SQL("SELECT id, source, target, cost, reverse_cost FROM net.edges WHERE network = {}")
        .format(sql.Literal(network))
        .as_string(None)
    )


def _report(
    conn: psycopg.Connection[Any], network: str, collection: str, settings: Settings
) -> Report:
    totals = conn.execute(
        "SELECT count(*), count(DISTINCT fid), coalesce(sum(length_m), 0) / 1000, "
        "count(*) FILTER (WHERE cost < 0 OR reverse_cost < 0), "
        "(SELECT count(*) FROM net.vertices WHERE network = %(n)s) "
        "FROM net.edges WHERE network = %(n)s",
        {"n": network},
    ).fetchone() or (0, 0, 0.0, 0, 0)
    edges, roads, km, one_way, vertices = totals
    defaults = dict(conn.execute(
        "SELECT coalesce(class, '(none)'), count(DISTINCT fid) FROM net.edges "
        "WHERE network = %s AND (class IS NULL OR NOT (class = ANY(%s))) GROUP BY 1 ORDER BY 1",
        (network, list(settings.speeds.classes)),
    ).fetchall())  # fmt: skip
    pieces = _pieces_of(conn, network) if edges else []
    return Report(
        network=network, collection=collection, rebuilt="whole", roads=roads, edges=edges,
        vertices=vertices, length_km=round(float(km), 3), one_way_edges=one_way,
        pieces=len(pieces),
        disconnected=[{"edges": n, "roads": len(r), "road_ids": r[:MAX_LISTED]}
                      for n, r in pieces[1:]],
        isolated=[r[0] for n, r in pieces[1:] if len(r) == 1],
        default_speed_classes=defaults,
    )  # fmt: skip


def _pieces_of(conn: psycopg.Connection[Any], network: str) -> list[tuple[int, list[str]]]:
    """The graph's connected pieces, largest first: (edges, sorted road ids)."""
    graph = (
        sql.SQL("SELECT id, source, target, 1.0 AS cost, 1.0 AS reverse_cost FROM net.edges "
                "WHERE network = {}").format(sql.Literal(network)).as_string(None)
    )  # fmt: skip
    rows = conn.execute(
        "WITH c AS (SELECT component, node FROM pgr_connectedComponents(%s)) "
        "SELECT c.component, count(*), array_agg(DISTINCT coalesce(e.road, e.fid::text) "
        "ORDER BY coalesce(e.road, e.fid::text)) "
        "FROM net.edges e JOIN c ON c.node = e.source WHERE e.network = %s "
        "GROUP BY c.component ORDER BY count(*) DESC, c.component",
        (graph, network),
    ).fetchall()
    return [(int(n), list(roads)) for _, n, roads in rows]
