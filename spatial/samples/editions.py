"""The 2026 edition of the cadastre and the ground truth of what changed.

Rules (each 2025 parcel takes part in at most one change; the special parcels of
``city`` never change):

- ``split``: ~3 % of parcels are cut in two along a line between opposite edges; the
  children keep the attributes and get the parent's DKBM plus ``A`` / ``B``.
- ``merged``: a handful of pairs of east-west neighbours in the same block become one
  parcel with a new DKBM (village code + a sequence number from 900001) and the class of
  the western parcel.
- ``reattributed``: ~5 % keep geometry and DKBM but change class; ~40 % of them are
  vegetated parcels (01-04) on the urban fringe that become built-up (05/06/07) and pass
  to state ownership, the rest follow ``landuse.OTHER_TRANSITIONS``.
- ``removed``: ~0.5 % disappear.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from spatial.samples import landuse, names
from spatial.samples.city import COLLECTIVE, STATE, City, IntArray, ObjArray, Parcels
from spatial.samples.grid import BLOCK
from spatial.samples.streams import STREAM_EDITION, rng

SPLIT_SHARE = 0.03
REATTRIBUTED_SHARE = 0.05
GREENFIELD_SHARE = 0.4
REMOVED_SHARE = 0.005
MERGED_PAIRS = 12
CHANGE_START = np.datetime64("2025-07-01", "D")
CHANGE_DAYS = 365

CHANGE_FIELDS = ("kind", "dkbm_2025", "dkbm_2026", "dlbm_2025", "dlbm_2026")


@dataclass(frozen=True)
class Change:
    """One row of ``parcel_changes.csv``."""

    kind: str
    dkbm_2025: str
    dkbm_2026: str
    dlbm_2025: str
    dlbm_2026: str


@dataclass
class _Plan:
    """Which 2025 rows take part in which change."""

    split: IntArray
    merged: list[tuple[int, int]]
    reattributed: dict[int, str]
    removed: IntArray


def _choose(generator: np.random.Generator, pool: IntArray, share: float, size: int) -> IntArray:
    count = round(share * size)
    return np.sort(generator.choice(pool, size=min(count, len(pool)), replace=False))


def _merge_pairs(
    city: City, generator: np.random.Generator, taken: set[int]
) -> list[tuple[int, int]]:
    """East-west neighbours inside one block, neither special nor otherwise changed."""
    index = {
        (int(i), int(j)): k for k, (i, j) in enumerate(zip(city.cell_i, city.cell_j, strict=True))
    }
    pairs: list[tuple[int, int]] = []
    for k in generator.permutation(len(city.cell_i)):
        a = int(k)
        i, j = int(city.cell_i[a]), int(city.cell_j[a])
        b = index.get((i + 1, j), -1)
        if i % BLOCK == BLOCK - 1 or b < 0 or {a, b} & taken:
            continue
        if city.special[a] or city.special[b]:
            continue
        pairs.append((a, b))
        taken.update((a, b))
        if len(pairs) == MERGED_PAIRS:
            break
    return sorted(pairs)


def _plan(city: City) -> _Plan:
    generator = rng(STREAM_EDITION)
    p = city.parcels
    n = len(p)
    first = np.array([c[:2] for c in p.dlbm], dtype=object)
    wet = first == "11"
    free = ~city.special & ~wet
    removed = _choose(generator, np.nonzero(free)[0], REMOVED_SHARE, n)
    free[removed] = False
    split = _choose(generator, np.nonzero(free)[0], SPLIT_SHARE, n)
    free[split] = False
    taken = {int(k) for k in np.nonzero(~free)[0]}
    merged = _merge_pairs(city, generator, taken)
    for a, b in merged:
        free[a] = free[b] = False
    vegetated = np.isin(first, landuse.VEGETATED)
    fringe = city.zone == landuse.ZONE_INNER
    total = round(REATTRIBUTED_SHARE * n)
    green = _choose(
        generator,
        np.nonzero(free & vegetated & fringe)[0],
        GREENFIELD_SHARE * REATTRIBUTED_SHARE,
        n,
    )
    free[green] = False
    others = np.sort(generator.choice(np.nonzero(free)[0], total - len(green), replace=False))
    codes = [c for c, _ in landuse.VEGETATED_TO_BUILT]
    weights = np.array([w for _, w in landuse.VEGETATED_TO_BUILT], dtype=np.float64)
    new_codes = generator.choice(codes, size=len(green), p=weights / weights.sum())
    reattributed = {int(k): str(c) for k, c in zip(green, new_codes, strict=True)}
    for k in others:
        reattributed[int(k)] = landuse.OTHER_TRANSITIONS[str(p.dlbm[k])]
    return _Plan(split, merged, dict(sorted(reattributed.items())), removed)


def _split_polygon(poly: BaseGeometry, generator: np.random.Generator) -> tuple[Polygon, Polygon]:
    """Cut a four-sided parcel between two opposite edges."""
    c = shapely.get_coordinates(poly)[:4]
    if generator.random() < 0.5:
        c = np.roll(c, 1, axis=0)
    t1, t2 = generator.uniform(0.35, 0.65, 2)
    p = np.round(c[0] + t1 * (c[1] - c[0]), 2)
    q = np.round(c[3] + t2 * (c[2] - c[3]), 2)
    return Polygon([c[0], p, q, c[3]]), Polygon([p, c[1], c[2], q])


@dataclass
class _Row:
    """One parcel of the 2026 edition while it is being edited."""

    dkbm: str
    dlbm: str
    qsxz: str
    qlr: str
    xzqdm: str
    xzqmc: str
    djrq: np.datetime64
    geometry: BaseGeometry
    children: list[_Row] = field(default_factory=list)
    drop: bool = False


def _rows(parcels: Parcels) -> list[_Row]:
    return [
        _Row(str(a), str(b), str(c), str(d), str(e), str(f), g, h)
        for a, b, c, d, e, f, g, h in zip(
            parcels.dkbm,
            parcels.dlbm,
            parcels.qsxz,
            parcels.qlr,
            parcels.xzqdm,
            parcels.xzqmc,
            parcels.djrq,
            parcels.geometry,
            strict=True,
        )
    ]


class _Dates:
    """Registration dates of changed parcels: days between 2025-07-01 and 2026-06-30."""

    def __init__(self, generator: np.random.Generator) -> None:
        self.generator = generator

    def __call__(self) -> np.datetime64:
        return CHANGE_START + np.timedelta64(int(self.generator.integers(CHANGE_DAYS)), "D")


def _reattribute(
    city: City, plan: _Plan, rows: list[_Row], generator: np.random.Generator, changes: list[Change]
) -> None:
    date = _Dates(generator)
    for k, code in plan.reattributed.items():
        row = rows[k]
        old = row.dlbm
        changes.append(Change("reattributed", row.dkbm, row.dkbm, old, code))
        greenfield = old[:2] in landuse.VEGETATED and code[:2] in landuse.BUILT_UP
        state = landuse.is_state_owned(code) or row.qsxz == STATE or greenfield
        row.qlr = names.holder(generator, code, state, row.xzqmc, str(city.village[k]))
        row.dlbm, row.qsxz, row.djrq = code, STATE if state else COLLECTIVE, date()


def build_2026(city: City) -> tuple[Parcels, list[Change]]:
    """Derive the 2026 edition from the 2025 cadastre.

    Args:
        city: the 2025 city.

    Returns:
        The 2026 parcels (in 2025 order, children and merges at their parent's place) and
        the change records sorted by kind, then 2025 DKBM, then 2026 DKBM.
    """
    plan = _plan(city)
    generator = rng(STREAM_EDITION, 1)
    date = _Dates(generator)
    rows = _rows(city.parcels)
    changes: list[Change] = []
    _reattribute(city, plan, rows, generator, changes)
    for k in (int(x) for x in plan.split):
        row = rows[k]
        when = date()
        for suffix, part in zip("AB", _split_polygon(row.geometry, generator), strict=True):
            child = replace(row, dkbm=row.dkbm + suffix, geometry=part, djrq=when)
            row.children.append(child)
            changes.append(Change("split", row.dkbm, child.dkbm, row.dlbm, row.dlbm))
        row.drop = True
    for n, (a, b) in enumerate(plan.merged, start=1):
        ra, rb = rows[a], rows[b]
        dkbm = f"{ra.dkbm[:12]}{900000 + n:06d}"
        for r in (ra, rb):
            changes.append(Change("merged", r.dkbm, dkbm, r.dlbm, ra.dlbm))
        union = shapely.normalize(shapely.union(ra.geometry, rb.geometry))
        rows[a] = replace(ra, dkbm=dkbm, geometry=union, djrq=date())
        rb.drop = True
    for k in (int(x) for x in plan.removed):
        changes.append(Change("removed", rows[k].dkbm, "", rows[k].dlbm, ""))
        rows[k].drop = True
    ordered = [r for row in rows for r in ([] if row.drop else [row]) + row.children]
    changes.sort(key=lambda c: (c.kind, c.dkbm_2025, c.dkbm_2026))
    return _to_parcels(ordered), changes


def _to_parcels(rows: list[_Row]) -> Parcels:
    def column(name: str) -> ObjArray:
        return np.array([getattr(r, name) for r in rows], dtype=object)

    return Parcels(
        dkbm=column("dkbm"),
        dlbm=column("dlbm"),
        qsxz=column("qsxz"),
        qlr=column("qlr"),
        xzqdm=column("xzqdm"),
        xzqmc=column("xzqmc"),
        djrq=np.array([r.djrq for r in rows], dtype="datetime64[D]"),
        geometry=column("geometry"),
    )
