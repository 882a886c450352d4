"""The web maps' data: which maps a caller may open, and one map's configuration.

``/maps/subsystems`` lists the maps (:mod:`layers.subsystems`) the caller may open;
``/maps/{subsystem}/config`` is everything a MapLibre page needs for one of them: extent,
basemap (none unless ``SPATIAL_SERVER_BASEMAP_URL`` is set), the MapLibre sources and style
layers of the layers the caller may read (the others are left out, so their tiles are never
asked for), legend, popup and search attributes, the processes offered and the live stream.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.auth import view_of
from api.ogc import base_url, check_parameters
from layers import subsystems
from spatial.errors import InvalidInputError
from spatial.settings import Settings

router = APIRouter(tags=["Maps"])


def _json_only(request: Request) -> None:
    check_parameters(request, frozenset({"f"}))
    if request.query_params.get("f", "json") != "json":
        msg = "this resource is JSON only (f=json); the map pages are /maps/{subsystem}"
        raise InvalidInputError(msg)


def _maps(request: Request) -> subsystems.Subsystems:
    found: subsystems.Subsystems = request.app.state.subsystems
    return found


@router.get("/maps/subsystems", summary="The maps the caller may open")
async def list_subsystems(request: Request) -> dict[str, Any]:
    """Id, title and description of every map the caller may open, with its links."""
    _json_only(request)
    base = base_url(request)
    who = view_of(request).principal
    return {
        "subsystems": [
            {"id": s.id, "title": s.title, "description": s.description,
             "extent": list(s.extent), "public": s.access.public,
             "links": [{"rel": "describedby", "type": "application/json",
                        "href": f"{base}/maps/{s.id}/config"}]}
            for s in _maps(request).openable(who)
        ],
        "links": [{"rel": "self", "type": "application/json", "href": f"{base}/maps/subsystems"}],
    }  # fmt: skip


@router.get("/maps/{subsystem}/config", summary="A map's configuration (MapLibre sources, layers)")
async def subsystem_config(subsystem: str, request: Request) -> dict[str, Any]:
    """The map as the caller may see it: 404 for an unknown map, 401 for an anonymous caller
    of a map that needs signing in, 403 for a caller outside its departments and roles."""
    _json_only(request)
    definition = _maps(request).get(subsystem)
    settings: Settings = request.app.state.settings
    basemap = (
        {"url": settings.server.basemap_url, "attribution": settings.server.basemap_attribution}
        if settings.server.basemap_url
        else None
    )
    return subsystems.resolve(
        definition, view_of(request), base_url(request), basemap=basemap,
        max_zoom=settings.tiles.max_zoom,
    )  # fmt: skip
