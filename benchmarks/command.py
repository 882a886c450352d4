"""Dispatch benchmark: candidates for an incident among 200 live units, by road ETA.

On the synthetic city of :mod:`routing` (a ``--size`` x ``--size`` grid; 225 gives 100,800
edges), loaded into the scratch database ``spatial_bench_command``: ``--units`` fire
engines (200) with a fresh fix each at seeded points 8 m off a street, and 20 incidents
reported at other seeded points through ``POST /incidents``. Then ``POST
/incidents/{id}/candidates`` (every unit ranked by road travel time, the 5 best with their
routes) is asked ``--requests`` times (400) in turn over the incidents, one request at a
time, on the platform served by 2 uvicorn workers; each answer's latency is the time from
sending the request to reading the whole answer (httpx, keep-alive). Goal: p95 at most
300 ms. No peer serves this; the figure is the platform's alone.

Usage: ``.venv/bin/python benchmarks/command.py [--size 225] [--units 200]
[--requests 400] [--no-record]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import time
from datetime import UTC, datetime

import httpx
import numpy as np
import psycopg
from features import Side, _serving
from ingest import (
    RESULTS,
    ROOT,
    BenchmarkError,
    _env,
    _git_revision,
    _prepare_database,
    _say,
    _server_versions,
    _spatial,
)
from routing import SEED, _points, city

from spatial import accounts
from spatial.audit import Actor
from spatial.db import engine
from spatial.gps import store
from spatial.gps.fix import Fix
from spatial.settings import GpsSettings

DATABASE = "spatial_bench_command"
WORK = ROOT / "var" / "bench" / "command"
INCIDENTS = 20
GOAL_P95_MS = 300.0
BENCH = Actor("benchmark")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=225, help="crossings per side of the grid")
    parser.add_argument("--units", type=int, default=200, help="live units")
    parser.add_argument("--requests", type=int, default=400, help="candidates requests")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    try:
        return _run(args.size, args.units, args.requests, record=not args.no_record)
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


def _run(size: int, units: int, requests: int, *, record: bool) -> int:
    target = _prepare_database(DATABASE)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
    source = WORK / f"city_{size}.gpkg"
    city(size, source)
    env = _env(SPATIAL_DATABASE_URL=target.url, SPATIAL_COMMAND_NETWORK="bench_roads",
               SPATIAL_COMMAND_STALE_AFTER_S="86400")  # fmt: skip
    _spatial("ingest", "vector", str(source), "--collection", "bench_roads", "--key", "road_id",
             "--public", env=env)  # fmt: skip
    speeds = WORK / "speeds.yaml"
    speeds.write_text("default: 25\nclasses: {arterial: 50, secondary: 40, local: 30}\n")
    built = _spatial("network", "build", "bench_roads", "--speeds", str(speeds), env=env)
    edges = int(re.search(r"(\d+) edges", built)[1])  # type: ignore[index]
    rng = np.random.default_rng(SEED + 1)
    key = _units(target.url, _points(size, units, rng))
    scenes = _points(size, INCIDENTS, rng)
    side = Side("command", [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory",
                            "--factory", "--workers", "2", "--log-level", "warning"],
                env, "http://127.0.0.1:{port}/collections")  # fmt: skip
    with (
        _serving(side) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                     headers={"Authorization": f"Bearer {key}"}) as client,
    ):  # fmt: skip
        incidents = []
        for lon, lat in scenes:
            answer = client.post("/incidents", json={"kind": "fire", "lon": lon, "lat": lat})
            _ok(answer, 201)
            incidents.append(answer.json()["properties"]["incident_id"])
        for incident in incidents[:4]:  # warm both workers' pools and caches
            _ok(client.post(f"/incidents/{incident}/candidates", json={}), 200)
        took, ranked = [], 0
        for n in range(requests):
            started = time.perf_counter()
            answer = client.post(f"/incidents/{incidents[n % INCIDENTS]}/candidates", json={})
            took.append((time.perf_counter() - started) * 1000)
            _ok(answer, 200)
            said = answer.json()
            ranked = max(ranked, len(said["candidates"]) + said["more"])
    p50, p95, p99 = (float(np.percentile(took, q)) for q in (50, 95, 99))
    met = "met" if p95 <= GOAL_P95_MS else "NOT met"
    _say(f"{edges:,} edges, {units} units ({ranked} ranked at most), {requests} requests: "
         f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms (goal p95 <= "
         f"{GOAL_P95_MS:g} ms: {met})")  # fmt: skip
    if record:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"\n## {now} · dispatch candidates, {units} live units on {edges:,} edges\n",
            f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}",
            (
                f"- a {size} x {size} grid; {INCIDENTS} incidents, {requests} requests one at a "
                "time (every unit ranked, the 5 best routed); 2 uvicorn workers"
            ),
            f"- platform at {_git_revision()}\n",
            "| measure | p50 | p95 | p99 | goal |",
            "|---|---:|---:|---:|---|",
            (
                f"| candidates | {p50:.0f} ms | {p95:.0f} ms | {p99:.0f} ms | p95 ≤ "
                f"{GOAL_P95_MS:g} ms: {met} |"
            ),
        ]
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
    return 0


def _units(url: str, points: list[tuple[float, float]]) -> str:
    """Fire engines at ``points`` with a fix each (now); an emergency editor's key."""
    with psycopg.connect(url, autocommit=True) as conn:
        now = dt.datetime.now(dt.UTC)
        for i, (lon, lat) in enumerate(points):
            device = f"bench-fire-{i:03d}"
            store.add_device(conn, device, department="emergency", actor=BENCH)
            conn.execute(
                "INSERT INTO cmd.units (device_id, kind) VALUES (%s, 'fire-engine')", (device,)
            )
            fix = Fix(time=now, lon=lon, lat=lat, device=device)
            store.store(conn, [fix], source="benchmark", settings=GpsSettings())
    with engine(url) as eng, eng.begin() as conn:
        accounts.add_user(conn, BENCH, "bench_dispatcher", roles=("editor",),
                          department="emergency", service=True)  # fmt: skip
        return accounts.create_key(conn, BENCH, "bench_dispatcher", name="benchmark")


def _ok(answer: httpx.Response, status: int) -> None:
    if answer.status_code != status:
        msg = f"{answer.request.url} answered {answer.status_code}: {answer.text[:300]}"
        raise BenchmarkError(msg)


if __name__ == "__main__":
    sys.exit(main())
