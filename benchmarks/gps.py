"""GPS benchmark: positions into the platform (CSV batches, single OsmAnd fixes, the live
WebSocket) against COPY into the same partitioned table (the limit).

The reference fleet (built here, seeded): 500 devices, 400 positions each at 5 s intervals
(200,000 positions), driving around the demo city (112.0-112.27°E, 22.85-23.12°N) at up to
90 km/h, with stops of 30 s to 5 min; each device reports on its own second of the 5 s
cycle. Every step is checked to stay under 100 km/h with the store's own distance. The
scratch database ``spatial_bench_gps`` (recreated at every run) gets the 500 devices
(``spatial.gps.store.add_device``), 20 square geofences of 2-4 km (``spatial.gps.fences.
add_fence``, half of them with a 2 min dwell), and an admin API key.

One run, the same PostGIS, the same table ``gps.positions`` (partitioned by month; primary
key, GiST and BRIN), every measure starting from empty position tables (``gps.positions``,
``gps.latest``, ``gps.fence_state``, ``gps.events``, the reject counters and the tracks
derived from positions are truncated, then the server is checkpointed):

- the platform: ``api.main:app_factory`` under uvicorn, 2 workers; the 200,000 positions
  POSTed to ``/gps/batch`` as CSV (``device,time,lat,lon,speed,course``), 2,000 rows per
  request (4 fixes of each of the 500 devices, as a fleet server forwarding every 20 s),
  by 4 concurrent httpx clients in a separate process, with the admin key; validation,
  dedup, latest position and geofence evaluation as configured by default. Every position
  must be stored (none refused), every device must have a latest position, and the
  geofences must have produced events;
- the limit: the same rows (device_id, time, geom as EWKB, speed, course, source) sent by
  one ``COPY`` straight into ``gps.positions`` (after ``gps.ensure_month``) on one
  connection; for information also as COPYs of 2,000 rows, each its own transaction, on 4
  connections (the platform's batches and concurrency without the platform);
- single fixes: ``wrk -t2 -c8`` on ``GET /gps/osmand?id=&lat=&lon=&timestamp=``, every
  request a distinct fix of the fleet (each wrk thread drives its own half of the devices
  in time order), a 3 s warm-up first (its fixes removed again); the positions stored must
  match the requests wrk completed;
- live latency (``benchmarks/gps_live.py``), twice: under the batch load (one more round
  of the platform's batches with a WebSocket client subscribed to ``/gps/live`` in the
  clients' process; each position received is matched to its batch, its latency counted
  from the start of that request; under such a load the stream sends each moved device's
  newest position, about one per device and batch), and steady (a loader in a separate
  process sends single fixes of the fleet at 200/s (``--live-rate``) to ``/gps/osmand``
  while a WebSocket client in the same process records when each position arrives,
  matched by device and time); p50/p95/p99 in ms.

The platform's batches and the two COPY limits are measured in turn (the order reversed
every other round), then the single fixes, for 3 rounds, and their medians compared; the
live latencies are measured once at the end. The last lines are positions per second, single
fixes per second, the latency percentiles and the ratio platform/limit against the goal
(at least 0.4); ``benchmarks/RESULTS.md`` gets the same figures.

Usage: ``.venv/bin/python benchmarks/gps.py [--devices 500] [--steps 400] [--duration 15]
[--rounds 3] [--live-rate 200] [--no-record] [--smoke]``; ``--smoke`` is 100 devices x 100
steps, 3 s of load, one round, nothing recorded. Needs ``wrk`` (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import gps_live
import httpx
import psycopg
from features import Side, _quiet, _serving, wrk_script
from gps_fleet import (
    BATCH_STEPS,
    DEVICES,
    DWELL_S,
    FENCES,
    INTERVAL_S,
    SMOKE_DEVICES,
    SMOKE_STEPS,
    STEPS,
    Fleet,
    build_fleet,
    copy_chunks,
    csv_batches,
    fastest_kmh,
    fence_squares,
    fleet_rows,
    osmand_path,
    osmand_paths,
)
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
)

from spatial import accounts
from spatial.audit import Actor
from spatial.db import engine
from spatial.gps import fences, store

# --- the benchmark -------------------------------------------------------------------

DATABASE = "spatial_bench_gps"
GPS_WORK = ROOT / "var" / "bench" / "gps"
CLIENTS = 4
"""Concurrent batch clients, and the connections of the batched COPY limit."""
ROUNDS = 3
LIVE_RATE = 200
"""Single fixes per second sent while the WebSocket latency is measured (default)."""
WARM_UP = 3
GOAL_LIMIT = 0.4
COPY_SQL = "COPY gps.positions (device_id, time, geom, speed, course, source) FROM STDIN"
EMPTIED = ("gps.positions", "gps.latest", "gps.fence_state", "gps.events", "gps.rejects",
           "gps.tracks_dirty", "gps.tracks", "gps.trips", "gps.stops")  # fmt: skip
"""Truncated before every measure (those that exist: the derived tracks are newer)."""
ACTOR = Actor(name="benchmark")
ADMIN = "bench_admin"


@dataclass
class Batches:
    """What the batch clients report: their seconds, every answer, each request's time,
    and (when watched) the WebSocket latencies of the positions received, in ms."""

    seconds: float
    answers: list[tuple[int, str]]
    requests: list[float]
    latencies: list[float] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails or disagrees."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=None, help=f"devices [{DEVICES}]")
    parser.add_argument("--steps", type=int, default=None, help=f"fixes per device [{STEPS}]")
    parser.add_argument("--duration", type=int, default=None, help="seconds of load [15]")
    parser.add_argument("--rounds", type=int, default=None, help=f"rounds [{ROUNDS}]")
    parser.add_argument(
        "--live-rate",
        type=int,
        default=LIVE_RATE,
        help=f"fixes/s of the live measure [{LIVE_RATE}]",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument(
        "--smoke", action="store_true", help="100 devices x 100 steps, 3 s, 1 round, not recorded"
    )
    args = parser.parse_args(argv)
    devices = args.devices or (SMOKE_DEVICES if args.smoke else DEVICES)
    steps = args.steps or (SMOKE_STEPS if args.smoke else STEPS)
    duration = args.duration or (3 if args.smoke else 15)
    rounds = args.rounds or (1 if args.smoke else ROUNDS)
    if devices < 2 or steps < BATCH_STEPS or rounds < 1 or duration < 1:
        parser.error("at least 2 devices, 4 steps, 1 round and 1 s")
    if args.live_rate < 1:
        parser.error("--live-rate must be at least 1")
    if args.live_rate * duration >= devices * steps:
        needed = args.live_rate * duration
        parser.error(f"the live measure needs {needed:,} fixes: more devices or steps")
    try:
        return _run(
            devices=devices, steps=steps, duration=duration, rounds=rounds,
            live_rate=args.live_rate, record=not (args.no_record or args.smoke),
        )  # fmt: skip
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


# --- the run -------------------------------------------------------------------------


def _run(
    *, devices: int, steps: int, duration: int, rounds: int, live_rate: int, record: bool
) -> int:
    wrk = shutil.which("wrk")
    if wrk is None:
        msg = "wrk is not installed (Debian: apt-get install wrk)"
        raise BenchmarkError(msg)
    GPS_WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    fleet = build_fleet(devices, steps)
    bodies, chunks = csv_batches(fleet), copy_chunks(fleet)
    paths, shift = osmand_paths(fleet)
    mib = sum(map(len, bodies)) / 2**20
    seconds = time.perf_counter() - started
    _say(
        f"fleet: {devices} devices x {steps} fixes = {fleet.count:,} positions, "
        f"{len(bodies)} CSV batches ({mib:.1f} MiB), fastest step "
        f"{fastest_kmh(fleet):.0f} km/h, ready in {seconds:.1f} s"
    )
    target, key = _prepare(fleet)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
    script = _wrk_script(paths, shift)
    side = Side(
        "gps-platform",
        [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
         "--workers", "2", "--log-level", "warning"],
        _env(SPATIAL_DATABASE_URL=target.url),
        "http://127.0.0.1:{port}/conformance",
    )  # fmt: skip
    measured: dict[str, list[float]] = {"platform": [], "limit": [], "limit, batches": [],
                                        "single fixes": []}  # fmt: skip
    details: dict[str, list[float]] = {"request s": [], "events": []}
    spawn = get_context("spawn")
    with (
        ProcessPoolExecutor(1, mp_context=spawn, initializer=_client_init,
                            initargs=(bodies, key)) as clients,
        _serving(side) as port,
    ):  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        _warm_up(clients, url, target)
        for number in range(1, rounds + 1):
            order = ["platform", "limit", "limit, batches"]
            for name in order if number % 2 else order[::-1]:
                if name == "platform":
                    rate, seconds, events = _platform(clients, url, target, fleet)
                    details["request s"].append(seconds)
                    details["events"].append(events)
                elif name == "limit":
                    rate = _copy(target, fleet, chunks)
                else:
                    rate = _copy_batches(target, fleet, chunks)
                measured[name].append(rate)
            measured["single fixes"].append(_single(wrk, url, target, script, duration))
            _say(f"round {number}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in measured.items())
                 + f" (median batch request {details['request s'][-1]:.2f} s, "
                 f"{details['events'][-1]:,.0f} geofence events)")  # fmt: skip
        watched = _watched(clients, url, target, fleet)
        _empty(target)
        live = gps_live.steady(clients, port, key, _live_fixes(fleet, duration, live_rate),
                               live_rate)  # fmt: skip
        live["under load"] = watched
    rates = {name: statistics.median(values) for name, values in measured.items()}
    if record:
        _record(fleet=fleet, duration=duration, rounds=rounds, rates=rates, measured=measured,
                details=details, live=live, server=server)  # fmt: skip
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    _verdict(rates, live, details)
    return 0


def _prepare(fleet: Fleet) -> tuple[Target, str]:
    """The scratch database with the devices, the fences, the month's partition and an
    admin key (returned)."""
    target = _prepare_database(DATABASE)
    with psycopg.connect(target.url) as conn:
        for device in fleet.devices:
            store.add_device(conn, device)
        for number, square in enumerate(fence_squares(), start=1):
            dwell = DWELL_S if number % 2 else None
            fences.add_fence(conn, f"bench fence {number}", square, dwell_s=dwell)
        for month in _months(fleet):
            conn.execute("SELECT gps.ensure_month(%s)", (month,))
    with engine(target.url) as eng, eng.begin() as conn:
        accounts.add_user(conn, ACTOR, ADMIN, roles=("admin",), service=True)
        key = accounts.create_key(conn, ACTOR, ADMIN, name="gps benchmark")
    _say(f"{DATABASE}: {len(fleet.devices)} devices, {FENCES} geofences, an admin key")
    return target, key


def _months(fleet: Fleet) -> list[dt.datetime]:
    times = (dt.datetime.fromtimestamp(int(s), dt.UTC) for s in (fleet.seconds.min(),
                                                                  fleet.seconds.max()))  # fmt: skip
    return sorted({t.replace(day=1, hour=0, minute=0, second=0) for t in times})


def _empty(target: Target) -> None:
    """Truncate the position tables (and what is derived from them), then checkpoint.

    The server may still be finishing a request, or deriving tracks in the background:
    wait for it, and try again when the TRUNCATE deadlocks with it."""
    _quiet(target)
    with psycopg.connect(target.url, autocommit=True) as conn:
        present = [name for name in EMPTIED
                   if (row := conn.execute("SELECT to_regclass(%s)", (name,)).fetchone())
                   and row[0] is not None]  # fmt: skip
        for attempt in range(1, 11):
            try:
                conn.execute(f"TRUNCATE {', '.join(present)}")
                break
            except psycopg.errors.DeadlockDetected:
                if attempt == 10:
                    raise
                time.sleep(0.5)
        conn.execute("CHECKPOINT")
    _quiet(target)


def _counts(target: Target) -> tuple[int, int, int]:
    """Positions, latest positions and geofence events stored."""
    with psycopg.connect(target.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM gps.positions), (SELECT count(*) FROM gps.latest), "
            "(SELECT count(*) FROM gps.events)"
        ).fetchone()
    assert row is not None  # noqa: S101 - a SELECT of counts returns a row
    return int(row[0]), int(row[1]), int(row[2])


# --- the platform's batches (a separate process) -------------------------------------

_CLIENT: dict[str, Any] = {}
"""The batch clients' process state: the request bodies and the key."""


def _client_init(bodies: list[bytes], key: str) -> None:
    _CLIENT["bodies"], _CLIENT["key"] = bodies, key


def _post_batches(url: str, count: int | None = None,
                  first: dict[str, int] | None = None) -> Batches:  # fmt: skip
    """POST the bodies (the first ``count``) to /gps/batch on CLIENTS connections; with
    ``first`` (each device's first Unix time), a WebSocket client watches the positions."""
    return asyncio.run(_batches(url, _CLIENT["bodies"][:count], _CLIENT["key"], first))


async def _batches(url: str, bodies: list[bytes], key: str,
                   first: dict[str, int] | None) -> Batches:  # fmt: skip
    answers: list[tuple[int, str]] = [(0, "")] * len(bodies)
    requests: list[float] = []
    starts = [0.0] * len(bodies)
    pending = iter(enumerate(bodies))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(
            base_url=url, headers=headers, timeout=600, limits=limits))  # fmt: skip
        watch = await stack.enter_async_context(gps_live.watch(url, key)) if first else None

        async def one_client() -> None:
            for i, body in pending:
                starts[i] = sent = time.perf_counter()
                response = await client.post("/gps/batch", content=body)
                requests.append(time.perf_counter() - sent)
                answers[i] = (response.status_code, response.text)

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
        seconds = time.perf_counter() - started
        if watch is not None:
            await watch.settle()
    done = Batches(seconds, answers, requests)
    if watch is not None and first is not None:
        step = INTERVAL_S * BATCH_STEPS
        done.latencies = [(at - starts[(stamp - first[device]) // step]) * 1000
                          for device, stamp, at in watch.seen]  # fmt: skip
    return done


def _warm_up(clients: ProcessPoolExecutor, url: str, target: Target) -> None:
    """A few batches (both workers start their pools, load their modules), then nothing
    of them is kept."""
    _empty(target)
    done = clients.submit(_post_batches, url, 2 * CLIENTS).result()
    bad = [a for a in done.answers if a[0] != 200]
    if bad:
        msg = f"/gps/batch answered {bad[0][0]}: {bad[0][1][:500]}"
        raise BenchmarkError(msg)
    _say(f"warm-up: {len(done.answers)} batches in {done.seconds:.2f} s")


def _platform(
    clients: ProcessPoolExecutor, url: str, target: Target, fleet: Fleet
) -> tuple[float, float, int]:
    """Positions per second through /gps/batch, the median request's seconds, and the
    geofence events; every position must be stored."""
    _empty(target)
    done = clients.submit(_post_batches, url).result()
    bad = [a for a in done.answers if a[0] != 200]
    if bad:
        msg = f"/gps/batch answered {bad[0][0]} ({len(bad)} requests): {bad[0][1][:500]}"
        raise BenchmarkError(msg)
    said = [json.loads(text) for _, text in done.answers]
    stored = sum(a["stored"] for a in said)
    rejected: Counter[str] = Counter()
    for answer in said:
        rejected.update(answer["rejected"])
    positions, latest, events = _counts(target)
    if stored != fleet.count or positions != fleet.count or rejected:
        msg = (f"the platform stored {stored:,} positions ({positions:,} in gps.positions) of "
               f"{fleet.count:,}; rejected {dict(rejected)}")  # fmt: skip
        raise BenchmarkError(msg)
    if latest != len(fleet.devices) or events == 0:
        msg = f"{latest} latest positions for {len(fleet.devices)} devices, {events} events"
        raise BenchmarkError(msg)
    return fleet.count / done.seconds, statistics.median(done.requests), events


def _watched(
    clients: ProcessPoolExecutor, url: str, target: Target, fleet: Fleet
) -> dict[str, Any]:
    """The platform's batches again, with a WebSocket client subscribed: the positions'
    latencies from their batch's request to the stream, and the rate meanwhile."""
    _empty(target)
    first = {d: int(fleet.seconds[0, i]) for i, d in enumerate(fleet.devices)}
    done = clients.submit(_post_batches, url, None, first).result()
    bad = [a for a in done.answers if a[0] != 200]
    if bad or not done.latencies:
        msg = f"watched batches: {len(bad)} failed, {len(done.latencies)} positions received"
        raise BenchmarkError(msg)
    ms = gps_live.percentiles(done.latencies)
    watched = {"ms": ms, "received": len(done.latencies), "rate": fleet.count / done.seconds,
               "batches": len(done.answers)}  # fmt: skip
    _say(
        f"live under the batch load: {watched['received']:,} positions received "
        f"({watched['batches']} batches of {len(fleet.devices)} devices), p50 {ms[50]:.0f} ms, "
        f"p95 {ms[95]:.0f} ms, p99 {ms[99]:.0f} ms; {watched['rate']:,.0f} positions/s"
    )
    return watched


def _live_fixes(fleet: Fleet, duration: int, rate: int) -> list[gps_live.Fix]:
    """The fleet's first ``rate * duration + 1`` fixes as OsmAnd requests, in time order."""
    steps = min(math.ceil((rate * duration + 1) / len(fleet.devices)), fleet.steps)
    rows = fleet_rows(fleet, range(steps))
    fixes = [(osmand_path(d, s, lon, lat), d, s) for d, s, lon, lat, _, _ in rows]
    return fixes[: rate * duration + 1]


# --- the limit: COPY -----------------------------------------------------------------


def _copy(target: Target, fleet: Fleet, chunks: list[bytes]) -> float:
    """Positions per second of one COPY of every row on one connection."""
    _empty(target)
    with psycopg.connect(target.url) as conn:
        for month in _months(fleet):
            conn.execute("SELECT gps.ensure_month(%s)", (month,))
        conn.commit()
        started = time.perf_counter()
        with conn.cursor().copy(COPY_SQL) as copy:
            for chunk in chunks:
                copy.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - started
    _check_copied(target, fleet)
    return fleet.count / seconds


def _copy_batches(target: Target, fleet: Fleet, chunks: list[bytes]) -> float:
    """Positions per second of one COPY per batch, each its own transaction, on CLIENTS
    connections."""
    _empty(target)
    pending = iter(chunks)
    lock = threading.Lock()
    connections = [psycopg.connect(target.url) for _ in range(CLIENTS)]

    def load(conn: psycopg.Connection[Any]) -> None:
        while True:
            with lock:
                chunk = next(pending, None)
            if chunk is None:
                return
            with conn.cursor().copy(COPY_SQL) as copy:
                copy.write(chunk)
            conn.commit()

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            started = time.perf_counter()
            list(pool.map(load, connections))
            seconds = time.perf_counter() - started
    finally:
        for conn in connections:
            conn.close()
    _check_copied(target, fleet)
    return fleet.count / seconds


def _check_copied(target: Target, fleet: Fleet) -> None:
    positions = _counts(target)[0]
    if positions != fleet.count:
        msg = f"COPY left {positions:,} rows in gps.positions, not {fleet.count:,}"
        raise BenchmarkError(msg)


# --- single fixes: wrk -----------------------------------------------------------------


def _wrk_script(paths: list[str], shift: int) -> Path:
    """``features.wrk_script`` over every fix, each wrk thread starting at its own half."""
    script = wrk_script(GPS_WORK / "osmand.lua", paths)
    with script.open("a", encoding="utf-8") as out:
        out.write(
            "local threads = 0\n"
            "function setup(thread)\n"
            f'  thread:set("first", threads * {shift})\n'
            "  threads = threads + 1\n"
            "end\n"
            "function init(args)\n"
            "  i = first or 0\n"
            "end\n"
        )
    return script


def _single(wrk: str, url: str, target: Target, script: Path, duration: int) -> float:
    """Requests per second of single OsmAnd fixes (wrk -t2 -c8), every one stored."""
    _empty(target)
    subprocess.run([wrk, "-t2", "-c8", f"-d{WARM_UP}s", "-s", str(script), url],
                   capture_output=True, check=False)  # fmt: skip
    _empty(target)
    done = subprocess.run(
        [wrk, "-t2", "-c8", f"-d{duration}s", "--timeout", "60s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    (GPS_WORK / "osmand.wrk.txt").write_text(done.stdout)
    if "Non-2xx" in done.stdout:
        msg = f"/gps/osmand answered errors under load:\n{done.stdout}"
        raise BenchmarkError(msg)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    completed = re.search(r"(\d+) requests in", done.stdout)
    if rate is None or completed is None:
        msg = f"no rate in wrk's output:\n{done.stdout}"
        raise BenchmarkError(msg)
    _quiet(target)
    positions = _counts(target)[0]
    if positions < 0.99 * int(completed[1]):
        msg = (f"wrk completed {int(completed[1]):,} requests but {positions:,} positions were "
               "stored (did wrk cycle through its fixes? use more --steps)")  # fmt: skip
        raise BenchmarkError(msg)
    return float(rate[1])


# --- report ----------------------------------------------------------------------------


def _verdict(
    rates: dict[str, float], live: dict[str, Any], details: dict[str, list[float]]
) -> None:
    met = {True: "met", False: "NOT met"}
    _say(f"platform /gps/batch   {rates['platform']:9,.0f} positions/s ({CLIENTS} clients, "
         f"median request {statistics.median(details['request s']):.2f} s)")  # fmt: skip
    _say(f"limit COPY            {rates['limit']:9,.0f} positions/s (one COPY, 1 connection)")
    _say(f"limit COPY batches    {rates['limit, batches']:9,.0f} positions/s "
         f"({BATCH_STEPS} fixes x every device per COPY, {CLIENTS} connections)")  # fmt: skip
    _say(f"single fixes osmand   {rates['single fixes']:9,.0f} requests/s (wrk -t2 -c8)")
    ms = live["ms"]
    received = f"{len(live['latencies']):,}/{live['sent']:,} received at {live['rate']:.0f}/s"
    _say(
        f"live latency          p50 {ms[50]:.1f} ms, p95 {ms[95]:.1f} ms, "
        f"p99 {ms[99]:.1f} ms ({received})"
    )
    under = live["under load"]
    _say(
        f"live under batch load p50 {under['ms'][50]:.0f} ms, p95 {under['ms'][95]:.0f} ms, "
        f"p99 {under['ms'][99]:.0f} ms ({under['received']:,} positions received, "
        f"{under['rate']:,.0f} positions/s meanwhile)"
    )
    ratio = rates["platform"] / rates["limit"]
    _say(f"ratio single fixes/batch positions {rates['single fixes'] / rates['platform']:.3f}")
    _say(f"ratio platform/limit batches {rates['platform'] / rates['limit, batches']:.2f}")
    _say(f"ratio platform/limit {ratio:.2f} (goal >= {GOAL_LIMIT}: {met[ratio >= GOAL_LIMIT]})")


def _record(
    *, fleet: Fleet, duration: int, rounds: int, rates: dict[str, float],
    measured: dict[str, list[float]], details: dict[str, list[float]], live: dict[str, Any],
    server: str,
) -> None:  # fmt: skip
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    ms = live["ms"]
    ratio = rates["platform"] / rates["limit"]
    rows = len(fleet.devices) * BATCH_STEPS
    lines = [
        (
            f"## {now} · GPS positions, {len(fleet.devices)} devices x {fleet.steps} fixes "
            f"({fleet.count:,})"
        ),
        "",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}",
        (
            f"- seeded fleet at {INTERVAL_S} s intervals, {FENCES} geofences; platform: "
            f"POST /gps/batch, CSV of {rows:,} rows, {CLIENTS} concurrent httpx clients in a "
            f"separate process, 2 uvicorn workers; the limit: one COPY into gps.positions "
            f"(partitioned, primary key + GiST + BRIN), and COPYs of {rows:,} rows on "
            f"{CLIENTS} connections; single fixes: wrk -t2 -c8 -d{duration}s on "
            f"GET /gps/osmand, distinct fixes; {rounds} rounds (medians); live: "
            f"{live['asked']} fixes/s for {duration} s to /gps/osmand, WebSocket /gps/live"
        ),
        f"- platform at {_git_revision()}",
        "",
        "| side | per second | rounds |",
        "|---|---:|---|",
        *(
            f"| {name} | {rates[name]:,.0f} | {', '.join(f'{v:,.0f}' for v in values)} |"
            for name, values in measured.items()
        ),
        "",
        (
            f"- median batch request {statistics.median(details['request s']):.2f} s; "
            f"{statistics.median(details['events']):,.0f} geofence events per platform round"
        ),
        (
            f"- live latency p50 {ms[50]:.1f} ms, p95 {ms[95]:.1f} ms, p99 {ms[99]:.1f} ms "
            f"({len(live['latencies']):,}/{live['sent']:,} positions received; median answer "
            f"{live['answer_ms']:.1f} ms)"
        ),
        (
            f"- live under the batch load (a WebSocket client subscribed during one more "
            f"platform round; each position from the start of its batch's request): p50 "
            f"{live['under load']['ms'][50]:.0f} ms, p95 {live['under load']['ms'][95]:.0f} "
            f"ms, p99 {live['under load']['ms'][99]:.0f} ms "
            f"({live['under load']['received']:,} positions received, "
            f"{live['under load']['rate']:,.0f} positions/s meanwhile)"
        ),
        (
            f"- **platform/limit {ratio:.2f}** (goal ≥ {GOAL_LIMIT}), platform/limit batches "
            f"{rates['platform'] / rates['limit, batches']:.2f}"
        ),
        "",
    ]
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
