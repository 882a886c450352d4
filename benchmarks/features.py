"""Features benchmark: bbox pages of the 200k-parcel layer, the platform against its peers.

One run, the same PostGIS, the same table (the "parcels" reference set ingested by
``spatial ingest vector`` into a scratch database), the same 500 seeded bbox windows
(0.012° squares inside the extent, ``limit=1000``, about 450 parcels each):

- the platform: ``api.main:app_factory`` under uvicorn, 2 workers;
- tipg: ``tipg.main:app`` under uvicorn, 2 workers, on the ``layers`` schema;
- stock pygeoapi: ``pygeoapi.starlette_app`` under uvicorn, 2 workers, with its
  PostgreSQL provider on the same rows (a copy labelled EPSG:4326: pygeoapi swaps the
  bbox axes for EPSG:4490 storage and finds nothing);
- the limit: the platform's own page SQL (the FeatureCollection built by PostGIS) run
  straight on PostGIS by ``pgbench`` on 2 connections, no HTTP server.

Load comes from ``wrk -t2 -c8`` for each server in turn (a short warm-up first, and
only once the database has no query left from the previous side); every response must
be a 200. The peers live in their own virtualenv under
``var/bench/peers/`` (created on first use from PyPI). Before measuring, the numbers of
features returned for a few windows must agree between all servers. The last lines are
requests per second and the ratios against the goals (platform ≥ 5 x tipg, ≥ 0.6 x the
limit); ``benchmarks/RESULTS.md`` gets the same figures.

Usage: ``.venv/bin/python benchmarks/features.py [--size 200000] [--duration 15]
[--no-record]``. Needs ``wrk`` (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import parcels
import psycopg
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
from psycopg.conninfo import conninfo_to_dict

from spatial import features
from spatial.catalog import get_collection
from spatial.db import engine

DATABASE = "spatial_bench_features"
COLLECTION = "bench_parcels"
WINDOWS = 500
WINDOW_DEG = 0.012
EXTENT = (112.0, 22.85, 112.27, 23.12)
LIMIT = 1000
PEERS = ROOT / "var" / "bench" / "peers"
PEER_PACKAGES = ("tipg", "pygeoapi", "psycopg2-binary", "geoalchemy2", "uvicorn")
WORK = ROOT / "var" / "bench" / "features"
GOAL_TIPG = 5.0
GOAL_LIMIT = 0.6


@dataclass(frozen=True)
class Side:
    """One measured server: how to start it and its items URL for a window."""

    name: str
    command: list[str]
    env: dict[str, str]
    items: str
    """Items URL template with ``{port}`` and ``{bbox}``."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails or disagrees."""
    return command_line(_run, __doc__ or "", argv)


def command_line(run: Callable[..., int], doc: str, argv: list[str] | None) -> int:
    """The options every load benchmark takes, then ``run(size=, duration=, record=)``."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=parcels.DEFAULT_SIZE, help="parcels")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per side")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    try:
        return run(size=args.size, duration=args.duration, record=not args.no_record)
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


def load_reference(size: int) -> tuple[str, Target]:
    """``wrk``'s path, and the scratch database holding the reference parcels (ingested by
    ``spatial ingest vector``, analysed)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        msg = "wrk is not installed (Debian: apt-get install wrk)"
        raise BenchmarkError(msg)
    source = parcels.build(parcels.default_path(size), size)
    target = _prepare_database(DATABASE)
    _say(f"loading {source.name} into {DATABASE} with spatial ingest vector")
    _spatial(
        "ingest", "vector", str(source), "--collection", COLLECTION, "--key", "parcel_id",
        "--public",
        env=_env(SPATIAL_DATABASE_URL=target.url),
    )  # fmt: skip
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(f"ANALYZE layers.{COLLECTION}")
    return wrk, target


def _run(*, size: int, duration: int, record: bool) -> int:
    wrk, target = load_reference(size)
    with psycopg.connect(target.url, autocommit=True) as conn:
        # Stock pygeoapi swaps the bbox axes for a lat/lon storage CRS such as EPSG:4490
        # (and then finds nothing); it reads a copy labelled EPSG:4326 instead: the same
        # rows and coordinates, the same primary key and GiST index.
        conn.execute("DROP TABLE IF EXISTS bench.parcels_4326")
        conn.execute(
            "CREATE TABLE bench.parcels_4326 AS SELECT fid, parcel_id, land_use, district, "
            "owner_type, registered, ST_SetSRID(geom, 4326)::geometry(Polygon, 4326) AS geom "
            "FROM layers.bench_parcels"
        )
        conn.execute("ALTER TABLE bench.parcels_4326 ADD PRIMARY KEY (fid)")
        conn.execute("CREATE INDEX ON bench.parcels_4326 USING gist (geom)")
        conn.execute("ANALYZE bench.parcels_4326")
        server = _server_versions(conn)
    WORK.mkdir(parents=True, exist_ok=True)
    windows = _windows()
    python = _peers()
    sides = _sides(target, python)
    rates: dict[str, float] = {}
    _quiet(target)
    rates["limit"] = _limit(target, windows, duration)
    _say(f"{'limit':9} {rates['limit']:8.1f} requests/s (pgbench, 2 connections)")
    with ExitStack() as stack:
        ports = {side.name: stack.enter_context(_serving(side)) for side in sides}
        _agree(sides, ports, windows[:5])
        for side in sides:
            script = _wrk_script(side, ports[side.name], windows)
            _quiet(target)
            rates[side.name] = _wrk(wrk, side, ports[side.name], script, duration)
            _say(f"{side.name:9} {rates[side.name]:8.1f} requests/s")
    if record:
        _record(size=size, duration=duration, rates=rates, server=server)
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    _verdict(rates)
    return 0


def _quiet(target: Target, timeout: float = 120) -> None:
    """Wait until no other session runs a query (a slow peer's requests outlive wrk)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(target.url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()
            if not row or row[0] == 0 or time.monotonic() > deadline:
                return
            time.sleep(0.2)


def _windows() -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(20261128)
    west, south, east, north = EXTENT
    xs = rng.uniform(west, east - WINDOW_DEG, WINDOWS)
    ys = rng.uniform(south, north - WINDOW_DEG, WINDOWS)
    return [
        (round(x, 6), round(y, 6), round(x + WINDOW_DEG, 6), round(y + WINDOW_DEG, 6))
        for x, y in zip(xs, ys, strict=True)
    ]


def _peers() -> Path:
    """The peers' virtualenv (created and filled from PyPI the first time)."""
    python = PEERS / "venv" / "bin" / "python"
    if not python.exists():
        _say(f"creating {PEERS.relative_to(ROOT)}/venv with {', '.join(PEER_PACKAGES)}")
        subprocess.run([sys.executable, "-m", "venv", str(PEERS / "venv")], check=True)
    missing = subprocess.run(
        [str(python), "-c", "import tipg, pygeoapi, psycopg2, geoalchemy2, uvicorn"],
        capture_output=True,
        check=False,
    )
    if missing.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
    return python


def _sides(target: Target, python: Path) -> list[Side]:
    uvicorn = [str(python), "-m", "uvicorn"]
    window = "bbox={bbox}&limit=" + str(LIMIT)
    return [
        Side(
            "platform",
            [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
             "--workers", "2", "--log-level", "warning"],
            _env(SPATIAL_DATABASE_URL=target.url),
            f"http://127.0.0.1:{{port}}/collections/{COLLECTION}/items?{window}",
        ),
        Side(
            "tipg",
            [*uvicorn, "tipg.main:app", "--workers", "2", "--log-level", "warning"],
            _env(DATABASE_URL=tipg_url(target), TIPG_DB_SCHEMAS='["layers"]',
                 TIPG_DB_TABLES=f'["layers.{COLLECTION}"]'),
            f"http://127.0.0.1:{{port}}/collections/layers.{COLLECTION}/items?{window}",
        ),
        Side(
            "pygeoapi",
            [*uvicorn, "pygeoapi.starlette_app:APP", "--workers", "2", "--log-level", "warning"],
            _pygeoapi_env(target, python),
            f"http://127.0.0.1:{{port}}/collections/{COLLECTION}/items?{window}&f=json",
        ),
    ]  # fmt: skip


def _pygeoapi_env(target: Target, python: Path) -> dict[str, str]:
    """A pygeoapi configuration with its PostgreSQL provider on the same table."""
    provider = {
        "type": "feature",
        "name": "PostgreSQL",
        "data": pygeoapi_connection(target, "bench"),
        "id_field": "fid",
        "table": "parcels_4326",
        "geom_field": "geom",
    }
    return pygeoapi_env(WORK, python, provider)


def tipg_url(target: Target) -> str:
    """The scratch database's URL as tipg takes it: its settings want a host in the URL, so
    the Unix socket directory goes there percent-encoded (asyncpg decodes it)."""
    params = conninfo_to_dict(target.url)
    host = quote(str(params["host"]), safe="")
    user, password = (quote(str(params.get(k, "")), safe="") for k in ("user", "password"))
    return f"postgresql://{user}:{password}@{host}:{params['port']}/{params['dbname']}"


def pygeoapi_connection(target: Target, schema: str) -> dict[str, Any]:
    params = conninfo_to_dict(target.url)
    return {"host": params["host"], "port": int(str(params["port"])),
            "dbname": params["dbname"], "user": params["user"],
            "password": params.get("password"), "search_path": [schema, "public"]}  # fmt: skip


def pygeoapi_env(work: Path, python: Path, provider: dict[str, Any]) -> dict[str, str]:
    """The environment of a stock pygeoapi serving the parcels through ``provider``: its
    configuration and OpenAPI document written in ``work``."""
    config = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": 0},
            "url": "http://127.0.0.1",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": LIMIT},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": ""},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {"title": "bench", "description": "bench", "keywords": [],
                               "terms_of_service": "", "url": "http://127.0.0.1"},
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "bench", "url": "http://127.0.0.1"},
            "contact": {"name": "bench"},
        },
        "resources": {
            COLLECTION: {
                "type": "collection",
                "title": "parcels",
                "description": "parcels",
                "keywords": [],
                "extents": {"spatial": {"bbox": list(EXTENT),
                                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
                "providers": [provider],
            }
        },
    }  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "pygeoapi.config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    openapi = work / "pygeoapi.openapi.yml"
    env = _env(PYGEOAPI_CONFIG=str(config_path), PYGEOAPI_OPENAPI=str(openapi))
    subprocess.run(
        [str(python.parent / "pygeoapi"), "openapi", "generate", str(config_path),
         "--output-file", str(openapi)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return env


@contextmanager
def _serving(side: Side) -> Iterator[int]:
    """Start a server on a free port; yield the port once it serves a page. Its log goes
    to ``WORK`` (made here: the GPS, tiles and raster benchmarks serve through this too)."""
    port = _free_port()
    WORK.mkdir(parents=True, exist_ok=True)
    log = (WORK / f"{side.name}.log").open("w")
    process = subprocess.Popen(
        [*side.command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=WORK, env=side.env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = side.items.format(port=port, bbox="112.1,23.0,112.112,23.012")
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url, timeout=60).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"{side.name} did not start; see {WORK / (side.name + '.log')}"
                raise BenchmarkError(msg)
            time.sleep(0.5)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bbox(window: tuple[float, float, float, float]) -> str:
    return ",".join(f"{v:.6f}" for v in window)


def _agree(sides: list[Side], ports: dict[str, int], windows: list[tuple[float, ...]]) -> None:
    """Every server returns the same number of features for the same window."""
    for window in windows:
        counts = {}
        for side in sides:
            url = side.items.format(port=ports[side.name], bbox=_bbox(window))  # type: ignore[arg-type]
            counts[side.name] = len(httpx.get(url, timeout=120).json()["features"])
        if len(set(counts.values())) != 1:
            msg = f"the servers disagree on window {window}: {counts}"
            raise BenchmarkError(msg)
    _say(f"all servers agree on {len(windows)} windows ({counts['platform']} features in the last)")


def _wrk_script(side: Side, port: int, windows: list[tuple[float, float, float, float]]) -> Path:
    paths = [side.items.format(port=port, bbox=_bbox(w)).split(f":{port}", 1)[1] for w in windows]
    return wrk_script(WORK / f"{side.name}.lua", paths)


def wrk_script(lua: Path, paths: list[str]) -> Path:
    """A wrk Lua script cycling over ``paths`` (GET each in turn)."""
    lua.parent.mkdir(parents=True, exist_ok=True)
    lua.write_text(
        "local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )
    return lua


def _wrk(wrk: str, side: Side, port: int, script: Path, duration: int) -> float:
    url = f"http://127.0.0.1:{port}"
    subprocess.run(
        [wrk, "-t2", "-c8", "-d3s", "-s", str(script), url], capture_output=True, check=False
    )
    done = subprocess.run(
        [wrk, "-t2", "-c8", f"-d{duration}s", "--timeout", "60s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{side.name}.wrk.txt").write_text(done.stdout)
    if "Non-2xx" in done.stdout:
        msg = f"{side.name} answered errors under load:\n{done.stdout}"
        raise BenchmarkError(msg)
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if match is None:
        msg = f"no rate in wrk's output:\n{done.stdout}"
        raise BenchmarkError(msg)
    return float(match[1])


def _limit(
    target: Target, windows: list[tuple[float, float, float, float]], duration: int
) -> float:
    """The platform's page statement for a window, straight on PostGIS (pgbench)."""
    with engine(target.url) as eng, eng.connect() as conn:
        layer = features.LayerSchema.of(get_collection(conn, COLLECTION))
    sentinel = (111.111111, 22.222222, 111.333333, 22.444444)
    statement, params = features.page_statement(
        layer, features.ItemsQuery(limit=LIMIT, bbox=sentinel)
    )
    with psycopg.connect(target.url, autocommit=True) as conn:
        text = psycopg.ClientCursor(conn).mogrify(statement, params)
        conn.execute("DROP TABLE IF EXISTS bench.windows")
        conn.execute("CREATE TABLE bench.windows (i int PRIMARY KEY, x0 float8, y0 float8, "
                     "x1 float8, y1 float8)")  # fmt: skip
        with conn.cursor().copy("COPY bench.windows FROM STDIN") as copy:
            for i, w in enumerate(windows):
                copy.write_row((i, *w))
    for name, value in zip(("x0", "y0", "x1", "y1"), sentinel, strict=True):
        lookup = f"(SELECT {name} FROM bench.windows WHERE i = :i)"  # noqa: S608 - constants
        if f"{value}" not in text:
            msg = f"the page statement does not hold the bbox value {value}"
            raise BenchmarkError(msg)
        text = text.replace(f"{value}", lookup)
    script = WORK / "limit.sql"
    script.write_text(f"\\set i random(0, {len(windows) - 1})\n{text};\n")
    return run_pgbench(target, script, duration, clients=2)


def run_pgbench(target: Target, script: Path, duration: int, *, clients: int) -> float:
    """pgbench running ``script`` on ``clients`` connections: transactions per second."""
    pgbench = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    params = conninfo_to_dict(target.url)
    done = subprocess.run(
        [pgbench, "-n", "-c", str(clients), "-j", "2", "-T", str(duration), "-f", str(script),
         "-h", str(params["host"]), "-p", str(params["port"]), "-U", str(params["user"]),
         str(params["dbname"])],
        env=_env(PGPASSWORD=str(params.get("password") or "")), capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    match = re.search(r"tps = ([\d.]+)", done.stdout)
    if done.returncode != 0 or match is None:
        msg = f"pgbench failed:\n{done.stdout}\n{done.stderr}"
        raise BenchmarkError(msg)
    return float(match[1])


def _verdict(rates: dict[str, float]) -> None:
    for name in ("platform", "tipg", "pygeoapi", "limit"):
        _say(f"{name:9} {rates[name]:8.1f} requests/s")
    tipg = rates["platform"] / rates["tipg"]
    limit = rates["platform"] / rates["limit"]
    _say(f"ratio platform/pygeoapi {rates['platform'] / rates['pygeoapi']:.1f}")
    met = {True: "met", False: "NOT met"}
    _say(f"ratio platform/tipg {tipg:.2f} (goal >= {GOAL_TIPG}: {met[tipg >= GOAL_TIPG]})")
    _say(f"ratio platform/limit {limit:.2f} (goal >= {GOAL_LIMIT}: {met[limit >= GOAL_LIMIT]})")


def _record(*, size: int, duration: int, rates: dict[str, float], server: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {now} · features bbox pages, parcels {size:,}",
        "",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}",
        (
            f"- {WINDOWS} seeded {WINDOW_DEG}° windows, limit {LIMIT}; wrk -t2 -c8 "
            f"-d{duration}s per server (2 uvicorn workers each); the limit: pgbench, 2 connections"
        ),
        f"- platform at {_git_revision()}",
        "",
        "| side | requests/s |",
        "|---|---:|",
        *(f"| {name} | {rate:.1f} |" for name, rate in rates.items()),
        "",
        (
            f"- **platform/tipg {rates['platform'] / rates['tipg']:.2f}** (goal ≥ {GOAL_TIPG}), "
            f"**platform/limit {rates['platform'] / rates['limit']:.2f}** (goal ≥ {GOAL_LIMIT}), "
            f"platform/pygeoapi {rates['platform'] / rates['pygeoapi']:.1f}"
        ),
        "",
    ]
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
