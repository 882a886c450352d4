"""The soak run, short (about 60 s of load): GPS ingest, tiles, items and edits at once
against a real platform server (uvicorn, one worker, a subprocess so that its memory is its
own), with the load functions of ``benchmarks/soak.py``. Memory and counts are asserted,
never times; the minutes-long run is the benchmark."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import admin_headers, create_database, drop_database

from spatial.db import migrate

# Last on the path: a benchmark's module never shadows a package (benchmarks/dask_analytics.py
# was benchmarks/dask.py, and Dask's spawned workers imported it as dask).
sys.path.append(str(Path(__file__).resolve().parent.parent / "benchmarks"))
import soak

LOAD_S = 60
RATES = soak.Rates(devices=20, fix_interval=2.0, tiles=10.0, items=5.0, edit_cycles=0.5)
SESSION_MARGIN = 3
"""Sessions the server may open after the warm-up: a pool may still grow by a connection
or two when requests happen to overlap more than they did in the first quarter."""
GROWTH_MB = 50
"""RSS growth allowed over the second half (the least-squares slope over its 30 s, times
30 s). The second half sees about 800 requests: a gross leak, something of each response
or each request's buffers kept (60 kB or more a request), goes over it; a small one (a few
kB a request) does not, and is what the minutes-long benchmark's slope is for. The bound is
wide because a 30 s fit on a loaded 2-core machine is noisy: the allocator's arenas and the
tile cache (256 MB at most, filled in the first half by the few hundred tiles there are)
move by a few MB; runs here grew under 1 MB."""


@pytest.fixture(scope="module")
def report(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[soak.Report]:
    """The run, on a database of its own: its sessions are the soak server's alone (the
    session database also holds the pools of the other modules' servers)."""
    folder = tmp_path_factory.mktemp("soak")
    url = create_database(server_url)
    try:
        migrate.upgrade(url)
        soak.load_data(url, folder, cells=40)
        with soak.serving(url, 1, folder / "platform.log") as (base, pid):
            yield asyncio.run(soak.run_load(
                base, url, pid, admin_headers(url), seconds=LOAD_S, every=2.0, rates=RATES,
                prefix="soak-ci", workers=1,
            ))  # fmt: skip
    finally:
        drop_database(server_url, url)


def test_every_workload_ran_without_errors(report: soak.Report) -> None:
    print("\n".join(report.lines))
    assert report.tally.error_count == 0, report.tally.errors
    for workload in ("gps", "tiles", "items", "create", "patch", "delete", "metrics"):
        assert report.tally.requests(workload) > 0, workload


def test_every_accepted_fix_is_stored_exactly_once(report: soak.Report) -> None:
    assert report.tally.accepted == report.tally.requests("gps")
    assert report.stored == report.distinct == report.tally.accepted


def test_connections_stay_within_the_pools(report: soak.Report) -> None:
    limit = soak.session_limit(report)
    assert limit > 0
    assert max(s.sessions for s in report.samples) <= limit
    assert report.final.sessions <= soak.warm_sessions(report) + SESSION_MARGIN
    assert soak.waiting(report.final) == 0
    assert all(v == 0 for (_, state), v in report.final.pools.items() if state == "in_use")


def test_memory_is_flat_over_the_second_half(report: soak.Report) -> None:
    grown = {pid: growth for pid, (_, _, _, growth) in soak.memory(report).items()}
    assert grown
    assert all(g < GROWTH_MB for g in grown.values()), grown
