"""The landing page and the health check."""

from __future__ import annotations

import html
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.deps import CatalogDep, Conn
from api.openapi import as_openapi_30

router = APIRouter(tags=["Capabilities"])

KIND_LABEL = {"vector": "vector layer", "raster": "imagery", "gps": "GPS"}


def _wants_html(request: Request, f: str | None) -> bool:
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept.split(",")[0]


@router.get("/", summary="Landing page", response_model=None)
async def landing(
    request: Request,
    catalog: CatalogDep,
    f: Literal["json", "html"] | None = Query(None, description="Output format"),
) -> Response:
    """The platform's landing page: what it is, its links and its collections."""
    base = str(request.base_url).rstrip("/")
    body: dict[str, Any] = {
        "title": request.app.title,
        "description": request.app.description,
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{base}/?f=json"},
            {"rel": "alternate", "type": "text/html", "href": f"{base}/?f=html"},
            {
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
                "href": f"{base}/api",
            },
            {
                "rel": "conformance",
                "type": "application/json",
                "href": f"{base}/conformance?f=json",
            },
            {"rel": "data", "type": "application/json", "href": f"{base}/collections?f=json"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/processes",
                "type": "application/json",
                "href": f"{base}/processes",
            },
            {"rel": "status", "type": "application/json", "href": f"{base}/health"},
        ],
        "collections": [
            {
                "id": c.id,
                "title": c.title,
                "kind": c.kind,
                "subsystems": list(c.subsystems),
                "features": c.feature_count,
            }
            for c in catalog
        ],
    }
    if not _wants_html(request, f):
        return JSONResponse(body)
    rows = "".join(
        f"<tr><td>{html.escape(c['id'])}</td><td>{html.escape(c['title'])}</td>"
        f"<td>{KIND_LABEL.get(c['kind'], c['kind'])}</td>"
        f"<td>{html.escape(', '.join(c['subsystems']))}</td><td>{c['features'] or ''}</td></tr>"
        for c in body["collections"]
    )
    page = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>{html.escape(body["title"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:.3rem .8rem;
text-align:left}}</style></head><body>
<h1>{html.escape(body["title"])}</h1><p>{html.escape(body["description"])}</p>
<h2>Collections ({len(body["collections"])})</h2>
<table><tr><th>id</th><th>title</th><th>kind</th><th>subsystems</th><th>features</th></tr>
{rows}</table>
<p><a href="?f=json">JSON</a> · <a href="/api">OpenAPI</a> ·
<a href="/health">health</a></p></body></html>"""
    return HTMLResponse(page)


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
