"""pygeoapi inside the app: its handlers, documents and pages over the platform catalog.

pygeoapi is the protocol engine for the API's descriptive resources: the landing page,
the collections and each collection's metadata, queryables and schema, the
OpenAPI viewer, the HTML and JSON-LD renderings of items and item, and the catalog's
records; its templates also show the platform's process and job documents. Its
configuration is generated from the catalog (:func:`config`) and rebuilt when the
catalog changes (every worker follows the catalog, :mod:`api.catalog`), so a layer
ingested while the server runs is in pygeoapi's documents at once. Its provider plugins
(:mod:`api.provider`) read the platform's tables and catalog.

The platform replaces pygeoapi's path where it is too slow or wrong for our data, at the
same URLs and with the same documents: GeoJSON and file items pages (built by PostGIS in
one statement), CQL2 filters (pygeoapi parses ``filter`` as ECQL; its pages get the
platform's), Part 4 edits (ETag and If-Match), and process execution and jobs (in
PostGIS). See
``docs/architecture.md``.

Pages and documents are in English or Chinese (:mod:`spatial.i18n` chooses, from ``lang=``
and ``Accept-Language``): pygeoapi's template strings through the gettext catalog in
``spatial/translations`` (compiled into ``var/locale`` at start), the collections' titles and
descriptions as pygeoapi's language maps (``{"en": ..., "zh-CN": ...}``), and a
``Content-Language`` header on each answer.

pygeoapi's handlers are synchronous; they run on worker threads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from babel import Locale
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from pygeoapi import l10n
from pygeoapi.api import API, APIRequest
from pygeoapi.util import render_j2_template
from starlette.concurrency import run_in_threadpool

from api import web
from api.db import Database
from api.deps import caller
from api.ogc import base_url
from api.openapi import as_openapi_30
from layers import Catalog, View
from spatial import features, i18n
from spatial.catalog import Kind
from spatial.settings import Settings, project_root

Handler = Callable[..., tuple[dict[str, str], int, Any]]
"""A pygeoapi handler: (api, request, *args) to (headers, status, content)."""
PROVIDER = "api.provider.PlatformProvider"
RECORDS_PROVIDER = "api.provider.CatalogProvider"
SCENES_PROVIDER = "api.provider.SceneProvider"
CATALOG_ID = "catalog"
LOCALE_DIR = project_root() / "var" / "locale"
"""Where the gettext catalogs of pygeoapi's templates are compiled (``i18n.compile_catalog``)."""


class Shared:
    """A value in the configuration that pygeoapi's deep copies of it share, not copy
    (the catalog snapshot holds read-only mappings, which cannot be copied)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> Shared:
        return self


def _raster_resource(record: Any, base: str) -> dict[str, Any]:
    """An imagery collection in pygeoapi's documents (its grid from the catalog entry,
    :class:`api.provider.SceneProvider`), served by the platform's own coverage (with its
    domain set and range type, :mod:`api.routers.coverages`), tiles and STAC routes
    (:mod:`api.routers.rasters`)."""
    href = f"{base}/collections/{record.id}"
    props = record.properties
    return {
        "type": "collection",
        "title": i18n.variants(record.title),
        "description": i18n.variants(record.description or record.title),
        "keywords": [*record.keywords, *record.subsystems],
        "links": [
            {"type": "application/json", "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-map",
             "title": "Map tiles", "href": f"{href}/map/tiles"},
            {"type": "image/tiff; application=geotiff",
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage", "title": "Coverage",
             "href": f"{href}/coverage"},
            {"type": "application/json",
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage-domainset",
             "title": "Coverage domain set (CIS JSON)", "href": f"{href}/coverage/domainset"},
            {"type": "application/json",
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage-rangetype",
             "title": "Coverage range type (CIS JSON)", "href": f"{href}/coverage/rangetype"},
            {"type": "application/json", "rel": "items", "title": "Scenes (STAC)",
             "href": f"{base}/stac/collections/{record.id}/items"},
            *_terrain_links(record, href),
            *_map_links(href),
        ],
        "extents": _extents(record.bbox, record.temporal_start, record.temporal_end),
        "providers": [
            {"type": "coverage", "name": SCENES_PROVIDER, "data": record.id,
             "shape": props.get("proj:shape"), "resolution": props.get("resolution"),
             "format": {"name": "GTiff", "mimetype": "image/tiff"}}
        ],
    }  # fmt: skip


def _map_links(href: str) -> list[dict[str, Any]]:
    """A collection's styles (OGC API - Styles) and its map image (OGC API - Maps), both
    drawn from the subsystem YAML (:mod:`api.routers.styles`, :mod:`api.routers.map_images`)."""
    return [
        {"type": "application/json", "rel": "http://www.opengis.net/def/rel/ogc/1.0/styles",
         "title": "Styles (MapLibre, SLD 1.1)", "href": f"{href}/styles"},
        {"type": "image/png", "rel": "http://www.opengis.net/def/rel/ogc/1.0/map",
         "title": "Map (PNG)", "href": f"{href}/map"},
    ]  # fmt: skip


def _terrain_links(record: Any, href: str) -> list[dict[str, Any]]:
    """An elevation collection's terrain (TileJSON for MapLibre, Terrarium tiles) and
    hillshade map tiles (:mod:`api.routers.terrain`)."""
    if (record.properties or {}).get("spatial:kind") != "elevation":
        return []
    tile = "{tileMatrix}/{tileRow}/{tileCol}"
    return [
        {"type": "application/json", "rel": "describedby", "title": "Terrain TileJSON "
         "(MapLibre raster-dem, Terrarium encoding)", "href": f"{href}/terrain/tilejson"},
        {"type": "image/png", "rel": "item", "templated": True,
         "title": "Terrain tiles (heights, Terrarium PNG)",
         "href": f"{href}/terrain/tiles/WebMercatorQuad/{tile}"},
        {"type": "image/png", "rel": "item", "templated": True, "title": "Hillshade map tiles",
         "href": f"{href}/styles/hillshade/map/tiles/WebMercatorQuad/{tile}"},
    ]  # fmt: skip


def config(settings: Settings, seen: View, db: Database, base: str) -> dict[str, Any]:
    """pygeoapi's configuration for the catalog as one caller sees it now: only the
    collections they may read, each through their row restriction.

    Args:
        seen: the caller's view of the catalog (:mod:`spatial.access`).
        db: the worker's database; the providers read through its thread pool.
        base: the public URL of the API (links in documents and pages use it).
    """
    catalog = seen.catalog
    resources: dict[str, Any] = {}
    for record in catalog:
        if not features.is_vector_layer(record):
            continue  # imagery and GPS views get their providers with their own APIs
        layer = seen.features(record.id).layer
        href = f"{base}/collections/{record.id}"
        resources[record.id] = {
            "type": "collection",
            "title": i18n.variants(record.title),
            "description": i18n.variants(record.description or record.title),
            "keywords": [*record.keywords, *record.subsystems],
            "links": [
                {
                    "type": media,
                    "rel": "items",
                    "title": f"Items as {name}",
                    "href": f"{href}/items?f={f}",
                }
                for f, (media, name) in _FILE_FORMATS.items()
            ]
            + [
                {
                    "type": "application/json",
                    "rel": "version-history",
                    "title": "Editions of this layer",
                    "href": f"{href}/editions",
                },
                {
                    "type": "application/json",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                    "title": "Vector tiles",
                    "href": f"{href}/tiles",
                },
                *_map_links(href),
            ],
            "extents": _extents(record.bbox, record.temporal_start, record.temporal_end),
            "providers": [
                {
                    "type": "feature",
                    "name": PROVIDER,
                    "data": record.id,
                    "id_field": "id",
                    "layer": Shared(layer),
                    "titles": dict(record.properties.get("source_fields") or {}),
                    "db": Shared(db),
                    "crs": features.supported_crs(),
                    "storage_crs": features.storage_crs_uri(layer.srid),
                    "editable": bool(record.properties.get("editable")),
                }
            ],
        }
    for record in catalog.of_kind(Kind.RASTER):
        resources[record.id] = _raster_resource(record, base)
    resources[CATALOG_ID] = {
        "type": "collection",
        "title": i18n.variants("Catalog"),
        "description": i18n.variants(
            "Every collection of the platform (vector layers, imagery, GPS views), searchable "
            "by text, place, kind and subsystem."
        ),
        "keywords": ["catalog", "records"],
        "extents": _extents(None, None, None),
        "providers": [
            {
                "type": "record",
                "name": RECORDS_PROVIDER,
                "data": CATALOG_ID,
                "id_field": "id",
                "catalog": Shared(catalog),
                "base": base,
            },
        ],
    }
    server = settings.server
    return {
        "server": {
            "bind": {"host": server.host, "port": server.port},
            "url": base,
            "icon": f"{base}/favicon.ico",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US", "zh-CN"],  # in i18n.LANGUAGES' order
            "locale_dir": str(LOCALE_DIR),
            "pretty_print": False,
            "limits": {"default_items": server.default_limit, "max_items": server.max_limit},
            # No basemap unless one is configured: users are offline.
            "map": {"url": server.basemap_url or "", "attribution": server.basemap_attribution},
            "templates": {"path": str(web.templates_dir()), "static": str(web.PYGEOAPI_STATIC)},
        },
        # pygeoapi sets up the root logger (basicConfig) with this level; its own logger
        # is quietened by the Engine.
        "logging": {"level": "WARNING"},
        "metadata": {
            "identification": {
                "title": i18n.variants("3S spatial platform"),
                "description": i18n.variants(
                    "Imagery, parcels and GPS tracks of the city in one PostGIS, served through "
                    "OGC APIs."
                ),
                "keywords": ["3S", "GIS", "remote sensing", "GPS", "OGC API"],
                "keywords_type": "theme",
                "terms_of_service": f"{base}/",
                "url": f"{base}/",
            },
            "license": {"name": "Government data: see each collection", "url": f"{base}/"},
            "provider": {"name": "City spatial information platform", "url": f"{base}/"},
            "contact": {
                "name": "Platform stewards",
                "email": "",
                "url": f"{base}/",
                "role": "pointOfContact",
            },
        },
        "resources": resources,
    }


_FILE_FORMATS = {
    "csv": ("text/csv", "CSV"),
    "fgb": ("application/flatgeobuf", "FlatGeobuf"),
    "gpkg": ("application/geopackage+sqlite3", "GeoPackage"),
}


def _extents(bbox: Any, start: Any, end: Any) -> dict[str, Any]:
    extents: dict[str, Any] = {
        "spatial": {"bbox": list(bbox) if bbox else [-180.0, -90.0, 180.0, 90.0],
                    "crs": features.CRS84},
    }  # fmt: skip
    if start or end:
        gregorian = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
        extents["temporal"] = {"begin": start, "end": end, "trs": gregorian}
    return extents


_APIS = 32
"""pygeoapi APIs kept per worker (one per distinct set of rights in use)."""


class Engine:
    """One pygeoapi ``API`` per catalog snapshot, public URL and set of rights (callers
    with the same rights share one), built on demand; the most recently used are kept."""

    def __init__(self, settings: Settings, db: Database) -> None:
        """pygeoapi over the catalog, its providers reading through ``db``."""
        self._settings = settings
        self._db = db
        # pygeoapi logs every exception body it answers, 400s and 404s included, with a
        # traceback; errors of the platform's own code log through its handlers.
        logging.getLogger("pygeoapi").setLevel(logging.CRITICAL)
        i18n.compile_catalog(LOCALE_DIR)
        self._lock = threading.Lock()
        self._apis: OrderedDict[tuple[str, frozenset[Any]], tuple[Catalog, API]] = OrderedDict()

    def api(self, seen: View, source: Catalog, base: str, openapi: dict[str, Any]) -> API:
        """The pygeoapi ``API`` for a caller's view of the ``source`` snapshot (rebuilt
        when the snapshot changed)."""
        key = (base, frozenset(seen.rights.items()))
        with self._lock:
            found = self._apis.get(key)
            if found is not None and found[0] is source:
                self._apis.move_to_end(key)
                return found[1]
            built = API(config(self._settings, seen, self._db, base), openapi)
            self._apis[key] = (source, built)
            while len(self._apis) > _APIS:
                self._apis.popitem(last=False)
            return built

    def _api_for(self, request: Request) -> API:
        if not web.is_built():
            msg = "the web assets are not built: run `make install` (python -m api.web)"
            raise RuntimeError(msg)
        return self.api(
            caller(request), request.app.state.catalog, base_url(request),
            as_openapi_30(request.app.openapi()),
        )  # fmt: skip

    async def render(self, request: Request, template: str, data: dict[str, Any]) -> Response:
        """One of pygeoapi's pages (``template``) showing a document of the platform's, in
        the language the request asks for."""
        api = self._api_for(request)
        lang = language(request)

        def page() -> str:
            with _fresh_page_config():
                text: str = render_j2_template(
                    api.tpl_config, api.config["server"]["templates"], template, data,
                    _locale(api, lang),
                )  # fmt: skip
                return text

        headers = {"Content-Language": lang, "Vary": "Accept-Language"}
        return HTMLResponse(await run_in_threadpool(page), headers=headers)

    async def answer(
        self, request: Request, handler: Handler, *args: Any, hidden: frozenset[str] = frozenset()
    ) -> Response:
        """A pygeoapi handler's answer to this request.

        ``hidden``: query parameters the platform has handled itself; the handler does not
        see them, but the links it builds keep them.
        """
        api = self._api_for(request)
        api_request = await _Request.from_starlette(request, api.locales)
        if hidden:
            api_request._args = _Handled(api_request._args, hidden)
        if not api_request.is_valid():
            headers, status, content = api.get_format_exception(api_request)
        else:
            headers, status, content = await run_in_threadpool(
                self._call, handler, api, api_request, *args
            )
        if "Content-Language" in headers:  # pygeoapi's tag for zh-CN is zh-Hans-CN
            headers["Content-Language"] = language(request)
            vary = [v for v in headers.get("Vary", "").split(",") if v.strip()]
            headers["Vary"] = ", ".join([*vary, "Accept-Language"])
        return Response(content, status_code=int(status), headers=headers)

    def _call(self, handler: Handler, *args: Any) -> tuple[dict[str, str], int, Any]:
        api_request: APIRequest = args[1]
        with contextlib.ExitStack() as stack:
            if api_request.format == "html":
                stack.enter_context(_fresh_page_config())
            result: tuple[dict[str, str], int, Any] = handler(*args)
            return result
        raise AssertionError  # unreachable: ExitStack does not swallow exceptions


def language(request: Request) -> str:
    """The language a request asks for (:func:`spatial.i18n.negotiate`)."""
    return i18n.negotiate(
        request.query_params.get(i18n.QUERY_PARAM), request.headers.get("accept-language")
    )


def _locale(api: API, lang: str) -> Locale:
    """pygeoapi's locale for one of the platform's languages (its ``languages`` are in
    :data:`spatial.i18n.LANGUAGES`' order)."""
    found: Locale = api.locales[i18n.LANGUAGES.index(lang)]
    return found


class _Request(APIRequest):  # type: ignore[misc]
    """pygeoapi's request, in the language :func:`spatial.i18n.negotiate` chooses (pygeoapi's
    own choice fails on ``lang=zh`` and ``zh-TW``: Babel has no ``zh_CN`` locale without its
    script, and answers 500)."""

    def _get_locale(self, headers: Any, supported_locales: list[Locale]) -> tuple[Any, Locale]:
        asked = self._args.get(i18n.QUERY_PARAM)
        accept = headers.get("accept-language")
        lang = i18n.negotiate(asked, accept)
        return asked or accept, supported_locales[i18n.LANGUAGES.index(lang)]


@contextlib.contextmanager
def _fresh_page_config() -> Iterator[None]:
    """Pages render from the current configuration.

    pygeoapi 0.21 keeps the translated configuration its templates see in a process-wide
    cache, filled once per language: right for a configuration read from a file at start,
    stale for ours, which follows the catalog (and differs per public URL). Pages render
    one at a time per worker, each from a cleared cache.
    """
    with _PAGE_LOCK:
        l10n._cfg_cache.clear()
        yield


_PAGE_LOCK = threading.Lock()


class _Handled(dict[str, Any]):
    """Query parameters as a pygeoapi handler sees them: those the platform handled are
    missing to lookups and present when the handler lists them for its links."""

    def __init__(self, params: dict[str, Any], hidden: frozenset[str]) -> None:
        super().__init__(params)
        self._hidden = hidden

    def get(self, key: str, default: Any = None) -> Any:
        return default if key in self._hidden else super().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key not in self._hidden and super().__contains__(key)

    def __getitem__(self, key: str) -> Any:
        if key in self._hidden:
            raise KeyError(key)
        return super().__getitem__(key)
