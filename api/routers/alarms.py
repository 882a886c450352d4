"""Sensor alarms over HTTP (:mod:`spatial.sta.alarms`): the list, acknowledging one, and
the stations' status the water and environment maps colour by; and ``/live``, the live
stream (:mod:`api.live`) under its new name, ``/gps/live`` kept.

Who sees an alarm is who may read its datastream's Thing (:meth:`layers.View.sta_scope`:
the readers of the Thing's station collection, with their rows, and its department's
members; admins). Acknowledging takes an admin or a signed-in member of the datastream's
department; it is audited (``alarm-acknowledge``) and happens once (409 after).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import ActorDep, Caller, Db
from api.routers import gps
from spatial.errors import NotFoundError
from spatial.sta import alarms

router = APIRouter(tags=["Alarms"])
router.add_api_websocket_route("/live", gps.live, name="live")


@router.get("/alarms", summary="Sensor alarms: the active ones and the recent")
async def list_alarms(
    seen: Caller,
    db: Db,
    state: Annotated[str | None, Query(description="active or cleared (default: both)")] = None,
    subsystem: Annotated[str | None, Query(max_length=40, description="e.g. water")] = None,
    collection: Annotated[
        str | None, Query(max_length=63, description="the Things' collection")
    ] = None,
    level: Annotated[str | None, Query(max_length=40, description="e.g. danger")] = None,
    since: Annotated[
        dt.datetime | None,
        Query(description="cleared alarms raised or cleared since (default: 24 hours ago)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=alarms.MAX_LIST)] = 100,
) -> dict[str, Any]:
    """Every active alarm the caller may see, and those raised or cleared since ``since``,
    active first and newest first."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    filters = alarms.Filters(state, subsystem, collection, level, since, limit)
    scope = seen.sta_scope()
    found = await db.run(lambda conn: alarms.list_alarms(conn, scope, filters))
    return {"alarms": found, "count": len(found)}


@router.post("/alarms/{alarm_id}/acknowledge", summary="Acknowledge an alarm")
async def acknowledge(alarm_id: int, seen: Caller, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Acknowledge an alarm, once: an admin or a signed-in member of its datastream's
    department (401 anonymous, 403 another department, 404 an alarm the caller may not
    see, 409 acknowledged already). Audited as ``alarm-acknowledge``."""
    scope, who = seen.sta_scope(), seen.principal
    return await db.run(
        lambda conn: alarms.acknowledge(conn, alarm_id, scope=scope, who=who, actor=actor)
    )


@router.get("/alarms/status", summary="Stations by their latest readings' levels (GeoJSON)")
async def status(
    seen: Caller, db: Db, collection: Annotated[str, Query(max_length=63)]
) -> dict[str, Any]:
    """The Things of a station collection (``water_gauges``, ``env_stations``) the caller
    may see, each with its worst level and its datastreams' latest value, level and
    thresholds (:func:`spatial.sta.alarms.status`)."""
    if collection not in seen.known:
        raise NotFoundError(f"collection {collection!r} does not exist")
    scope = seen.sta_scope()
    return await db.run(lambda conn: alarms.status(conn, scope, collection))
