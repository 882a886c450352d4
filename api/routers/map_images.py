"""OGC API - Maps: server-rendered map images of a collection or a subsystem map (H1)"""

from __future__ import annotations

from api.routing import Router

router = Router(tags=["Maps"])
