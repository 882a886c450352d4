"""Flood-risk zones (洪水风险区) along the rivers, for the water department.

Each river gets bands of risk by distance from its centre line: high risk (the 10-year
flood) nearest, then medium (50-year) and low (100-year) further out; wider along the
main river than along the tributaries, and only a narrow low-risk band along the
embanked canal. The bands never overlap: a place belongs to the highest risk any river
gives it (and, at equal risk, to the river listed first), so the zones tile the flood
plain and a vehicle crossing a river moves low → medium → high → medium → low. Zones are
clipped to the city extent. Nothing here is random: the zones follow from the rivers.
"""

from __future__ import annotations

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from spatial.samples.grid import Grid
from spatial.samples.network import River
from spatial.samples.themes import Record

RISKS = ("high", "medium", "low")
"""Risk classes, from the most to the least frequently flooded."""

RETURN_PERIOD_YEARS = {"high": 10, "medium": 50, "low": 100}
"""The flood (return period in years) whose extent bounds each class."""

RISK_NAMES = {"high": "高", "medium": "中", "low": "低"}

BAND_WIDTHS_M: dict[str, dict[str, float]] = {
    "main": {"high": 80.0, "medium": 200.0, "low": 400.0},
    "tributary": {"high": 40.0, "medium": 100.0, "low": 200.0},
    "canal": {"low": 60.0},
}
"""Outer distance (m) of each risk band from the centre line, by river class."""

SIMPLIFY_M = 1.0
"""Tolerance for the buffers' round ends and bends (keeps the file small)."""


def _multi(geometry: BaseGeometry) -> MultiPolygon:
    """The polygonal parts of a geometry as one MultiPolygon (lines and points dropped)."""
    parts = [
        g
        for g in getattr(geometry, "geoms", [geometry])
        if isinstance(g, Polygon) and not g.is_empty
    ]
    return MultiPolygon(sorted(parts, key=lambda p: p.bounds))


def flood_zones(grid: Grid, rivers: list[River]) -> list[Record]:
    """One zone per river and risk class, ``zone_id`` ordered by risk, then river.

    Each record has ``zone_id``, ``name`` (e.g. ``南山河高风险洪泛区``), ``river_id``,
    ``risk`` (high, medium, low), ``return_period_years`` and ``area_ha`` (in EPSG:4546).

    Args:
        grid: the city frame (zones are clipped to its extent).
        rivers: the river system (main river first).

    Returns:
        Records with MultiPolygon geometries in EPSG:4546 (13 for the demo rivers).
    """
    city = shapely.box(grid.x0, grid.y0, grid.x1, grid.y1)
    taken: BaseGeometry = Polygon()
    records: list[Record] = []
    for risk in RISKS:
        for river in rivers:
            width = BAND_WIDTHS_M[river.river_class].get(risk)
            if width is None:
                continue
            band = shapely.simplify(shapely.buffer(river.line, width), SIMPLIFY_M)
            # A fixed 1 cm grid, as the districts and planning zones use, so that the
            # zones' shared edges stay exactly shared.
            zone = shapely.set_precision(band.intersection(city).difference(taken), 0.01)
            if zone.is_empty:
                continue
            taken = shapely.union(taken, zone)
            shape = _multi(zone)
            props = {
                "zone_id": f"YF-FZ-{len(records) + 1:02d}",
                "name": f"{river.name}{RISK_NAMES[risk]}风险洪泛区",
                "river_id": river.river_id,
                "risk": risk,
                "return_period_years": RETURN_PERIOD_YEARS[risk],
                "area_ha": round(shape.area / 10_000.0, 2),
            }
            records.append((props, shape))
    return records
