"""The OpenAPI document: valid, complete for the OGC routes, and fuzzed by schemathesis
against the live server, every operation anonymously and as an admin: no 5xx, and every
response (status, media type, body) as the document declares it."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from support import LiveServer, wait_for_collection

from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


def _ingest(settings: Settings, folder: Path, collection_id: str, *, public: bool) -> None:
    """A small layer with text, numeric and date properties."""
    import geopandas as gpd  # noqa: PLC0415
    import shapely  # noqa: PLC0415

    path = folder / f"{collection_id}.gpkg"
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
    source = VectorSource(
        path=path, collection_id=collection_id, title=collection_id, public=public
    )
    ingest_vector(url, source, settings)


def _ingest_scene(settings: Settings, folder: Path, collection_id: str) -> str:
    """A 64 x 64 four-band scene ``noise``; the ingest job's id."""
    import numpy as np  # noqa: PLC0415
    import rasterio  # noqa: PLC0415
    from rasterio.transform import from_origin  # noqa: PLC0415

    from spatial.ingest.raster import RasterSource, ingest_raster  # noqa: PLC0415

    path = folder / "noise.tif"
    data = np.random.default_rng(11).integers(0, 10_000, (4, 64, 64), dtype=np.uint16)
    profile = {
        "driver": "GTiff",
        "width": 64,
        "height": 64,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32649",
        "transform": from_origin(500_000, 2_540_000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    when = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    source = RasterSource(
        paths=(path,), collection_id=collection_id, item_id="noise", datetime=when, public=False
    )
    return ingest_raster(url, source, settings).job_id


@pytest.fixture(scope="module")
def layer(
    live_api: LiveServer, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The ``zoo`` layer in the live API's catalog."""
    _ingest(settings, tmp_path_factory.mktemp("openapi"), "zoo", public=True)
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        wait_for_collection(client, "zoo")  # the running API follows the catalog shortly
    return live_api.url


@pytest.fixture(scope="module")
def throwaway(
    live_api: LiveServer,
    settings: Settings,
    admin_auth: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Objects made for the admin's fuzz run, which may change or delete them: a layer, a
    scene, a user with a key, a grant, a device, a webhook, a process job (the demo's and
    the other modules' objects are never named in a path). The layer and the scene are
    private: other modules' anonymous listings do not see them."""
    folder = tmp_path_factory.mktemp("openapi-fuzzed")
    _ingest(settings, folder, "fuzzed", public=False)
    ingest_job = _ingest_scene(settings, folder, "fuzzed_scenes")
    with httpx.Client(base_url=live_api.url, headers=admin_auth, timeout=30) as client:
        for made_here in ("fuzzed", "fuzzed_scenes"):  # two commits: maybe two reloads
            wait_for_collection(client, made_here)

        def made(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(path, json=body)
            assert response.status_code == 201, response.text
            answer: dict[str, Any] = response.json()
            return answer

        made("/admin/users", {"username": "fuzzed_user", "roles": ["viewer"]})
        key = made("/admin/users/fuzzed_user/keys", {"name": "fuzzed"})
        grant = made("/admin/grants", {"collection": "fuzzed", "grantee": "user:fuzzed_user"})
        made("/gps/devices", {"id": "fuzzed-device"})
        webhook = made("/gps/webhooks", {"url": "http://127.0.0.1:9/fuzzed"})
        job = made_job(client)
    return {
        "path.collection_id": "fuzzed",
        "path.feature_id": 1,
        "path.process_id": "nearest",
        "path.username": "fuzzed_user",
        "path.prefix": key["prefix"],
        "path.grant_id": grant["id"],
        "path.device_id": "fuzzed-device",
        "path.webhook_id": webhook["id"],
        "path.tms_id": "WebMercatorQuad",
        "path.subsystem": "emergency",
        "path.job_id": job,
        "operations": [
            # Imagery operations name the scene; ingest jobs the scene's ingest.
            {"include-path-regex": "coverage|/map/tiles|^/stac/",
             "parameters": {"path.collection_id": "fuzzed_scenes", "path.item_id": "noise",
                            "path.key": "data"}},
            {"include-path-regex": "^/ingest/jobs/", "parameters": {"path.job_id": ingest_job}},
        ],
    }  # fmt: skip


def made_job(client: httpx.Client) -> str:
    """A process job (an asynchronous buffer of a point)."""
    inputs = {"geometry": {"type": "Point", "coordinates": [112, 23]}, "distance": 10}
    response = client.post(
        "/processes/buffer/execution",
        json={"inputs": inputs},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 201, response.text
    job: str = response.json()["jobID"]
    return job


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
    # Every error a route may answer is declared, with the OGC exception body.
    assert {"400", "401", "403", "404", "429", "503"} <= items["responses"].keys()
    assert "application/geo+json" in items["responses"]["200"]["content"]
    upload = doc["paths"]["/ingest/vector"]["post"]["responses"]
    assert {"413", "415", "507"} <= upload.keys()
    assert upload["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Exception"
    }


def _pairs(values: dict[str, Any], separator: str) -> str:
    """TOML ``key = value`` pairs (JSON strings and numbers are TOML too)."""
    return separator.join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items())


def _fuzz(
    url: str, folder: Path, parameters: dict[str, Any], *options: str
) -> subprocess.CompletedProcess[str]:
    config = folder / "schemathesis.toml"
    pins = {k: v for k, v in parameters.items() if k != "operations"}
    text = "[parameters]\n" + _pairs(pins, "\n") + "\n"
    for operation in parameters.get("operations", []):
        regex = json.dumps(operation["include-path-regex"])
        text += f"[[operations]]\ninclude-path-regex = {regex}\n"
        text += f"parameters = {{ {_pairs(operation['parameters'], ', ')} }}\n"
    config.write_text(text)
    return subprocess.run(
        [str(Path(sys.executable).parent / "st"), "--config-file", str(config), "run",
         f"{url}/api", "--checks", CHECKS, "--phases", "coverage,fuzzing",
         "--max-examples", "25", "--generation-deterministic", "--request-timeout", "20",
         "--continue-on-failure", "--no-color", *options],
        capture_output=True, text=True, check=False, timeout=600, cwd=folder,
    )  # fmt: skip


def test_schemathesis_anonymous(live_api: LiveServer, layer: str, tmp_path: Path) -> None:
    """Every operation, anonymously: collection ids pinned to the zoo layer and the process
    to ``nearest`` so requests get past 404 (writes answer 401 without a key)."""
    done = _fuzz(
        live_api.url,
        tmp_path,
        {"path.collection_id": "zoo", "path.process_id": "nearest",
         "path.tms_id": "WebMercatorQuad", "path.subsystem": "emergency"},
    )  # fmt: skip
    summary = done.stdout[-4000:]
    assert done.returncode == 0, done.stdout[-20000:]
    assert "Server error" not in done.stdout and " passed" in summary


def test_schemathesis_as_an_admin(
    live_api: LiveServer, throwaway: dict[str, Any], admin_auth: dict[str, str], tmp_path: Path
) -> None:
    """Every operation with an admin's key, path parameters pinned to objects made for
    this run (feature edits, deletions and revocations land on them)."""
    headers = [f"--header={name}: {value}" for name, value in admin_auth.items()]
    done = _fuzz(live_api.url, tmp_path, throwaway, *headers)
    summary = done.stdout[-4000:]
    assert done.returncode == 0, done.stdout[-20000:]
    assert "Server error" not in done.stdout and " passed" in summary
