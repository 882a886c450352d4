"""WMTS 1.0.0, KVP and RESTful (H2)"""

from __future__ import annotations

from api.routing import Router

router = Router(tags=["WMTS"])
