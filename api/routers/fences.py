"""Geofences over HTTP (``/gps/fences``): listed, drawn, made of a collection's polygons
(which they then follow, :func:`spatial.gps.fences.follow`) and removed.

A fence belongs to a department: the owner of the collection it was made of, or the
department of the steward who drew it. Its stewards (and admins) remove it; the stewards
of a collection make fences of it; any steward draws fences for their department. Signed
in callers see the fences of their department, those made of collections they may read,
and (admins) every one. Every change is audited by :mod:`spatial.gps.fences`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ActorDep, Caller, Db
from spatial.features import LayerSchema
from spatial.gps import fences

router = APIRouter(prefix="/gps", tags=["GPS geofences"])


class FenceIn(BaseModel):
    """A drawn fence: a GeoJSON polygon in lon/lat, a name, an optional dwell time."""

    name: str = Field(max_length=200)
    geometry: dict[str, Any]
    dwell_s: int | None = Field(default=None, ge=1)


class ImportIn(BaseModel):
    """Fences of every polygon of a collection, named by a property, followed from then on."""

    collection: str = Field(max_length=63)
    name_field: str | None = Field(default=None, max_length=63)
    dwell_s: int | None = Field(default=None, ge=1)


@router.get("/fences", summary="Geofences (GeoJSON)")
async def list_fences(
    view: Caller, db: Db, active: bool | None = Query(True, description="false: retired ones")
) -> dict[str, Any]:
    """The fences the caller may see, as a FeatureCollection (active ones by default)."""
    view.signed_in("listing fences")
    found = await db.run(lambda conn: fences.list_fences(conn, active=active))
    seen = [f for f in found if view.sees_fence(f["department"], f["collection"])]
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": f["id"], "geometry": f["geometry"],
         "properties": {k: v for k, v in f.items() if k not in {"id", "geometry"}}}
        for f in seen
    ]}  # fmt: skip


@router.get("/fences/sources", summary="The collections geofences follow")
async def fence_sources(view: Caller, db: Db) -> list[dict[str, Any]]:
    """Per collection whose polygons are fences: how they were made, from which version,
    and why they are behind when a change could not be followed."""
    view.signed_in("listing fences")
    found = await db.run(fences.sources)
    return [s for s in found if s["collection"] in view.rights]


@router.post("/fences", status_code=201, summary="Draw a geofence")
async def draw(body: FenceIn, view: Caller, actor: ActorDep, db: Db) -> dict[str, Any]:
    """A fence of the caller's department (stewards and admins)."""
    who = view.steward("drawing fences")
    fence_id = await db.run(lambda conn: fences.add_fence(
        conn, body.name, body.geometry, dwell_s=body.dwell_s, department=who.department,
        actor=actor,
    ))  # fmt: skip
    return {"id": fence_id, "name": body.name.strip(), "department": who.department}


@router.post("/fences/import", status_code=201, summary="Make fences of a collection")
async def import_collection(
    body: ImportIn, view: Caller, actor: ActorDep, db: Db
) -> dict[str, Any]:
    """A fence of every polygon of the collection (for its stewards and admins), kept up to
    date with its edits and re-imports."""
    layer = LayerSchema.of(view.administrable(body.collection))
    count = await db.run(lambda conn: fences.import_fences(
        conn, layer, name_field=body.name_field, dwell_s=body.dwell_s, actor=actor,
    ))  # fmt: skip
    return {"collection": body.collection, "fences": count}


@router.delete("/fences/{fence_id}", summary="Remove a geofence")
async def remove(fence_id: int, view: Caller, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Delete a fence with its state and events (its department's stewards, admins)."""
    department = await db.run(lambda conn: fences.fence_department(conn, fence_id))
    view.steward_of(department, f"fence {fence_id}")
    await db.run(lambda conn: fences.remove_fence(conn, fence_id, actor=actor))
    return {"id": fence_id, "removed": True}


@router.delete("/fences/sources/{collection}", summary="Stop following a collection")
async def unfollow(collection: str, view: Caller, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Delete the fences made of a collection, and stop following it (its stewards,
    admins)."""
    view.administrable(collection)
    count = await db.run(lambda conn: fences.unfollow(conn, collection, actor=actor))
    return {"collection": collection, "removed": count}
