"""Roads along the grid's road strips (plus two diagonal arterials) and the river system."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString

from spatial.samples.grid import BLOCK_SIZE, BLOCKS_X, BLOCKS_Y, Grid

VERTICAL_NAMES = (
    "迎宾路",
    "兴云路",
    "建设路",
    "星岩路",
    "解放路",
    "人民路",
    "城中路",
    "府前路",
    "育华路",
    "金山路",
    "石材路",
    "新城路",
    "牧羊路",
    "河滨路",
    "富民路",
    "岗坪路",
    "高峰路",
    "环岗路",
)
HORIZONTAL_NAMES = (
    "安塘路",
    "南山路",
    "沿江路",
    "世纪大道",
    "翠峰路",
    "云山路",
    "朝阳路",
    "中山路",
    "和平路",
    "文明路",
    "锦绣路",
    "龙华路",
    "岭南路",
    "蟠龙路",
    "腰古路",
    "北环路",
)
RING_NAME = "云浮绕城高速"

MAIN_RIVER = "南山河"


@dataclass(frozen=True)
class Road:
    """One road centre line in EPSG:4546."""

    road_id: str
    name: str
    road_class: str
    lanes: int
    line: LineString
    oneway: str | None = None
    """``yes``: only as drawn (south to north, west to east); ``-1``: only against it."""


ONE_WAY = {"建设路": "yes", "解放路": "-1", "翠峰路": "yes"}
"""A few one-way local streets (for the routing network, ``spatial network build``): two
north-south streets two blocks apart, in opposite directions, and one east-west street."""


@dataclass(frozen=True)
class River:
    """One river centre line in EPSG:4546, drawn from upstream to downstream."""

    river_id: str
    name: str
    river_class: str
    line: LineString


def grid_road_class(k: int) -> str:
    """Class of the k-th interior grid road (counted from the west or the south).

    Args:
        k: index of the road strip, 1 .. BLOCKS_X-1 (or BLOCKS_Y-1).

    Returns:
        ``arterial``, ``secondary`` or ``local``.
    """
    if k % 4 == 2:
        return "arterial"
    if k % 4 == 0:
        return "secondary"
    return "local"


LANES = {"expressway": 6, "arterial": 6, "secondary": 4, "local": 2}


def _diagonals(grid: Grid) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    s = BLOCK_SIZE
    return [
        ("云浮大道", (grid.x0 + 1 * s, grid.y0 + 2 * s), (grid.x0 + 17 * s, grid.y0 + 14 * s)),
        ("新区大道", (grid.x0 + 3 * s, grid.y0 + 16 * s), (grid.x0 + 13 * s, grid.y0 + 6 * s)),
    ]


def diagonal_lines(grid: Grid) -> list[LineString]:
    """The two diagonal arterials (parcel cells under them are left as road).

    Args:
        grid: the city frame.

    Returns:
        Their centre lines.
    """
    return [LineString([a, b]) for _, a, b in _diagonals(grid)]


def build_roads(grid: Grid) -> list[Road]:
    """All road lines: the ring expressway, the grid roads and the diagonals.

    Arterial and secondary grid roads are split into two named sections at the middle
    crossing, as Chinese street names usually are (东段/西段, 北段/南段).

    Args:
        grid: the city frame.

    Returns:
        Roads ordered by ``road_id``.
    """
    x0, y0, x1, y1 = grid.x0, grid.y0, grid.x1, grid.y1
    pieces: list[tuple[str, str, list[tuple[float, float]]]] = [
        (f"{RING_NAME}北段", "expressway", [(x0, y1), (x1, y1)]),
        (f"{RING_NAME}东段", "expressway", [(x1, y1), (x1, y0)]),
        (f"{RING_NAME}南段", "expressway", [(x1, y0), (x0, y0)]),
        (f"{RING_NAME}西段", "expressway", [(x0, y0), (x0, y1)]),
    ]
    ymid = y0 + (BLOCKS_Y // 2) * BLOCK_SIZE
    for k in range(1, BLOCKS_X):
        x = x0 + k * BLOCK_SIZE
        name, cls = VERTICAL_NAMES[k - 1], grid_road_class(k)
        if cls == "local":
            pieces.append((name, cls, [(x, y0), (x, y1)]))
        else:
            pieces.append((f"{name}南段", cls, [(x, y0), (x, ymid)]))
            pieces.append((f"{name}北段", cls, [(x, ymid), (x, y1)]))
    xmid = x0 + (BLOCKS_X // 2) * BLOCK_SIZE
    for k in range(1, BLOCKS_Y):
        y = y0 + k * BLOCK_SIZE
        name, cls = HORIZONTAL_NAMES[k - 1], grid_road_class(k)
        if cls == "local":
            pieces.append((name, cls, [(x0, y), (x1, y)]))
        else:
            pieces.append((f"{name}西段", cls, [(x0, y), (xmid, y)]))
            pieces.append((f"{name}东段", cls, [(xmid, y), (x1, y)]))
    for name, a, b in _diagonals(grid):
        pieces.append((name, "arterial", [a, b]))
    return [
        Road(
            f"YF-R{n:03d}",
            name,
            cls,
            8 if name in ("云浮大道",) else LANES[cls],
            LineString(coords),
            ONE_WAY.get(name),
        )
        for n, (name, cls, coords) in enumerate(pieces, start=1)
    ]


def _meander(
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    amplitude: float,
    waves: float,
    phase: float,
    step: float = 30.0,
) -> LineString:
    """A sinuous line from start to end (exactly through both)."""
    (ax, ay), (bx, by) = start, end
    length = math.hypot(bx - ax, by - ay)
    n = max(int(length / step), 2)
    t = np.linspace(0.0, 1.0, n + 1)
    nx, ny = -(by - ay) / length, (bx - ax) / length
    offset = amplitude * np.sin(math.pi * t) * np.sin(2 * math.pi * waves * t + phase)
    xs = ax + t * (bx - ax) + offset * nx
    ys = ay + t * (by - ay) + offset * ny
    return LineString(np.round(np.column_stack([xs, ys]), 2))


def _main_river(grid: Grid) -> LineString:
    """The main river: enters in the east (from the hills) and leaves in the west."""
    xs = np.arange(grid.x1 + 300.0, grid.x0 - 300.0 - 1.0, -30.0)
    u = (xs - grid.x0) / grid.width
    ys = (
        grid.y0
        + 0.43 * grid.height
        + 650.0 * np.sin(2 * math.pi * 1.3 * u + 0.4)
        + 220.0 * np.sin(2 * math.pi * 3.7 * u + 1.1)
    )
    return LineString(np.round(np.column_stack([xs, ys]), 2))


def _junction(main: LineString, x: float) -> tuple[float, float]:
    """The point of the main river at easting x (its first crossing)."""
    cut = LineString([(x, main.bounds[1] - 10.0), (x, main.bounds[3] + 10.0)])
    hit = shapely.get_coordinates(main.intersection(cut))
    return float(round(hit[0, 0], 2)), float(round(hit[0, 1], 2))


def build_rivers(grid: Grid) -> list[River]:
    """The main river, three tributaries and an irrigation canal.

    Args:
        grid: the city frame.

    Returns:
        Rivers ordered by ``river_id``; tributaries end exactly on the main river.
    """
    main = _main_river(grid)
    w, h = grid.width, grid.height
    x0, y0 = grid.x0, grid.y0
    tributaries = [
        ("高峰河", "tributary", (x0 + 0.78 * w, y0 + h + 250.0), 0.70, 220.0, 1.5, 0.3),
        ("云城涌", "tributary", (x0 + 0.36 * w, y0 + h + 250.0), 0.42, 160.0, 2.0, 1.7),
        ("安塘水", "tributary", (x0 + 0.62 * w, y0 - 250.0), 0.55, 180.0, 1.5, 2.6),
        ("东干渠", "canal", (x0 + 0.88 * w, y0 + 0.05 * h), 0.83, 0.0, 0.0, 0.0),
    ]
    rivers = [River("YF-RV01", MAIN_RIVER, "main", main)]
    for n, (name, cls, source, at, amp, waves, phase) in enumerate(tributaries, start=2):
        end = _junction(main, x0 + at * w)
        if cls == "canal":
            bend = (source[0] - 0.02 * w, (source[1] + end[1]) / 2)
            line = LineString([end, bend, source])  # drawn from its intake on the river
        else:
            line = _meander(source, end, amplitude=amp, waves=waves, phase=phase)
        rivers.append(River(f"YF-RV{n:02d}", name, cls, line))
    return rivers
