"""Incidents and their dispatch: report, rank the units, assign them, follow them there.

Every change of an incident is a Part 4 edit of the ``incidents`` collection (versioned,
audited, its tiles refreshed: :mod:`spatial.edits`) made with the caller's rows; the
table's trigger keeps the rules (migration 0015) and tells the live streams
(``NOTIFY spatial_gps``, ``{"incidents": [...]}``).

- :func:`candidates` ranks the available units of the wanted kinds by their road travel
  time from their latest fix to the incident: one ``pgr_withPointsCost`` call for all of
  them, then the routes of the best in one ``pgr_withPoints`` call. A unit without a
  fix, with a fix older than the stale limit, too far from any road or with no road to
  the incident is listed as excluded, with the reason.
- :func:`dispatch` claims the units (``available`` → ``assigned`` in one statement: of
  two dispatchers claiming one unit at once, the second finds it taken and gets a
  :class:`~spatial.errors.ConflictError`, and nothing of its dispatch is written), stores
  each unit's route and ETA, and marks the incident dispatched.
- :func:`arrivals` turns a dispatched unit ``on-scene`` once one of its fixes received
  since the dispatch lies within the set distance of the incident: an ``on-scene`` event
  in ``gps.events`` (delivered by the webhooks like fence events) and the incident on
  scene. The API workers run it every few seconds (:mod:`api.command`).
- :func:`close` closes an incident; the trigger frees its units.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from spatial import audit, edits, features
from spatial.audit import Actor
from spatial.errors import ConflictError, InvalidInputError, NotFoundError
from spatial.network import routing

COLLECTION = "incidents"
MAX_TEXT = 2000
CRS84 = features.serving_crs(None)
ID = (
    "SELECT 'INC-' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') || '-' "
    "|| lpad(nextval('cmd.incident_numbers')::text, 5, '0')"
)


@dataclass(frozen=True)
class Incident:
    """An incident as the dispatch needs it."""

    fid: int
    id: str
    kind: str | None
    status: str
    units: tuple[str, ...]
    lon: float
    lat: float

    def open(self) -> None:
        """Raises ConflictError when the incident is closed."""
        if self.status == "closed":
            msg = f"incident {self.id} is closed"
            raise ConflictError(msg)


def _text(value: Any, name: str, *, required: bool = False, limit: int = MAX_TEXT) -> str | None:
    if value is None or value == "":
        if required:
            msg = f"{name!r} is required"
            raise InvalidInputError(msg)
        return None
    if not isinstance(value, str) or len(value) > limit:
        msg = f"{name!r} must be text of at most {limit} characters"
        raise InvalidInputError(msg)
    return value.strip()


async def report(
    conn: psycopg.AsyncConnection[Any], target: edits.Editable, body: dict[str, Any], *,
    actor: Actor,
) -> tuple[int, str]:  # fmt: skip
    """Record a new incident from ``{kind, level, address, description, lon, lat}`` (the
    location in degrees; ``level`` 1, most severe, to 4); it gets the next id
    (``INC-<UTC date>-<number>``). Returns its feature id and incident id.

    Raises:
        InvalidInputError: a missing kind or location, a bad value.
    """
    lon, lat = body.get("lon"), body.get("lat")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lon, lat))
    if not numbers or not (-180 <= lon <= 180 and -90 <= lat <= 90):  # type: ignore[operator]
        msg = "an incident needs its location: 'lon' and 'lat' in degrees"
        raise InvalidInputError(msg)
    level = body.get("level", 3)
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 4:
        msg = "'level' is 1 (most severe) to 4"
        raise InvalidInputError(msg)
    props = {
        "kind": _text(body.get("kind"), "kind", required=True, limit=40),
        "level": level,
        "address": _text(body.get("address"), "address", limit=200),
        "description": _text(body.get("description"), "description"),
    }
    async with conn.transaction():
        cur = await conn.execute(ID)
        row = await cur.fetchone()
        incident_id = str(row[0]) if row else ""
        feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                   "properties": {**props, "incident_id": incident_id}}  # fmt: skip
        edited = await edits.create(conn, target, feature, crs=CRS84, actor=actor)
    return edited.fid, incident_id


async def incident(
    conn: psycopg.AsyncConnection[Any], target: edits.Editable, incident_id: str, *,
    lock: bool = False,
) -> Incident:  # fmt: skip
    """An incident among the rows ``target`` shows (``lock``: locked for a change).

    Raises:
        NotFoundError: none with that id among those rows.
    """
    cur = await conn.execute(
        sql.SQL(
            "SELECT t.fid, t.incident_id, t.kind, t.status, t.units, ST_X(t.geom), "
            "ST_Y(t.geom) FROM {} t WHERE t.incident_id = %s"
        ).format(features.source(target.layer)),
        (incident_id,),
    )
    row = await cur.fetchone()
    if row is None:
        msg = f"no incident {incident_id!r}"
        raise NotFoundError(msg)
    if lock:
        cur = await conn.execute(
            "SELECT status, units FROM layers.incidents WHERE fid = %s FOR UPDATE", (row[0],)
        )
        locked = await cur.fetchone()
        row = (*row[:3], *(locked or row[3:5]), *row[5:])
    units = tuple(u for u in (row[4] or "").split(",") if u)
    return Incident(int(row[0]), str(row[1]), row[2], str(row[3]), units, row[5], row[6])


ASSIGNMENTS = """
SELECT a.unit, d.name, u.kind, a.network, a.seconds, a.metres, a.roads,
       ST_AsGeoJSON(a.route, 7)::json AS route, a.dispatched_at, a.eta, a.dispatched_by,
       a.arrived_at, a.released_at
FROM cmd.assignments a JOIN gps.devices d ON d.id = a.unit
JOIN cmd.units u ON u.device_id = a.unit
WHERE a.incident = %s ORDER BY a.id
"""


async def described(
    conn: psycopg.AsyncConnection[Any], target: edits.Editable, incident_id: str
) -> dict[str, Any]:
    """An incident (GeoJSON Feature) with every assignment of a unit to it (routes as
    GeoJSON lines)."""
    found = await incident(conn, target, incident_id)
    statement, params = features.item_statement(target.layer, found.fid, features.ItemsQuery())
    cur = await conn.execute(statement, params)
    row = await cur.fetchone()
    feature: dict[str, Any] = json.loads(row[0]) if row else {}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(ASSIGNMENTS, (incident_id,))
        feature["assignments"] = await cur.fetchall()
    return feature


AVAILABLE = """
SELECT u.device_id AS unit, d.name, u.kind, l.time AS fix_time, ST_X(l.geom) AS lon,
       ST_Y(l.geom) AS lat, extract(epoch FROM now() - l.time)::float8 AS fix_age_s
FROM cmd.units u JOIN gps.devices d ON d.id = u.device_id AND d.active
LEFT JOIN gps.latest l ON l.device_id = u.device_id
WHERE u.status = 'available' AND (%(kinds)s::text[] IS NULL OR u.kind = ANY(%(kinds)s))
ORDER BY u.device_id
"""


def _kinds(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value) or not value:
        msg = "'kinds' must be a non-empty list of unit kinds, e.g. [\"fire-engine\"]"
        raise InvalidInputError(msg)
    return value


async def candidates(
    conn: psycopg.AsyncConnection[Any], target: edits.Editable, incident_id: str, *,
    network: str, kinds: Any = None, limit: int, stale_after_s: float,
) -> dict[str, Any]:  # fmt: skip
    """The available units of ``kinds`` (all when None) ranked by road travel time to the
    incident, the ``limit`` best with their routes, and the units left out with why.

    Raises:
        NotFoundError: no such incident or network.
        ConflictError: the incident is closed.
        InvalidInputError: the incident is farther than the snap limit from any road.
    """
    found = await incident(conn, target, incident_id)
    found.open()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(AVAILABLE, {"kinds": _kinds(kinds)})
        available = await cur.fetchall()
    excluded: list[dict[str, Any]] = []
    fresh = []
    for unit in available:
        reason = _stale(unit, stale_after_s)
        if reason:
            excluded.append(_left(unit, reason))
        else:
            fresh.append(unit)
    answer: dict[str, Any] = {"incident": incident_id, "network": network,
                              "stale_after_s": stale_after_s, "candidates": [],
                              "excluded": excluded}  # fmt: skip
    if not fresh:
        return answer
    state, placed, goal = await _placed(conn, network, found, fresh, excluded)
    if not placed:
        return answer
    usable = routing.usable_edges(network, state.srid, closures=state.closed)
    seconds = await routing.costs(conn, routing.edges_query(usable), [p[1] for p in placed], [goal])
    ranked = []
    for i, (unit, _) in enumerate(placed):
        if (i, 0) in seconds:
            ranked.append((seconds[(i, 0)], i))
        else:
            excluded.append(
                _left(
                    unit,
                    "no road leads from it to the incident (one-way "
                    "streets, closures or a piece of the network apart)",
                )
            )
    ranked.sort()
    best = ranked[:limit]
    ways = await _best_ways(conn, usable, state.srid, [(placed[i], secs) for secs, i in best],
                            goal, scene=(found.lon, found.lat))  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    for k, ((secs, i), leg) in enumerate(zip(best, ways, strict=True)):
        unit = placed[i][0]
        answer["candidates"].append({
            "rank": k + 1, "unit": unit["unit"], "name": unit["name"], "kind": unit["kind"],
            "seconds": round(secs, 1), "eta": (now + dt.timedelta(seconds=secs)).isoformat(),
            "metres": round(leg.metres, 1) if leg else None,
            "roads": _roads(leg),
            "route": leg.line if leg else None,
            "fix_time": unit["fix_time"].isoformat(), "fix_age_s": round(unit["fix_age_s"], 1),
            "position": [unit["lon"], unit["lat"]],
        })  # fmt: skip
    answer["more"] = max(0, len(ranked) - limit)
    answer["excluded"] = sorted(excluded, key=lambda e: e["unit"])
    return answer


def _roads(leg: routing.Leg | None) -> list[str]:
    """The road names of a leg in order, each once per stretch."""
    names = [n for n in (leg.names if leg else []) if n]
    return [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]


def _stale(unit: dict[str, Any], stale_after_s: float) -> str | None:
    if unit["fix_time"] is None:
        return "no fix yet"
    if unit["fix_age_s"] > stale_after_s:
        return (
            f"its latest fix is {_age(unit['fix_age_s'])} old (stale after {_age(stale_after_s)})"
        )
    return None


def _age(seconds: float) -> str:
    """A duration as people say it: minutes, hours or days."""
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min".replace(".0 min", " min")
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def _left(unit: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"unit": unit["unit"], "name": unit["name"], "kind": unit["kind"], "reason": reason}


async def _placed(
    conn: psycopg.AsyncConnection[Any],
    network: str,
    found: Incident,
    units: Sequence[dict[str, Any]],
    excluded: list[dict[str, Any]],
) -> tuple[routing.NetworkState, list[tuple[dict[str, Any], routing.Snapped]], routing.Snapped]:
    """The network's state, the units on the network and the incident's place on it; the
    units too far from any road added to ``excluded``.

    Raises:
        InvalidInputError: the incident is too far from the roads.
    """
    state = await routing.network_state(conn, network)
    points = [(u["lon"], u["lat"]) for u in units] + [(found.lon, found.lat)]
    snapped = await routing.nearest_edges(conn, network, points, srid=state.srid,
                                          closures=state.closed)  # fmt: skip
    goal = snapped[-1]
    if goal.distance_m > routing.SNAP_LIMIT_M:
        msg = (
            f"incident {found.id} is {goal.distance_m:,.0f} m from the nearest road of network "
            f"{network!r}; the limit is {routing.SNAP_LIMIT_M:,.0f} m"
        )
        raise InvalidInputError(msg)
    placed = []
    for unit, spot in zip(units, snapped[:-1], strict=True):
        if spot.distance_m > routing.SNAP_LIMIT_M:
            excluded.append(_left(unit, f"it is {spot.distance_m:,.0f} m from the nearest road"))
        else:
            placed.append((unit, spot))
    return state, placed, goal


NEAR_M = 2000.0
"""The least margin around the best units and the incident of the roads their routes are
first searched on."""


async def _best_ways(
    conn: psycopg.AsyncConnection[Any], usable: sql.Composable, srid: int,
    best: Sequence[tuple[tuple[dict[str, Any], routing.Snapped], float]],
    goal: routing.Snapped, *, scene: tuple[float, float],
) -> list[routing.Leg | None]:  # fmt: skip
    """The routes of the best-ranked units (each with its time by :func:`routing.costs`)
    to the incident, in order.

    pgRouting loads every edge of its edges query for each call, and the best units are
    near the incident: the routes are first searched on the roads inside the box of their
    positions and the incident, widened by :data:`NEAR_M` or half its size, whichever is
    more. A route found there as fast as the whole network's time is the fastest (no path
    outside the box can beat it); any other is searched again on the whole network, so
    the answer is the same as a search of the whole network, at a fraction of its cost.
    """
    lons = [u["lon"] for (u, _), _ in best] + [scene[0]]
    lats = [u["lat"] for (u, _), _ in best] + [scene[1]]
    middle = math.cos(math.radians((min(lats) + max(lats)) / 2))
    size_m = max((max(lons) - min(lons)) * 111_320 * middle, (max(lats) - min(lats)) * 110_574)
    margin = max(NEAR_M, size_m / 2)
    dlon, dlat = margin / (111_320 * middle), margin / 110_574
    box = sql.SQL("e.geom && ST_Transform(ST_MakeEnvelope({}, {}, {}, {}, 4326), {})").format(
        *(sql.Literal(v) for v in (min(lons) - dlon, min(lats) - dlat, max(lons) + dlon,
                                   max(lats) + dlat, srid)),
    )  # fmt: skip
    near = routing.edges_query(sql.SQL("{} AND {}").format(usable, box))
    found = await routing.legs(conn, near, [spot for (_, spot), _ in best], [goal])
    ways: list[routing.Leg | None] = [found.get((k, 0)) for k in range(len(best))]
    again = [k for k, (way, (_, secs)) in enumerate(zip(ways, best, strict=True))
             if way is None or way.seconds > secs + 1e-3 + 1e-9 * secs]  # fmt: skip
    if again:
        whole = await routing.legs(conn, routing.edges_query(usable),
                                   [best[k][0][1] for k in again], [goal])  # fmt: skip
        for n, k in enumerate(again):
            ways[k] = whole.get((n, 0))
    return ways


def _names(value: Any, most: int) -> list[str]:
    ok = isinstance(value, list) and value and all(isinstance(u, str) and u for u in value)
    if not ok:
        msg = "'units' must be a non-empty list of unit ids"
        raise InvalidInputError(msg)
    if len(value) > most or len(set(value)) != len(value):
        msg = f"'units' names at most {most} units, each once"
        raise InvalidInputError(msg)
    return list(value)


CLAIM = """
UPDATE cmd.units SET status = 'assigned', incident = %(incident)s, since = now()
WHERE device_id = ANY(%(units)s) AND status = 'available' RETURNING device_id
"""


async def dispatch(
    conn: psycopg.AsyncConnection[Any], target: edits.Editable, incident_id: str,
    units: Any, *, network: str, most: int, actor: Actor,
) -> dict[str, Any]:  # fmt: skip
    """Assign ``units`` to the incident: each with its route and ETA from its latest fix
    (none when it has no fix or no road), the incident dispatched; all or nothing.

    Raises:
        NotFoundError: no such incident.
        ConflictError: the incident is closed, or a unit is not available (taken by
            another dispatch, off duty, or no unit at all): nothing is assigned.
    """
    wanted = _names(units, most)
    async with conn.transaction():
        found = await incident(conn, target, incident_id, lock=True)
        found.open()
        cur = await conn.execute(CLAIM, {"incident": incident_id, "units": wanted})
        claimed = {r[0] for r in await cur.fetchall()}
        if len(claimed) < len(wanted):
            raise ConflictError(await _unavailable(conn, [u for u in wanted if u not in claimed]))
        routes = await _routes(conn, network, found, wanted)
        now = dt.datetime.now(dt.UTC)
        done = []
        for unit in wanted:
            leg = routes.get(unit)
            eta = None if leg is None else now + dt.timedelta(seconds=leg.seconds)
            await conn.execute(
                "INSERT INTO cmd.assignments (incident, unit, network, seconds, metres, roads, "
                "route, eta, dispatched_by) VALUES (%s, %s, %s, %s, %s, %s, "
                "ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326), %s, %s)",
                (incident_id, unit, network, leg and round(leg.seconds, 1),
                 leg and round(leg.metres, 1), leg and _roads(leg),
                 leg and leg.line and json.dumps(leg.line), eta, actor.name),
            )  # fmt: skip
            done.append({"unit": unit, "seconds": leg and round(leg.seconds, 1),
                         "metres": leg and round(leg.metres, 1),
                         "eta": eta and eta.isoformat(), "route": leg and leg.line})  # fmt: skip
        status = "dispatched" if found.status == "reported" else found.status
        assigned = [*found.units, *(u for u in wanted if u not in found.units)]
        await _edit(conn, target, found, {"status": status, "units": ",".join(assigned)}, actor)
        await conn.execute(
            audit.INSERT,
            (actor.name, actor.user_id, actor.address, "incident.dispatch", COLLECTION,
             [incident_id], None, None,
             Jsonb({"units": wanted, "eta": {d["unit"]: d["eta"] for d in done}})),
        )  # fmt: skip
        await _tell(conn, [{"incident": incident_id, "kind": "dispatch", "status": status,
                            "units": [{k: d[k] for k in ("unit", "seconds", "eta")}
                                      for d in done]}])  # fmt: skip
    return {"incident": incident_id, "status": status, "assignments": done}


async def _unavailable(conn: psycopg.AsyncConnection[Any], units: list[str]) -> str:
    cur = await conn.execute(
        "SELECT device_id, status, incident FROM cmd.units WHERE device_id = ANY(%s)", (units,)
    )
    known = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    said = []
    for unit in units:
        status, serving = known.get(unit, (None, None))
        said.append(
            f"{unit} is not a unit" if status is None
            else f"{unit} is {status}" + (f" (incident {serving})" if serving else "")
        )  # fmt: skip
    return f"not dispatched: {'; '.join(said)}"


async def _routes(
    conn: psycopg.AsyncConnection[Any], network: str, found: Incident, units: list[str]
) -> dict[str, routing.Leg]:
    """Each unit's way from its latest fix to the incident (none: no fix, no road)."""
    cur = await conn.execute(
        "SELECT device_id, ST_X(geom), ST_Y(geom) FROM gps.latest WHERE device_id = ANY(%s)",
        (units,),
    )
    fixes = [(r[0], float(r[1]), float(r[2])) for r in await cur.fetchall()]
    if not fixes:
        return {}
    state = await routing.network_state(conn, network)
    snapped = await routing.nearest_edges(
        conn, network, [(x, y) for _, x, y in fixes] + [(found.lon, found.lat)],
        srid=state.srid, closures=state.closed,
    )  # fmt: skip
    near = [i for i, s in enumerate(snapped[:-1]) if s.distance_m <= routing.SNAP_LIMIT_M]
    if not near or snapped[-1].distance_m > routing.SNAP_LIMIT_M:
        return {}
    edges = routing.edges_query(routing.usable_edges(network, state.srid, closures=state.closed))
    ways = await routing.legs(conn, edges, [snapped[i] for i in near], [snapped[-1]])
    return {fixes[i][0]: ways[(k, 0)] for k, i in enumerate(near) if (k, 0) in ways}


async def _edit(
    conn: psycopg.AsyncConnection[Any], target: edits.Editable, found: Incident,
    props: dict[str, Any], actor: Actor,
) -> None:  # fmt: skip
    """A Part 4 update of the incident by the dispatch (which alone writes ``units``)."""
    await conn.execute("SELECT set_config('spatial.dispatching', 'on', true)")
    await edits.replace(conn, target, found.fid, {"type": "Feature", "properties": props},
                        crs=CRS84, actor=actor, if_match=None, partial=True)  # fmt: skip
    await conn.execute("SELECT set_config('spatial.dispatching', 'off', true)")


async def _tell(conn: psycopg.AsyncConnection[Any], said: list[dict[str, Any]]) -> None:
    """Tell the live streams, at commit."""
    await conn.execute("SELECT pg_notify('spatial_gps', %s)", (json.dumps({"incidents": said}),))


async def close(
    conn: psycopg.AsyncConnection[Any], target: edits.Editable, incident_id: str, *,
    actor: Actor,
) -> dict[str, Any]:  # fmt: skip
    """Close an incident; its units are available again (the table's trigger).

    Raises:
        NotFoundError: no such incident. ConflictError: already closed.
    """
    async with conn.transaction():
        found = await incident(conn, target, incident_id, lock=True)
        found.open()
        cur = await conn.execute(
            "SELECT device_id FROM cmd.units WHERE incident = %s ORDER BY 1", (incident_id,)
        )
        freed = [r[0] for r in await cur.fetchall()]
        await _edit(conn, target, found, {"status": "closed"}, actor)
    return {"incident": incident_id, "status": "closed", "freed": freed}


ARRIVED = """
SELECT a.id, a.unit, a.incident, p.time, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat
FROM cmd.assignments a
JOIN cmd.units u ON u.device_id = a.unit AND u.status = 'assigned'
JOIN layers.incidents i ON i.incident_id = a.incident
CROSS JOIN LATERAL (
    SELECT p.time, p.geom FROM gps.positions p
    WHERE p.device_id = a.unit AND p.time >= a.dispatched_at - interval '1 day'
      AND p.received_at >= a.dispatched_at
      AND ST_DWithin(p.geom::geography, i.geom::geography, %(m)s)
    ORDER BY p.time LIMIT 1
) p
WHERE a.released_at IS NULL AND a.arrived_at IS NULL
ORDER BY a.id
FOR UPDATE OF a, u SKIP LOCKED
"""
"""The open assignments whose unit has a fix received since the dispatch within the
distance of the incident (fix times may lag the server's clock: a day's window)."""


async def arrivals(
    conn: psycopg.AsyncConnection[Any], target: edits.Editable, *, within_m: float,
    actor: Actor,
) -> list[dict[str, Any]]:  # fmt: skip
    """Turn the units that reached their incident ``on-scene`` (and the incidents on
    scene); returns the events recorded. Workers may run it at once: each arrival is
    claimed by one (locked rows are skipped)."""
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(ARRIVED, {"m": within_m})
            found = await cur.fetchall()
        events = []
        for row in found:
            await conn.execute(
                "UPDATE cmd.assignments SET arrived_at = %s WHERE id = %s", (row["time"], row["id"])
            )
            await conn.execute(
                "UPDATE cmd.units SET status = 'on-scene', since = now() WHERE device_id = %s",
                (row["unit"],),
            )
            await conn.execute(
                "INSERT INTO gps.events (device_id, kind, time, geom, incident) VALUES "
                "(%s, 'on-scene', %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s)",
                (row["unit"], row["time"], row["lon"], row["lat"], row["incident"]),
            )
            events.append({"incident": row["incident"], "kind": "on-scene", "unit": row["unit"],
                           "time": row["time"].isoformat(), "lon": row["lon"],
                           "lat": row["lat"]})  # fmt: skip
        for incident_id in dict.fromkeys(e["incident"] for e in events):
            try:
                current = await incident(conn, target, incident_id, lock=True)
            except NotFoundError:  # pragma: no cover - assignments follow their incident
                continue
            if current.status == "dispatched":
                await _edit(conn, target, current, {"status": "on-scene"}, actor)
        if events:
            await _tell(conn, events)
    return events
