"""Ids and times of the SensorThings store as PostgreSQL binary arrays, built by numpy.

:mod:`spatial.gps.pgarrays` sends the GPS store's columns this way; the observation store
(:mod:`spatial.sta.observations`) adds ``int8[]`` (ids) and ``timestamptz[]`` made from
microseconds since 2000 (PostgreSQL's own count), so a batch's times are compared and sent
without a Python object per reading.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from spatial.gps import pgarrays

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
"""PostgreSQL's timestamps count microseconds from here."""
MICROSECOND = dt.timedelta(microseconds=1)


class Int8Array(pgarrays.Array):
    """``int8[]``."""

    oid, element = 1016, 20


def _fixed8(kind: type[pgarrays.Array], values: np.ndarray[Any, Any]) -> bytes:
    """An array of 8-byte numbers (no NULLs) in PostgreSQL's binary format."""
    count = len(values)
    if count == 0:
        return struct.pack(">iiI", 0, 0, kind.element)
    cells = np.empty(count, dtype=[("n", ">i4"), ("v", ">i8")])
    cells["n"] = 8
    cells["v"] = values
    return struct.pack(">iiIii", 1, 0, kind.element, count, 1) + cells.tobytes()


def int8(values: Sequence[int] | np.ndarray[Any, Any]) -> Int8Array:
    """An ``int8[]`` (no NULLs)."""
    return Int8Array(_fixed8(Int8Array, np.asarray(values, dtype=np.int64)))


def times(micros: np.ndarray[Any, Any], *, none: int | None = None) -> pgarrays.TimestamptzArray:
    """A ``timestamptz[]`` of microseconds since :data:`EPOCH` (``none``: the value that
    stands for NULL)."""
    kind = pgarrays.TimestamptzArray
    micros = np.asarray(micros, dtype=np.int64)
    missing = np.zeros(len(micros), dtype=bool) if none is None else micros == none
    if not missing.any():
        return kind(_fixed8(kind, micros))
    cells = [struct.pack(">i", -1) if gone else struct.pack(">iq", 8, v)
             for gone, v in zip(missing.tolist(), micros.tolist(), strict=True)]  # fmt: skip
    return kind(struct.pack(">iiIii", 1, 1, kind.element, len(micros), 1) + b"".join(cells))


def optional_times(values: Sequence[dt.datetime | None]) -> pgarrays.TimestamptzArray:
    """A ``timestamptz[]`` of aware datetimes (None is NULL)."""
    none = np.iinfo(np.int64).min
    return times(np.asarray([none if v is None else (v - EPOCH) // MICROSECOND
                             for v in values], dtype=np.int64), none=none)  # fmt: skip


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
"""A binary ``COPY``'s header (no flags, no extension)."""
COPY_TRAILER = struct.pack(">h", -1)


def copy_rows(columns: Sequence[tuple[str, np.ndarray[Any, Any] | None]]) -> bytes:
    """Rows in ``COPY ... (FORMAT BINARY)``'s format, header and trailer included, built by
    numpy: each column ``(code, values)`` is 8-byte numbers (``code`` ``q`` int8, ``d``
    float8, a timestamptz as ``q`` microseconds since :data:`EPOCH`) or, values None, NULL
    in every row."""
    count = len(next(v for _, v in columns if v is not None))
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for k, (code, values) in enumerate(columns):
        fields.append((f"l{k}", ">i4"))
        if values is not None:
            fields.append((f"v{k}", ">i8" if code == "q" else ">f8"))
    rows = np.empty(count, dtype=fields)
    rows["n"] = len(columns)
    for k, (_, values) in enumerate(columns):
        if values is None:
            rows[f"l{k}"] = -1
        else:
            rows[f"l{k}"] = 8
            rows[f"v{k}"] = values
    return COPY_SIGNATURE + rows.tobytes() + COPY_TRAILER


def moment(micros: int) -> dt.datetime:
    """The time of microseconds since :data:`EPOCH`."""
    return EPOCH + micros * MICROSECOND


class _Int8Dumper(Dumper):
    format = Format.BINARY
    oid = Int8Array.oid

    def dump(self, obj: Any) -> bytes:
        return bytes(obj)


def register(conn: psycopg.Connection[Any]) -> None:
    """Let a connection send these arrays and :mod:`spatial.gps.pgarrays`'."""
    pgarrays.register(conn)
    conn.adapters.register_dumper(Int8Array, _Int8Dumper)
