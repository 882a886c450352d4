"""Checking fixes against the device registry and each device's track, and storing them.

Every source (receivers, file imports) goes through :func:`store`:

1. :func:`check` refuses, with a counted reason, fixes of unknown devices (unless
   auto-registration is on), at (0, 0), out of range, too far in the future, of poor
   quality (HDOP), or implying an impossible jump from the device's previous fix; a
   repeated device and time inside a batch is a duplicate. Fixes out of order are kept.
2. One transaction: the month partitions are made; one statement inserts the fixes into
   ``gps.positions`` (a fix already stored is skipped: sending it again is harmless),
   marks their device-days for the tracks and moves ``gps.latest`` forward; the devices
   are moved through the geofences (:mod:`spatial.gps.fences`), the reject counters grow,
   and the live streams are notified. A caller acknowledges a fix only after this
   commits, so an acknowledged fix is never lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from spatial import partitions
from spatial.audit import Actor, record
from spatial.errors import InvalidInputError, NotFoundError
from spatial.gps import fences, pgarrays
from spatial.gps.fix import DEVICE_ID, Fix, Reject
from spatial.settings import GpsSettings

EARTH_RADIUS_M = 6_371_008.8
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
    department: str | None = None, kind: str = "vehicle", actor: Actor | None = None,
    terminal: str | None = None,
) -> str:  # fmt: skip
    """Register a device, audited as ``device-add``; returns its token (shown once, stored
    hashed, never in the audit log).

    Args:
        actor: who registers it [default: the OS user, :meth:`Actor.local`].
        terminal: the phone number a JT/T 808 terminal sends (leading zeros dropped).

    Raises:
        InvalidInputError: a bad id, kind or terminal number, an unknown department, or
            an id or terminal number in use.
    """
    if not re.fullmatch(DEVICE_ID, device_id):
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
    number = terminal.lstrip("0") if terminal is not None else None
    if number is not None and not re.fullmatch(r"[1-9][0-9]{0,19}", number):
        msg = f"terminal number {terminal!r}: the SIM's phone number, digits only (at most 20)"
        raise InvalidInputError(msg)
    token = secrets.token_urlsafe(24)
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO gps.devices (id, name, department, kind, token_sha256, terminal) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (device_id, name or device_id, department, kind, _hash(token), number),
            )
            details = {"department": department, "kind": kind}
            if number is not None:
                details["terminal"] = number
            record(conn, actor or Actor.local(), "device-add", feature_ids=[device_id],
                   details=details)  # fmt: skip
    except psycopg.errors.UniqueViolation:
        taken = f"device {device_id!r}" + (f" or terminal {number}" if number else "")
        msg = f"{taken} is already registered"
        raise InvalidInputError(msg) from None
    return token


def list_devices(conn: psycopg.Connection[Any]) -> list[Device]:
    """Every registered device, by id."""
    rows = conn.execute(
        "SELECT id, name, department, kind, active FROM gps.devices ORDER BY id"
    ).fetchall()
    return [Device(*row) for row in rows]


def device_department(conn: psycopg.Connection[Any], device_id: str) -> str | None:
    """The department a device belongs to (None: no department, or no such device)."""
    row = conn.execute("SELECT department FROM gps.devices WHERE id = %s", (device_id,)).fetchone()
    return None if row is None else row[0]


def remove_device(
    conn: psycopg.Connection[Any], device_id: str, *, actor: Actor | None = None
) -> None:
    """Unregister a device (its positions stay), audited as ``device-remove``.

    Args:
        actor: who unregisters it [default: the OS user, :meth:`Actor.local`].

    Raises:
        NotFoundError: no such device.
    """
    with conn.transaction():
        if conn.execute("DELETE FROM gps.devices WHERE id = %s", (device_id,)).rowcount == 0:
            msg = f"device {device_id!r} is not registered"
            raise NotFoundError(msg)
        record(conn, actor or Actor.local(), "device-remove", feature_ids=[device_id])


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


def _reason(  # noqa: PLR0911 - one return per check, in order
    fix: Fix, known: set[str] | None, horizon: dt.datetime, settings: GpsSettings
) -> tuple[str, str] | None:
    """The first check a fix fails, as (reason, detail), or None (in the order of the
    module's docstring; written out plainly, since every fix of a batch passes here)."""
    lat, lon = fix.lat, fix.lon
    if not fix.device:
        return "unknown_device", "the fix names no device"
    if known is not None and fix.device not in known:
        return "unknown_device", f"device {fix.device!r} is not registered"
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return "out_of_range", "a coordinate is not a number"
    if lat == 0 and lon == 0:
        return "zero_position", "the position is (0, 0)"
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return "out_of_range", f"lat {lat}, lon {lon} is not a place"
    if fix.time.tzinfo is None:
        return "no_time", "the time has no time zone"
    if fix.time > horizon:
        return "future", f"{fix.time.isoformat()} is ahead of the server's clock"
    if fix.hdop is not None and fix.hdop > settings.max_hdop:
        return "low_quality", f"HDOP {fix.hdop:g} > {settings.max_hdop:g}"
    return None


_DEVICES = (
    "SELECT d.id, l.time, ST_X(l.geom), ST_Y(l.geom) FROM gps.devices d "
    "LEFT JOIN gps.latest l ON l.device_id = d.id WHERE d.id = ANY(%s) AND d.active"
)
_LOCK = "SELECT id FROM gps.devices WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE"
"""Lock the devices (in id order, so concurrent batches wait rather than deadlock). What
they guard is read by the statements after it: a statement that waited for a lock still
reads other tables as they were when it started."""


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
    one; it commits here). ``rejects`` from the decoder are counted with the checks'.

    Three round trips to the database and the commit, whatever the batch's size (psycopg's
    pipeline mode): the devices and their latest positions; the fixes inserted and the
    devices locked with their fence states; the fence events, latest positions, reject
    counters and notifications written. The devices stay locked from the second to the
    commit, so their fences and latest positions move one batch at a time."""
    now = now or dt.datetime.now(dt.UTC)
    pgarrays.register(conn)
    devices = sorted({f.device for f in fixes if f.device})
    with conn.pipeline(), conn.transaction():
        found = conn.execute(_DEVICES, (pgarrays.text(devices),))
        version = conn.execute("SELECT version FROM gps.fences_version")
        rows = found.fetchall()
        registered = {r[0] for r in rows}
        latest = {r[0]: (r[1], r[2], r[3]) for r in rows if r[1] is not None}
        if settings.auto_register and (new := sorted(
            d for d in set(devices) - registered if re.fullmatch(DEVICE_ID, d))):  # fmt: skip
            conn.cursor().executemany(
                "INSERT INTO gps.devices (id, name, auto_registered) VALUES (%s, %s, true) "
                "ON CONFLICT (id) DO NOTHING", [(d, d) for d in new])  # fmt: skip
            registered |= set(new)
        kept, refused = check(fixes, known=registered, latest=latest, settings=settings, now=now)
        outcome = Stored(rejects=[*rejects, *refused], devices={str(f.device) for f in kept})
        if not kept:
            _count(conn, outcome.rejects)
            return outcome
        located = fences.locate(conn, kept, version=_one(version))
        inserting = _insert(conn, kept, source)
        moved = pgarrays.text(sorted(outcome.devices))
        conn.execute(_LOCK, (moved,))
        locked = conn.execute("SELECT device_id, time FROM gps.latest WHERE device_id = ANY(%s)",
                              (moved,))  # fmt: skip
        reading = conn.execute(fences.STATES, (moved,))
        hit = sorted({f for fences_hit in located.hit.values() for f in fences_hit})
        alive = conn.execute(fences.ALIVE, {"hit": hit, "devices": moved})
        days = {(r[0], r[1]): int(r[2]) for r in inserting.fetchall()}
        outcome.stored = sum(days.values())
        outcome.duplicates = len(kept) - outcome.stored
        latest_times = dict(locked.fetchall())
        states = {(r[0], r[1]): [r[2], r[3], r[4]] for r in reading.fetchall()}
        moving = [i for i, f in enumerate(kept) if latest_times.get(str(f.device)) is None
                  or f.time > latest_times[str(f.device)]]  # fmt: skip
        outcome.events, changed = fences.advance(located, kept, moving, states,
                                                 {r[0] for r in alive.fetchall()})  # fmt: skip
        fences.save(conn, outcome.events, changed)
        _move_latest(conn, [kept[i] for i in moving], days)
        _count(conn, outcome.rejects)
        if outcome.stored:
            _notify(conn, sorted(outcome.devices), outcome.events)
    return outcome


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    return row[0] if row is not None else None


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
    conn.execute(
        "SELECT pg_notify('spatial_gps', p) FROM unnest(%s::text[]) AS p",
        (pgarrays.text([json.dumps(payload) for payload in (*moved, *happened)]),),
    )


_INSERT = """
WITH inserted AS (
    INSERT INTO gps.positions (device_id, time, geom, altitude, speed, course, hdop,
                               satellites, accuracy, attributes, source)
    SELECT device_id, time, ST_SetSRID(ST_MakePoint(lon, lat), 4326), altitude, speed, course,
           hdop, satellites, accuracy, coalesce(attributes, '{}'), %(source)s
    FROM unnest(%(device)s::text[], %(time)s::timestamptz[], %(lon)s::float8[],
        %(lat)s::float8[], %(altitude)s::float8[], %(speed)s::float8[], %(course)s::float8[],
        %(hdop)s::float8[], %(satellites)s::int[], %(accuracy)s::float8[],
        %(attributes)s::jsonb[])
        AS u(device_id, time, lon, lat, altitude, speed, course, hdop, satellites, accuracy,
             attributes)
    ON CONFLICT DO NOTHING
    RETURNING device_id, time
)
SELECT device_id, (time AT TIME ZONE 'UTC')::date, count(*) FROM inserted GROUP BY 1, 2
"""
"""The fixes, sent as binary arrays (:mod:`spatial.gps.pgarrays`), into ``gps.positions``;
a fix stored before is skipped. Returns the number stored per device and UTC day."""

DeviceDay = tuple[str, dt.date]


def _insert(conn: psycopg.Connection[Any], fixes: list[Fix], source: str) -> psycopg.Cursor[Any]:
    """Queue the month partitions and :data:`_INSERT`; returns the insert's cursor."""
    utc = [f.time if f.time.tzinfo is dt.UTC else f.time.astimezone(dt.UTC) for f in fixes]
    months = sorted({(t.year, t.month) for t in utc})
    conn.execute("SELECT gps.ensure_month(m) FROM unnest(%s) AS m",
                 (pgarrays.timestamptz([dt.datetime(y, m, 1, tzinfo=dt.UTC)
                                        for y, m in months]),))  # fmt: skip
    return conn.execute(_INSERT, {**_columns(fixes, utc), "source": source})


def _columns(fixes: Sequence[Fix], utc: Sequence[dt.datetime] | None = None) -> dict[str, Any]:
    """The fixes as binary arrays, one per column (:mod:`spatial.gps.pgarrays`)."""
    return {
        "device": pgarrays.text([f.device for f in fixes]),
        "time": pgarrays.timestamptz(utc if utc is not None else [f.time for f in fixes]),
        "lon": pgarrays.float8([f.lon for f in fixes]),
        "lat": pgarrays.float8([f.lat for f in fixes]),
        "altitude": pgarrays.float8([f.altitude for f in fixes]),
        "speed": pgarrays.float8([f.speed for f in fixes]),
        "course": pgarrays.float8([f.course for f in fixes]),
        "hdop": pgarrays.float8([f.hdop for f in fixes]),
        "satellites": pgarrays.int4([f.satellites for f in fixes]),
        "accuracy": pgarrays.float8([f.accuracy for f in fixes]),
        "attributes": pgarrays.jsonb([json.dumps(dict(f.attributes)) if f.attributes else None
                                      for f in fixes]),
    }  # fmt: skip


_LATEST = """
WITH dirty AS (
    -- The device-days whose tracks, trips and stops are derived again (spatial.gps.tracks).
    INSERT INTO gps.tracks_dirty (device_id, day)
    SELECT * FROM unnest(%(dirty_device)s::text[], %(dirty_day)b::date[])
    ON CONFLICT DO NOTHING
)
INSERT INTO gps.latest (device_id, time, geom, altitude, speed, course, attributes)
SELECT device_id, time, ST_SetSRID(ST_MakePoint(lon, lat), 4326), altitude, speed, course,
       coalesce(attributes, '{}')
FROM unnest(%(device)s::text[], %(time)s::timestamptz[], %(lon)s::float8[], %(lat)s::float8[],
            %(altitude)s::float8[], %(speed)s::float8[], %(course)s::float8[],
            %(attributes)s::jsonb[])
    AS u(device_id, time, lon, lat, altitude, speed, course, attributes)
ON CONFLICT (device_id) DO UPDATE SET time = excluded.time, geom = excluded.geom,
    altitude = excluded.altitude, speed = excluded.speed, course = excluded.course,
    attributes = excluded.attributes, updated_at = now()
WHERE excluded.time > gps.latest.time
"""


def _move_latest(conn: psycopg.Connection[Any], moving: list[Fix],
                 days: dict[DeviceDay, int]) -> None:  # fmt: skip
    """Queue :data:`_LATEST`: each device's newest fix, and the device-days stored to."""
    newest: dict[str, Fix] = {}
    for fix in moving:
        device = str(fix.device)
        if device not in newest or fix.time > newest[device].time:
            newest[device] = fix
    ahead = [newest[d] for d in sorted(newest)]
    dirty = sorted(days)
    conn.execute(_LATEST, {
        **_columns(ahead),
        "dirty_device": pgarrays.text([d for d, _ in dirty]),
        "dirty_day": [day for _, day in dirty],
    })  # fmt: skip


def _count(conn: psycopg.Connection[Any], rejects: Sequence[Reject]) -> None:
    if not rejects:
        return

    def who(reject: Reject) -> str:  # an id no device may have is counted as no device
        return reject.device if reject.device and re.fullmatch(DEVICE_ID, reject.device) else ""

    counted: Counter[tuple[str, str]] = Counter((who(r), r.reason) for r in rejects)
    details = {(who(r), r.reason): r.detail[:300].replace("\x00", "\ufffd") for r in rejects}
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gps.rejects (device_id, reason, count, last_detail) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (device_id, reason) DO UPDATE SET "
            "count = gps.rejects.count + excluded.count, last_at = now(), "
            "last_detail = excluded.last_detail",
            [(device, reason, n, details[(device, reason)])
             for (device, reason), n in sorted(counted.items())],
        )  # fmt: skip


def retention(
    conn: psycopg.Connection[Any], older_than: dt.timedelta, now: dt.datetime | None = None,
    *, actor: Actor | None = None,
) -> list[str]:  # fmt: skip
    """Drop the month partitions of positions that end before ``now - older_than``,
    audited as ``positions-retention`` (:func:`spatial.partitions.retention`)."""
    return partitions.retention(conn, "gps", "positions", older_than,
                                action="positions-retention", now=now, actor=actor)  # fmt: skip
