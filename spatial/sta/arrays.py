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


def times(micros: np.ndarray[Any, Any]) -> pgarrays.TimestamptzArray:
    """A ``timestamptz[]`` of microseconds since :data:`EPOCH`."""
    return pgarrays.TimestamptzArray(_fixed8(pgarrays.TimestamptzArray, micros))


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
