"""Tiles benchmark: the 884 WebMercatorQuad tiles at zooms 14-15 of the 200k-parcel layer,
the platform against its peers, all attributes.

One run, the same PostGIS, the same table (the "parcels" reference set ingested by
``spatial ingest vector`` into the scratch database of ``benchmarks/features.py``):

- the platform, cold: ``api.main:app_factory`` under uvicorn, 2 workers, its tile cache
  off (``SPATIAL_TILES_CACHE_MB=0``), so every request is built by PostGIS;
- tipg: ``tipg.main:app``, 2 workers, on the ``layers`` schema;
- stock pygeoapi: its ``MVT-postgresql`` provider on the same table; it takes more than
  a second a tile here, so it gets a sample of tiles one at a time, not the load run;
- the limit: the platform's own tile statements, one per tile, executed straight on
  PostGIS by ``pgbench`` (a PL/pgSQL function runs the stored text, and only the tile's
  length comes back) on 8 connections, the load's concurrency, and also on 2;
- the platform, warm: its cache on and filled first, reported separately.

Load comes from ``wrk -t2 -c8`` cycling over the 884 tiles (a short warm-up first). The
limit, the cold platform and tipg are measured in turn, three rounds, and their medians
compared. Every side reaches PostGIS through the embedded cluster's Unix socket. The
last lines are tiles per second and the ratios against the goals (cold platform ≥ 2 x tipg,
≥ 0.8 x the limit); ``benchmarks/RESULTS.md`` gets the same figures.

Usage: ``.venv/bin/python benchmarks/vector_tiles.py [--size 200000] [--duration 15]
[--no-record]``. Needs ``wrk``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import mapbox_vector_tile
import psycopg
from features import (
    EXTENT,
    WORK,
    Side,
    _free_port,
    _peers,
    _quiet,
    _serving,
    _wrk,
    command_line,
    load_reference,
    pygeoapi_connection,
    pygeoapi_env,
    run_pgbench,
    tipg_url,
    wrk_script,
)
from ingest import (
    RESULTS,
    ROOT,
    BenchmarkError,
    Target,
    _env,
    _git_revision,
    _say,
    _server_versions,
)

from layers.collections import VectorCollection
from spatial.catalog import get_collection
from spatial.db import engine
from tiles import mvt, tms

COLLECTION = "bench_parcels"
ZOOMS = range(14, 16)
GOAL_TIPG = 2.0
GOAL_LIMIT = 0.8
PYGEOAPI_SAMPLE = 2
CONNECTIONS = 8
ROUNDS = 3
"""The limit, the cold platform and tipg are measured in turn this many times (medians
are compared): the machine's noise drifts, and side by side it hits all three alike."""
"""wrk's connections, and so the limit's: the same concurrency (2 is also reported)."""
TILES_WORK = WORK.parent / "tiles"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails or disagrees."""
    return command_line(_run, __doc__ or "", argv)


def _run(*, size: int, duration: int, record: bool) -> int:
    wrk, target = load_reference(size)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
    TILES_WORK.mkdir(parents=True, exist_ok=True)
    tiles = tms.tiles_covering("WebMercatorQuad", EXTENT, ZOOMS)
    _say(f"{len(tiles)} WebMercatorQuad tiles at zooms {ZOOMS.start}-{ZOOMS.stop - 1}")
    python = _peers()
    script = _limit_script(target, tiles)
    cold, warm, tipg = _sides(target, python)
    rounds: dict[str, list[float]] = {"limit": [], cold.name: [], tipg.name: []}
    with _serving(cold) as cold_port, _serving(tipg) as tipg_port:
        ports = {cold.name: cold_port, tipg.name: tipg_port}
        scripts = {side.name: _script(side, tiles) for side in (cold, tipg)}
        for side in (cold, tipg):
            _check(side, ports[side.name], tiles[:: max(1, len(tiles) // 8)])
        for number in range(1, ROUNDS + 1):
            _quiet(target)
            rounds["limit"].append(run_pgbench(target, script, duration, clients=CONNECTIONS))
            for side in (cold, tipg):
                _quiet(target)
                rounds[side.name].append(
                    _wrk(wrk, side, ports[side.name], scripts[side.name], duration)
                )
            _say(f"round {number}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rounds.items()))
    rates = {name: statistics.median(values) for name, values in rounds.items()}
    _quiet(target)
    rates["limit, 2 conn."] = run_pgbench(target, script, duration, clients=2)
    _say(f"{'limit, 2 conn.':15} {rates['limit, 2 conn.']:8.1f} tiles/s (pgbench, 2 connections)")
    with _serving(warm) as port:
        _fill(warm, port, tiles)
        rates[warm.name] = _wrk(wrk, warm, port, _script(warm, tiles), duration)
        _say(f"{warm.name:15} {rates[warm.name]:8.1f} tiles/s (cache filled first)")
    _quiet(target)
    rates["pygeoapi"] = _pygeoapi(target, python, tiles)
    _say(f"{'pygeoapi':15} {rates['pygeoapi']:8.3f} tiles/s ({PYGEOAPI_SAMPLE} tiles in turn)")
    if record:
        _record(size=size, duration=duration, count=len(tiles), rates=rates, server=server,
                rounds=rounds)  # fmt: skip
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    _verdict(rates)
    return 0


def _path(side: str, z: int, row: int, col: int) -> str:
    if side == "tipg":
        return f"/collections/layers.{COLLECTION}/tiles/WebMercatorQuad/{z}/{col}/{row}"
    if side == "pygeoapi":
        return f"/collections/{COLLECTION}/tiles/WebMercatorQuad/{z}/{row}/{col}?f=mvt"
    return f"/collections/{COLLECTION}/tiles/WebMercatorQuad/{z}/{row}/{col}"


def _sides(target: Target, python: Path) -> tuple[Side, Side, Side]:
    probe = "http://127.0.0.1:{port}" + "{path}"
    platform_cmd = [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
                    "--workers", "2", "--log-level", "warning"]  # fmt: skip
    first = tms.tiles_covering("WebMercatorQuad", EXTENT, range(14, 15))[0]
    return (
        Side("platform cold", platform_cmd,
             _env(SPATIAL_DATABASE_URL=target.url, SPATIAL_TILES_CACHE_MB="0"),
             probe.replace("{path}", _path("platform", *first))),
        Side("platform warm", platform_cmd, _env(SPATIAL_DATABASE_URL=target.url),
             probe.replace("{path}", _path("platform", *first))),
        Side("tipg", [str(python), "-m", "uvicorn", "tipg.main:app", "--workers", "2",
                      "--log-level", "warning"],
             _env(DATABASE_URL=tipg_url(target), TIPG_DB_SCHEMAS='["layers"]',
                  TIPG_DB_TABLES=f'["layers.{COLLECTION}"]', TIPG_MAX_FEATURES_PER_TILE="100000"),
             probe.replace("{path}", _path("tipg", *first))),
    )  # fmt: skip


def _key(side: Side) -> str:
    return "tipg" if side.name == "tipg" else "platform"


def _check(side: Side, port: int, sample: list[tuple[int, int, int]]) -> None:
    """Every sampled tile decodes and holds parcels with their attributes."""
    for z, row, col in sample:
        response = httpx.get(f"http://127.0.0.1:{port}{_path(_key(side), z, row, col)}", timeout=60)
        if response.status_code != 200:
            msg = f"{side.name} answered {response.status_code} for tile {z}/{row}/{col}"
            raise BenchmarkError(msg)
        layers = mapbox_vector_tile.decode(response.content)
        features = next(iter(layers.values()))["features"] if layers else []
        if not features or "parcel_id" not in features[0]["properties"]:
            msg = f"{side.name}: tile {z}/{row}/{col} holds no parcels with attributes"
            raise BenchmarkError(msg)
    _say(f"{side.name}: {len(sample)} sampled tiles decode, with parcels and attributes")


def _script(side: Side, tiles: list[tuple[int, int, int]]) -> Path:
    paths = [_path(_key(side), *t) for t in tiles]
    return wrk_script(TILES_WORK / f"{side.name.replace(' ', '_')}.lua", paths)


def _fill(side: Side, port: int, tiles: list[tuple[int, int, int]]) -> None:
    """Request every tile until both workers answer each from their cache."""
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=60) as client, ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            states = list(pool.map(
                lambda t: client.get(_path("platform", *t)).headers.get("x-tile-cache"), tiles
            ))  # fmt: skip
            if states.count("hit") == len(states):
                break
    _say(f"{side.name}: cache filled ({states.count('hit')}/{len(states)} hits on the last pass)")


def _pygeoapi(target: Target, python: Path, tiles: list[tuple[int, int, int]]) -> float:
    """Stock pygeoapi's MVT-postgresql provider on the same table, a sample of tiles."""
    provider = {
        "type": "tile", "name": "MVT-postgresql",
        "data": pygeoapi_connection(target, "layers"),
        "id_field": "fid", "table": COLLECTION, "geom_field": "geom",
        # A mapping, not a list: pygeoapi 0.21 passes the options' non-mapping values to
        # the database driver as connection options (and a list is unhashable there);
        # the provider only asks ``scheme in schemes``.
        "options": {"zoom": {"min": 0, "max": 15},
                    "schemes": {"WebMercatorQuad": "WebMercatorQuad"}},
        "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"},
    }  # fmt: skip
    env = pygeoapi_env(TILES_WORK, python, provider)
    port = _free_port()
    log = (TILES_WORK / "pygeoapi.log").open("w")
    process = subprocess.Popen(
        [str(python), "-m", "uvicorn", "pygeoapi.starlette_app:APP", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=TILES_WORK, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/collections", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"pygeoapi did not start; see {TILES_WORK / 'pygeoapi.log'}"
                raise BenchmarkError(msg)
            time.sleep(0.5)
        sample = tiles[len(tiles) // 3 :: len(tiles) // PYGEOAPI_SAMPLE][:PYGEOAPI_SAMPLE]
        started = time.monotonic()
        for z, row, col in sample:
            url = f"http://127.0.0.1:{port}{_path('pygeoapi', z, row, col)}"
            response = httpx.get(url, timeout=600)
            if response.status_code != 200:
                msg = f"pygeoapi answered {response.status_code} for {url}: {response.text[:300]}"
                raise BenchmarkError(msg)
        return len(sample) / (time.monotonic() - started)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _limit_script(target: Target, tiles: list[tuple[int, int, int]]) -> Path:
    """A pgbench script running the platform's statement of a random tile (the statements
    are stored in a table and run by a PL/pgSQL function)."""
    with engine(target.url) as eng, eng.connect() as conn:
        record = get_collection(conn, COLLECTION)
    layer = VectorCollection(record).tile_layer()
    with psycopg.connect(target.url, autocommit=True) as conn:
        texts = []
        for z, row, col in tiles:
            tile = tms.address("WebMercatorQuad", z, row, col, 24)
            statement = mvt.tile_statement([layer], tile, 20_000)
            if statement is None:
                continue
            texts.append(psycopg.ClientCursor(conn).mogrify(*statement))
        conn.execute("DROP TABLE IF EXISTS bench.tile_sql")
        conn.execute("CREATE TABLE bench.tile_sql (i int PRIMARY KEY, statement text)")
        with conn.cursor().copy("COPY bench.tile_sql FROM STDIN") as copy:
            for i, text in enumerate(texts):
                copy.write_row((i, text))
        conn.execute(
            "CREATE OR REPLACE FUNCTION bench.tile(n int) RETURNS bytea LANGUAGE plpgsql AS $$ "
            "DECLARE out bytea; BEGIN "
            "EXECUTE (SELECT statement FROM bench.tile_sql WHERE i = n) INTO out; RETURN out; "
            "END $$"
        )
    script = TILES_WORK / "limit.sql"
    # length(): the tile is built but not sent (pgbench would take it as hex text), so the
    # limit is what PostGIS can build, with no transfer at all.
    script.write_text(f"\\set i random(0, {len(texts) - 1})\nSELECT length(bench.tile(:i));\n")
    return script


def _verdict(rates: dict[str, float]) -> None:
    for name in ("platform cold", "tipg", "pygeoapi", "limit", "limit, 2 conn.", "platform warm"):
        _say(f"{name:15} {rates[name]:8.2f} tiles/s")
    cold = rates["platform cold"]
    tipg, limit = cold / rates["tipg"], cold / rates["limit"]
    met = {True: "met", False: "NOT met"}
    _say(f"ratio platform cold/pygeoapi {cold / rates['pygeoapi']:.0f}")
    _say(f"ratio platform warm/cold {rates['platform warm'] / cold:.1f}")
    _say(f"ratio platform cold/limit on 2 connections {cold / rates['limit, 2 conn.']:.2f}")
    _say(f"ratio platform cold/tipg {tipg:.2f} (goal >= {GOAL_TIPG}: {met[tipg >= GOAL_TIPG]})")
    verdict = met[limit >= GOAL_LIMIT]
    _say(f"ratio platform cold/limit {limit:.2f} (goal >= {GOAL_LIMIT}: {verdict})")


def _record(
    *, size: int, duration: int, count: int, rates: dict[str, float], server: str,
    rounds: dict[str, list[float]],
) -> None:  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cold = rates["platform cold"]
    lines = [
        f"## {now} · vector tiles z{ZOOMS.start}-{ZOOMS.stop - 1}, parcels {size:,}",
        "",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}",
        (
            f"- {count} WebMercatorQuad tiles, all attributes; wrk -t2 -c{CONNECTIONS} "
            f"-d{duration}s per server (2 uvicorn workers each), {ROUNDS} rounds of limit, "
            f"platform cold and tipg in turn (medians); the limit: pgbench on "
            f"{CONNECTIONS} connections (the same concurrency) and on 2; pygeoapi: "
            f"{PYGEOAPI_SAMPLE} tiles one at a time"
        ),
        f"- platform at {_git_revision()}",
        "",
        "| side | tiles/s | rounds |",
        "|---|---:|---|",
        *(
            f"| {name} | {rate:.2f} | {_figures(rounds.get(name, []))} |"
            for name, rate in rates.items()
        ),
        "",
        (
            f"- **platform cold/tipg {cold / rates['tipg']:.2f}** (goal ≥ {GOAL_TIPG}), "
            f"**platform cold/limit {cold / rates['limit']:.2f}** (goal ≥ {GOAL_LIMIT}), "
            f"warm/cold {rates['platform warm'] / cold:.1f}"
        ),
        "",
    ]
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def _figures(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
