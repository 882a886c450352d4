"""Vector ingest benchmark: ``spatial ingest vector`` against ``ogr2ogr`` (the limit).

Both load the same "parcels" GeoPackage into the same scratch database ``spatial_bench``
of the embedded cluster, alternating which goes first, for a few rounds:

- the limit: ``ogr2ogr -f PostgreSQL`` with COPY and a GiST index, into ``bench.ogr_parcels``;
- the platform: the whole ``spatial ingest vector`` process (Python start-up, read,
  validation, COPY, index, catalog), into ``layers.bench_parcels``.

Each round prints both wall-clock times; after each platform load the row counts of the
two tables must agree. Before each command the server is checkpointed, and after it its
table is analysed (neither side runs ANALYZE itself), both off the clock, so that no
load pays for the previous one's writes or autovacuum. The last lines are the medians
and the ratio platform/ogr2ogr against the goal (at most 1.5); the same figures are
appended to ``benchmarks/RESULTS.md``.
Command output goes to ``var/bench/logs/``.

Usage: ``.venv/bin/python benchmarks/ingest.py [--size 20000] [--rounds 3] [--no-record]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import parcels
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
SPATIAL = ROOT / ".venv" / "bin" / "spatial"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
LOGS = ROOT / "var" / "bench" / "logs"

DATABASE = "spatial_bench"
COLLECTION = "bench_parcels"
PLATFORM_TABLE = ("layers", COLLECTION)
OGR_TABLE = ("bench", "ogr_parcels")
GOAL = 1.5
"""The platform may take at most this many times as long as ogr2ogr."""


class BenchmarkError(Exception):
    """The benchmark cannot go on; the message says why."""


@dataclass(frozen=True)
class Target:
    """The scratch database, addressed the way each side needs it."""

    url: str
    """``postgresql://`` URL, for ``SPATIAL_DATABASE_URL`` and psycopg."""
    conninfo: str
    """libpq key=value string without the password, for ``PG:`` of ogr2ogr."""
    password: str | None


@dataclass(frozen=True)
class Round:
    """The wall-clock seconds of one round."""

    ogr2ogr: float
    platform: float


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 1 when a command fails or the row counts differ.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=parcels.DEFAULT_SIZE, help="parcels")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both commands")
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        return _run(size=args.size, rounds=args.rounds, record=not args.no_record)
    except BenchmarkError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


def _run(*, size: int, rounds: int, record: bool) -> int:
    ogr2ogr = shutil.which("ogr2ogr")
    if ogr2ogr is None:
        msg = "ogr2ogr is not installed (Debian: apt-get install gdal-bin)"
        raise BenchmarkError(msg)
    started = time.perf_counter()
    source = parcels.build(parcels.default_path(size), size)
    _say(f"data: {source} ({size:,} parcels) ready in {time.perf_counter() - started:.1f} s")
    target = _prepare_database()
    LOGS.mkdir(parents=True, exist_ok=True)
    source.read_bytes()  # the first command should not pay for a cold page cache alone
    ogr_cmd = [
        ogr2ogr,
        "--config",
        "PG_USE_COPY",
        "YES",
        "-f",
        "PostgreSQL",
        f"PG:{target.conninfo}",
        str(source),
        "-nln",
        ".".join(OGR_TABLE),
        "-overwrite",
        "-lco",
        "SPATIAL_INDEX=GIST",
    ]
    platform_cmd = [
        str(SPATIAL),
        "ingest",
        "vector",
        str(source),
        "--collection",
        COLLECTION,
        "--key",
        "parcel_id",
    ]
    ogr_env = _env(PGPASSWORD=target.password) if target.password else _env()
    platform_env = _env(SPATIAL_DATABASE_URL=target.url)

    results: list[Round] = []
    with psycopg.connect(target.url, autocommit=True) as conn:
        for number in range(1, rounds + 1):
            times: dict[str, float] = {}
            # Alternate the order; round 1 starts with ogr2ogr so its table exists for the
            # row-count check after every platform load.
            order = ("ogr2ogr", "platform") if number % 2 else ("platform", "ogr2ogr")
            for side in order:
                conn.execute("CHECKPOINT")  # flush the previous load's writes outside the clock
                if side == "ogr2ogr":
                    times[side] = _timed(ogr_cmd, ogr_env, LOGS / f"ogr2ogr-{number}.log")
                    table = OGR_TABLE
                else:
                    _forget(conn)  # every round is a first load, like ogr2ogr -overwrite
                    version = _catalog_version(conn)
                    times[side] = _timed(
                        platform_cmd, platform_env, LOGS / f"platform-{number}.log"
                    )
                    _check_reloaded(conn, version)
                    table = PLATFORM_TABLE
                # Neither side analyses its table; do it now, off the clock, rather than
                # let autovacuum do it in the middle of the next command.
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(*table)))
            counts = _check_counts(conn)
            results.append(Round(ogr2ogr=times["ogr2ogr"], platform=times["platform"]))
            _say(
                f"round {number}: ogr2ogr {times['ogr2ogr']:6.2f} s   "
                f"platform {times['platform']:6.2f} s   "
                f"rows: platform {counts[0]:,}, ogr2ogr {counts[1]:,}"
            )
            if counts[0] != counts[1]:
                _say("row counts differ: the platform did not load what ogr2ogr loaded")
                return 1
        server = _server_versions(conn)

    ogr_median = statistics.median(r.ogr2ogr for r in results)
    platform_median = statistics.median(r.platform for r in results)
    ratio = platform_median / ogr_median
    if record:
        _record(
            source=source,
            size=size,
            results=results,
            server=server,
            gdal=_gdal_version(ogr2ogr),
            ratio=ratio,
        )
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    verdict = "met" if ratio <= GOAL else "NOT met"
    _say(f"median ogr2ogr  {ogr_median:6.2f} s")
    _say(f"median platform {platform_median:6.2f} s")
    _say(f"ratio platform/ogr2ogr {ratio:.2f} (goal <= {GOAL}: {verdict})")
    return 0


def _prepare_database(database: str = DATABASE) -> Target:
    """Recreate a scratch database with PostGIS, the platform schema and ``bench``."""
    _spatial("db", "up")
    admin_url = _spatial("db", "url").strip()
    parts = urlsplit(admin_url)
    url = urlunsplit(parts._replace(path=f"/{database}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(OGR_TABLE[0])))
    _spatial("db", "migrate", env=_env(SPATIAL_DATABASE_URL=url))
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    return Target(
        url=url,
        conninfo=make_conninfo("", **params),
        password=str(password) if password is not None else None,
    )


def _spatial(*args: str, env: dict[str, str] | None = None) -> str:
    """Run a ``spatial`` command that must succeed; return its standard output.

    Without ``env`` the command runs with ``SPATIAL_DATABASE_URL`` removed, so it talks
    to the embedded cluster even when the caller's shell points elsewhere.
    """
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "SPATIAL_DATABASE_URL"}
    done = subprocess.run(
        [str(SPATIAL), *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        msg = f"spatial {' '.join(args)} failed:\n{done.stderr or done.stdout}"
        raise BenchmarkError(msg)
    return done.stdout


def _timed(cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> float:
    """Run ``cmd`` (in ``cwd``, default the current folder) to completion and return its
    wall-clock seconds.

    Standard output goes to ``log``, standard error is kept to report a failure (and is
    appended to the log).

    Raises:
        BenchmarkError: the command exits non-zero; the message carries its stderr.
    """
    with log.open("wb") as out:
        started = time.perf_counter()
        done = subprocess.run(
            cmd, stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd, check=False
        )
        elapsed = time.perf_counter() - started
        out.write(done.stderr)
    if done.returncode != 0:
        name = Path(cmd[0]).name
        stderr = done.stderr.decode(errors="replace").strip()
        msg = f"{name} exited with status {done.returncode} (log: {log}):\n{stderr}"
        raise BenchmarkError(msg)
    return elapsed


def _forget(conn: psycopg.Connection) -> None:
    """Remove the platform's collection (its editions and history go with it)."""
    conn.execute("DELETE FROM platform.collections WHERE id = %s", (COLLECTION,))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*PLATFORM_TABLE)))


def _catalog_version(conn: psycopg.Connection) -> int | None:
    row = conn.execute(
        "SELECT version FROM platform.collections WHERE id = %s", (COLLECTION,)
    ).fetchone()
    return int(row[0]) if row else None


def _check_reloaded(conn: psycopg.Connection, before: int | None) -> None:
    """A platform round that skipped the load (e.g. an unchanged file) measures nothing."""
    after = _catalog_version(conn)
    if after is None or (before is not None and after <= before):
        msg = (
            f"the platform did not (re)load {COLLECTION}: catalog version {before} -> {after}; "
            "the timing would not be an ingest"
        )
        raise BenchmarkError(msg)


def _check_counts(conn: psycopg.Connection) -> tuple[int, int]:
    counts = []
    for schema, table in (PLATFORM_TABLE, OGR_TABLE):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
        row = conn.execute(query).fetchone()
        counts.append(int(row[0]) if row else 0)
    return counts[0], counts[1]


def _server_versions(conn: psycopg.Connection) -> str:
    row = conn.execute(
        "SELECT current_setting('server_version'), "
        "(SELECT extversion FROM pg_extension WHERE extname = 'postgis')"
    ).fetchone()
    if row is None:  # pragma: no cover - the query always returns a row
        return "unknown"
    return f"PostgreSQL {row[0]}, PostGIS {row[1]}"


def _gdal_version(ogr2ogr: str) -> str:
    done = subprocess.run([ogr2ogr, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def _git_revision() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"
    head = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    changed = subprocess.run(
        [git, "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    # Untracked files count only in benchmarks/ (var/ and the like are ignored anyway).
    paths = [line[3:] for line in changed if not line.startswith("??") or "benchmarks/" in line]
    if not paths:
        return head or "unknown"
    where = " to benchmarks/ only" if all(p.startswith("benchmarks/") for p in paths) else ""
    return f"{head or 'unknown'} + uncommitted changes{where}"


def _record(
    *,
    source: Path,
    size: int,
    results: list[Round],
    server: str,
    gdal: str,
    ratio: float,
) -> None:
    """Append this run as a dated section of ``benchmarks/RESULTS.md``."""
    ogr_median = statistics.median(r.ogr2ogr for r in results)
    platform_median = statistics.median(r.platform for r in results)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mib = source.stat().st_size / 2**20
    verdict = "met" if ratio <= GOAL else "not met"
    command = f"spatial ingest vector --collection {COLLECTION} --key parcel_id"
    lines = [
        f"## {now} · vector ingest, parcels {size:,}",
        "",
        f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; {server}; ogr2ogr {gdal}",
        f"- data: `{source.relative_to(ROOT)}` ({mib:.1f} MiB), {len(results)} rounds, alternating",
        f"- platform: `{command}` at {_git_revision()}",
        "",
        "| round | ogr2ogr (s) | platform (s) |",
        "|---:|---:|---:|",
        *(f"| {i} | {r.ogr2ogr:.2f} | {r.platform:.2f} |" for i, r in enumerate(results, start=1)),
        "",
        f"- median: ogr2ogr {ogr_median:.2f} s, platform {platform_median:.2f} s",
        f"- **ratio platform/ogr2ogr {ratio:.2f}** (goal ≤ {GOAL}: {verdict})",
        "",
    ]
    if not RESULTS.exists():
        header = [
            "# Benchmark results",
            "",
            "Appended by the scripts in this folder, newest last (see README.md). Compare",
            "ratios, not absolute times: the machines are shared and noisy.",
            "",
        ]
        lines = header + lines
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
