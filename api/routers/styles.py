"""OGC API - Styles: each map's and each collection's styles, as a MapLibre style and as
SLD 1.1.

- ``/styles``: one style per subsystem map the caller may open (its id is the map's);
- ``/styles/{styleId}``: the map's MapLibre style document (``f=mapbox``, the default:
  ``application/vnd.mapbox.style+json``, the sources and layers the web map draws, with
  absolute tile URLs of this server) or its SLD 1.1 (``f=sld11``:
  ``application/vnd.ogc.sld+xml;version=1.1``, one ``NamedLayer`` per visible vector
  layer, named by its collection); ``Accept`` chooses when ``f`` is absent;
- ``/styles/{styleId}/metadata``: the style's metadata (its stylesheets and layers);
- ``/collections/{id}/styles``, ``.../styles/{styleId}`` and ``.../metadata``: the
  collection's styles (:func:`tiles.render.collection_styles`: ``default`` and
  ``{map}:{layer}`` for vector data; ``truecolor``, ``ndvi``, ``ndwi`` for imagery;
  ``hillshade`` for elevation), each document drawing that collection alone. Raster
  styles are MapLibre only.

Every document is written from the subsystem YAML files by :mod:`layers.styles` and
:mod:`layers.sld`; a map or collection the caller may not open or read is a 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from api.deps import caller
from api.ogc import base_url, check_parameters
from api.routing import Router
from layers import sld, styles, subsystems
from layers.access import View
from layers.subsystems import MapLayer, Subsystems
from spatial.catalog import Kind
from spatial.errors import InvalidInputError, NotAcceptableError, NotFoundError
from tiles import render

router = Router(tags=["Styles"])
MAPBOX = "application/vnd.mapbox.style+json"
SLD11 = sld.SLD_MEDIA_TYPE
_F = frozenset({"f"})
_SHEETS = {"mapbox": ("Mapbox Style", "8", MAPBOX), "sld11": ("OGC SLD", "1.1", SLD11)}
"""The stylesheets: ``f`` value, title, version, media type."""


def _maps(request: Request) -> Subsystems:
    found: Subsystems = request.app.state.subsystems
    return found


def _sheet(request: Request, offered: tuple[str, ...]) -> str:
    """The stylesheet asked for: ``f``, else ``Accept`` (SLD when it names SLD or SE),
    else MapLibre.

    Raises:
        InvalidInputError: an ``f`` that is not a stylesheet of this style.
    """
    check_parameters(request, _F)
    asked = request.query_params.get("f")
    if asked is None:
        accept = request.headers.get("accept", "").lower()
        wants_sld = "sld+xml" in accept or "se+xml" in accept
        asked = "sld11" if wants_sld and "mapbox" not in accept else "mapbox"
        if asked not in offered:
            asked = offered[0]
    if asked not in offered:
        msg = f"f={asked!r} is not a stylesheet of this style; use one of {', '.join(offered)}"
        raise (InvalidInputError if asked not in _SHEETS else NotAcceptableError)(msg)
    return asked


def _json_only(request: Request) -> None:
    check_parameters(request, _F)
    fmt = request.query_params.get("f", "json")
    if fmt != "json":
        raise InvalidInputError(f"f={fmt!r} is not served here; use json")


def _max_zoom(request: Request) -> int:
    return int(request.app.state.settings.tiles.max_zoom)


def _listing(href: str, entries: Sequence[tuple[str, str, tuple[str, ...]]]) -> dict[str, Any]:
    out = []
    for style_id, title, offered in entries:
        links = [{"rel": "stylesheet", "type": _SHEETS[f][2], "title": _SHEETS[f][0],
                  "href": f"{href}/{style_id}?f={f}"} for f in offered]  # fmt: skip
        links.append({"rel": "describedby", "type": "application/json",
                      "href": f"{href}/{style_id}/metadata"})  # fmt: skip
        out.append({"id": style_id, "title": title, "links": links})
    self_link = {"rel": "self", "type": "application/json", "href": href}
    body: dict[str, Any] = {"styles": out, "links": [self_link]}
    if out:
        body["default"] = out[0]["id"]
    return body


def _metadata(
    href: str, style_id: str, title: str, description: str, offered: tuple[str, ...],
    layers: list[MapLayer], kinds: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    sheets = [{"title": _SHEETS[f][0], "version": _SHEETS[f][1], "native": f == "mapbox",
               "link": {"rel": "stylesheet", "type": _SHEETS[f][2],
                        "href": f"{href}/{style_id}?f={f}"}} for f in offered]  # fmt: skip
    used = [{"id": layer.collection, "type": kinds.get(layer.collection, "geometry"),
             "attributes": [{"id": a} for a in sorted(styles.attributes(layer))]}
            if layer.kind != "raster" else {"id": layer.collection, "type": "raster"}
            for layer in layers]  # fmt: skip
    return {"id": style_id, "title": title, "description": description, "scope": "style",
            "stylesheets": sheets, "layers": used,
            "links": [{"rel": "self", "type": "application/json",
                       "href": f"{href}/{style_id}/metadata"}]}  # fmt: skip


def _kinds(view: View) -> dict[str, str]:
    """Each readable collection's geometry as the style metadata names it."""
    out = {}
    for record in view.catalog:
        geometry = str(record.properties.get("geometry_type", "")).lower()
        out[record.id] = ("raster" if record.kind == Kind.RASTER else "point" if "point" in
                          geometry else "line" if "line" in geometry else "polygon")  # fmt: skip
    return out


# -- the maps' styles -------------------------------------------------------------------------


def _subsystem(request: Request, style_id: str) -> subsystems.Subsystem:
    view = caller(request)
    found = _maps(request).maps.get(style_id)
    if found is None or not found.access.admits(view.principal):
        raise NotFoundError(f"no style {style_id!r}")
    return found


def _vector_layers(view: View, sub: subsystems.Subsystem) -> list[MapLayer]:
    readable = view.catalog.collections
    return [layer for layer in sub.layers if layer.kind != "raster" and layer.visible
            and layer.collection in readable]  # fmt: skip


@router.get("/styles", summary="The styles (one per map the caller may open)")
async def list_styles(request: Request) -> dict[str, Any]:
    """Each subsystem map the caller may open, as a style with its stylesheets."""
    _json_only(request)
    who = caller(request).principal
    entries = [(s.id, s.title, ("mapbox", "sld11")) for s in _maps(request).openable(who)]
    return _listing(f"{base_url(request)}/styles", entries)


@router.get("/styles/{style_id}", summary="A map's style (MapLibre style or SLD 1.1)")
async def get_style(style_id: str, request: Request) -> Response:
    """The map's MapLibre style document (``f=mapbox``) or SLD 1.1 (``f=sld11``)."""
    sub = _subsystem(request, style_id)
    view = caller(request)
    if _sheet(request, ("mapbox", "sld11")) == "sld11":
        named = [(layer.collection, f"{sub.id}:{layer.id}", layer, layer.opacity)
                 for layer in _vector_layers(view, sub)]  # fmt: skip
        return Response(sld.sld(named), media_type=SLD11)
    config = subsystems.resolve(sub, view, base_url(request), max_zoom=_max_zoom(request))
    return JSONResponse(styles.maplibre_document(config), media_type=MAPBOX)


@router.get("/styles/{style_id}/metadata", summary="A map's style metadata")
async def style_metadata(style_id: str, request: Request) -> dict[str, Any]:
    """The style's title, stylesheets and the collections (and attributes) it draws."""
    _json_only(request)
    sub = _subsystem(request, style_id)
    view = caller(request)
    shown = [layer for layer in sub.layers if layer.visible and layer.collection
             in view.catalog.collections]  # fmt: skip
    return _metadata(f"{base_url(request)}/styles", sub.id, sub.title, sub.description,
                     ("mapbox", "sld11"), shown, _kinds(view))  # fmt: skip


# -- the collections' styles ------------------------------------------------------------------


def _offered(layer: MapLayer | None) -> tuple[str, ...]:
    return ("mapbox",) if layer is None or layer.kind == "raster" else ("mapbox", "sld11")


def _collection_style(
    request: Request, collection_id: str, style_id: str
) -> tuple[str, MapLayer | None]:
    view = caller(request)
    for found_id, title, layer in render.collection_styles(view, _maps(request), collection_id):
        if found_id == style_id:
            return title, layer
    msg = f"collection {collection_id!r} has no style {style_id!r}"
    raise NotFoundError(msg)


@router.get("/collections/{collection_id}/styles", summary="A collection's styles")
async def collection_styles(collection_id: str, request: Request) -> dict[str, Any]:
    """The collection's styles: ``default`` and each map layer drawing it (vector data),
    the render presets (imagery) or ``hillshade`` (elevation)."""
    _json_only(request)
    found = render.collection_styles(caller(request), _maps(request), collection_id)
    href = f"{base_url(request)}/collections/{collection_id}/styles"
    return _listing(href, [(k, t, _offered(layer)) for k, t, layer in found])


@router.get("/collections/{collection_id}/styles/{style_id}",
            summary="A collection's style (MapLibre style or SLD 1.1)")  # fmt: skip
async def collection_style(collection_id: str, style_id: str, request: Request) -> Response:
    """The collection alone in that style: a MapLibre style document or SLD 1.1."""
    title, layer = _collection_style(request, collection_id, style_id)
    view = caller(request)
    if _sheet(request, _offered(layer)) == "sld11" and layer is not None:
        named = [(collection_id, style_id, layer, 1.0)]
        return Response(sld.sld(named), media_type=SLD11)
    doc = _collection_document(request, view, collection_id, style_id, title, layer)
    return JSONResponse(doc, media_type=MAPBOX)


@router.get("/collections/{collection_id}/styles/{style_id}/metadata",
            summary="A collection's style metadata")  # fmt: skip
async def collection_style_metadata(
    collection_id: str, style_id: str, request: Request
) -> dict[str, Any]:
    """The style's title, stylesheets and the attributes it reads."""
    _json_only(request)
    title, layer = _collection_style(request, collection_id, style_id)
    view = caller(request)
    record = view.get(collection_id)
    used = [layer] if layer is not None else []
    return _metadata(f"{base_url(request)}/collections/{collection_id}/styles", style_id,
                     title, record.description or record.title, _offered(layer), used,
                     _kinds(view))  # fmt: skip


def _collection_document(
    request: Request, view: View, collection_id: str, style_id: str, title: str,
    layer: MapLayer | None,
) -> dict[str, Any]:  # fmt: skip
    """The MapLibre style document of one collection in one style."""
    base = base_url(request)
    max_zoom = _max_zoom(request)
    record = view.get(collection_id)
    owner = _owner(request, layer)
    if owner is not None and layer is not None:  # a map's layer: as that map draws it
        resolved = subsystems.resolve(owner, view, base, max_zoom=max_zoom)
        return styles.maplibre_document(resolved, only=layer.id, name=f"{record.title}: {title}")
    extent = record.bbox or (-180.0, -85.0, 180.0, 85.0)
    config: dict[str, Any] = {"id": collection_id, "title": record.title,
                              "extent": list(extent), "sources": {}, "layers": []}  # fmt: skip
    if layer is None:  # elevation: the hillshade tiles
        url = (f"{base}/collections/{collection_id}/styles/hillshade/map/tiles/"
               f"{subsystems.TMS}/{{z}}/{{y}}/{{x}}")  # fmt: skip
        config["sources"]["hillshade"] = {"type": "raster", "tiles": [url], "tileSize": 256,
                                          "maxzoom": max_zoom, "bounds": list(extent)}  # fmt: skip
        config["layers"].append({"id": "hillshade", "source": "hillshade", "legend": [],
                                 "maplibre": [{"id": "hillshade", "type": "raster",
                                               "source": "hillshade"}]})  # fmt: skip
    else:
        fields = record.properties.get("fields") if record.kind == Kind.VECTOR else None
        source = subsystems._source(layer, base, record.bbox, max_zoom, fields)
        config["sources"][layer.id] = source
        config["layers"].append(subsystems._layer(layer, base))
    return styles.maplibre_document(config, name=f"{record.title}: {title}")


def _owner(request: Request, layer: MapLayer | None) -> subsystems.Subsystem | None:
    """The map that holds ``layer`` (None: a default style, or imagery's presets)."""
    for sub in _maps(request).openable(caller(request).principal):
        if any(candidate is layer for candidate in sub.layers):
            return sub
    return None
