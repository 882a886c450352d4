"""Web maps: the time from navigation to a fully drawn map, per subsystem, cold and warm.

What a planner waits for when opening ``/maps/{subsystem}`` at its default extent: from the
navigation's start to the map's first ``idle`` after its style loaded (every tile of the
view fetched and drawn, the tools installed), which the page marks with
``performance.mark('spatial-map-drawn')`` (api/static/maps/maps.js). Headless Debian
Chromium (WebGL on the CPU through SwiftShader, as in the browser tests), 1280x800.

- Data: the demo city (``spatial samples build``, generator-seeded) loaded into the scratch
  database ``spatial_bench_maps`` (recreated each run), its scenes under
  ``var/bench/maps/data``.
- platform: ``uvicorn api.main:app_factory`` (2 workers), started afresh for every cold
  round, so its tile caches are empty (PostgreSQL's own buffers stay warm).
- cold: a new browser (empty HTTP cache) opens the map.
- warm: the same tab reloads it: the browser revalidates what it holds (ETags, 304) and
  the server's tile cache is warm.
- the limit: a new browser opens the map from a server that answers every response the
  cold load received from memory (no work but sending bytes): what drawing alone costs.
- peer: tipg's map page for the parcels (``/collections/{id}/tiles/{tms}/map.html``),
  on the same table, offline like the platform (only loopback reachable). Its page loads
  MapLibre from unpkg.com, so it never draws there; the run records that (the requests it
  needed) rather than a time. GeoServer's layer preview and GeoNode are not installed
  here; pygeoapi's pages load Leaflet from unpkg.com likewise.

    .venv/bin/python benchmarks/maps.py [--rounds 3] [--no-record]

Prints each round, then per subsystem the medians (cold, warm, limit) in ms, and appends
them to ``benchmarks/RESULTS.md`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from features import _free_port, _peers
from ingest import (
    RESULTS,
    ROOT,
    SPATIAL,
    BenchmarkError,
    _env,
    _git_revision,
    _prepare_database,
    _say,
)

from layers import subsystems

DATABASE = "spatial_bench_maps"
WORK = ROOT / "var" / "bench" / "maps"
WIDTH, HEIGHT = 1280, 800
WAIT_MS = 180_000
CHROMIUM_ARGS = ("--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader")  # fmt: skip
"""As tests/browser.py: WebGL on the CPU."""
KEPT_HEADERS = frozenset({"content-type", "etag", "cache-control", "vary",
                          "content-security-policy"})  # fmt: skip
"""Response headers the replay keeps (bodies are stored decoded: no content-encoding)."""
Reply = tuple[int, dict[str, str], bytes]
DRAWN = "performance.getEntriesByName('spatial-map-drawn')[0]?.startTime ?? null"


@dataclass
class Figures:
    """One subsystem's times (ms) and what its cold load fetched."""

    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    limit: list[float] = field(default_factory=list)
    requests: int = 0
    kilobytes: float = 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replay:  # the limit's server (a process of its own)
        _replay(args.replay, args.port)
        return 0
    try:
        return _run(rounds=args.rounds, record=not args.no_record)
    except BenchmarkError as exc:
        _say(f"benchmark failed: {exc}")
        return 1


def _run(*, rounds: int, record: bool) -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise BenchmarkError("needs Debian's chromium (make install installs it)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a dev dependency

    WORK.mkdir(parents=True, exist_ok=True)
    _say(f"loading the demo city into {DATABASE}")
    target = _prepare_database(DATABASE)
    env = _env(SPATIAL_DATABASE_URL=target.url, SPATIAL_DATA_DIR=str(WORK / "data"),
               SPATIAL_VAR_DIR=str(WORK / "var"))  # fmt: skip
    samples = WORK / "samples"
    for step in (["samples", "build", "--out", str(samples)],
                 ["samples", "load", "--source", str(samples)]):  # fmt: skip
        done = subprocess.run([str(SPATIAL), *step], env=env, capture_output=True, text=True,
                              check=False)  # fmt: skip
        if done.returncode != 0:
            msg = f"spatial {' '.join(step)} failed:\n{done.stderr or done.stdout}"
            raise BenchmarkError(msg)
    ids = [s.id for s in subsystems.load()]
    found = {sid: Figures() for sid in ids}
    with sync_playwright() as playwright:
        launch = {"executable_path": chromium, "headless": True, "args": list(CHROMIUM_ARGS)}
        for n in range(rounds):
            for sid in ids if n % 2 == 0 else reversed(ids):
                _round(playwright, launch, env, sid, found[sid])
                f = found[sid]
                _say(f"round {n + 1} {sid}: cold {f.cold[-1]:.0f} ms, warm {f.warm[-1]:.0f} ms, "
                     f"limit {f.limit[-1]:.0f} ms")  # fmt: skip
        peer = _tipg(playwright, launch, target.url)
    server = _server(target.url)
    _say("")
    _say("| map | cold ms | warm ms | limit ms | cold/limit | requests | kB |")
    for sid, f in found.items():
        _say(_row(sid, f))
    _say(f"tipg map.html (parcels): {peer}")
    if record:
        _record(found, peer, rounds, server)
    return 0


def _round(playwright: Any, launch: dict[str, Any], env: dict[str, str], sid: str,
           figures: Figures) -> None:  # fmt: skip
    with _platform(env) as url:
        browser = playwright.chromium.launch(**launch)
        try:
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            page = context.new_page()
            replies: list[Any] = []

            def keep(reply: Any) -> None:  # (a bound method cannot be a Playwright handler)
                replies.append(reply)

            page.on("response", keep)
            figures.cold.append(_open(page, f"{url}/maps/{sid}", reload=False))
            recorded = {r.url: (r.status, r.headers, r.body()) for r in replies
                        if r.request.method == "GET" and not 300 <= r.status < 400}  # fmt: skip
            figures.requests = len(replies)
            figures.kilobytes = sum(len(b) for _, _, b in recorded.values()) / 1024
            figures.warm.append(_open(page, f"{url}/maps/{sid}", reload=True))
            context.close()
        finally:
            browser.close()
    figures.limit.append(_limit(playwright, launch, url, recorded, f"/maps/{sid}"))


def _limit(playwright: Any, launch: dict[str, Any], origin: str,
           recorded: dict[str, Reply], path: str) -> float:  # fmt: skip
    """The map drawn from a server answering the cold load's responses from memory."""
    replies = WORK / "replay.pickle"
    with replies.open("wb") as out:
        pickle.dump({"origin": origin, "replies": recorded}, out)
    port = _free_port()
    command = [sys.executable, __file__, "--replay", str(replies), "--port", str(port)]
    log = (WORK / "replay.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        replay = f"http://127.0.0.1:{port}"
        _wait(process, f"{replay}{path}", "replay server")
        browser = playwright.chromium.launch(**launch)
        try:
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            took = _open(context.new_page(), f"{replay}{path}", reload=False)
        finally:
            browser.close()
        missed = httpx.get(f"{replay}/_missed", timeout=30).json()
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    if missed:  # asked for what the cold load did not: then the limit is no limit
        msg = f"the limit's page asked for what the cold one did not: {missed[:3]}"
        raise BenchmarkError(msg)
    return took


def _replay(path: Path, port: int) -> None:
    """Serve recorded responses (with the recorded origin rewritten to this server's)."""
    import uvicorn  # noqa: PLC0415

    with path.open("rb") as f:
        saved = pickle.load(f)  # noqa: S301 - our own file, written just before
    ours = f"http://127.0.0.1:{port}"
    old = saved["origin"]
    table: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}
    for url, (status, headers, raw) in saved["replies"].items():
        kind = headers.get("content-type", "")
        text = kind.startswith(("text/", "application/json", "application/geo+json"))
        body = raw.replace(old.encode(), ours.encode()) if text else raw
        kept = [(k.encode(), v.encode()) for k, v in headers.items() if k in KEPT_HEADERS]
        kept.append((b"content-length", str(len(body)).encode()))
        table[url.removeprefix(old)] = (status, kept, body)
    missed: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        target = scope["path"] + (f"?{scope['query_string'].decode()}"
                                  if scope["query_string"] else "")  # fmt: skip
        if target == "/_missed":
            body = json.dumps(missed).encode()
            hit = (200, [(b"content-type", b"application/json")], body)
        else:
            hit = table.get(target)
            if hit is None:
                if target != "/favicon.ico":  # (asked for whenever Chromium likes)
                    missed.append(target)
                hit = (404, [], b"")
        await send({"type": "http.response.start", "status": hit[0], "headers": hit[1]})
        await send({"type": "http.response.body", "body": hit[2]})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def _open(page: Any, url: str, *, reload: bool) -> float:
    """Open (or reload) a map; the ms from navigation to its drawn mark."""
    if reload:
        page.reload()
    else:
        page.goto(url)
    page.locator("body[data-state='drawn']").wait_for(state="attached", timeout=WAIT_MS)
    drawn = page.evaluate(DRAWN)
    if drawn is None:
        raise BenchmarkError(f"{url}: drawn, but no spatial-map-drawn mark")
    problem = page.locator("#status.problem")
    if problem.count():
        raise BenchmarkError(f"{url}: the page reports {problem.text_content()!r}")
    return float(drawn)


@contextmanager
def _platform(env: dict[str, str]) -> Iterator[str]:
    """A fresh platform server (empty caches); yields its URL once it answers."""
    port = _free_port()
    log = (WORK / "platform.log").open("a")
    command = [str(ROOT / ".venv" / "bin" / "uvicorn"), "api.main:app_factory", "--factory",
               "--workers", "2", "--log-level", "warning", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(process, f"{url}/maps/subsystems", "platform")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait(process: subprocess.Popen[bytes], url: str, name: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url, timeout=30).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            msg = f"{name} did not start; see {WORK}"
            raise BenchmarkError(msg)
        time.sleep(0.3)


def _tipg(playwright: Any, launch: dict[str, Any], url: str) -> str:
    """tipg's map page of the parcels, offline: what it drew, or what it needed."""
    from features import tipg_url  # noqa: PLC0415
    from ingest import Target  # noqa: PLC0415

    python = _peers()
    port = _free_port()
    env = _env(DATABASE_URL=tipg_url(Target(url, "", None)), TIPG_DB_SCHEMAS='["layers"]',
               TIPG_DB_TABLES='["layers.parcels"]')  # fmt: skip
    page_url = f"http://127.0.0.1:{port}/collections/layers.parcels/tiles/WebMercatorQuad/map.html"
    log = (WORK / "tipg.log").open("w")
    process = subprocess.Popen(
        [str(python), "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=WORK, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait(process, f"http://127.0.0.1:{port}/collections", "tipg")
        browser = playwright.chromium.launch(**launch)
        try:
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            blocked: list[str] = []

            def only_loopback(route: Any) -> None:
                if route.request.url.startswith("http://127.0.0.1:"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort("blockedbyclient")

            context.route("**/*", only_loopback)
            page = context.new_page()
            start = time.monotonic()
            page.goto(page_url)
            page.wait_for_load_state("networkidle")
            tiles = page.evaluate(
                "performance.getEntriesByType('resource')"
                ".filter(e => e.name.includes('/tiles/WebMercatorQuad/')).length"
            )
            took = (time.monotonic() - start) * 1000
        finally:
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    hosts = sorted({u.split("/")[2] for u in blocked})
    if tiles:
        return f"drew {tiles} tiles in {took:.0f} ms"
    return (f"never drew offline: {len(blocked)} requests to {', '.join(hosts)} blocked, "
            f"no tile asked for (page idle after {took:.0f} ms)")  # fmt: skip


def _server(url: str) -> str:
    import psycopg  # noqa: PLC0415
    from ingest import _server_versions  # noqa: PLC0415

    with psycopg.connect(url) as conn:
        return _server_versions(conn)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _row(sid: str, f: Figures) -> str:
    cold, warm, limit = _median(f.cold), _median(f.warm), _median(f.limit)
    return (f"| {sid} | {cold:,.0f} | {warm:,.0f} | {limit:,.0f} | {cold / limit:.2f} | "
            f"{f.requests} | {f.kilobytes:,.0f} |")  # fmt: skip


def _record(found: dict[str, Figures], peer: str, rounds: int, server: str) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {now} · Web maps: navigation to a fully drawn map, per subsystem",
        "",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}",
        (
            f"- demo city, default extent, headless Debian Chromium {WIDTH}x{HEIGHT} (WebGL "
            "on SwiftShader); platform: 2 uvicorn workers started afresh for each cold round; "
            "cold: a new browser; warm: the same tab reloaded (ETag revalidation, warm tile "
            f"cache); the limit: the cold load's responses answered from memory; {rounds} "
            "rounds (medians, ms)"
        ),
        f"- platform at {_git_revision()}",
        "",
        "| map | cold ms | warm ms | limit ms | cold/limit | requests | kB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(_row(sid, f) for sid, f in found.items()),
        "",
        f"- peer: tipg 1.x `map.html` of the parcels, only loopback reachable: {peer}",
        "",
    ]
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    _say(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    raise SystemExit(main())
