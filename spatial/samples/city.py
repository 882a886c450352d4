"""The 2025 cadastre: districts, villages and a jittered grid of ~20,000 parcels.

Cell corners are jittered once and shared by neighbouring cells, so the parcels tile
without gaps or overlaps inside a block. Cells under the diagonal arterials and a few
random cells stay unregistered; the rest carry a land-use class drawn from the zone
tables in ``landuse``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon

from spatial.samples import landuse, names
from spatial.samples.grid import (
    BLOCK,
    BLOCK_SIZE,
    BLOCKS_X,
    BLOCKS_Y,
    CELL,
    NCOLS,
    NROWS,
    Grid,
    smooth_noise,
)
from spatial.samples.network import River, diagonal_lines
from spatial.samples.streams import STREAM_GRID, STREAM_LANDUSE, STREAM_NAMES, STREAM_ZONES, rng

ObjArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
DateArray = npt.NDArray[np.datetime64]

STATE, COLLECTIVE = "国有", "集体"
REGISTRATION_START = np.datetime64("1998-01-01", "D")
REGISTRATION_END = np.datetime64("2025-06-30", "D")


@dataclass(frozen=True)
class District:
    """A district (街道/镇) of the demo city and the seed of its Voronoi region."""

    code: str
    name: str
    name_en: str
    seed: tuple[float, float]
    weight: float


DISTRICTS = (
    District("445302001", "云城街道", "Yuncheng Subdistrict", (0.50, 0.50), 0.07),
    District("445302002", "高峰街道", "Gaofeng Subdistrict", (0.82, 0.80), 0.0),
    District("445302003", "河口街道", "Hekou Subdistrict", (0.14, 0.64), 0.0),
    District("445302004", "安塘街道", "Antang Subdistrict", (0.80, 0.16), 0.0),
    District("445302100", "思劳镇", "Silao Town", (0.22, 0.12), 0.0),
)


@dataclass(frozen=True)
class Parcels:
    """One edition of the cadastre: attribute columns and geometries, aligned by row."""

    dkbm: ObjArray
    dlbm: ObjArray
    qsxz: ObjArray
    qlr: ObjArray
    xzqdm: ObjArray
    xzqmc: ObjArray
    djrq: DateArray
    geometry: ObjArray

    def __len__(self) -> int:
        """Number of parcels."""
        return len(self.dkbm)

    @property
    def dlmc(self) -> ObjArray:
        """Land-use names (地类名称) derived from the codes."""
        return np.array([landuse.class_name(c) for c in self.dlbm], dtype=object)

    @property
    def tbmj(self) -> npt.NDArray[np.float64]:
        """Planar areas in m², rounded to 0.01."""
        areas = np.asarray(shapely.area(self.geometry), dtype=np.float64)
        return np.asarray(np.round(areas, 2), dtype=np.float64)


@dataclass(frozen=True)
class City:
    """The 2025 cadastre plus the per-parcel facts later steps need."""

    grid: Grid
    parcels: Parcels
    cell_i: IntArray
    cell_j: IntArray
    zone: IntArray
    village: ObjArray
    special: BoolArray
    block_district: IntArray
    hospitals: IntArray
    fire_stations: IntArray

    def district_polygons(self) -> list[Polygon]:
        """District outlines in EPSG:4546 (unions of whole blocks, bounded by road centres).

        Returns:
            One polygon per entry of ``DISTRICTS``.
        """
        g = self.grid
        out: list[Polygon] = []
        for d in range(len(DISTRICTS)):
            bx, by = np.nonzero(self.block_district == d)
            boxes = shapely.box(
                g.x0 + bx * BLOCK_SIZE,
                g.y0 + by * BLOCK_SIZE,
                g.x0 + (bx + 1) * BLOCK_SIZE,
                g.y0 + (by + 1) * BLOCK_SIZE,
            )
            merged = shapely.normalize(shapely.union_all(boxes))
            if not isinstance(merged, Polygon):
                raise TypeError(f"district {DISTRICTS[d].code} is not one polygon")
            out.append(merged)
        return out


def _block_districts(grid: Grid) -> IntArray:
    """Assign every block to the nearest district seed (additively weighted)."""
    bx, by = np.meshgrid(np.arange(BLOCKS_X), np.arange(BLOCKS_Y), indexing="ij")
    u = (bx + 0.5) / BLOCKS_X
    v = (by + 0.5) / BLOCKS_Y * (grid.height / grid.width)
    dist = np.stack(
        [
            np.hypot(u - d.seed[0], v - d.seed[1] * grid.height / grid.width) - d.weight
            for d in DISTRICTS
        ]
    )
    return np.asarray(np.argmin(dist, axis=0), dtype=np.int64)


def _cells(grid: Grid) -> tuple[IntArray, IntArray, ObjArray]:
    """All parcel cells (not road strips) and their jittered quadrilaterals."""
    generator = rng(STREAM_GRID)
    ox, oy = grid.cell_origin
    ci, cj = np.meshgrid(np.arange(NCOLS + 1), np.arange(NROWS + 1), indexing="ij")
    jitter = generator.uniform(-9.0, 9.0, (2, NCOLS + 1, NROWS + 1))
    cx = np.round(ox + ci * CELL + jitter[0], 2)
    cy = np.round(oy + cj * CELL + jitter[1], 2)
    ii, jj = np.meshgrid(np.arange(NCOLS), np.arange(NROWS), indexing="ij")
    keep = (ii % BLOCK != 0) & (jj % BLOCK != 0)
    i, j = ii[keep].astype(np.int64), jj[keep].astype(np.int64)
    ring = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1), (i, j)]
    coords = np.stack([np.stack([cx[a, b], cy[a, b]], axis=-1) for a, b in ring], axis=1)
    return i, j, np.asarray(shapely.polygons(coords), dtype=object)


def _draw(generator: np.random.Generator, table: landuse.Table, size: int) -> ObjArray:
    codes = np.array([c for c, _ in table], dtype=object)
    cumulative = np.cumsum([w for _, w in table], dtype=np.float64)
    picks = np.searchsorted(cumulative, generator.random(size) * cumulative[-1], side="right")
    return np.asarray(codes[picks], dtype=object)


def _zones(grid: Grid, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> IntArray:
    noise = smooth_noise(rng(STREAM_ZONES), x, y, 2600.0)
    r = grid.radius(x, y) + 0.12 * noise
    zone = np.where(
        r < 0.30, landuse.ZONE_CORE, np.where(r < 0.62, landuse.ZONE_INNER, landuse.ZONE_OUTER)
    )
    u, v = (x - grid.x0) / grid.width, (y - grid.y0) / grid.height
    hill = (grid.elevation(x, y) > 175.0) & (zone != landuse.ZONE_CORE)
    park = np.hypot(u - 0.80, (v - 0.36) * grid.height / grid.width) < 0.13
    zone = np.where(hill, landuse.ZONE_HILL, np.where(park, landuse.ZONE_INDUSTRY, zone))
    return np.asarray(zone, dtype=np.int64)


def _land_use(
    grid: Grid, i: IntArray, j: IntArray, polys: ObjArray, rivers: list[River]
) -> tuple[ObjArray, IntArray]:
    """Land-use codes of the cells: block-dominant classes, then water along the rivers."""
    generator = rng(STREAM_LANDUSE)
    ox, oy = grid.cell_origin
    x = np.asarray(ox + (i + 0.5) * CELL, dtype=np.float64)
    y = np.asarray(oy + (j + 0.5) * CELL, dtype=np.float64)
    zone = _zones(grid, x, y)
    bx, by = np.arange(BLOCKS_X), np.arange(BLOCKS_Y)
    bxx, byy = np.meshgrid(bx, by, indexing="ij")
    block_zone = _zones(
        grid,
        np.asarray(grid.x0 + (bxx + 0.5) * BLOCK_SIZE, dtype=np.float64),
        np.asarray(grid.y0 + (byy + 0.5) * BLOCK_SIZE, dtype=np.float64),
    )
    dominant = np.empty(block_zone.shape, dtype=object)
    for z, table in landuse.ZONE_TABLES.items():
        mask = block_zone == z
        dominant[mask] = _draw(generator, table, int(mask.sum()))
    codes = np.empty(len(i), dtype=object)
    for z, table in landuse.ZONE_TABLES.items():
        mask = zone == z
        codes[mask] = _draw(generator, table, int(mask.sum()))
    own_block = dominant[i // BLOCK, j // BLOCK]
    follow = (zone == block_zone[i // BLOCK, j // BLOCK]) & (generator.random(len(i)) < 0.6)
    codes = np.where(follow, own_block, codes)
    for river in rivers:
        width = {"main": 30.0, "tributary": 8.0, "canal": 5.0}[river.river_class]
        code = "1107" if river.river_class == "canal" else "1101"
        wet = shapely.intersects(polys, river.line.buffer(width))
        codes = np.where(wet, code, codes)
        if river.river_class == "main":
            bank = shapely.intersects(polys, river.line.buffer(90.0)) & ~wet
            bank &= (zone != landuse.ZONE_CORE) & (generator.random(len(i)) < 0.5)
            codes = np.where(bank, "1106", codes)
    return np.asarray(codes, dtype=object), zone


def _nearest(
    centres: npt.NDArray[np.float64], point: tuple[float, float], allowed: BoolArray
) -> int:
    dist = np.hypot(centres[:, 0] - point[0], centres[:, 1] - point[1])
    return int(np.argmin(np.where(allowed, dist, np.inf)))


HOSPITAL_ANCHORS = (
    (0.50, 0.52),
    (0.42, 0.45),
    (0.58, 0.58),
    (0.35, 0.62),
    (0.66, 0.44),
    (0.47, 0.70),
    (0.28, 0.35),
    (0.75, 0.68),
    (0.55, 0.28),
    (0.20, 0.55),
    (0.85, 0.30),
    (0.62, 0.82),
)
FIRE_ANCHORS = (
    (0.45, 0.55),
    (0.62, 0.40),
    (0.30, 0.50),
    (0.70, 0.75),
    (0.25, 0.20),
    (0.82, 0.22),
    (0.15, 0.80),
    (0.52, 0.15),
)


@dataclass
class _Draft:
    """Mutable working state while the 2025 cadastre is assembled."""

    i: IntArray
    j: IntArray
    polys: ObjArray
    codes: ObjArray
    zone: IntArray
    block_district: IntArray
    special: BoolArray
    holders: dict[int, str]
    dropped: set[int]

    def free(self) -> BoolArray:
        """Cells still available for a special role (not water, not taken)."""
        wet = np.isin(self.codes, ["1101", "1106", "1107"])
        return np.asarray(~self.special & ~wet, dtype=bool)

    def district(self, k: int) -> int:
        """District index of cell k."""
        return int(self.block_district[self.i[k] // BLOCK, self.j[k] // BLOCK])


def _at(grid: Grid, anchor: tuple[float, float]) -> tuple[float, float]:
    """Grid coordinates of a point given as fractions of the extent."""
    return grid.x0 + anchor[0] * grid.width, grid.y0 + anchor[1] * grid.height


def _school_pair(
    draft: _Draft, centres: npt.NDArray[np.float64], near: tuple[float, float]
) -> tuple[int, int]:
    """Two free cells facing each other across a road strip, in the same district."""
    key = {(int(a), int(b)): n for n, (a, b) in enumerate(zip(draft.i, draft.j, strict=True))}
    candidates = (draft.i % BLOCK == BLOCK - 1) & draft.free()
    while candidates.any():
        a = _nearest(centres, near, candidates)
        b = key.get((int(draft.i[a]) + 2, int(draft.j[a])), -1)
        if b >= 0 and draft.free()[b] and draft.district(a) == draft.district(b):
            return a, b
        candidates[a] = False
    raise RuntimeError("no cell pair for the multi-part parcel")


def _place_specials(grid: Grid, draft: _Draft) -> tuple[IntArray, IntArray]:
    """Facilities, the courtyard parcel, the multi-part parcel and the rare-name holders."""
    centres = shapely.get_coordinates(shapely.centroid(draft.polys))
    picked: dict[str, list[int]] = {"0805": [], "0809": []}
    hospitals = [name for name, _, _ in names.HOSPITALS]
    fire_stations = [name for name, _ in names.FIRE_STATIONS]
    for code, anchors, holders in (
        ("0805", HOSPITAL_ANCHORS, hospitals),
        ("0809", FIRE_ANCHORS, fire_stations),
    ):
        for anchor, holder in zip(anchors, holders, strict=True):
            k = _nearest(centres, _at(grid, anchor), draft.free())
            draft.codes[k], draft.special[k], draft.holders[k] = code, True, holder
            picked[code].append(k)
    # The city government: a compound around a 24 m courtyard (a polygon with a hole).
    k = _nearest(centres, (grid.cx, grid.cy), draft.free())
    c = centres[k]
    yard = shapely.box(c[0] - 12.0, c[1] - 12.0, c[0] + 12.0, c[1] + 12.0)
    draft.polys[k] = shapely.difference(draft.polys[k], yard)
    draft.codes[k], draft.special[k], draft.holders[k] = "0801", True, "云浮市人民政府"
    # A school whose sports ground lies across a road: one parcel in two parts.
    a, b = _school_pair(draft, centres, _at(grid, (0.40, 0.58)))
    draft.polys[a] = MultiPolygon([draft.polys[a], draft.polys[b]])
    draft.codes[a], draft.special[a], draft.holders[a] = "0803", True, "云浮市第一中学"
    draft.special[b] = True
    draft.dropped.add(b)
    for anchor, name in zip(((0.30, 0.40), (0.68, 0.60)), names.RARE_NAMES, strict=True):
        homes = draft.free() & np.isin(draft.codes, ["0701", "0702"])
        k = _nearest(centres, _at(grid, anchor), homes)
        draft.special[k], draft.holders[k] = True, name
    return np.array(picked["0805"], dtype=np.int64), np.array(picked["0809"], dtype=np.int64)


def build_city(grid: Grid, rivers: list[River]) -> City:
    """Generate the 2025 cadastre.

    Args:
        grid: the city frame.
        rivers: river lines (cells they cross become water parcels).

    Returns:
        The city with its 2025 parcels, ordered by DKBM.
    """
    generator = rng(STREAM_GRID, 1)
    i, j, polys = _cells(grid)
    blocked = shapely.intersects(
        polys, shapely.union_all([line.buffer(18.0) for line in diagonal_lines(grid)])
    )
    keep = ~blocked & (generator.random(len(i)) >= 0.015)
    i, j, polys = i[keep], j[keep], polys[keep]
    codes, zone = _land_use(grid, i, j, polys, rivers)
    draft = _Draft(
        i, j, polys, codes, zone, _block_districts(grid), np.zeros(len(i), dtype=bool), {}, set()
    )
    hospitals, fires = _place_specials(grid, draft)
    return _finish(grid, draft, hospitals, fires)


def _finish(grid: Grid, draft: _Draft, hospitals: IntArray, fires: IntArray) -> City:
    """Order the parcels, number them and fill in ownership, holders and dates."""
    generator = rng(STREAM_NAMES)
    block_district = draft.block_district
    n = len(draft.i)
    bx, by = draft.i // BLOCK, draft.j // BLOCK
    district = block_district[bx, by]
    # Villages: blocks of a district numbered from the north-west, row by row.
    village_no = np.zeros((BLOCKS_X, BLOCKS_Y), dtype=np.int64)
    village_name: dict[tuple[int, int], str] = {}
    for d in range(len(DISTRICTS)):
        blocks = sorted(
            zip(*np.nonzero(block_district == d), strict=True),
            key=lambda b: (-int(b[1]), int(b[0])),
        )
        for number, (vname, (a, b)) in enumerate(
            zip(names.village_names(generator, len(blocks)), blocks, strict=True), start=1
        ):
            village_no[a, b] = number
            village_name[int(a), int(b)] = vname
    order = np.lexsort((draft.i, -draft.j, village_no[bx, by], district))
    order = np.array([k for k in order if int(k) not in draft.dropped], dtype=np.int64)
    hill_state = (draft.zone == landuse.ZONE_HILL) & (generator.random(n) < 0.25)
    dkbm, qsxz, qlr, village = [], [], [], []
    seq: dict[tuple[int, int], int] = {}
    for k in (int(x) for x in order):
        block = (int(bx[k]), int(by[k]))
        seq[block] = seq.get(block, 0) + 1
        town = DISTRICTS[int(district[k])]
        dkbm.append(f"{town.code}{village_no[block]:03d}{seq[block]:06d}")
        code = str(draft.codes[k])
        if town.code == landuse.FIRST_LEVEL_ONLY_DISTRICT and code[:2] in landuse.VEGETATED:
            code = draft.codes[k] = code[:2]
        village.append(village_name[block])
        state = landuse.is_state_owned(code) or (code[:2] == "03" and bool(hill_state[k]))
        qsxz.append(STATE if state else COLLECTIVE)
        qlr.append(
            draft.holders.get(k)
            or names.holder(generator, code, state, town.name, village_name[block])
        )
    span = int((REGISTRATION_END - REGISTRATION_START).astype(np.int64))
    days = generator.integers(0, span + 1, len(order))
    parcels = Parcels(
        dkbm=np.array(dkbm, dtype=object),
        dlbm=draft.codes[order],
        qsxz=np.array(qsxz, dtype=object),
        qlr=np.array(qlr, dtype=object),
        xzqdm=np.array([DISTRICTS[int(d)].code for d in district[order]], dtype=object),
        xzqmc=np.array([DISTRICTS[int(d)].name for d in district[order]], dtype=object),
        djrq=(REGISTRATION_START + days.astype("timedelta64[D]")).astype("datetime64[D]"),
        geometry=draft.polys[order],
    )
    position = np.full(n, -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    return City(
        grid=grid,
        parcels=parcels,
        cell_i=draft.i[order],
        cell_j=draft.j[order],
        zone=draft.zone[order],
        village=np.array(village, dtype=object),
        special=draft.special[order],
        block_district=block_district,
        hospitals=position[hospitals],
        fire_stations=position[fires],
    )
