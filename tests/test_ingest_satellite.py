"""Imagery as satellites deliver it: NetCDF and HDF5 files read by subdataset, and images
georeferenced by RPCs only orthorectified at ingest with the platform's DEM.

Every file is built here: a CF NetCDF-4 (xarray) with a 2-time-step temperature and an
NDVI on lat/lon, a NetCDF on projected x/y with a grid_mapping, an HDF5 (h5py) with
datasets in a group that carries its own lat/lon dimension scales and one without any
coordinates; a DEM on EPSG:4546 ingested as an elevation collection, and RPC images over
the demo city (a plausible pushbroom model: rows southward, a height parallax). The
orthorectified result is compared with ``gdalwarp -rpc -to RPC_DEM=...`` of the same image.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import psycopg
import pytest
import rasterio
import xarray as xr
from rasterio.errors import NotGeoreferencedWarning
from rasterio.rpc import RPC
from rasterio.transform import from_origin
from support import LiveServer, run_cli, until

from spatial.errors import InvalidInputError
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import Settings

WHEN = dt.datetime(2024, 5, 3, 2, 30, tzinfo=dt.UTC)
LON = np.linspace(111.905, 112.095, 20)
LAT = np.linspace(22.995, 22.805, 20)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The NetCDF and HDF5 files, by name."""
    folder = tmp_path_factory.mktemp("containers")
    rng = np.random.default_rng(27)
    temperature = rng.normal(300, 5, (2, 20, 20)).astype("float32")
    ndvi = rng.uniform(-1, 1, (20, 20)).astype("float32")
    times = np.array(["2024-05-01", "2024-05-02"], dtype="datetime64[ns]")
    coords = {
        "time": times,
        "lat": ("lat", LAT, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", LON, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    cf = xr.Dataset(
        {
            "temperature": (("time", "lat", "lon"), temperature, {"units": "K"}),
            "ndvi": (("lat", "lon"), ndvi),
        },
        coords=coords,
    )
    cf.to_netcdf(folder / "city.nc", engine="h5netcdf")
    x = 600_000 + 30 * np.arange(16) + 15
    y = 2_535_000 - 30 * np.arange(12) - 15
    projected = xr.Dataset(
        {"dem": (("y", "x"), np.arange(192, dtype="float32").reshape(12, 16),
                 {"grid_mapping": "crs"}),
         "crs": ((), 0, {"crs_wkt": rasterio.crs.CRS.from_epsg(4546).to_wkt(),
                         "grid_mapping_name": "transverse_mercator"}),
         "slope": (("y", "x"), np.ones((12, 16), "float32"), {"grid_mapping": "crs"})},
        coords={"x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"}),
                "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"})},
    )  # fmt: skip
    projected.to_netcdf(folder / "gk.nc", engine="h5netcdf")
    with h5py.File(folder / "scene.h5", "w") as f:
        group = f.create_group("science")
        lat = group.create_dataset("lat", data=LAT)
        lat.attrs.update(units="degrees_north", standard_name="latitude")
        lon = group.create_dataset("lon", data=LON)
        lon.attrs.update(units="degrees_east", standard_name="longitude")
        lat.make_scale("lat")
        lon.make_scale("lon")
        for name, values in (("ndvi", ndvi), ("lst", temperature[0])):
            data = group.create_dataset(name, data=values)
            data.dims[0].attach_scale(lat)
            data.dims[1].attach_scale(lon)
        f.create_dataset("quality", data=np.zeros((5, 5), "uint8"))
    np.save(folder / "temperature.npy", temperature)
    np.save(folder / "ndvi.npy", ndvi)
    return {p.stem if p.suffix == ".npy" else p.name: p for p in folder.iterdir()}


def _item(url: str, collection: str, item: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT properties, data_path FROM rs.items WHERE collection_id = %s AND id = %s",
            (collection, item),
        ).fetchone()
    assert row is not None, f"no item {collection}/{item}"
    return {**row[0], "_data": row[1]}


def _pixels(settings: Settings, data_path: str) -> Any:
    with rasterio.open(settings.data_dir / "rasters" / data_path) as src:
        return src.read(), src.crs, src.transform


def _no_work_left(settings: Settings) -> None:
    left = sorted(p.name for p in settings.data_dir.glob(".raster-work-*"))
    assert not left, f"work folders left behind: {left}"


def test_a_netcdf_variable_with_a_time_axis_becomes_a_scene_of_bands(
    files: dict[str, Path], settings: Settings, database_url: str
) -> None:
    source = RasterSource((files["city.nc"],), "sat_nc", subdataset="temperature")
    done = ingest_raster(database_url, source, settings)
    assert done.report["items"] == ["city_temperature"]
    item = _item(database_url, "sat_nc", "city_temperature")
    assert [b["name"] for b in item["eo:bands"]] == ["temperature_time0", "temperature_time1"]
    assert item["datetime"].startswith("2024-05-01T00:00:00")
    assert (item["start_datetime"], item["end_datetime"]) == (
        "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z")  # fmt: skip
    assert item["spatial:dimensions"][1] == {
        "band": "temperature_time1", "time": "2024-05-02T00:00:00Z"}  # fmt: skip
    assert item["proj:code"] == "EPSG:4326"
    assert "subdataset temperature of city.nc" in item["processing:lineage"]
    assert "CF lat/lon coordinates" in item["processing:lineage"]
    values, crs, transform = _pixels(settings, item["_data"])
    np.testing.assert_array_equal(values, np.load(files["temperature"]))
    assert transform.c == pytest.approx(111.9) and transform.f == pytest.approx(23.0)
    ndvi = RasterSource((files["city.nc"],), "sat_nc", subdataset="ndvi", datetime=WHEN)
    ingest_raster(database_url, ndvi, settings)
    item = _item(database_url, "sat_nc", "city_ndvi")
    assert [b["name"] for b in item["eo:bands"]] == ["ndvi"]
    np.testing.assert_array_equal(_pixels(settings, item["_data"])[0][0], np.load(files["ndvi"]))
    _no_work_left(settings)


def test_projected_coordinates_and_their_grid_mapping_are_honoured(
    files: dict[str, Path], settings: Settings, database_url: str
) -> None:
    source = RasterSource((files["gk.nc"],), "sat_gk", subdataset="dem", datetime=WHEN)
    ingest_raster(database_url, source, settings)
    item = _item(database_url, "sat_gk", "gk_dem")
    assert item["proj:code"] == "EPSG:4546"
    assert item["proj:transform"][:6] == [30.0, 0.0, 600_000.0, 0.0, -30.0, 2_535_000.0]
    assert "CRS taken as" not in item["processing:lineage"]
    values = _pixels(settings, item["_data"])[0][0]
    np.testing.assert_array_equal(values, np.arange(192, dtype="float32").reshape(12, 16))


@pytest.mark.parametrize(
    ("name", "subdataset", "expected"),
    [
        ("city.nc", None, "city.nc holds 2 subdatasets; choose one with --subdataset name: "
         "ndvi (20x20, 32-bit floating-point); temperature (2x20x20, 32-bit floating-point)"),
        ("city.nc", "humidity", "city.nc has no subdataset 'humidity'; it has: ndvi (20x20"),
        ("scene.h5", None, "quality (5x5, 8-bit unsigned integer); science/lst (20x20"),
        ("scene.h5", "/quality", "subdataset quality is not georeferenced"),
        ("scene.h5", "/science/nope", "scene.h5 has no subdataset '/science/nope'"),
    ],
)  # fmt: skip
def test_a_container_refusal_names_the_subdatasets(
    files: dict[str, Path],
    settings: Settings,
    database_url: str,
    name: str,
    subdataset: str | None,
    expected: str,
) -> None:
    source = RasterSource((files[name],), "sat_refused", subdataset=subdataset, datetime=WHEN)
    with pytest.raises(InvalidInputError) as err:
        ingest_raster(database_url, source, settings)
    assert expected.lower() in str(err.value).lower()
    _no_work_left(settings)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM rs.items WHERE collection_id = 'sat_refused'"
                            ).fetchone() == (0,)  # fmt: skip


def test_subdataset_is_only_for_containers(tmp_path: Path, settings: Settings,
                                           database_url: str) -> None:  # fmt: skip
    tif = tmp_path / "plain.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=from_origin(112, 23, 0.01, 0.01)) as dst:
        dst.write(np.ones((1, 8, 8), "uint8"))  # fmt: skip
    source = RasterSource((tif,), "sat_refused", subdataset="ndvi", datetime=WHEN)
    with pytest.raises(InvalidInputError, match="plain.tif is not a NetCDF or HDF5 file"):
        ingest_raster(database_url, source, settings)


def _cli_env(settings: Settings, database_url: str) -> dict[str, str]:
    return {
        "SPATIAL_DATABASE_URL": database_url,
        "SPATIAL_ENVIRONMENT": "test",
        "SPATIAL_DATA_DIR": str(settings.data_dir),
        "SPATIAL_VAR_DIR": str(settings.var_dir),
    }


def test_the_command_reads_an_hdf5_dataset_by_its_path(
    files: dict[str, Path], settings: Settings, database_url: str
) -> None:
    env = _cli_env(settings, database_url)
    done = run_cli("ingest", "raster", str(files["scene.h5"]), "--collection", "sat_h5",
                   "--subdataset", "/science/ndvi", "--datetime", WHEN.isoformat(), **env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "loaded scene scene_ndvi" in " ".join(done.stdout.split())
    item = _item(database_url, "sat_h5", "scene_ndvi")
    np.testing.assert_array_equal(_pixels(settings, item["_data"])[0][0], np.load(files["ndvi"]))
    assert item["proj:code"] == "EPSG:4326" and item["spatial:subdataset"] == "science/ndvi"
    bad = run_cli("ingest", "raster", str(files["scene.h5"]), "--collection", "sat_h5_bad",
                  "--datetime", WHEN.isoformat(), **env)  # fmt: skip
    said = " ".join(bad.stderr.split())
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "scene.h5 holds 3 subdatasets; choose one with --subdataset NAME" in said


def _job(client: httpx.Client, location: str) -> dict[str, Any]:
    job: dict[str, Any] = until(
        lambda: client.get(location).json(),
        lambda j: j["state"] not in {"queued", "running"},
        "the ingest job to end",
    )
    return job


def test_the_upload_api_takes_a_subdataset(
    files: dict[str, Path], live_api: LiveServer, admin_auth: dict[str, str], settings: Settings
) -> None:
    with httpx.Client(base_url=live_api.url, timeout=60, headers=admin_auth) as client:
        nc = files["city.nc"].read_bytes()
        refused = client.post("/ingest/raster", data={"collection": "sat_up"},
                              files={"file": ("city.nc", nc, "application/x-netcdf")})  # fmt: skip
        assert refused.status_code == 400, refused.text
        assert "choose one with --subdataset" in refused.json()["description"]
        answer = client.post(
            "/ingest/raster", files={"file": ("city.nc", nc, "application/x-netcdf")},
            data={"collection": "sat_up", "subdataset": "temperature"},
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        job = _job(client, answer.headers["location"])
    assert job["state"] == "succeeded", job
    assert job["report"]["scenes"][0]["bands"] == ["temperature_time0", "temperature_time1"]
    _no_work_left(settings)
