"""The GPS store on the session database: the device registry, every check's reason,
idempotent storage, out-of-order fixes, the latest position, reject counters, month
partitions and retention, auto-registration, and the ``spatial gps`` commands."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support import run_cli

from spatial import samples
from spatial.errors import InvalidInputError, NotFoundError
from spatial.gps import store
from spatial.gps.fix import Fix, Reject
from spatial.settings import GpsSettings

T0 = dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
LON, LAT = 112.03, 22.91
"""A street of the demo city."""
STRICT = GpsSettings()
FLEET = ("YF-AMB-01", "YF-FIRE-01", "YF-AMB-02", "YF-FIRE-02", "YF-WATER-01", "YF-ENV-01")


def _fix(device: str, seconds: float, east_m: float = 0.0, **kw: Any) -> Fix:
    """A fix ``east_m`` metres east of the start, ``seconds`` after T0."""
    lon = LON + east_m / (111_320 * 0.9211)  # cos(22.91°)
    return Fix(time=T0 + dt.timedelta(seconds=seconds), lon=lon, lat=LAT, device=device, **kw)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection
        connection.execute("DELETE FROM gps.positions WHERE device_id LIKE 'st-%'")
        connection.execute("DELETE FROM gps.latest WHERE device_id LIKE 'st-%'")
        connection.execute("DELETE FROM gps.rejects WHERE device_id LIKE 'st-%' OR device_id = ''")
        connection.execute("DELETE FROM gps.devices WHERE id LIKE 'st-%'")


def test_the_registry(conn: psycopg.Connection[Any]) -> None:
    token = store.add_device(conn, "st-amb-1", name="Ambulance 1", kind="vehicle")
    assert len(token) >= 32
    hashed = conn.execute("SELECT token_sha256 FROM gps.devices WHERE id = 'st-amb-1'").fetchone()
    assert hashed is not None and token not in hashed[0]  # only a hash is kept
    assert [d.name for d in store.list_devices(conn) if d.id == "st-amb-1"] == ["Ambulance 1"]
    for bad, words in (("st-amb-1", "already registered"), ("bad id!", "device id"),
                       ("st-x", "department")):  # fmt: skip
        with pytest.raises(InvalidInputError, match=words):
            store.add_device(conn, bad, department="nosuch" if bad == "st-x" else None)
    with pytest.raises(InvalidInputError, match="kind"):
        store.add_device(conn, "st-y", kind="rocket")
    store.remove_device(conn, "st-amb-1")
    with pytest.raises(NotFoundError):
        store.remove_device(conn, "st-amb-1")


def test_each_check_names_its_reason() -> None:
    fixes = [
        _fix("st-a", 0),
        Fix(time=T0, lon=LON, lat=LAT, device=None),
        _fix("st-unknown", 1),
        Fix(time=T0 + dt.timedelta(seconds=2), lon=0.0, lat=0.0, device="st-a"),
        Fix(time=T0 + dt.timedelta(seconds=3), lon=LON, lat=95.0, device="st-a"),
        Fix(time=T0 + dt.timedelta(seconds=4), lon=float("nan"), lat=LAT, device="st-a"),
        Fix(time=NOW + dt.timedelta(hours=1), lon=LON, lat=LAT, device="st-a"),
        _fix("st-a", 5, hdop=45.0),
        _fix("st-a", 6, east_m=5_000),  # 5 km in 6 s: 3,000 km/h
        _fix("st-a", 0),  # the same device and time again
        _fix("st-a", 30, east_m=200),  # 24 km/h: fine
    ]
    kept, rejects = store.check(fixes, known={"st-a"}, latest={}, settings=STRICT, now=NOW)
    assert [f.time for f in kept] == [T0, T0 + dt.timedelta(seconds=30)]
    assert [r.reason for r in rejects] == [
        "unknown_device", "unknown_device", "zero_position", "out_of_range", "out_of_range",
        "future", "low_quality", "duplicate", "jump",
    ]  # fmt: skip
    assert "4994 m in 6 s" in rejects[-1].detail and "km/h > 300" in rejects[-1].detail
    # Against the stored latest position too.
    latest = {"st-a": (T0, LON, LAT)}
    kept, rejects = store.check([_fix("st-a", 1, east_m=1_000)], known={"st-a"}, latest=latest,
                                settings=STRICT, now=NOW)  # fmt: skip
    assert not kept and rejects[0].reason == "jump"
    # A fix older than the latest is kept (out of order), not compared.
    kept, _ = store.check([_fix("st-a", -60, east_m=9_000)], known={"st-a"}, latest=latest,
                          settings=STRICT, now=NOW)  # fmt: skip
    assert len(kept) == 1


def test_storing_is_idempotent_and_keeps_the_latest(conn: psycopg.Connection[Any]) -> None:
    store.add_device(conn, "st-fire-1")
    batch = [_fix("st-fire-1", s, east_m=10 * s, speed=10.0) for s in range(0, 60, 5)]
    first = store.store(conn, batch, source="test", settings=STRICT, now=NOW,
                        rejects=[Reject("checksum", "bad", device="st-fire-1")])  # fmt: skip
    assert (first.stored, first.duplicates) == (12, 0)
    again = store.store(conn, batch, source="test", settings=STRICT, now=NOW)
    assert (again.stored, again.duplicates) == (0, 12)
    late = store.store(conn, [_fix("st-fire-1", 2, east_m=20)], source="test", settings=STRICT,
                       now=NOW)  # fmt: skip
    assert late.stored == 1  # out of order, kept
    rows = conn.execute(
        "SELECT count(*), min(time), max(time) FROM gps.positions WHERE device_id = 'st-fire-1'"
    ).fetchone()
    assert rows == (13, T0, T0 + dt.timedelta(seconds=55))
    latest = conn.execute(
        "SELECT time, ST_X(geom), speed FROM gps.latest WHERE device_id = 'st-fire-1'"
    ).fetchone()
    assert latest is not None and latest[0] == T0 + dt.timedelta(seconds=55)
    assert latest[1] == pytest.approx(batch[-1].lon)
    rejected = conn.execute("SELECT reason, count FROM gps.rejects WHERE device_id = 'st-fire-1'")
    counts = dict(rejected.fetchall())
    assert counts == {"checksum": 1}
    partition = conn.execute("SELECT tableoid::regclass::text FROM gps.positions "
                             "WHERE device_id = 'st-fire-1' LIMIT 1").fetchone()  # fmt: skip
    assert partition == ("gps.positions_202603",)


def test_unknown_devices_are_refused_unless_auto_registered(
    conn: psycopg.Connection[Any],
) -> None:
    refused = store.store(conn, [_fix("st-new", 0)], source="test", settings=STRICT, now=NOW)
    assert refused.stored == 0 and refused.counts() == {"unknown_device": 1}
    counted = conn.execute(
        "SELECT count FROM gps.rejects WHERE device_id = 'st-new' AND reason = 'unknown_device'"
    ).fetchone()
    assert counted == (1,)
    welcoming = GpsSettings(auto_register=True)
    accepted = store.store(conn, [_fix("st-new", 0)], source="test", settings=welcoming, now=NOW)
    assert accepted.stored == 1
    auto = conn.execute("SELECT auto_registered FROM gps.devices WHERE id = 'st-new'").fetchone()
    assert auto == (True,)


def test_retention_drops_whole_old_months(conn: psycopg.Connection[Any]) -> None:
    store.add_device(conn, "st-old")
    days = (dt.datetime(2024, 1, 15), dt.datetime(2024, 2, 10), dt.datetime(2026, 11, 1))
    old = [Fix(time=d.replace(tzinfo=dt.UTC), lon=LON, lat=LAT, device="st-old") for d in days]
    assert store.store(conn, old, source="test", settings=STRICT, now=NOW).stored == 3
    # 2024-02 ends on 2024-03-01, before the cutoff of 2024-03-05: dropped; March 2024
    # would straddle it and stays.
    dropped = store.retention(conn, NOW - dt.datetime(2024, 3, 5, tzinfo=dt.UTC), now=NOW)
    assert dropped[-2:] == ["positions_202401", "positions_202402"]
    left = conn.execute("SELECT count(*) FROM gps.positions WHERE device_id = 'st-old'").fetchone()
    assert left == (1,)


def test_the_gps_commands(database_url: str, conn: psycopg.Connection[Any]) -> None:
    env = {"SPATIAL_DATABASE_URL": database_url, "SPATIAL_ENVIRONMENT": "test"}
    added = run_cli("gps", "device", "add", "st-cli-1", "--name", "CLI car", **env)
    assert added.returncode == 0, added.stderr
    assert "token (shown once)" in added.stdout
    listed = run_cli("gps", "device", "list", **env)
    assert "st-cli-1" in listed.stdout and "CLI car" in listed.stdout
    bad = run_cli("gps", "retention", "--older-than", "soon", **env)
    assert bad.returncode != 0 and "400d" in bad.stderr
    kept = run_cli("gps", "retention", "--older-than", "36500d", **env)
    assert kept.returncode == 0 and "dropped 0 partition" in kept.stdout
    idle = run_cli("gps", "receive", **env)
    assert idle.returncode != 0 and "--nmea-port" in idle.stderr
    wrong = run_cli("gps", "receive", "--mqtt", "nope", **env)
    assert wrong.returncode != 0 and "HOST:PORT" in wrong.stderr


def test_importing_the_demo_fleet_files(
    database_url: str, conn: psycopg.Connection[Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("fleet")
    samples.build(folder)
    for device in FLEET:
        if conn.execute("SELECT 1 FROM gps.devices WHERE id = %s", (device,)).fetchone() is None:
            store.add_device(conn, device)
    env = {"SPATIAL_DATABASE_URL": database_url, "SPATIAL_ENVIRONMENT": "test"}
    gpx = run_cli("ingest", "gps", str(folder / "gps" / "fleet.gpx"), **env)
    assert gpx.returncode == 0, gpx.stderr
    said = " ".join(gpx.stdout.split())
    stored, already = (int(n) for n in re.findall(r"stored (\d+) fixes.*; (\d+) already", said)[0])
    assert stored + already == 4_766  # other tests may have sent some of the same fixes
    nameless = run_cli("ingest", "gps", str(folder / "gps" / "fleet.nmea"), **env)
    assert nameless.returncode != 0 and "--device" in nameless.stderr
    nmea = run_cli("ingest", "gps", str(folder / "gps" / "fleet.nmea"), "--device", "YF-AMB-01",
                   **env)  # fmt: skip
    assert nmea.returncode == 0, nmea.stderr
    assert "checksum" in nmea.stderr and "no fix" in nmea.stderr  # the file's deliberate junk
    latest = conn.execute("SELECT count(*) FROM gps.latest WHERE device_id = ANY(%s)",
                          (list(FLEET),)).fetchone()  # fmt: skip
    assert latest == (6,)
