"""Soak run: GPS ingest, tiles, items and edits at once for minutes, sampling the memory of
every server process, the database sessions and the pools (see benchmarks/README.md). The
load functions use HTTP and SQL only (no ``spatial`` module): ``tests/test_soak.py`` runs
them for a minute. Exit status 1 on any error, when fixes stored differ from fixes
accepted, or when the sessions exceeded the pools' limits.

Usage: ``.venv/bin/python benchmarks/soak.py [--minutes 10] [--sample 5] [--devices 100]
[--cells 200] [--no-record]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench" / "soak"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DATABASE = "spatial_bench_soak"
PARCELS, EDITS = "soak_parcels", "soak_edits"
AREA = (112.05, 22.95, 112.15, 23.05)  # where the parcels grid lies (lon/lat)
CRS84 = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
EXTRA_PER_WORKER = 4  # sessions a worker holds besides its pools (2 listeners, a margin)
Answer = httpx.Response
EXPECTED = {"gps": {200}, "tiles": {200, 204}, "items": {200}, "create": {201},
            "patch": {200}, "delete": {204}, "metrics": {200}}  # fmt: skip


@dataclass(frozen=True)
class Rates:
    """How much load: devices (each one fix every ``fix_interval`` s) and requests/s."""

    devices: int = 100
    fix_interval: float = 5.0
    tiles: float = 30.0
    items: float = 10.0
    edit_cycles: float = 1.0


@dataclass
class Tally:
    """Every answer by workload and status, the first errors, and fixes accepted."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    accepted: int = 0

    def note(self, workload: str, status: int, detail: str = "") -> bool:
        self.statuses[workload, status] += 1
        if status in EXPECTED[workload]:
            return True
        self.error_count += 1
        self.errors += [f"{workload}: {status} {detail[:200]}"] if len(self.errors) < 20 else []
        return False

    def requests(self, workload: str) -> int:
        return sum(n for (w, _), n in self.statuses.items() if w == workload)


@dataclass
class Sample:
    """One reading: seconds since the start, RSS by pid, sessions, pools, answers."""

    t: float
    rss: dict[int, int]
    sessions: int
    figures: dict[str, float] = field(default_factory=dict)  # other /metrics summed by name
    pools: dict[tuple[str, str], float] = field(default_factory=dict)
    by_status: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    """What a soak run found; ``problems`` empty when it passed."""

    seconds: float
    tally: Tally
    samples: list[Sample]
    final: Sample
    stored: int
    distinct: int
    workers: int
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def build_data(folder: Path, cells: int) -> tuple[Path, Path]:
    """A seeded ``cells`` x ``cells`` grid of parcels over AREA, and a small editable layer."""
    import geopandas as gpd  # noqa: PLC0415 - only to build the files
    import shapely  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20_261_129)  # noqa: S311 - seeded data, not secrets
    west, south, east, north = AREA
    dx, dy = (east - west) / cells, (north - south) / cells
    cells_ij = [(i, j) for i in range(cells) for j in range(cells)]
    boxes = [shapely.box(west + (i + 0.05) * dx, south + (j + 0.05) * dy, west + (i + 0.95) * dx,
                         south + (j + 0.95) * dy) for i, j in cells_ij]  # fmt: skip
    ids = [f"P{i:04d}{j:04d}" for i, j in cells_ij]
    uses = [rng.choice(["farm", "forest", "housing", "water", "road"]) for _ in cells_ij]
    parcels = folder / "soak_parcels.gpkg"
    gpd.GeoDataFrame({"parcel_id": ids, "landuse": uses}, geometry=boxes,
                     crs="EPSG:4326").to_file(parcels)  # fmt: skip
    edits = folder / "soak_edits.gpkg"
    seeds = [shapely.box(west + k * 0.001, south, west + k * 0.001 + 0.0008, south + 0.0008)
             for k in range(3)]  # fmt: skip
    gpd.GeoDataFrame({"code": ["E0", "E1", "E2"], "name": ["seed"] * 3}, geometry=seeds,
                     crs="EPSG:4326").to_file(edits)  # fmt: skip
    return parcels, edits


def _env(url: str) -> dict[str, str]:
    """This environment without SPATIAL_* settings, but for the database ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPATIAL_")}
    return {**env, "SPATIAL_DATABASE_URL": url}


def spatial_cli(*args: str, url: str) -> str:
    """``spatial ARGS`` against ``url`` (no other SPATIAL_* setting inherited); stdout."""
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "spatial"), *args], capture_output=True,
                          text=True, check=False, env=_env(url))  # fmt: skip
    if done.returncode:
        msg = f"spatial {' '.join(args)} failed:\n{done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return done.stdout


def load_data(url: str, folder: Path, cells: int) -> None:
    """Build the files and ingest them into ``url`` with the ``spatial`` CLI."""
    parcels, edits = build_data(folder, cells)
    spatial_cli("ingest", "vector", str(parcels), "--collection", PARCELS, "--key", "parcel_id",
                "--public", url=url)  # fmt: skip
    spatial_cli("ingest", "vector", str(edits), "--collection", EDITS, "--key", "code",
                "--editable", "--public", url=url)  # fmt: skip


@contextlib.contextmanager
def serving(url: str, workers: int, log: Path, **env: str) -> Iterator[tuple[str, int]]:
    """The platform (uvicorn) against ``url`` with ``env``; (base URL, pid) once ready."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
             "--workers", str(workers), "--log-level", "warning", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=ROOT, env={**_env(url), **env}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/health/ready", timeout=10).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    msg = f"the platform did not start; see {log}"
                    raise RuntimeError(msg)
                time.sleep(0.5)
            yield base, process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers)."""
    tree = [pid]
    for p in tree:  # grows as children are found
        with contextlib.suppress(OSError):
            tree += map(int, Path(f"/proc/{p}/task/{p}/children").read_text().split())
    return tree


def vm_rss(pid: int) -> int | None:
    """Resident memory of ``pid`` in bytes (None once it is gone)."""
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        return next(int(v.split()[1]) * 1024 for v in status.splitlines() if v[:6] == "VmRSS:")
    return None


async def paced(rate: float, stop: asyncio.Event, work: Callable[[], Awaitable[None]],
                delay: float = 0.0) -> None:  # fmt: skip
    """Call ``work`` ``rate`` times a second, first after ``delay`` s, until ``stop``."""
    step, due = 1.0 / rate, time.monotonic() + delay
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
        if stop.is_set():
            return
        await work()
        due = max(due + step, time.monotonic() - 1.0)


async def _call(tally: Tally, workload: str, request: Awaitable[Answer]) -> Answer | None:
    try:
        response = await request
    except httpx.HTTPError as exc:
        tally.note(workload, 0, f"{type(exc).__name__}: {exc}")
        return None
    return response if tally.note(workload, response.status_code, response.text) else None


async def gps_device(client: httpx.AsyncClient, tally: Tally, stop: asyncio.Event, *,
                     device: str, rng: random.Random, interval: float) -> None:  # fmt: skip
    """A device driving at 5-20 m/s, a fix every ``interval`` s; each move matches its speed."""
    west, south, east, north = AREA
    lon, lat = rng.uniform(west, east), rng.uniform(south, north)
    heading, speed, last = rng.uniform(0, 360), rng.uniform(5, 20), 0

    async def fix() -> None:
        nonlocal lon, lat, heading, last
        now = max(int(time.time()), last + 1)
        if last:
            metres, angle = speed * (now - last), math.radians(heading)
            lat += metres * math.cos(angle) / 111_320
            lon += metres * math.sin(angle) / (111_320 * math.cos(math.radians(lat)))
            if not (west < lon < east and south < lat < north):
                lon, lat = min(max(lon, west), east), min(max(lat, south), north)
                heading = (heading + 180) % 360
            heading = (heading + rng.gauss(0, 10)) % 360
        last = now
        params = {"id": device, "lat": f"{lat:.6f}", "lon": f"{lon:.6f}", "timestamp": str(now),
                  "speed": f"{speed / 0.514444:.2f}", "bearing": f"{heading:.1f}"}  # fmt: skip
        if await _call(tally, "gps", client.get("/gps/osmand", params=params)) is not None:
            tally.accepted += 1

    await paced(1.0 / interval, stop, fix, delay=rng.uniform(0, interval))


def tile_path(lon: float, lat: float, z: int) -> str:
    """The WebMercatorQuad tile of ``parcels`` holding (lon, lat) at zoom ``z``."""
    col = int((lon + 180) / 360 * 2**z)
    row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    return f"/collections/{PARCELS}/tiles/WebMercatorQuad/{z}/{row}/{col}"


async def edit_cycle(client: httpx.AsyncClient, tally: Tally, rng: random.Random,
                     headers: dict[str, str]) -> None:  # fmt: skip
    """Create a feature, patch it, delete it (each with the ETag of the step before)."""
    n = tally.requests("create")  # cycles run one at a time: a new key each
    west, south, east, north = AREA
    send = {**headers, "Content-Crs": CRS84, "Content-Type": "application/geo+json"}
    x, y, d = rng.uniform(west, east - 0.001), rng.uniform(south, north - 0.001), 0.0005
    ring = [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]
    body = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"code": f"S{n}", "name": "soak"}}  # fmt: skip
    items = f"/collections/{EDITS}/items"
    created = await _call(tally, "create", client.post(items, json=body, headers=send))
    if created is None:
        return
    location = created.headers["location"].split("://", 1)[-1].split("/", 1)[1]
    patch = {"type": "Feature", "properties": {"name": f"patched {n}"}}
    match = {**send, "If-Match": created.headers["etag"]}
    patched = await _call(tally, "patch", client.patch("/" + location, json=patch, headers=match))
    if patched is None:
        return
    await _call(tally, "delete", client.delete(
        "/" + location, headers={**headers, "If-Match": patched.headers["etag"]}))  # fmt: skip


async def sample(client: httpx.AsyncClient, tally: Tally, conn: psycopg.AsyncConnection[Any], *,
                 pid: int, headers: dict[str, str], t: float) -> Sample:  # fmt: skip
    """Read /metrics, pg_stat_activity (but this session) and every server process's RSS."""
    rss = {p: r for p in process_tree(pid) if (r := vm_rss(p)) is not None}
    row = await (await conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()")).fetchone()  # fmt: skip
    reading = Sample(t=t, rss=rss, sessions=int(row[0]) if row else -1)
    response = await _call(tally, "metrics", client.get("/metrics", headers=headers))
    if response is None:
        return reading
    for s in (s for f in text_string_to_metric_families(response.text) for s in f.samples):
        status = s.labels.get("status", "")
        if s.name == "spatial_db_pool_connections":
            reading.pools[s.labels["pool"], s.labels["state"]] = s.value
        elif s.name == "spatial_http_requests_total":
            reading.by_status[status] = reading.by_status.get(status, 0.0) + s.value
        else:
            reading.figures[s.name] = reading.figures.get(s.name, 0.0) + s.value
    return reading


async def run_load(base: str, db_url: str, pid: int, headers: dict[str, str], *,
                   seconds: float, every: float, rates: Rates, prefix: str = "soak",
                   workers: int = 2) -> Report:  # fmt: skip
    """Register the devices, run every workload for ``seconds``, sampling every ``every``
    seconds; count the fixes stored; judge the run (see :func:`judge`)."""
    rng = random.Random(20_261_129)  # noqa: S311 - seeded load, not secrets
    tally, samples, stop = Tally(), [], asyncio.Event()
    devices = [f"{prefix}-{i:03d}" for i in range(rates.devices)]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client,
        await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn,
    ):
        added = [
            await client.post("/gps/devices", json={"id": d}, headers=headers) for d in devices
        ]
        if refused := [a.text[:200] for a in added if a.status_code not in {201, 409}]:
            msg = f"registering the devices: {refused[0]}"
            raise RuntimeError(msg)
        described = (await client.get(f"/collections/{PARCELS}")).json()
        west, south, east, north = described["extent"]["spatial"]["bbox"][0][:4]
        started = time.monotonic()

        async def tile() -> None:
            x, y = rng.uniform(west, east), rng.uniform(south, north)
            await _call(tally, "tiles", client.get(tile_path(x, y, rng.randint(12, 16))))

        async def items() -> None:
            w, h = rng.uniform(0.002, 0.01), rng.uniform(0.002, 0.01)
            x, y = rng.uniform(west, east - w), rng.uniform(south, north - h)
            bbox = f"{x:.6f},{y:.6f},{x + w:.6f},{y + h:.6f}"
            await _call(tally, "items", client.get(f"/collections/{PARCELS}/items",
                                                  params={"bbox": bbox, "limit": 100}))  # fmt: skip

        async def sampler() -> None:
            while not stop.is_set():
                t = time.monotonic() - started
                samples.append(await sample(client, tally, conn, pid=pid, headers=headers, t=t))
                with contextlib.suppress(TimeoutError):
                    pause = max(0.0, every - (time.monotonic() - started - t))
                    await asyncio.wait_for(stop.wait(), pause)

        tasks = [asyncio.create_task(gps_device(
                     client, tally, stop, device=d, rng=random.Random(i),  # noqa: S311
                     interval=rates.fix_interval)) for i, d in enumerate(devices)]  # fmt: skip
        edit = functools.partial(edit_cycle, client, tally, rng, headers)
        for rate, work, concurrency in ((rates.tiles, tile, 4), (rates.items, items, 2),
                                        (rates.edit_cycles, edit, 1)):  # fmt: skip
            tasks += [asyncio.create_task(paced(rate / concurrency, stop, work))
                      for _ in range(concurrency)]  # fmt: skip
        tasks.append(asyncio.create_task(sampler()))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        for _ in range(10):  # settle: once the load is over nothing stays in use (but leaks)
            await asyncio.sleep(1.0)
            final = await sample(client, tally, conn, pid=pid, headers=headers, t=elapsed)
            if not any(v for (_, state), v in final.pools.items() if state == "in_use"):
                break
        row = await (await conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, time)) FROM gps.positions "
            "WHERE device_id = ANY(%s)", (devices,))).fetchone()  # fmt: skip
    stored, distinct = (int(row[0]), int(row[1])) if row else (0, 0)
    return judge(Report(seconds=elapsed, tally=tally, samples=samples, final=final,
                        stored=stored, distinct=distinct, workers=workers))  # fmt: skip


def slope_mb_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, bytes) in MB per hour (0 with fewer than 2 times)."""
    if len({t for t, _ in points}) < 2:
        return 0.0
    fit = statistics.linear_regression([t for t, _ in points], [v for _, v in points])
    return fit.slope * 3600 / 1e6


def memory(report: Report) -> dict[int, tuple[float, float, float, float]]:
    """By server pid: RSS first- and last-quarter medians (MB), slope over the second half
    (MB/h), growth over the second half by that slope (MB)."""
    samples, span, out = report.samples, report.seconds, {}
    for pid in report.samples[0].rss if samples else []:
        points = [(s.t, float(s.rss[pid])) for s in samples if pid in s.rss]
        first = [v for t, v in points if t <= span / 4] or [points[0][1]]
        last = [v for t, v in points if t >= span * 3 / 4] or [points[-1][1]]
        half = [(t, v) for t, v in points if t >= span / 2]
        slope = slope_mb_per_hour(half)  # MB/h, so x (span / 2) / 3600 s for the MB grown
        out[pid] = (statistics.median(first) / 1e6, statistics.median(last) / 1e6, slope,
                    slope * span / 7200)  # fmt: skip
    return out


def session_limit(report: Report) -> int:
    """The most sessions the server may hold: each worker's pools full, and its extras."""
    pool_max = max((s.figures.get("spatial_db_pool_max", 0.0) for s in report.samples), default=0)
    return int(report.workers * (pool_max + EXTRA_PER_WORKER))


def judge(report: Report) -> Report:
    """Fill ``report.problems`` and ``report.lines`` (the summary); the report."""
    tally, seconds, lines = report.tally, report.seconds, report.lines
    for workload in EXPECTED:
        n = tally.requests(workload)
        statuses = ", ".join(f"{s}: {c}" for (w, s), c in sorted(tally.statuses.items())
                             if w == workload)  # fmt: skip
        lines.append(f"{workload:8} {n:8,} requests {n / seconds:7.1f}/s  ({statuses})")
    if tally.error_count:
        report.problems.append(f"{tally.error_count} errors, e.g. {tally.errors[:5]}")
    lines.append(f"gps fixes accepted {tally.accepted:,}, stored {report.stored:,} "
                 f"({report.distinct:,} distinct device/time)")  # fmt: skip
    if not (tally.accepted == report.stored == report.distinct):
        report.problems.append(f"fixes accepted {tally.accepted} != stored {report.stored} "
                               f"(distinct {report.distinct})")  # fmt: skip
    for pid, (first, last, slope, growth) in memory(report).items():
        lines.append(f"rss pid {pid}: first quarter {first:.1f} MB, last quarter {last:.1f} MB, "
                     f"second half {slope:+.1f} MB/h ({growth:+.1f} MB)")  # fmt: skip
    sessions = [*(s.sessions for s in report.samples), report.final.sessions]
    limit = session_limit(report)
    lines.append(f"db sessions min {min(sessions)}, max {max(sessions)}, after warm-up "
                 f"{warm_sessions(report)}, at the end {report.final.sessions} (limit {limit}); "
                 f"pool waiting at the end {waiting(report.final):g}, pools at the end "
                 f"{dict(sorted(report.final.pools.items()))}")  # fmt: skip
    if max(sessions) > limit:
        report.problems.append(f"{max(sessions)} database sessions, over the limit {limit}")
    return report


def waiting(reading: Sample) -> float:
    """Requests waiting for a pooled connection (both pools of the scraped worker)."""
    return reading.figures.get("spatial_db_pool_waiting", 0.0)


def warm_sessions(report: Report) -> int:
    """The most sessions during the warm-up (the first quarter of the run)."""
    early = [s.sessions for s in report.samples if s.t <= report.seconds / 4]
    return max(early, default=report.final.sessions)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when it passed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    for flag, kind, default, what in (("--minutes", float, 10.0, "minutes of load"),
                                      ("--sample", float, 5.0, "seconds between samples"),
                                      ("--devices", int, 100, "GPS devices"),
                                      ("--cells", int, 200, "parcels grid side")):  # fmt: skip
        parser.add_argument(flag, type=kind, default=default, help=f"{what} [{default:g}]")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--no-tile-cache", action="store_true", help="SPATIAL_TILES_CACHE_MB=0")
    args = parser.parse_args(argv)
    from ingest import _prepare_database, _say, _server_versions  # noqa: PLC0415

    target = _prepare_database(DATABASE)
    _say(f"loading {args.cells}x{args.cells} parcels and the editable layer into {DATABASE}")
    load_data(target.url, WORK / "data", args.cells)
    spatial_cli("user", "add", "soak_admin", "--service", "--role", "admin", url=target.url)
    key = spatial_cli("user", "key", "create", "soak_admin", url=target.url).strip().split()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    rates = Rates(devices=args.devices)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
    cache = {"SPATIAL_TILES_CACHE_MB": "0"} if args.no_tile_cache else {}
    with serving(target.url, 2, WORK / "platform.log", **cache) as (base, pid):
        _say(f"platform at {base} (pid {pid}); {args.minutes:g} min of load, rates {rates}")
        report = asyncio.run(run_load(base, target.url, pid, headers, seconds=args.minutes * 60,
                                      every=args.sample, rates=rates))  # fmt: skip
    for line in report.lines + [f"PROBLEM: {p}" for p in report.problems]:
        _say(line)
    if not args.no_record:
        _record(report, args, rates, server)
    return 1 if report.problems else 0


def _record(report: Report, args: argparse.Namespace, rates: Rates, server: str) -> None:
    from ingest import _git_revision  # noqa: PLC0415

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "passed" if not report.problems else "FAILED: " + "; ".join(report.problems)
    setup = (f"- platform at {_git_revision()}, 2 uvicorn workers"
             f"{', no tile cache' * args.no_tile_cache}; {args.cells}x{args.cells} parcels; "
             f"{rates.devices} devices, a fix every {rates.fix_interval:g} s each; tiles "
             f"{rates.tiles:g}/s, items {rates.items:g}/s, {rates.edit_cycles:g} edit cycles/s; "
             f"sampled every {args.sample:g} s")  # fmt: skip
    lines = [
        f"## {now} · soak: GPS ingest, tiles, items and edits at once, {args.minutes:g} min", "",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}", setup, "", "```",
        *report.lines, "```", "", f"- **{verdict}**", "",
    ]  # fmt: skip
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
