"""Printed maps and reports: ``POST /maps/{subsystem}/print`` makes a PDF.

The body (JSON, :class:`tiles.printing.PrintBody`) gives the paper (A4, A3), the
orientation, the scale (``10000`` for 1:10,000) and the centre (or a CRS84 ``bbox``), and
optionally the title, the layers (the map's visible ones by default), the imagery's date,
the CRS (the centre's CGCS2000 3-degree Gauss-Krüger zone by default), selected features
(``{"collection", "ids"}``: their attributes in a table, highlighted) and a process result
(``report``: its rows in a table, its zone on the map). The answer is the PDF: the title,
the map's departments, the date, the map frame at the exact scale (vector, drawn by the
platform's renderer), the legend, scale bar, north arrow, a CGCS2000 graticule and the
frame's coordinates, and the tables on the pages after. :mod:`tiles.printing` does the
work; the caller's view decides what is drawn and listed (row filters apply), and a map
the caller may not open is 401/403 as its configuration is (404 when it does not exist).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from api.deps import Caller, database
from api.ogc import check_parameters, read_body
from api.routing import Router
from layers.subsystems import Subsystems
from spatial import jsonbody
from tiles import printing

router = Router(tags=["Printing"])

_NUMBERS = {"type": "array", "items": {"type": "number"}}
_BODY_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "paper": {"type": "string", "enum": ["A4", "A3"], "default": "A4"},
        "orientation": {"type": "string", "enum": ["portrait", "landscape"],
                        "default": "landscape"},
        "scale": {"type": "number", "description": "The denominator: 10000 for 1:10,000 "
                  "(default: the round scale at which bbox, or the report's zone, fits)"},
        "center": {**_NUMBERS, "minItems": 2, "maxItems": 2,
                   "description": "lon, lat (CRS84) of the frame's centre"},
        "bbox": {**_NUMBERS, "minItems": 4, "maxItems": 4,
                 "description": "west, south, east, north (CRS84); instead of center"},
        "title": {"type": "string", "maxLength": 200},
        "layers": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                   "description": "the map's layer ids (default: its visible layers)"},
        "datetime": {"type": "string", "description": "the imagery as seen then (RFC 3339)"},
        "crs": {"type": "string", "description": "EPSG:3857 or a CGCS2000 3-degree "
                "Gauss-Krüger zone, EPSG:4513-4554 (default: the centre's, no zone prefix)"},
        "selected": {
            "type": "object", "required": ["collection", "ids"],
            "properties": {"collection": {"type": "string"},
                           "ids": {"type": "array", "items": {"type": "integer"},
                                   "minItems": 1, "maxItems": printing.MAX_PICKED}},
        },
        "report": {
            "type": "object", "required": ["title", "process", "columns"],
            "properties": {
                "title": {"type": "string"}, "process": {"type": "string"},
                "inputs": {"type": "object"},
                "columns": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": {"type": "object"}},
                "geometry": {"type": "object", "description": "GeoJSON, CRS84"},
            },
        },
    },
}  # fmt: skip
_EXAMPLE = {
    "paper": "A3", "orientation": "landscape", "scale": 10000, "center": [112.0, 22.9],
    "title": "宗地图 Parcels", "layers": ["parcels-landuse", "districts"],
    "selected": {"collection": "parcels", "ids": [1, 2]},
}  # fmt: skip


@router.post(
    "/maps/{subsystem}/print",
    summary="A printed map (PDF) of a web map, with its legend, scale and tables",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The printed map"},
        400: {"description": "A request that cannot be printed (the reason named)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _BODY_SCHEMA,
                    "example": _EXAMPLE,
                }
            },
        }
    },
)
async def print_map(subsystem: str, request: Request, seen: Caller) -> Response:
    """The map ``subsystem`` printed as the body asks (see the module's description)."""
    check_parameters(request, frozenset())
    maps: Subsystems = request.app.state.subsystems
    definition = maps.get(subsystem)
    definition.check_open(seen.principal)
    body = await read_body(request, {"application/json"}, printing.MAX_BODY, "a print request")
    document: Any = jsonbody.loads(body, "the body")
    store = request.app.state.tile_service.store
    async with database(request).read_connection(request) as conn:
        pdf = await printing.make(conn, seen, store, maps, definition, document=document)
    name = f"{definition.id}-print.pdf"
    return Response(
        pdf, media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "no-store"},
    )  # fmt: skip
