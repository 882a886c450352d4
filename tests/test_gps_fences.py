"""Geofences on the session database: enter, dwell and exit as fixes arrive, an exit far
from the fence, late fixes that change no history, fences imported from a polygon
collection, and the events as OGC API features."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import run_cli

from spatial.errors import InvalidInputError
from spatial.gps import fences, store
from spatial.gps.fix import Fix
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import GpsSettings, Settings

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
SQUARE = {"type": "Polygon", "coordinates": [[[112.0, 22.9], [112.01, 22.9], [112.01, 22.91],
                                              [112.0, 22.91], [112.0, 22.9]]]}  # fmt: skip
"""A fence of about 1 km around (112.005, 22.905)."""
SETTINGS = GpsSettings()


def _at(device: str, seconds: int, lon: float, lat: float = 22.905) -> Fix:
    return Fix(time=T0 + dt.timedelta(seconds=seconds), lon=lon, lat=lat, device=device)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection
        connection.execute("DELETE FROM gps.fences WHERE name LIKE 'gf-%'")
        for table in ("positions", "latest"):
            connection.execute(f"DELETE FROM gps.{table} WHERE device_id LIKE 'gf-%'")  # noqa: S608
        connection.execute("DELETE FROM gps.devices WHERE id LIKE 'gf-%'")


def _mine(events: list[fences.Event], fence: int) -> list[fences.Event]:
    """The events of one fence (other tests' fences, e.g. the demo's districts, may be
    crossed too)."""
    return [e for e in events if e.fence == fence]


def _events(conn: psycopg.Connection[Any], device: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT e.kind, f.name FROM gps.events e JOIN gps.fences f ON f.id = e.fence_id "
        "WHERE e.device_id = %s AND f.name LIKE 'gf-%%' ORDER BY e.time, e.id",
        (device,)).fetchall()  # fmt: skip
    return [(r[0], r[1]) for r in rows]


def test_enter_dwell_and_exit(conn: psycopg.Connection[Any]) -> None:
    store.add_device(conn, "gf-car")
    fence = fences.add_fence(conn, "gf-square", SQUARE, dwell_s=60)
    path = [_at("gf-car", 0, 111.995), _at("gf-car", 30, 112.002), _at("gf-car", 60, 112.004),
            _at("gf-car", 95, 112.006), _at("gf-car", 150, 112.02)]  # fmt: skip
    done = store.store(conn, path[:2], source="test", settings=SETTINGS, now=NOW)
    assert [(e.kind, e.time) for e in _mine(done.events, fence)] == [("enter", path[1].time)]
    done = store.store(conn, path[2:], source="test", settings=SETTINGS, now=NOW)
    assert [e.kind for e in _mine(done.events, fence)] == ["dwell", "exit"]
    assert _events(conn, "gf-car") == [("enter", "gf-square"), ("dwell", "gf-square"),
                                       ("exit", "gf-square")]  # fmt: skip
    state = conn.execute("SELECT inside FROM gps.fence_state WHERE device_id = 'gf-car' "
                         "AND fence_id = %s", (fence,)).fetchone()  # fmt: skip
    assert state == (False,)


def test_an_exit_far_away_and_late_fixes(conn: psycopg.Connection[Any]) -> None:
    store.add_device(conn, "gf-van")
    fence = fences.add_fence(conn, "gf-square", SQUARE)
    store.store(conn, [_at("gf-van", 0, 112.005)], source="test", settings=SETTINGS, now=NOW)
    far = store.store(conn, [_at("gf-van", 600, 112.3, 23.0)], source="test", settings=SETTINGS,
                      now=NOW)  # 35 km away, 10 minutes later  # fmt: skip
    assert [e.kind for e in _mine(far.events, fence)] == ["exit"]
    late = store.store(conn, [_at("gf-van", 300, 112.005)], source="test", settings=SETTINGS,
                       now=NOW)  # fmt: skip
    assert late.stored == 1 and _mine(late.events, fence) == []  # history is not rewritten
    assert _events(conn, "gf-van") == [("enter", "gf-square"), ("exit", "gf-square")]


def test_bad_fences_are_refused(conn: psycopg.Connection[Any]) -> None:
    line = {"type": "LineString", "coordinates": [[112.0, 22.9], [112.1, 22.9]]}
    for name, geometry, words in (("gf-line", line, "polygon"), ("", SQUARE, "name"),
                                  ("gf-x", {"type": "Polygon"}, "GeoJSON")):  # fmt: skip
        with pytest.raises(InvalidInputError, match=words):
            fences.add_fence(conn, name, geometry)
    with pytest.raises(InvalidInputError, match="dwell"):
        fences.add_fence(conn, "gf-y", SQUARE, dwell_s=0)


def test_fences_from_a_polygon_collection(
    conn: psycopg.Connection[Any], database_url: str, settings: Settings, tmp_path: Path
) -> None:
    zones = tmp_path / "gf_zones.geojson"
    zones.write_text(
        '{"type": "FeatureCollection", "features": ['
        '{"type": "Feature", "properties": {"zone": "gf-north"}, "geometry": '
        '{"type": "Polygon", "coordinates": [[[112.0, 22.95], [112.05, 22.95], [112.05, 23.0], '
        "[112.0, 23.0], [112.0, 22.95]]]}},"
        '{"type": "Feature", "properties": {"zone": "gf-south"}, "geometry": '
        '{"type": "Polygon", "coordinates": [[[112.0, 22.85], [112.05, 22.85], [112.05, 22.9], '
        "[112.0, 22.9], [112.0, 22.85]]]}}]}",
        encoding="utf-8",
    )
    ingest_vector(database_url, VectorSource(zones, "gf_zones", "gf zones", key="zone"), settings)
    env = {"SPATIAL_DATABASE_URL": database_url, "SPATIAL_ENVIRONMENT": "test"}
    for _ in range(2):  # importing again refreshes, it does not duplicate
        done = run_cli("gps", "fence", "import", "gf_zones", "--name-field", "zone", **env)
        assert done.returncode == 0, done.stderr
        assert "2 fence(s) from gf_zones" in " ".join(done.stdout.split())
    names = conn.execute("SELECT name FROM gps.fences WHERE source_collection = 'gf_zones' "
                         "ORDER BY name").fetchall()  # fmt: skip
    assert names == [("gf-north",), ("gf-south",)]
    listed = run_cli("gps", "fence", "list", **env)
    assert "gf-north" in listed.stdout and "gf_zones" in listed.stdout
    bad = run_cli("gps", "fence", "import", "gf_zones", "--name-field", "nosuch", **env)
    assert bad.returncode != 0 and "nosuch" in bad.stderr


def test_fence_changes_reach_the_next_batch(conn: psycopg.Connection[Any]) -> None:
    """Each process keeps the fences in memory: a fence drawn, moved or deleted counts from
    the next batch on (``gps.fences_version``), and a deleted one gets no events."""
    store.add_device(conn, "gf-bus")
    store.store(conn, [_at("gf-bus", 0, 112.005)], source="test", settings=SETTINGS, now=NOW)
    fence = fences.add_fence(conn, "gf-late", SQUARE)
    done = store.store(conn, [_at("gf-bus", 10, 112.006)], source="test", settings=SETTINGS,
                       now=NOW)  # fmt: skip
    assert [e.kind for e in _mine(done.events, fence)] == ["enter"]
    # Moved 1 km east: the bus is now outside it.
    conn.execute("UPDATE gps.fences SET geom = ST_Translate(geom, 0.02, 0) WHERE id = %s",
                 (fence,))  # fmt: skip
    done = store.store(conn, [_at("gf-bus", 20, 112.007)], source="test", settings=SETTINGS,
                       now=NOW)  # fmt: skip
    assert [e.kind for e in _mine(done.events, fence)] == ["exit"]
    fences.remove_fence(conn, fence)
    done = store.store(conn, [_at("gf-bus", 300, 112.025)], source="test", settings=SETTINGS,
                       now=NOW)  # fmt: skip
    assert done.stored == 1 and _mine(done.events, fence) == []


def test_concurrent_batches_of_the_same_devices(database_url: str,
                                                conn: psycopg.Connection[Any]) -> None:  # fmt: skip
    """Four connections storing batches of the same eight devices at once: nothing fails
    (the devices are locked in one order), every fix is stored, and each device's events
    in the fence alternate enter / exit as its state says (no enter twice)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    devices = [f"gf-c{i}" for i in range(8)]
    for device in devices:
        store.add_device(conn, device)
    fence = fences.add_fence(conn, "gf-busy", SQUARE)
    # Every 20 s all devices step; four steps inside the square, four outside (each
    # connection gets every fourth batch, so its own batches go in and out too).
    batches = [[_at(d, 20 * step, 112.005 if step // 4 % 2 == 0 else 111.99, 22.905 + i * 1e-4)
                for i, d in enumerate(devices)] for step in range(40)]  # fmt: skip

    def run(mine: list[list[Fix]]) -> int:
        with psycopg.connect(database_url, autocommit=True) as own:
            return sum(store.store(own, batch, source="test", settings=SETTINGS,
                                   now=NOW).stored for batch in mine)  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        stored = sum(pool.map(run, [batches[k::4] for k in range(4)]))
    assert stored == 8 * 40
    # Fixes older than a device's latest move nothing (late, not history), so how many
    # events there are depends on the order the batches went in; their sequence must not.
    total = 0
    for device in devices:
        kinds = [r[0] for r in conn.execute(
            "SELECT kind FROM gps.events WHERE device_id = %s AND fence_id = %s "
            "ORDER BY time, id", (device, fence))]  # fmt: skip
        total += len(kinds)
        assert kinds == ["enter", "exit"] * (len(kinds) // 2) + ["enter"] * (len(kinds) % 2)
        state = conn.execute("SELECT inside FROM gps.fence_state WHERE device_id = %s "
                             "AND fence_id = %s", (device, fence)).fetchone()  # fmt: skip
        assert state == ((kinds[-1] == "enter",) if kinds else None)
    assert total >= 8
