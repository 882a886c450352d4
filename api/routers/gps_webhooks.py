"""Webhooks of geofence events (``/gps/webhooks``), for admins: a webhook without a
department filter receives every department's events.

Each change is the same function the ``spatial gps webhook`` commands call
(:mod:`spatial.gps.webhooks`), which audits it with the caller's name and address; delivery
is the background task of :mod:`api.webhooks`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ActorDep, Admin, Db
from spatial.gps.webhooks import add_webhook, list_webhooks, remove_webhook

router = APIRouter(prefix="/gps", tags=["GPS webhooks"])


class WebhookIn(BaseModel):
    """A webhook to register; without a secret, one is made (and answered once)."""

    url: str = Field(max_length=2000)
    secret: str | None = Field(default=None, max_length=500)
    fences: list[int] = Field(default_factory=list, max_length=1000)
    kinds: list[str] = Field(default_factory=list, max_length=4)
    department: str | None = None


@router.get("/webhooks", summary="Webhooks of geofence events, with their delivery state")
async def webhooks(_: Admin, db: Db) -> list[dict[str, Any]]:
    """Every webhook (never its secret): filters, cursor, failures and the last error."""
    return await db.run(lambda conn: [asdict(w) for w in list_webhooks(conn)])


@router.post("/webhooks", status_code=201, summary="Register a webhook of geofence events")
async def register(body: WebhookIn, _: Admin, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Register a webhook; it gets the events recorded from now on. The answer holds its
    secret (the key of each delivery's ``X-Spatial-Signature``), shown this once."""
    webhook_id, secret = await db.run(lambda conn: add_webhook(
        conn, body.url, secret=body.secret, fence_ids=body.fences, kinds=body.kinds,
        department=body.department, actor=actor,
    ))  # fmt: skip
    return {"id": webhook_id, "url": body.url, "secret": secret}


@router.delete("/webhooks/{webhook_id}", summary="Remove a webhook")
async def unregister(webhook_id: int, _: Admin, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Remove a webhook (a delivery under way finishes first)."""
    await db.run(lambda conn: remove_webhook(conn, webhook_id, actor=actor))
    return {"id": webhook_id, "removed": True}
