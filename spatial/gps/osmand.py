"""The OsmAnd / Traccar Client HTTP protocol: one position per request, as Traccar reads it.

Two forms reach a Traccar-compatible receiver (Traccar's port 5055):

* **Query string or form body**, the OsmAnd "online tracking" URL template and Traccar
  Client up to 8.x: ``GET /?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0``.
  Read by :func:`decode_query` (already split into pairs) or :func:`decode_request`.
* **JSON body** (``Content-Type: application/json``), Traccar Client 9.x, which sends the
  location object of the transistorsoft background-geolocation library:
  ``{"device_id": "...", "location": {"timestamp": "...", "coords": {...}, ...}}``.
  Read by :func:`decode_json`.

Fields follow Traccar's ``OsmAndProtocolDecoder`` (read for its behaviour, not copied):

* device: ``id`` or ``deviceid`` (JSON: ``device_id``); without one nothing is decoded
  (Traccar answers 400 and returns null): ``Reject("malformed", "no device id")``.
* time: ``timestamp`` as Unix seconds, Unix milliseconds when the number is not below
  2**31 - 1, ISO 8601 text when it contains ``T``, else ``yyyy-MM-dd HH:mm:ss``. Text
  without an offset is read as UTC. Without a timestamp Traccar uses the time of receipt:
  pass ``received=`` to do the same; without it the request is rejected ``no_time``
  (the decoder never reads the clock).
* position: ``lat`` and ``lon``, or ``location=lat,lon``. Without a position Traccar
  reuses the device's last known location (a request with only ``cell``/``wifi``
  readings): here that is ``Reject("no_fix", ...)``, because a decoder knows no history.
  Half a position (``lat`` without ``lon``) is ``malformed``.
* ``speed`` in knots in the query form, metres per second in the JSON form (both become
  m/s on the :class:`~spatial.gps.fix.Fix`); ``bearing``/``heading`` in degrees;
  ``altitude`` and ``accuracy`` in metres; ``hdop``; ``valid`` (``true`` or ``1``, any
  other value means no fix: ``Reject("no_fix")``).
* attributes: ``batt`` as ``battery`` (percent), ``charge`` as ``charging``,
  ``driverUniqueId`` as ``driver``, ``cell`` and ``wifi`` readings as lists, and every
  other named parameter under its own name (a number when it reads as one,
  ``true``/``false`` as booleans, else the text). ``notificationToken`` (a push token
  for Traccar's commands) is not kept.

Where this decoder differs from Traccar, on purpose:

* A recognised field whose value does not parse (``lat=abc``) rejects the request as
  ``malformed`` (Traccar throws and drops it); an *empty* value counts as absent.
* Numbers are plain decimals and must be finite (no ``NaN``, ``Infinity``, hex, ``1_0``).
* Negative speed, course, accuracy and HDOP mean "unknown" (the JSON form sends -1).
* A position of exactly (0, 0) is ``zero_position`` and one beyond ±90/±180
  ``out_of_range``: both are decided here, without history.
* In the JSON form, missing ``speed``/``heading``/``accuracy``/``altitude`` are simply
  absent (Traccar requires them); ``location`` may also be an array of location objects
  (the library's batch upload), each becoming one fix or reject numbered from 1 in
  ``Reject.line``; the battery level is rounded, not truncated, to a percentage.
* A device id that no device may have (:data:`spatial.gps.fix.DEVICE_ID`) makes the
  request ``malformed``: it can never be registered, and some (with NUL, lone
  surrogates, or thousands of characters) the database could not even count.
* Text PostgreSQL cannot store, NUL and the lone surrogates a JSON ``\\u`` escape makes,
  is replaced in the query form (as invalid UTF-8 is) and dropped from JSON attributes.

Nothing here raises on bad input; the functions only read their arguments.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from spatial.gps.fix import DEVICE_ID, Decoded, Fix, Reject

__all__ = ["KNOT", "decode_json", "decode_query", "decode_request", "parse_query"]

KNOT = 1852.0 / 3600.0
"""Metres per second in one knot."""

_MS_THRESHOLD = 2**31 - 1
"""Traccar reads a numeric timestamp below Java's ``Integer.MAX_VALUE`` as seconds."""

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT32 = 2**31
_DEVICE = re.compile(DEVICE_ID)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What PostgreSQL text cannot hold: NUL, and lone surrogates (from JSON ``\\u`` escapes)."""


class _MalformedError(ValueError):
    """A field that does not parse; caught inside this module, never raised to callers."""


# --- values -------------------------------------------------------------------------------


def _decimal(text: str, name: str) -> float:
    text = text.strip()
    if not _DECIMAL.fullmatch(text):
        raise _MalformedError(f"{name}={text[:40]!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise _MalformedError(f"{name}={text[:40]!r} is not a finite number")
    return value


def _int32(text: str, name: str) -> int:
    text = text.strip()
    if not _INTEGER.fullmatch(text) or not -_INT32 <= int(text) < _INT32:
        raise _MalformedError(f"{name} part {text[:40]!r} is not an integer")
    return int(text)


def _utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _parse_time(text: str) -> dt.datetime:
    """A ``timestamp`` value the way Traccar reads it (text without offset is UTC)."""
    text = text.strip()
    if _INTEGER.fullmatch(text):
        number = int(text)
        millis = number * 1000 if number < _MS_THRESHOLD else number
        try:
            return _EPOCH + dt.timedelta(milliseconds=millis)
        except OverflowError:
            raise _MalformedError(f"timestamp {text!r} is out of range") from None
    try:
        if "T" in text:
            return _utc(dt.datetime.fromisoformat(text))
        fraction = ".%f" if "." in text else ""
        return _utc(dt.datetime.strptime(text, f"%Y-%m-%d %H:%M:%S{fraction}"))
    except (ValueError, OverflowError):
        raise _MalformedError(f"timestamp {text[:40]!r} is not a date") from None


def _scalar(text: str) -> Any:
    """An unknown parameter's value: a number, a boolean or the text itself."""
    if _DECIMAL.fullmatch(text.strip()):
        value = float(text.strip())  # float() keeps what str.strip() drops (\x1c-\x1f)
        if math.isfinite(value):
            return value
    if text in ("true", "false"):
        return text == "true"
    return text


def _place_reject(lat: float, lon: float, device: str | None, line: int | None) -> Reject | None:
    """The checks a single position allows without history."""
    if lat == 0 and lon == 0:
        return Reject("zero_position", "position is exactly (0, 0)", line, device)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return Reject("out_of_range", f"lat={lat} lon={lon} is off the globe", line, device)
    return None


def _known(value: float | None) -> float | None:
    """Negative speed, course, accuracy or HDOP: the device does not know it."""
    return value if value is not None and value >= 0 else None


# --- the query form -------------------------------------------------------------------------


@dataclass
class _Report:
    """What one request said, field by field, before it becomes a fix or a reject."""

    device: str | None = None
    time: dt.datetime | None = None
    lat: float | None = None
    lon: float | None = None
    valid: bool = True
    speed: float | None = None
    course: float | None = None
    altitude: float | None = None
    accuracy: float | None = None
    hdop: float | None = None
    cells: list[dict[str, int]] = field(default_factory=list)
    wifi: list[dict[str, Any]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


def _set_device(report: _Report, value: str) -> None:
    report.device = value.strip() or None


def _set_valid(report: _Report, value: str) -> None:
    # Java's Boolean.parseBoolean: only "true" (any case) is true; Traccar adds "1".
    report.valid = value.strip().lower() == "true" or value.strip() == "1"


def _set_time(report: _Report, value: str) -> None:
    report.time = _parse_time(value)


def _set_lat(report: _Report, value: str) -> None:
    report.lat = _decimal(value, "lat")


def _set_lon(report: _Report, value: str) -> None:
    report.lon = _decimal(value, "lon")


def _set_location(report: _Report, value: str) -> None:
    parts = value.split(",")
    if len(parts) < 2:
        raise _MalformedError(f"location={value[:40]!r} is not 'lat,lon'")
    report.lat = _decimal(parts[0], "location latitude")
    report.lon = _decimal(parts[1], "location longitude")


def _add_cell(report: _Report, value: str) -> None:
    parts = [_int32(part, "cell") for part in value.split(",")]
    if len(parts) < 4:
        raise _MalformedError(f"cell={value[:40]!r} is not 'mcc,mnc,lac,cid[,rssi]'")
    cell = dict(zip(("mcc", "mnc", "lac", "cid"), parts[:4], strict=True))
    if len(parts) > 4:
        cell["rssi"] = parts[4]
    report.cells.append(cell)


def _add_wifi(report: _Report, value: str) -> None:
    parts = value.split(",")
    if len(parts) < 2 or not parts[0].strip():
        raise _MalformedError(f"wifi={value[:40]!r} is not 'mac,rssi'")
    mac = parts[0].strip().replace("-", ":")
    report.wifi.append({"mac": mac, "rssi": _int32(parts[1], "wifi")})


def _set_speed(report: _Report, value: str) -> None:
    knots = _known(_decimal(value, "speed"))
    report.speed = None if knots is None else knots * KNOT


def _set_course(report: _Report, value: str) -> None:
    report.course = _known(_decimal(value, "bearing"))


def _set_altitude(report: _Report, value: str) -> None:
    report.altitude = _decimal(value, "altitude")


def _set_accuracy(report: _Report, value: str) -> None:
    report.accuracy = _known(_decimal(value, "accuracy"))


def _set_hdop(report: _Report, value: str) -> None:
    report.hdop = _known(_decimal(value, "hdop"))


def _set_battery(report: _Report, value: str) -> None:
    report.attributes["battery"] = _decimal(value, "batt")


def _set_charge(report: _Report, value: str) -> None:
    report.attributes["charging"] = value.strip().lower() == "true"


def _set_driver(report: _Report, value: str) -> None:
    report.attributes["driver"] = value


def _ignore(report: _Report, value: str) -> None:
    """A parameter that is not about the position (a push token for commands)."""


_FIELDS: dict[str, Callable[[_Report, str], None]] = {
    "id": _set_device,
    "deviceid": _set_device,
    "valid": _set_valid,
    "timestamp": _set_time,
    "lat": _set_lat,
    "lon": _set_lon,
    "location": _set_location,
    "cell": _add_cell,
    "wifi": _add_wifi,
    "speed": _set_speed,
    "bearing": _set_course,
    "heading": _set_course,
    "altitude": _set_altitude,
    "accuracy": _set_accuracy,
    "hdop": _set_hdop,
    "batt": _set_battery,
    "charge": _set_charge,
    "driverUniqueId": _set_driver,
    "notificationToken": _ignore,
}
"""Parameters with a meaning; a repeated one is read again (the last value wins, and
``cell``/``wifi`` readings accumulate), as in Traccar."""

_DEVICE_KEYS = ("id", "deviceid")


def parse_query(text: str) -> list[tuple[str, str]]:
    """Split a query string or ``application/x-www-form-urlencoded`` body into pairs.

    ``+`` is a space and percent escapes are decoded (invalid UTF-8 and NUL are replaced
    by U+FFFD); blank values are kept, so ``lat=`` reaches the decoder as an empty
    (absent) value.

    Args:
        text: the part after ``?``, or a form body.

    Returns:
        The pairs in order, repeated names included.
    """
    pairs = parse_qsl(text, keep_blank_values=True, errors="replace")
    return [(_UNSTORABLE.sub("\ufffd", k), _UNSTORABLE.sub("\ufffd", v)) for k, v in pairs]


def _read(pairs: list[tuple[str, str]]) -> _Report:
    """Fill a report from the pairs (raises ``_MalformedError`` on a bad value)."""
    report = _Report()
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            raise _MalformedError("parameter names and values must be text")
        if not key:
            continue  # "=value": nothing to name it by
        setter = _FIELDS.get(key)
        if setter is None:
            report.attributes[key] = _scalar(value)
        elif value.strip() or key in _DEVICE_KEYS:
            setter(report, value)
    return report


def _device_of(pairs: list[tuple[str, str]]) -> str | None:
    """The device named by the pairs, for a reject when other values do not parse."""
    device = None
    for key, value in pairs:
        if key in _DEVICE_KEYS and isinstance(value, str):
            device = value.strip() or None
    return device


def _position(report: _Report, device: str) -> tuple[float, float] | Reject:
    """The report's latitude and longitude, or why it has none."""
    if report.lat is not None and report.lon is not None:
        return report.lat, report.lon
    if report.lat is None and report.lon is None:
        readings = f" ({len(report.cells)} cell, {len(report.wifi)} wifi readings)"
        found = readings if report.cells or report.wifi else ""
        return Reject("no_fix", f"no position in the request{found}", device=device)
    half = "lat without lon" if report.lon is None else "lon without lat"
    return Reject("malformed", f"incomplete position: {half}", device=device)


def _when(
    time: dt.datetime | None, received: dt.datetime | None, device: str, line: int | None
) -> dt.datetime | Reject:
    """The fix time: the device's, else the time of receipt, else a ``no_time`` reject."""
    if time is not None:
        return time
    if received is not None:
        return _utc(received)
    return Reject("no_time", "no timestamp and no time of receipt", line, device)


def _finish(report: _Report, received: dt.datetime | None) -> Fix | Reject:
    """The fix a complete report makes, or the first reason it cannot be one."""
    device = report.device
    if device is None:
        return Reject("malformed", "no device id (id or deviceid)")
    if not report.valid:
        return Reject("no_fix", "the device says the position is not valid", device=device)
    position = _position(report, device)
    if isinstance(position, Reject):
        return position
    lat, lon = position
    when = _place_reject(lat, lon, device, None) or _when(report.time, received, device, None)
    if isinstance(when, Reject):
        return when
    attributes = dict(report.attributes)
    if report.cells:
        attributes["cell"] = report.cells
    if report.wifi:
        attributes["wifi"] = report.wifi
    return Fix(
        time=when,
        lon=lon,
        lat=lat,
        device=device,
        altitude=report.altitude,
        speed=report.speed,
        course=report.course,
        hdop=report.hdop,
        accuracy=report.accuracy,
        attributes=attributes,
    )


def _named(result: Fix | Reject) -> Fix | Reject:
    """The result, or a reject when its device id is not one a device may have."""
    if result.device is None or _DEVICE.fullmatch(result.device):
        return result
    why = f"device id {result.device[:40]!r} is not one a device may have"
    return Reject("malformed", why, getattr(result, "line", None))


def _decoded(*results: Fix | Reject) -> Decoded:
    decoded = Decoded()
    for result in map(_named, results):
        if isinstance(result, Fix):
            decoded.fixes.append(result)
        else:
            decoded.rejects.append(result)
    return decoded


def decode_query(
    params: Mapping[str, str] | list[tuple[str, str]],
    *,
    received: dt.datetime | None = None,
) -> Decoded:
    """Decode one OsmAnd / Traccar Client request given as query or form parameters.

    Args:
        params: the parameters, as a mapping or as ``(name, value)`` pairs in request
            order (pairs keep repeated ``cell``/``wifi`` readings; see :func:`parse_query`).
        received: when the request arrived (UTC), used as the fix time when the request
            has no ``timestamp``, as Traccar does. Without it such a request is ``no_time``.

    Returns:
        One fix, or one reject saying why there is none.
    """
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    try:
        report = _read(pairs)
    except _MalformedError as error:
        return _decoded(Reject("malformed", str(error), device=_device_of(pairs)))
    return _decoded(_finish(report, received))


# --- the JSON form --------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(body: bytes) -> Any:
    """The parsed body (``NaN``/``Infinity`` refused); raises ``_MalformedError``."""
    try:
        return json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as error:
        raise _MalformedError(f"not JSON: {str(error)[:80]}") from None


def _json_number(container: Mapping[str, Any], key: str, where: str) -> float | None:
    """A finite number, or None when absent or null; raises on any other type."""
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _MalformedError(f"{where}.{key} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise _MalformedError(f"{where}.{key} is out of range") from None
    if not math.isfinite(number):
        raise _MalformedError(f"{where}.{key} is not a finite number")
    return number


def _json_device(root: Mapping[str, Any]) -> str | None:
    value = root.get("device_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _plain(value: Any) -> bool:
    """A value worth keeping as an attribute: text, a boolean or a finite number."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2**63
    return isinstance(value, str | bool)


def _json_attributes(location: Mapping[str, Any]) -> dict[str, Any]:
    """What Traccar keeps of a location besides the position (wrong types are dropped)."""
    attributes: dict[str, Any] = {}
    extras = location.get("extras")
    if isinstance(extras, Mapping):
        attributes.update({k: v for k, v in extras.items() if isinstance(k, str) and _plain(v)})
    for key, name, kind in (
        ("event", "event", str),
        ("is_moving", "motion", bool),
        ("mock", "mock", bool),
        ("alarm", "alarm", str),
    ):
        if isinstance(location.get(key), kind):
            attributes[name] = location[key]
    odometer = location.get("odometer")
    if _plain(odometer) and not isinstance(odometer, str | bool):
        attributes["odometer"] = odometer
    activity = location.get("activity")
    if isinstance(activity, Mapping) and isinstance(activity.get("type"), str):
        attributes["activity"] = activity["type"]
    battery = location.get("battery")
    if isinstance(battery, Mapping):
        level = battery.get("level")
        if isinstance(level, int | float) and not isinstance(level, bool) and 0 <= level <= 1:
            attributes["battery"] = round(level * 100)
        if battery.get("is_charging") is True:
            attributes["charging"] = True
    return {k: v for k, v in attributes.items()
            if not _UNSTORABLE.search(k) and not _UNSTORABLE.search(str(v))}  # fmt: skip


def _json_fix(
    device: str, location: Any, line: int | None, received: dt.datetime | None
) -> Fix | Reject:
    """One location object of the JSON form."""
    if not isinstance(location, Mapping):
        return Reject("malformed", "location is not an object", line, device)
    try:
        stamp = location.get("timestamp")
        if stamp is not None and not isinstance(stamp, str):
            raise _MalformedError("location.timestamp is not text")
        time = _parse_time(stamp) if stamp else None
        coords = location.get("coords")
        if coords is None:
            return Reject("no_fix", "location without coords", line, device)
        if not isinstance(coords, Mapping):
            raise _MalformedError("location.coords is not an object")
        lat = _json_number(coords, "latitude", "coords")
        lon = _json_number(coords, "longitude", "coords")
        if lat is None or lon is None:
            raise _MalformedError("coords without latitude and longitude")
        speed = _known(_json_number(coords, "speed", "coords"))
        course = _known(_json_number(coords, "heading", "coords"))
        accuracy = _known(_json_number(coords, "accuracy", "coords"))
        altitude = _json_number(coords, "altitude", "coords")
    except _MalformedError as error:
        return Reject("malformed", str(error), line, device)
    when = _place_reject(lat, lon, device, line) or _when(time, received, device, line)
    if isinstance(when, Reject):
        return when
    return Fix(
        time=when,
        lon=lon,
        lat=lat,
        device=device,
        altitude=altitude,
        speed=speed,
        course=course,
        accuracy=accuracy,
        attributes=_json_attributes(location),
    )


def decode_json(body: bytes, *, received: dt.datetime | None = None) -> Decoded:
    """Decode a Traccar Client 9.x JSON body (transistorsoft location schema).

    Args:
        body: the request body, UTF-8 JSON ``{"device_id": ..., "location": {...}}``;
            ``location`` may be an array of location objects (batch upload).
        received: when the request arrived (UTC), the time of a location without
            ``timestamp``; without it such a location is ``no_time``.

    Returns:
        One fix or reject per location object, in order; a single reject when the body
        is not JSON, names no device or holds no location.
    """
    try:
        root = _load_json(body)
    except _MalformedError as error:
        return _decoded(Reject("malformed", str(error)))
    if not isinstance(root, Mapping):
        return _decoded(Reject("malformed", "the JSON body is not an object"))
    device = _json_device(root)
    if device is None:
        return _decoded(Reject("malformed", "no device id (device_id)"))
    location = root.get("location")
    if isinstance(location, list):
        return _decoded(
            *(_json_fix(device, item, n, received) for n, item in enumerate(location, 1))
        )
    if not isinstance(location, Mapping):
        return _decoded(Reject("malformed", "no location object", device=device))
    return _decoded(_json_fix(device, location, None, received))


# --- a whole request ------------------------------------------------------------------------


def decode_request(
    target: str,
    body: bytes = b"",
    *,
    content_type: str | None = None,
    received: dt.datetime | None = None,
) -> Decoded:
    """Decode a request the way Traccar's OsmAnd port does, from its parts.

    A JSON content type selects :func:`decode_json`; otherwise the query string of the
    request target is read, or the body as a form when the target has no parameters.

    Args:
        target: the request target, e.g. ``/?id=1&lat=60&lon=30`` (the path is ignored).
        body: the request body.
        content_type: the ``Content-Type`` header, if any.
        received: when the request arrived (see :func:`decode_query`).

    Returns:
        What :func:`decode_json` or :func:`decode_query` returns.
    """
    if content_type is not None and content_type.strip().lower().startswith("application/json"):
        return decode_json(body, received=received)
    query = target.partition("?")[2].partition("#")[0]
    pairs = parse_query(query)
    if not pairs and body:
        pairs = parse_query(body.decode("utf-8", errors="replace"))
    return decode_query(pairs, received=received)
