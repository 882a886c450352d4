"""The subsystem files are the one source of subsystems: a new file is all a new
department's map takes (ingest tags, the catalog, the map page and its tiles)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import httpx
import mapbox_vector_tile
import pytest
from shapely.geometry import box
from support import LiveServer, run_cli

from api import create_app
from layers import subsystems
from spatial.errors import InvalidInputError
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import MapsSettings, Settings
from tiles.tms import TILE_MATRIX_SETS

FORESTRY = """\
id: forest-survey
title: 森林资源调查 Forest survey
description: Forest sub-compartments (小班) by species.
extent: [111.95, 22.86, 112.05, 22.94]
access: public
layers:
  - id: stands
    collection: sub_forest_stands
    kind: vector
    title: 小班 Forest sub-compartments
    style:
      - type: fill
        paint: {fill-color: "#2e7d32", fill-opacity: 0.5}
    legend:
      - {label: 小班 Sub-compartment, color: "#2e7d32", symbol: fill}
    popup: [stand_id, species]
    search: [stand_id]
"""
CELLS = [box(111.99 + i * 0.01, 22.89, 112.0 + i * 0.01, 22.9) for i in range(4)]


@pytest.fixture(scope="module")
def forestry(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The instance's settings with a subsystems folder holding the shipped files and a new
    ``forest-survey.yaml``."""
    folder = tmp_path_factory.mktemp("subsystems")
    for path in subsystems.SUBSYSTEMS_DIR.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    (folder / "forest-survey.yaml").write_text(FORESTRY, encoding="utf-8")
    return settings.model_copy(update={"maps": MapsSettings(subsystems_dir=folder)})


@pytest.fixture(scope="module")
def stands(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four forest stands around the demo city, as a GeoPackage."""
    frame = gpd.GeoDataFrame(
        {
            "stand_id": [f"XB{i:03d}" for i in range(4)],
            "species": ["杉木", "马尾松", "桉树", "杉木"],
        },
        geometry=CELLS,
        crs="EPSG:4490",
    )
    path = tmp_path_factory.mktemp("stands") / "stands.gpkg"
    frame.to_file(path, driver="GPKG")
    return path


@pytest.fixture(scope="module")
def live(forestry: Settings, stands: Path) -> Iterator[LiveServer]:
    url = forestry.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(path=stands, collection_id="sub_forest_stands", title="Stands",
                          subsystems=("forest-survey",), public=True)  # fmt: skip
    ingest_vector(url, source, forestry, actor="pytest")
    with LiveServer(create_app(forestry)) as server:
        yield server


def test_a_new_file_makes_a_subsystem_that_ingest_catalog_maps_and_tiles_know(
    live: LiveServer,
) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        listed = client.get("/maps/subsystems").json()["subsystems"]
        assert "forest-survey" in [s["id"] for s in listed]
        record = client.get("/collections/catalog/items/sub_forest_stands").json()
        assert "forest-survey" in record["properties"]["subsystems"]
        assert (
            client.get("/collections/catalog/items", params={"subsystems": "forest-survey"}).json()[
                "numberReturned"
            ]
            >= 1
        )
        config = client.get("/maps/forest-survey/config")
        assert config.status_code == 200
        assert "stands" in {layer["id"] for layer in config.json()["layers"]}
        page = client.get("/maps/forest-survey")
        assert page.status_code == 200 and "/maps/forest-survey/config" in page.text
        tms = TILE_MATRIX_SETS["WebMercatorQuad"]
        tile = tms.tile(112.005, 22.895, 14)
        mvt = client.get(f"/maps/forest-survey/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}")
        assert mvt.status_code == 200
        decoded = mapbox_vector_tile.decode(mvt.content)
        drawn = {f["properties"]["stand_id"] for f in decoded["sub_forest_stands"]["features"]}
        west, south, east, north = tms.bounds(tile)
        pad = (east - west) * 64 / 4096  # the tiles' buffer
        meets = box(west - pad, south - pad, east + pad, north + pad)
        assert drawn == {f"XB{i:03d}" for i, cell in enumerate(CELLS) if cell.intersects(meets)}


def test_a_subsystem_without_a_file_is_refused(forestry: Settings, stands: Path) -> None:
    url = forestry.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(path=stands, collection_id="sub_orchards", title="Orchards",
                          subsystems=("orchards",))  # fmt: skip
    with pytest.raises(InvalidInputError, match=r"unknown subsystem 'orchards'.*forest-survey"):
        ingest_vector(url, source, forestry, actor="pytest")
    shipped = forestry.model_copy(update={"maps": MapsSettings()})
    other = VectorSource(path=stands, collection_id="sub_forest2", title="F",
                         subsystems=("forest-survey",))  # fmt: skip
    with pytest.raises(InvalidInputError, match="unknown subsystem 'forest-survey'"):
        ingest_vector(url, other, shipped, actor="pytest")


def test_the_command_takes_any_subsystem_with_a_file(forestry: Settings, stands: Path) -> None:
    url = forestry.database.url.get_secret_value()  # type: ignore[union-attr]
    folder = str(forestry.maps.subsystems_dir)
    args = ("ingest", "vector", str(stands), "--collection", "sub_cli_stands")
    done = run_cli(*args, "--subsystem", "forest-survey",
                   SPATIAL_DATABASE_URL=url, SPATIAL_MAPS_SUBSYSTEMS_DIR=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    refused = run_cli(*args, "--subsystem", "orchards",
                      SPATIAL_DATABASE_URL=url, SPATIAL_MAPS_SUBSYSTEMS_DIR=folder)  # fmt: skip
    assert refused.returncode != 0
    assert "unknown subsystem 'orchards'" in refused.stdout + refused.stderr
