"""The raster store on an S3-compatible object store (a moto server on loopback): ingest
uploads the COGs, tiles, coverages, processes and downloads read them by range requests,
and they match the same scenes ingested into a local store."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import morecantile
import numpy as np
import pytest
import rasterio
from moto.server import ThreadedMotoServer
from pydantic import SecretStr
from rastercases import decode_image
from rasterio.transform import from_origin
from sqlalchemy import text
from support import LiveServer, create_database, drop_database

from api.app import create_app
from spatial import backup, rasterstore
from spatial.catalog import delete_collection
from spatial.db import engine, migrate
from spatial.errors import ConflictError, InvalidInputError
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

BUCKET = "spatial-rasters-test"
WHEN = "2025-06-01T02:30:00+00:00"
BANDS = ("red", "green", "blue", "nir")
ORIGIN = (600_000.0, 2_540_000.0)  # EPSG:32649, about 112.0E 22.96N
CRS = "EPSG:32649"
BOX = (600_500.0, 2_536_000.0, 602_500.0, 2_538_500.0)


def _write(path: Path, data: np.ndarray, names: tuple[str, ...]) -> Path:
    profile = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
        "count": data.shape[0], "dtype": "uint16", "crs": CRS, "nodata": 0,
        "transform": from_origin(*ORIGIN, 10, 10),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("s3src")
    rng = np.random.default_rng(12)
    data = rng.integers(1, 4000, size=(4, 512, 512), dtype="uint16")
    data[3, :, :200] += 3000  # vegetation on the west
    (out / "multi").mkdir()
    _write(out / "multi" / "red.tif", data[:1], ("red",))
    _write(out / "multi" / "nir.tif", data[3:], ("nir",))
    (out / "broken").mkdir()
    _write(out / "broken" / "red.tif", data[:1], ("red",))
    (out / "broken" / "nir.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    return {"single": _write(out / "scene.tif", data, BANDS), "multi": out / "multi",
            "broken": out / "broken", "data": out}  # fmt: skip


@pytest.fixture(scope="module")
def s3(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings
) -> Iterator[tuple[Any, Settings]]:
    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1"
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    var = tmp_path_factory.mktemp("s3var")
    s3_settings = settings.model_copy(update={
        "var_dir": var, "data_dir": var / "data",
        "raster_store": f"s3://{BUCKET}/rasters", "s3_endpoint_url": endpoint,
    })  # fmt: skip
    try:
        yield client, s3_settings
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _keys(client: Any, prefix: str) -> list[str]:
    found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in found)


def _ingest(settings: Settings, path: Path, cid: str, **options: Any) -> Any:
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    import datetime as dt  # noqa: PLC0415

    source = RasterSource((path,), cid, public=True, datetime=dt.datetime.fromisoformat(WHEN),
                          **options)  # fmt: skip
    return ingest_raster(url, source, settings)


@pytest.fixture(scope="module")
def apis(
    s3: tuple[Any, Settings], settings: Settings, sources: dict[str, Path]
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    _client, s3_settings = s3
    for cfg, suffix in ((settings, "local"), (s3_settings, "s3")):
        _ingest(cfg, sources["single"], f"s3t_single_{suffix}", item_id="scene",
                bands=BANDS)  # fmt: skip
        _ingest(cfg, sources["multi"], f"s3t_multi_{suffix}", item_id="multi")
    with (
        LiveServer(create_app(settings)) as local_server,
        LiveServer(create_app(s3_settings)) as s3_server,
        httpx.Client(base_url=local_server.url, timeout=120) as local,
        httpx.Client(base_url=s3_server.url, timeout=120) as remote,
    ):
        yield local, remote
    # Other modules back up the session database's local store: forget the bucket's items.
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    with engine(url) as eng, eng.begin() as conn:
        ids = [r[0] for r in conn.execute(
            text("SELECT DISTINCT collection_id FROM rs.items WHERE collection_id LIKE 's3t%'")
        )]  # fmt: skip
        conn.execute(text("DELETE FROM rs.items WHERE collection_id = ANY(:ids)"), {"ids": ids})
        for cid in ids:
            delete_collection(conn, cid)


def _get(client: httpx.Client, path: str, **params: str) -> httpx.Response:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response


def test_the_cogs_are_in_the_bucket_and_not_on_disk(s3: tuple[Any, Settings], apis: Any) -> None:
    client, s3_settings = s3
    assert not (s3_settings.data_dir / "rasters").exists()
    assert [p.name for p in s3_settings.data_dir.iterdir()] == []  # the staging folder went
    single = _keys(client, "rasters/s3t_single_s3/scene/")
    assert [k.rsplit("/", 1)[1] for k in single] == ["scene.tif", "scene.web.tif"]
    multi = _keys(client, "rasters/s3t_multi_s3/multi/")
    assert {k.rsplit("/", 1)[1] for k in multi} == {
        "multi.vrt",
        "multi.web.tif",
        "nir.tif",
        "red.tif",
    }
    version = single[0].split("/")[3]
    assert single[0] == f"rasters/s3t_single_s3/scene/{version}/scene.tif"


@pytest.mark.parametrize("cid", ["s3t_single", "s3t_multi"])
def test_map_tiles_and_coverages_equal_the_local_stores(apis: Any, cid: str) -> None:
    local, remote = apis
    lon, lat = 112.0 + 0.012, 22.945
    z = 14
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    bands = "red" if cid == "s3t_multi" else "red,green,blue"
    path = f"/collections/{{}}/map/tiles/WebMercatorQuad/{z}/{tile.y}/{tile.x}"
    a = _get(local, path.format(f"{cid}_local"), bands=bands)
    b = _get(remote, path.format(f"{cid}_s3"), bands=bands)
    np.testing.assert_array_equal(decode_image(a.content)[0], decode_image(b.content)[0])
    assert decode_image(b.content)[0][-1].any()  # some opaque pixels
    params = {"bbox": ",".join(map(str, BOX)), "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/32649",
              "properties": "red,nir"}  # fmt: skip
    a = _get(local, f"/collections/{cid}_local/coverage", **params)
    b = _get(remote, f"/collections/{cid}_s3/coverage", **params)
    left, right = decode_image(a.content)[0], decode_image(b.content)[0]
    assert left.shape == (2, 250, 200)
    np.testing.assert_array_equal(left, right)


class _Requests(logging.Handler):
    """The S3 server's request log lines (werkzeug's)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_tiles_read_the_cogs_by_range_requests(apis: Any) -> None:
    _local, remote = apis
    seen = _Requests()
    log = logging.getLogger("werkzeug")
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(seen)
    try:
        tile = morecantile.tms.get("WebMercatorQuad").tile(112.015, 22.94, 16)
        path = f"/collections/s3t_single_s3/coverage/tiles/WebMercatorQuad/16/{tile.y}/{tile.x}"
        _get(remote, path, bands="red,nir")
    finally:
        log.removeHandler(seen)
        log.setLevel(level)
    reads = [line for line in seen.lines if "GET /" + BUCKET + "/rasters/s3t_single_s3/" in line]
    assert reads, seen.lines
    assert all('" 206 ' in line for line in reads), reads  # never the whole file


def test_zonal_statistics_are_the_same(apis: Any) -> None:
    local, remote = apis
    polygon = {"type": "Polygon", "coordinates": [[
        [112.004, 22.93], [112.02, 22.93], [112.02, 22.945], [112.004, 22.945], [112.004, 22.93],
    ]]}  # fmt: skip
    answers = []
    for client, suffix in ((local, "local"), (remote, "s3")):
        inputs = {"raster": f"s3t_single_{suffix}", "item": "scene", "geometry": polygon,
                  "expression": "(nir-red)/(nir+red)",
                  "stats": ["mean", "count", "max"]}  # fmt: skip
        response = client.post("/processes/zonal-statistics/execution", json={"inputs": inputs})
        assert response.status_code == 200, response.text
        answers.append(response.json()["zones"])
    assert answers[0] == answers[1]
    assert answers[0][0]["count"] > 1000


def test_a_stac_asset_is_streamed_by_ranges(apis: Any, sources: dict[str, Path]) -> None:
    _local, remote = apis
    path = "/stac/collections/s3t_single_s3/items/scene/assets/data"
    whole = remote.get(path)
    assert whole.status_code == 200, whole.text
    part = remote.get(path, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == whole.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
    assert remote.head(path).headers["content-length"] == str(len(whole.content))
    with rasterio.MemoryFile(whole.content) as memory, memory.open() as src:
        assert src.count == 4 and src.descriptions == BANDS


def test_reingest_replaces_the_version_and_deletes_the_old_objects(
    s3: tuple[Any, Settings], apis: Any, sources: dict[str, Path]
) -> None:
    client, s3_settings = s3
    before = _keys(client, "rasters/s3t_multi_s3/multi/")
    _ingest(s3_settings, sources["multi"], "s3t_multi_s3", item_id="multi")
    after = _keys(client, "rasters/s3t_multi_s3/multi/")
    assert len(after) == len(before) == 4
    assert not set(before) & set(after)
    _local, remote = apis
    params = {
        "bbox": ",".join(map(str, BOX)),
        "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/32649",
    }
    assert remote.get("/collections/s3t_multi_s3/coverage", params=params).status_code == 200


def test_a_failing_ingest_leaves_no_objects(
    s3: tuple[Any, Settings], apis: Any, sources: dict[str, Path]
) -> None:
    client, s3_settings = s3
    with pytest.raises(InvalidInputError):
        _ingest(s3_settings, sources["broken"], "s3t_broken", item_id="broken")
    assert _keys(client, "rasters/s3t_broken/") == []
    # Failing in the catalog transaction, after the upload: a vector collection's id.
    points = sources["data"] / "points.geojson"
    points.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                      '"properties": {"n": 1}, "geometry": {"type": "Point", '
                      '"coordinates": [112.01, 22.94]}}]}')  # fmt: skip
    url = s3_settings.database.url.get_secret_value()  # type: ignore[union-attr]
    ingest_vector(url, VectorSource(points, "s3t_single_s3_vector", "points"), s3_settings)
    with pytest.raises(InvalidInputError, match="not rasters"):
        _ingest(s3_settings, sources["single"], "s3t_single_s3_vector", item_id="x")
    assert _keys(client, "rasters/s3t_single_s3_vector/") == []
    assert [p.name for p in s3_settings.data_dir.iterdir()] == []


def test_backup_and_restore_an_object_store(
    s3: tuple[Any, Settings], sources: dict[str, Path], server_url: str, empty_database: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    client, s3_settings = s3
    own = create_database(server_url)
    try:
        migrate.upgrade(own)
        source = _with(s3_settings, own, "backup-src", tmp_path / "src")
        _ingest(source, sources["single"], "s3b_single", item_id="scene", bands=BANDS)
        _ingest(source, sources["multi"], "s3b_multi", item_id="multi")
        manifest = backup.backup(own, source, tmp_path / "out.tar")
    finally:
        drop_database(server_url, own)
    assert len(manifest.files) == 6  # scene.tif, .web.tif; multi.vrt, red, nir, .web.tif
    target = _with(s3_settings, empty_database, "restored", tmp_path / "dst")
    restored = backup.restore(tmp_path / "out.tar", empty_database, target)
    assert len(restored.files) == 6
    for entry in manifest.files:
        a = client.get_object(Bucket=BUCKET, Key=f"backup-src/{entry['path']}")["Body"].read()
        b = client.get_object(Bucket=BUCKET, Key=f"restored/{entry['path']}")["Body"].read()
        assert a == b
    assert not (tmp_path / "dst").exists()
    with pytest.raises(ConflictError, match="not empty"):
        backup.restore(tmp_path / "out.tar", empty_database, target)


def _with(settings: Settings, url: str, prefix: str, data_dir: Path) -> Settings:
    return settings.model_copy(update={
        "data_dir": data_dir, "raster_store": f"s3://{BUCKET}/{prefix}",
        "database": settings.database.model_copy(update={"url": SecretStr(url)}),
    })  # fmt: skip


def test_gdal_paths_and_options(s3: tuple[Any, Settings]) -> None:
    _client, s3_settings = s3
    store = rasterstore.of(s3_settings)
    assert str(store.gdal_path("c/i/v/a.tif")) == f"/vsis3/{BUCKET}/rasters/c/i/v/a.tif"
    options = rasterstore.gdal_options(store)
    assert options["AWS_HTTPS"] == "NO" and options["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert options["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    with pytest.raises(InvalidInputError):
        store.key("../escape.tif")
    local = rasterstore.of(s3_settings.model_copy(update={"raster_store": None}))
    assert local.gdal_path("a/b.tif") == s3_settings.data_dir / "rasters" / "a" / "b.tif"


@pytest.mark.parametrize(
    ("location", "says"),
    [("s3://", "names no bucket"), ("ftp://host/rasters", "give a folder or s3://"),
     ("s3://bucket/a/../b", "may not hold '..'")],
)  # fmt: skip
def test_a_bad_store_location_is_refused(location: str, says: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(says)):
        rasterstore.of(Settings(raster_store=location))
