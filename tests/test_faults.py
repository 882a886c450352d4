"""Faults injected for real: an ingest process killed mid-load, and the raster store's disk
filling up before and during an ingest.

(The database and the MQTT broker restarted under live GPS streams and API requests are
``test_gps_restart.py``; a slow live-stream client beside fast ones is in
``test_gps_streams.py``.)
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from support import LiveServer

from spatial.errors import StorageFullError
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

BIG = 150_000
"""Parcels in the layer whose load is killed: several seconds of loading."""


def _rows(url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]


def _grid(n: int, label: str) -> gpd.GeoDataFrame:
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    x0, y0 = 500_000 + (i % side) * 20.0, 2_530_000 + (i // side) * 20.0
    return gpd.GeoDataFrame(
        {"code": [f"K{k:06d}" for k in i], "label": label},
        geometry=shapely.box(x0, y0, x0 + 18, y0 + 18),
        crs="EPSG:4546",
    )


# --- an ingest killed ---------------------------------------------------------------------

KILLER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from spatial.ingest.vector import VectorSource, ingest_vector
    from spatial.settings import Settings
    url, path, data_dir = sys.argv[1:4]
    source = VectorSource(path=Path(path), collection_id="killed", title="killed", key="code")
    ingest_vector(url, source, Settings(data_dir=Path(data_dir)), actor="doomed")
""")


def test_a_killed_ingest_keeps_the_previous_edition_and_reads_failed(
    settings: Settings,
    database_url: str,
    live_api: LiveServer,
    admin_auth: dict[str, str],
    tmp_path: Path,
) -> None:
    small, big = tmp_path / "small.gpkg", tmp_path / "big.gpkg"
    _grid(50, "first").to_file(small)
    _grid(BIG, "second").to_file(big)
    ingest_vector(
        database_url,
        VectorSource(path=small, collection_id="killed", title="killed", key="code"),
        settings,
    )
    before = _rows(database_url, "SELECT fid, code, label FROM layers.killed ORDER BY fid")
    editions = _rows(database_url, "SELECT edition FROM platform.editions "
                     "WHERE collection_id = 'killed'")  # fmt: skip

    # Another process loads the big file; it is killed (SIGKILL: no clean-up of any kind)
    # while it loads rows into the database.
    doomed = subprocess.Popen(
        [sys.executable, "-c", KILLER, database_url, str(big), str(settings.data_dir)],
        env={k: v for k, v in os.environ.items() if not k.startswith("SPATIAL_")},
    )
    job = _loading_job(database_url, doomed)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(30)

    # The previous edition stands, whole; nothing staged is left behind.
    assert _rows(database_url, "SELECT fid, code, label FROM layers.killed ORDER BY fid") == before
    assert _rows(database_url, "SELECT edition FROM platform.editions "
                 "WHERE collection_id = 'killed'") == editions  # fmt: skip
    assert not _rows(
        database_url, "SELECT relname FROM pg_class WHERE relname LIKE '\\_stage\\_%%'"
    )
    # Reading the job tells it failed: its worker's lock went with its connection.
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        read = _eventually_failed(client, job, admin_auth)
    assert read["message"].startswith("interrupted: the worker that ran it stopped")
    # A retry succeeds, as the next edition.
    retried = ingest_vector(
        database_url,
        VectorSource(path=big, collection_id="killed", title="killed", key="code"),
        settings,
    )
    assert retried.report["features_loaded"] == BIG and retried.report["edition"] == 2
    assert _rows(database_url, "SELECT count(*) FROM layers.killed") == [(BIG,)]


def _loading_job(url: str, process: subprocess.Popen[bytes]) -> str:
    """The doomed process's job once it is loading rows."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the ingest ended before it could be killed"
        found = _rows(url, "SELECT id::text, message FROM platform.ingest_jobs "
                      "WHERE created_by = 'doomed' AND state = 'running'")  # fmt: skip
        if found and "loading" in (found[0][1] or ""):
            return str(found[0][0])
        time.sleep(0.05)
    pytest.fail("the ingest never started loading")


def _eventually_failed(client: httpx.Client, job: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 10  # PostgreSQL notices the closed connection
    while True:
        read: dict[str, Any] = client.get(f"/ingest/jobs/{job}", headers=headers).json()
        if read["state"] == "failed" or time.monotonic() > deadline:
            assert read["state"] == "failed", read
            return read
        time.sleep(0.2)


# --- the raster store's disk full ---------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB file system of its own (tmpfs) for the raster store."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _scene(path: Path) -> Path:
    """A 4-band 512 x 512 uint16 scene of noise (2 MiB; it does not compress)."""
    data = np.random.default_rng(11).integers(0, 10_000, (4, 512, 512), dtype=np.uint16)
    profile = {"driver": "GTiff", "width": 512, "height": 512, "count": 4, "dtype": "uint16",
               "crs": "EPSG:32649", "transform": from_origin(500_000, 2_540_000, 10, 10),
               "tiled": True}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _fill(disk: Path, leave: int) -> Path:
    """Fill the file system up to ``leave`` bytes free."""
    filler = disk / "filler.bin"
    with filler.open("ab") as f:
        f.truncate(0)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        f.write(b"\0" * max(0, free - leave))
    return filler


def _store_files(disk: Path) -> set[Path]:
    return {p for p in (disk / "rasters").rglob("*") if p.is_file()}


def test_a_full_raster_store_refuses_before_writing(
    settings: Settings, database_url: str, small_disk: Path, tmp_path: Path
) -> None:
    scene = _scene(tmp_path / "noise.tif")
    _fill(small_disk, 2**20)
    on_disk = settings.model_copy(update={"data_dir": small_disk})
    source = RasterSource(paths=(scene,), collection_id="full_before", item_id="noise",
                          datetime=dt.datetime(2026, 5, 1, tzinfo=dt.UTC))  # fmt: skip
    with pytest.raises(StorageFullError, match=r"has [\d.]+ MiB free and this ingest needs"):
        ingest_raster(database_url, source, on_disk)
    assert _store_files(small_disk) == set()
    assert _rows(database_url, "SELECT state, message FROM platform.ingest_jobs "
                 "WHERE collection_id = 'full_before'")[0][0] == "failed"  # fmt: skip


def test_a_disk_filling_up_mid_ingest_leaves_nothing_and_a_retry_succeeds(
    settings: Settings, database_url: str, small_disk: Path, tmp_path: Path
) -> None:
    scene = _scene(tmp_path / "noise.tif")
    on_disk = settings.model_copy(update={"data_dir": small_disk})
    source = RasterSource(paths=(scene,), collection_id="full_during", item_id="noise",
                          datetime=dt.datetime(2026, 5, 1, tzinfo=dt.UTC))  # fmt: skip
    fillers: list[Path] = []

    def fill_while_converting(_fraction: float, message: str) -> None:
        if "converting to COG" in message and not fillers:  # the room was checked: fill it
            fillers.append(_fill(small_disk, 256 * 1024))

    with pytest.raises(StorageFullError, match="ran out of disk space while writing") as caught:
        ingest_raster(database_url, source, on_disk, on_progress=fill_while_converting)
    assert "nothing was kept" in str(caught.value) and fillers
    assert _store_files(small_disk) == set()  # no half-written COG, no empty folders either
    assert not [p for p in (small_disk / "rasters").rglob("*") if p.is_dir()]
    assert _rows(database_url, "SELECT count(*) FROM rs.items "
                 "WHERE collection_id = 'full_during'") == [(0,)]  # fmt: skip
    ((state, message),) = _rows(database_url, "SELECT state, message FROM platform.ingest_jobs "
                                "WHERE collection_id = 'full_during'")  # fmt: skip
    assert state == "failed" and "ran out of disk space" in message
    # With room again, the same ingest succeeds.
    fillers[0].unlink()
    done = ingest_raster(database_url, source, on_disk)
    assert [item["id"] for item in done.items] == ["noise"]
    assert len(_store_files(small_disk)) >= 2  # the native and the display COG
