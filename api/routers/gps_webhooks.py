"""Webhooks of geofence events (``/gps/webhooks``), for admins: a webhook without a
department filter receives every department's events.

Each change is the same function the ``spatial gps webhook`` commands call
(:mod:`spatial.gps.webhooks`), audited with the caller's name and address; delivery is the
background task of :mod:`api.webhooks`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import actor_of, view_of
from spatial import audit
from spatial.errors import ForbiddenError, UnauthorizedError
from spatial.gps.webhooks import add_webhook, list_webhooks, remove_webhook

router = APIRouter(prefix="/gps", tags=["GPS webhooks"])


class WebhookIn(BaseModel):
    """A webhook to register; without a secret, one is made (and answered once)."""

    url: str = Field(max_length=2000)
    secret: str | None = Field(default=None, max_length=500)
    fences: list[int] = Field(default_factory=list, max_length=1000)
    kinds: list[str] = Field(default_factory=list, max_length=3)
    department: str | None = None


def _admin(request: Request) -> None:
    who = view_of(request).principal
    if who.anonymous:
        raise UnauthorizedError("webhooks need a key or a token")
    if not who.admin:
        raise ForbiddenError(f"{who.username} may not manage webhooks (admins may)")


def _audit(request: Request, action: str, details: dict[str, Any]) -> tuple[Any, ...]:
    actor = actor_of(request)
    return (actor.name, actor.user_id, actor.address, action, None, None, None, None,
            Jsonb(details))  # fmt: skip


@router.get("/webhooks", summary="Webhooks of geofence events, with their delivery state")
async def webhooks(request: Request) -> list[dict[str, Any]]:
    """Every webhook (never its secret): filters, cursor, failures and the last error."""
    _admin(request)

    def work() -> list[dict[str, Any]]:
        with request.app.state.sync_pool.connection() as conn:
            return [asdict(w) for w in list_webhooks(conn)]

    return await run_in_threadpool(work)


@router.post("/webhooks", status_code=201, summary="Register a webhook of geofence events")
async def register(request: Request, body: WebhookIn) -> dict[str, Any]:
    """Register a webhook; it gets the events recorded from now on. The answer holds its
    secret (the key of each delivery's ``X-Spatial-Signature``), shown this once."""
    _admin(request)
    details = {"url": body.url, "fences": body.fences, "kinds": body.kinds,
               "department": body.department}  # fmt: skip
    row = _audit(request, "webhook-add", details)

    def work() -> tuple[int, str]:
        with request.app.state.sync_pool.connection() as conn, conn.transaction():
            made = add_webhook(conn, body.url, secret=body.secret, fence_ids=body.fences,
                               kinds=body.kinds, department=body.department)  # fmt: skip
            conn.execute(audit.INSERT, row)
            return made

    webhook_id, secret = await run_in_threadpool(work)
    return {"id": webhook_id, "url": body.url, "secret": secret}


@router.delete("/webhooks/{webhook_id}", summary="Remove a webhook")
async def unregister(webhook_id: int, request: Request) -> dict[str, Any]:
    """Remove a webhook (a delivery under way finishes first)."""
    _admin(request)
    row = _audit(request, "webhook-remove", {"id": webhook_id})

    def work() -> None:
        with request.app.state.sync_pool.connection() as conn, conn.transaction():
            remove_webhook(conn, webhook_id)
            conn.execute(audit.INSERT, row)

    await run_in_threadpool(work)
    return {"id": webhook_id, "removed": True}
