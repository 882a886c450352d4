"""The landing page, the OpenAPI document, health probes and metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pygeoapi.api as core
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from api.deps import Admin, database
from api.engine import Engine
from api.errors import RETRY_AFTER_S
from api.metrics import CONTENT_TYPE, DATABASE_FIGURES, Metrics
from api.ogc import F_PARAM, base_url, check_parameters, response_format
from api.openapi import as_openapi_30
from spatial.db import migrate
from spatial.errors import DatabaseUnavailableError

router = APIRouter(tags=["Capabilities"])


@router.get("/", summary="Landing page", response_model=None)
async def landing(request: Request, f: str | None = F_PARAM) -> Response:
    """The platform's landing page (pygeoapi's), with a link to the health check."""
    check_parameters(request, frozenset({"f", "lang"}))
    fmt = response_format(request, ("json", "html", "jsonld"))
    engine: Engine = request.app.state.engine
    response = await engine.answer(request, core.landing_page)
    if fmt != "json" or response.status_code != 200:
        return response
    body = json.loads(bytes(response.body))
    base = base_url(request)
    body["links"] += [
        {"rel": "status", "type": "application/json", "title": "Service health",
         "href": f"{base}/health"},
        # OGC API - Styles: the base resource links its styles.
        {"rel": "http://www.opengis.net/def/rel/ogc/1.0/styles", "type": "application/json",
         "title": "Styles (one per map)", "href": f"{base}/styles"},
        # The classic services' capabilities (api.routers.wms, api.routers.wmts).
        {"rel": "service", "type": "text/xml", "title": "WMS 1.3.0 capabilities",
         "href": f"{base}/wms?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0"},
        {"rel": "service", "type": "text/xml", "title": "WMTS 1.0.0 capabilities",
         "href": f"{base}/wmts/1.0.0/WMTSCapabilities.xml"},
    ]  # fmt: skip
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(json.dumps(body, ensure_ascii=False), headers=headers)


FAVICON = Path(__file__).resolve().parent.parent / "static" / "favicon.ico"


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The platform's icon: every page's first load asks for it."""
    return FileResponse(FAVICON, media_type="image/vnd.microsoft.icon",
                        headers={"Cache-Control": "max-age=86400"})  # fmt: skip


@router.get("/openapi", summary="The OpenAPI document, or its HTML viewer", response_model=None)
async def openapi_page(request: Request, f: str | None = F_PARAM) -> Response:
    """This API's definition (OpenAPI 3.0); with ``f=html``, Swagger UI (served locally)."""
    check_parameters(request, frozenset({"f", "lang", "ui"}))
    response_format(request, ("json", "html"))
    engine: Engine = request.app.state.engine
    return await engine.answer(request, core.openapi_)


@router.get("/api", summary="The OpenAPI document", response_model=None)
async def openapi(request: Request) -> Response:
    """This API's definition as OpenAPI 3.0 (FastAPI's 3.1 original is ``/openapi.json``)."""
    return JSONResponse(
        as_openapi_30(request.app.openapi()),
        media_type="application/vnd.oai.openapi+json;version=3.0",
    )


PROBE_TIMEOUT_S = 2.0
"""How long a readiness probe waits for a connection: a probe must answer quickly."""


@router.get("/health/live", summary="Liveness: the worker answers")
async def live() -> dict[str, Any]:
    """The worker's event loop answers (the database is not asked: restarting a worker
    does not bring a database back)."""
    return {"status": "ok"}


@router.get("/health", summary="Readiness: the database answers, at the expected schema")
@router.get("/health/ready", summary="Readiness: the database answers, at the expected schema")
async def ready(request: Request) -> JSONResponse:
    """200 when the database answers within two seconds at the schema revision this code
    expects, with the PostGIS version; 503 with ``Retry-After`` and the reason when not.
    Open without credentials (load balancers probe it)."""
    expected: str = request.app.state.schema_head
    db = database(request)
    try:
        async with db.connection(timeout=PROBE_TIMEOUT_S) as conn:
            cur = await conn.execute(migrate.VERSIONS)
            postgis, revision = await cur.fetchone() or (None, None)
    except (psycopg.Error, DatabaseUnavailableError) as exc:
        cause = exc.__cause__ if isinstance(exc, DatabaseUnavailableError) else exc
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return _unready(f"the database is not reachable: {reason}")
    if revision != expected:
        return _unready(f"the database schema is at {revision}, this code expects {expected}")
    pool = db.pool.get_stats()
    return JSONResponse({
        "status": "ok", "database": "ok", "postgis": postgis, "schema": revision,
        "pool": {"size": pool.get("pool_size", 0), "idle": pool.get("pool_available", 0),
                 "waiting": pool.get("requests_waiting", 0)},
    })  # fmt: skip


def _unready(reason: str) -> JSONResponse:
    return JSONResponse(
        {"status": "unavailable", "code": "ServiceUnavailable", "description": reason},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


@router.get("/metrics", summary="Prometheus metrics of this worker (admins)", response_model=None)
async def metrics(request: Request, _: Admin) -> Response:
    """Request counts and latency by route, the tile cache, the connection pools and the
    database's sessions, ingest and GPS counts and rejects by reason, the worker's memory
    (see :mod:`api.metrics`). Prometheus scrapes it with an admin's API key."""
    figures = None
    try:
        async with database(request).connection(timeout=PROBE_TIMEOUT_S) as conn:
            cur = await conn.execute(DATABASE_FIGURES)
            figures = await cur.fetchone()
    except (psycopg.Error, DatabaseUnavailableError):
        figures = None  # the worker's own figures still, and spatial_database_up 0
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(request.app, figures), media_type=CONTENT_TYPE)
