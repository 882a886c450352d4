"""The web maps' data: which maps a caller may open, and one map's configuration.

``/maps/subsystems`` lists the maps (:mod:`layers.subsystems`) the caller may open;
``/maps/{subsystem}/config`` is everything a MapLibre page needs for one of them: extent,
basemap (none unless ``SPATIAL_SERVER_BASEMAP_URL`` is set), the MapLibre sources and style
layers of the layers the caller may read (the others are left out, so their tiles are never
asked for), legend, popup and search attributes, the processes offered and the live stream, and the
terrain toggles and flood panel when the map has them and the caller may read their data.

The pages: ``/maps/`` lists the maps the caller may open and ``/maps/{subsystem}`` is the
MapLibre page, a shell (``api/templates/maps-*.html``) whose one module
(``api/static/maps/maps.js``, served under ``/maps/_static/``) reads the configuration with
the user's token and draws the map. MapLibre comes from the platform's ``/vendor``
(:mod:`api.web`); nothing loads from another host. These routes come after the JSON ones:
``/maps/{subsystem}`` would otherwise take ``/maps/subsystems``. The pages are in English or
Chinese (``lang=``, else ``Accept-Language``: :mod:`spatial.i18n`): the shell's strings here,
the scripts' by the page's ``<html lang>`` (``api/static/maps/i18n.js``).
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import Caller
from api.ogc import base_url, check_parameters
from layers import subsystems
from spatial import i18n
from spatial.errors import InvalidInputError, NotFoundError
from spatial.settings import Settings

router = APIRouter(tags=["Maps"])
_API = Path(__file__).resolve().parent.parent
TEMPLATES = _API / "templates"
STATIC = _API / "static" / "maps"
_TYPES = {".js": "text/javascript", ".css": "text/css"}
ASSETS = {p.name: _TYPES[p.suffix] for p in sorted(STATIC.iterdir()) if p.suffix in _TYPES}
"""The pages' own modules and style sheets (by name: nothing else under the folder is
served)."""


def _json_only(request: Request) -> None:
    check_parameters(request, frozenset({"f"}))
    if request.query_params.get("f", "json") != "json":
        msg = "this resource is JSON only (f=json); the map pages are /maps/{subsystem}"
        raise InvalidInputError(msg)


def _maps(request: Request) -> subsystems.Subsystems:
    found: subsystems.Subsystems = request.app.state.subsystems
    return found


@router.get("/maps/subsystems", summary="The maps the caller may open")
async def list_subsystems(request: Request, seen: Caller) -> dict[str, Any]:
    """Id, title and description of every map the caller may open, with its links."""
    _json_only(request)
    base = base_url(request)
    who = seen.principal
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
async def subsystem_config(subsystem: str, request: Request, seen: Caller) -> dict[str, Any]:
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
        definition, seen, base_url(request), basemap=basemap,
        max_zoom=settings.tiles.max_zoom,
        closures_department=settings.network.closures_department,
    )  # fmt: skip


# -- the pages ------------------------------------------------------------------------------


def _page(name: str, request: Request, raw: str = "", **values: str) -> HTMLResponse:
    """A page template filled in, in the request's language: ``values`` escaped, ``raw``
    (HTML we built) as is."""
    lang = i18n.negotiate(
        request.query_params.get(i18n.QUERY_PARAM), request.headers.get("accept-language")
    )
    text = i18n.page((TEMPLATES / name).read_text(encoding="utf-8"), lang)
    filled = {k: html.escape(v) for k, v in values.items()}
    page = Template(text).substitute(filled, raw=raw, lang=i18n.html_lang(lang))
    # Pages are per caller (the index lists what they may open): never shared by a cache.
    headers = {"Cache-Control": "no-store", "Content-Language": lang, "Vary": "Accept-Language"}
    return HTMLResponse(page, headers=headers)


@router.get("/maps/", summary="The web maps (HTML)", include_in_schema=False)
async def index_page(request: Request, seen: Caller) -> HTMLResponse:
    """The maps the caller may open, as links; the page lists them again with the token the
    user signed in with (a browser's address bar sends none)."""
    check_parameters(request, frozenset({i18n.QUERY_PARAM}))
    base = base_url(request)
    who = seen.principal
    settings: Settings = request.app.state.settings
    closed = who.anonymous and not settings.auth.anonymous  # the shell only: sign in first
    listed = [] if closed else _maps(request).openable(who)
    items = "".join(
        f'<li><a href="{html.escape(base)}/maps/{html.escape(s.id)}">{html.escape(s.title)}</a>'
        f"<p>{html.escape(s.description)}</p></li>"
        for s in listed
    )
    return _page("maps-index.html", request, raw=items, base=base)


@router.get("/maps/_static/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """The pages' script and style sheet."""
    if name not in ASSETS:
        msg = f"no map page asset {name!r}"
        raise NotFoundError(msg)
    headers = {"Cache-Control": "no-cache"}  # revalidated (ETag): a new release shows at once
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=headers)


@router.get("/maps/{subsystem}", summary="A web map (HTML)", include_in_schema=False)
async def map_page(subsystem: str, request: Request) -> HTMLResponse:
    """The MapLibre page of a map (404 for an unknown one). Whether the caller may open it
    is the configuration's answer: the page asks for it with the user's token, and offers
    signing in on a 401."""
    check_parameters(request, frozenset({i18n.QUERY_PARAM}))
    definition = _maps(request).get(subsystem)
    base = base_url(request)
    return _page(
        "maps-page.html", request, base=base, id=definition.id,
        config=f"{base}/maps/{definition.id}/config",
    )  # fmt: skip
