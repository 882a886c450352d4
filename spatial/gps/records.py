"""The values every GPS batch format shares (GPX, CSV, GeoJSON): numbers, times, positions
and devices read leniently from text or JSON, and a fix made of them. A value that cannot
be used raises :class:`RecordError`, which the readers turn into a reject of that record."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from spatial.errors import TooLargeError
from spatial.gps.fix import Fix

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""The largest file a reader accepts unless told otherwise (64 MiB)."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_UNIX_SECONDS = re.compile(r"[+-]?\d+(\.\d*)?")


class RecordError(ValueError):
    """A record that becomes a :class:`Reject` (internal to the readers)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_size(size: int, max_bytes: int, what: str = "the input") -> None:
    if size > max_bytes:
        raise TooLargeError(f"{what} is larger than the limit of {max_bytes:,} bytes")


def as_number(value: object, name: str) -> float:
    """A finite float from a JSON number or a text; ``RecordError('malformed')`` otherwise."""
    number: float | None = None
    if isinstance(value, str):
        if "_" not in value:
            try:
                number = float(value)  # surrounding blanks are fine
            except ValueError:
                number = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = None
    if number is None or not math.isfinite(number):
        raise RecordError("malformed", f"{name} {value!r} is not a number")
    return number


def is_blank(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, str) and not value.strip())


def as_optional(value: object, name: str) -> float | None:
    return None if is_blank(value) else as_number(value, name)


def as_count(value: object, name: str) -> int | None:
    number = as_optional(value, name)
    if number is None:
        return None
    if number < 0 or not number.is_integer():
        raise RecordError("malformed", f"{name} {value!r} is not a count")
    return int(number)


def as_position(lat_value: object, lon_value: object) -> tuple[float, float]:
    """(lon, lat), checked: ``malformed``, ``out_of_range`` or ``zero_position``."""
    if is_blank(lat_value) or is_blank(lon_value):
        raise RecordError("malformed", "no latitude/longitude")
    lat = as_number(lat_value, "latitude")
    lon = as_number(lon_value, "longitude")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise RecordError("out_of_range", f"latitude {lat} / longitude {lon} out of range")
    if lat == 0.0 and lon == 0.0:
        raise RecordError("zero_position", "position (0, 0)")
    return lon, lat


def as_time(value: object, *, unix: bool) -> dt.datetime:
    """A UTC time from ISO 8601 text or (when ``unix``) Unix seconds."""
    if is_blank(value):
        raise RecordError("no_time", "no time")
    if unix and isinstance(value, int | float) and not isinstance(value, bool):
        return unix_time(as_number(value, "time"))
    if not isinstance(value, str):
        raise RecordError("malformed", f"time {value!r} is not a text or a number")
    text = value.strip()
    if unix and _UNIX_SECONDS.fullmatch(text):
        return unix_time(as_number(text, "time"))
    # A date alone is not the instant of a fix.
    if "T" not in text.upper() and " " not in text:
        raise RecordError("malformed", f"time {value!r} is not an ISO 8601 date and time")
    try:
        parsed = dt.datetime.fromisoformat(text)
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        expected = "ISO 8601 or Unix seconds" if unix else "ISO 8601"
        raise RecordError("malformed", f"time {value!r} is not {expected}") from None


def unix_time(seconds: float) -> dt.datetime:
    try:
        return _EPOCH + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise RecordError("malformed", f"Unix time {seconds!r} is out of range") from None


def device_name(value: object) -> str | None:
    if is_blank(value) or isinstance(value, bool | dict | list):
        return None
    return str(value).strip()


def make_fix(
    values: Mapping[str, object],
    *,
    device: str | None,
    attributes: dict[str, Any],
    unix: bool,
) -> Fix:
    """A fix from raw field values (keys as in :data:`_ALIASES` values), or ``RecordError``."""
    lon, lat = as_position(values.get("lat"), values.get("lon"))
    altitude = as_optional(values.get("altitude"), "altitude")
    speed = as_optional(values.get("speed"), "speed")
    course = as_optional(values.get("course"), "course")
    hdop = as_optional(values.get("hdop"), "hdop")
    accuracy = as_optional(values.get("accuracy"), "accuracy")
    satellites = as_count(values.get("satellites"), "satellites")
    time = as_time(values.get("time"), unix=unix)
    return Fix(
        time=time,
        lon=lon,
        lat=lat,
        device=device,
        altitude=altitude,
        speed=speed,
        course=course,
        hdop=hdop,
        satellites=satellites,
        accuracy=accuracy,
        attributes=attributes,
    )
