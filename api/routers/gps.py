"""GPS receivers on the API port: OsmAnd / Traccar Client (``/gps/osmand``) and OwnTracks
HTTP (``/gps/owntracks``), and the live stream of positions (``/gps/live``, a WebSocket:
:mod:`api.live`).

A request is decoded (:mod:`spatial.gps.osmand`, :mod:`spatial.gps.owntracks`), checked
and stored in one transaction (:mod:`spatial.gps.store`) before the answer, so a 200
means the fix is stored (or was already: a client that resends after a lost answer does
no harm). The answers are what the clients act on:

- 200: stored, already stored, or refused as junk the client should not send again (a
  jump, (0, 0), no fix...; counted per device);
- 400: a request the platform cannot use (no device id, a malformed request, an unknown
  device), with the reason, as Traccar answers;
- 503 with ``Retry-After``: the database is unavailable; the client keeps the fix and
  sends it again, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import psycopg
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from api import live as live_stream
from api.deps import ActorDep, Db, Steward, caller, database
from spatial.command import dispatch
from spatial.errors import InvalidInputError
from spatial.features import parse_bbox
from spatial.gps import files, osmand, owntracks
from spatial.gps.fix import Decoded
from spatial.gps.store import (
    Stored,
    add_device,
    device_department,
    list_devices,
    remove_device,
    store,
)
from spatial.gps.tcp import INPUT_LIMITS

router = APIRouter(prefix="/gps", tags=["GPS receivers"])
UNUSABLE = frozenset({"malformed", "unknown_device", "no_time"})
"""Reasons that make a request a 400 when nothing in it was stored."""


async def _keep(request: Request, decoded: Decoded, source: str) -> Stored:
    """Store a decoded request (checked and stored in one transaction).

    Raises:
        DatabaseUnavailableError: the database cannot be reached (503 with Retry-After:
            the client keeps the fix and sends it again).
    """
    settings = request.app.state.settings.gps
    try:
        return await database(request).run(lambda conn: store(
            conn, decoded.fixes, source=source, settings=settings, rejects=decoded.rejects
        ))  # fmt: skip
    except INPUT_LIMITS as exc:
        msg = f"the request holds a value beyond what the database can store: {exc}"
        raise InvalidInputError(msg[:500]) from None


def _unusable(done: Stored) -> str | None:
    """Why nothing could be used, when a request stored nothing for a reason of its own."""
    if done.stored or done.duplicates:
        return None
    reasons = [r for r in done.rejects if r.reason in UNUSABLE]
    return "; ".join(f"{r.reason.replace('_', ' ')}: {r.detail}" for r in reasons) or None


async def _osmand(request: Request) -> Response:
    body = await request.body()
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    decoded = osmand.decode_request(target, body, content_type=request.headers.get("content-type"),
                                    received=dt.datetime.now(dt.UTC))  # fmt: skip
    done = await _keep(request, decoded, "osmand")
    problem = _unusable(done)
    if problem:
        return PlainTextResponse(problem, status_code=400)
    return PlainTextResponse("OK")


_FIX = {"id": {"type": "string"}, "lat": {"type": "number"}, "lon": {"type": "number"},
        "timestamp": {"type": "string"}, "speed": {"type": "number"},
        "bearing": {"type": "number"}, "altitude": {"type": "number"}}  # fmt: skip
"""An OsmAnd / Traccar Client fix's fields, for the OpenAPI document (the routes read the
raw request: :mod:`spatial.gps.osmand` decodes it)."""
_OSMAND_QUERY = {"parameters": [{"name": k, "in": "query", "schema": v} for k, v in _FIX.items()]}
_OSMAND_FORM = {"requestBody": {"content": {"application/x-www-form-urlencoded": {
    "schema": {"type": "object", "properties": _FIX}}}}}  # fmt: skip
_OWNTRACKS_BODY = {"requestBody": {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"_type": {"type": "string"}, "lat": {"type": "number"},
    "lon": {"type": "number"}, "tst": {"type": "integer"}, "tid": {"type": "string"},
    "topic": {"type": "string"}}}}}}}  # fmt: skip
_BATCH_BODY = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/geo+json": {"schema": {"type": "object"}}}}}  # fmt: skip


@router.get(
    "/osmand",
    summary="OsmAnd / Traccar Client position (query string)",
    openapi_extra=_OSMAND_QUERY,
)
async def osmand_get(request: Request) -> Response:
    """``?id=DEVICE&lat=..&lon=..&timestamp=..&speed=(knots)&bearing=..&altitude=..``."""
    return await _osmand(request)


@router.post(
    "/osmand",
    summary="OsmAnd / Traccar Client position (form or JSON body)",
    openapi_extra=_OSMAND_FORM,
)
async def osmand_post(request: Request) -> Response:
    """The same as a form body, or Traccar Client 9's JSON body."""
    return await _osmand(request)


@router.post("/owntracks", summary="OwnTracks HTTP mode", openapi_extra=_OWNTRACKS_BODY)
async def owntracks_post(request: Request) -> Response:
    """An OwnTracks message; the user and device come from ``X-Limit-U`` / ``X-Limit-D``
    (or the payload's ``topic``/``tid``). Answers ``[]`` (no commands) as OwnTracks expects."""
    body = await request.body()
    decoded = owntracks.decode_owntracks(
        body, user=request.headers.get("x-limit-u"), device=request.headers.get("x-limit-d")
    )
    done = await _keep(request, decoded, "owntracks")
    problem = _unusable(done)
    if problem:
        return JSONResponse({"code": "InvalidParameterValue", "description": problem},
                            status_code=400)  # fmt: skip
    answer: list[Any] = []
    return JSONResponse(answer)


@router.post(
    "/batch",
    summary="A batch of fixes (CSV or GeoJSON), for systems that collect them",
    openapi_extra=_BATCH_BODY,
)
async def batch(request: Request) -> Response:
    """Fixes of many devices at once: CSV (``text/csv``: device, time, lat, lon, ...) or a
    GeoJSON FeatureCollection of points (``application/geo+json``), checked and stored in
    one transaction. For stewards and admins of ``gps_positions`` (a system, not a device,
    sends batches). Answers what was stored and the rejects by reason."""
    caller(request).may_ingest("gps_positions")
    body = await request.body()
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if kind == "text/csv":
        decoded = files.read_csv(body)
    elif kind in {"application/geo+json", "application/json"}:
        decoded = files.read_geojson(body)
    else:
        msg = f"send text/csv or application/geo+json, not {kind or 'no content type'!r}"
        raise InvalidInputError(msg)
    done = await _keep(request, decoded, "batch")
    return JSONResponse({"stored": done.stored, "duplicates": done.duplicates,
                         "rejected": {k: v for k, v in done.counts().items() if k != "duplicate"},
                         "events": len(done.events)})  # fmt: skip


class DeviceIn(BaseModel):
    """A device to register."""

    id: str
    name: str | None = None
    department: str | None = None
    kind: str = "vehicle"


@router.get("/devices", summary="The device registry")
async def devices(seen: Steward, db: Db) -> list[dict[str, Any]]:
    """Every device (for a steward: their department's)."""
    who = seen.principal
    found = await db.run(list_devices)
    return [vars(d) for d in found if who.admin or d.department == who.department]


@router.post("/devices", status_code=201, summary="Register a device")
async def register(body: DeviceIn, seen: Steward, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Register a device (admins: of any department; stewards: of theirs); the answer holds
    its token, shown this once."""
    who = seen.principal
    department = body.department if who.admin else who.department
    token = await db.run(lambda conn: add_device(
        conn, body.id, name=body.name, department=department, kind=body.kind, actor=actor
    ))  # fmt: skip
    return {"id": body.id, "department": department, "token": token}


@router.delete("/devices/{device_id}", summary="Unregister a device (its positions stay)")
async def unregister(device_id: str, seen: Steward, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Unregister a device (admins: any; stewards: their department's)."""

    def work(conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            department = device_department(conn, device_id)
            if department is not None:
                seen.steward_of(department, f"device {device_id!r}")
            remove_device(conn, device_id, actor=actor)

    await db.run(work)
    return {"id": device_id, "removed": True}


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    """Positions as they arrive (``{"type": "position", ...}``), first the latest of every
    device, filtered by ``device`` and ``department`` (comma-separated) and ``bbox``
    (west,south,east,north in lon/lat); geofence events (``{"type": "event", ...}``); for
    callers who may read every incident, what happens to them (``{"type": "incident",
    "kind": "reported" | "changed" | "dispatch" | "on-scene" | "deleted", ...}``); the
    alarms they may see (``{"type": "alarm", ...}``). Positions and geofence events only
    to callers who may read ``gps_latest`` (and not ``positions=false``), of the devices
    their grants show. Also at ``/live``."""
    seen = caller(websocket)
    q = websocket.query_params
    try:
        bbox = parse_bbox(q["bbox"]) if q.get("bbox") else None
    except InvalidInputError as exc:
        await websocket.close(code=1003, reason=str(exc)[:120])
        return

    def names(key: str) -> frozenset[str] | None:
        found = frozenset(v.strip() for v in (q.get(key) or "").split(",") if v.strip())
        return found or None

    every = (r := seen.rights.get(dispatch.COLLECTION)) is not None and r.read_rows is None
    gps = live_stream.COLLECTION in seen.rights and q.get("positions") != "false"
    layer = seen.features(live_stream.COLLECTION).layer if gps else None
    subscriber = live_stream.Subscriber(
        layer, names("device"), names("department"), bbox, incidents=every,
        sees_alarm=seen.sees_fence,  # alarms: as fences, by department or collection
    )  # fmt: skip
    await websocket.accept()
    hub: live_stream.Hub = websocket.app.state.live
    hub.subscribers.add(subscriber)

    async def pump() -> None:
        if layer is not None:
            for row in await live_stream.positions(websocket.app.state.db, layer, None):
                if subscriber.wants(row):
                    subscriber.offer(live_stream.message(row))
        while True:
            text = await subscriber.queue.get()
            if subscriber.dropped:
                await websocket.send_json({"type": "dropped", "count": subscriber.dropped})
                subscriber.dropped = 0
            await websocket.send_text(text)

    async def watch() -> None:
        """Read the socket (clients send nothing) so that a close is seen at once, not at
        the next message: a handler left waiting would hold up the server's shutdown."""
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = {asyncio.create_task(pump()), asyncio.create_task(watch())}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                task.result()
    finally:
        for task in tasks:
            task.cancel()
        hub.subscribers.discard(subscriber)
