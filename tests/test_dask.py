"""Heavy analytics on Dask (:mod:`spatial.distributed`): the chunked zonal statistics,
change mask and overlay on a 2-worker LocalCluster equal the single-process path, and the
processes with ``"engine": "dask"`` answer the same document as without."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from support import LiveServer

from spatial import analysis, distributed, mosaic, samples
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

BANDS = ({"name": "red", "common_name": "red"}, {"name": "nir", "common_name": "nir"})
SIZE = 1200
ZONES = 3000


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    from distributed import Client, LocalCluster  # noqa: PLC0415

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0")  # fmt: skip
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _scene(path: Path, seed: int) -> mosaic.Scene:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 4000, size=(2, SIZE, SIZE), dtype="uint16")
    data[:, :20, :20] = 0  # nodata
    profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": 2, "dtype": "uint16",
               "crs": "EPSG:4546", "transform": from_origin(400000, 2550000, 10, 10),
               "nodata": 0, "tiled": True, "blockxsize": 256, "blockysize": 256,
               "compress": "deflate"}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return mosaic.Scene("c", path.stem, dt.datetime.now(dt.UTC), path, path, BANDS)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[mosaic.Scene, mosaic.Scene]:
    folder = tmp_path_factory.mktemp("dask")
    return _scene(folder / "a.tif", 1), _scene(folder / "b.tif", 2)


def _zones(seed: int = 3) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    xy = rng.uniform([399_500, 2_537_500], [412_500, 2_550_500], size=(ZONES, 2))
    shapes = [shapely.Point(x, y).buffer(rng.uniform(5, 250), 4) for x, y in xy]
    shapes += [
        shapely.box(401_000, 2_539_000, 411_000, 2_549_000),  # a district
        shapely.box(300_000, 2_539_000, 301_000, 2_549_000),
    ]  # outside: no pixels
    ids = np.arange(len(shapes)) + 100
    return gpd.GeoDataFrame({"id": ids}, geometry=shapes, crs="EPSG:4546")


def _same(single: Any, chunked: Any, columns: list[str]) -> None:
    single, chunked = single.set_index("id"), chunked.set_index("id")
    assert list(chunked.index) == list(single.index)
    for column in columns:
        a, b = single[column].to_numpy(float), chunked[column].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), column
        ok = ~np.isnan(a)
        if column in {"min", "max", "median", "majority"}:
            assert np.array_equal(a[ok], b[ok]), column
        else:
            np.testing.assert_allclose(b[ok], a[ok], rtol=1e-9, atol=1e-12, err_msg=column)


@pytest.mark.parametrize(
    "stats", [["count", "sum", "mean", "min", "max", "stdev"], ["median", "majority", "count"]]
)
def test_chunked_zonal_statistics_equal_the_single_process(
    dask_client: Any, scenes: tuple[mosaic.Scene, mosaic.Scene], stats: list[str]
) -> None:
    item = scenes[0]
    grid = distributed.full_grid(item.data)
    zones = _zones()
    single = analysis.zonal(mosaic.index_values(item, "ndvi", grid), grid, zones, stats)
    chunked = distributed.zonal(item, "ndvi", grid, zones, stats, dask=dask_client, chunk=300)
    _same(single, chunked, stats)
    assert chunked.set_index("id").loc[zones["id"].iloc[-1], "count"] == 0


def test_chunked_change_mask_equals_the_single_process(
    dask_client: Any, scenes: tuple[mosaic.Scene, mosaic.Scene]
) -> None:
    before, after = scenes
    grid = distributed.full_grid(after.data)
    old = mosaic.index_values(before, "ndvi", grid)
    new = mosaic.index_values(after, "ndvi", grid)
    expected = np.ma.filled(old - new, 0.0) >= 0.3
    got = distributed.changed_mask(before, after, "ndvi", grid, 0.3, "decrease",
                                   dask=dask_client, chunk=256)  # fmt: skip
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_partitioned_overlay_equals_geopandas(dask_client: Any) -> None:
    rng = np.random.default_rng(5)
    cells = [
        shapely.box(x, y, x + 60, y + 60) for x in range(0, 4200, 60) for y in range(0, 3000, 60)
    ]
    parcels = gpd.GeoDataFrame({"use": rng.choice(["a", "b", "c", None], len(cells))},
                               geometry=cells, crs="EPSG:4546")  # fmt: skip
    zones = gpd.GeoDataFrame({"name": ["n", "s", "w"]}, crs="EPSG:4546", geometry=[
        shapely.box(100, 1500, 4000, 2900), shapely.box(100, 0, 4000, 1500).buffer(-30),
        shapely.Point(700, 700).buffer(650)])  # fmt: skip
    got = distributed.overlay(parcels.geometry, parcels["use"], zones.geometry, zones["name"],
                              geographic=False, srid=4546, dask=dask_client,
                              partition=500)  # fmt: skip
    single = distributed.overlay(parcels.geometry, parcels["use"], zones.geometry, zones["name"],
                                 geographic=False, srid=4546, partition=10**9)  # fmt: skip
    hits = gpd.sjoin(parcels, zones, predicate="intersects")
    right = zones.geometry.to_numpy()[hits["index_right"].to_numpy()]
    hits["area"] = shapely.area(shapely.intersection(hits.geometry.to_numpy(), right))
    want = hits.groupby(["name", "use"], dropna=False)["area"].agg(["size", "sum"])
    got = got.set_index(["zone", "group"]).sort_index()
    assert len(got) == len(want) == len(single)
    for (zone, use), row in want.iterrows():
        mine = got.loc[(zone, use)]
        assert int(mine["count"]) == row["size"]
        assert mine["area"] == pytest.approx(row["sum"], rel=1e-9)


def test_tasks_run_in_the_callers_gdal_options(dask_client: Any) -> None:
    """The raster store's GDAL options (an S3 endpoint) reach the workers reading it."""

    def seen() -> dict[str, Any]:
        return dict(rasterio.env.getenv()) if rasterio.env.hasenv() else {}

    with rasterio.Env(AWS_S3_ENDPOINT="minio.test:9000", AWS_VIRTUAL_HOSTING="FALSE"):
        [inside] = distributed._run([()], seen, dask_client)
    [outside] = distributed._run([()], seen, dask_client)
    assert inside["AWS_S3_ENDPOINT"] == "minio.test:9000"
    assert inside["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert "AWS_S3_ENDPOINT" not in outside


@pytest.fixture(scope="module")
def api(
    live_api: LiveServer, settings: Settings, tmp_path_factory: pytest.TempPathFactory,
    dask_client: Any,
) -> Iterator[httpx.Client]:  # fmt: skip
    folder = tmp_path_factory.mktemp("daskapi")
    samples.build(folder)
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    for path, cid, key in (
        (folder / "parcels_2025.zip", "dk_parcels", "DKBM"),
        (folder / "districts.geojson", "dk_districts", "code"),
    ):
        ingest_vector(url, VectorSource(path, cid, cid, key=key, public=True), settings)
    distributed.use(dask_client)  # the server (a thread here) runs on the test's cluster
    try:
        with httpx.Client(base_url=live_api.url, timeout=180) as client:
            deadline = time.monotonic() + 10
            while client.get("/collections/dk_districts").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            yield client
    finally:
        distributed.use(None)


@pytest.mark.parametrize(
    ("process", "inputs", "rows"),
    [
        ("area-by-zone", {"collection": "dk_parcels", "zones": "dk_districts",
                          "zone_property": "name"}, "zones"),
        ("intersect-summarise", {"collection": "dk_parcels", "group_by": "dlmc",
                                 "geometry": shapely.geometry.mapping(
                                     shapely.box(112.03, 22.90, 112.06, 22.93))}, "summary"),
    ],
)  # fmt: skip
def test_the_overlay_processes_answer_the_same_on_dask(  # noqa: PLR0917 - parameters
    api: httpx.Client, dask_client: Any, monkeypatch: pytest.MonkeyPatch, process: str,
    inputs: dict[str, Any], rows: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("SPATIAL_DASK_PARTITION", "100")  # several partitions
    ran: list[Any] = []
    run = distributed._run  # counts the tasks sent to the cluster

    def counted(tasks: Any, fn: Any, dask: Any) -> list[Any]:
        ran.append((len(tasks), dask))
        return run(tasks, fn, dask)

    monkeypatch.setattr(distributed, "_run", counted)
    answers = [
        api.post(f"/processes/{process}/execution", json={"inputs": {**inputs, "engine": e}})
        for e in ("single", "dask")
    ]
    assert all(a.status_code == 200 for a in answers), answers[1].text
    assert len(ran) == 1 and ran[0][0] > 1 and ran[0][1] is dask_client, ran
    single, chunked = (a.json()[rows] for a in answers)
    assert len(single) == len(chunked) > 1
    for a, b in zip(single, chunked, strict=True):
        assert {k: v for k, v in a.items() if k != "area_m2"} == {
            k: v for k, v in b.items() if k != "area_m2"
        }
        assert b["area_m2"] == pytest.approx(a["area_m2"], rel=1e-9, abs=2e-3)
    bad = api.post(f"/processes/{process}/execution", json={"inputs": {**inputs, "engine": "x"}})
    assert bad.status_code == 400
