"""Thematic layers: districts, planning zones, water gauges, environmental stations, facilities.

All of them are derived from the city (block grid, parcels, rivers, roads); this module
produces plain records, ``builder`` turns them into files.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from spatial.samples import names
from spatial.samples.city import DISTRICTS, City
from spatial.samples.grid import BLOCK_SIZE, BLOCKS_X, BLOCKS_Y, Grid
from spatial.samples.network import River, Road
from spatial.samples.streams import STREAM_POI, rng

Record = tuple[dict[str, Any], BaseGeometry]
"""(properties, geometry in EPSG:4546)."""

PLANNING_ZONES = 40

ZONE_RULES: dict[str, tuple[float, int]] = {
    "居住用地": (2.8, 80),
    "商业用地": (5.0, 150),
    "工业用地": (1.5, 40),
    "物流仓储用地": (1.2, 30),
    "公共管理与公共服务用地": (2.0, 50),
    "绿地与广场用地": (0.2, 15),
    "农林用地": (0.3, 12),
    "水域": (0.0, 0),
}
"""Planning-zone classes (GB 50137 style) with typical FAR and height limits."""


def _lattice(geometry: BaseGeometry) -> BaseGeometry:
    """Insert a vertex at every block corner of a block-aligned outline.

    Neighbouring districts and zones then share exactly the same vertices, so the
    projected outlines still tile without slivers.
    """
    return shapely.set_precision(shapely.segmentize(geometry, BLOCK_SIZE), 0.01)


def districts(city: City) -> list[Record]:
    """District records: ``code``, ``name``, ``name_en``.

    Args:
        city: the city.

    Returns:
        Five records in code order.
    """
    return [
        ({"code": d.code, "name": d.name, "name_en": d.name_en}, _lattice(poly))
        for d, poly in zip(DISTRICTS, city.district_polygons(), strict=True)
    ]


def _split_blocks(generator: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Cut the block grid into ``PLANNING_ZONES`` rectangles along their longer side.

    The rectangle split next is the one with the largest area weighted towards the
    centre, so zones are small in the core and large in the countryside.
    """
    heap: list[tuple[float, int, int, int, int, int]] = []

    def push(x0: int, y0: int, x1: int, y1: int) -> None:
        u = (x0 + x1) / (2 * BLOCKS_X) - 0.5
        v = (y0 + y1) / (2 * BLOCKS_Y) - 0.5
        weight = 1.6 - 1.8 * float(np.hypot(u, v))
        heapq.heappush(heap, (-(x1 - x0) * (y1 - y0) * weight, x0, y0, x1, y1, 0))

    push(0, 0, BLOCKS_X, BLOCKS_Y)
    while len(heap) < PLANNING_ZONES:
        _, x0, y0, x1, y1, _ = heapq.heappop(heap)
        if x1 - x0 >= y1 - y0:
            cut = x0 + int(generator.integers(1, x1 - x0)) if x1 - x0 > 2 else x0 + 1
            push(x0, y0, cut, y1)
            push(cut, y0, x1, y1)
        else:
            cut = y0 + int(generator.integers(1, y1 - y0)) if y1 - y0 > 2 else y0 + 1
            push(x0, y0, x1, cut)
            push(x0, cut, x1, y1)
    return sorted((x0, y0, x1, y1) for _, x0, y0, x1, y1, _ in heap)


def _shares(codes: list[str]) -> dict[str, float]:
    """Share of parcels per class prefix of interest."""
    total = max(len(codes), 1)
    prefixes = ("05", "06", "0604", "07", "0701", "08", "0810", "11")
    return {k: sum(c.startswith(k) for c in codes) / total for k in prefixes}


def _zone_types(shares: list[dict[str, float]]) -> list[str]:
    """Planned use of each zone from the land use of its parcels.

    Zones that are mostly unbuilt stay 农林用地 (or 水域); the others take the urban use
    with the highest weighted share. The zone with most parks becomes 绿地与广场用地 and
    the one with most public land 公共管理与公共服务用地, so every class is present.
    """
    types: list[str] = []
    for s in shares:
        urban = s["05"] + s["06"] + s["07"] + s["08"]
        if urban < 0.28:
            types.append("水域" if s["11"] > 0.35 else "农林用地")
            continue
        scores = {
            "商业用地": 2.4 * s["05"],
            "工业用地": 1.6 * (s["06"] - s["0604"]),
            "物流仓储用地": 3.0 * s["0604"],
            "居住用地": 1.0 * s["07"],
            "公共管理与公共服务用地": 2.0 * (s["08"] - s["0810"]),
            "绿地与广场用地": 3.0 * s["0810"],
        }
        types.append(max(sorted(scores), key=lambda k: scores[k]))
    for zone_type, key in (("绿地与广场用地", "0810"), ("公共管理与公共服务用地", "08")):
        if zone_type not in types:
            candidates = [k for k, t in enumerate(types) if t == "居住用地"]
            best = max(candidates, key=lambda k: (shares[k][key], -k))
            types[best] = zone_type
    return types


def planning_zones(city: City) -> list[Record]:
    """About 40 regulatory planning zones (控制性详细规划 units).

    Each record has ``zone_id``, ``zone_type``, ``far_max`` and ``height_max_m``.

    Args:
        city: the city.

    Returns:
        Records ordered by ``zone_id``.
    """
    generator = rng(STREAM_POI)
    g = city.grid
    centres = shapely.get_coordinates(shapely.centroid(city.parcels.geometry))
    bx = ((centres[:, 0] - g.x0) // BLOCK_SIZE).astype(int)
    by = ((centres[:, 1] - g.y0) // BLOCK_SIZE).astype(int)
    rectangles = _split_blocks(generator)
    shares = []
    for x0, y0, x1, y1 in rectangles:
        inside = (bx >= x0) & (bx < x1) & (by >= y0) & (by < y1)
        shares.append(_shares([str(c) for c in city.parcels.dlbm[inside]]))
    records: list[Record] = []
    for n, ((x0, y0, x1, y1), zone_type) in enumerate(
        zip(rectangles, _zone_types(shares), strict=True), start=1
    ):
        far, height = ZONE_RULES[zone_type]
        if far > 0.5:
            far = round(far * float(generator.uniform(0.85, 1.2)), 1)
        box = shapely.box(
            g.x0 + x0 * BLOCK_SIZE,
            g.y0 + y0 * BLOCK_SIZE,
            g.x0 + x1 * BLOCK_SIZE,
            g.y0 + y1 * BLOCK_SIZE,
        )
        props = {
            "zone_id": f"YF-KG-{n:02d}",
            "zone_type": zone_type,
            "far_max": float(far),
            "height_max_m": int(height),
        }
        records.append((props, _lattice(box)))
    return records


MAIN_GAUGES = ("东郊", "高峰桥", "石材城", "人民桥", "城中", "南山公园", "河口", "西郊")
GAUGE_STATUS = {4: "maintenance", 9: "maintenance", 12: "offline"}


def water_gauges(grid: Grid, rivers: list[River]) -> list[Record]:
    """About 15 water-level gauges on the rivers.

    Args:
        grid: the city frame.
        rivers: the river system (main river first).

    Returns:
        Records with ``gauge_id``, ``name``, ``river_id``, ``status``, ``warning_level_m``.
    """
    generator = rng(STREAM_POI, 1)
    places: list[tuple[River, float, str]] = []
    main = rivers[0]
    for k, place in enumerate(MAIN_GAUGES):
        places.append((main, 0.08 + 0.84 * k / (len(MAIN_GAUGES) - 1), f"{main.name}{place}水位站"))
    for river in rivers[1:]:
        if river.river_class == "canal":
            places.append((river, 0.15, f"{river.name}节制闸水位站"))
        else:
            places.append((river, 0.35, f"{river.name}上游水位站"))
            places.append((river, 0.9, f"{river.name}入河口水位站"))
    records: list[Record] = []
    for n, (river, at, name) in enumerate(places, start=1):
        point = river.line.interpolate(at, normalized=True)
        ground = float(grid.elevation(np.array([point.x]), np.array([point.y]))[0])
        records.append(
            (
                {
                    "gauge_id": f"YF-SW-{n:02d}",
                    "name": name,
                    "river_id": river.river_id,
                    "status": GAUGE_STATUS.get(n, "active"),
                    "warning_level_m": round(ground + float(generator.uniform(3.0, 4.5)), 2),
                },
                point,
            )
        )
    return records


AIR_PLACES = ("市监测站", "云城", "高峰", "河口", "安塘", "思劳", "石材产业园", "南山公园")
ENV_STATUS = {"YF-AQ-05": "maintenance", "YF-WQ-06": "offline", "YF-NS-03": "maintenance"}


def env_stations(city: City, rivers: list[River], roads: list[Road]) -> list[Record]:
    """About 20 environmental monitoring points: air, water and noise.

    Args:
        city: the city.
        rivers: river lines (water-quality stations sit on them).
        roads: road lines (noise points sit 30 m beside arterials).

    Returns:
        Records with ``station_id``, ``name``, ``kind``, ``status``.
    """
    generator = rng(STREAM_POI, 2)
    g = city.grid
    records: list[Record] = []
    anchors = (
        (0.5, 0.5),
        (0.42, 0.58),
        (0.8, 0.78),
        (0.15, 0.62),
        (0.78, 0.18),
        (0.22, 0.12),
        (0.8, 0.36),
        (0.6, 0.3),
    )
    for n, (place, (u, v)) in enumerate(zip(AIR_PLACES, anchors, strict=True), start=1):
        point = Point(
            g.x0 + u * g.width + float(generator.uniform(-80, 80)),
            g.y0 + v * g.height + float(generator.uniform(-80, 80)),
        )
        records.append(_station(f"YF-AQ-{n:02d}", f"{place}空气质量自动监测站", "air", point))
    spots = [(rivers[0], a) for a in (0.15, 0.35, 0.6, 0.85)]
    spots += [(r, 0.6) for r in rivers[1:4]]
    for n, (river, at) in enumerate(spots, start=1):
        point = river.line.interpolate(at, normalized=True)
        name = f"{river.name}{'上中下'[min(int(at * 3), 2)]}游水质自动监测站"
        if river.river_class == "main":
            name = f"{river.name}{n}号水质自动监测站"
        records.append(_station(f"YF-WQ-{n:02d}", name, "water", point))
    arterials = [r for r in roads if r.road_class in ("arterial", "expressway")]
    for n in range(1, 6):
        road = arterials[(n * 7) % len(arterials)]
        point = road.line.interpolate(float(generator.uniform(0.3, 0.7)), normalized=True)
        side = shapely.offset_curve(road.line, 30.0)
        point = side.interpolate(side.project(point))
        records.append(_station(f"YF-NS-{n:02d}", f"{road.name}噪声监测点", "noise", point))
    return records


def _station(station_id: str, name: str, kind: str, point: BaseGeometry) -> Record:
    status = ENV_STATUS.get(station_id, "active")
    return {"station_id": station_id, "name": name, "kind": kind, "status": status}, point


def hospitals(city: City) -> list[Record]:
    """The hospitals, one per 0805 parcel placed by ``city``.

    Args:
        city: the city.

    Returns:
        Records with ``facility_id``, ``name``, ``beds``, ``level``.
    """
    points = shapely.point_on_surface(city.parcels.geometry[city.hospitals])
    return [
        ({"facility_id": f"YF-HOSP-{n:02d}", "name": name, "beds": beds, "level": level}, pt)
        for n, ((name, level, beds), pt) in enumerate(zip(names.HOSPITALS, points, strict=True), 1)
    ]


def fire_stations(city: City) -> list[Record]:
    """The fire stations, one per 0809 parcel placed by ``city``.

    Args:
        city: the city.

    Returns:
        Records with ``facility_id``, ``name``, ``vehicles``.
    """
    points = shapely.point_on_surface(city.parcels.geometry[city.fire_stations])
    return [
        ({"facility_id": f"YF-FS-{n:02d}", "name": name, "vehicles": vehicles}, pt)
        for n, ((name, vehicles), pt) in enumerate(zip(names.FIRE_STATIONS, points, strict=True), 1)
    ]
