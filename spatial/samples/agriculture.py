"""Agriculture (农业): permanent basic farmland (永久基本农田) and farmland plots.

The plots are the cadastre's cultivated parcels (GB/T 21010 class 01) less a 1 m field
ridge (田埂), each with its crop (paddy fields grow rice, irrigated land vegetables,
dry land sugarcane, peanuts, sweet potatoes or maize) and its operator. The basic
farmland is the cultivated land of the blocks that are mostly farmland, outside the
city centre: one protection patch per connected piece, graded 1 (best) to 10 by the
cultivated-land quality standard (GB/T 33469 style: paddy on the valley floor best).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from spatial.samples import names
from spatial.samples.city import City
from spatial.samples.grid import BLOCK, BLOCKS_X, BLOCKS_Y
from spatial.samples.streams import STREAM_AGRICULTURE, rng
from spatial.samples.themes import Record

CROPS_EN = {"水稻": "rice", "蔬菜": "vegetables", "甘蔗": "sugarcane", "花生": "peanut",
            "番薯": "sweet potato", "玉米": "maize"}  # fmt: skip
CROPS: dict[str, tuple[tuple[str, float], ...]] = {
    "0101": (("水稻", 0.85), ("蔬菜", 0.15)),
    "0102": (("蔬菜", 0.6), ("甘蔗", 0.2), ("水稻", 0.2)),
    "0103": (("甘蔗", 0.35), ("花生", 0.25), ("番薯", 0.2), ("玉米", 0.1), ("蔬菜", 0.1)),
    "01": (("水稻", 0.45), ("甘蔗", 0.2), ("蔬菜", 0.15), ("花生", 0.1), ("番薯", 0.1)),
}
"""Crops by land-use class (01: 思劳镇 records first-level classes only)."""
IRRIGATED = {"0101": 1.0, "0102": 1.0, "0103": 0.15, "01": 0.6}
"""Share of the plots with irrigation, by class."""
QUALITY = {"0101": 3.0, "0102": 4.0, "0103": 6.0, "01": 5.0}
"""Typical quality grade (1 best, 10 worst) by class, before terrain and chance."""
RIDGE = 1.0
"""Field ridge (m) between a plot and its parcel's edge."""
MU_PER_M2 = 0.0015
"""1 亩 = 666.67 m²."""
PROTECTED_SHARE = 0.4
"""Blocks whose parcels are at least this share farmland hold basic farmland."""
DESIGNATED = ((dt.date(2017, 6, 30), 0.75), (dt.date(2020, 12, 31), 0.15),
              (dt.date(2022, 10, 31), 0.10))  # fmt: skip
"""When patches were designated: the 2017 delineation, a 2020 supplement, the 2022 three
zones and three lines (三区三线)."""


def _farmland(city: City) -> list[int]:
    return [k for k, c in enumerate(city.parcels.dlbm) if str(c)[:2] == "01"]


def _draw(generator: np.random.Generator, table: tuple[tuple[str, float], ...]) -> str:
    weights = np.array([w for _, w in table])
    return table[int(generator.choice(len(table), p=weights / weights.sum()))][0]


def _operator(generator: np.random.Generator, crop: str) -> str:
    draw = generator.random()
    word = names.pick(generator, names.COMPANY_WORDS)
    if draw < 0.65:
        return names.person(generator)
    if draw < 0.9:
        return f"云浮市{word}{crop}种植专业合作社"
    return f"云浮市{word}农业发展有限公司"


def plots(city: City) -> list[Record]:
    """Farmland plots: one per cultivated parcel.

    Args:
        city: the city.

    Returns:
        Records with ``plot_id``, ``dkbm`` (the parcel), ``land_class``, ``crop``,
        ``crop_en``, ``irrigation`` (yes / no), ``owner`` (the operator: a household, a
        cooperative or a company), ``area_mu``, ``area_ha`` and ``district_code``.
    """
    generator = rng(STREAM_AGRICULTURE)
    p = city.parcels
    records: list[Record] = []
    for k in _farmland(city):
        code = str(p.dlbm[k])
        plot = shapely.set_precision(
            shapely.buffer(p.geometry[k], -RIDGE, join_style="mitre"), 0.01
        )
        if not isinstance(plot, Polygon) or plot.is_empty:
            continue
        crop = _draw(generator, CROPS[code])
        irrigated = crop == "水稻" or generator.random() < IRRIGATED[code]
        props = {
            "plot_id": f"YF-NT-{len(records) + 1:05d}",
            "dkbm": str(p.dkbm[k]),
            "land_class": code,
            "crop": crop,
            "crop_en": CROPS_EN[crop],
            "irrigation": "yes" if irrigated else "no",
            "owner": _operator(generator, crop),
            "area_mu": round(plot.area * MU_PER_M2, 2),
            "area_ha": round(plot.area / 10_000.0, 4),
            "district_code": str(p.xzqdm[k]),
        }
        records.append((props, plot))
    return records


def polygon_parts(geometry: BaseGeometry) -> list[Polygon]:
    """The polygons of a (Multi)Polygon, north to south then west to east (a stable
    numbering); nothing for other geometries."""
    if isinstance(geometry, Polygon):
        return [geometry]
    if isinstance(geometry, MultiPolygon):
        return sorted(geometry.geoms, key=lambda g: (-g.centroid.y, g.centroid.x))
    return []


def basic_farmland(city: City) -> list[Record]:
    """Permanent basic farmland protection patches.

    Args:
        city: the city.

    Returns:
        Records with ``bh_id``, ``district_code``, ``quality_grade`` (耕地质量等级, 1 to
        10), ``protected_since``, ``area_ha``.
    """
    generator = rng(STREAM_AGRICULTURE, 1)
    p = city.parcels
    farmland = _farmland(city)
    bx, by = city.cell_i // BLOCK, city.cell_j // BLOCK
    total = np.zeros((BLOCKS_X, BLOCKS_Y))
    np.add.at(total, (bx, by), 1.0)
    farmed = np.zeros((BLOCKS_X, BLOCKS_Y))
    np.add.at(farmed, (bx[farmland], by[farmland]), 1.0)
    centre = shapely.get_coordinates(shapely.centroid(p.geometry))
    radius = city.grid.radius(centre[:, 0], centre[:, 1])
    height = city.grid.elevation(centre[:, 0], centre[:, 1])
    blocks: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k in farmland:
        block = (int(bx[k]), int(by[k]))
        if farmed[block] >= PROTECTED_SHARE * total[block] and radius[k] >= 0.3:
            blocks[(-block[1], block[0])].append(k)
    grade = np.zeros(len(p))
    for k in farmland:
        noise = float(generator.normal(0.0, 0.8))
        grade[k] = QUALITY[str(p.dlbm[k])] + (height[k] - 45.0) / 35.0 + noise
    records: list[Record] = []
    dates = [d for d, _ in DESIGNATED]
    weights = np.array([w for _, w in DESIGNATED])
    for _, rows in sorted(blocks.items()):
        union = shapely.set_precision(shapely.union_all(p.geometry[rows]), 0.01)
        for part in polygon_parts(union):
            inside = [k for k in rows if part.contains(p.geometry[k].point_on_surface())]
            areas = shapely.area(p.geometry[inside])
            mean = float(np.average(grade[inside], weights=areas))
            props = {
                "bh_id": f"YF-JBNT-{len(records) + 1:04d}",
                "district_code": str(p.xzqdm[rows[0]]),
                "quality_grade": int(np.clip(round(mean), 1, 10)),
                "protected_since": dates[int(generator.choice(len(dates), p=weights))],
                "area_ha": round(part.area / 10_000.0, 2),
            }
            records.append((props, part))
    return records
