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
from psycopg.rows import dict_row

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
WHERE d.id = ANY(%(ids)s)
"""
"""The current level of each (datastream, rule) of the datastreams ``%(ids)s`` that have a
reading: the measure, its time, the level (None: below every level) and its threshold."""

_LOCK = """
SELECT 1 FROM sta.latest WHERE datastream_id = ANY(%(ids)s)
ORDER BY datastream_id FOR NO KEY UPDATE
"""
"""The datastreams' latest rows, locked (the store holds them already): evaluations of one
datastream follow each other, each seeing the alarms the one before committed."""

_CHANGES = (
    "WITH cur AS ("  # noqa: S608 - constant text
    + LEVELS
    + """),
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
)
"""What changes: the active alarms to clear and the levels to raise."""

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


def evaluate(conn: psycopg.Connection[Any], datastream_ids: Sequence[int]) -> list[Event]:
    """Raise and clear the alarms of some datastreams after their readings were stored.

    Runs in the caller's transaction (the store's), after ``sta.latest`` was written; the
    events and notifications commit with the readings, or vanish with them.

    Args:
        conn: in a transaction.
        datastream_ids: the datastreams that got readings (any order, repeats allowed).

    Returns:
        The alarms raised and cleared, in event order (clears first).
    """
    ids = sorted({int(i) for i in datastream_ids})
    if not ids:
        return []
    conn.execute(_LOCK, {"ids": ids})
    cur = conn.cursor(row_factory=dict_row)
    changes = cur.execute(_CHANGES, {"ids": ids}).fetchall()
    if not changes:
        return []
    clears = [c for c in changes if c["active"] is not None]
    raises = [c for c in changes if c["level"] is not None]
    if clears:
        conn.execute(_CLEAR, ([c["active"] for c in clears], [c["time"] for c in clears],
                              [c["value"] for c in clears]))  # fmt: skip
    raised: list[int] = []
    if raises:
        columns = ("datastream_id", "rule_id", "subsystem", "level", "rank", "time", "value",
                   "threshold")  # fmt: skip
        rows = conn.execute(_RAISE, [[c[k] for c in raises] for k in columns]).fetchall()
        raised = [int(r[0]) for r in rows]
    alarms = [int(c["active"]) for c in clears] + raised
    kinds = ["alarm-cleared"] * len(clears) + ["alarm-raised"] * len(raised)
    recorded = cur.execute(_EVENTS, (alarms, kinds)).fetchall()
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
    conn.execute("SELECT pg_notify('spatial_gps', p) FROM unnest(%s::text[]) AS p", (payloads,))
