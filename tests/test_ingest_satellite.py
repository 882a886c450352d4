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
from rasterio.windows import Window
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
    (folder / "modis.hdf").write_bytes(b"\x0e\x03\x13\x01" + bytes(124))  # HDF4's signature
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
    values, _, transform = _pixels(settings, item["_data"])
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
        ("city.nc", None, ("city.nc holds 2 subdatasets; choose one with --subdataset name: "
         "ndvi (20x20, 32-bit floating-point); temperature (2x20x20, 32-bit floating-point)")),
        ("city.nc", "humidity", "city.nc has no subdataset 'humidity'; it has: ndvi (20x20"),
        ("scene.h5", None, "quality (5x5, 8-bit unsigned integer); science/lst (20x20"),
        ("scene.h5", "/quality", "subdataset quality is not georeferenced"),
        ("scene.h5", "/science/nope", "scene.h5 has no subdataset '/science/nope'"),
        ("modis.hdf", "ndvi", "hdf4 files (hdf-eos 2, e.g. modis) cannot be read here"),
    ],
)  # fmt: skip
def test_a_container_refusal_names_the_subdatasets(
    files: dict[str, Path],
    settings: Settings,
    database_url: str,
    *,
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
    with rasterio.open(
        tif,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(112, 23, 0.01, 0.01),
    ) as dst:
        dst.write(np.ones((1, 8, 8), "uint8"))  # fmt: skip
    source = RasterSource((tif,), "sat_refused", subdataset="ndvi", datetime=WHEN)
    with pytest.raises(InvalidInputError, match=r"plain\.tif is not a NetCDF or HDF5 file"):
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
                   "--subdataset", "/science/ndvi", "--datetime", WHEN.isoformat(),
                   **env)  # fmt: skip
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


# -- RPC scenes ----------------------------------------------------------------------------

CENTRE = (112.0, 22.9)
"""Where the RPC images look: the demo city."""


def _rpc(size: int, *, lon: float = CENTRE[0], lat: float = CENTRE[1],
         corrupt: bool = False) -> RPC:  # fmt: skip
    """A pushbroom-like model: rows run south, columns east with a little skew, and a
    height parallax along the rows (RPC00B term order: 1 L P H LP LH PH ...)."""
    line, samp, den = [0.0] * 20, [0.0] * 20, [0.0] * 20
    line[2], line[3] = -1.0, 0.02
    samp[1], samp[4] = 1.0, 0.01
    den[0] = 0.0 if corrupt else 1.0
    return RPC(height_off=50.0, height_scale=500.0, lat_off=lat, lat_scale=0.01,
               line_den_coeff=den, line_num_coeff=line, line_off=size / 2,
               line_scale=size / 2, long_off=lon, long_scale=0.01, samp_den_coeff=den,
               samp_num_coeff=samp, samp_off=size / 2, samp_scale=size / 2)  # fmt: skip


def _rpc_scene(path: Path, rpc: RPC, *, size: int = 256, sidecar: bool = False) -> Path:
    """A two-band uint16 image georeferenced by ``rpc`` only (in its tags, or in an
    ``.RPB`` sidecar as Gaofen products are delivered): squares with sharp edges, so that
    a pixel misplaced shows."""
    rows, cols = np.mgrid[0:size, 0:size]
    pattern = ((rows // 16 + cols // 16) % 2 * 800 + rows + cols + 1).astype("uint16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            path, "w", driver="GTiff", width=size, height=size, count=2, dtype="uint16",
            rpcs=rpc, tiled=True, blockxsize=128, blockysize=128,
            **({"RPB": "YES"} if sidecar else {}),
        ) as dst:  # fmt: skip
            dst.write(np.stack([pattern, pattern[::-1]]))
            dst.update_tags(ACQUISITION_DATETIME="2024-05-03T02:30:00Z")
    return path


def _dem_file(path: Path) -> Path:
    """Heights on EPSG:4546 (the demo city's Gauss-Krüger zone) around the scenes: 70 x 70
    cells of 50 m, a hill of 300 m in the middle."""
    x0, y0 = rasterio.warp.transform("EPSG:4326", "EPSG:4546", [CENTRE[0]], [CENTRE[1]])
    rows, cols = np.mgrid[0:70, 0:70]
    hill = 20 + 300 * np.exp(-((rows - 35) ** 2 + (cols - 30) ** 2) / (2 * 15**2))
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=70,
        height=70,
        count=1,
        dtype="float32",
        crs="EPSG:4546",
        nodata=-9999,
        transform=from_origin(x0[0] - 1750, y0[0] + 1750, 50, 50),
    ) as dst:
        dst.write(hill.astype("float32")[None])  # fmt: skip
    return path


@pytest.fixture(scope="module")
def dem(tmp_path_factory: pytest.TempPathFactory, settings: Settings, database_url: str) -> str:
    """An elevation collection ``sat_dem`` (the path of its native COG)."""
    folder = tmp_path_factory.mktemp("dem")
    source = RasterSource((_dem_file(folder / "hill.tif"),), "sat_dem", datetime=WHEN,
                          kind="elevation")  # fmt: skip
    ingest_raster(database_url, source, settings)
    return str(settings.data_dir / "rasters" / _item(database_url, "sat_dem", "hill")["_data"])


@pytest.fixture(scope="module")
def dem_tiles(tmp_path_factory: pytest.TempPathFactory, settings: Settings,
              database_url: str) -> str:  # fmt: skip
    """The same heights as two items, ``sat_dem_tiles`` ``west`` and ``east``, each
    covering half of the scenes (they are read as one mosaic)."""
    folder = tmp_path_factory.mktemp("dem_tiles")
    with rasterio.open(_dem_file(folder / "hill.tif")) as src:
        for name, window in (("west", Window(0, 0, 35, 70)), ("east", Window(35, 0, 35, 70))):
            profile = {**src.profile, "width": 35, "transform": src.window_transform(window)}
            with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
    source = RasterSource((folder / "west.tif", folder / "east.tif"), "sat_dem_tiles",
                          datetime=WHEN, kind="elevation")  # fmt: skip
    ingest_raster(database_url, source, settings)
    return "sat_dem_tiles"


def _gdalwarp(scene: Path, dem_path: str, mean: float, target: Path) -> Path:
    """The reference: GDAL's own command on the same image, DEM and choices (with a DEM,
    gdalwarp's default error threshold is 0: the exact transformer, as the ingest's)."""
    subprocess.run(
        ["gdalwarp", "-q", "-rpc", "-to", f"RPC_DEM={dem_path}",
         "-to", "RPC_DEM_INTERPOLATION=bilinear", "-to", f"RPC_DEM_MISSING_VALUE={mean!r}",
         "-t_srs", "EPSG:4546", "-r", "bilinear", "-dstnodata", "0",
         str(scene), str(target)],
        check=True,
    )  # fmt: skip
    return target


@pytest.mark.skipif(shutil.which("gdalwarp") is None, reason="gdalwarp is not installed")
@pytest.mark.parametrize(
    ("heights", "used"), [("sat_dem", "sat_dem/hill"), ("sat_dem_tiles", "sat_dem_tiles/east+west")]
)
def test_an_rpc_scene_is_orthorectified_as_gdalwarp_does(
    tmp_path: Path, dem: str, dem_tiles: str, settings: Settings, *, database_url: str,
    heights: str, used: str,
) -> None:  # fmt: skip
    rpc = _rpc(256)
    scene = _rpc_scene(tmp_path / "GF2_PMS1_E112.0_N22.9.tiff", rpc)
    source = RasterSource((scene,), f"sat_ortho_{heights}", dem=heights)
    assert ingest_raster(database_url, source, settings).report["items"] == [
        "GF2_PMS1_E112.0_N22.9"]  # fmt: skip
    item = _item(database_url, f"sat_ortho_{heights}", "GF2_PMS1_E112.0_N22.9")
    assert item["proj:code"] == "EPSG:4546"  # the DEM's projected CRS
    assert item["processing:lineage"].startswith(f"orthorectified with RPCs and DEM {used}")
    assert item["spatial:dem"] == used
    assert item["spatial:rpc"]["line_num_coeff"] == rpc.line_num_coeff
    assert item["spatial:rpc"]["lat_off"] == rpc.lat_off
    mean = _item(database_url, "sat_dem", "hill")["raster:bands"][0]["statistics"]["mean"]
    values, crs, transform = _pixels(settings, item["_data"])
    with rasterio.open(_gdalwarp(scene, dem, mean, tmp_path / "gdalwarp.tif")) as ref:
        assert crs == ref.crs and values.shape == (2, ref.height, ref.width)
        assert transform.almost_equals(ref.transform, precision=1e-6)
        expected = ref.read()
    same = np.mean(values == expected)
    assert same > 0.999, f"only {same:.4f} of the pixels are gdalwarp's"
    _no_work_left(settings)


def test_a_gaofen_upload_with_an_rpb_sidecar_is_orthorectified(
    tmp_path: Path, dem: str, live_api: LiveServer, admin_auth: dict[str, str], *,
    settings: Settings, database_url: str,
) -> None:  # fmt: skip
    scene = _rpc_scene(tmp_path / "GF1_WFV1_sidecar.tiff", _rpc(128), size=128, sidecar=True)
    rpb = scene.with_suffix(".RPB")
    assert rpb.is_file()
    parts = [("file", (p.name, p.read_bytes(), "application/octet-stream")) for p in (scene, rpb)]
    with httpx.Client(base_url=live_api.url, timeout=60, headers=admin_auth) as client:
        answer = client.post("/ingest/raster", files=parts,
                             data={"collection": "sat_ortho_up", "dem": "sat_dem"})  # fmt: skip
        assert answer.status_code == 202, answer.text
        job = _job(client, answer.headers["location"])
        assert job["state"] == "succeeded", job
        item = client.get("/stac/collections/sat_ortho_up/items/GF1_WFV1_sidecar").json()
    assert item["properties"]["proj:code"] == "EPSG:4546", item
    assert "orthorectified with RPCs" in item["properties"]["processing:lineage"]
    native = _item(database_url, "sat_ortho_up", "GF1_WFV1_sidecar")["_data"]
    with rasterio.open(settings.data_dir / "rasters" / native) as src:  # the RPCs left behind
        assert src.rpcs is None and src.crs == "EPSG:4546"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("corrupt", "the rpc coefficients are corrupt (a zero scale or denominator)"),
        ("far", "lies outside the dem sat_dem"),
        ("edge", "of the scene (lon/lat"),
        ("unknown", "--dem sat_nowhere: not an elevation collection of the catalog"),
    ],
)
def test_an_rpc_scene_refusal_says_what_is_wrong(
    tmp_path: Path, dem: str, settings: Settings, *, database_url: str, case: str, expected: str
) -> None:
    rpc = {"corrupt": _rpc(64, corrupt=True), "far": _rpc(64, lat=30.0),
           "edge": _rpc(64, lat=CENTRE[1] + 0.012)}.get(case, _rpc(64))  # fmt: skip
    scene = _rpc_scene(tmp_path / f"{case}.tif", rpc, size=64)
    source = RasterSource((scene,), "sat_ortho_refused",
                          dem="sat_nowhere" if case == "unknown" else "sat_dem")  # fmt: skip
    with pytest.raises(InvalidInputError) as err:
        ingest_raster(database_url, source, settings)
    assert expected in str(err.value).lower(), str(err.value)
    _no_work_left(settings)


def test_without_an_elevation_collection_the_refusal_says_how_to_make_one(
    tmp_path: Path, empty_database: str, settings: Settings
) -> None:
    from spatial.db import migrate  # noqa: PLC0415 - only this test migrates its own database

    migrate.upgrade(empty_database)
    scene = _rpc_scene(tmp_path / "lonely.tif", _rpc(64), size=64)
    with pytest.raises(InvalidInputError) as err:
        ingest_raster(empty_database, RasterSource((scene,), "sat_lonely"), settings)
    message = " ".join(str(err.value).split())
    assert "the catalog has no elevation collection" in message
    assert "--kind elevation" in message and "--dem" in message
