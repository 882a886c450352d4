"""Classic services: WMTS map tiles of the land map at z14 against the platform's vector
tiles of the same area, and WMS 1024 x 1024 GetMap of the land map.

One run, the demo city (``spatial samples build`` + ``load``, generator-seeded) in the
scratch database ``spatial_bench_classic`` (recreated each run), the land map's 30
WebMercatorQuad tiles at z14 (its extent, layers/subsystems/land.yaml):

- **cold, wrk**: one platform server (uvicorn, 2 workers) with its tile cache off
  (``SPATIAL_TILES_CACHE_MB=0``, so every request is drawn), ``wrk -t2 -c8 -dNs`` cycling
  over the 30 tiles, WMTS (``/wmts/1.0.0/land/default/WebMercatorQuad/14/{row}/{col}.png``)
  and MVT (``/maps/land/tiles/WebMercatorQuad/14/{row}/{col}``) in turn, each round;
- **fresh cache**: a new server (cache on, empty) per round and kind, every tile asked
  once by 8 concurrent clients (after the zoom above was drawn: no start-up counted);
- **the limit**: ``tiles.render.render`` called in-process, no server, for the same 30
  tiles (one 256 x 256 frame each), in 2 processes of 4 concurrent renders;
- **WMS**: 40 GetMap of the land map, 1024 x 1024 PNG in EPSG:3857, seeded boxes of 1 to
  4 m a pixel inside the map's extent, one at a time on a fresh server: p50, p95, max.

Usage: ``.venv/bin/python benchmarks/classic.py [--duration 15] [--no-record] [--smoke]``
(``--smoke``: 3 s of load, one round, nothing recorded). Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import morecantile
import psycopg
import pyproj
from features import Side, _quiet, _serving, _wrk, wrk_script
from ingest import (
    RESULTS,
    ROOT,
    SPATIAL,
    BenchmarkError,
    Target,
    _env,
    _git_revision,
    _prepare_database,
    _say,
    _server_versions,
)

from layers import subsystems

DATABASE = "spatial_bench_classic"
WORK = ROOT / "var" / "bench" / "classic"
DATA_DIR = WORK / "data"
Z = 14
ROUNDS = 3
GOAL_MVT = 0.5
GOAL_WMS_S = 1.0
WMS_REQUESTS = 40
PATHS = {
    "wmts": "/wmts/1.0.0/land/default/WebMercatorQuad/{z}/{row}/{col}.png",
    "mvt": "/maps/land/tiles/WebMercatorQuad/{z}/{row}/{col}",
}
Tile = tuple[int, int, int]
UVICORN = [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
           "--workers", "2", "--log-level", "warning"]  # fmt: skip
PROBE = "http://127.0.0.1:{port}/wmts/1.0.0/WMTSCapabilities.xml"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=None, help="seconds of load a path")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--smoke", action="store_true", help="3 s, 1 round, not recorded")
    args = parser.parse_args(argv)
    try:
        return _run(duration=args.duration or (3 if args.smoke else 15),
                    rounds=1 if args.smoke else ROUNDS,
                    record=not (args.no_record or args.smoke))  # fmt: skip
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


def land_tiles() -> list[Tile]:
    """The land map's WebMercatorQuad tiles at zoom :data:`Z`."""
    west, south, east, north = subsystems.load().get("land").extent
    tms = morecantile.tms.get("WebMercatorQuad")
    return [(t.z, t.y, t.x) for t in tms.tiles(west, south, east, north, [Z])]


def _load_demo(target: Target) -> dict[str, str]:
    env = _env(SPATIAL_DATABASE_URL=target.url, SPATIAL_DATA_DIR=str(DATA_DIR),
               SPATIAL_VAR_DIR=str(WORK / "var"))  # fmt: skip
    samples = WORK / "samples"
    for step in (["samples", "build", "--out", str(samples)],
                 ["samples", "load", "--source", str(samples)]):  # fmt: skip
        done = subprocess.run([str(SPATIAL), *step], env=env, capture_output=True, text=True,
                              check=False)  # fmt: skip
        if done.returncode != 0:
            msg = f"spatial {' '.join(step)} failed:\n{done.stderr or done.stdout}"
            raise BenchmarkError(msg)
    return env


def _path(kind: str, tile: Tile) -> str:
    z, row, col = tile
    return PATHS[kind].format(z=z, row=row, col=col)


def _check(port: int, tiles: list[Tile]) -> None:
    """Every WMTS tile is a 256 x 256 PNG; the MVT tiles answer 200 or 204."""
    for tile in tiles:
        for kind in PATHS:
            answer = httpx.get(f"http://127.0.0.1:{port}{_path(kind, tile)}", timeout=120)
            wanted = {200} if kind == "wmts" else {200, 204}
            if answer.status_code not in wanted:
                msg = f"{kind} tile {tile}: {answer.status_code} {answer.text[:200]}"
                raise BenchmarkError(msg)
    _say(f"all {len(tiles)} tiles answered (WMTS PNG, MVT)")


def _once(port: int, kind: str, tiles: list[Tile]) -> float:
    """Every tile asked once by 8 concurrent clients: tiles a second (after the server drew
    the same area at the zoom above, so its start-up and first connections are not
    counted)."""
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=120) as client, ThreadPoolExecutor(8) as pool:
        warm = sorted({(Z - 1, row // 2, col // 2) for _, row, col in tiles})
        list(pool.map(lambda t: client.get(_path(kind, t)).status_code, warm))
        started = time.monotonic()
        codes = list(pool.map(lambda t: client.get(_path(kind, t)).status_code, tiles))
        seconds = time.monotonic() - started
    if any(code not in {200, 204} for code in codes):
        raise BenchmarkError(f"{kind}: answers {sorted(set(codes))}")
    return len(tiles) / seconds


def _limit_worker(url: str, tiles: list[Tile], duration: float) -> float:
    """Land-map tiles a second drawn by ``tiles.render.render`` with no server, for
    ``duration`` s (4 renders at once on 4 connections; set-up not counted)."""
    return asyncio.run(_limit_loop(url, tiles, duration))


async def _limit_loop(url: str, tiles: list[Tile], duration: float) -> float:
    # Only in the worker process: the platform's modules, as the server loads them.
    from layers.access import view  # noqa: PLC0415
    from layers.catalog import Catalog  # noqa: PLC0415
    from spatial import rasterstore  # noqa: PLC0415
    from spatial.access import ANONYMOUS, Directory  # noqa: PLC0415
    from spatial.db import engine  # noqa: PLC0415
    from spatial.settings import Settings  # noqa: PLC0415
    from tiles import render  # noqa: PLC0415
    from tiles.tms import address  # noqa: PLC0415

    with engine(url) as eng, eng.begin() as conn:
        seen = view(ANONYMOUS, Catalog.load(conn), Directory.load(conn))
    drawables = render.resolve(seen, subsystems.load(), "land")
    store = rasterstore.of(Settings())
    frames = [render.Frame(address("WebMercatorQuad", z, row, col, 24).bounds, 3857, 256, 256)
              for z, row, col in tiles]  # fmt: skip
    counts = [0] * 4
    connections = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in counts]
    for frame in frames[:4]:  # warm-up: Mapnik's maps, the statements
        await render.render(connections[0], seen, store, drawables, frame)
    started = time.monotonic()
    end = started + duration

    async def worker(n: int) -> None:
        i = n
        while time.monotonic() < end:
            await render.render(connections[n], seen, store, drawables, frames[i % len(frames)])
            counts[n] += 1
            i += 4

    await asyncio.gather(*(worker(n) for n in range(4)))
    seconds = time.monotonic() - started
    for conn in connections:
        await conn.close()
    return sum(counts) / seconds


def _limit(url: str, tiles: list[Tile], duration: int) -> float:
    with ProcessPoolExecutor(2) as pool:
        return sum(pool.map(_limit_worker, [url] * 2, [tiles] * 2, [float(duration)] * 2))


def _wms(port: int) -> list[float]:
    """Seconds of each of :data:`WMS_REQUESTS` GetMap 1024 x 1024 of the land map."""
    west, south, east, north = subsystems.load().get("land").extent
    to_3857 = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
    minx, miny = to_3857.transform(west, south)
    maxx, maxy = to_3857.transform(east, north)
    chance = random.Random(28)  # noqa: S311 - seeded boxes, not secrets
    seconds = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for _ in range(WMS_REQUESTS):
            half = 512 * chance.uniform(1.0, 4.0)
            x = chance.uniform(minx + half, maxx - half)
            y = chance.uniform(miny + half, maxy - half)
            params = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap",
                      "LAYERS": "land", "STYLES": "", "CRS": "EPSG:3857",
                      "BBOX": f"{x - half},{y - half},{x + half},{y + half}",
                      "WIDTH": 1024, "HEIGHT": 1024, "FORMAT": "image/png"}  # fmt: skip
            started = time.monotonic()
            answer = client.get("/wms", params=params)
            seconds.append(time.monotonic() - started)
            if answer.status_code != 200 or answer.headers["content-type"] != "image/png":
                raise BenchmarkError(f"GetMap: {answer.status_code} {answer.text[:200]}")
    return seconds


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _run(*, duration: int, rounds: int, record: bool) -> int:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError("wrk is needed (Debian: apt-get install wrk)")
    load = [os.getloadavg()]
    WORK.mkdir(parents=True, exist_ok=True)
    _say(f"loading the demo city into {DATABASE}")
    target = _prepare_database(DATABASE)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
    env = _load_demo(target)
    os.environ.update(SPATIAL_DATABASE_URL=target.url, SPATIAL_DATA_DIR=str(DATA_DIR))
    tiles = land_tiles()
    _say(f"{len(tiles)} WebMercatorQuad tiles of the land map at z{Z}")
    cold = Side("classic cold", UVICORN, {**env, "SPATIAL_TILES_CACHE_MB": "0"}, PROBE)
    scripts = {k: wrk_script(WORK / f"{k}.lua", [_path(k, t) for t in tiles]) for k in PATHS}
    measured: dict[str, list[float]] = {k: [] for k in ("wmts", "mvt", "limit", "wmts fresh",
                                                         "mvt fresh")}  # fmt: skip
    with _serving(cold) as port:
        _check(port, tiles)
        for number in range(1, rounds + 1):
            for kind in PATHS if number % 2 else reversed(PATHS):
                _quiet(target)
                measured[kind].append(_wrk(wrk, Side(f"classic {kind}", [], {}, ""), port,
                                           scripts[kind], duration))  # fmt: skip
            measured["limit"].append(_limit(target.url, tiles, duration))
            _say(f"round {number}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in measured.items()
                                                 if v))  # fmt: skip
    for number in range(1, rounds + 1):
        for kind in PATHS:
            with _serving(Side(f"classic fresh {kind}", UVICORN, env, PROBE)) as port:
                _quiet(target)
                measured[f"{kind} fresh"].append(_once(port, kind, tiles))
        _say(f"fresh round {number}: wmts {measured['wmts fresh'][-1]:.1f}, "
             f"mvt {measured['mvt fresh'][-1]:.1f} tiles/s")  # fmt: skip
    with _serving(Side("classic wms", UVICORN, env, PROBE)) as port:
        wms = _wms(port)
    load.append(os.getloadavg())
    rates = {k: statistics.median(v) for k, v in measured.items()}
    figures = {"rates": rates, "measured": measured, "wms": wms, "count": len(tiles),
               "duration": duration, "server": server, "load": load}  # fmt: skip
    if record:
        _record(figures)
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    for kind, rate in rates.items():
        _say(f"{kind:11} {rate:8.1f} tiles/s")
    _say(f"WMTS/MVT cold {rates['wmts'] / rates['mvt']:.2f} (goal >= {GOAL_MVT}); fresh cache "
         f"{rates['wmts fresh'] / rates['mvt fresh']:.2f}; WMTS/limit "
         f"{rates['wmts'] / rates['limit']:.2f}")  # fmt: skip
    _say(f"WMS GetMap 1024x1024: p50 {statistics.median(wms):.3f} s, p95 {_p95(wms):.3f} s, "
         f"max {max(wms):.3f} s (goal p95 <= {GOAL_WMS_S} s)")  # fmt: skip
    return 0


def _record(f: dict[str, object]) -> None:
    rates: dict[str, float] = f["rates"]  # type: ignore[assignment]
    measured: dict[str, list[float]] = f["measured"]  # type: ignore[assignment]
    wms: list[float] = f["wms"]  # type: ignore[assignment]
    load: list[tuple[float, float, float]] = f["load"]  # type: ignore[assignment]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(
        f"| {k} | {rates[k]:.1f} | {', '.join(f'{v:.1f}' for v in measured[k])} |" for k in rates
    )
    cold = rates["wmts"] / rates["mvt"]
    p95 = _p95(wms)
    text = f"""
## {now} · classic services: WMTS and WMS of the land map (benchmarks/classic.py)

The demo city, the land map's {f["count"]} WebMercatorQuad tiles at z{Z}. Cold: one server
(uvicorn, 2 workers, tile cache off: every tile drawn), `wrk -t2 -c8
-d{f["duration"]}s` cycling over the tiles, WMTS and MVT in turn; fresh: a new server (cache
on, empty) per round and kind, each tile once by 8 clients; limit:
`tiles.render.render` in 2 processes x 4, no server. {len(measured["wmts"])} rounds
(medians). Commit {_git_revision()}, PostgreSQL/PostGIS {f["server"]}; load average
{load[0][0]:.2f} before, {load[-1][0]:.2f} after (the machine was shared with other
sessions' tests).

| tiles | tiles/s (median) | rounds |
|---|---|---|
{rows}

WMTS / MVT cold: **{cold:.2f}** (goal >= {GOAL_MVT}: {"met" if cold >= GOAL_MVT else "NOT met"});
fresh cache {rates["wmts fresh"] / rates["mvt fresh"]:.2f}; WMTS cold / limit
{rates["wmts"] / rates["limit"]:.2f}.
WMS GetMap of the land map, 1024 x 1024 PNG, {len(wms)} boxes of 1-4 m/px one at a time:
p50 {statistics.median(wms):.3f} s, **p95 {p95:.3f} s** (goal <= {GOAL_WMS_S} s:
{"met" if p95 <= GOAL_WMS_S else "NOT met"}), max {max(wms):.3f} s.
"""
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(text)


if __name__ == "__main__":
    raise SystemExit(main())
