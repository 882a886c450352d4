"""Columns of a batch as PostgreSQL arrays in binary, built in bulk.

The store sends a batch of fixes as one array per column (``unnest`` in SQL). psycopg
encodes a Python list element by element in Python, which for 2,000 fixes costs more than
inserting them; here a column of numbers is encoded by numpy in one go, and the others
with one ``struct`` call per element at most. Each function returns an :class:`Array`,
which :func:`register` teaches a connection to send as is.

The binary array format: a header (dimensions, a has-nulls flag, the element type, then
length and lower bound of the one dimension), then each element as its byte length
(``-1`` for NULL, with no bytes) followed by its bytes, all big-endian.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

_NULL = struct.pack(">i", -1)
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
"""PostgreSQL's timestamps count microseconds from here."""
_MICROSECOND = dt.timedelta(microseconds=1)


class Array(bytes):
    """An array in PostgreSQL's binary format (its type is the subclass's)."""

    oid: ClassVar[int] = 0
    element: ClassVar[int] = 0


class Float8Array(Array):
    """``float8[]``."""

    oid, element = 1022, 701


class Int4Array(Array):
    """``int4[]``."""

    oid, element = 1007, 23


class TextArray(Array):
    """``text[]``."""

    oid, element = 1009, 25


class TimestamptzArray(Array):
    """``timestamptz[]``."""

    oid, element = 1185, 1184


class JsonbArray(Array):
    """``jsonb[]``."""

    oid, element = 3807, 3802


def _header(kind: type[Array], count: int, nulls: bool) -> bytes:
    if count == 0:
        return struct.pack(">iiI", 0, 0, kind.element)
    return struct.pack(">iiIii", 1, int(nulls), kind.element, count, 1)


def _fixed(kind: type[Array], values: Sequence[Any], code: str) -> Array:
    """Numbers of a fixed size (``code``: ``d`` float8, ``i`` int4, ``q`` int8), NULL for
    None."""
    size = struct.calcsize(code)
    present = [v is not None for v in values]
    if all(present):
        cells = np.empty(len(values), dtype=[("n", ">i4"), ("v", ">" + code)])
        cells["n"] = size
        cells["v"] = values
        return kind(_header(kind, len(values), False) + cells.tobytes())
    if not any(present):
        return kind(_header(kind, len(values), True) + _NULL * len(values))
    each = struct.Struct(">i" + code)
    body = b"".join(each.pack(size, v) if v is not None else _NULL for v in values)
    return kind(_header(kind, len(values), True) + body)


def float8(values: Sequence[float | None]) -> Float8Array:
    """A ``float8[]`` (None is NULL)."""
    return Float8Array(_fixed(Float8Array, values, "d"))


def int4(values: Sequence[int | None]) -> Int4Array:
    """An ``int4[]`` (None is NULL)."""
    return Int4Array(_fixed(Int4Array, values, "i"))


def timestamptz(values: Sequence[dt.datetime]) -> TimestamptzArray:
    """A ``timestamptz[]`` of aware datetimes."""
    micros = [(v - _EPOCH) // _MICROSECOND for v in values]
    return TimestamptzArray(_fixed(TimestamptzArray, micros, "q"))


def _variable(kind: type[Array], values: Sequence[bytes | None]) -> Array:
    nulls = any(v is None for v in values)
    body = b"".join(_NULL if v is None else struct.pack(">i", len(v)) + v for v in values)
    return kind(_header(kind, len(values), nulls) + body)


def text(values: Sequence[str | None]) -> TextArray:
    """A ``text[]`` (None is NULL)."""
    return TextArray(_variable(TextArray, [None if v is None else v.encode() for v in values]))


def jsonb(values: Sequence[str | None]) -> JsonbArray:
    """A ``jsonb[]`` of JSON texts (None is NULL); binary jsonb is a version byte and the text."""
    encoded = [None if v is None else b"\x01" + v.encode() for v in values]
    return JsonbArray(_variable(JsonbArray, encoded))


def _dumper(kind: type[Array]) -> type[Dumper]:
    class _Dumper(Dumper):
        format = Format.BINARY
        oid = kind.oid

        def dump(self, obj: Any) -> bytes:
            return bytes(obj)

    return _Dumper


_DUMPERS = {kind: _dumper(kind) for kind in (Float8Array, Int4Array, TextArray,
                                             TimestamptzArray, JsonbArray)}  # fmt: skip


def register(context: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> None:
    """Let a connection (or cursor) send :class:`Array` values."""
    for kind, dumper in _DUMPERS.items():
        context.adapters.register_dumper(kind, dumper)
