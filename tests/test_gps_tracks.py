"""Tracks, trips and stops: the segmentation on a made-up day, and the derivation from
stored positions (dirty device-days, lines, lengths, trips and stops, the views)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support import run_cli

from spatial.gps import store, tracks
from spatial.gps.fix import Fix
from spatial.settings import GpsSettings

T0 = dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
METRE = 1 / (111_320 * 0.9211)
"""Degrees of longitude per metre at 22.9°N."""


def _day() -> list[tuple[dt.datetime, float, float]]:
    """10 fixes moving 100 m apart every 10 s; 6 minutes still (within 10 m); 10 moving;
    a 10-minute gap; 10 moving."""
    points, t, x = [], T0, 112.0
    for _ in range(10):
        points.append((t, x, 22.9))
        t, x = t + dt.timedelta(seconds=10), x + 100 * METRE
    for k in range(37):
        points.append((t, x + (k % 3) * 3 * METRE, 22.9))
        t += dt.timedelta(seconds=10)
    for _ in range(10):
        x += 100 * METRE
        points.append((t, x, 22.9))
        t += dt.timedelta(seconds=10)
    t += dt.timedelta(minutes=10)
    for _ in range(10):
        x += 100 * METRE
        points.append((t, x, 22.9))
        t += dt.timedelta(seconds=10)
    return points


def test_a_day_splits_into_trips_and_stops() -> None:
    parts = tracks.segment(_day())
    assert [p.kind for p in parts] == ["trip", "stop", "trip", "trip"]
    stop = parts[1]
    assert (stop.points[-1][0] - stop.points[0][0]).total_seconds() == 360
    assert len(parts[0].points) == 11  # the trip ends where the stop begins
    assert tracks.segment([]) == [] and tracks.segment(_day()[:1]) == []


@contextlib.contextmanager
def _deriving(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Hold the derivation lock, as a deriving process does. The session's API workers
    derive every dirty day of this database every few seconds (``api.live.derive_tracks``):
    meanwhile they skip, so the day this test marks dirty is still dirty when it looks, and
    is derived by the test itself (the lock is re-entrant on the same connection)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (tracks._DERIVING,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (tracks._DERIVING,))


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection
        for table in ("positions", "latest", "tracks", "trips", "stops", "tracks_dirty"):
            connection.execute(f"DELETE FROM gps.{table} WHERE device_id LIKE 'tk-%'")  # noqa: S608
        connection.execute("DELETE FROM gps.devices WHERE id LIKE 'tk-%'")


def test_tracks_are_derived_from_stored_positions(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    store.add_device(conn, "tk-bus")
    fixes = [Fix(time=t, lon=x, lat=y, device="tk-bus") for t, x, y in _day()]
    with _deriving(conn):
        store.store(conn, fixes, source="test", settings=GpsSettings(), now=NOW)
        dirty = conn.execute("SELECT day FROM gps.tracks_dirty WHERE device_id = 'tk-bus'"
                             ).fetchall()  # fmt: skip
    assert dirty == [(T0.date(),)]
    done = run_cli("gps", "tracks", SPATIAL_DATABASE_URL=database_url, SPATIAL_ENVIRONMENT="test")
    assert done.returncode == 0, done.stderr
    track = conn.execute("SELECT points, length_m, started, ended, ST_NPoints(simple) "
                         "FROM gps.tracks WHERE device_id = 'tk-bus'").fetchone()  # fmt: skip
    assert track is not None and track[0] == len(fixes)
    assert track[1] == pytest.approx(3_144, rel=0.01)  # 30 moves of 100 m, 144 m of jitter
    assert (track[2], track[3]) == (fixes[0].time, fixes[-1].time)
    assert track[4] < len(fixes)  # simplified for display
    trips = conn.execute("SELECT count(*) FROM gps.trips WHERE device_id = 'tk-bus'").fetchone()
    stops = conn.execute("SELECT seconds FROM gps.stops_features WHERE device_id = 'tk-bus'"
                         ).fetchall()  # fmt: skip
    assert trips == (3,) and stops == [(360.0,)]
    assert conn.execute("SELECT count(*) FROM gps.tracks_dirty WHERE device_id = 'tk-bus'"
                        ).fetchone() == (0,)  # fmt: skip
    # A late fix marks the day again; deriving it again replaces, never duplicates.
    late = Fix(time=T0 - dt.timedelta(minutes=1), lon=112.0 - 50 * METRE, lat=22.9,
               device="tk-bus")  # fmt: skip
    with _deriving(conn):
        store.store(conn, [late], source="test", settings=GpsSettings(), now=NOW)
        assert tracks.rebuild_all(conn) == 1
    assert conn.execute("SELECT points FROM gps.tracks WHERE device_id = 'tk-bus'"
                        ).fetchone() == (len(fixes) + 1,)  # fmt: skip
    assert conn.execute("SELECT count(*) FROM gps.trips WHERE device_id = 'tk-bus'"
                        ).fetchone() == (3,)  # fmt: skip
