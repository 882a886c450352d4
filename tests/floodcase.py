"""A small sloping valley for the flood tests, 40 km north-east of the demo city (EPSG:4546,
10 m cells, 200 rows x 300 columns): a river along row 100 flowing east, its bed 0.1 m
lower each cell downstream and 2 m under its banks, the valley sides rising 0.3 m a cell
away from it; and a closed basin north of the river (rows 70-80, columns 140-160) at 84 m,
low enough for the water but behind a rim.

At column c the bed is ``98 - 0.1 c`` (83 m at the gauge, column 150) and a bank cell
``dr`` rows off the river stands ``2 + 0.3 |dr|`` above it: a depth of 3 m at the gauge
floods the 3 rows either side (HAND 2.3 to 2.9), where the river method carries it.

Layers (``prefix`` + name, readable by everyone): ``dem`` (one band float32), ``rivers``,
``gauges`` (``G1`` on the river at column 150, warning level 85 m), ``districts`` (``A``
west of column 150, ``B`` east of it), ``buildings`` (``residents``: three on the north
bank at columns 120, 140 and 170, one far downstream, one on the hill), ``parcels``,
``roads`` (:data:`ROADS`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.transform import from_origin
from scipy import ndimage

from spatial.catalog import get_collection
from spatial.db import engine
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.network import build as nb
from spatial.network.speeds import Speeds
from spatial.samples.grid import Grid
from spatial.samples.network import build_rivers
from spatial.settings import Settings

CRS = "EPSG:4546"
X0, Y0 = 640_000.0, 2_545_000.0
"""The north-west corner."""
CELL = 10.0
ROWS, COLS = 200, 300
RIVER_ROW = 100
GAUGE_COL = 150
BASIN = (slice(70, 81), slice(140, 161))
BED_AT_GAUGE = 98.0 - 0.1 * GAUGE_COL
WHEN = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
"""When the rasters were made (a raster needs a time)."""
TO_LONLAT = Transformer.from_crs(CRS, "OGC:CRS84", always_xy=True)


def xy(row: float, col: float) -> tuple[float, float]:
    """The centre of a cell (fractions allowed) in EPSG:4546."""
    return X0 + (col + 0.5) * CELL, Y0 - (row + 0.5) * CELL


def lonlat(row: float, col: float) -> list[float]:
    """The centre of a cell in CRS84."""
    x, y = TO_LONLAT.transform(*xy(row, col))
    return [round(float(x), 8), round(float(y), 8)]


def heights() -> np.ndarray:
    """The valley's heights (float32)."""
    r = np.arange(ROWS, dtype=np.float32)[:, None]
    c = np.arange(COLS, dtype=np.float32)[None, :]
    dem = 100.0 - 0.1 * c + 0.3 * np.abs(r - RIVER_ROW)
    dem[RIVER_ROW, :] -= 2.0
    dem[BASIN] = 84.0
    return dem.astype(np.float32)


def cells_polygon(rows: tuple[int, int], cols: tuple[int, int]) -> shapely.Polygon:
    """The cells from ``rows[0]`` to ``rows[1]`` and ``cols[0]`` to ``cols[1]`` (inclusive)
    as one rectangle in EPSG:4546."""
    west, north = X0 + cols[0] * CELL, Y0 - rows[0] * CELL
    east, south = X0 + (cols[1] + 1) * CELL, Y0 - (rows[1] + 1) * CELL
    return shapely.box(west, south, east, north)


@dataclass(frozen=True)
class Building:
    """A building of the valley: its cells, residents and district."""

    name: str
    row: int
    col: int
    residents: int

    @property
    def district(self) -> str:
        return "A" if self.col < GAUGE_COL else "B"


BUILDINGS = (
    Building("bank-120", 98, 120, 12),
    Building("bank-140", 98, 140, 30),
    Building("bank-170", 99, 170, 7),
    Building("downstream-280", 98, 280, 100),
    Building("hill-150", 40, 150, 50),
)
ROADS = {
    "V150": ((10, GAUGE_COL), (190, GAUGE_COL)),
    "V280": ((10, 280), (190, 280)),
    "N": ((10, GAUGE_COL), (10, 280)),
    "S": ((190, GAUGE_COL), (190, 280)),
}
"""Roads by their ends (row, column): one across the river at the gauge, one far
downstream (out of the gauge's reach), joined north and south of the river."""
PARCELS = range(25, 275, 50)
"""Parcels of 50 columns from these columns, rows 90 to 110."""
FLOODED_PARCELS = {"P075": 150 * CELL**2, "P125": 300 * CELL**2, "P175": 156 * CELL**2}
"""The parcels the river method floods (3 m at the gauge, reach 500 m: columns 100 to
200, the 3 rows either side of the river) and their flooded areas."""
FLOODED = ("bank-120", "bank-140", "bank-170")
"""The buildings the river method floods at 3 m above the bed at the gauge (reach 500 m)."""


def _frame(rows: list[dict[str, object]], shapes: list[shapely.Geometry]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry=shapes, crs=CRS)


def write(folder: Path) -> dict[str, Path]:
    """The valley's files: ``dem.tif`` and a GeoPackage layer per collection."""
    folder.mkdir(parents=True, exist_ok=True)
    dem = folder / "dem.tif"
    profile = {"driver": "GTiff", "width": COLS, "height": ROWS, "count": 1,
               "dtype": "float32", "crs": CRS, "transform": from_origin(X0, Y0, CELL, CELL),
               "nodata": -9999.0}  # fmt: skip
    with rasterio.open(dem, "w", **profile) as dst:
        dst.write(heights(), 1)
    river = shapely.LineString([xy(RIVER_ROW, -0.5), xy(RIVER_ROW, COLS - 0.5)])
    frames = {
        "rivers": _frame([{"river_id": "R1", "name": "试验河"}], [river]),
        "gauges": _frame([{"gauge_id": "G1", "name": "试验站", "warning_level_m": 85.0}],
                         [shapely.Point(xy(RIVER_ROW, GAUGE_COL))]),
        "districts": _frame([{"code": "A", "name": "甲区"}, {"code": "B", "name": "乙区"}],
                            [cells_polygon((0, ROWS - 1), (0, GAUGE_COL - 1)),
                             cells_polygon((0, ROWS - 1), (GAUGE_COL, COLS - 1))]),
        "buildings": _frame([{"name": b.name, "residents": b.residents} for b in BUILDINGS],
                            [cells_polygon((b.row, b.row), (b.col, b.col + 1))
                             for b in BUILDINGS]),
        "parcels": _frame([{"dkbm": f"P{c:03d}"} for c in PARCELS],
                          [cells_polygon((90, 110), (c, c + 49)) for c in PARCELS]),
        "roads": _frame([{"road_id": k, "name": k, "class": "local"} for k in ROADS],
                        [shapely.LineString([xy(*a) for a in ends]) for ends in ROADS.values()]),
    }  # fmt: skip
    paths = {"dem": dem}
    for name, frame in frames.items():
        paths[name] = folder / f"{name}.gpkg"
        frame.to_file(paths[name], layer=name, driver="GPKG")
    return paths


KEYS = {"rivers": "river_id", "gauges": "gauge_id", "districts": "code",
        "buildings": "name", "parcels": "dkbm", "roads": "road_id"}  # fmt: skip


def ingest(settings: Settings, folder: Path, prefix: str) -> dict[str, str]:
    """The valley's collections, readable by everyone: their ids by name."""
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    paths = write(folder)
    ids = {name: f"{prefix}{name}" for name in paths}
    dem = RasterSource((paths["dem"],), ids["dem"], kind="elevation", public=True)
    ingest_raster(url, dem, settings)
    for name, key in KEYS.items():
        source = VectorSource(paths[name], ids[name], ids[name], key=key, public=True)
        ingest_vector(url, source, settings)
    return ids


def network(settings: Settings, collection: str) -> None:
    """The road network of the valley's roads (named as their collection), 30 km/h."""
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    chosen = nb.Settings(fields=nb.Fields(speed="class", name="name"),
                         speeds=Speeds(default=30.0, classes={}), snap_m=1.0)  # fmt: skip
    with engine(url) as eng, eng.connect() as conn:
        record = get_collection(conn, collection)
    with psycopg.connect(url) as conn:
        nb.build(conn, record, chosen)


def config(folder: Path, ids: dict[str, str], extra: str = "", network: str = "fl_none") -> Path:
    """A floods YAML for the valley's collections (``extra`` appended: triggers)."""
    path = folder / "floods.yaml"
    path.write_text(
        f"dem: {ids['dem']}\ngauges: {ids['gauges']}\nrivers: {ids['rivers']}\n"
        f"reach_m: 500\nmin_area_m2: 100\nnetwork: {network}\n"
        f"districts: {{collection: {ids['districts']}, key: code, name: name}}\n"
        f"population: {{collection: {ids['buildings']}, field: residents}}\n"
        "affected:\n"
        f"  - {{collection: {ids['parcels']}, title: Parcels, label: dkbm, measure: area_m2}}\n"
        f"  - {{collection: {ids['buildings']}, title: Buildings, measure: area_m2}}\n"
        "  - {collection: fl_not_in_the_catalog, title: Missing}\n" + extra,
        encoding="utf-8",
    )
    return path


def demo_dem(path: Path) -> Path:
    """A DEM of the demo city at 10 m (EPSG:4546) for when the demo has none: the city's
    terrain (:meth:`spatial.samples.grid.Grid.elevation`) with the rivers in a channel 3 m
    deep and their banks rising 1.5 m per 100 m for 300 m, then 0.5 m."""
    grid = Grid.around_yunfu()
    margin, cell = 1000.0, 10.0
    west, north = grid.x0 - margin, grid.y1 + margin
    width, height = int((grid.width + 2 * margin) / cell), int((grid.height + 2 * margin) / cell)
    transform = from_origin(west, north, cell, cell)
    xs, ys = np.meshgrid(west + (np.arange(width) + 0.5) * cell,
                         north - (np.arange(height) + 0.5) * cell)  # fmt: skip
    ground = grid.elevation(xs.ravel(), ys.ravel()).reshape(height, width)
    channel = rasterize(((r.line, 1) for r in build_rivers(grid)), out_shape=(height, width),
                        transform=transform, all_touched=True).astype(bool)  # fmt: skip
    away = ndimage.distance_transform_edt(~channel) * cell
    dem = ground + 0.015 * np.minimum(away, 300) + 0.005 * np.maximum(away - 300, 0) - 3 * channel
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1,
               "dtype": "float32", "crs": CRS, "transform": transform}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(dem.astype(np.float32), 1)
    return path
