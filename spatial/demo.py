"""The demo city: which sample files become which collections, and loading them.

Loading is idempotent: a collection whose catalog entry records the same file checksum
is left alone, so a second ``make demo`` changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import text

from spatial import subsystems
from spatial.catalog import get_collection
from spatial.db import engine
from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import LayerSchema
from spatial.gps.fences import import_fences
from spatial.gps.imports import import_file
from spatial.gps.store import add_device
from spatial.gps.tracks import rebuild_all, refresh_extents
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.ingest.vector import VectorSource, ingest_vector, sha256
from spatial.network import build as network
from spatial.network.speeds import Speeds
from spatial.settings import Settings
from spatial.sta import demo as sensors


@dataclass(frozen=True)
class DemoLayer:
    """One sample file (or layer of it) and the collection it becomes."""

    file: str
    collection_id: str
    title: str
    subsystems: tuple[str, ...]
    layer: str | None = None
    crs: str | None = None
    key: str | None = None


DEPARTMENT_LAYERS: tuple[DemoLayer, ...] = (
    DemoLayer("construction.gpkg", "buildings", "建筑物 Buildings",
              ("construction", "planning", "emergency"), layer="buildings", key="building_id"),
    DemoLayer("construction.gpkg", "construction_projects", "在建项目 Construction projects",
              ("construction", "planning"), layer="construction_projects", key="project_id"),
    DemoLayer("utilities.gpkg", "water_pipes", "给水管 Water supply pipes", ("utilities",),
              layer="water_pipes", key="pipe_id"),
    DemoLayer("utilities.gpkg", "drain_pipes", "排水管 Drainage pipes", ("utilities", "water"),
              layer="drain_pipes", key="pipe_id"),
    DemoLayer("utilities.gpkg", "manholes", "检查井 Manholes", ("utilities",),
              layer="manholes", key="manhole_id"),
    DemoLayer("forestry.gpkg", "forest_compartments", "森林小班 Forest sub-compartments",
              ("forestry", "land"), layer="forest_compartments", key="xiaoban_id"),
    DemoLayer("agriculture.gpkg", "basic_farmland", "永久基本农田 Permanent basic farmland",
              ("agriculture", "land"), layer="basic_farmland", key="bh_id"),
    DemoLayer("agriculture.gpkg", "farmland_plots", "耕地地块 Farmland plots", ("agriculture",),
              layer="farmland_plots", key="plot_id"),
)  # fmt: skip
"""The departments beyond the first five (住建, 市政, 林业, 农业): their demo collections."""

ALL_SUBSYSTEMS = ("*",)
"""Every subsystem that exists when the layer is loaded (:func:`spatial.subsystems.ids`):
the collections every map shows (districts, terrain). Catalog tags only: what a map draws
is its ``layers/subsystems`` file."""

DEMO_LAYERS: tuple[DemoLayer, ...] = (
    DemoLayer(
        "districts.geojson",
        "districts",
        "行政区 Districts",
        ALL_SUBSYSTEMS,
        key="code",
    ),
    DemoLayer(
        "parcels_2025.zip", "parcels", "宗地 Cadastral parcels", ("land", "planning"), key="DKBM"
    ),
    DemoLayer(
        "planning_zones.geojson",
        "planning_zones",
        "规划分区 Planning zones",
        ("planning",),
        key="zone_id",
    ),
    DemoLayer(
        "network.gpkg",
        "roads",
        "道路 Roads",
        ("planning", "emergency", "utilities", "construction"),
        layer="roads",
        key="road_id",
    ),
    DemoLayer(
        "network.gpkg",
        "rivers",
        "河流 Rivers",
        ("water", "environment"),
        layer="rivers",
        key="river_id",
    ),
    DemoLayer(
        "flood_zones.geojson",
        "flood_zones",
        "洪水风险区 Flood-risk zones",
        ("water", "emergency"),
        key="zone_id",
    ),
    DemoLayer(
        "water_gauges.csv",
        "water_gauges",
        "水位站 Water gauges",
        ("water",),
        crs="EPSG:4490",
        key="gauge_id",
    ),
    DemoLayer(
        "env_stations.geojson",
        "env_stations",
        "环境监测站 Environmental stations",
        ("environment",),
        key="station_id",
    ),
    DemoLayer(
        "facilities.gpkg",
        "hospitals",
        "医院 Hospitals",
        ("emergency",),
        layer="hospitals",
        key="facility_id",
    ),
    DemoLayer(
        "facilities.gpkg",
        "fire_stations",
        "消防站 Fire stations",
        ("emergency",),
        layer="fire_stations",
        key="facility_id",
    ),
    *DEPARTMENT_LAYERS,
)


DEMO_IMAGERY = ("scene_2025.tif", "scene_2026.tif")
"""The demo scenes, one collection (``imagery``) of two items."""
IMAGERY = DemoLayer(
    "scene_2025.tif, scene_2026.tif",
    "imagery",
    "遥感影像 Imagery (4-band, 10 m)",
    ("land", "environment", "water", "planning", "forestry", "agriculture", "construction",
     "utilities"),
)  # fmt: skip
DEM = DemoLayer("dem.tif", "dem", "数字高程模型 DEM (10 m)", ALL_SUBSYSTEMS)
"""The city's elevation (every map may show its terrain)."""


@dataclass(frozen=True)
class DemoRaster:
    """A raster collection of the demo: its files (one item each) and what they hold."""

    layer: DemoLayer
    files: tuple[str, ...]
    kind: str
    description: str


DEMO_RASTERS = (
    DemoRaster(IMAGERY, DEMO_IMAGERY, "imagery", "Demo data: two 4-band scenes"),
    DemoRaster(DEM, ("dem.tif",), "elevation", "Demo data: the city's elevation, 10 m pixels"),
)
DEMO_STEPS = len(DEMO_LAYERS) + len(DEMO_RASTERS)
"""How many steps ``load_demo`` reports (``on_step``)."""


def load_demo(
    url: str,
    settings: Settings,
    samples_dir: Path,
    on_step: Callable[[DemoLayer, bool], None] | None = None,
) -> list[str]:
    """Load every demo layer that is missing or whose file changed.

    Each layer is one ingest job (all or nothing for that layer).

    Args:
        url: the database.
        settings: the instance's settings (ingest limits and work directory).
        samples_dir: where ``spatial samples build`` wrote the files.
        on_step: called with each layer and whether it is being (re)loaded.

    Returns:
        The ids of the collections that were (re)loaded.

    Raises:
        InvalidInputError: a sample file is missing (build the samples first).
    """
    loaded: list[str] = []
    for item in DEMO_LAYERS:
        path = samples_dir / item.file
        if not path.is_file():
            msg = f"{path} is missing; run 'spatial samples build' first"
            raise InvalidInputError(msg)
        checksum = sha256(path)
        try:
            with engine(url) as eng, eng.connect() as conn:
                current = get_collection(conn, item.collection_id)
            fresh = current.properties.get("checksum") != checksum
        except NotFoundError:
            fresh = True
        if on_step:
            on_step(item, fresh)
        if not fresh:
            continue
        ingest_vector(
            url,
            VectorSource(
                path=path,
                collection_id=item.collection_id,
                title=item.title,
                subsystems=_subsystems(item, settings),
                layer=item.layer,
                crs=item.crs,
                key=item.key,
                checksum=checksum,
                description=f"Demo data: {item.file}",
                public=True,  # the demo city is open data: the demo shows it without signing in
            ),
            settings,
        )
        loaded.append(item.collection_id)
    for raster in DEMO_RASTERS:
        if _load_raster(url, settings, samples_dir, raster, on_step):
            loaded.append(raster.layer.collection_id)
    # The sensors before the fleet: its refresh of the GPS collections' extents then takes
    # in the alarm events (gps_events) too, and a second load changes nothing.
    if _load_sensors(url, settings):
        loaded.append("sensor readings")
    if _load_fleet(url, settings, samples_dir):
        loaded.append("gps_positions")
    if _load_network(url):
        loaded.append("network roads")
    return loaded


def _subsystems(layer: DemoLayer, settings: Settings) -> tuple[str, ...]:
    """A layer's subsystems, ``*`` standing for every one that exists."""
    if layer.subsystems == ALL_SUBSYSTEMS:
        return subsystems.ids(settings)
    return layer.subsystems


def _load_sensors(url: str, settings: Settings) -> bool:
    """The water gauges and air stations as SensorThings Things with datastreams and their
    last 48 hours of readings (only the hours missing: :mod:`spatial.sta.demo`)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return sensors.load(conn, settings) > 0


ROAD_SPEEDS = Path(__file__).resolve().parent.parent / "layers" / "networks" / "roads.yaml"
"""The travel speeds of the demo's road classes."""


def _load_network(url: str) -> bool:
    """Build the road network ``roads`` (one-way streets honoured) unless it was built
    from this version of the collection already."""
    with engine(url) as eng, eng.connect() as sconn:
        record = get_collection(sconn, "roads")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT collection_version FROM net.networks WHERE id = 'roads'"
        ).fetchone()
        if row is not None and row[0] == record.version:
            return False
        fields = network.Fields(speed="class", name="name", oneway="oneway")
        network.build(conn, record, network.Settings(fields, Speeds.load(ROAD_SPEEDS)))
    return True


FLEET = ("YF-AMB-01", "YF-FIRE-01", "YF-AMB-02", "YF-FIRE-02", "YF-WATER-01", "YF-ENV-01")
"""The demo fleet's devices (their tracks: ``gps/fleet.gpx``)."""
UNITS = {"YF-FIRE-01": "fire-engine", "YF-FIRE-02": "fire-engine",
         "YF-AMB-01": "ambulance", "YF-AMB-02": "ambulance"}  # fmt: skip
"""The fleet's dispatchable units (:mod:`spatial.command`), of the emergency department."""
FENCE_LAYERS = ("districts", "flood_zones")
"""The demo collections whose polygons become geofences (named by their ``name``)."""


def _load_fleet(url: str, settings: Settings, samples_dir: Path) -> bool:
    """Register the fleet (its fire engines and ambulances as the emergency department's
    units), make fences of the districts and the flood-risk zones, import
    the fleet's tracks (again: nothing new, fixes are idempotent), derive tracks, and open
    the GPS collections that hold data to everyone, as the rest of the demo city."""

    with engine(url) as eng, eng.connect() as sconn:
        fenced = [LayerSchema.of(get_collection(sconn, c)) for c in FENCE_LAYERS]
    with psycopg.connect(url, autocommit=True) as conn:
        known = {r[0] for r in conn.execute("SELECT id FROM gps.devices")}
        for device in FLEET:
            if device not in known:
                add_device(conn, device, name=device)
        conn.execute(
            "UPDATE gps.devices SET department = 'emergency' WHERE id = ANY(%s) "
            "AND department IS NULL", (list(UNITS),))  # fmt: skip
        conn.execute(
            "INSERT INTO cmd.units (device_id, kind) SELECT * FROM unnest(%s::text[], %s::text[]) "
            "ON CONFLICT (device_id) DO NOTHING", (list(UNITS), list(UNITS.values())))  # fmt: skip
        # Fences before the tracks, so that the fleet driving from one district to another
        # and across the rivers' flood zones makes enter and exit events.
        for layer in fenced:
            import_fences(conn, layer, name_field="name")
        done = import_file(conn, samples_dir / "gps" / "fleet.gpx", device=None,
                           settings=settings.gps)  # fmt: skip
        rebuild_all(conn)
        refresh_extents(conn)
        views = conn.execute("SELECT id, storage_table FROM platform.collections "
                             "WHERE kind = 'gps' AND NOT is_public").fetchall()  # fmt: skip
        for collection_id, table in views:
            filled = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                sql.Identifier("gps", table))).fetchone()  # fmt: skip
            if filled and filled[0]:  # an empty collection would only puzzle the demo's users
                conn.execute("UPDATE platform.collections SET is_public = true WHERE id = %s",
                             (collection_id,))  # fmt: skip
    return done.stored > 0


def _load_raster(
    url: str, settings: Settings, samples_dir: Path, raster: DemoRaster,
    on_step: Callable[[DemoLayer, bool], None] | None,
) -> bool:  # fmt: skip
    """Ingest the files of a demo raster collection that changed (each item records its
    file's sha256)."""

    paths = [samples_dir / name for name in raster.files]
    for path in paths:
        if not path.is_file():
            msg = f"{path} is missing; run 'spatial samples build' first"
            raise InvalidInputError(msg)
    layer = raster.layer
    with engine(url) as eng, eng.connect() as conn:
        known: dict[str, str | None] = dict(conn.execute(text(
            "SELECT id, properties->>'spatial:source_sha256' FROM rs.items "
            "WHERE collection_id = :c"), {"c": layer.collection_id}).all())  # fmt: skip
    stale = tuple(p for p in paths if known.get(p.stem) != sha256(p))
    if on_step:
        on_step(layer, bool(stale))
    if not stale:
        return False
    ingest_raster(
        url,
        RasterSource(paths=stale, collection_id=layer.collection_id, title=layer.title,
                     subsystems=_subsystems(layer, settings), description=raster.description,
                     public=True, kind=raster.kind),
        settings,
    )  # fmt: skip
    return True
