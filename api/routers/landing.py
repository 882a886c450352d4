"""The landing page and the health check."""

from __future__ import annotations

import json
from typing import Any

import pygeoapi.api as core
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.deps import Conn
from api.engine import Engine
from api.ogc import F_PARAM, base_url, check_parameters, response_format
from api.openapi import as_openapi_30

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
    body["links"].append(
        {"rel": "status", "type": "application/json", "title": "Service health",
         "href": f"{base_url(request)}/health"}
    )  # fmt: skip
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(json.dumps(body, ensure_ascii=False), headers=headers)


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


@router.get("/health", summary="Service health")
async def health(conn: Conn) -> dict[str, Any]:
    """Whether the database answers, with its PostGIS version."""
    cur = await conn.execute("SELECT postgis_lib_version()")
    row = await cur.fetchone()
    return {"status": "ok", "database": "ok", "postgis": row[0] if row else None}
