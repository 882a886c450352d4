"""Road networks: built from line collections by their stewards (``/network/networks``),
and the standing road closures every route honours (``/network/closures``).

Everyone who may read a network's roads sees its closures; the editors and stewards of
the department that closes roads (``SPATIAL_NETWORK_CLOSURES_DEPARTMENT``, emergency by
default) and admins add and lift them. Each change is audited with the caller's name and
address (:mod:`spatial.network.closures`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.deps import ActorDep, Caller, Db
from spatial.analysis import geometry_input
from spatial.errors import NotFoundError
from spatial.network import build as nb
from spatial.network import closures as nc
from spatial.network.speeds import Speeds

router = APIRouter(prefix="/network", tags=["Road networks"])


class ClosureIn(BaseModel):
    """A road closure: the roads of ``network`` inside ``geometry`` (a GeoJSON polygon,
    CRS84) are not routed on from ``starts_at`` (default now) until ``expires_at``."""

    network: str = Field(max_length=63)
    reason: str = Field(max_length=nc.MAX_REASON)
    geometry: dict[str, Any]
    expires_at: dt.datetime
    starts_at: dt.datetime | None = None


class BuildIn(BaseModel):
    """How to build a network from a line collection (as ``spatial network build``)."""

    collection: str = Field(max_length=63)
    network: str | None = Field(default=None, max_length=63)
    speeds: dict[str, Any]
    """``{"default": km/h, "classes": {class: km/h}}``."""
    speed_field: str = "class"
    oneway_field: str | None = None
    level_field: str | None = None
    name_field: str | None = "name"
    key_field: str | None = None
    snap_m: float = 1.0


@router.get("/networks", summary="Road networks and their last build")
async def list_networks(view: Caller, db: Db) -> list[dict[str, Any]]:
    """The networks built from collections the caller may read, with their settings and
    the report of their last build."""
    found = await db.run(nb.described)
    readable = set(_readable(view, {n["id"]: n["collection"] for n in found}))
    return [n for n in found if n["id"] in readable]


@router.post("/networks", status_code=201, summary="Build a road network from lines")
async def build_network(body: BuildIn, view: Caller, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Build (or rebuild, whole) a network; for the collection's stewards and admins.
    Answers the build's report (edges, vertices, disconnected pieces, isolated roads)."""
    record = view.administrable(body.collection)
    settings = nb.Settings(
        fields=nb.Fields(speed=body.speed_field, name=body.name_field, oneway=body.oneway_field,
                         level=body.level_field, key=body.key_field),
        speeds=Speeds.parse(body.speeds, "speeds"), snap_m=body.snap_m,
    )  # fmt: skip

    def work(conn: Any) -> nb.Report:
        with conn.transaction():
            return nb.build(conn, record, settings, network=body.network, actor=actor)

    return (await db.run(work)).as_json()


def _readable(view: Any, networks: dict[str, str]) -> list[str]:
    """The networks whose roads the caller may read."""
    seen = []
    for network, collection in networks.items():
        try:
            view.get(collection)
        except NotFoundError:
            continue
        seen.append(network)
    return seen


@router.get("/closures", summary="Road closures (GeoJSON)")
async def list_closures(
    view: Caller, db: Db, network: str | None = None,
    active: bool = Query(True, description="Only the closures in force or to come."),
) -> dict[str, Any]:  # fmt: skip
    """The closures of the networks the caller may read (or of one), newest first."""
    networks = await db.run(nc.networks)
    wanted = _readable(view, networks if network is None else
                       {network: networks[network]} if network in networks else {})  # fmt: skip
    if network is not None and not wanted:
        msg = f"no network {network!r}"
        raise NotFoundError(msg)
    found = await db.run(lambda conn: nc.list_closures(conn, wanted, active=active))
    return {"type": "FeatureCollection", "features": [c.feature() for c in found]}


@router.post("/closures", status_code=201, summary="Close roads until a time")
async def close_roads(
    body: ClosureIn, request: Request, view: Caller, actor: ActorDep, db: Db
) -> dict[str, Any]:
    """Add a closure (audited); every route avoids its roads until it expires."""
    settings = request.app.state.settings.network
    view.member_of(settings.closures_department, "road closures")
    wkt = geometry_input({"geometry": body.geometry}, "geometry", polygonal=True)
    networks = await db.run(nc.networks)
    if not _readable(view, {body.network: networks.get(body.network, "")}):
        msg = f"no network {body.network!r}"
        raise NotFoundError(msg)
    closure = await db.run(lambda conn: nc.add_closure(
        conn, body.network, body.reason, wkt, expires_at=body.expires_at,
        starts_at=body.starts_at, max_days=settings.max_closure_days, actor=actor,
    ))  # fmt: skip
    return closure.feature()


@router.delete("/closures/{closure_id}", summary="Lift a road closure")
async def lift(
    closure_id: int, request: Request, view: Caller, actor: ActorDep, db: Db
) -> dict[str, Any]:
    """Remove a closure (audited); its roads are routed on again at once."""
    view.member_of(request.app.state.settings.network.closures_department, "road closures")
    closure = await db.run(lambda conn: nc.remove_closure(conn, closure_id, actor=actor))
    return {"id": closure.id, "removed": True}
