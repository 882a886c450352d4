"""Storing SensorThings readings: the one path every Observation takes.

HTTP (one Observation, or the DataArray batch), MQTT, the demo and the benchmark all hand
their readings to :func:`store` as :class:`Reading` values, the JSON the client sent.

1. Each reading is checked, and a refused one is counted in ``sta.rejects`` by reason
   (:data:`REASONS`), as GPS fixes are: its datastream must exist; its times must be
   times with a zone; its phenomenon time may not run more than ``max_future_s`` ahead of
   the server's clock; a numeric datastream's (``OM_Measurement``, ``OM_CountObservation``)
   result must be a number (``not_a_number``), and any numeric result must be finite and
   inside the datastream's ``properties.range`` ``[min, max]`` when it has one
   (``out_of_range``); one reading per datastream and phenomenon time, in the batch or
   already stored (``duplicate``). A reading without a FeatureOfInterest observes its
   Thing's Location, made a FeatureOfInterest once (``sta.features.location_id``).
2. One transaction: the month partitions are made, the ids taken in one call, the readings
   sent with a binary ``COPY``; ``sta.latest`` moves forward, the datastreams' time ranges
   and observed areas grow (all set-based: a statement per batch, never per reading);
   alarms are evaluated (:func:`spatial.sta.alarms.evaluate`); ``pg_notify('spatial_sta')``
   says which observations were stored (:func:`notifications`). A caller acknowledges a
   reading only after this commits.

The datastreams of a batch are locked (``FOR NO KEY UPDATE``, in id order) from the start,
so concurrent batches of one datastream go one after the other: the duplicate check made
before the ``COPY`` still holds when it runs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from spatial.gps import pgarrays
from spatial.settings import SensorThingsSettings
from spatial.sta import alarms, arrays

REASONS = ("unknown_datastream", "no_time", "future", "not_a_number", "out_of_range",
           "duplicate", "unknown_feature", "no_feature", "malformed")  # fmt: skip
"""Why a reading is refused. ``unknown_feature``: it names a FeatureOfInterest that does
not exist; ``no_feature``: it names none and its Thing has no Location; ``malformed``: the
message carrying it could not be read (counted by its reader)."""
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
NUMERIC = frozenset({OM + "OM_Measurement", OM + "OM_CountObservation"})
"""Observation types whose results must be numbers."""
CHANNEL = "spatial_sta"
RANGES_PER_MESSAGE = 200
"""``[datastream, first id, last id]`` triples per notification (each stays far under
PostgreSQL's 8,000 bytes)."""
_EPOCH, _US = arrays.EPOCH, arrays.MICROSECOND
_DETAIL = 300


@dataclass(slots=True)
class Reading:
    """One reading as the client sent it (JSON values, not yet checked).

    Attributes:
        datastream: the Datastream's id.
        phenomenon_time: an ISO 8601 instant or interval (``start/end``) with a zone, or
            an aware datetime; None: now (SensorThings: the server's time).
        result: any JSON value.
        result_time: an ISO 8601 instant, an aware datetime, or None.
        result_quality: any JSON value, or None.
        valid_time: an ISO 8601 interval, or None.
        parameters: a JSON object, or None.
        feature: a FeatureOfInterest's id; None: its Thing's Location.
    """

    datastream: Any
    phenomenon_time: Any = None
    result: Any = None
    result_time: Any = None
    result_quality: Any = None
    valid_time: Any = None
    parameters: Any = None
    feature: Any = None


@dataclass(frozen=True)
class Reject:
    """A reading refused, and why."""

    reason: str
    """One of :data:`REASONS`."""
    detail: str
    datastream: int | None = None
    index: int | None = None
    """Its position in the batch (None: a message that held no reading)."""


@dataclass
class Stored:
    """What :func:`store` did with a batch."""

    ids: list[int | None] = field(default_factory=list)
    """Each reading's new id, in the batch's order (None: refused)."""
    rejects: list[Reject] = field(default_factory=list)
    datastreams: list[int] = field(default_factory=list)
    """The datastreams that got readings."""
    alarms: list[Any] = field(default_factory=list)
    """What :func:`spatial.sta.alarms.evaluate` answered."""

    @property
    def stored(self) -> int:
        """How many readings were stored."""
        return sum(1 for i in self.ids if i is not None)

    def counts(self) -> dict[str, int]:
        """Rejects by reason."""
        return dict(Counter(r.reason for r in self.rejects))

    def error(self, index: int) -> str | None:
        """Why the reading at ``index`` was refused (None: stored, or not in the batch)."""
        return next((f"{r.reason}: {r.detail}" for r in self.rejects if r.index == index), None)


class _RefusedError(ValueError):
    """A check failed: ``reason`` (one of :data:`REASONS`) and ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def instant(value: Any, what: str) -> dt.datetime:
    """An aware datetime from an ISO 8601 text (``Z`` or an offset) or a datetime.

    Raises:
        ValueError: ``no_time``, saying why (``detail``).
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            msg = f"{what} {value[:60]!r} is not an ISO 8601 time"
            raise _RefusedError("no_time", msg) from None
    if not isinstance(value, dt.datetime):
        msg = f"{what} must be an ISO 8601 time, not {type(value).__name__}"
        raise _RefusedError("no_time", msg)
    if value.tzinfo is None:
        msg = f"{what} {value.isoformat()} has no time zone (add Z or an offset)"
        raise _RefusedError("no_time", msg)
    return value


def interval(value: Any, what: str) -> tuple[dt.datetime, dt.datetime | None]:
    """An instant (end None) or an interval ``start/end`` (start not after end).

    Raises:
        ValueError: ``no_time``, saying why (``detail``).
    """
    if isinstance(value, str) and "/" in value:
        first, _, last = value.partition("/")
        start, end = instant(first, what), instant(last, what)
        if end < start:
            msg = f"{what} {value[:120]!r} ends before it starts"
            raise _RefusedError("no_time", msg)
        return start, end
    return instant(value, what), None


@dataclass(frozen=True, slots=True)
class _Stream:
    """What the checks need of a datastream."""

    numeric: bool
    count: bool
    low: float | None
    high: float | None
    last: dt.datetime | None
    plain: bool = False
    """A float result needs no check but being finite (no range, not a count)."""


def _stream(kind: str, low: float | None, high: float | None, last: dt.datetime | None,
            ) -> _Stream:  # fmt: skip
    count = kind == OM + "OM_CountObservation"
    plain = low is None and high is None and not count
    return _Stream(kind in NUMERIC, count, low, high, last, plain)


_STREAMS = """
SELECT id, observation_type,
       CASE WHEN jsonb_typeof(properties -> 'range' -> 0) = 'number'
            THEN (properties -> 'range' ->> 0)::float8 END,
       CASE WHEN jsonb_typeof(properties -> 'range' -> 1) = 'number'
            THEN (properties -> 'range' ->> 1)::float8 END,
       phenomenon_last
FROM sta.datastreams WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE
"""
"""The batch's datastreams, locked in id order (concurrent batches wait, not deadlock)."""


@dataclass
class _Checked:
    """The readings that passed, as columns (the COPY's and the set-based updates').

    The columns most readings leave empty (end times, result times, valid times) are kept
    only for the readings that have them (``rare``, by position)."""

    rows: Sequence[Reading]
    index: list[int] = field(default_factory=list)
    datastream: list[int] = field(default_factory=list)
    start: list[dt.datetime] = field(default_factory=list)
    micros: list[int] = field(default_factory=list)
    number: list[float | None] = field(default_factory=list)
    json: list[Any] = field(default_factory=list)
    rare: dict[int, tuple[dt.datetime | None, ...]] = field(default_factory=dict)
    """position: (phenomenon end, result time, valid start, valid end)."""
    feature: list[Any] = field(default_factory=list)

    def drop(self, positions: set[int]) -> None:
        """Remove the readings at these positions."""
        keep = [k for k in range(len(self.index)) if k not in positions]
        for name in ("index", "datastream", "start", "micros", "number", "json", "feature"):
            column = getattr(self, name)
            if column:
                column[:] = [column[k] for k in keep]
        if self.rare:
            moved = {k: new for new, k in enumerate(keep)}
            self.rare = {moved[k]: v for k, v in self.rare.items() if k in moved}

    def column(self, which: int) -> list[dt.datetime | None]:
        """A rare column (0 end, 1 result time, 2 valid start, 3 valid end)."""
        if not self.rare:
            return [None] * len(self.index)
        return [None if (r := self.rare.get(k)) is None else r[which]
                for k in range(len(self.index))]  # fmt: skip

    def given(self, name: str) -> list[Any]:
        """A column taken as the client sent it (``result_quality``, ``parameters``)."""
        if not self.rare:  # no reading has any
            return [None] * len(self.index)
        values = [getattr(self.rows[i], name) for i in self.index]
        return values if any(v is not None for v in values) else [None] * len(values)


def _result(value: Any, stream: _Stream) -> tuple[float | None, Any]:
    """(result_number, result_json) of a result.

    Raises:
        _RefusedError: ``not_a_number`` or ``out_of_range``.
    """
    kind = type(value)
    if kind is float or kind is int:
        try:
            number = float(value)
        except OverflowError:
            msg = f"result {str(value)[:40]}... is beyond a double's range"
            raise _RefusedError("out_of_range", msg) from None
        if not math.isfinite(number):
            raise _RefusedError("out_of_range", f"result {number} is not a finite number")
        if stream.count and kind is float and not number.is_integer():
            raise _RefusedError("not_a_number", f"result {number} is not a count (an integer)")
        if (stream.low is not None and number < stream.low) or (
            stream.high is not None and number > stream.high
        ):
            bounds = f"[{stream.low}, {stream.high}]"
            msg = f"result {number:g} is outside the datastream's range {bounds}"
            raise _RefusedError("out_of_range", msg)
        return number, None
    if stream.numeric:
        shown = json.dumps(value)[:40] if kind is not str else repr(value[:40])
        raise _RefusedError("not_a_number", f"result {shown} is not a number")
    if value is not None:
        _storable(value, "result")
    return None, value


def _storable(value: Any, what: str) -> None:
    """Refuse JSON PostgreSQL cannot store (a NUL character, a number that is not finite).

    Raises:
        _RefusedError: ``malformed``.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise _RefusedError("malformed", f"{what} is not JSON with finite numbers") from None
    if "\\u0000" in text:
        raise _RefusedError("malformed", f"{what} holds a NUL character")


def _rare(row: Reading) -> tuple[dt.datetime | None, ...] | None:
    """(result time, valid start, valid end) of a reading, None when it has none of them,
    nor a result quality or parameters (which are checked).

    Raises:
        _RefusedError: ``no_time``, ``malformed``.
    """
    if row.result_quality is not None:
        _storable(row.result_quality, "resultQuality")
    if row.parameters is not None:
        if not isinstance(row.parameters, dict):
            raise _RefusedError("malformed", "parameters must be a JSON object")
        _storable(row.parameters, "parameters")
    if row.result_time is None and row.valid_time is None:
        plain = row.result_quality is None and row.parameters is None
        return None if plain else (None, None, None)
    result_time = None if row.result_time is None else instant(row.result_time, "resultTime")
    valid = (None, None) if row.valid_time is None else interval(row.valid_time, "validTime")
    return (result_time, *valid)


def _check(
    rows: Sequence[Reading], streams: dict[int, _Stream], now: dt.datetime, horizon: dt.datetime,
) -> tuple[_Checked, list[Reject]]:  # fmt: skip
    """The readings that pass the checks of each reading alone and within the batch."""
    out = _Checked(rows)
    rejects: list[Reject] = []
    parse, nan_free = dt.datetime.fromisoformat, math.isfinite
    index, datastream, start_, micros_ = out.index, out.datastream, out.start, out.micros
    number_, json_ = out.number, out.json
    for i, row in enumerate(rows):
        ds = row.datastream
        stream = streams.get(ds) if type(ds) is int else None
        if stream is None:
            rejects.append(Reject("unknown_datastream", f"no datastream {str(ds)[:40]}",
                                  None, i))  # fmt: skip
            continue
        try:
            when, end = row.phenomenon_time, None
            if type(when) is str and "/" not in when:
                try:
                    start = parse(when)
                except ValueError:
                    start = instant(when, "phenomenonTime")  # raises, saying why
                if start.tzinfo is None:
                    start = instant(start, "phenomenonTime")
            elif when is None:
                start = now
            else:
                start, end = interval(when, "phenomenonTime")
            if (end or start) > horizon:
                late = (end or start).isoformat()
                raise _RefusedError(
                    "future", f"phenomenonTime {late} is ahead of the server's clock"
                )
            result = row.result
            number: float | None
            if type(result) is float and stream.plain and nan_free(result):
                number, other = result, None
            else:
                number, other = _result(result, stream)
            rare = _rare(row)
        except _RefusedError as exc:
            rejects.append(Reject(exc.reason, exc.detail, ds, i))
            continue
        if rare is not None or end is not None:
            out.rare[len(index)] = (end, *(rare or (None, None, None)))
        index.append(i)
        datastream.append(ds)
        start_.append(start)
        micros_.append((start - _EPOCH) // _US)
        number_.append(number)
        json_.append(other)
    _batch_duplicates(out, rejects)
    return out, rejects


def _batch_duplicates(out: _Checked, rejects: list[Reject]) -> None:
    """Refuse the second and later readings of one datastream and time in the batch."""
    if len(out.index) < 2:
        return
    ds = np.asarray(out.datastream, dtype=np.int64)
    micros = np.asarray(out.micros, dtype=np.int64)
    order = np.lexsort((micros, ds))  # stable: of equal ones, the first sent comes first
    same = (np.diff(ds[order]) == 0) & (np.diff(micros[order]) == 0)
    again = order[1:][same]
    for k in sorted(again.tolist()):
        rejects.append(Reject("duplicate", f"a second reading at {out.start[k].isoformat()} "
                              "in the batch", out.datastream[k], out.index[k]))  # fmt: skip
    if len(again):
        out.drop(set(again.tolist()))


_FEATURES = """
WITH wanted AS (
    SELECT DISTINCT ON (d.id) d.id AS datastream_id, l.id AS location_id, l.name,
           l.description, l.encoding_type, l.geom, l.department
    FROM sta.datastreams d
    JOIN sta.things_locations tl ON tl.thing_id = d.thing_id
    JOIN sta.locations l ON l.id = tl.location_id
    WHERE d.id = ANY(%s)
    ORDER BY d.id, l.id DESC
), made AS (
    INSERT INTO sta.features (name, description, encoding_type, geom, department, location_id)
    SELECT DISTINCT ON (location_id) name, description, encoding_type, geom, department,
           location_id
    FROM wanted
    ON CONFLICT (location_id) DO NOTHING
    RETURNING id, location_id
)
SELECT w.datastream_id, coalesce(m.id, f.id)
FROM wanted w LEFT JOIN made m USING (location_id)
LEFT JOIN sta.features f ON f.location_id = w.location_id
"""
"""Each datastream's FeatureOfInterest made from its Thing's (newest) Location, made once
(``location_id`` is unique): for readings that name none."""


_LOCATED = """
SELECT DISTINCT ON (d.id) d.id, f.id
FROM sta.datastreams d
JOIN sta.things_locations tl ON tl.thing_id = d.thing_id
JOIN sta.locations l ON l.id = tl.location_id
LEFT JOIN sta.features f ON f.location_id = l.id
WHERE d.id = ANY(%s)
ORDER BY d.id, l.id DESC
"""
"""The FeatureOfInterest made already of each datastream's (newest) Location, as
:data:`_FEATURES` would answer it (None: not made yet): read only, with the checks."""


def _features(conn: psycopg.Connection[Any], out: _Checked, rejects: list[Reject],
              located: dict[int, int | None] | None = None) -> None:  # fmt: skip
    """Give every reading a FeatureOfInterest; refuse those naming one that does not exist,
    or none when their Thing has no Location.

    Args:
        located: :data:`_LOCATED`'s answer for (at least) the datastreams of the readings
            naming none, when the caller read it: :data:`_FEATURES` runs only when one of
            them has no FeatureOfInterest made yet.
    """
    out.feature = [out.rows[i].feature for i in out.index]
    named = {f for f in out.feature if type(f) is int}
    known: set[int] = set()
    if named:
        found = conn.execute("SELECT id FROM sta.features WHERE id = ANY(%s)",
                             (arrays.int8(sorted(named)),)).fetchall()  # fmt: skip
        known = {r[0] for r in found}
    bare = sorted({d for d, f in zip(out.datastream, out.feature, strict=True) if f is None})
    made: dict[int, int] = {}
    if located is not None:
        made = {d: f for d in bare if (f := located.get(d)) is not None}
    for _ in range(2):  # a concurrent batch may make the same one: its row shows the 2nd time
        if bare and len(made) < len(bare):
            rows = conn.execute(_FEATURES, (arrays.int8(bare),)).fetchall()
            made = {d: f for d, f in rows if f is not None}
    bad: set[int] = set()
    for k, (ds, feature) in enumerate(zip(out.datastream, out.feature, strict=True)):
        if feature is None:
            if ds in made:
                out.feature[k] = made[ds]
                continue
            rejects.append(Reject("no_feature", "the reading names no FeatureOfInterest and "
                                  "its Thing has no Location", ds, out.index[k]))  # fmt: skip
            bad.add(k)
        elif type(feature) is not int or feature not in known:
            rejects.append(Reject("unknown_feature", f"no FeatureOfInterest {str(feature)[:40]}",
                                  ds, out.index[k]))  # fmt: skip
            bad.add(k)
    if bad:
        out.drop(bad)


_STORED = """
SELECT r.d, array_agg(((extract(epoch FROM o.phenomenon_start) - 946684800) * 1000000)::int8)
FROM unnest(%s::int8[], %s::timestamptz[], %s::timestamptz[]) AS r(d, lo, hi)
JOIN sta.observations o ON o.datastream_id = r.d AND o.phenomenon_start BETWEEN r.lo AND r.hi
GROUP BY r.d
"""
"""The phenomenon times stored of some datastreams within a span each (microseconds from
2000), read along the unique index: a range scan, not a probe per reading."""


def _stored_duplicates(
    conn: psycopg.Connection[Any], out: _Checked, streams: dict[int, _Stream],
    rejects: list[Reject],
) -> None:  # fmt: skip
    """Refuse the readings already stored (same datastream and phenomenon time), looking
    only at those not after their datastream's newest phenomenon time."""
    ds = np.asarray(out.datastream, dtype=np.int64)
    micros = np.asarray(out.micros, dtype=np.int64)
    unique, inverse = np.unique(ds, return_inverse=True)
    last = np.asarray([_ALL if (t := streams[int(d)].last) is None else (t - _EPOCH) // _US
                       for d in unique], dtype=np.int64)  # fmt: skip
    maybe = micros <= last[inverse]  # None: look at every reading
    if not maybe.any():
        return
    lows, highs = np.full(len(unique), _ALL), np.full(len(unique), _NONE)
    np.minimum.at(lows, inverse[maybe], micros[maybe])
    np.maximum.at(highs, inverse[maybe], micros[maybe])
    which = np.flatnonzero(lows != _ALL)
    found = conn.execute(_STORED, (arrays.int8(unique[which]), arrays.times(lows[which]),
                                   arrays.times(highs[which]))).fetchall()  # fmt: skip
    again = np.zeros(len(ds), dtype=bool)
    for datastream, stored in found:
        again |= (ds == datastream) & np.isin(micros, np.asarray(stored, dtype=np.int64))
    dropped = set(np.flatnonzero(again).tolist())
    for k in sorted(dropped):
        rejects.append(Reject("duplicate", f"a reading at {out.start[k].isoformat()} is "
                              "stored already", out.datastream[k], out.index[k]))  # fmt: skip
    if dropped:
        out.drop(dropped)


_IDS = """
SELECT array_agg(n) FROM (SELECT nextval('sta.observation_ids') AS n
                          FROM generate_series(1, %s)) AS s
"""
"""``count`` new ids in one call, in the order ``nextval`` gave them (consecutive unless
a concurrent batch took some meanwhile)."""


def _ids(runs: list[tuple[list[int] | None]]) -> np.ndarray[Any, Any]:
    return np.asarray(runs[0][0] or [], dtype=np.int64)


_COPY = (
    "COPY sta.observations (id, datastream_id, phenomenon_start, phenomenon_end, result_time, "
    "result_number, result_json, result_quality, valid_start, valid_end, parameters, "
    "feature_id) FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["int8", "int8", "timestamptz", "timestamptz", "timestamptz", "float8", "jsonb",
               "jsonb", "timestamptz", "timestamptz", "jsonb", "int8"]  # fmt: skip


def _copy(conn: psycopg.Connection[Any], out: _Checked, ids: list[int]) -> None:
    """The month partitions, then the readings in one binary COPY (built by numpy when
    every reading is a number and has none of the rarer columns: the usual batch)."""
    moments = np.datetime64("2000-01-01T00:00:00", "us") + np.asarray(
        out.micros, dtype=np.int64).astype("timedelta64[us]")  # fmt: skip
    months = np.unique(moments.astype("datetime64[M]")).astype("datetime64[us]")
    firsts = (months - np.datetime64("2000-01-01T00:00:00", "us")).astype(np.int64)
    conn.execute("SELECT sta.ensure_month(m) FROM unnest(%s::timestamptz[]) AS m",
                 (arrays.times(firsts),))  # fmt: skip
    if not out.rare and all(n is not None for n in out.number):  # fixed-size rows only
        block = arrays.copy_rows([
            ("q", np.asarray(ids, dtype=np.int64)), ("q", np.asarray(out.datastream, np.int64)),
            ("q", np.asarray(out.micros, dtype=np.int64)), ("q", None), ("q", None),
            ("d", np.asarray(out.number, dtype=np.float64)), ("q", None), ("q", None),
            ("q", None), ("q", None), ("q", None), ("q", np.asarray(out.feature, np.int64)),
        ])  # fmt: skip
        with conn.cursor() as cur, cur.copy(_COPY) as copy:
            copy.write(block)
        return
    with conn.cursor() as cur, cur.copy(_COPY) as copy:
        copy.set_types(_COPY_TYPES)
        write = copy.write_row
        columns = (ids, out.datastream, out.start, out.column(0), out.column(1), out.number,
                   out.json, out.given("result_quality"), out.column(2), out.column(3),
                   out.given("parameters"), out.feature)  # fmt: skip
        for row in zip(*columns, strict=True):
            write(row)


_GROW = """
WITH latest AS (
    INSERT INTO sta.latest AS l (id, datastream_id, phenomenon_start, phenomenon_end,
        result_time, result_number, result_json, result_quality, valid_start, valid_end,
        parameters, feature_id)
    SELECT o.* FROM unnest(%(nd)s::int8[], %(nt)s::timestamptz[]) AS u(d, t)
    JOIN sta.observations o ON o.datastream_id = u.d AND o.phenomenon_start = u.t
    ON CONFLICT (datastream_id) DO UPDATE SET id = excluded.id,
        phenomenon_start = excluded.phenomenon_start, phenomenon_end = excluded.phenomenon_end,
        result_time = excluded.result_time, result_number = excluded.result_number,
        result_json = excluded.result_json, result_quality = excluded.result_quality,
        valid_start = excluded.valid_start, valid_end = excluded.valid_end,
        parameters = excluded.parameters, feature_id = excluded.feature_id
    WHERE excluded.phenomenon_start > l.phenomenon_start
), r AS (
    SELECT * FROM unnest(%(ds)s::int8[], %(pf)s::timestamptz[], %(pl)s::timestamptz[],
                         %(rf)s::timestamptz[], %(rl)s::timestamptz[]) AS r(id, pf, pl, rf, rl)
), a AS (
    SELECT u.d, ST_ConvexHull(ST_Collect(f.geom)) AS g
    FROM unnest(%(fds)s::int8[], %(ffs)s::int8[]) AS u(d, f)
    JOIN sta.features f ON f.id = u.f GROUP BY u.d
)
UPDATE sta.datastreams s SET
    phenomenon_first = least(s.phenomenon_first, r.pf),
    phenomenon_last = greatest(s.phenomenon_last, r.pl),
    result_first = least(s.result_first, r.rf),
    result_last = greatest(s.result_last, r.rl),
    observed_area = CASE
        WHEN a.g IS NULL OR (s.observed_area IS NOT NULL AND ST_Covers(s.observed_area, a.g))
            THEN s.observed_area
        WHEN s.observed_area IS NULL THEN a.g
        ELSE ST_ConvexHull(ST_Collect(s.observed_area, a.g)) END
FROM r LEFT JOIN a ON a.d = r.id
WHERE s.id = r.id
"""
"""One statement for the batch: ``latest``, each datastream's newest reading of the batch
(read back by the unique index) becomes its latest when it is newer than the one kept
(the row is locked either way: :func:`spatial.sta.alarms.evaluate` need not lock it);
then the datastreams' phenomenon and result time ranges and observed areas grow with the
batch. The area is the convex hull of the FeaturesOfInterest observed: a Point for one
place, a LineString for places on a line, else a Polygon (never a MultiPoint)."""


_NONE = np.iinfo(np.int64).min
_ALL = np.iinfo(np.int64).max


def _optional(values: list[dt.datetime | None]) -> np.ndarray[Any, Any]:
    """Microseconds of optional times (None: :data:`_NONE`)."""
    if all(v is None for v in values):
        return np.full(len(values), _NONE, dtype=np.int64)
    return np.asarray([_NONE if v is None else (v - _EPOCH) // _US for v in values], np.int64)


def _reduce(inverse: np.ndarray[Any, Any], n: int, column: np.ndarray[Any, Any], *,
            least: bool) -> pgarrays.TimestamptzArray:  # fmt: skip
    """Each group's earliest (``least``) or latest time (NULL: none in the group)."""
    never = _ALL if least else _NONE
    out = np.full(n, never, dtype=np.int64)
    (np.minimum if least else np.maximum).at(out, inverse, np.where(column == _NONE, never, column))
    return arrays.times(out, none=never)


def _grow(conn: psycopg.Connection[Any], out: _Checked, ds: np.ndarray[Any, Any],
          micros: np.ndarray[Any, Any]) -> None:  # fmt: skip
    """Run :data:`_GROW` for the batch."""
    unique, inverse = np.unique(ds, return_inverse=True)
    order = np.lexsort((micros, ds))
    newest = order[np.r_[np.flatnonzero(np.diff(ds[order])), len(order) - 1]]
    ends = _optional(out.column(0))
    results = _optional(out.column(1))
    n = len(unique)
    features = np.asarray(out.feature, dtype=np.int64)
    by = np.lexsort((features, ds))
    first = by[np.r_[True, (np.diff(ds[by]) != 0) | (np.diff(features[by]) != 0)]]
    conn.execute(_GROW, {
        "nd": arrays.int8(ds[newest]), "nt": arrays.times(micros[newest]),
        "ds": arrays.int8(unique), "pf": _reduce(inverse, n, micros, least=True),
        "pl": _reduce(inverse, n, np.where(ends == _NONE, micros, ends), least=False),
        "rf": _reduce(inverse, n, results, least=True),
        "rl": _reduce(inverse, n, results, least=False),
        "fds": arrays.int8(ds[first]), "ffs": arrays.int8(features[first]),
    })  # fmt: skip


def count_rejects(conn: psycopg.Connection[Any], rejects: Sequence[Reject]) -> None:
    """Add the rejects to ``sta.rejects`` by datastream (0: none named) and reason (in the
    caller's transaction)."""
    if not rejects:
        return
    counted = Counter((r.datastream or 0, r.reason) for r in rejects)
    details = {(r.datastream or 0, r.reason): r.detail[:_DETAIL].replace("\x00", "\ufffd")
               for r in rejects}  # fmt: skip
    keys = sorted(counted)
    conn.execute(
        "INSERT INTO sta.rejects (datastream_id, reason, count, last_detail) "
        "SELECT * FROM unnest(%s::int8[], %s::text[], %s::int8[], %s::text[]) "
        "ON CONFLICT (datastream_id, reason) DO UPDATE SET "
        "count = sta.rejects.count + excluded.count, last_at = now(), "
        "last_detail = excluded.last_detail",
        (arrays.int8([k[0] for k in keys]), pgarrays.text([k[1] for k in keys]),
         arrays.int8([counted[k] for k in keys]), pgarrays.text([details[k] for k in keys])),
    )  # fmt: skip


def notifications(ds: np.ndarray[Any, Any], ids: np.ndarray[Any, Any]) -> list[str]:
    """The ``spatial_sta`` payloads for observations stored: JSON objects
    ``{"observations": [[datastream, first id, last id], ...]}`` (each range of ids
    consecutive and of one datastream), :data:`RANGES_PER_MESSAGE` ranges a message."""
    order = np.lexsort((ids, ds))
    ds, ids = ds[order], ids[order]
    breaks = np.flatnonzero((np.diff(ds) != 0) | (np.diff(ids) != 1)) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks - 1, len(ids) - 1]
    ranges = np.stack([ds[starts], ids[starts], ids[ends]], axis=1).tolist()
    return [json.dumps({"observations": ranges[i : i + RANGES_PER_MESSAGE]},
                       separators=(",", ":"))
            for i in range(0, len(ranges), RANGES_PER_MESSAGE)]  # fmt: skip


def store(
    conn: psycopg.Connection[Any],
    rows: Sequence[Reading],
    *,
    settings: SensorThingsSettings,
    now: dt.datetime | None = None,
    rejects: Sequence[Reject] = (),
) -> Stored:
    """Check and store a batch of readings in one transaction (a savepoint when the caller's
    connection is in one: then the caller's commit is the one that counts).

    Args:
        rows: the readings, in the client's order (:attr:`Stored.ids` follows it).
        settings: ``max_future_s`` bounds the phenomenon times.
        now: the server's clock [default: now].
        rejects: refusals the caller made already (messages that could not be read),
            counted with the checks'.
    """
    now = now or dt.datetime.now(dt.UTC)
    horizon = now + dt.timedelta(seconds=settings.max_future_s)
    arrays.register(conn)
    named = sorted({r.datastream for r in rows if type(r.datastream) is int
                    and -(2**63) <= r.datastream < 2**63})  # fmt: skip
    outcome = Stored(ids=[None] * len(rows))
    with conn.transaction():
        found = conn.execute(_STREAMS, (arrays.int8(named),)).fetchall()
        streams = {r[0]: _stream(*r[1:]) for r in found}
        bare = sorted({r.datastream for r in rows if r.feature is None} & streams.keys())
        with conn.pipeline():  # the ids and features are read while the readings are checked
            taking = conn.execute(_IDS, (len(rows),)) if streams else None
            locating = conn.execute(_LOCATED, (arrays.int8(bare),)) if bare else None
            out, refused = _check(rows, streams, now, horizon)
            runs = taking.fetchall() if taking is not None else [([],)]
            located = dict(locating.fetchall()) if locating is not None else {}
        if out.index:
            _features(conn, out, refused, located)
        if out.index:
            _stored_duplicates(conn, out, streams, refused)
        outcome.rejects = [*rejects, *refused]
        if out.index:
            ids = _ids(runs)[: len(out.index)]  # those of readings refused are left unused
            _copy(conn, out, ids.tolist())
        with conn.pipeline():  # the statements after the COPY go out together
            if out.index:
                ds = np.asarray(out.datastream, dtype=np.int64)
                _grow(conn, out, ds, np.asarray(out.micros, dtype=np.int64))
                outcome.datastreams = sorted(set(out.datastream))
                outcome.alarms = _alarms(conn, outcome.datastreams, locked=True)
                conn.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p",
                             (CHANNEL, pgarrays.text(notifications(ds, ids))))  # fmt: skip
                for k, new in zip(out.index, ids.tolist(), strict=True):
                    outcome.ids[k] = new
            count_rejects(conn, outcome.rejects)
    return outcome


def _alarms(conn: psycopg.Connection[Any], datastreams: list[int], *,
            locked: bool = False) -> list[Any]:  # fmt: skip
    """The alarms the readings raise or clear (:func:`spatial.sta.alarms.evaluate`, in this
    transaction, after ``sta.latest`` moved; ``locked``: the datastreams' latest rows are
    locked already)."""
    return list(alarms.evaluate(conn, datastreams, locked=locked))


_REFRESH_LATEST = """
INSERT INTO sta.latest (id, datastream_id, phenomenon_start, phenomenon_end, result_time,
    result_number, result_json, result_quality, valid_start, valid_end, parameters, feature_id)
SELECT o.* FROM unnest(%s::int8[]) AS d(id) CROSS JOIN LATERAL (
    SELECT * FROM sta.observations x WHERE x.datastream_id = d.id
    ORDER BY x.phenomenon_start DESC LIMIT 1) AS o
"""
_REFRESH_STREAMS = """
UPDATE sta.datastreams s SET phenomenon_first = a.pf, phenomenon_last = a.pl,
    result_first = a.rf, result_last = a.rl, observed_area = a.area
FROM unnest(%s::int8[]) AS d(id) CROSS JOIN LATERAL (
    SELECT min(o.phenomenon_start) AS pf, max(coalesce(o.phenomenon_end, o.phenomenon_start))
           AS pl, min(o.result_time) AS rf, max(o.result_time) AS rl,
           (SELECT ST_ConvexHull(ST_Collect(f.geom)) FROM sta.features f
            WHERE f.id IN (SELECT DISTINCT x.feature_id FROM sta.observations x
                           WHERE x.datastream_id = d.id)) AS area
    FROM sta.observations o WHERE o.datastream_id = d.id) AS a
WHERE s.id = d.id
"""


def refresh(conn: psycopg.Connection[Any], datastreams: Sequence[int]) -> None:
    """Derive the latest reading, time ranges and observed area of some datastreams anew
    from their readings, and evaluate their alarms (after readings were changed or
    deleted; the caller's transaction)."""
    ids = arrays.int8(sorted(set(datastreams)))
    arrays.register(conn)
    conn.execute("DELETE FROM sta.latest WHERE datastream_id = ANY(%s)", (ids,))
    conn.execute(_REFRESH_LATEST, (ids,))
    conn.execute(_REFRESH_STREAMS, (ids,))
    _alarms(conn, sorted(set(datastreams)))


def replace(
    conn: psycopg.Connection[Any], observation_id: int, reading: Reading, *,
    settings: SensorThingsSettings, now: dt.datetime | None = None,
) -> Stored:  # fmt: skip
    """Replace a stored reading (same id and datastream) by ``reading``, checked as a new
    one; the datastream's latest reading, ranges and alarms follow. The caller's connection
    must be in a transaction, which it rolls back when the reading is refused (the old
    one is deleted here first)."""
    now = now or dt.datetime.now(dt.UTC)
    horizon = now + dt.timedelta(seconds=settings.max_future_s)
    arrays.register(conn)
    outcome = Stored(ids=[None])
    with conn.transaction():
        found = conn.execute(_STREAMS, (arrays.int8([reading.datastream]),)).fetchall()
        streams = {r[0]: _stream(*r[1:]) for r in found}
        conn.execute("DELETE FROM sta.observations WHERE id = %s", (observation_id,))
        out, outcome.rejects = _check([reading], streams, now, horizon)
        if out.index:
            _features(conn, out, outcome.rejects)
        if out.index:
            _stored_duplicates(conn, out, streams, outcome.rejects)
        if out.index:
            _copy(conn, out, [observation_id])
            outcome.ids = [observation_id]
            outcome.datastreams = [reading.datastream]
            refresh(conn, outcome.datastreams)
    return outcome
