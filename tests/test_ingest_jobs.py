"""A job's state is final only after all its cleanup.

The job runner (:func:`spatial.ingest.jobs.run`) is checked against the database: its
cleanup runs while the job still reads ``running``, on success, on failure, and when the
job cannot even start. Over real HTTP, the removal of what a job owns (an upload's folder,
a process's temporary file) is held by a :class:`Gate` the test opens: while it is held
the job must not read final, and the first final read must find the folder gone. The
uploads' folder was once removed after the job read ``succeeded`` (a test saw it left
behind about once in two runs); held open, that order fails every time.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin
from support import LiveServer

from api import create_app
from spatial.errors import InvalidInputError
from spatial.ingest import jobs
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import Settings

FINAL = {"succeeded", "failed", "cancelled"}
WHEN = dt.datetime(2025, 10, 15, 3, tzinfo=dt.UTC)
"""The acquisition time of :func:`_scene` (its file has none)."""
WAIT_S = 120
"""The longest a job here may take (they take a second or two)."""
_REMOVE = shutil.rmtree


# -- the runner, against the database -------------------------------------------------------


def _state(url: str, job_id: str) -> str:
    with psycopg.connect(url) as conn:
        return jobs.get(conn, job_id).state


def _new_job(url: str) -> str:
    return jobs.create(url, kind="vector", collection_id=None, source="test", options={},
                       created_by="pytest")  # fmt: skip


def test_the_runner_cleans_up_before_it_writes_the_final_state(database_url: str) -> None:
    seen: list[str] = []
    job = _new_job(database_url)
    result = jobs.run(database_url, job, {}, lambda _: ("result", "done"),
                      cleanup=lambda: seen.append(_state(database_url, job)))  # fmt: skip
    assert result == "result"
    assert seen == ["running"] and _state(database_url, job) == "succeeded"

    def refused(_: Callable[[float, str], None]) -> tuple[str, str]:
        msg = "this input is refused"
        raise InvalidInputError(msg)

    job = _new_job(database_url)
    with pytest.raises(InvalidInputError, match="this input is refused"):
        jobs.run(database_url, job, {}, refused,
                 cleanup=lambda: seen.append(_state(database_url, job)))  # fmt: skip
    assert seen == ["running", "running"] and _state(database_url, job) == "failed"


def test_the_runner_cleans_up_a_job_that_cannot_start(database_url: str) -> None:
    cleaned = threading.Event()
    nowhere = database_url.rsplit("/", 1)[0] + "/spatial_test_no_such_database"
    with pytest.raises(psycopg.OperationalError):
        jobs.run(nowhere, _new_job(database_url), {}, lambda _: ("result", "done"),
                 cleanup=cleaned.set)  # fmt: skip
    assert cleaned.is_set()


# -- over HTTP: the cleanup held open ---------------------------------------------------------


class Gate:
    """Holds ``shutil.rmtree`` (what jobs' cleanups call) of the folders ``held`` picks
    until :meth:`open`; other folders go at once."""

    def __init__(self, held: Callable[[Path], bool]) -> None:
        self.held = held
        self.entered = threading.Event()
        self.released = threading.Event()
        self.folders: list[Path] = []

    def rmtree(self, path: Any, *args: Any, **kwargs: Any) -> None:
        if self.held(Path(path)):
            self.folders.append(Path(path))
            self.entered.set()
            self.released.wait(WAIT_S)
        _REMOVE(path, *args, **kwargs)

    def open(self) -> None:
        self.released.set()


@pytest.fixture
def hold(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[Path], bool]], Gate]]:
    """Make a :class:`Gate` (opened at the end whatever happened: no worker stays held)."""
    gates: list[Gate] = []

    def make(held: Callable[[Path], bool]) -> Gate:
        gate = Gate(held)
        gates.append(gate)
        monkeypatch.setattr(shutil, "rmtree", gate.rmtree)
        return gate

    yield make
    for gate in gates:
        gate.open()


def _ends_after_cleanup(gate: Gate, states: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Follow jobs whose cleanup ``gate`` holds: none reads final before the cleanup
    began, nor while it is held; once released, the first final read finds every held
    folder gone. Returns the final states."""
    deadline = time.monotonic() + WAIT_S
    while not gate.entered.wait(0.02):
        early = {job: state for job, state in states().items() if state in FINAL}
        assert not early, f"{early} before the job's cleanup began"
        assert time.monotonic() < deadline, "the job's cleanup never began"
    # The worker waits in its cleanup now: what it wrote so far stays as it is.
    held = states()
    assert not set(held.values()) & FINAL, f"{held} while the job's cleanup is held"
    assert all(folder.exists() for folder in gate.folders)
    gate.open()
    while not set((now := states()).values()) <= FINAL:
        assert time.monotonic() < deadline, f"the jobs never ended: {now}"
        time.sleep(0.02)
    left = [folder for folder in gate.folders if folder.exists()]
    assert not left, f"{now}, yet {left} is still there"
    return now


@pytest.fixture(scope="module")
def api(live_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=120) as client:
        yield client


def _cells(folder: Path, *, bowtie: bool = False) -> Path:
    """Three parcels near Yunfu (EPSG:4546); with ``bowtie`` one is self-crossing, which
    the default policy (reject) refuses in the job."""
    folder.mkdir(exist_ok=True)
    cells = [shapely.box(500_000 + i * 50, 2_530_000, 500_050 + i * 50, 2_530_050)
             for i in range(3)]  # fmt: skip
    if bowtie:
        cells[1] = shapely.Polygon([(500_050, 2_530_000), (500_100, 2_530_050),
                                    (500_100, 2_530_000), (500_050, 2_530_050)])  # fmt: skip
    path = folder / "cells.gpkg"
    gpd.GeoDataFrame({"code": ["A", "B", "C"]}, geometry=cells, crs="EPSG:4546").to_file(path)
    return path


def _scene(folder: Path) -> Path:
    """A small 4-band scene near Yunfu (EPSG:4546), bands blue, green, red, nir."""
    path = folder / "small_scene.tif"
    data = np.random.default_rng(5).integers(1, 10_000, (4, 256, 256), dtype=np.uint16)
    profile = {"driver": "GTiff", "width": 256, "height": 256, "count": 4, "dtype": "uint16",
               "crs": "EPSG:4546", "transform": from_origin(500_000, 2_535_000, 10, 10),
               "tiled": True}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.mark.parametrize(
    ("kind", "bowtie", "ends"),
    [("vector", False, "succeeded"), ("vector", True, "failed"), ("raster", False, "succeeded")],
    ids=["vector-succeeds", "vector-fails", "raster-succeeds"],
)
def test_an_upload_is_gone_when_its_job_reads_final(
    api: httpx.Client, admin_auth: dict[str, str], hold: Callable[[Callable[[Path], bool]], Gate],
    tmp_path: Path, *, settings: Settings, kind: str, bowtie: bool, ends: str,
) -> None:  # fmt: skip
    uploads = settings.var_dir / "ingest" / "uploads"
    gate = hold(lambda path: path.parent == uploads)
    path = _scene(tmp_path) if kind == "raster" else _cells(tmp_path, bowtie=bowtie)
    collection = f"jobs_{kind}_{ends}"
    form = {"collection": collection} | ({"datetime": WHEN.isoformat()} if kind == "raster" else {})
    with path.open("rb") as f:
        answer = api.post(f"/ingest/{kind}", headers=admin_auth, data=form,
                          files={"file": (path.name, f)})  # fmt: skip
    assert answer.status_code == 202, answer.text
    location, job = answer.headers["location"], answer.json()["id"]

    def states() -> dict[str, str]:
        return {job: api.get(location, headers=admin_auth).json()["state"]}

    assert _ends_after_cleanup(gate, states) == {job: ends}
    assert [folder.parent for folder in gate.folders] == [uploads]
    # This worker knew the new collection when the job read succeeded.
    listed = api.get(f"/collections/{collection}", headers=admin_auth).status_code
    assert listed == (200 if ends == "succeeded" else 404)


def test_an_upload_still_queued_when_the_api_stops_goes_with_its_job(
    admin_auth: dict[str, str], settings: Settings, database_url: str, tmp_path: Path,
    hold: Callable[[Callable[[Path], bool]], Gate],
) -> None:  # fmt: skip
    """One job runs at a time: while the first is held in its cleanup, a second waits in
    the queue. Stopping the API drops the second (its row stays "queued", as documented);
    its upload is removed all the same."""
    uploads = settings.var_dir / "ingest" / "uploads"
    gate = hold(lambda path: path.parent == uploads and not gate.folders)  # the first only
    server = LiveServer(create_app(settings)).__enter__()  # stopped below, a job held
    stopping = threading.Thread(target=server.__exit__, args=(None, None, None))
    try:
        jobs_of = {}
        with httpx.Client(base_url=server.url, headers=admin_auth, timeout=60) as client:
            for collection in ("jobs_held", "jobs_dropped"):
                with _cells(tmp_path / collection).open("rb") as f:
                    answer = client.post("/ingest/vector", data={"collection": collection},
                                         files={"file": ("cells.gpkg", f)})  # fmt: skip
                assert answer.status_code == 202, answer.text
                jobs_of[collection] = answer.json()["id"]
                assert gate.entered.wait(WAIT_S), "the first job never reached its cleanup"
        [dropped] = set(uploads.iterdir()) - set(gate.folders)
        stopping.start()
        deadline = time.monotonic() + WAIT_S
        while dropped.exists():
            assert time.monotonic() < deadline, f"{dropped} outlived its dropped job"
            time.sleep(0.02)
    finally:
        gate.open()
        if stopping.is_alive():
            stopping.join()
        elif not stopping.ident:  # failed before stopping it
            server.__exit__(None, None, None)
    with psycopg.connect(database_url) as conn:
        states = {c: jobs.get(conn, j).state for c, j in jobs_of.items()}
    assert states == {"jobs_held": "succeeded", "jobs_dropped": "queued"}
    assert not any(uploads.iterdir())


def test_a_process_writes_back_and_its_jobs_end_after_the_temporary_file_is_gone(
    api: httpx.Client, admin_auth: dict[str, str], hold: Callable[[Callable[[Path], bool]], Gate],
    tmp_path: Path, *, settings: Settings, database_url: str,
) -> None:  # fmt: skip
    source = RasterSource((_scene(tmp_path),), "jobs_imagery", datetime=WHEN,
                          bands=("blue", "green", "red", "nir"))  # fmt: skip
    ingest_raster(database_url, source, settings, actor="pytest")
    deadline = time.monotonic() + 10
    while api.get("/collections/jobs_imagery", headers=admin_auth).status_code != 200:
        assert time.monotonic() < deadline, "the API did not catch up with jobs_imagery"
        time.sleep(0.1)
    gate = hold(lambda path: path.name.startswith("spatial-process-"))
    inputs = {"raster": "jobs_imagery", "geometry": shapely.geometry.mapping(_inside()),
              "output_collection": "jobs_written_back"}  # fmt: skip
    answer = api.post("/processes/zonal-statistics/execution", json={"inputs": inputs},
                      headers={**admin_auth, "Prefer": "respond-async"})  # fmt: skip
    assert answer.status_code == 201, answer.text
    process_job = answer.json()["jobID"]

    def states() -> dict[str, str]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT id::text, state FROM platform.ingest_jobs WHERE id = %s::uuid "
                "OR (kind = 'vector' AND collection_id = 'jobs_written_back')",
                (process_job,),
            ).fetchall()
        return dict(rows)

    ended = _ends_after_cleanup(gate, states)
    assert set(ended.values()) == {"succeeded"} and len(ended) == 2, ended
    assert api.get("/collections/jobs_written_back", headers=admin_auth).status_code == 200


def _inside() -> shapely.Polygon:
    """A box well inside :func:`_scene`, in lon/lat."""
    to_lonlat = Transformer.from_crs("EPSG:4546", "OGC:CRS84", always_xy=True)
    west, south = to_lonlat.transform(500_500, 2_533_000)
    east, north = to_lonlat.transform(501_500, 2_534_000)
    return shapely.box(west, south, east, north)
