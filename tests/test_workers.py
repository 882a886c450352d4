"""Several API worker processes share nothing in memory that matters (issue 12).

Three real server processes run against the session database, as behind a proxy: A and B
are one uvicorn worker each on their own ports, C is ``spatial serve --workers 2`` (two
workers on one port). What one worker is told reaches the others through PostgreSQL
LISTEN/NOTIFY only:

- an edit through A drops the tile B had cached (B serves the edited tile, decoded);
- a position received by A is streamed by B's ``/gps/live``, a geofence event too;
- a collection ingested through A is listed by B and C; a key, a grant and a visibility
  change made through A's admin API apply in B.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import httpx
import mapbox_vector_tile
import morecantile
import psycopg
import pytest
import shapely
from websockets.asyncio.client import connect

from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EDITS = "workers_edits"
UPLOADED = "workers_uploaded"
START_S = 120.0
"""How long the processes may take to answer ``/health/ready`` (2 cores, 4 workers)."""
WAIT_S = 15.0
"""How long a change may take to reach another worker (it takes milliseconds)."""
WEST, SOUTH = 112.2500, 23.0500
Z = 14
TMS = morecantile.tms.get("WebMercatorQuad")
TILE = TMS.tile(WEST + 0.002, SOUTH + 0.0005, Z)
T = TypeVar("T")


def _box(k: int) -> shapely.Polygon:
    return shapely.box(WEST + k * 0.001, SOUTH, WEST + k * 0.001 + 0.0008, SOUTH + 0.0008)


NEW = shapely.box(WEST + 0.0021, SOUTH + 0.0002, WEST + 0.0026, SOUTH + 0.0006)
"""Added through A: inside the layer's extent (tiles outside the catalog's extent of a
layer are not read, and an edit does not grow that extent)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPATIAL_")}
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    return {**env, "SPATIAL_DATABASE_URL": url, "SPATIAL_ENVIRONMENT": "test",
            "SPATIAL_VAR_DIR": str(settings.var_dir),
            "SPATIAL_DATA_DIR": str(settings.data_dir)}  # fmt: skip


def _descendants(pid: int) -> list[int]:
    tree = [pid]
    for p in tree:  # grows as children are found
        with contextlib.suppress(OSError):
            tree += map(int, Path(f"/proc/{p}/task/{p}/children").read_text().split())
    return tree


def _until(check: Callable[[], T | None], what: str, seconds: float = WAIT_S) -> tuple[T, float]:
    """``check()``'s first true value and the seconds it took; fails after ``seconds``."""
    started = time.monotonic()
    while True:
        found = check()
        if found:
            return found, time.monotonic() - started
        assert time.monotonic() - started < seconds, f"timed out ({seconds} s) waiting for {what}"
        time.sleep(0.05)


class Servers:
    """The processes and a client for each port."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.clients: dict[str, httpx.Client] = {}
        self.ports: dict[str, int] = {}
        self.pids: list[int] = []

    def start(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        port = _free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        self.ports[name] = port
        self.clients[name] = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def wait_ready(self, logs: Path) -> None:
        deadline = time.monotonic() + START_S
        for name, client in self.clients.items():
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/health/ready").status_code == 200:
                        break
                dead = [p for p in self.processes if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    tails = {f.name: f.read_text(errors="replace")[-2000:]
                             for f in logs.glob("*.log")}  # fmt: skip
                    pytest.fail(f"worker {name} did not start: {tails}")
                time.sleep(0.3)

    def stop(self) -> None:
        for client in self.clients.values():
            client.close()
        for process in self.processes:
            self.pids += _descendants(process.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (it may vanish while we look)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


@pytest.fixture(scope="module")
def servers(
    settings: Settings, admin_auth: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """A small editable public layer, then A, B and C (the admin key exists before)."""
    folder = tmp_path_factory.mktemp("workers")
    frame = gpd.GeoDataFrame({"code": ["E0", "E1", "E2"], "name": ["seed"] * 3},
                             geometry=[_box(k) for k in range(3)], crs="EPSG:4326")  # fmt: skip
    frame.to_file(folder / "edits.gpkg")
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(path=folder / "edits.gpkg", collection_id=EDITS, title=EDITS,
                          key="code", editable=True, public=True)  # fmt: skip
    ingest_vector(url, source, settings, actor="pytest")
    env = _env(settings)
    bin_dir = ROOT / ".venv" / "bin"
    uvicorn = [str(bin_dir / "uvicorn"), "api.main:app_factory", "--factory",
               "--log-level", "warning"]  # fmt: skip
    running = Servers()
    try:
        running.start("A", uvicorn, env, folder / "A.log")
        running.start("B", uvicorn, env, folder / "B.log")
        running.start("C", [str(bin_dir / "spatial"), "serve", "--workers", "2"], env,
                      folder / "C.log")  # fmt: skip
        running.wait_ready(folder)
        yield running
    finally:
        running.stop()
        deadline = time.monotonic() + 15  # orphaned workers exit after their supervisor
        while (alive := [p for p in running.pids if _running(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive, f"stray worker processes: {alive}"


def test_spatial_serve_runs_several_workers(servers: Servers) -> None:
    """C is one port served by two worker processes (uvicorn's supervisor and workers)."""
    supervisor = servers.processes[2].pid
    tree = _descendants(supervisor)
    workers = [p for p in tree[1:] if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(workers) == 2, tree


def _tile(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """B's tile of the layer, decoded: code -> (properties, lon/lat bounds of the shape)."""
    answer = client.get(f"/collections/{EDITS}/tiles/WebMercatorQuad/{Z}/{TILE.y}/{TILE.x}")
    assert answer.status_code == 200, answer.text
    decoded = mapbox_vector_tile.decode(answer.content, default_options={"y_coord_down": True})
    layer = next(iter(decoded.values()), {"features": [], "extent": 4096})
    left, bottom, right, top = TMS.xy_bounds(TILE)
    extent = layer["extent"]

    def lonlat(x: float, y: float) -> tuple[float, float]:
        mx, my = left + x / extent * (right - left), top - y / extent * (top - bottom)
        lon = math.degrees(mx / 6378137.0)
        lat = math.degrees(2 * math.atan(math.exp(my / 6378137.0)) - math.pi / 2)
        return lon, lat

    out = {}
    for feature in layer["features"]:
        shape = shapely.geometry.shape(feature["geometry"])
        out[feature["properties"]["code"]] = {
            **feature["properties"], "bounds": shapely.transform(
                shape, lambda xy: [lonlat(x, y) for x, y in xy]).bounds,
        }  # fmt: skip
    return out


def _hits(client: httpx.Client, auth: dict[str, str]) -> float:
    text = client.get("/metrics", headers=auth).text
    found = re.search(r"^spatial_tile_cache_hits_total (\S+)$", text, re.MULTILINE)
    assert found, text[:2000]
    return float(found.group(1))


def _near(bounds: tuple[float, ...], box: shapely.Polygon, tolerance: float = 2e-5) -> bool:
    return all(abs(a - b) < tolerance for a, b in zip(bounds, box.bounds, strict=True))


def test_an_edit_through_a_drops_the_tile_b_cached(
    servers: Servers, admin_auth: dict[str, str]
) -> None:
    a, b = servers.clients["A"], servers.clients["B"]
    before = _hits(b, admin_auth)
    first = _tile(b)
    assert _tile(b) == first
    assert _hits(b, admin_auth) >= before + 1  # the second was served from B's cache
    assert sorted(first) == ["E0", "E1", "E2"]
    assert {f["name"] for f in first.values()} == {"seed"}
    assert all(_near(first[f"E{k}"]["bounds"], _box(k)) for k in range(3))

    items = a.get(f"/collections/{EDITS}/items").json()["features"]
    e0 = next(f for f in items if f["properties"]["code"] == "E0")
    item = f"/collections/{EDITS}/items/{e0['id']}"
    etag = a.get(item).headers["etag"]
    patched = a.patch(item, json={"type": "Feature", "properties": {"name": "edited"}},
                      headers={**admin_auth, "If-Match": etag,
                               "Content-Type": "application/geo+json"})  # fmt: skip
    assert patched.status_code == 200, patched.text
    seen, waited = _until(
        lambda: (t := _tile(b))["E0"]["name"] == "edited" and t, "B's tile to show the edit"
    )
    assert {k: v["name"] for k, v in seen.items()} == {"E0": "edited", "E1": "seed", "E2": "seed"}
    print(f"B served the patched tile after {waited:.3f} s")

    added = a.post(f"/collections/{EDITS}/items", json={
        "type": "Feature", "geometry": shapely.geometry.mapping(NEW),
        "properties": {"code": "E3", "name": "new"}},
        headers={**admin_auth, "Content-Type": "application/geo+json"})  # fmt: skip
    assert added.status_code == 201, added.text
    seen, waited = _until(lambda: (t := _tile(b)).get("E3") and t, "B's tile to show the new one")
    assert sorted(seen) == ["E0", "E1", "E2", "E3"]
    assert seen["E3"]["name"] == "new" and _near(seen["E3"]["bounds"], NEW)
    print(f"B served the added feature after {waited:.3f} s")


def test_a_position_received_by_a_is_streamed_by_b(
    servers: Servers, admin_auth: dict[str, str]
) -> None:
    a = servers.clients["A"]
    device = f"WRK-{secrets.token_hex(3).upper()}"
    registered = a.post("/gps/devices", json={"id": device, "name": "worker test",
                                              "kind": "vehicle"}, headers=admin_auth)  # fmt: skip
    assert registered.status_code == 201, registered.text
    key = admin_auth["Authorization"].removeprefix("Bearer ")
    uri = f"ws://127.0.0.1:{servers.ports['B']}/gps/live?access_token={key}&device={device}"
    messages: list[dict[str, Any]] = []

    async def run() -> float:
        async with connect(uri) as sock:

            async def read() -> None:
                async for text in sock:
                    messages.append(json.loads(text))

            reader = asyncio.create_task(read())
            started = time.monotonic()
            try:
                sent = 0
                # Fixes until B streams one: B's subscription may be a moment from active.
                while not any(m["type"] == "position" for m in messages):
                    assert time.monotonic() - started < WAIT_S, "B streamed nothing"
                    when = int(time.time()) - 60 + sent
                    answer = await asyncio.to_thread(a.get, "/gps/osmand", params={
                        "id": device, "lat": f"{SOUTH + 0.001:.6f}", "lon": f"{WEST + 0.002:.6f}",
                        "timestamp": when})  # fmt: skip
                    assert answer.status_code == 200, answer.text
                    sent += 1
                    for _ in range(20):
                        if messages:
                            break
                        await asyncio.sleep(0.05)
                return time.monotonic() - started
            finally:
                reader.cancel()

    waited = asyncio.run(run())
    position = next(m for m in messages if m["type"] == "position")
    assert position["device"] == device and position["name"] == "worker test"
    assert abs(position["lat"] - (SOUTH + 0.001)) < 1e-6
    assert abs(position["lon"] - (WEST + 0.002)) < 1e-6
    print(f"B streamed A's fix after {waited:.3f} s")


def test_a_collection_key_grant_and_visibility_made_through_a_apply_in_b(
    servers: Servers, admin_auth: dict[str, str], tmp_path: Path
) -> None:
    a, b, c = servers.clients["A"], servers.clients["B"], servers.clients["C"]
    path = tmp_path / "uploaded.gpkg"
    gpd.GeoDataFrame({"code": ["U0", "U1"]}, geometry=[_box(5), _box(6)],
                     crs="EPSG:4326").to_file(path)  # fmt: skip
    with path.open("rb") as f:
        started = a.post("/ingest/vector", files={"file": ("uploaded.gpkg", f)},
                         data={"collection": UPLOADED, "key": "code", "public": "false"},
                         headers=admin_auth)  # fmt: skip
    assert started.status_code == 202, started.text
    job = started.headers["location"].split("/ingest/")[-1]
    done, _ = _until(lambda: (s := b.get(f"/ingest/{job}", headers=admin_auth).json())["state"]
                     in {"succeeded", "failed"} and s, "the ingest", 60)  # fmt: skip
    assert done["state"] == "succeeded", done

    def listed(client: httpx.Client, **headers: str) -> bool:
        ids = [x["id"] for x in client.get("/collections", headers=headers).json()["collections"]]
        return UPLOADED in ids

    _, waited = _until(lambda: listed(b, **admin_auth), "B to list the upload")
    print(f"B listed A's ingest after {waited:.3f} s")
    for _ in range(6):  # C's two workers, whichever answers
        assert listed(c, **admin_auth)
    assert not listed(b)  # private

    # A reader's account and key made through A: B knows the key, then the grant.
    reader = f"wrk_reader_{secrets.token_hex(2)}"
    made = a.post("/admin/users", json={"username": reader, "service": True},
                  headers=admin_auth)  # fmt: skip
    assert made.status_code == 201, made.text
    key = a.post(f"/admin/users/{reader}/keys", json={"name": "w"}, headers=admin_auth)
    assert key.status_code == 201, key.text
    as_reader = {"Authorization": f"Bearer {key.json()['key']}"}
    items = f"/collections/{UPLOADED}/items"
    _until(lambda: b.get("/collections", headers=as_reader).status_code == 200,
           "B to know the new key")  # fmt: skip
    assert b.get(items, headers=as_reader).status_code in {403, 404}
    grant = a.post("/admin/grants", json={"collection": UPLOADED, "grantee": f"user:{reader}"},
                   headers=admin_auth)  # fmt: skip
    assert grant.status_code == 201, grant.text
    answer, waited = _until(lambda: (r := b.get(items, headers=as_reader)).status_code == 200
                            and r, "B to apply the grant")  # fmt: skip
    assert sorted(f["properties"]["code"] for f in answer.json()["features"]) == ["U0", "U1"]
    print(f"B applied A's grant after {waited:.3f} s")

    shown = a.patch(f"/admin/collections/{UPLOADED}", json={"public": True}, headers=admin_auth)
    assert shown.status_code == 200, shown.text
    _, waited = _until(lambda: listed(b), "B to show the collection to everyone")
    print(f"B made A's collection public after {waited:.3f} s")
    assert b.get(items).status_code == 200


def test_a_starting_worker_fails_no_job_another_worker_accepted(
    servers: Servers, admin_auth: dict[str, str], database_url: str
) -> None:
    """What a starting worker runs (:data:`spatial.ingest.jobs.REAP`), run without pause
    while A accepts asynchronous process jobs, fails none of them: each is created with
    its lock held."""
    from spatial.ingest import jobs  # noqa: PLC0415

    a = servers.clients["A"]
    inputs = {"collection": EDITS, "group_by": "name",
              "geometry": shapely.geometry.mapping(shapely.box(WEST, SOUTH, WEST + 0.01,
                                                               SOUTH + 0.01))}  # fmt: skip
    reaped: list[str] = []
    stop = threading.Event()

    def reap() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                reaped.extend(r[0] for r in conn.execute(jobs.REAP, {"id": None}).fetchall())

    reaper = threading.Thread(target=reap)
    reaper.start()
    try:
        locations = []
        for _ in range(20):
            accepted = a.post("/processes/intersect-summarise/execution", json={"inputs": inputs},
                              headers={**admin_auth, "Prefer": "respond-async"})  # fmt: skip
            assert accepted.status_code == 201, accepted.text
            locations.append(accepted.headers["location"])

        def finished() -> list[dict[str, Any]] | None:
            states = [a.get(u, headers=admin_auth).json() for u in locations]
            return states if all(s["status"] not in {"accepted", "running"}
                                 for s in states) else None  # fmt: skip

        states, _ = _until(finished, "the jobs", 60)
    finally:
        stop.set()
        reaper.join(timeout=30)
    assert [s["status"] for s in states] == ["successful"] * 20, states
    assert not set(reaped) & {s["jobID"] for s in states}
