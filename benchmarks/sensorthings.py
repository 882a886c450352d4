"""SensorThings benchmark: readings in through the DataArray batch over HTTP against a bare
COPY into the same table (the limit), and the latest reading of 1,000 datastreams.

The data set (built here, seeded): ``--streams`` datastreams (1,000), each on its own
Thing of the department ``bench_water``, half of them ``Rainfall`` (the alarm rules sum
their readings over 1 h and 24 h windows) and half ``AQI`` (banded), ``--readings`` each
(200) at 60 s intervals ending an hour ago: 200,000 readings. The scratch database
``spatial_bench_sta`` is recreated at every run.

One run, the same PostGIS, the same table ``sta.observations`` (partitioned by month; the
unique index on datastream and time, the id and feature indexes), every measure starting
from empty readings (``sta.observations``, ``sta.latest``, ``sta.rejects``, ``sta.alarms``
and the alarm events truncated, the datastreams' time ranges and observed areas
emptied):

- the platform: ``api.main:app_factory`` under uvicorn, 2 workers; the readings POSTed to
  ``/sta/v1.1/CreateObservations`` as DataArrays of 2,000 readings (16 of each of 125
  datastreams: a gateway forwarding its stations), by 4 concurrent httpx clients in a
  separate process, each client with its own stations (8 gateways, 2 per client); the
  store's checks, the datastreams' latest readings, time ranges and observed areas, the
  FeatureOfInterest of each Thing and the alarm rules evaluated, as configured by default.
  Every reading must be stored (none refused) and alarms must have been raised;
- the limit: the same rows (id, datastream, phenomenon time, result, feature) sent by one
  binary ``COPY`` straight into ``sta.observations`` (after ``sta.ensure_month``) on one
  connection;
- the latest reading of every datastream: ``GET /sta/v1.1/Datastreams?$top=1000&$select=
  id,name&$expand=Observations($top=1;$orderby=phenomenonTime desc)``, one request at a
  time, as an admin and as a member of ``bench_water`` (whose reads go through the access
  scope); the time from sending to reading the whole answer, p50 and p95 (goal: at most
  100 ms).

No peer runs here: FROST-Server (Java, Maven) cannot be installed on this machine (PyPI,
npm and Debian only); the figures are the platform's against the limit.

The platform's batches and the COPY limit are measured in turn (the order reversed every
other round) for ``--rounds`` rounds (3), and their medians compared: goal at least 0.4.

Usage: ``.venv/bin/python benchmarks/sensorthings.py [--streams 1000] [--readings 200]
[--rounds 3] [--no-record] [--smoke]``; ``--smoke`` is 200 streams x 40 readings, one
round, nothing recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

import httpx
import numpy as np
import psycopg
from features import Side, _serving
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

DATABASE = "spatial_bench_sta"
SEED = 26
CLIENTS = 4
GATEWAYS = 8
"""Stations are split among this many gateways, two per client."""
PER_REQUEST = 2000
GOAL_LIMIT = 0.4
GOAL_LATEST_MS = 100.0
ACTOR = Actor("benchmark")
EMPTIED = ("sta.observations", "sta.latest", "sta.rejects")
COPY_SQL = (
    "COPY sta.observations (id, datastream_id, phenomenon_start, result_number, feature_id) "
    "FROM STDIN (FORMAT BINARY)"
)


@dataclass(frozen=True)
class Streams:
    """The data set: datastream and feature ids, and the readings (times, values) per
    datastream, all the same times."""

    ids: list[int]
    features: list[int]
    times: list[dt.datetime]
    values: np.ndarray[Any, Any]

    @property
    def count(self) -> int:
        return len(self.ids) * len(self.times)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 when something fails."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--streams", type=int, default=1000, help="datastreams")
    parser.add_argument("--readings", type=int, default=200, help="readings per datastream")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of platform and limit")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--smoke", action="store_true", help="a small, quick run, not recorded")
    args = parser.parse_args(argv)
    if args.smoke:
        args.streams, args.readings, args.rounds, args.no_record = 200, 40, 1, True
    try:
        return _run(args.streams, args.readings, args.rounds, record=not args.no_record)
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


def _run(count: int, readings: int, rounds: int, *, record: bool) -> int:
    target = _prepare_database(DATABASE)
    with psycopg.connect(target.url, autocommit=True) as conn:
        server = _server_versions(conn)
    streams, keys = _load(target, count, readings)
    bodies = _bodies(streams)
    env = _env(SPATIAL_DATABASE_URL=target.url)
    side = Side("platform", [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory",
                             "--factory", "--workers", "2", "--log-level", "warning"],
                env, "http://127.0.0.1:{port}/sta/v1.1")  # fmt: skip
    chunks = _copy_rows(streams)
    platform_rates, limit_rates, alarms = [], [], 0
    context = get_context("spawn")
    with (
        _serving(side) as port,
        ProcessPoolExecutor(1, mp_context=context, initializer=_client_init,
                            initargs=(bodies, keys["admin"])) as clients,
    ):  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        _empty(target)
        clients.submit(_post_batches, url, CLIENTS).result()  # warm both workers
        for n in range(rounds):
            order = ("platform", "limit") if n % 2 == 0 else ("limit", "platform")
            for which in order:
                _empty(target)
                if which == "platform":
                    rate, alarms = _platform(clients, url, target, streams)
                    platform_rates.append(rate)
                else:
                    rate = _copy(target, streams, chunks)
                    limit_rates.append(rate)
                _say(f"round {n + 1}: {which} {rate:,.0f} readings/s")
        _fill(target, streams, chunks)
        latest = {who: _latest(url, key, len(streams.ids)) for who, key in keys.items()}
    rate, limit = statistics.median(platform_rates), statistics.median(limit_rates)
    ratio = rate / limit
    met = "met" if ratio >= GOAL_LIMIT else "NOT met"
    _say(f"DataArray over HTTP {rate:,.0f} readings/s ({alarms} alarms raised), COPY "
         f"{limit:,.0f} readings/s: {ratio:.2f} of the limit (goal >= {GOAL_LIMIT}: "
         f"{met})")  # fmt: skip
    for who, (p50, p95) in latest.items():
        ok = "met" if p95 <= GOAL_LATEST_MS else "NOT met"
        _say(f"latest of {len(streams.ids)} datastreams as {who}: p50 {p50:.1f} ms, "
             f"p95 {p95:.1f} ms (goal <= {GOAL_LATEST_MS:g} ms: {ok})")  # fmt: skip
    if record:
        _record(server, streams, (platform_rates, limit_rates), alarms, latest)
    return 0


def _load(target: Target, count: int, readings: int) -> tuple[Streams, dict[str, str]]:
    """The Things, sensors and datastreams; keys of an admin and of a bench_water member."""
    with engine(target.url) as eng, eng.begin() as conn:
        accounts.add_department(conn, ACTOR, "bench_water", "Benchmark water")
        accounts.add_user(conn, ACTOR, "bench_admin", roles=("admin",), service=True)
        accounts.add_user(conn, ACTOR, "bench_member", roles=("editor",),
                          department="bench_water", service=True)  # fmt: skip
        keys = {who: accounts.create_key(conn, ACTOR, f"bench_{who}", name="benchmark")
                for who in ("admin", "member")}  # fmt: skip
    rng = np.random.default_rng(SEED)
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sta.sensors (id, name, encoding_type, metadata, department) VALUES "
            "(1, 'gauge', 'text/plain', '-', 'bench_water');"
            "INSERT INTO sta.observed_properties (id, name, definition, department) VALUES "
            "(1, 'Rainfall', 'urn:rainfall', 'bench_water'), (2, 'AQI', 'urn:aqi', 'bench_water')"
        )
        ids, features = [], []
        for n in range(count):
            lon, lat = 112.0 + rng.uniform(0, 0.27), 22.85 + rng.uniform(0, 0.27)
            row = conn.execute(_STATION, {"n": n, "lon": lon, "lat": lat,
                                          "property": 1 + n % 2}).fetchone()  # fmt: skip
            ids.append(int(row[0]))  # type: ignore[index]
            features.append(int(row[1]))  # type: ignore[index]
    end = datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=1)
    times = [end - dt.timedelta(minutes=readings - 1 - k) for k in range(readings)]
    values = np.round(rng.gamma(2.0, 2.0, (count, readings)), 1)
    values[1::2] = np.round(rng.uniform(20, 260, (count // 2, readings)))  # AQI
    return Streams(ids, features, times, values), keys


_STATION = """
WITH t AS (INSERT INTO sta.things (name, department) VALUES ('station ' || %(n)s, 'bench_water')
           RETURNING id),
l AS (INSERT INTO sta.locations (name, geom, department)
      VALUES ('station ' || %(n)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326),
              'bench_water') RETURNING id, geom),
tl AS (INSERT INTO sta.things_locations SELECT t.id, l.id FROM t, l),
f AS (INSERT INTO sta.features (name, geom, department, location_id)
      SELECT 'station ' || %(n)s, l.geom, 'bench_water', l.id FROM l RETURNING id),
d AS (INSERT INTO sta.datastreams (name, observation_type, unit, thing_id, sensor_id,
                                   observed_property_id, department)
      SELECT 'stream ' || %(n)s,
             'http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement',
             '{"symbol": "mm"}', t.id, 1, %(property)s, 'bench_water' FROM t RETURNING id)
SELECT d.id, f.id FROM d, f
"""


def _bodies(streams: Streams) -> list[bytes]:
    """The DataArray requests: for each gateway (its own stations), its readings in time
    order, PER_REQUEST to a request; gateways interleaved so that the clients' requests
    go to different stations."""
    per_stream = max(1, PER_REQUEST * GATEWAYS // len(streams.ids))
    stamps = [t.isoformat().replace("+00:00", "Z") for t in streams.times]
    by_gateway: list[list[bytes]] = [[] for _ in range(GATEWAYS)]
    for g in range(GATEWAYS):
        mine = range(g, len(streams.ids), GATEWAYS)
        for start in range(0, len(stamps), per_stream):
            body = [{"Datastream": {"@iot.id": streams.ids[i]},
                     "components": ["phenomenonTime", "result"],
                     "dataArray": [[stamps[k], float(streams.values[i, k])]
                                   for k in range(start, min(start + per_stream, len(stamps)))]}
                    for i in mine]  # fmt: skip
            by_gateway[g].append(json.dumps(body).encode())
    return [body for group in zip(*by_gateway, strict=True) for body in group]


_CLIENT: dict[str, Any] = {}


def _client_init(bodies: list[bytes], key: str) -> None:
    _CLIENT["bodies"], _CLIENT["key"] = bodies, key


def _post_batches(url: str, count: int | None = None) -> tuple[float, list[tuple[int, str]]]:
    """POST the bodies (the first ``count``) on CLIENTS connections, each client taking
    the requests of its own gateways in order; the seconds and every answer."""
    return asyncio.run(_batches(url, _CLIENT["bodies"][:count], _CLIENT["key"]))


async def _batches(url: str, bodies: list[bytes], key: str) -> tuple[float, list[tuple[int, str]]]:
    answers: list[tuple[int, str]] = [(0, "")] * len(bodies)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600,
                                 limits=limits) as client:  # fmt: skip

        async def one_client(c: int) -> None:
            for i in range(len(bodies)):
                if (i % GATEWAYS) % CLIENTS == c:
                    answer = await client.post("/sta/v1.1/CreateObservations", content=bodies[i])
                    answers[i] = (answer.status_code, answer.text)

        started = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(CLIENTS)))
        return time.perf_counter() - started, answers


def _empty(target: Target) -> None:
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(EMPTIED)}")
        conn.execute("DELETE FROM gps.events WHERE alarm_id IS NOT NULL")
        conn.execute("DELETE FROM sta.alarms")  # referenced by the events: not truncated
        conn.execute(
            "UPDATE sta.datastreams SET phenomenon_first = NULL, phenomenon_last = NULL, "
            "result_first = NULL, result_last = NULL, observed_area = NULL"
        )
        conn.execute("CHECKPOINT")


def _platform(clients: ProcessPoolExecutor, url: str, target: Target,
              streams: Streams) -> tuple[float, int]:  # fmt: skip
    """Readings per second through the DataArray, and the alarms raised; every reading
    must be stored."""
    seconds, answers = clients.submit(_post_batches, url).result()
    bad = [a for a in answers if a[0] != 201 or '"error' in a[1]]
    if bad:
        msg = f"CreateObservations answered {bad[0][0]} ({len(bad)} requests): {bad[0][1][:300]}"
        raise BenchmarkError(msg)
    with psycopg.connect(target.url) as conn:
        stored = conn.execute("SELECT count(*) FROM sta.observations").fetchone()[0]  # type: ignore[index]
        latest = conn.execute("SELECT count(*) FROM sta.latest").fetchone()[0]  # type: ignore[index]
        alarms = conn.execute("SELECT count(*) FROM sta.alarms").fetchone()[0]  # type: ignore[index]
    if stored != streams.count or latest != len(streams.ids) or alarms == 0:
        msg = f"stored {stored:,} of {streams.count:,}; {latest} latest; {alarms} alarms"
        raise BenchmarkError(msg)
    return streams.count / seconds, int(alarms)


def _copy_rows(streams: Streams) -> list[tuple[int, int, dt.datetime, float, int]]:
    return [(n * len(streams.times) + k + 1, ds, t, float(streams.values[n, k]), feature)
            for n, (ds, feature) in enumerate(zip(streams.ids, streams.features, strict=True))
            for k, t in enumerate(streams.times)]  # fmt: skip


def _copy(target: Target, streams: Streams, rows: list[Any]) -> float:
    """Readings per second of one binary COPY of every row on one connection."""
    with psycopg.connect(target.url) as conn:
        conn.execute("SELECT sta.ensure_month(t) FROM unnest(%s::timestamptz[]) t",
                     ([streams.times[0], streams.times[-1]],))  # fmt: skip
        conn.commit()
        started = time.perf_counter()
        with conn.cursor().copy(COPY_SQL) as copy:
            copy.set_types(["int8", "int8", "timestamptz", "float8", "int8"])
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
        stored = conn.execute("SELECT count(*) FROM sta.observations").fetchone()[0]  # type: ignore[index]
    if stored != streams.count:
        raise BenchmarkError(f"COPY stored {stored:,} of {streams.count:,}")
    return streams.count / seconds


def _fill(target: Target, streams: Streams, rows: list[Any]) -> None:
    """Every reading stored (by COPY) and each datastream's latest, for the latest reads."""
    _empty(target)
    _copy(target, streams, rows)
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sta.latest (datastream_id, id, phenomenon_start, result_number, "
            "feature_id) SELECT DISTINCT ON (datastream_id) datastream_id, id, "
            "phenomenon_start, result_number, feature_id FROM sta.observations "
            "ORDER BY datastream_id, phenomenon_start DESC"
        )


def _latest(url: str, key: str, count: int, requests: int = 60) -> tuple[float, float]:
    """p50 and p95 in ms of the latest reading of every datastream, one request at a time
    (the first 10 warm up and are not counted)."""
    params = {"$top": str(count), "$select": "id,name",
              "$expand": "Observations($top=1;$orderby=phenomenonTime desc)"}  # fmt: skip
    took = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=60) as client:  # fmt: skip
        for n in range(requests + 10):
            started = time.perf_counter()
            answer = client.get("/sta/v1.1/Datastreams", params=params)
            elapsed = (time.perf_counter() - started) * 1000
            value = answer.json().get("value", []) if answer.status_code == 200 else []
            if len(value) != count or any(len(d["Observations"]) != 1 for d in value):
                raise BenchmarkError(f"latest: {answer.status_code} {answer.text[:300]}")
            if n >= 10:
                took.append(elapsed)
    return float(np.percentile(took, 50)), float(np.percentile(took, 95))


def _record(server: str, streams: Streams, rates: tuple[list[float], list[float]],
            alarms: int, latest: dict[str, tuple[float, float]]) -> None:  # fmt: skip
    platform_rates, limit_rates = rates
    rate, limit = statistics.median(platform_rates), statistics.median(limit_rates)
    load = os.getloadavg()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rounds = " / ".join(", ".join(f"{r:,.0f}" for r in rs) for rs in (platform_rates, limit_rates))
    lines = [
        (
            f"\n## {now} · SensorThings: {streams.count:,} readings of {len(streams.ids):,} "
            "datastreams\n"
        ),
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}",
        (
            f"- DataArrays of {PER_REQUEST:,} readings, {CLIENTS} clients, 2 uvicorn workers; "
            "the limit: one binary COPY on one connection; alarm rules evaluated (rainfall "
            f"windows, AQI bands: {alarms} alarms raised); {len(platform_rates)} rounds in turn"
        ),
        f"- load average at the end {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}",
        f"- platform at {_git_revision()}\n",
        "| measure | platform | limit | ratio (goal) | rounds: platform / limit |",
        "|---|---:|---:|---|---|",
        (
            f"| readings in (DataArray) | {rate:,.0f}/s | {limit:,.0f}/s | {rate / limit:.2f} "
            f"(≥ {GOAL_LIMIT}) | {rounds} |"
        ),
    ]
    for who, (p50, p95) in latest.items():
        lines.append(f"| latest of {len(streams.ids):,} datastreams ({who}) | p50 {p50:.1f} ms, "
                     f"p95 {p95:.1f} ms | | (p95 ≤ {GOAL_LATEST_MS:g} ms) | |")  # fmt: skip
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
