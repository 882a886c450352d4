"""OGC API - Styles: each map's and layer's style as MapLibre style and SLD 1.1 (H1)"""

from __future__ import annotations

from api.routing import Router

router = Router(tags=["Styles"])
