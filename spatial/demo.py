"""The demo city: which sample files become which collections, and loading them.

Loading is idempotent: a collection whose catalog entry records the same file checksum
is left alone, so a second ``make demo`` changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spatial.catalog import get_collection
from spatial.db import engine
from spatial.errors import InvalidInputError, NotFoundError
from spatial.ingest.vector import VectorSource, ingest_vector, sha256
from spatial.settings import Settings


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


DEMO_LAYERS: tuple[DemoLayer, ...] = (
    DemoLayer(
        "districts.geojson",
        "districts",
        "行政区 Districts",
        ("planning", "water", "land", "environment", "emergency"),
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
        ("planning", "emergency"),
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
)


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
                subsystems=item.subsystems,
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
    return loaded
