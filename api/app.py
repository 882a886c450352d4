"""The app factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import jwt
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import spatial
from api import auth, catalog, errors, live, metrics, process_jobs, replicas, web, webhooks
from api.db import Database
from api.engine import Engine
from api.routers import (
    admin,
    alarms,
    coverages,
    editions,
    features,
    fences,
    gps,
    gps_webhooks,
    incidents,
    ingest,
    landing,
    map_images,
    maps,
    network,
    printing,
    processes,
    rasters,
    sta,
    sta_write,
    stac,
    styles,
    terrain,
    tiles,
    transactions,
    wms,
    wmts,
)
from api.routing import Router
from layers import subsystems
from spatial.access import Directory
from spatial.db import migrate, resolve_url
from spatial.settings import Settings
from spatial.sta import rules
from tiles.cache import TileCache
from tiles.service import TileService

ROUTERS = (tiles, rasters, coverages, stac, auth, admin, landing, features, transactions, processes,
           ingest, editions, gps, gps_webhooks, fences, network, incidents, maps, sta,
           sta_write, alarms, terrain, styles, map_images, printing, wms, wmts)  # fmt: skip
"""The routers, in the order their routes are matched."""


def create_app(settings: Settings) -> FastAPI:
    """Build the platform's ASGI app.

    The lifespan resolves the database (starting the embedded cluster when no URL is
    set), opens the worker's pools (:class:`api.db.Database`), loads the catalog onto
    ``app.state`` and keeps it current (:mod:`api.catalog`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = await run_in_threadpool(resolve_url, settings)
        db = app.state.db = Database(settings, url)
        await db.open()
        app.state.url = url  # for the core's jobs, which open their own connections
        app.state.catalog = await run_in_threadpool(catalog.load_catalog, db)
        app.state.directory = await run_in_threadpool(catalog.load_directory, db)
        app.state.engine = Engine(settings, db)
        app.state.ingest_executor = ingest.executor()
        app.state.process_tasks = {}
        await process_jobs.recover(db)
        # The alarm rules (layers/alarms/, or SPATIAL_STA_ALARMS_DIR): a bad file stops it.
        await db.run(lambda conn: rules.install(conn, settings.sta.alarms_dir))
        background = (catalog.follow, live.follow, live.derive_tracks, live.follow_networks,
                      live.follow_arrivals, webhooks.run_webhooks, live.follow_floods)  # fmt: skip
        tasks = [asyncio.create_task(task(app)) for task in background]
        # Everything built so far (modules, the app, the catalog) lives as long as the
        # worker: keep it out of the collector, whose full passes over it stalled one
        # request in a hundred by 150 ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in [*tasks, *app.state.process_tasks.values()]:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # A running ingest finishes (its transaction commits or rolls back whole);
            # queued ones are dropped and stay "queued" in the jobs table.
            await run_in_threadpool(app.state.ingest_executor.shutdown, True, cancel_futures=True)
            await db.close()

    app = FastAPI(
        title="3S spatial platform",
        version=spatial.__version__,
        description="Imagery, parcels and GPS tracks of the city in one PostGIS, "
        "served through OGC APIs.",
        lifespan=lifespan,
        # The interactive docs pages load their scripts from a CDN; users are offline.
        docs_url=None,
        redoc_url=None,
    )
    _state(app, settings)
    errors.register(app)
    _guard(app, settings)
    app.add_middleware(metrics.Measure, platform=app)  # outermost: refusals are timed too
    for module in ROUTERS:
        app.include_router(module.router)
    # The hot paths as plain routes, matched before every other (api.routing).
    app.router.routes[0:0] = [r for m in ROUTERS if isinstance(m.router, Router)
                              for r in m.router.fast]  # fmt: skip
    # pygeoapi's pages: its own static files, and the npm packages they use (api.web).
    app.mount("/static", StaticFiles(directory=web.PYGEOAPI_STATIC), name="static")
    app.mount("/vendor", StaticFiles(directory=web.vendor_dir(), check_dir=False), name="vendor")
    return app


def _state(app: FastAPI, settings: Settings) -> None:
    """What the app holds from the start: settings, the tile cache and service, the maps
    (read now: a bad map definition stops the app before it serves anything)."""
    app.state.settings = settings
    app.state.tiles = TileCache(settings.tiles.cache_mb * 2**20, settings.tiles.disk_cache_dir)
    app.state.tile_service = TileService(app.state.tiles, settings)
    app.state.metrics = metrics.Metrics()
    app.state.live = live.Hub()
    app.state.appeared = {}  # collection id -> when it appeared (api.catalog, api.db)
    app.state.schema_head = migrate.head()
    app.state.subsystems = subsystems.load(settings.maps.subsystems_dir)


class _Redacted(logging.Filter):
    """Hide bearer tokens passed in URLs (``access_token=``, WebSockets from browsers) in
    the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


_TOKEN = re.compile(r"(access_token=)[^&\s]+")


def _guard(app: FastAPI, settings: Settings) -> None:
    """Every request is identified before any route (:mod:`api.auth`); browsers of the
    configured origins may call the API."""
    app.state.views = OrderedDict()
    app.state.directory = Directory()
    app.state.jwks = (
        jwt.PyJWKClient(settings.auth.oidc_jwks_url, cache_keys=True, lifespan=3600, timeout=10)
        if settings.auth.oidc_jwks_url
        else None
    )
    app.add_middleware(auth.Guard, platform=app)
    if settings.database.replica_urls:  # writes answer the primary's WAL position
        app.add_middleware(replicas.WalPosition, platform=app)
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _Redacted) for f in access_log.filters):
        access_log.addFilter(_Redacted())
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.server.cors_origins, allow_methods=["*"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "If-Match",
                           "Content-Crs", "Prefer", replicas.WAL_HEADER],
            expose_headers=["ETag", "Location", "OGC-Collection-Version", "Retry-After",
                            replicas.WAL_HEADER],
        )  # fmt: skip
