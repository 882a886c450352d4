"""The app factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import select
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
import psycopg
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from starlette.concurrency import run_in_threadpool

import spatial
from api import auth, catalog, errors, live, metrics, replicas, web, webhooks
from api.engine import Engine
from api.routers import (
    admin,
    editions,
    features,
    gps,
    gps_webhooks,
    ingest,
    landing,
    maps,
    processes,
    rasters,
    stac,
    tiles,
    transactions,
)
from layers import Catalog, subsystems
from spatial.access import Directory
from spatial.db import engine, migrate, resolve_url
from spatial.settings import Settings
from tiles.cache import TileCache


def load_catalog(url: str) -> Catalog:
    """Read the catalog on a short-lived connection (a cold path: start-up and reloads)."""
    with engine(url) as eng, eng.connect() as conn:
        return Catalog.load(conn)


def load_directory(url: str) -> Directory:
    """Read accounts, keys and grants (start-up and reloads)."""
    with engine(url) as eng, eng.connect() as conn:
        return Directory.load(conn)


def _spoken_to(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether the server sent something to an idle pooled connection: its goodbye when it
    restarted or ended the session (a healthy idle connection receives nothing)."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _check(conn: psycopg.Connection[Any]) -> None:
    """The pools' check before lending a connection. Without it a connection the server
    closed in a restart was lent, and its request answered 503 with the database back.
    A round trip only when the socket has news: one for every request cost 30 us."""
    if _spoken_to(conn):
        ConnectionPool.check_connection(conn)


async def _acheck(conn: psycopg.AsyncConnection[Any]) -> None:
    """:func:`_check` for the asynchronous pool."""
    if _spoken_to(conn):
        await AsyncConnectionPool.check_connection(conn)


def create_app(settings: Settings) -> FastAPI:
    """Build the platform's ASGI app.

    The lifespan resolves the database (starting the embedded cluster when no URL is
    set), opens the connection pool that requests use, loads the catalog onto
    ``app.state`` and keeps it current (:mod:`api.catalog`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = await run_in_threadpool(resolve_url, settings)
        app.state.url = url
        app.state.catalog = await run_in_threadpool(load_catalog, url)
        app.state.directory = await run_in_threadpool(load_directory, url)
        timeout = settings.database.statement_timeout_ms
        connection_options = {
            "application_name": "spatial-api",
            "autocommit": True,
            # Prepared statements, but planned for their values each time: the best plan
            # for a bbox depends on the bbox, and a generic plan was 1.7 times slower.
            "options": f"-c statement_timeout={timeout} -c plan_cache_mode=force_custom_plan",
        }
        pool = AsyncConnectionPool(
            url,
            min_size=settings.database.pool_min,
            max_size=settings.database.pool_max,
            kwargs=connection_options,
            open=False,
            check=_acheck,
        )
        await pool.open(wait=True, timeout=30)
        # With the pools of the replicas, for reads that tolerate lag (api.replicas).
        app.state.pool, app.state.replicas = (
            pool,
            await replicas.Replicas.open(settings, connection_options, _acheck),
        )
        # For work on threads: pygeoapi's providers.
        sync_pool = ConnectionPool(
            url,
            min_size=1,
            max_size=settings.database.pool_max,
            timeout=settings.database.pool_timeout_s,
            kwargs={**connection_options, "application_name": "spatial-api-sync"},
            open=False,
            check=_check,
        )
        await run_in_threadpool(sync_pool.open, True, 30)
        app.state.sync_pool = sync_pool
        app.state.engine = Engine(
            settings, sync_pool, features.CONFORMANCE + processes.CONFORMANCE + tiles.CONFORMANCE
        )
        app.state.ingest_executor = ingest.executor()
        app.state.process_tasks = {}
        await processes.recover(pool)
        follower = asyncio.create_task(catalog.follow(app, url, load_catalog, load_directory))
        app.state.live = live.Hub()
        streamer = asyncio.create_task(live.follow(app, url))
        deriver = asyncio.create_task(live.derive_tracks(app))
        deliverer = asyncio.create_task(webhooks.run_webhooks(app))
        # Everything built so far (modules, the app, the catalog) lives as long as the
        # worker: keep it out of the collector, whose full passes over it stalled one
        # request in a hundred by 150 ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            follower.cancel()
            streamer.cancel()
            deriver.cancel()
            deliverer.cancel()
            for task in list(app.state.process_tasks.values()):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            for task in (streamer, deriver, deliverer):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # A running ingest finishes (its transaction commits or rolls back whole);
            # queued ones are dropped and stay "queued" in the jobs table.
            await run_in_threadpool(app.state.ingest_executor.shutdown, True, cancel_futures=True)
            await asyncio.gather(pool.close(), app.state.replicas.close())
            await run_in_threadpool(sync_pool.close)

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
    # Tiles and items first: the hot paths, as plain routes (routes are matched in order).
    app.router.routes[0:0] = [*tiles.FAST_ROUTES, *features.FAST_ROUTES, *rasters.FAST_ROUTES]
    for module in (tiles, rasters, stac, auth, admin, landing, features, transactions,
                   processes, ingest, editions, gps, gps_webhooks, maps):  # fmt: skip
        app.include_router(module.router)
    # pygeoapi's pages: its own static files, and the npm packages they use (api.web).
    app.mount("/static", StaticFiles(directory=web.PYGEOAPI_STATIC), name="static")
    app.mount("/vendor", StaticFiles(directory=web.vendor_dir(), check_dir=False), name="vendor")
    return app


def _state(app: FastAPI, settings: Settings) -> None:
    """What the app holds from the start: settings, the tile cache, the maps (read now: a
    bad map definition stops the app before it serves anything)."""
    app.state.settings = settings
    app.state.replicas = replicas.Replicas()
    app.state.tiles = TileCache(settings.tiles.cache_mb * 2**20, settings.tiles.disk_cache_dir)
    app.state.metrics = metrics.Metrics()
    app.state.appeared = {}  # collection id -> when it appeared (api.catalog, api.replicas)
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
