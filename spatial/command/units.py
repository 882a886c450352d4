"""Units: GPS devices that can be dispatched to incidents.

A unit has a kind (``fire-engine``, ``ambulance``, ``police``...: what a call asks for,
finer than its device's kind) and a status
is ``available`` or ``off-duty`` by its crew's or the commander's word, and ``assigned``
then ``on-scene`` by the dispatch (:mod:`spatial.command.dispatch`), which alone moves a
unit out of or back to those two. Every change is audited (``unit.status``,
``unit.remove``).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from spatial import audit
from spatial.audit import Actor
from spatial.errors import ConflictError, InvalidInputError, NotFoundError

STATUSES = ("available", "assigned", "on-scene", "off-duty")
SETTABLE = ("available", "off-duty")
"""The statuses a person sets; the others are the dispatch's."""
KIND = re.compile(r"[a-z][a-z0-9-]{0,31}")

LIST = """
SELECT u.device_id AS unit, d.name, u.kind, d.department, u.status, u.incident, u.since,
       l.time AS fix_time, ST_X(l.geom) AS lon, ST_Y(l.geom) AS lat,
       extract(epoch FROM now() - l.time) AS fix_age_s
FROM cmd.units u JOIN gps.devices d ON d.id = u.device_id
LEFT JOIN gps.latest l ON l.device_id = u.device_id
WHERE (%(status)s::text IS NULL OR u.status = %(status)s::text)
ORDER BY u.device_id
"""


def _check_status(status: str) -> None:
    if status not in SETTABLE:
        msg = (
            f"status {status!r}: a unit is set {' or '.join(SETTABLE)}; assigned and "
            "on-scene come from the dispatch"
        )
        raise InvalidInputError(msg)


async def units(
    conn: psycopg.AsyncConnection[Any], *, status: str | None = None, stale_after_s: float
) -> list[dict[str, Any]]:
    """Every unit (or those of one status) with its latest fix and whether it is stale."""
    if status is not None and status not in STATUSES:
        msg = f"status {status!r}: use {', '.join(STATUSES)}"
        raise InvalidInputError(msg)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(LIST, {"status": status})
        found = await cur.fetchall()
    for row in found:
        age = row["fix_age_s"]
        row["fix_age_s"] = None if age is None else round(float(age), 1)
        row["stale"] = age is None or float(age) > stale_after_s
    return found


async def set_unit(
    conn: psycopg.AsyncConnection[Any], device: str, *, kind: str | None, status: str,
    actor: Actor,
) -> dict[str, Any]:  # fmt: skip
    """Make a device a unit of ``kind``, or set a unit's status (``available`` or
    ``off-duty``) and kind (None: unchanged; a new unit takes its device's kind).

    Raises:
        InvalidInputError: another status, a malformed kind.
        NotFoundError: no such device.
        ConflictError: the unit is assigned or on scene (close its incident first).
    """
    _check_status(status)
    if kind is not None and not KIND.fullmatch(kind):
        msg = f"unit kind {kind!r}: lower-case letters, digits and '-', e.g. fire-engine"
        raise InvalidInputError(msg)
    async with conn.transaction():
        cur = await conn.execute("SELECT kind FROM gps.devices WHERE id = %s", (device,))
        row = await cur.fetchone()
        if row is None:
            msg = f"no device {device!r} (spatial gps device add)"
            raise NotFoundError(msg)
        cur = await conn.execute(
            "INSERT INTO cmd.units (device_id, kind, status) VALUES (%(d)s, %(new)s, %(s)s) "
            "ON CONFLICT (device_id) DO UPDATE SET status = %(s)s, since = now(), "
            "kind = coalesce(%(k)s, cmd.units.kind) "
            "WHERE cmd.units.status IN ('available', 'off-duty') RETURNING device_id, kind",
            {"d": device, "s": status, "k": kind, "new": kind or row[0]},
        )
        done = await cur.fetchone()
        if done is None:
            cur = await conn.execute(
                "SELECT status, incident FROM cmd.units WHERE device_id = %s", (device,)
            )
            now = await cur.fetchone()
            msg = (
                f"unit {device!r} is {now[0] if now else 'busy'} (incident "
                f"{now[1] if now else '?'}); it is freed when that incident closes"
            )
            raise ConflictError(msg)
        await conn.execute(
            audit.INSERT,
            (actor.name, actor.user_id, actor.address, "unit.status", None, [device], None,
             None, Jsonb({"unit": device, "kind": done[1], "status": status})),
        )  # fmt: skip
    return {"unit": device, "kind": done[1], "status": status}


async def remove(conn: psycopg.AsyncConnection[Any], device: str, *, actor: Actor) -> None:
    """Stop dispatching a device (it stays a GPS device); not while it serves an incident.

    Raises:
        NotFoundError: not a unit. ConflictError: assigned or on scene.
    """
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT status, incident FROM cmd.units WHERE device_id = %s FOR UPDATE", (device,)
        )
        row = await cur.fetchone()
        if row is None:
            msg = f"device {device!r} is not a unit"
            raise NotFoundError(msg)
        if row[0] not in SETTABLE:
            msg = f"unit {device!r} is {row[0]} (incident {row[1]}); close that incident first"
            raise ConflictError(msg)
        await conn.execute("DELETE FROM cmd.units WHERE device_id = %s", (device,))
        await conn.execute(
            audit.INSERT,
            (actor.name, actor.user_id, actor.address, "unit.remove", None, [device], None,
             None, Jsonb({"unit": device})),
        )  # fmt: skip
