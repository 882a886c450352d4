"""Printing: a printed A3 land map at 1:10,000 (``POST /maps/land/print``), against the limit,
the renderer drawing the same frame with no server.

What a land officer waits for after pressing 打印 Print on the land map: the whole request,
from sending the body to holding the PDF (the body checked, the departments read, the frame
drawn as a vector PDF by Mapnik over Cairo, the sheet laid out by ReportLab, the frame
placed into it by pypdf).

- Data: the demo city (``spatial samples build``, generator-seeded) loaded into the scratch
  database ``spatial_bench_printing`` (recreated each run), its scenes under
  ``var/bench/printing/data``.
- platform: ``uvicorn api.main:app_factory`` (2 workers); one request at a time: the first
  after the start (a fresh worker: Mapnik's map built from the styles, the fonts read) is
  recorded apart, then ``--rounds`` rounds of each case:
  - ``map``: A3 landscape, 1:10,000, at the city's centre, the map's visible layers (the
    parcels by land use, the districts): a frame of 895 x 701 pt, 3.2 x 2.5 km of ground;
  - ``selected``: the same with 200 parcels selected (highlighted, and their attributes in
    a table of about five pages);
  - ``imagery``: the same as ``map`` with the true-colour imagery of 2026 under the parcels.
- the limit: ``tiles.render.render`` called in this process on the same frame and
  drawables (``tiles.printing.plan`` of the same body), on one psycopg connection, with the
  anonymous caller's view: the vector PDF page of the map alone, no server, no layout.
  Rounds alternate which side goes first.

Goal: a printed A3 map in at most 10 s (the issue's); the ratio print/limit is what the
layout and serving cost over drawing the map.

    .venv/bin/python benchmarks/printing.py [--rounds 5] [--no-record]

Prints each round, then the medians; appends them to ``benchmarks/RESULTS.md`` unless
``--no-record``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
from features import _free_port
from ingest import (
    RESULTS,
    ROOT,
    SPATIAL,
    BenchmarkError,
    _env,
    _git_revision,
    _prepare_database,
    _say,
    _server_versions,
)
from pypdf import PdfReader

DATABASE = "spatial_bench_printing"
WORK = ROOT / "var" / "bench" / "printing"
GOAL_S = 10.0
CENTRE = [112.0, 22.9]
BODY: dict[str, Any] = {"paper": "A3", "orientation": "landscape", "scale": 10000,
                        "center": CENTRE, "title": "宗地利用现状图 Land use, 1:10,000"}  # fmt: skip
CASES = ("map", "selected", "imagery")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    try:
        return _run(rounds=args.rounds, record=not args.no_record)
    except BenchmarkError as exc:
        _say(f"benchmark failed: {exc}")
        return 1


def _load(env: dict[str, str]) -> None:
    samples = WORK / "samples"
    for step in (["samples", "build", "--out", str(samples)],
                 ["samples", "load", "--source", str(samples)]):  # fmt: skip
        done = subprocess.run([str(SPATIAL), *step], env=env, capture_output=True, text=True,
                              check=False)  # fmt: skip
        if done.returncode != 0:
            msg = f"spatial {' '.join(step)} failed:\n{done.stderr or done.stdout}"
            raise BenchmarkError(msg)


def _bodies(url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(url) as conn:
        nearest = conn.execute(
            "SELECT fid FROM layers.parcels ORDER BY geom <-> ST_Transform("
            "ST_SetSRID(ST_MakePoint(%s, %s), 4490), ST_SRID(geom)) LIMIT 200", CENTRE
        )  # fmt: skip
        ids = [row[0] for row in nearest]
    return {
        "map": BODY,
        "selected": {**BODY, "selected": {"collection": "parcels", "ids": ids}},
        "imagery": {**BODY, "layers": ["imagery-truecolor", "parcels-landuse", "districts"],
                    "datetime": "2026-12-31"},
    }  # fmt: skip


def _print(client: httpx.Client, url: str, body: dict[str, Any]) -> tuple[float, int, int]:
    """Seconds to the whole PDF, its bytes and pages (the answer checked)."""
    start = time.perf_counter()
    answer = client.post(f"{url}/maps/land/print", json=body)
    took = time.perf_counter() - start
    if answer.status_code != 200 or not answer.content.startswith(b"%PDF-"):
        msg = f"print failed: {answer.status_code} {answer.text[:300]}"
        raise BenchmarkError(msg)
    pdf = PdfReader(io.BytesIO(answer.content))
    if "1:10,000" not in pdf.pages[0].extract_text():
        raise BenchmarkError("the printed sheet does not say 1:10,000")
    return took, len(answer.content), len(pdf.pages)


class Limit:
    """The renderer alone, in this process: the frame of the same body, no server."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        from layers import Catalog, subsystems, view  # noqa: PLC0415 - after the env is set
        from spatial import rasterstore  # noqa: PLC0415
        from spatial.access import ANONYMOUS, Directory  # noqa: PLC0415
        from spatial.db import engine  # noqa: PLC0415
        from spatial.settings import Settings  # noqa: PLC0415

        os.environ.update(env)
        settings = Settings()
        with engine(url) as eng, eng.connect() as conn:
            catalog = Catalog.load(conn)
            directory = Directory.load(conn)
        self.url = url
        self.maps = subsystems.load()
        self.view = view(ANONYMOUS, catalog, directory)
        self.store = rasterstore.of(settings)

    async def _once(self, body: dict[str, Any]) -> tuple[float, int]:
        from tiles import printing, render  # noqa: PLC0415

        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            start = time.perf_counter()
            plan = printing.plan(body, self.maps.get("land"), self.view, self.maps)
            drawn = await render.render(conn, self.view, self.store, plan.drawables, plan.frame)
            return time.perf_counter() - start, len(drawn)

    def run(self, body: dict[str, Any]) -> tuple[float, int]:
        return asyncio.run(self._once(body))


@contextmanager
def _platform(env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    log = (WORK / "platform.log").open("a")
    command = [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
               "--workers", "2", "--log-level", "warning", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/maps/subsystems", timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"the platform did not start; see {WORK / 'platform.log'}"
                raise BenchmarkError(msg)
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _run(*, rounds: int, record: bool) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    _say(f"loading the demo city into {DATABASE}")
    target = _prepare_database(DATABASE)
    env = _env(SPATIAL_DATABASE_URL=target.url, SPATIAL_DATA_DIR=str(WORK / "data"),
               SPATIAL_VAR_DIR=str(WORK / "var"))  # fmt: skip
    _load(env)
    bodies = _bodies(target.url)
    limit = Limit(target.url, env)
    load_start = os.getloadavg()[0]
    times: dict[str, list[float]] = {case: [] for case in (*CASES, "limit")}
    sizes: dict[str, tuple[int, int]] = {}
    with _platform(env) as url, httpx.Client(timeout=120) as client:
        first = _print(client, url, bodies["map"])
        _say(f"first print after the start: {first[0]:.2f} s")
        limit.run(bodies["map"])  # the limit's Mapnik map built and fonts read, as the server's
        for n in range(rounds):
            order = ["limit", *CASES] if n % 2 == 0 else [*CASES, "limit"]
            for case in order:
                if case == "limit":
                    took, size = limit.run(bodies["map"])
                    sizes["limit"] = (size, 1)
                else:
                    took, size, pages = _print(client, url, bodies[case])
                    sizes[case] = (size, pages)
                times[case].append(took)
            _say(f"round {n + 1}: " + ", ".join(f"{c} {times[c][-1]:.2f} s" for c in times))
    load_end = os.getloadavg()[0]
    medians = {case: statistics.median(values) for case, values in times.items()}
    ratio = medians["map"] / medians["limit"]
    _say("")
    for case, value in medians.items():
        _say(f"{case}: median {value:.2f} s (max {max(times[case]):.2f} s), "
             f"{sizes[case][0] / 1024:,.0f} kB, {sizes[case][1]} pages")  # fmt: skip
    _say(f"print/limit {ratio:.2f}; goal: a printed A3 map in at most {GOAL_S:g} s: "
         f"{'met' if max(times['map']) <= GOAL_S else 'NOT met'}")  # fmt: skip
    if record:
        with psycopg.connect(target.url) as conn:
            server = _server_versions(conn)
        _record(medians, times, sizes, first=first[0], rounds=rounds, server=server,
                load=(load_start, load_end))  # fmt: skip
    return 0


def _record(medians: dict[str, float], times: dict[str, list[float]],
            sizes: dict[str, tuple[int, int]], *, first: float, rounds: int, server: str,
            load: tuple[float, float]) -> None:  # fmt: skip
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    described = {
        "map": "A3 landscape 1:10,000, visible layers (parcels, districts)",
        "selected": "the same, 200 parcels selected (highlighted, attributes table)",
        "imagery": "the same as map, true-colour imagery 2026 under the parcels",
        "limit": "`tiles.render.render` of map's frame in-process (vector PDF, no server)",
    }
    rows = [f"| {case} | {described[case]} | {medians[case]:.2f} | {max(times[case]):.2f} | "
            f"{sizes[case][0] / 1024:,.0f} | {sizes[case][1]} |" for case in medians]  # fmt: skip
    lines = [
        f"## {now} · Printing: an A3 land map at 1:10,000 (`POST /maps/land/print`)",
        "",
        (
            f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs (shared with other runs: "
            f"load average {load[0]:.2f} at the start, {load[1]:.2f} at the end); {server}"
        ),
        (
            f"- demo city; platform: 2 uvicorn workers, one request at a time, {rounds} rounds "
            f"alternating with the limit (medians, seconds); platform at {_git_revision()}"
        ),
        f"- first print after the server's start: {first:.2f} s",
        "",
        "| case | what | median s | max s | kB | pages |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
        "",
        (
            f"- print/limit: **{medians['map'] / medians['limit']:.2f}**; goal: a printed A3 map "
            f"in at most {GOAL_S:g} s: **{'met' if max(times['map']) <= GOAL_S else 'not met'}** "
            f"(slowest {max(times['map']):.2f} s)"
        ),
        "",
    ]
    before = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    gap = "" if before.endswith("\n\n") or not before else "\n"
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(gap + "\n".join(lines) + "\n")
    _say(f"recorded in {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
