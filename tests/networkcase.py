"""The small city of the network tests, drawn in EPSG:4546 (metres from 600000 E,
2535000 N)::

      N1 ────────────── (level 0, 500..1400 at y=1300)
      │B1 (a bridge, level 1, x=500 from y=-300 to 1300)
    H2 ═══════╪═══════════╤═══════ (arterial, y=1000)   T1 ends 0.6 m short of H2 at x=1500
    │V1       │   V2│     │T1       │V3 (one-way, drawn northwards)
    H1 ───────╪──────┴──────────── (local, y=0)
      S1 ─────────────── (y=-300)                        X1 far away, T2 3 m short of V1

H1 and H2 meet V2's ends and are cut there; the bridge B1 crosses H1 and H2 without a
junction, so B1, N1 and S1 are a piece of their own; T1 joins H2 within the 1 m snap,
T2 (3 m short) and X1 are isolated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
from pyproj import Transformer
from shapely.geometry import LineString

from spatial.catalog import CollectionRecord, get_collection
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.network import build as nb
from spatial.network.speeds import Speeds
from spatial.settings import Settings

X0, Y0 = 600_000.0, 2_535_000.0
SPEEDS = Speeds(default=20.0, classes={"arterial": 50.0, "local": 30.0, "bridge": 40.0})
ROADS: list[tuple[str, str, str, int, str | None, list[tuple[float, float]]]] = [
    ("H1", "一路", "local", 0, None, [(0, 0), (2000, 0)]),
    ("H2", "二路", "arterial", 0, None, [(0, 1000), (2000, 1000)]),
    ("V1", "西街", "local", 0, None, [(0, 0), (0, 1000)]),
    ("V2", "中街", "local", 0, None, [(1000, 0), (1000, 1000)]),
    ("V3", "东街", "local", 0, "yes", [(2000, 0), (2000, 1000)]),
    ("T1", "北巷", "local", 0, None, [(1500, 1500), (1500, 1000.6)]),
    ("B1", "大桥", "bridge", 1, None, [(500, -300), (500, 1300)]),
    ("S1", "南路", "local", 0, None, [(500, -300), (1500, -300)]),
    ("N1", "北路", "local", 0, None, [(500, 1300), (1400, 1300)]),
    ("T2", "小路", "track", 0, None, [(-300, 500), (-3, 500)]),
    ("X1", "远路", "local", 0, None, [(3000, 3000), (3100, 3000)]),
]
SETTINGS = nb.Settings(
    fields=nb.Fields(speed="class", name="name", oneway="oneway", level="level"),
    speeds=SPEEDS,
    snap_m=1.0,
)


def write(path: Path, rows: list[tuple[Any, ...]], geometry: list[Any]) -> Path:
    frame = gpd.GeoDataFrame(
        {"road_id": [r[0] for r in rows], "name": [r[1] for r in rows],
         "class": [r[2] for r in rows], "level": [r[3] for r in rows],
         "oneway": [r[4] for r in rows]},
        geometry=geometry, crs="EPSG:4546",
    )  # fmt: skip
    frame.to_file(path, driver="GPKG")
    return path


TO_LONLAT = Transformer.from_crs(4546, 4326, always_xy=True)


def lonlat(x: float, y: float) -> tuple[float, float]:
    """A point of the drawing (metres from the origin) in lon/lat."""
    lon, lat = TO_LONLAT.transform(X0 + x, Y0 + y)
    return float(lon), float(lat)


def ingest(
    settings: Settings, folder: Path, collection: str, *, public: bool | None = None
) -> CollectionRecord:
    """The drawn city ingested as ``collection`` (keyed by road id, readable by everyone
    when ``public``); its catalog entry."""
    lines = [LineString([(X0 + x, Y0 + y) for x, y in r[5]]) for r in ROADS]
    path = write(folder / f"{collection}.gpkg", ROADS, lines)
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(path=path, collection_id=collection, title="Roads", key="road_id",
                          public=public)  # fmt: skip
    ingest_vector(url, source, settings, actor="pytest")
    with engine(url) as eng, eng.connect() as conn:
        return get_collection(conn, collection)


def build(url: str, record: CollectionRecord) -> nb.Report:
    """The network of ``record`` (named as it), built with :data:`SETTINGS`."""
    with psycopg.connect(url) as conn:
        return nb.build(conn, record, SETTINGS)
