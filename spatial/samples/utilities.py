"""Municipal utilities (市政): water supply and drainage pipes under the roads, manholes.

The roads are cut at every crossing into edges; each network is the edges moved by a
fixed offset (so water and drainage lie on either side of the centre line and never on
it, while edges meeting at a crossing still meet). Water mains run under every road;
drainage only where the blocks on either side are built up: one combined sewer (合流)
in the old town, separate storm and sewage pipes (雨污分流) elsewhere, drawn downhill
with their inverts. Manholes sit at both ends of every drainage pipe and about every
75 m between, valve chambers at the water network's junctions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import affinity, ops
from shapely.geometry import LineString, Point

from spatial.samples.city import City
from spatial.samples.grid import BLOCK_SIZE, BLOCKS_X, BLOCKS_Y, Grid
from spatial.samples.network import Road
from spatial.samples.streams import STREAM_UTILITIES, rng
from spatial.samples.themes import Record

OFFSETS = {"water": (6.0, 4.0), "storm": (-6.0, -4.0), "sewage": (-2.0, -9.0),
           "combined": (-6.0, -4.0)}  # fmt: skip
"""Where each network lies relative to the road centre lines (m east, m north)."""
MANHOLE_SPACING = 75.0
BUILT_SHARE = 0.3
"""Drainage runs along roads with at least this share of built-up parcels beside them."""
OLD_TOWN = 0.3
"""Edges nearer the centre than this (normalised radius) have combined sewers."""

WATER_DN = {"expressway": (600, 800), "arterial": (400, 600), "secondary": (200, 300),
            "local": (100, 150)}  # fmt: skip
STORM_DN = {"expressway": (1200, 1500), "arterial": (1000, 1500), "secondary": (600, 1000),
            "local": (400, 600)}  # fmt: skip
SEWAGE_DN = {"expressway": (600, 800), "arterial": (600, 800), "secondary": (400, 600),
             "local": (300, 400)}  # fmt: skip
STANDARD_DN = (100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 1800)


@dataclass(frozen=True)
class Edge:
    """A road between two crossings."""

    road: Road
    line: LineString


def road_edges(roads: list[Road]) -> list[Edge]:
    """The roads cut at every crossing with another road.

    Args:
        roads: the road lines.

    Returns:
        Edges in road order, each from the road's start towards its end.
    """
    lines = [r.line for r in roads]
    tree = shapely.STRtree(lines)
    edges: list[Edge] = []
    for n, road in enumerate(roads):
        cuts = {0.0, round(road.line.length, 3)}
        for m in tree.query(road.line, predicate="intersects"):
            if int(m) == n:
                continue
            for x, y in shapely.get_coordinates(road.line.intersection(lines[int(m)])):
                cuts.add(round(float(road.line.project(Point(x, y))), 3))
        stops = sorted(cuts)
        for a, b in itertools.pairwise(stops):
            if b - a > 1.0:
                edges.append(Edge(road, ops.substring(road.line, a, b)))
    return edges


def _standard(generator: np.random.Generator, span: tuple[int, int]) -> int:
    sizes = [d for d in STANDARD_DN if span[0] <= d <= span[1]]
    return sizes[int(generator.integers(len(sizes)))]


def _built_blocks(city: City) -> np.ndarray:
    """Share of built-up parcels (05-08 but parks) of every block."""
    p = city.parcels
    codes = np.array([str(c) for c in p.dlbm])
    built = np.isin(np.char.ljust(codes, 4).astype("U2"), ["05", "06", "07", "08"])
    built &= codes != "0810"
    bx, by = city.cell_i // 9, city.cell_j // 9
    total = np.zeros((BLOCKS_X, BLOCKS_Y))
    hits = np.zeros((BLOCKS_X, BLOCKS_Y))
    np.add.at(total, (bx, by), 1.0)
    np.add.at(hits, (bx, by), built.astype(float))
    return np.asarray(hits / np.maximum(total, 1.0))


def _beside(city: City, line: LineString, share: np.ndarray) -> float:
    """The larger built-up share of the blocks on either side of an edge's middle."""
    g = city.grid
    mid = line.interpolate(0.5, normalized=True)
    (ax, ay), (bx, by) = line.coords[0], line.coords[-1]
    length = math.hypot(bx - ax, by - ay)
    nx, ny = -(by - ay) / length, (bx - ax) / length
    best = 0.0
    for side in (-100.0, 100.0):
        i = int((mid.x + side * nx - g.x0) // BLOCK_SIZE)
        j = int((mid.y + side * ny - g.y0) // BLOCK_SIZE)
        if 0 <= i < BLOCKS_X and 0 <= j < BLOCKS_Y:
            best = max(best, float(share[i, j]))
    return best


def _moved(line: LineString, kind: str) -> LineString:
    dx, dy = OFFSETS[kind]
    moved: LineString = affinity.translate(line, dx, dy)
    return LineString(np.round(np.asarray(moved.coords), 2))


def water_pipes(city: City, edges: list[Edge]) -> list[Record]:
    """Water mains (给水管) under every road.

    Args:
        city: the city (its centre: older pipes in the old town).
        edges: the road edges.

    Returns:
        Records with ``pipe_id``, ``road``, ``diameter_mm``, ``material``,
        ``install_year``, ``pressure_class``, ``length_m``.
    """
    generator = rng(STREAM_UTILITIES)
    records: list[Record] = []
    for edge in edges:
        line = _moved(edge.line, "water")
        mid = line.interpolate(0.5, normalized=True)
        old = float(city.grid.radius(np.array([mid.x]), np.array([mid.y]))[0]) < OLD_TOWN
        year = int(generator.integers(1985 if old else 1995, 2025))
        dn = _standard(generator, WATER_DN[edge.road.road_class])
        if dn >= 600:
            material = "steel" if generator.random() < 0.4 else "ductile iron"
        elif dn >= 300:
            material = "ductile iron"
        elif year < 1995:
            material = "grey cast iron"
        elif year < 2008:
            material = "PVC" if generator.random() < 0.5 else "ductile iron"
        else:
            material = "PE" if generator.random() < 0.7 else "ductile iron"
        props = {
            "pipe_id": f"YF-JS-{len(records) + 1:04d}",
            "road": edge.road.name,
            "diameter_mm": dn,
            "material": material,
            "install_year": year,
            "pressure_class": "PN16" if dn >= 400 else "PN10",
            "length_m": round(line.length, 1),
        }
        records.append((props, line))
    return records


def _drain(
    generator: np.random.Generator, city: City, edge: Edge, kind: str, year: int
) -> tuple[dict[str, object], LineString]:
    """One drainage pipe drawn downhill, its inverts below the ground at both ends."""
    line = _moved(edge.line, kind)
    ends = np.asarray(line.coords)[[0, -1]]
    ground = city.grid.elevation(ends[:, 0], ends[:, 1])
    if ground[0] < ground[1]:
        line, ground = LineString(np.asarray(line.coords)[::-1]), ground[::-1]
    spans = STORM_DN if kind != "sewage" else SEWAGE_DN
    dn = _standard(generator, spans[edge.road.road_class])
    if kind == "combined":
        dn = min(dn + 300, 1800)
    depth = 1.5 + 0.001 * dn + float(generator.uniform(0.0, 1.0))
    upper = float(ground[0]) - depth
    fall = max(float(ground[0] - ground[1]), 0.0015 * line.length)
    lower = upper - fall
    if dn >= 800 or year < 2000:
        material = "reinforced concrete" if year >= 1990 or kind != "combined" else "brick"
    else:
        material = "HDPE" if year >= 2008 else ("PVC-U" if dn <= 400 else "reinforced concrete")
    props = {
        "kind": kind,
        "road": edge.road.name,
        "diameter_mm": dn,
        "material": material,
        "install_year": year,
        "invert_up_m": round(upper, 2),
        "invert_down_m": round(lower, 2),
        "slope_permille": round(1000.0 * (upper - lower) / line.length, 2),
        "length_m": round(line.length, 1),
    }
    return props, line


def drain_pipes(city: City, edges: list[Edge]) -> list[Record]:
    """Drainage pipes (排水管) under the built-up roads.

    Args:
        city: the city.
        edges: the road edges.

    Returns:
        Records with ``pipe_id``, ``kind`` (storm / sewage / combined: 雨水/污水/合流),
        ``road``, ``diameter_mm``, ``material``, ``install_year``, ``invert_up_m``,
        ``invert_down_m`` (m above the datum), ``slope_permille``, ``length_m``.
    """
    generator = rng(STREAM_UTILITIES, 1)
    share = _built_blocks(city)
    records: list[Record] = []
    for edge in edges:
        if edge.road.road_class == "expressway" or _beside(city, edge.line, share) < BUILT_SHARE:
            continue
        mid = edge.line.interpolate(0.5, normalized=True)
        old = float(city.grid.radius(np.array([mid.x]), np.array([mid.y]))[0]) < OLD_TOWN
        year = int(generator.integers(1982, 2010) if old else generator.integers(2000, 2025))
        for kind in ("combined",) if old else ("storm", "sewage"):
            props, line = _drain(generator, city, edge, kind, year)
            records.append(({"pipe_id": f"YF-PS-{len(records) + 1:04d}", **props}, line))
    return records


COVERS = ("ductile iron", "composite", "concrete")


def manholes(grid: Grid, water: list[Record], drains: list[Record]) -> list[Record]:
    """Manholes (检查井) on the drainage pipes and valve chambers on the water mains.

    Args:
        grid: the city frame (the ground: a manhole's depth is the ground above the
            pipe's invert there).
        water: the water pipes.
        drains: the drainage pipes.

    Returns:
        Records with ``manhole_id``, ``kind`` (water / storm / sewage / combined),
        ``pipe_id`` (a pipe it is on), ``depth_m`` and ``cover`` (the lid's material).
    """
    generator = rng(STREAM_UTILITIES, 2)
    seen: set[tuple[str, float, float]] = set()
    records: list[Record] = []

    def add(kind: str, pipe: str, point: tuple[float, float], depth: float) -> None:
        key = (kind, round(point[0], 1), round(point[1], 1))
        if key in seen:
            return
        seen.add(key)
        cover = COVERS[int(generator.integers(len(COVERS)))] if kind != "water" else "ductile iron"
        props = {"manhole_id": f"YF-JC-{len(records) + 1:05d}", "kind": kind, "pipe_id": pipe,
                 "depth_m": round(depth, 2), "cover": cover}  # fmt: skip
        records.append((props, Point(round(point[0], 2), round(point[1], 2))))

    for props, line in water:
        for x, y in (line.coords[0], line.coords[-1]):
            add("water", str(props["pipe_id"]), (x, y), 1.2 + 0.001 * int(props["diameter_mm"]))
    for props, line in drains:
        count = max(1, round(line.length / MANHOLE_SPACING))
        up, down = float(props["invert_up_m"]), float(props["invert_down_m"])
        steps = np.arange(count + 1) / count
        points = shapely.get_coordinates(
            shapely.line_interpolate_point(line, steps, normalized=True)
        )
        ground = grid.elevation(points[:, 0], points[:, 1])
        for step, (x, y), level in zip(steps, points, ground, strict=True):
            depth = max(float(level) - (up + (down - up) * float(step)), 0.8)
            add(str(props["kind"]), str(props["pipe_id"]), (float(x), float(y)), depth)
    return records
