"""Alarms: readings against the thresholds of ``layers/alarms/*.yaml``.

The rules live in ``sta.alarm_rules`` and ``sta.alarm_levels`` (synced from the YAML by
:mod:`spatial.sta.rules`), so evaluating them is SQL that every process runs alike: the API
workers, the MQTT bridge, the demo loader.

:func:`evaluate` is called by the observation store (:func:`spatial.sta.observations.store`)
in its transaction, after ``sta.latest`` moved. For each datastream given and each rule
that picks it, the *current level* is the highest level whose threshold the measure is
above (strictly): the measure is the latest reading, or for a rule with a ``window`` the
sum of the readings in the window that ends at the latest reading (anchored at the
reading, not the clock: a late batch is judged by its own times). A level that is an
alarm (the YAML marks which) is compared with the datastream's active alarm for that rule:

- no active alarm and an alarm level: an alarm is *raised*;
- an active alarm and no alarm level (the measure went back below, or the rule is gone):
  it is *cleared* with the reading that cleared it;
- an active alarm at another level: it is cleared and a new one raised at the new level
  (each alarm keeps one level for its life, so an acknowledgement is of what was seen:
  an escalation must be acknowledged again).

No hysteresis: a reading at or below the threshold clears. The measures are hourly sums
and levels of slow-moving water, which do not flap; a rule that needs a dead band can
give its clearing level as a level of its own.

Each raise and clear is an event in ``gps.events`` (``alarm-raised`` / ``alarm-cleared``,
the events collection and the webhooks, :mod:`spatial.gps.webhooks`) and a notification
``{"alarms": [...]}`` on ``spatial_gps`` for the live stream (:mod:`api.live`), sent when
the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from spatial.access import Principal
from spatial.audit import Actor, record
from spatial.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
)
from spatial.gps import pgarrays
from spatial.sta import arrays
from spatial.sta.scope import Scope

KINDS = ("alarm-raised", "alarm-cleared")
"""The event kinds of alarms (``gps.events``)."""
NOTIFY_CHUNK = 10
"""Alarms in one notification (each must stay under PostgreSQL's 8,000 bytes)."""
MAX_NAME = 100
"""Characters of a name a notification carries."""


@dataclass(frozen=True)
class Event:
    """An alarm raised or cleared, as recorded in ``gps.events``."""

    id: int
    """The event's id in ``gps.events``."""
    state: str
    """``raised`` or ``cleared``."""
    alarm: int
    datastream: int
    datastream_name: str
    thing: int
    name: str
    """The Thing's name."""
    rule: str
    subsystem: str
    level: str
    value: float | None
    """The measure that raised or cleared it (None: cleared because its rule is gone)."""
    time: dt.datetime
    """The reading's phenomenon time (when the rule is gone: when that was seen)."""
    threshold: float | None
    """The threshold of the alarm's level."""
    department: str | None
    """The datastream's department."""
    collection: str | None
    """The Thing's collection, when it is a station of one."""
    lon: float | None
    lat: float | None

    @property
    def kind(self) -> str:
        """The event kind, ``alarm-raised`` or ``alarm-cleared``."""
        return f"alarm-{self.state}"

    def message(self) -> dict[str, Any]:
        """The event as the live stream sends it (with what decides who sees it)."""
        return {
            "type": "alarm", "state": self.state, "alarm": self.alarm,
            "datastream": self.datastream, "thing": self.thing, "name": self.name[:MAX_NAME],
            "level": self.level, "value": self.value, "time": _iso(self.time),
            "threshold": self.threshold, "rule": self.rule, "subsystem": self.subsystem,
            "department": self.department, "collection": self.collection,
            "lon": self.lon, "lat": self.lat, "event": self.id,
        }  # fmt: skip


def _iso(time: dt.datetime) -> str:
    return time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


LEVELS = """
SELECT d.id AS datastream_id, r.id AS rule_id, r.subsystem, v.value, l.phenomenon_start AS time,
       lv.level, lv.rank, lv.alarm, lv.above AS threshold
FROM sta.datastreams d
JOIN sta.latest l ON l.datastream_id = d.id
JOIN sta.observed_properties p ON p.id = d.observed_property_id
JOIN sta.things t ON t.id = d.thing_id
JOIN sta.alarm_rules r ON (lower(r.property) = lower(p.name) OR r.property = p.definition)
                      AND (r.collection IS NULL OR r.collection = t.collection)
CROSS JOIN LATERAL (
    SELECT CASE WHEN r."window" IS NULL THEN l.result_number ELSE (
        SELECT sum(o.result_number) FROM sta.observations o
        WHERE o.datastream_id = d.id AND o.phenomenon_start <= l.phenomenon_start
          AND o.phenomenon_start > l.phenomenon_start - r."window") END AS value
) v
LEFT JOIN LATERAL (
    SELECT x.level, x.rank, x.alarm, x.above FROM (
        SELECT lv.level, lv.rank, lv.alarm, lv.above IS NULL AND lv.attribute IS NULL AS floor,
               coalesce(lv.above, sta.feature_number(t.collection, t.feature_key, lv.attribute)
                                  + lv."offset") AS above
        FROM sta.alarm_levels lv WHERE lv.rule_id = r.id
    ) x
    WHERE v.value > x.above OR (x.floor AND v.value IS NOT NULL)
    ORDER BY x.rank DESC LIMIT 1
) lv ON true
WHERE d.id = ANY({ids})
"""
"""The current level of each (datastream, rule) of the datastreams ``{ids}`` (an array) that
have a reading: the measure, its time, the level (None: below every level) and its
threshold. Composed with :class:`psycopg.sql.SQL`."""

_LOCK = """
SELECT 1 FROM sta.latest WHERE datastream_id = ANY(%(ids)s)
ORDER BY datastream_id FOR NO KEY UPDATE
"""
"""The datastreams' latest rows, locked (the store holds them already): evaluations of one
datastream follow each other, each seeing the alarms the one before committed."""

_CHANGES = """
WITH pair AS MATERIALIZED (
    SELECT d.id AS datastream_id, r.id AS rule_id, r.subsystem, r."window",
           l.phenomenon_start AS time, l.result_number, t.collection, t.feature_key
    FROM sta.datastreams d
    JOIN sta.latest l ON l.datastream_id = d.id
    JOIN sta.observed_properties p ON p.id = d.observed_property_id
    JOIN sta.things t ON t.id = d.thing_id
    JOIN sta.alarm_rules r ON (lower(r.property) = lower(p.name) OR r.property = p.definition)
                          AND (r.collection IS NULL OR r.collection = t.collection)
    WHERE d.id = ANY(%(ids)s)
),
v AS MATERIALIZED (
    SELECT pair.*, CASE WHEN pair."window" IS NULL THEN pair.result_number ELSE (
        SELECT sum(o.result_number) FROM sta.observations o
        WHERE o.datastream_id = pair.datastream_id AND o.phenomenon_start <= pair.time
          AND o.phenomenon_start > pair.time - pair."window") END AS value
    FROM pair
),
cur AS (
    SELECT v.datastream_id, v.rule_id, v.subsystem, v.value, v.time, lv.level, lv.rank,
           lv.alarm, lv.above AS threshold
    FROM v LEFT JOIN LATERAL (
        SELECT x.level, x.rank, x.alarm, x.above FROM (
            SELECT lv.level, lv.rank, lv.alarm,
                   lv.above IS NULL AND lv.attribute IS NULL AS floor,
                   coalesce(lv.above, sta.feature_number(v.collection, v.feature_key,
                                                         lv.attribute) + lv."offset") AS above
            FROM sta.alarm_levels lv WHERE lv.rule_id = v.rule_id
        ) x
        WHERE v.value > x.above OR (x.floor AND v.value IS NOT NULL)
        ORDER BY x.rank DESC LIMIT 1
    ) lv ON true
),
act AS (
    SELECT id, datastream_id, rule_id, level FROM sta.alarms
    WHERE datastream_id = ANY(%(ids)s) AND state = 'active'
)
SELECT act.id AS active, coalesce(cur.datastream_id, act.datastream_id) AS datastream_id,
       coalesce(cur.rule_id, act.rule_id) AS rule_id, cur.subsystem, cur.value, cur.time,
       CASE WHEN cur.alarm THEN cur.level END AS level, cur.rank, cur.threshold
FROM cur FULL JOIN act ON act.datastream_id = cur.datastream_id AND act.rule_id = cur.rule_id
WHERE act.level IS DISTINCT FROM (CASE WHEN cur.alarm THEN cur.level END)
ORDER BY 2, 3
"""
"""What changes: the active alarms to clear and the levels to raise (:data:`LEVELS`' current
levels, each window's sum read once: materialized, not inlined where the level is picked)."""

_CLEAR = """
UPDATE sta.alarms a
SET state = 'cleared', cleared_at = coalesce(u.time, now()), cleared_value = u.value
FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[]) AS u(id, time, value)
WHERE a.id = u.id AND a.state = 'active'
RETURNING a.id
"""

_RAISE = """
INSERT INTO sta.alarms (datastream_id, rule_id, subsystem, level, rank, raised_at,
                        raised_value, threshold)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::int[],
                     %s::timestamptz[], %s::float8[], %s::float8[])
ORDER BY 1, 2
RETURNING id
"""

_EVENTS = """
WITH u AS (
    SELECT * FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS u(alarm_id, kind, n)
),
info AS (
    SELECT u.n, u.alarm_id, u.kind, a.rule_id, a.subsystem, a.level, a.threshold,
           CASE u.kind WHEN 'alarm-raised' THEN a.raised_at ELSE a.cleared_at END AS time,
           CASE u.kind WHEN 'alarm-raised' THEN a.raised_value ELSE a.cleared_value END
               AS value,
           d.id AS datastream, d.name AS datastream_name, d.department, t.id AS thing,
           t.name, t.collection, ST_PointOnSurface(loc.geom) AS geom
    FROM u JOIN sta.alarms a ON a.id = u.alarm_id
    JOIN sta.datastreams d ON d.id = a.datastream_id
    JOIN sta.things t ON t.id = d.thing_id
    LEFT JOIN LATERAL (
        SELECT l.geom FROM sta.things_locations tl JOIN sta.locations l ON l.id = tl.location_id
        WHERE tl.thing_id = t.id ORDER BY l.id DESC LIMIT 1
    ) loc ON true
),
ins AS (
    INSERT INTO gps.events (kind, alarm_id, time, geom, department)
    SELECT kind, alarm_id, time, geom, department FROM info ORDER BY n
    RETURNING id, alarm_id, kind
)
SELECT ins.id, info.*, ST_X(info.geom) AS lon, ST_Y(info.geom) AS lat
FROM ins JOIN info ON info.alarm_id = ins.alarm_id AND info.kind = ins.kind
ORDER BY ins.id
"""


def evaluate(conn: psycopg.Connection[Any], datastream_ids: Sequence[int], *,
             locked: bool = False) -> list[Event]:  # fmt: skip
    """Raise and clear the alarms of some datastreams after their readings were stored.

    Runs in the caller's transaction (the store's), after ``sta.latest`` was written; the
    events and notifications commit with the readings, or vanish with them.

    Args:
        conn: in a transaction.
        datastream_ids: the datastreams that got readings (any order, repeats allowed).
        locked: the caller holds the datastreams' ``sta.latest`` rows locked already (the
            store's upsert of them locks each, moved or not): :data:`_LOCK` is skipped.

    Returns:
        The alarms raised and cleared, in event order (clears first).
    """
    ids = sorted({int(i) for i in datastream_ids})
    if not ids:
        return []
    arrays.register(conn)
    if not locked:
        conn.execute(_LOCK, {"ids": arrays.int8(ids)})
    cur = conn.cursor(row_factory=dict_row)
    changes = cur.execute(_CHANGES, {"ids": arrays.int8(ids)}).fetchall()
    if not changes:
        return []
    clears = [c for c in changes if c["active"] is not None]
    raises = [c for c in changes if c["level"] is not None]
    if clears:
        conn.execute(_CLEAR, (arrays.int8([c["active"] for c in clears]),
                              arrays.optional_times([c["time"] for c in clears]),
                              pgarrays.float8([c["value"] for c in clears])))  # fmt: skip
    raised: list[int] = []
    if raises:
        columns = ("datastream_id", "rule_id", "subsystem", "level", "rank", "time", "value",
                   "threshold")  # fmt: skip
        senders: tuple[Any, ...] = (
            arrays.int8, pgarrays.text, pgarrays.text, pgarrays.text, pgarrays.int4,
            arrays.optional_times, pgarrays.float8, pgarrays.float8)  # fmt: skip
        rows = conn.execute(_RAISE, [send([c[k] for c in raises]) for k, send
                                     in zip(columns, senders, strict=True)]).fetchall()  # fmt: skip
        raised = [int(r[0]) for r in rows]
    alarms = [int(c["active"]) for c in clears] + raised
    kinds = ["alarm-cleared"] * len(clears) + ["alarm-raised"] * len(raised)
    recorded = cur.execute(_EVENTS, (arrays.int8(alarms), pgarrays.text(kinds))).fetchall()
    events = [_event(r) for r in recorded]
    notify(conn, events)
    return events


def _event(row: dict[str, Any]) -> Event:
    return Event(
        id=row["id"], state=row["kind"].removeprefix("alarm-"), alarm=row["alarm_id"],
        datastream=row["datastream"], datastream_name=row["datastream_name"],
        thing=row["thing"], name=row["name"], rule=row["rule_id"], subsystem=row["subsystem"],
        level=row["level"], value=row["value"], time=row["time"], threshold=row["threshold"],
        department=row["department"], collection=row["collection"], lon=row["lon"],
        lat=row["lat"],
    )  # fmt: skip


def notify(conn: psycopg.Connection[Any], events: Sequence[Event]) -> None:
    """Tell the live streams (every worker, at commit) about alarms raised and cleared,
    in notifications of :data:`NOTIFY_CHUNK` alarms."""
    if not events:
        return
    payloads = [
        json.dumps({"alarms": [e.message() for e in events[i : i + NOTIFY_CHUNK]]})
        for i in range(0, len(events), NOTIFY_CHUNK)
    ]
    arrays.register(conn)
    conn.execute(
        "SELECT pg_notify('spatial_gps', p) FROM unnest(%s::text[]) AS p",
        (pgarrays.text(payloads),),
    )


# --- Reading alarms: the list, acknowledging, the maps' status ------------------------------

STATES = ("active", "cleared")
MAX_LIST = 1000


@dataclass(frozen=True)
class Filters:
    """Which alarms to list: all active ones, and those raised or cleared since ``since``."""

    state: str | None = None
    """``active`` or ``cleared`` (None: both)."""
    subsystem: str | None = None
    collection: str | None = None
    """The Things' collection."""
    level: str | None = None
    since: dt.datetime | None = None
    """Cleared alarms raised or cleared from then on [default: the last 24 hours]."""
    limit: int = 100


_LIST = """
SELECT a.id, a.datastream_id AS datastream, d.name AS datastream_name, th.id AS thing,
       th.name, th.collection, th.feature_key, a.rule_id AS rule, a.subsystem, a.level,
       a.state, a.raised_at, a.raised_value, a.threshold, a.cleared_at, a.cleared_value,
       a.acknowledged_by, a.acknowledged_at, d.department, p.name AS property,
       d.unit ->> 'symbol' AS unit
FROM sta.alarms a
JOIN sta.datastreams d ON d.id = a.datastream_id
JOIN sta.things th ON th.id = d.thing_id
JOIN sta.observed_properties p ON p.id = d.observed_property_id
WHERE {scope}
  AND (%(state)s::text IS NULL OR a.state = %(state)s::text)
  AND (%(subsystem)s::text IS NULL OR a.subsystem = %(subsystem)s::text)
  AND (%(collection)s::text IS NULL OR th.collection = %(collection)s::text)
  AND (%(level)s::text IS NULL OR a.level = %(level)s::text)
  AND (a.state = 'active' OR a.raised_at >= %(since)s OR a.cleared_at >= %(since)s)
ORDER BY a.state = 'active' DESC, a.raised_at DESC, a.id DESC
LIMIT %(limit)s
"""


def list_alarms(
    conn: psycopg.Connection[Any], scope: Scope, filters: Filters | None = None
) -> list[dict[str, Any]]:
    """The alarms of the Things ``scope`` may read, active first, newest first.

    Raises:
        InvalidInputError: an unknown state, or a limit out of 1..:data:`MAX_LIST`.
    """
    f = filters or Filters()
    if f.state is not None and f.state not in STATES:
        msg = f"state {f.state!r}: use {' or '.join(STATES)}"
        raise InvalidInputError(msg)
    if not 1 <= f.limit <= MAX_LIST:
        raise InvalidInputError(f"limit {f.limit}: from 1 to {MAX_LIST}")
    since = f.since or dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)
    statement = sql.SQL(_LIST).format(scope=scope.things("th"))
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(statement, {"state": f.state, "subsystem": f.subsystem,
                                   "collection": f.collection, "level": f.level,
                                   "since": since, "limit": f.limit}).fetchall()  # fmt: skip
    return [_said(r) for r in rows]


def _said(row: dict[str, Any]) -> dict[str, Any]:
    """An alarm row as the API answers it (times in UTC, ``Z``)."""
    return {k: _iso(v) if isinstance(v, dt.datetime) else v for k, v in row.items()}


_ONE = """
SELECT a.id, a.state, a.level, a.datastream_id, th.id AS thing, d.department,
       a.acknowledged_by, a.acknowledged_at
FROM sta.alarms a
JOIN sta.datastreams d ON d.id = a.datastream_id
JOIN sta.things th ON th.id = d.thing_id
WHERE a.id = %(id)s AND {scope}
FOR NO KEY UPDATE OF a
"""


def acknowledge(
    conn: psycopg.Connection[Any], alarm_id: int, *, scope: Scope, who: Principal, actor: Actor
) -> dict[str, Any]:
    """Acknowledge an alarm (active or cleared), audited as ``alarm-acknowledge``: by an
    admin or a signed-in member of the datastream's department.

    Args:
        scope: what the caller may read (an alarm they may not read is not found).
        who: the caller.
        actor: who the audit log and the alarm record.

    Returns:
        The alarm as :func:`list_alarms` gives it.

    Raises:
        NotFoundError: no such alarm the caller may read.
        UnauthorizedError: an anonymous caller.
        ForbiddenError: a caller of another department.
        ConflictError: acknowledged already (by whom and when is said).
    """
    with conn.transaction():
        statement = sql.SQL(_ONE).format(scope=scope.things("th"))
        row = conn.cursor(row_factory=dict_row).execute(statement, {"id": alarm_id}).fetchone()
        if row is None:
            raise NotFoundError(f"alarm {alarm_id} does not exist")
        if who.anonymous:
            raise UnauthorizedError("sign in to acknowledge an alarm")
        if not who.admin and (row["department"] is None or who.department != row["department"]):
            msg = (f"alarm {alarm_id} is of the {row['department'] or 'no'} department's "
                   "datastream: its members or an admin acknowledge it")  # fmt: skip
            raise ForbiddenError(msg)
        if row["acknowledged_at"] is not None:
            msg = (f"alarm {alarm_id} was acknowledged by {row['acknowledged_by']} at "
                   f"{_iso(row['acknowledged_at'])}")  # fmt: skip
            raise ConflictError(msg)
        at = conn.execute(
            "UPDATE sta.alarms SET acknowledged_by = %s, acknowledged_user_id = %s, "
            "acknowledged_at = now() WHERE id = %s RETURNING acknowledged_at",
            (actor.name, actor.user_id, alarm_id),
        ).fetchone()
        record(conn, actor, "alarm-acknowledge", feature_ids=[str(alarm_id)], details={
            "alarm": alarm_id, "datastream": row["datastream_id"], "thing": row["thing"],
            "level": row["level"], "state": row["state"], "department": row["department"],
            "by": actor.name, "at": _iso(at[0]) if at else None,
        })  # fmt: skip
        return one(conn, alarm_id)


def one(conn: psycopg.Connection[Any], alarm_id: int) -> dict[str, Any]:
    """One alarm as :func:`list_alarms` gives it, whoever may read it (for callers that
    checked already).

    Raises:
        NotFoundError: no such alarm.
    """
    statement = sql.SQL(_LIST.replace("LIMIT %(limit)s", "")).format(
        scope=sql.SQL("a.id = %(id)s"))  # fmt: skip
    row = conn.cursor(row_factory=dict_row).execute(statement, {
        "id": alarm_id, "state": None, "subsystem": None, "collection": None, "level": None,
        "since": dt.datetime.min.replace(tzinfo=dt.UTC),
    }).fetchone()  # fmt: skip
    if row is None:
        raise NotFoundError(f"alarm {alarm_id} does not exist")
    return _said(row)


_STATUS = """
WITH t AS (
    SELECT th.id, th.name, th.feature_key, th.collection, loc.geom
    FROM sta.things th
    LEFT JOIN LATERAL (
        SELECT l.geom FROM sta.things_locations tl JOIN sta.locations l ON l.id = tl.location_id
        WHERE tl.thing_id = th.id ORDER BY l.id DESC LIMIT 1
    ) loc ON true
    WHERE th.collection = %(collection)s AND NOT th.retired AND {scope}
),
streams AS (
    SELECT d.id, d.thing_id, d.name, p.name AS property, p.definition,
           d.unit ->> 'symbol' AS unit, l.result_number AS value, l.phenomenon_start AS time,
           t.collection, t.feature_key
    FROM t JOIN sta.datastreams d ON d.thing_id = t.id
    JOIN sta.observed_properties p ON p.id = d.observed_property_id
    LEFT JOIN sta.latest l ON l.datastream_id = d.id
),
cur AS ({levels}),
rl AS (
    SELECT d.id AS datastream_id, r.id AS rule_id, r."window", r.subsystem, r.position,
           c.value, c.level, c.rank, coalesce(c.alarm, false) AS alarm,
           (SELECT json_agg(json_build_object(
                'level', lv.level, 'alarm', lv.alarm,
                'above', coalesce(lv.above, sta.feature_number(d.collection, d.feature_key,
                                                               lv.attribute) + lv."offset"))
                ORDER BY lv.rank)
            FROM sta.alarm_levels lv WHERE lv.rule_id = r.id) AS thresholds
    FROM streams d JOIN sta.alarm_rules r
        ON (lower(r.property) = lower(d.property) OR r.property = d.definition)
       AND (r.collection IS NULL OR r.collection = d.collection)
    LEFT JOIN cur c ON c.datastream_id = d.id AND c.rule_id = r.id
),
ds AS (
    SELECT d.thing_id, d.id, w.level, w.alarm, w.rank, json_build_object(
        'id', d.id, 'name', d.name, 'property', d.property, 'unit', d.unit,
        'value', d.value, 'time', {time}, 'level', w.level,
        'thresholds', coalesce((SELECT rl.thresholds FROM rl
                                WHERE rl.datastream_id = d.id AND rl."window" IS NULL
                                ORDER BY rl.subsystem, rl.position LIMIT 1), '[]'),
        'windows', coalesce((SELECT json_agg(json_build_object(
                                 'rule', rl.rule_id,
                                 'hours', extract(epoch FROM rl."window") / 3600,
                                 'value', rl.value, 'level', rl.level,
                                 'thresholds', rl.thresholds) ORDER BY rl."window")
                             FROM rl WHERE rl.datastream_id = d.id
                               AND rl."window" IS NOT NULL), '[]')) AS said
    FROM streams d LEFT JOIN LATERAL (
        SELECT rl.level, rl.alarm, rl.rank FROM rl
        WHERE rl.datastream_id = d.id AND rl.level IS NOT NULL
        ORDER BY rl.alarm DESC, rl.rank DESC LIMIT 1
    ) w ON true
),
f AS (
    SELECT t.feature_key, json_build_object(
        'type', 'Feature', 'id', t.feature_key,
        'geometry', ST_AsGeoJSON(ST_PointOnSurface(t.geom), 7)::json,
        'properties', json_build_object(
            'thing', t.id, 'name', t.name,
            'level', (SELECT ds.level FROM ds WHERE ds.thing_id = t.id AND ds.level IS NOT NULL
                      ORDER BY ds.alarm DESC, ds.rank DESC LIMIT 1),
            'datastreams', coalesce((SELECT json_agg(ds.said ORDER BY ds.id) FROM ds
                                     WHERE ds.thing_id = t.id), '[]'))) AS feature
    FROM t
)
SELECT json_build_object('type', 'FeatureCollection',
                         'features', coalesce(json_agg(f.feature ORDER BY f.feature_key), '[]'))
FROM f
"""


def status(conn: psycopg.Connection[Any], scope: Scope, collection: str) -> dict[str, Any]:
    """The Things of a station collection that ``scope`` may read, with their datastreams'
    latest readings, levels and thresholds, as GeoJSON (one statement): what the water and
    environment maps colour their stations by.

    Each feature is a Thing (``id``: its feature's key) with ``level``, the worst level of
    its datastreams (an alarm level before a band, then the higher); each datastream has
    its latest ``value`` and ``time``, its ``level`` (the worst of its rules), the
    ``thresholds`` of its rule on the latest reading (``[{level, above, alarm}]``, from
    the lowest; ``above`` None for the band every reading is in) and ``windows``, its
    rules on sums over a window (``[{rule, hours, value, level, thresholds}]``).
    """
    time = sql.SQL("""to_char(d.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')""")
    ids = sql.SQL("(SELECT id FROM streams)")
    statement = sql.SQL(_STATUS).format(
        scope=scope.things("th"), levels=sql.SQL(LEVELS).format(ids=ids), time=time)  # fmt: skip
    row = conn.execute(statement, {"collection": collection}).fetchone()
    found: dict[str, Any] = row[0] if row else {"type": "FeatureCollection", "features": []}
    return found
