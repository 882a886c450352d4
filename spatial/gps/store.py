"""Checking fixes against the device registry and each device's track, and storing them.

Every source (receivers, file imports) goes through :func:`store`:

1. :func:`check` refuses, with a counted reason, fixes of unknown devices (unless
   auto-registration is on), at (0, 0), out of range, too far in the future, of poor
   quality (HDOP), or implying an impossible jump from the device's previous fix; a
   repeated device and time inside a batch is a duplicate. Fixes out of order are kept.
2. One transaction: the month partitions are made, the fixes are copied into a temporary
   table and inserted into ``gps.positions`` (a fix already stored is skipped: sending it
   again is harmless), ``gps.latest`` moves forward, the reject counters grow. A caller
   acknowledges a fix only after this commits, so an acknowledged fix is never lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from spatial.errors import InvalidInputError, NotFoundError
from spatial.gps import fences
from spatial.gps.fix import Fix, Reject
from spatial.settings import GpsSettings

EARTH_RADIUS_M = 6_371_008.8
DEVICE_ID = "^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,63}$"
KINDS = ("vehicle", "person", "boat", "drone", "sensor")


@dataclass(frozen=True)
class Device:
    """A registered device."""

    id: str
    name: str
    department: str | None
    kind: str
    active: bool = True


@dataclass
class Stored:
    """What :func:`store` did with a batch."""

    stored: int = 0
    duplicates: int = 0
    rejects: list[Reject] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)
    events: list[fences.Event] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rejects by reason (duplicates included)."""
        counted = Counter(r.reason for r in self.rejects)
        if self.duplicates:
            counted["duplicate"] += self.duplicates
        return dict(counted)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_device(
    conn: psycopg.Connection[Any], device_id: str, *, name: str | None = None,
    department: str | None = None, kind: str = "vehicle",
) -> str:  # fmt: skip
    """Register a device; returns its token (shown once, stored hashed).

    Raises:
        InvalidInputError: a bad id or kind, an unknown department, or an id in use.
    """
    if not re.match(DEVICE_ID, device_id):
        msg = f"device id {device_id!r}: use letters, digits and _ . : @ / - (at most 64)"
        raise InvalidInputError(msg)
    if kind not in KINDS:
        msg = f"device kind {kind!r}: use one of {', '.join(KINDS)}"
        raise InvalidInputError(msg)
    if department is not None and conn.execute(
        "SELECT 1 FROM platform.departments WHERE id = %s", (department,)
    ).fetchone() is None:  # fmt: skip
        msg = f"department {department!r} does not exist (spatial user department add)"
        raise InvalidInputError(msg)
    token = secrets.token_urlsafe(24)
    try:
        conn.execute(
            "INSERT INTO gps.devices (id, name, department, kind, token_sha256) "
            "VALUES (%s, %s, %s, %s, %s)",
            (device_id, name or device_id, department, kind, _hash(token)),
        )
    except psycopg.errors.UniqueViolation:
        msg = f"device {device_id!r} is already registered"
        raise InvalidInputError(msg) from None
    return token


def list_devices(conn: psycopg.Connection[Any]) -> list[Device]:
    """Every registered device, by id."""
    rows = conn.execute(
        "SELECT id, name, department, kind, active FROM gps.devices ORDER BY id"
    ).fetchall()
    return [Device(*row) for row in rows]


def remove_device(conn: psycopg.Connection[Any], device_id: str) -> None:
    """Unregister a device (its positions stay).

    Raises:
        NotFoundError: no such device.
    """
    if conn.execute("DELETE FROM gps.devices WHERE id = %s", (device_id,)).rowcount == 0:
        msg = f"device {device_id!r} is not registered"
        raise NotFoundError(msg)


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine on the mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


Last = tuple[dt.datetime, float, float]
"""A device's previous fix: time, lon, lat."""


def check(
    fixes: Iterable[Fix],
    *,
    known: set[str] | None,
    latest: dict[str, Last],
    settings: GpsSettings,
    now: dt.datetime,
) -> tuple[list[Fix], list[Reject]]:
    """The fixes to store and the rejects, in the order the checks apply.

    Args:
        known: registered device ids, or None to accept any (auto-registration).
        latest: each device's newest stored fix (for jumps).
    """
    good: list[Fix] = []
    rejects: list[Reject] = []
    horizon = now + dt.timedelta(seconds=settings.max_future_s)
    limit = settings.max_speed_kmh / 3.6
    for fix in fixes:
        reason = _reason(fix, known, horizon, settings)
        if reason is not None:
            rejects.append(Reject(reason[0], reason[1], device=fix.device))
        else:
            good.append(fix)
    kept: list[Fix] = []
    previous: dict[str, Last] = dict(latest)
    seen: set[tuple[str, dt.datetime]] = set()
    for fix in sorted(good, key=lambda f: (str(f.device), f.time)):
        device = str(fix.device)
        if (device, fix.time) in seen:
            rejects.append(Reject("duplicate", f"{device} at {fix.time.isoformat()} twice",
                                  device=device))  # fmt: skip
            continue
        last = previous.get(device)
        if last is not None and fix.time > last[0]:
            seconds = (fix.time - last[0]).total_seconds()
            metres = distance_m(last[1], last[2], fix.lon, fix.lat)
            if metres / seconds > limit:
                rejects.append(Reject(
                    "jump", f"{metres:.0f} m in {seconds:g} s from the previous fix "
                    f"({metres / seconds * 3.6:.0f} km/h > {settings.max_speed_kmh:g})",
                    device=device))  # fmt: skip
                continue
        seen.add((device, fix.time))
        kept.append(fix)
        if last is None or fix.time > last[0]:
            previous[device] = (fix.time, fix.lon, fix.lat)
    return kept, rejects


def _reason(
    fix: Fix, known: set[str] | None, horizon: dt.datetime, settings: GpsSettings
) -> tuple[str, str] | None:
    """The first check a fix fails, as (reason, detail), or None."""
    checks: tuple[tuple[Callable[[], bool], str, Callable[[], str]], ...] = (
        (lambda: not fix.device, "unknown_device", lambda: "the fix names no device"),
        (lambda: known is not None and fix.device not in known, "unknown_device",
         lambda: f"device {fix.device!r} is not registered"),
        (lambda: not (math.isfinite(fix.lat) and math.isfinite(fix.lon)), "out_of_range",
         lambda: "a coordinate is not a number"),
        (lambda: fix.lat == 0 and fix.lon == 0, "zero_position",
         lambda: "the position is (0, 0)"),
        (lambda: not (-90 <= fix.lat <= 90 and -180 <= fix.lon <= 180), "out_of_range",
         lambda: f"lat {fix.lat}, lon {fix.lon} is not a place"),
        (lambda: fix.time.tzinfo is None, "no_time", lambda: "the time has no time zone"),
        (lambda: fix.time > horizon, "future",
         lambda: f"{fix.time.isoformat()} is ahead of the server's clock"),
        (lambda: fix.hdop is not None and fix.hdop > settings.max_hdop, "low_quality",
         lambda: f"HDOP {fix.hdop:g} > {settings.max_hdop:g}"),
    )  # fmt: skip
    for failed, reason, detail in checks:
        if failed():
            return reason, detail()
    return None


def store(
    conn: psycopg.Connection[Any],
    fixes: Sequence[Fix],
    *,
    source: str,
    settings: GpsSettings,
    rejects: Sequence[Reject] = (),
    now: dt.datetime | None = None,
) -> Stored:
    """Check and store a batch in one transaction (the caller's connection must not be in
    one; it commits here). ``rejects`` from the decoder are counted with the checks'."""
    now = now or dt.datetime.now(dt.UTC)
    with conn.transaction():
        devices = {f.device for f in fixes if f.device}
        found = conn.execute(
            "SELECT id FROM gps.devices WHERE id = ANY(%s) AND active", (list(devices),)
        )
        registered = {r[0] for r in found}
        if settings.auto_register:
            for device in sorted(devices - registered):
                conn.execute(
                    "INSERT INTO gps.devices (id, name, auto_registered) VALUES (%s, %s, true) "
                    "ON CONFLICT (id) DO NOTHING", (device, device))  # fmt: skip
            registered |= devices
        latest = {row[0]: (row[1], row[2], row[3]) for row in conn.execute(
            "SELECT device_id, time, ST_X(geom), ST_Y(geom) FROM gps.latest "
            "WHERE device_id = ANY(%s)", (list(registered),))}  # fmt: skip
        kept, refused = check(fixes, known=registered, latest=latest, settings=settings, now=now)
        outcome = Stored(rejects=[*rejects, *refused], devices={str(f.device) for f in kept})
        if kept:
            outcome.stored = _insert(conn, kept, source)
            outcome.duplicates = len(kept) - outcome.stored
            moving = [f for f in kept if str(f.device) not in latest
                      or f.time > latest[str(f.device)][0]]  # fmt: skip
            outcome.events = fences.evaluate(conn, moving)
        _count(conn, outcome.rejects)
        if outcome.stored:
            _notify(conn, sorted(outcome.devices), outcome.events)
    return outcome


def _notify(conn: psycopg.Connection[Any], devices: list[str], events: list[fences.Event]) -> None:
    """Tell the live streams (every worker) which devices moved and what happened, in as
    many notifications as needed (each must stay under PostgreSQL's 8,000 bytes)."""
    moved = [{"devices": devices[i : i + 100]} for i in range(0, len(devices), 100)]
    happened = [
        {"events": [{"device": e.device, "fence": e.fence, "kind": e.kind,
                     "time": e.time.isoformat(), "lon": e.lon, "lat": e.lat}
                    for e in events[i : i + 25]]}
        for i in range(0, len(events), 25)
    ]  # fmt: skip
    for payload in (*moved, *happened):
        conn.execute("SELECT pg_notify('spatial_gps', %s)", (json.dumps(payload),))


_COLUMNS = ("device_id", "time", "lon", "lat", "altitude", "speed", "course", "hdop",
            "satellites", "accuracy", "attributes", "source")  # fmt: skip


def _insert(conn: psycopg.Connection[Any], fixes: list[Fix], source: str) -> int:
    months = sorted({f.time.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0,
                                                      microsecond=0) for f in fixes})  # fmt: skip
    for month in months:
        conn.execute("SELECT gps.ensure_month(%s)", (month,))
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS gps_incoming (device_id text, time timestamptz, "
        "lon float8, lat float8, altitude float8, speed float8, course float8, hdop float8, "
        "satellites int, accuracy float8, attributes jsonb, source text) ON COMMIT DELETE ROWS"
    )
    with conn.cursor().copy(f"COPY gps_incoming ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
        for f in fixes:
            copy.write_row((f.device, f.time, f.lon, f.lat, f.altitude, f.speed, f.course,
                            f.hdop, f.satellites, f.accuracy, Jsonb(dict(f.attributes)),
                            source))  # fmt: skip
    inserted = conn.execute(
        "INSERT INTO gps.positions (device_id, time, geom, altitude, speed, course, hdop, "
        "satellites, accuracy, attributes, source) SELECT device_id, time, "
        "ST_SetSRID(ST_MakePoint(lon, lat), 4326), altitude, speed, course, hdop, satellites, "
        "accuracy, attributes, source FROM gps_incoming ON CONFLICT DO NOTHING"
    ).rowcount
    # The device-days whose tracks, trips and stops must be derived again
    # (:mod:`spatial.gps.tracks`).
    conn.execute(
        "INSERT INTO gps.tracks_dirty (device_id, day) SELECT DISTINCT device_id, "
        "(time AT TIME ZONE 'UTC')::date FROM gps_incoming ON CONFLICT DO NOTHING"
    )
    conn.execute(
        "INSERT INTO gps.latest (device_id, time, geom, altitude, speed, course, attributes) "
        "SELECT DISTINCT ON (device_id) device_id, time, ST_SetSRID(ST_MakePoint(lon, lat), "
        "4326), altitude, speed, course, attributes FROM gps_incoming "
        "ORDER BY device_id, time DESC "
        "ON CONFLICT (device_id) DO UPDATE SET time = excluded.time, geom = excluded.geom, "
        "altitude = excluded.altitude, speed = excluded.speed, course = excluded.course, "
        "attributes = excluded.attributes, updated_at = now() "
        "WHERE excluded.time > gps.latest.time"
    )
    return int(inserted)


def _count(conn: psycopg.Connection[Any], rejects: Sequence[Reject]) -> None:
    if not rejects:
        return
    counted: Counter[tuple[str, str]] = Counter((r.device or "", r.reason) for r in rejects)
    details = {(r.device or "", r.reason): r.detail[:300] for r in rejects}
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gps.rejects (device_id, reason, count, last_detail) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (device_id, reason) DO UPDATE SET "
            "count = gps.rejects.count + excluded.count, last_at = now(), "
            "last_detail = excluded.last_detail",
            [(device, reason, n, details[(device, reason)])
             for (device, reason), n in counted.items()],
        )  # fmt: skip


def retention(conn: psycopg.Connection[Any], older_than: dt.timedelta,
              now: dt.datetime | None = None) -> list[str]:  # fmt: skip
    """Drop the month partitions that end before ``now - older_than`` (whole partitions
    only: a month partly inside the window stays); returns their names."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    parts = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE n.nspname = 'gps' AND p.relname = 'positions' ORDER BY c.relname"
    ).fetchall()
    dropped = []
    with conn.transaction():
        for (name,) in parts:
            year, month = int(name[-6:-2]), int(name[-2:])
            end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
            if end <= cutoff:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("gps", name)))
                dropped.append(name)
    return dropped
