"""The demo city's DEM (spatial.samples.terrain): deterministic, and consistent with the
rivers, gauges, forest and flood zones it is drawn from."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from spatial.samples import landuse, rasters, terrain, themes
from spatial.samples.city import build_city
from spatial.samples.grid import Grid
from spatial.samples.network import River, build_rivers


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Grid, list[River], Path]:
    grid = Grid.around_yunfu()
    rivers = build_rivers(grid)
    path = tmp_path_factory.mktemp("dem") / "dem.tif"
    terrain.write_dem(path, grid, rivers, build_city(grid, rivers).parcels)
    return grid, rivers, path


def test_dem_file_is_deterministic(demo: tuple[Grid, list[River], Path], tmp_path: Path) -> None:
    grid, rivers, path = demo
    again = tmp_path / "again.tif"
    terrain.write_dem(again, grid, rivers, build_city(grid, rivers).parcels)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (path, again)]
    assert digest[0] == digest[1]
    transform, width, height = rasters.scene_transform(grid)
    with rasterio.open(path) as src:
        assert (src.width, src.height, src.count, src.dtypes[0]) == (width, height, 1, "float32")
        assert src.crs.to_epsg() == 4546 and src.transform == transform
        assert src.nodata == terrain.NODATA and src.units == ("metre",)
        assert src.profile["tiled"] and src.compression.name == "deflate"


def test_dem_is_consistent_with_the_city(demo: tuple[Grid, list[River], Path]) -> None:
    grid, rivers, path = demo
    with rasterio.open(path) as src:
        heights = src.read(1).astype("float64")
        inverse = ~src.transform
    gauges = themes.water_gauges(grid, rivers)
    for props, point in gauges:
        col, row = inverse * (point.x, point.y)
        bed = heights[int(row), int(col)]
        ground = float(grid.elevation(np.array([point.x]), np.array([point.y]))[0])
        assert bed < props["warning_level_m"] - 3.0, props["gauge_id"]
        assert ground - 6.0 < bed < ground - 3.0, props["gauge_id"]
    # At the main river's gauges its danger level floods about 100-350 m on each side
    # (most of them: beside a tributary's mouth or a meander the water goes further).
    main = rivers[0]
    bands = [_band(heights, inverse, main, point, props["warning_level_m"] + 1.0)
             for props, point in gauges if props["river_id"] == main.river_id]  # fmt: skip
    within = [min(b) >= 100 and max(b) <= 350 for b in bands]
    assert sum(within) >= len(bands) - 3, bands
    assert all(min(b) >= 100 for b in bands), bands
    # Forest land stands above the valley floor along the main river.
    city = build_city(grid, rivers)
    forest = [g for g, c in zip(city.parcels.geometry, city.parcels.dlbm, strict=True)
              if landuse.first_level(str(c)) == "03"]  # fmt: skip
    on_forest = _mask(forest, heights.shape, inverse)
    by_river = _mask([main.line.buffer(100.0)], heights.shape, inverse)
    assert np.median(heights[on_forest]) > np.median(heights[by_river]) + 20.0


def test_dem_has_a_closed_basin_below_the_danger_levels(
    demo: tuple[Grid, list[River], Path],
) -> None:
    grid, rivers, path = demo
    with rasterio.open(path) as src:
        heights = src.read(1).astype("float64")
        inverse = ~src.transform
    basin = terrain.dem(grid, rivers, build_city(grid, rivers).parcels).basin
    levels = [p["warning_level_m"] + 1.0 for p, _ in themes.water_gauges(grid, rivers)
              if p["river_id"] == rivers[0].river_id]  # fmt: skip
    col, row = inverse * (basin.x, basin.y)
    assert heights[int(row), int(col)] < min(levels) - 2.0
    # Below the highest danger level, the basin's cells are not connected to the river's.
    wet, _ = ndimage.label(heights < max(levels))
    river_col, river_row = inverse * rivers[0].line.interpolate(0.5, normalized=True).coords[0]
    assert wet[int(row), int(col)] != 0
    assert wet[int(row), int(col)] != wet[int(river_row), int(river_col)]
    # And the basin is away from every river.
    assert min(r.line.distance(shapely.Point(basin.x, basin.y)) for r in rivers) > 600.0


def _band(
    heights: np.ndarray, inverse: Affine, river: River, point: shapely.Point, level: float
) -> list[float]:
    """How far (m) from the gauge, across the river, the ground stays below ``level``."""
    s = river.line.project(point)
    a, b = river.line.interpolate(s - 20.0), river.line.interpolate(s + 20.0)
    tx, ty = b.x - a.x, b.y - a.y
    nx, ny = -ty / np.hypot(tx, ty), tx / np.hypot(tx, ty)
    out = []
    for side in (1.0, -1.0):
        d = 0.0
        while d < 2000.0:
            col, row = inverse * (point.x + side * d * nx, point.y + side * d * ny)
            if heights[int(row), int(col)] > level:
                break
            d += 5.0
        out.append(d)
    return out


def _mask(shapes: list[BaseGeometry], shape: tuple[int, ...], inverse: Affine) -> np.ndarray:
    burnt = rasterize([(g, 1) for g in shapes], out_shape=shape, transform=~inverse)
    return np.asarray(burnt, dtype=bool)
