"""Forestry (林业): forest sub-compartments (小班) on the forest land of the cadastre.

Every block with forest land is a compartment (林班), numbered per district from the
north-west; inside it the forest parcels (GB/T 21010 class 03) are grouped by a window of
2 x 4 cells and by kind (tree forest, bamboo, shrub, other), and each connected group is
one sub-compartment: its outline is the union of its parcels, so it lies on forest land.
Species follow the terrain (eucalyptus low down, Chinese fir on the slopes, Masson pine
and broadleaf forest on the hill tops); the age class follows the species' rules.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import shapely

from spatial.samples.agriculture import polygon_parts
from spatial.samples.city import DISTRICTS, City
from spatial.samples.grid import BLOCK
from spatial.samples.streams import STREAM_FORESTRY, rng
from spatial.samples.themes import Record

SPECIES_EN = {"杉木": "Chinese fir", "马尾松": "Masson pine", "桉树": "eucalyptus",
              "阔叶混交林": "mixed broadleaf", "毛竹": "moso bamboo",
              "灌木林": "shrub"}  # fmt: skip
AGE_GROUPS = ("幼龄林", "中龄林", "近熟林", "成熟林", "过熟林")
"""Young, middle-aged, near-mature, mature and over-mature forest."""
NO_AGE_GROUP = "不分龄组"
"""The age class of bamboo and shrub stands (no age groups)."""
AGE_RULES: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("杉木", "planted"): (10, 20, 25, 35),
    ("马尾松", "planted"): (10, 20, 30, 50),
    ("马尾松", "natural"): (20, 30, 40, 60),
    ("桉树", "planted"): (2, 4, 5, 7),
    ("阔叶混交林", "natural"): (20, 30, 40, 60),
    ("阔叶混交林", "planted"): (10, 15, 20, 30),
}
"""The oldest age (years) of the first four age groups, by species and origin (southern
China's rules for the main species, LY/T 2908 style); older is 过熟林. Bamboo and shrub
have none (``NO_AGE_GROUP``)."""
GROWTH = {"杉木": (320.0, 0.08), "马尾松": (260.0, 0.06), "桉树": (180.0, 0.35),
          "阔叶混交林": (240.0, 0.04)}  # fmt: skip
"""Stand volume at full stocking (m³/ha) and growth rate: V = V∞ (1 - e^(-k·age))³."""
SPECIES_BY_HEIGHT = (
    (220.0, (("马尾松", 0.45), ("阔叶混交林", 0.4), ("杉木", 0.15))),
    (140.0, (("杉木", 0.45), ("马尾松", 0.3), ("阔叶混交林", 0.15), ("桉树", 0.1))),
    (-1e9, (("桉树", 0.55), ("杉木", 0.2), ("马尾松", 0.15), ("阔叶混交林", 0.1))),
)
"""Tree species drawn by ground height (m): the first row whose height is exceeded."""
MAX_AGE = {"杉木": 40, "马尾松": 60, "桉树": 10, "阔叶混交林": 80}


def age_group(species: str, origin: str, age: int) -> str:
    """The age group (龄组) of a stand.

    Args:
        species: one of ``SPECIES_EN``.
        origin: ``natural`` or ``planted``.
        age: years.

    Returns:
        One of ``AGE_GROUPS``, or ``NO_AGE_GROUP`` for bamboo and shrub.
    """
    bounds = AGE_RULES.get((species, origin))
    if bounds is None:
        return NO_AGE_GROUP
    for group, upper in zip(AGE_GROUPS, bounds, strict=False):
        if age <= upper:
            return group
    return AGE_GROUPS[-1]


def _kind(code: str) -> str:
    return {"0302": "bamboo", "0305": "shrub", "0307": "other"}.get(code, "tree")


def _groups(city: City) -> dict[tuple[int, int, int, int, str], list[int]]:
    """Forest parcels by (district, block row from the north, block column, window, kind)."""
    p = city.parcels
    groups: dict[tuple[int, int, int, int, str], list[int]] = defaultdict(list)
    codes = [str(c) for c in p.dlbm]
    district = {d.code: n for n, d in enumerate(DISTRICTS)}
    for k, code in enumerate(codes):
        if code[:2] != "03":
            continue
        i, j = int(city.cell_i[k]), int(city.cell_j[k])
        bx, by = i // BLOCK, j // BLOCK
        window = ((j % BLOCK - 1) // 4) * 4 + (i % BLOCK - 1) // 2
        key = (district[str(p.xzqdm[k])], -by, bx, window, _kind(code))
        groups[key].append(k)
    return groups


def _stand(generator: np.random.Generator, kind: str, height: float) -> dict[str, object]:
    """Species, origin, age, age group, canopy density and volume of one stand."""
    if kind in ("bamboo", "shrub"):
        species = "毛竹" if kind == "bamboo" else "灌木林"
        origin = "planted" if kind == "bamboo" and generator.random() < 0.6 else "natural"
        age = int(generator.integers(3, 25))
        canopy = round(float(generator.uniform(0.3, 0.8)), 2)
        return {"species": species, "origin": origin, "age_years": age, "canopy": canopy,
                "volume": 0.0}  # fmt: skip
    table = next(choices for floor, choices in SPECIES_BY_HEIGHT if height > floor)
    weights = np.array([w for _, w in table])
    species = table[int(generator.choice(len(table), p=weights / weights.sum()))][0]
    natural = {"阔叶混交林": 0.8, "马尾松": 0.3}.get(species, 0.0)
    origin = "natural" if generator.random() < natural else "planted"
    if kind == "other":  # 其他林地: newly planted land, not yet a closed stand
        origin, age = "planted", int(generator.integers(1, 4))
        canopy = round(float(generator.uniform(0.1, 0.19)), 2)
    else:
        age = 1 + int(generator.random() ** 0.8 * MAX_AGE[species])
        canopy = round(float(np.clip(0.35 + 0.5 * generator.random() + 0.002 * age, 0.2, 0.95)), 2)
    top, rate = GROWTH[species]
    volume = top * (1.0 - np.exp(-rate * age)) ** 3 * (canopy / 0.7)
    return {"species": species, "origin": origin, "age_years": age, "canopy": canopy,
            "volume": round(float(volume), 1)}  # fmt: skip


def compartments(city: City) -> list[Record]:
    """The forest sub-compartments (小班).

    Args:
        city: the city (its 2025 parcels and their cells).

    Returns:
        Records with ``xiaoban_id``, ``linban`` (compartment number in its district),
        ``xiaoban`` (number in the compartment), ``district_code``, ``land_class`` (the
        parcels' DLBM), ``species``, ``species_en``, ``origin`` (natural / planted),
        ``age_years``, ``age_class`` (不分龄组 for bamboo and shrub), ``canopy_density``,
        ``volume_m3_per_ha`` and ``area_ha``.
    """
    generator = rng(STREAM_FORESTRY)
    p = city.parcels
    records: list[Record] = []
    linban: dict[tuple[int, int, int], int] = {}
    numbers: dict[int, int] = defaultdict(int)
    xiaoban: dict[tuple[int, int, int], int] = defaultdict(int)
    for key, rows in sorted(_groups(city).items()):
        district, block = key[0], (key[0], key[1], key[2])
        if block not in linban:
            numbers[district] += 1
            linban[block] = numbers[district]
        union = shapely.union_all(p.geometry[rows])
        for part in polygon_parts(shapely.set_precision(union, 0.01)):
            xiaoban[block] += 1
            centre = part.centroid
            height = float(city.grid.elevation(np.array([centre.x]), np.array([centre.y]))[0])
            stand = _stand(generator, key[4], height)
            species, origin, age = str(stand["species"]), str(stand["origin"]), stand["age_years"]
            code = str(DISTRICTS[district].code)
            props = {
                "xiaoban_id": f"{code}-{linban[block]:03d}-{xiaoban[block]:02d}",
                "linban": linban[block],
                "xiaoban": xiaoban[block],
                "district_code": code,
                "land_class": str(p.dlbm[rows[0]]),
                "species": species,
                "species_en": SPECIES_EN[species],
                "origin": origin,
                "age_years": age,
                "age_class": age_group(species, origin, int(str(age))),
                "canopy_density": stand["canopy"],
                "volume_m3_per_ha": stand["volume"],
                "area_ha": round(part.area / 10_000.0, 2),
            }
            records.append((props, part))
    return records
