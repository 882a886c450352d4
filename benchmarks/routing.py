"""Routing benchmark: a synthetic city of 100,000+ road edges, built and routed on.

The city (generated here, seeded): a grid of ``--size`` x ``--size`` crossings 120 m
apart in EPSG:4546 around the demo city, its streets drawn as ways of four blocks (as map
data comes), every tenth street an arterial, every fifth a secondary road, the rest local;
225 gives 100,800 edges. It is loaded by ``spatial ingest vector`` into the scratch
database ``spatial_bench_routing`` and then measured, all on the same PostGIS:

- the network build, ``spatial network build`` timed as a whole process (goal: 60 s at
  most for 100,000 edges);
- ``route``: ``POST /processes/route/execution`` between seeded random pairs of points
  (each 8 m off a street), ``wrk -t2 -c8`` on ``api.main:app_factory`` (2 uvicorn
  workers), against the limit: the bare ``pgr_dijkstra`` between the vertices nearest
  the same points, on the same edges, by ``pgbench`` on 8 connections (goal: 0.8 of it);
- ``closest-facility``: the 5 nearest of 50 seeded facilities from random points, the
  same way, against ``pgr_dijkstraCost`` from the point's vertex to the 50 and
  ``pgr_dijkstra`` to the 5 nearest (goal: 0.5 of it).

Before the load, the platform's answers are checked against the limit's SQL: for 10
pairs the route's seconds, and for 5 points the 5 nearest facilities' seconds, must be
within the time of one block at each end (the limit routes between the vertices nearest
the points, the platform from the points themselves), or the run stops.

Each of route and closest-facility is measured in ``--rounds`` rounds (3), the limit and
the platform in turn, alternating which goes first; the ratios are of the medians.

Usage: ``.venv/bin/python benchmarks/routing.py [--size 225] [--duration 15] [--rounds 3]
[--no-record]``. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import psycopg
from features import Side, _quiet, _serving, _wrk, run_pgbench
from ingest import (
    RESULTS,
    ROOT,
    BenchmarkError,
    Target,
    _env,
    _git_revision,
    _prepare_database,
    _say,
    _server_versions,
    _spatial,
)
from pyproj import Transformer
from shapely.geometry import LineString, Point

DATABASE = "spatial_bench_routing"
WORK = ROOT / "var" / "bench" / "routing"
SPACING = 120.0
ORIGIN = (585_000.0, 2_520_000.0)
"""The grid's south-west corner in EPSG:4546 (west of the demo city)."""
WAY_BLOCKS = 4
PAIRS, FACILITIES, NEAREST = 500, 50, 5
GOAL_BUILD_S, GOAL_ROUTE, GOAL_CLOSEST = 60.0, 0.8, 0.5
SLOWEST_KMH = 25.0
"""The speeds file's slowest class (its default): one block at each end of a way at this
speed is how far the platform's seconds may be from the limit's."""
CHECKED = 10
EDGES = "SELECT id, source, target, cost, reverse_cost FROM net.edges WHERE network = 'bench_roads'"
"""The limit's edges query: the network's edges, as pgr_dijkstra takes them."""
SEED = 20_261_207
TO_LONLAT = Transformer.from_crs(4546, 4326, always_xy=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails or disagrees."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=225, help="crossings per side of the grid")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side (medians)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    try:
        return _run(size=args.size, duration=args.duration, rounds_n=args.rounds,
                    record=not args.no_record)  # fmt: skip
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


def city(size: int, path: Path) -> int:
    """The grid's streets as ways, written to ``path``; the number of ways."""
    x0, y0 = ORIGIN
    rows: list[tuple[str, str, str, LineString]] = []
    for k in range(size):
        cls = "arterial" if k % 10 == 0 else "secondary" if k % 5 == 0 else "local"
        across = k * SPACING
        for start in range(0, size - 1, WAY_BLOCKS):
            steps = [i * SPACING for i in range(start, min(start + WAY_BLOCKS, size - 1) + 1)]
            rows.append((f"H{k}-{start}", f"东西{k}路", cls,
                         LineString([(x0 + d, y0 + across) for d in steps])))  # fmt: skip
            rows.append((f"V{k}-{start}", f"南北{k}路", cls,
                         LineString([(x0 + across, y0 + d) for d in steps])))  # fmt: skip
    frame = gpd.GeoDataFrame(
        {"road_id": [r[0] for r in rows], "name": [r[1] for r in rows],
         "class": [r[2] for r in rows]},
        geometry=[r[3] for r in rows], crs="EPSG:4546",
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_file(path, driver="GPKG")
    return len(rows)


def _points(size: int, count: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Seeded points 8 m off a street, in lon/lat."""
    x0, y0 = ORIGIN
    found = []
    for _ in range(count):
        i, j = int(rng.integers(size - 1)), int(rng.integers(size))
        x, y = x0 + (i + float(rng.random())) * SPACING, y0 + j * SPACING + 8.0
        lon, lat = TO_LONLAT.transform(x, y)
        found.append((round(lon, 7), round(lat, 7)))
    return found


def _run(*, size: int, duration: int, rounds_n: int, record: bool) -> int:
    target = _prepare_database(DATABASE)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
    source = WORK / f"city_{size}.gpkg"
    ways = city(size, source)
    env = _env(SPATIAL_DATABASE_URL=target.url)
    _spatial("ingest", "vector", str(source), "--collection", "bench_roads", "--key", "road_id",
             "--public", env=env)  # fmt: skip
    speeds = WORK / "speeds.yaml"
    speeds.write_text(f"default: {SLOWEST_KMH:g}\n"
                      "classes: {arterial: 50, secondary: 40, local: 30}\n")  # fmt: skip
    started = time.perf_counter()
    built = _spatial("network", "build", "bench_roads", "--speeds", str(speeds), env=env)
    build_s = time.perf_counter() - started
    edges = int(re.search(r"(\d+) edges", built)[1])  # type: ignore[index]
    _say(f"{ways:,} ways → {edges:,} edges, built in {build_s:.1f} s")
    rng = np.random.default_rng(SEED)
    pairs = list(zip(_points(size, PAIRS, rng), _points(size, PAIRS, rng), strict=True))
    facilities = _points(size, FACILITIES, rng)
    origins = _points(size, PAIRS, rng)
    _facilities(target, facilities)
    limits = _limit_scripts(target, pairs, origins)
    side = Side("platform", [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory",
                             "--factory", "--workers", "2", "--log-level", "warning"],
                env, "http://127.0.0.1:{port}/collections")  # fmt: skip
    route_bodies: list[dict[str, object]] = [
        {"network": "bench_roads", "from": a, "to": b} for a, b in pairs
    ]
    closest_bodies: list[dict[str, object]] = [
        {"network": "bench_roads", "point": p, "collection": "bench_facilities", "k": NEAREST}
        for p in origins
    ]
    rounds: dict[str, list[float]] = {}
    wrk = shutil.which("wrk") or "wrk"
    load = [os.getloadavg()]
    with _serving(side) as port:
        _agree(target, port, route_bodies, closest_bodies)
        for name, process, bodies in (("route", "route", route_bodies),
                                      ("closest", "closest-facility", closest_bodies)):  # fmt: skip
            script = _post_script(WORK / f"{name}.lua", f"/processes/{process}/execution", bodies)
            for number in range(rounds_n):
                # alternate which goes first: neither always runs after the other's load
                for which in ("limit", "platform") if number % 2 == 0 else ("platform", "limit"):
                    _quiet(target)
                    if which == "limit":
                        rate = run_pgbench(target, limits[name], duration, clients=8)
                    else:
                        rate = _wrk(wrk, Side(name, [], {}, ""), port, script, duration)
                    rounds.setdefault(f"{name} {which}", []).append(rate)
                _say(f"{name} round {number + 1}: platform {rounds[f'{name} platform'][-1]:.1f}/s, "
                     f"limit {rounds[f'{name} limit'][-1]:.1f}/s")  # fmt: skip
    load.append(os.getloadavg())
    rates = {key: statistics.median(values) for key, values in rounds.items()}
    if record:
        _record(size=size, ways=ways, edges=edges, build_s=build_s, rates=rates, rounds=rounds,
                server=server, duration=duration, load=load)  # fmt: skip
    _verdict(build_s, edges, rates)
    return 0


def _facilities(target: Target, points: list[tuple[float, float]]) -> None:
    path = WORK / "facilities.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": f"站{i}"},
         "geometry": Point(lon, lat).__geo_interface__} for i, (lon, lat) in enumerate(points)
    ]}))  # fmt: skip
    _spatial("ingest", "vector", str(path), "--collection", "bench_facilities", "--public",
             env=_env(SPATIAL_DATABASE_URL=target.url))  # fmt: skip


def _limit_scripts(
    target: Target, pairs: list[tuple[tuple[float, float], tuple[float, float]]],
    origins: list[tuple[float, float]],
) -> dict[str, Path]:  # fmt: skip
    """pgbench scripts of the bare pgRouting work: the vertices nearest the same points
    stored once, then ``pgr_dijkstra`` (route) or ``pgr_dijkstraCost`` to the 50 and
    ``pgr_dijkstra`` to the 5 nearest (closest facility), on the network's edges."""
    nearest = (
        "(SELECT v.id FROM net.vertices v WHERE v.network = 'bench_roads' ORDER BY "
        "v.geom <-> ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4326), 4546) LIMIT 1)"
    )
    edges = EDGES.replace("'", "''")  # inside the scripts' quotes
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute("DROP TABLE IF EXISTS bench.pairs, bench.origins, bench.stations")
        conn.execute("CREATE TABLE bench.pairs (i int PRIMARY KEY, a bigint, b bigint)")
        conn.execute("CREATE TABLE bench.origins (i int PRIMARY KEY, a bigint)")
        for i, ((ax, ay), (bx, by)) in enumerate(pairs):
            conn.execute(f"INSERT INTO bench.pairs VALUES (%s, {nearest}, {nearest})",  # noqa: S608 - constant text
                         (i, ax, ay, bx, by))  # fmt: skip
        for i, (x, y) in enumerate(origins):
            conn.execute(f"INSERT INTO bench.origins VALUES (%s, {nearest})", (i, x, y))  # noqa: S608 - constant text
        conn.execute(
            "CREATE TABLE bench.stations AS SELECT array_agg((SELECT v.id FROM net.vertices v "
            "WHERE v.network = 'bench_roads' ORDER BY v.geom <-> ST_Transform(t.geom, 4546) "
            "LIMIT 1)) AS ids FROM layers.bench_facilities t"
        )
    route = WORK / "route_limit.sql"
    route.write_text(f"\\set i random(0, {len(pairs) - 1})\n"
                     f"SELECT count(*) FROM bench.pairs p, pgr_dijkstra('{edges}', p.a, p.b) "
                     "WHERE p.i = :i;\n")  # fmt: skip
    closest = WORK / "closest_limit.sql"
    origin = "(SELECT a FROM bench.origins WHERE i = :i)"
    five = "(SELECT array_agg(end_vid) FROM (SELECT end_vid FROM pgr_dijkstraCost('{e}', {o}, "
    five += "(SELECT ids FROM bench.stations)) ORDER BY agg_cost LIMIT {k}) n)"
    query = "SELECT count(*) FROM pgr_dijkstra('{e}', {o}, " + five + ");"  # noqa: S608 - a pgbench script of constants
    query = query.format(e=edges, o=origin, k=NEAREST)  # a pgbench script of constants
    closest.write_text(f"\\set i random(0, {len(origins) - 1})\n{query}\n")
    return {"route": route, "closest": closest}


def _agree(
    target: Target, port: int, routes: list[dict[str, object]],
    closest: list[dict[str, object]],
) -> None:  # fmt: skip
    """Stop the run unless the platform's seconds match the limit's SQL: the first
    routes, and the nearest facilities of the first points, each within one block at
    each end (the limit starts and ends at the vertices nearest the points)."""
    slack = 2 * SPACING / (SLOWEST_KMH / 3.6)
    with psycopg.connect(target.url, autocommit=True) as conn, httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=120
    ) as api:  # fmt: skip
        for i, body in enumerate(routes[:CHECKED]):
            answer = api.post("/processes/route/execution", json={"inputs": body})
            answer.raise_for_status()
            seconds = answer.json()["route"]["properties"]["seconds"]
            row = conn.execute(
                "SELECT coalesce(sum(d.agg_cost), 0) FROM bench.pairs p, pgr_dijkstraCost("
                "%s, p.a, p.b) d WHERE p.i = %s", (EDGES, i),
            ).fetchone()  # fmt: skip
            _close(f"route {i}", [seconds], [float(row[0]) if row else -1.0], slack)
        for i, body in enumerate(closest[: CHECKED // 2]):
            answer = api.post("/processes/closest-facility/execution", json={"inputs": body})
            answer.raise_for_status()
            found = answer.json()["facilities"]["features"]
            rows = conn.execute(
                "SELECT d.agg_cost FROM bench.origins o, pgr_dijkstraCost(%s, o.a, "
                "(SELECT ids FROM bench.stations)) d WHERE o.i = %s ORDER BY d.agg_cost "
                "LIMIT %s", (EDGES, i, NEAREST),
            ).fetchall()  # fmt: skip
            _close(f"closest-facility {i}", [f["properties"]["seconds"] for f in found],
                   [float(r[0]) for r in rows], slack)  # fmt: skip
    _say(f"answers agree with the limit's SQL (within {slack:.1f} s)")


def _close(what: str, platform: list[float], limit: list[float], slack: float) -> None:
    if len(platform) != len(limit) or any(
        abs(a - b) > slack for a, b in zip(platform, limit, strict=True)
    ):
        msg = f"{what}: the platform's seconds {platform} are not the limit's {limit}"
        raise BenchmarkError(msg)


def _post_script(lua: Path, path: str, bodies: list[dict[str, object]]) -> Path:
    """A wrk Lua script POSTing each JSON body in turn to ``path``."""
    lua.parent.mkdir(parents=True, exist_ok=True)
    lua.write_text(
        "local bodies = {" + ",".join(json.dumps(json.dumps({"inputs": b})) for b in bodies) + "}\n"
        "local i = 0\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        f'  return wrk.format("POST", {json.dumps(path)}, nil, bodies[i])\n'
        "end\n"
    )
    return lua


def _verdict(build_s: float, edges: int, rates: dict[str, float]) -> None:
    met = {True: "met", False: "NOT met"}
    route = rates["route platform"] / rates["route limit"]
    closest = rates["closest platform"] / rates["closest limit"]
    _say(f"build {build_s:.1f} s for {edges:,} edges (goal <= {GOAL_BUILD_S:g} s: "
         f"{met[build_s <= GOAL_BUILD_S]})")  # fmt: skip
    _say(f"ratio route/limit {route:.2f} (goal >= {GOAL_ROUTE}: {met[route >= GOAL_ROUTE]})")
    _say(f"ratio closest-facility/limit {closest:.2f} (goal >= {GOAL_CLOSEST}: "
         f"{met[closest >= GOAL_CLOSEST]})")  # fmt: skip


def _record(*, size: int, ways: int, edges: int, build_s: float, rates: dict[str, float],
            rounds: dict[str, list[float]], server: str, duration: int,
            load: list[tuple[float, float, float]]) -> None:  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    count = len(rounds["route limit"])
    lines = [
        f"\n## {now} · routing, a synthetic city of {edges:,} edges\n",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}",
        (
            f"- a {size} x {size} grid, {ways:,} ways of {WAY_BLOCKS} blocks; {PAIRS} seeded "
            f"pairs, {FACILITIES} facilities ({NEAREST} nearest); wrk -t2 -c8 -d{duration}s "
            f"(2 uvicorn workers); the limits: pgbench on 8 connections; {count} rounds of "
            "limit and platform in turn, alternating which goes first (medians)"
        ),
        "- load average (1, 5, 15 min) at the start {}; at the end {}".format(
            *(", ".join(f"{x:.1f}" for x in each) for each in (load[0], load[-1]))
        ),
        f"- platform at {_git_revision()}\n",
        "| measure | platform | limit | ratio (goal) | rounds: platform / limit |",
        "|---|---:|---:|---|---|",
        f"| network build | {build_s:.1f} s | | (≤ {GOAL_BUILD_S:g} s) | |",
    ]
    for name, label, goal in (("route", "route", GOAL_ROUTE),
                              ("closest", "closest-facility", GOAL_CLOSEST)):  # fmt: skip
        p, lim = rates[f"{name} platform"], rates[f"{name} limit"]
        each = " / ".join(", ".join(f"{x:.1f}" for x in rounds[f"{name} {side}"])
                          for side in ("platform", "limit"))  # fmt: skip
        lines.append(f"| {label} | {p:.1f}/s | {lim:.1f}/s | {p / lim:.2f} (≥ {goal}) | {each} |")
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
