"""Housing and construction (住建): building footprints and construction projects.

Every built-up parcel of the 2025 cadastre (commercial 05, industrial and storage 06 but
mines, housing 07, public 08 but parks) carries one building: its outline shrunk about
its centre (a courtyard parcel keeps its courtyard), its floors and height from its use
and how central it is, its residents from its floor area (housing only). Projects are
the parcels that became built-up between the two editions (a permit and dates after
their 2026 registration) and a few finished recently on 2025 parcels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from spatial.samples import landuse, names
from spatial.samples.city import City, Parcels
from spatial.samples.editions import Change
from spatial.samples.network import Road
from spatial.samples.streams import STREAM_CONSTRUCTION, rng
from spatial.samples.themes import Record

STATUS_DATE = np.datetime64("2026-06-30", "D")
"""The day the projects' status describes (the end of the 2026 edition's changes)."""


@dataclass(frozen=True)
class Use:
    """How a use builds: footprint share of the parcel, floors, storey height, years."""

    use: str
    scale: tuple[float, float]
    floors: tuple[int, int]
    storey_m: float
    years: tuple[int, int]


USES: dict[str, Use] = {
    "0701": Use("residential", (0.55, 0.72), (6, 18), 3.0, (1988, 2024)),
    "0702": Use("residential", (0.32, 0.45), (2, 4), 3.2, (1980, 2023)),
    "05": Use("commercial", (0.5, 0.75), (3, 12), 4.2, (1990, 2024)),
    "06": Use("industrial", (0.6, 0.8), (1, 4), 6.0, (1995, 2023)),
    "0604": Use("warehouse", (0.65, 0.82), (1, 2), 8.0, (1998, 2024)),
    "08": Use("public", (0.4, 0.62), (2, 8), 4.0, (1975, 2022)),
}
"""By land-use code (four digits first, then the first level)."""
SKIPPED = ("0602", "0810")
"""Mines and parks: no building."""
CORE_FLOORS = {"0701": (12, 33), "05": (6, 32)}
"""Towers in the centre of the city (its inner third)."""
M2_PER_RESIDENT = {"0701": 42.0, "0702": 50.0}
"""Floor area per resident (usable share 0.8 of the gross floor area)."""
ESTATES = ("花园", "雅苑", "华庭", "名都", "新村", "御景", "豪庭", "广场")


def _use(code: str) -> Use | None:
    if code in SKIPPED:
        return None
    return USES.get(code) or USES.get(code[:2])


def _footprint(parcel: BaseGeometry, scale: float) -> Polygon | None:
    """The parcel's largest part shrunk about its centre, inside the parcel."""
    part = parcel
    if isinstance(parcel, MultiPolygon):
        part = max(parcel.geoms, key=lambda p: p.area)
    if not isinstance(part, Polygon):
        return None
    outline = Polygon(part.exterior)
    shrunk = affinity.scale(outline, scale, scale, origin=outline.centroid)
    building = shapely.set_precision(shapely.intersection(shrunk, part), 0.01)
    return building if isinstance(building, Polygon) and not building.is_empty else None


class Addresses:
    """Door numbers on the nearest road: odd on its left, even on its right."""

    def __init__(self, roads: list[Road]) -> None:
        self.roads = [r for r in roads if r.road_class != "expressway"]
        self.tree = shapely.STRtree([r.line for r in self.roads])

    def __call__(self, point: Point) -> str:
        """The address of a point: road name and door number (e.g. 兴云路128号)."""
        road = self.roads[int(self.tree.query_nearest(point)[0])]
        line = road.line
        along = float(line.project(point))
        (ax, ay), (bx, by) = line.coords[0], line.coords[-1]
        left = (bx - ax) * (point.y - ay) - (by - ay) * (point.x - ax) > 0
        number = 2 * int(along // 20.0) + (1 if left else 2)
        name = road.name.removesuffix("东段").removesuffix("西段")
        return f"{name.removesuffix('南段').removesuffix('北段')}{number}号"


def buildings(city: City, roads: list[Road]) -> list[Record]:
    """One building per built-up parcel of the 2025 cadastre.

    Args:
        city: the city (parcels, their zone and district).
        roads: the road lines (addresses).

    Returns:
        Records with ``building_id``, ``name`` (None for homes), ``address``, ``use``,
        ``floors``, ``height_m``, ``residents`` (0 unless residential), ``year_built``,
        ``district_code`` and ``dkbm`` (the parcel).
    """
    generator = rng(STREAM_CONSTRUCTION)
    address = Addresses(roads)
    p = city.parcels
    centre = shapely.get_coordinates(shapely.centroid(p.geometry))
    radius = city.grid.radius(centre[:, 0], centre[:, 1])
    records: list[Record] = []
    for k in range(len(p)):
        code = str(p.dlbm[k])
        use = _use(code)
        if use is None:
            continue
        draws = generator.random(5)
        scale = use.scale[0] + draws[0] * (use.scale[1] - use.scale[0])
        footprint = _footprint(p.geometry[k], scale)
        if footprint is None:
            continue
        low, high = use.floors
        family = code if code in CORE_FLOORS else code[:2]
        if radius[k] < 0.33 and family in CORE_FLOORS:
            low, high = CORE_FLOORS[family]
        floors = low + int(draws[1] ** 1.6 * (high - low + 1))
        if code == "0805":  # hospitals: ward blocks
            floors = 8 + int(draws[1] * 9)
        height = round(floors * use.storey_m + 0.5 + 1.5 * float(draws[2]), 1)
        first, last = use.years
        if radius[k] < 0.33:
            last = min(last, first + int(0.8 * (last - first)) + 6)
        year = first + int(draws[3] * (last - first + 1))
        residents = 0
        if use.use == "residential":
            floor_area = footprint.area * floors * 0.8
            residents = max(1, round(floor_area / M2_PER_RESIDENT[code]))
        name = None
        if use.use != "residential":
            name = str(p.qlr[k])
        elif code == "0701":
            name = f"{names.pick(generator, names.COMPANY_WORDS)}{names.pick(generator, ESTATES)}"
        props = {
            "building_id": f"YF-JZ-{len(records) + 1:05d}",
            "name": name,
            "address": f"{p.xzqmc[k]}{address(footprint.centroid)}",
            "use": use.use,
            "floors": floors,
            "height_m": height,
            "residents": residents,
            "year_built": year,
            "district_code": str(p.xzqdm[k]),
            "dkbm": str(p.dkbm[k]),
        }
        records.append((props, footprint))
    return records


FAR = {"07": (2.2, 3.5), "05": (2.0, 5.0), "06": (0.9, 1.8), "08": (1.0, 2.5)}
"""Floor-area ratio of a project by the first level of its land use."""
PROJECT_KINDS = {"07": "住宅小区", "05": "商业综合体", "06": "厂房", "08": "公共服务设施"}


def _date(day: np.datetime64) -> dt.date:
    return dt.date.fromisoformat(str(day))


def _project(
    generator: np.random.Generator, n: int, code: str, site: BaseGeometry, *,
    start: np.datetime64, months: int, developer: str, place: str,
) -> Record:  # fmt: skip
    """One project record (status as at ``STATUS_DATE``)."""
    end = start + np.timedelta64(int(months * 30.4), "D")
    status = "planned" if start > STATUS_DATE else "under construction"
    if end <= STATUS_DATE:
        status = "completed"
    permit = None
    if status != "planned":
        issued = start - np.timedelta64(int(generator.integers(5, 40)), "D")
        permit = f"445302{str(issued).replace('-', '')}{n % 100:02d}01"
    low, high = FAR[code[:2]]
    far = low + float(generator.random()) * (high - low)
    props = {
        "project_id": f"YF-XM-{n:04d}",
        "name": f"{place}{PROJECT_KINDS[code[:2]]}项目",
        "developer": developer,
        "permit_no": permit,
        "status": status,
        "use": landuse.class_name(code),
        "start_date": _date(start),
        "planned_end_date": _date(end),
        "site_area_m2": round(site.area, 1),
        "floor_area_m2": round(site.area * far, 1),
    }
    return props, site


def projects(city: City, edition: tuple[Parcels, list[Change]], roads: list[Road]) -> list[Record]:
    """Construction projects: the parcels built on since 2025, and some finished ones.

    Args:
        city: the 2025 city.
        edition: the 2026 parcels and the change list.
        roads: the road lines (the projects are named after their street).

    Returns:
        Records with ``project_id``, ``name``, ``developer``, ``permit_no`` (施工许可证号:
        county code, issue date, sequence, section; None while planned), ``status``
        (planned / under construction / completed), ``use``, ``start_date``,
        ``planned_end_date``, ``site_area_m2`` and ``floor_area_m2``.
    """
    generator = rng(STREAM_CONSTRUCTION, 1)
    address = Addresses(roads)
    parcels, changes = edition
    row = {str(d): k for k, d in enumerate(parcels.dkbm)}
    built = ("05", "06", "07", "08")
    sites = sorted(
        {c.dkbm_2026 for c in changes if c.kind in ("reattributed", "merged")
         and c.dlbm_2026[:2] in built and c.dlbm_2026 not in SKIPPED}
    )  # fmt: skip
    records: list[Record] = []
    for dkbm in sites:
        k = row[dkbm]
        code, site = str(parcels.dlbm[k]), parcels.geometry[k]
        start = parcels.djrq[k] + np.timedelta64(int(generator.integers(20, 200)), "D")
        holder = str(parcels.qlr[k])
        developer = holder if holder.endswith("公司") else names.company(generator, code)
        place = address(site.centroid).rstrip("号0123456789")
        months = int(generator.integers(18, 37))
        records.append(_project(generator, len(records) + 1, code, site, start=start,
                                months=months, developer=developer, place=place))  # fmt: skip
    records += _finished(city, changes, address, generator, len(records))
    return records


def _finished(
    city: City, changes: list[Change], address: Addresses, generator: np.random.Generator,
    done: int,
) -> list[Record]:  # fmt: skip
    """About 60 projects completed in 2024-2026 on unchanged 2025 parcels."""
    touched = {c.dkbm_2025 for c in changes}
    p = city.parcels
    candidates = [k for k in range(len(p)) if str(p.dlbm[k])[:2] in ("05", "07")
                  and str(p.dlbm[k]) != "0702" and str(p.dkbm[k]) not in touched]  # fmt: skip
    chosen = sorted(int(k) for k in generator.choice(candidates, 60, replace=False))
    records: list[Record] = []
    for k in chosen:
        code = str(p.dlbm[k])
        end = np.datetime64("2024-01-01", "D") + np.timedelta64(int(generator.integers(900)), "D")
        months = int(generator.integers(18, 31))
        start = end - np.timedelta64(int(months * 30.4), "D")
        holder = str(p.qlr[k])
        developer = holder if holder.endswith("公司") else names.company(generator, code)
        place = address(p.geometry[k].centroid).rstrip("号0123456789")
        n = done + len(records) + 1
        records.append(_project(generator, n, code, p.geometry[k], start=start, months=months,
                                developer=developer, place=place))  # fmt: skip
    return records
