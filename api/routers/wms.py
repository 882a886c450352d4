"""WMS 1.3.0 (H2)"""

from __future__ import annotations

from api.routing import Router

router = Router(tags=["WMS"])
