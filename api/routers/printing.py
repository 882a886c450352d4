"""Printed maps and reports as PDF (H3)"""

from __future__ import annotations

from api.routing import Router

router = Router(tags=["Printing"])
