"""OwnTracks JSON messages (MQTT publishes and HTTP-mode POST bodies) as fixes.

Only ``"_type": "location"`` carries a position to keep. Every other type the apps send
(``transition``, ``waypoint(s)``, ``lwt``, ``card``, ``cmd``, ``status``, ``steps``,
``beacon``, ``configuration``, ...) decodes to nothing at all, neither fix nor reject: they
are valid messages, not failed positions. (Transitions, the enter/leave events of a
region, could become platform events later; they are ignored here.) Two exceptions:
``"_type": "encrypted"`` is a ``malformed`` reject, because it may hide a position that
is lost without a key, and an empty payload (how MQTT clears a retained message) decodes
to nothing.

Fields of a location (https://owntracks.org/booklet/tech/json/):

* ``lat``, ``lon`` (degrees) and ``tst`` (Unix seconds) are required numbers;
  without ``tst`` the message is ``no_time``, any other gap or a wrong type ``malformed``.
* ``acc`` (m) is the accuracy, ``alt`` (m) the altitude, ``vel`` (km/h) the speed,
  converted to m/s, and ``cog`` (degrees) the course; negative values mean unknown.
  A present one of the wrong type makes the message ``malformed``.
* attributes: ``batt`` as ``battery`` (percent), ``bs`` as ``battery_status`` (0 unknown,
  1 unplugged, 2 charging, 3 full) with ``charging``, ``t`` as ``trigger``, ``conn`` as
  ``connection``, ``tid``, and every other plain value (text, boolean, number, list of
  those) under its own name. ``image`` (a base64 picture) is not kept.

The device id is ``user/device``, taken from, in order: the MQTT ``topic``
(``owntracks/{user}/{device}``: its second and third levels), the HTTP-mode ``user`` and
``device`` (headers ``X-Limit-U`` and ``X-Limit-D``; ``tid`` stands in for a missing
device), the ``topic`` element the apps put in HTTP payloads, and finally ``tid`` alone,
as Traccar's OwnTracks decoder uses. A message that names no device, or a device id that
no device may have (:data:`spatial.gps.fix.DEVICE_ID`: it can never be registered, and
the database could not even count some), is ``malformed``. Text PostgreSQL cannot store
(NUL, the lone surrogates a JSON ``\\u`` escape makes) is dropped from the attributes.

Nothing here raises on bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from spatial.gps.fix import DEVICE_ID, Decoded, Fix, Reject

__all__ = ["decode_owntracks"]

_KMH = 1 / 3.6
"""Metres per second in one km/h."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_MAPPED = frozenset({"_type", "lat", "lon", "tst", "acc", "alt", "vel", "cog", "topic"})
_RENAMED = {"batt": "battery", "bs": "battery_status", "t": "trigger", "conn": "connection"}
_DROPPED = frozenset({"image", "imagename", "face"})
_DEVICE = re.compile(DEVICE_ID)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What PostgreSQL text cannot hold: NUL, and lone surrogates (from JSON ``\\u`` escapes)."""


class _MalformedError(ValueError):
    """A field that does not read; caught inside this module, never raised to callers."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _number(message: Mapping[str, Any], key: str) -> float | None:
    """A finite number, or None when absent or null; raises on any other type."""
    value = message.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _MalformedError(f"{key} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise _MalformedError(f"{key} is out of range") from None
    if not math.isfinite(number):
        raise _MalformedError(f"{key} is not a finite number")
    return number


def _known(value: float | None) -> float | None:
    return value if value is not None and value >= 0 else None


def _plain(value: Any) -> bool:
    """Text PostgreSQL can store, a boolean, a finite number, or a list of those."""
    if isinstance(value, list):
        return all(_plain(item) and not isinstance(item, list) for item in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2**63
    if isinstance(value, str):
        return not _UNSTORABLE.search(value)
    return isinstance(value, bool)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _from_topic(topic: str) -> str | None:
    """``owntracks/user/device[/...]`` → ``user/device``; a short topic is used whole."""
    levels = [level for level in topic.strip().split("/") if level]
    if len(levels) >= 3:
        return f"{levels[1]}/{levels[2]}"
    return "/".join(levels) or None


def _device(
    message: Mapping[str, Any], topic: str | None, user: str | None, device: str | None
) -> str | None:
    tid = _text(message.get("tid"))
    if topic is not None and topic.strip():
        return _from_topic(topic)
    if user is not None and user.strip():
        name = (device or "").strip() or tid
        return f"{user.strip()}/{name}" if name else None
    payload_topic = _text(message.get("topic"))
    if payload_topic is not None:
        return _from_topic(payload_topic)
    return tid


def _time(message: Mapping[str, Any]) -> dt.datetime | None:
    seconds = _number(message, "tst")
    if seconds is None:
        return None
    try:
        return _EPOCH + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise _MalformedError(f"tst {seconds} is out of range") from None


def _attributes(message: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in message.items():
        named = isinstance(key, str) and not _UNSTORABLE.search(key)
        if not named or key in _MAPPED or key in _DROPPED or not _plain(value):
            continue
        attributes[_RENAMED.get(key, key)] = value
    if isinstance(attributes.get("battery_status"), int):
        attributes["charging"] = attributes["battery_status"] == 2
    return attributes


def _location(message: Mapping[str, Any], device: str) -> Fix | Reject:
    """A ``location`` message of a known device."""
    try:
        lat = _number(message, "lat")
        lon = _number(message, "lon")
        if lat is None or lon is None:
            raise _MalformedError("a location needs lat and lon")
        time = _time(message)
        accuracy = _known(_number(message, "acc"))
        altitude = _number(message, "alt")
        velocity = _known(_number(message, "vel"))
        course = _known(_number(message, "cog"))
    except _MalformedError as error:
        return Reject("malformed", str(error), device=device)
    if lat == 0 and lon == 0:
        return Reject("zero_position", "position is exactly (0, 0)", device=device)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return Reject("out_of_range", f"lat={lat} lon={lon} is off the globe", device=device)
    if time is None:
        return Reject("no_time", "a location without tst", device=device)
    return Fix(
        time=time,
        lon=lon,
        lat=lat,
        device=device,
        altitude=altitude,
        speed=None if velocity is None else velocity * _KMH,
        course=course,
        accuracy=accuracy,
        attributes=_attributes(message),
    )


def _load(payload: bytes) -> Mapping[str, Any] | Reject:
    """The message object, or why the payload is not one."""
    try:
        message = json.loads(payload, parse_constant=_no_constants)
    except (ValueError, RecursionError) as error:
        return Reject("malformed", f"not JSON: {str(error)[:80]}")
    if not isinstance(message, Mapping):
        return Reject("malformed", "an OwnTracks message is a JSON object")
    if not isinstance(message.get("_type"), str):
        return Reject("malformed", "no _type")
    return message


def decode_owntracks(
    payload: bytes,
    *,
    topic: str | None = None,
    user: str | None = None,
    device: str | None = None,
) -> Decoded:
    """Decode one OwnTracks message.

    Args:
        payload: the MQTT payload or HTTP POST body (UTF-8 JSON object).
        topic: the MQTT topic it was published to, e.g. ``owntracks/jane/phone``.
        user: HTTP mode: the ``X-Limit-U`` header (or the authenticated user).
        device: HTTP mode: the ``X-Limit-D`` header.

    Returns:
        One fix for a location, one reject for a location that cannot be one or for a
        payload that is not an OwnTracks message, and nothing for other message types.
    """
    if not payload.strip():
        return Decoded()
    message = _load(payload)
    if isinstance(message, Reject):
        return Decoded(rejects=[message])
    kind = message["_type"]
    name = _device(message, topic, user, device)
    if kind == "encrypted":
        result: Fix | Reject = Reject("malformed", "encrypted payload (no key)", device=name)
    elif kind != "location":
        return Decoded()
    elif name is None:
        result = Reject("malformed", "no device id (topic, user or tid)")
    else:
        result = _location(message, name)
    if result.device is not None and not _DEVICE.fullmatch(result.device):
        why = f"device id {result.device[:40]!r} is not one a device may have"
        result = Reject("malformed", why)
    if isinstance(result, Fix):
        return Decoded(fixes=[result])
    return Decoded(rejects=[result])
