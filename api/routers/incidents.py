"""Emergency command over HTTP: incidents (``/incidents``) and units (``/units``).

The incidents are the ``incidents`` collection (OGC API - Features, with Part 4 edits at
``/collections/incidents/items``); these routes add the command's verbs: report one,
rank the units for it, dispatch, close. Whoever may edit the incidents (the emergency
department's editors by default, admins) may use them, on the incidents they may edit;
who may read them may read an incident with its assignments and the units' list.
:mod:`spatial.command` does the work; every change is audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import ActorDep, Caller, Conn
from spatial.command import dispatch, units
from spatial.settings import CommandSettings

router = APIRouter(tags=["Emergency command"])
COLLECTION = dispatch.COLLECTION


class IncidentIn(BaseModel):
    """A new incident: what, how severe (1 most, to 4), where (degrees) and the address."""

    kind: str = Field(max_length=40)
    lon: float
    lat: float
    level: int = 3
    address: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=dispatch.MAX_TEXT)


class CandidatesIn(BaseModel):
    """Which units to rank: of these kinds (all when absent), the best ``limit``."""

    kinds: list[str] | None = Field(default=None, max_length=20)
    limit: int = Field(default=5, ge=1, le=200)


class DispatchIn(BaseModel):
    """The units to send."""

    units: list[str] = Field(max_length=200)


class UnitIn(BaseModel):
    """A unit's status as people set it, and its kind."""

    status: str = "available"
    kind: str | None = Field(default=None, max_length=32)


def _settings(request: Request) -> CommandSettings:
    settings: CommandSettings = request.app.state.settings.command
    return settings


@router.post("/incidents", status_code=201, summary="Report an incident")
async def report(
    body: IncidentIn, request: Request, view: Caller, actor: ActorDep, conn: Conn
) -> JSONResponse:
    """Record a new incident (status ``reported``); answers it as a GeoJSON Feature."""
    target = view.writable(COLLECTION).editable()
    _, incident_id = await dispatch.report(conn, target, body.model_dump(), actor=actor)
    feature = await dispatch.described(conn, target, incident_id)
    location = str(request.url_for("incident", incident_id=incident_id))
    return JSONResponse(jsonable_encoder(feature), status_code=201, headers={"Location": location})


@router.get("/incidents/{incident_id}", name="incident", summary="An incident and its units")
async def incident(incident_id: str, view: Caller, conn: Conn) -> JSONResponse:
    """The incident (GeoJSON Feature) with every unit assigned to it: route, ETA,
    arrival, release."""
    target = view.features(COLLECTION)
    found = await dispatch.described(conn, target.editable(), incident_id)
    return JSONResponse(jsonable_encoder(found))


@router.post("/incidents/{incident_id}/candidates", summary="Units ranked by road ETA")
async def candidates(
    incident_id: str, body: CandidatesIn, request: Request, view: Caller, conn: Conn
) -> dict[str, Any]:
    """The available units of the wanted kinds ranked by travel time on the road network
    from their latest fix, the best with their routes; units without a recent fix, too
    far from the roads or without a road there are listed as excluded, with why."""
    target = view.writable(COLLECTION).editable()
    settings = _settings(request)
    return await dispatch.candidates(
        conn, target, incident_id, network=settings.network, kinds=body.kinds,
        limit=min(body.limit, settings.max_units), stale_after_s=settings.stale_after_s,
    )  # fmt: skip


@router.post("/incidents/{incident_id}/dispatch", summary="Dispatch units to an incident")
async def send(
    incident_id: str, body: DispatchIn, request: Request, view: Caller, actor: ActorDep,
    conn: Conn,
) -> JSONResponse:  # fmt: skip
    """Assign the units (all or none): each one's route and ETA are stored, the units
    marked assigned, the incident dispatched, and the dispatch pushed on ``/gps/live``.
    409 when a unit is not available (another dispatcher took it first)."""
    target = view.writable(COLLECTION).editable()
    settings = _settings(request)
    done = await dispatch.dispatch(
        conn, target, incident_id, body.units, network=settings.network,
        most=settings.max_units, actor=actor,
    )  # fmt: skip
    return JSONResponse(done)


@router.post("/incidents/{incident_id}/close", summary="Close an incident, freeing its units")
async def close(incident_id: str, view: Caller, actor: ActorDep, conn: Conn) -> dict[str, Any]:
    """Close the incident; its units are available again."""
    target = view.writable(COLLECTION).editable()
    return await dispatch.close(conn, target, incident_id, actor=actor)


@router.get("/units", summary="Dispatchable units, their status and latest fix")
async def list_units(
    request: Request, view: Caller, conn: Conn, status: str | None = None
) -> list[dict[str, Any]]:
    """Every unit (or those of one ``status``): kind, status, the incident it serves, its
    latest fix and whether that is stale; for those who may read the incidents."""
    view.features(COLLECTION)
    return await units.units(conn, status=status, stale_after_s=_settings(request).stale_after_s)


@router.put("/units/{device_id}", summary="Make a device a unit, or set its status")
async def set_unit(
    device_id: str, body: UnitIn, view: Caller, actor: ActorDep, conn: Conn
) -> dict[str, Any]:
    """``available`` or ``off-duty`` (and the unit's kind); a unit that is assigned or on
    scene is freed by closing its incident (409 otherwise)."""
    view.writable(COLLECTION)
    return await units.set_unit(conn, device_id, kind=body.kind, status=body.status, actor=actor)


@router.delete("/units/{device_id}", summary="Stop dispatching a device")
async def remove_unit(device_id: str, view: Caller, actor: ActorDep, conn: Conn) -> dict[str, Any]:
    """The device stays a GPS device; not while it serves an incident (409)."""
    view.writable(COLLECTION)
    await units.remove(conn, device_id, actor=actor)
    return {"unit": device_id, "removed": True}
