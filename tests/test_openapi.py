"""The OpenAPI document: valid, complete for the OGC routes, and fuzzed by schemathesis
against the live server without a single 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from support import LiveServer

from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings


@pytest.fixture(scope="module")
def layer(
    live_api: LiveServer, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A small layer with text, numeric and date properties, in the live API's catalog."""
    import geopandas as gpd  # noqa: PLC0415
    import shapely  # noqa: PLC0415

    path = tmp_path_factory.mktemp("openapi") / "zoo.gpkg"
    gpd.GeoDataFrame(
        {
            "name": ["甲", "乙", "丙"],
            "area": [1.5, 20.0, 300.25],
            "built": ["2020-01-01", "2021-06-30", None],
        },
        geometry=[shapely.box(112 + i / 100, 23, 112.005 + i / 100, 23.005) for i in range(3)],
        crs="EPSG:4490",
    ).astype({"built": "datetime64[ms]"}).to_file(path)
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    ingest_vector(
        url, VectorSource(path=path, collection_id="zoo", title="zoo", public=True), settings
    )
    return live_api.url


def test_the_document_is_valid_openapi(live_api: LiveServer, layer: str) -> None:
    doc = httpx.get(f"{live_api.url}/api").json()
    validate(doc)
    items = doc["paths"]["/collections/{collection_id}/items"]["get"]
    names = {p["name"] for p in items["parameters"]}
    assert {
        "bbox",
        "bbox-crs",
        "limit",
        "offset",
        "crs",
        "filter",
        "filter-lang",
        "sortby",
    } <= names
    assert (
        "/conformance" in doc["paths"] and "/collections/{collection_id}/queryables" in doc["paths"]
    )


@pytest.mark.parametrize(
    ("name", "selection"),
    [
        ("every GET", ["--include-method", "GET"]),
        ("process execution", ["--include-method", "POST", "--include-path-regex", "execution"]),
    ],
)
def test_schemathesis_finds_no_server_error(
    live_api: LiveServer, layer: str, tmp_path: Path, name: str, selection: list[str]
) -> None:
    """Operations of the document fuzzed (and their boundary values) by the schemathesis
    CLI; collection ids are pinned to the zoo layer and the process to ``nearest``, so
    requests get past 404 (uploads and feature edits have their own tests)."""
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"path.collection_id" = "zoo"\n"path.process_id" = "nearest"\n')
    done = subprocess.run(
        [str(Path(sys.executable).parent / "st"), "--config-file", str(config), "run",
         f"{live_api.url}/api", "--checks", "not_a_server_error", *selection,
         "--phases", "coverage,fuzzing", "--max-examples", "40", "--generation-deterministic",
         "--no-color"],
        capture_output=True, text=True, check=False, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    summary = done.stdout[-3000:]
    assert done.returncode == 0, f"{name}: {summary}"
    assert "Server error" not in done.stdout and " passed" in summary
