"""GPS batch files: GPX 1.0/1.1 (:mod:`spatial.gps.gpx`), CSV and GeoJSON, read into
:class:`~spatial.gps.fix.Decoded`.

:func:`read` picks the reader by extension (``.gpx``, ``.csv``, ``.geojson``/``.json``) or,
for other names, by the first byte of the content. Each reader takes the file's bytes and
returns the fixes it could read and a :class:`~spatial.gps.fix.Reject` for each point,
row or feature it could not, in input order. Bad content never raises; only a file that
is unreadable as a whole (not XML, not JSON, no header, no latitude column, over the size
limit, or hostile XML) raises :class:`~spatial.errors.InvalidInputError`.

Rules shared by every format:

* A position needs finite latitude and longitude (``malformed`` otherwise), within ±90/±180
  (``out_of_range``), and not exactly (0, 0) (``zero_position``).
* Optional numbers (altitude, speed in m/s, course in degrees, HDOP, satellites, accuracy)
  that are present but do not parse make the record ``malformed``.
* A missing or empty time is ``no_time``; a time that does not parse is ``malformed``.
  Times without an offset are UTC (the GPX specification says so; CSV follows it). CSV and
  GeoJSON also take Unix seconds.
* The ``device`` argument, when given, replaces the device of every fix and reject.

CSV rows in the usual shape take a quick path (:func:`_plain_row`) that reads them exactly
as the careful one does; anything else goes the careful way, with its messages.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatial import jsonbody
from spatial.errors import InvalidInputError, TooLargeError
from spatial.gps.fix import Decoded, Fix, Reject
from spatial.gps.gpx import read_gpx
from spatial.gps.records import (
    DEFAULT_MAX_BYTES,
    RecordError,
    check_size,
    device_name,
    is_blank,
    make_fix,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "read",
    "read_csv",
    "read_geojson",
]


Reader = Callable[..., Decoded]

_SUFFIXES = {".gpx": "gpx", ".csv": "csv", ".geojson": "geojson", ".json": "geojson"}

# Column (CSV) and property (GeoJSON) names, compared lower-cased, and the field they fill.
_ALIASES = {
    "device": "device",
    "device_id": "device",
    "id": "device",
    "time": "time",
    "timestamp": "time",
    "datetime": "time",
    "lat": "lat",
    "latitude": "lat",
    "lon": "lon",
    "lng": "lon",
    "longitude": "lon",
    "altitude": "altitude",
    "alt": "altitude",
    "ele": "altitude",
    "elevation": "altitude",
    "speed": "speed",
    "course": "course",
    "bearing": "course",
    "hdop": "hdop",
    "satellites": "satellites",
    "sat": "satellites",
    "accuracy": "accuracy",
}


# --- entry point ------------------------------------------------------------------------


def read(path: Path, *, device: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Decoded:
    """Read a GPS batch file (GPX, CSV or GeoJSON).

    Args:
        path: the file. ``.gpx``, ``.csv``, ``.geojson`` and ``.json`` choose the format;
            any other name is sniffed (``<`` GPX, ``{`` GeoJSON, anything else CSV).
        device: when given, the device of every fix and reject, replacing what the file
            says (a GPX track name, a CSV ``device`` column).
        max_bytes: refuse files larger than this; never more than ``max_bytes + 1`` bytes
            are read, so a special or growing file cannot exhaust memory.

    Returns:
        The fixes and the rejects, in file order.

    Raises:
        InvalidInputError: the file cannot be read, or is unreadable as a whole.
        TooLargeError: the file is larger than ``max_bytes``.
    """
    path = Path(path)
    data = _read_limited(path, max_bytes)
    kind = _SUFFIXES.get(path.suffix.lower()) or _sniff(data)

    readers: dict[str, Reader] = {"gpx": read_gpx, "csv": read_csv, "geojson": read_geojson}
    try:
        return readers[kind](data, device=device, max_bytes=max_bytes)
    except TooLargeError:
        raise
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path.name}: {exc}") from exc


def _read_limited(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_file() and size > max_bytes:
            raise TooLargeError(
                f"{path.name} has {size:,} bytes, more than the limit of {max_bytes:,}"
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    check_size(len(data), max_bytes, path.name)
    return data


def _sniff(data: bytes) -> str:
    head = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"<", b"\xff\xfe", b"\xfe\xff")):
        return "gpx"
    if head.startswith(b"{"):
        return "geojson"
    return "csv"


# --- fields -------------------------------------------------------------------------------


def _field_name(key: str) -> str | None:
    """The field a column or property name fills (by :data:`_ALIASES`), or None."""
    return _ALIASES.get(key.strip().lower().replace(" ", "_").replace("-", "_"))


def _split_fields(
    items: Iterable[tuple[str, object]], *, skip: frozenset[str] = frozenset()
) -> tuple[dict[str, object], dict[str, Any]]:
    """Known fields (by alias, first one wins) and everything else as attributes."""
    values: dict[str, object] = {}
    attributes: dict[str, Any] = {}
    for key, value in items:
        name = _field_name(key)
        if name is not None and name not in skip and name not in values:
            values[name] = value
        elif not is_blank(value):
            attributes.setdefault(key.strip(), value)
    return values, attributes


# --- CSV --------------------------------------------------------------------------------


def read_csv(
    data: bytes, *, device: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Decoded:
    """Read a CSV batch: a header row, then one fix per row.

    Columns are recognised case-insensitively (see the module docstring for the names);
    the delimiter is the most frequent of ``,``, ``;`` and tab in the header. Other
    columns go into ``attributes`` as text (empty cells are left out). Blank lines are
    skipped. A row whose field count differs from the header's is ``malformed``.

    Args:
        data: the file, UTF-8 (a byte-order mark is fine).
        device: replaces the device of every row.
        max_bytes: refuse larger input.

    Returns:
        Fixes, and rejects whose ``line`` is the row's first physical line (1-based).

    Raises:
        InvalidInputError: not UTF-8, no header, or no latitude/longitude column.
    """
    check_size(len(data), max_bytes)
    text = _utf8(data)
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = _csv_header(reader)
    names = {_field_name(h) for h in header}
    for needed, label in (("lat", "latitude (lat/latitude)"), ("lon", "longitude (lon/lng)")):
        if needed not in names:
            raise InvalidInputError(f"the CSV header has no {label} column: {header}")
    columns = _Columns.of(header)
    out = Decoded()
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.rejects.append(Reject("malformed", f"CSV: {exc}", line=line, device=device))
            if reader.line_num < line:  # no progress: stop rather than loop
                break
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        _csv_row(out, columns, row, line, device)
    return out


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInputError(
            f"not UTF-8: byte {exc.start} (line {line}) cannot be decoded"
        ) from exc


def _csv_header(reader: Any) -> list[str]:
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                return [str(cell) for cell in row]
    except csv.Error as exc:
        raise InvalidInputError(f"the CSV header cannot be read: {exc}") from exc
    raise InvalidInputError("the CSV file is empty: no header row")


@dataclass(frozen=True)
class _Columns:
    """What each CSV column holds, worked out once from the header."""

    count: int
    fields: tuple[tuple[str, int], ...]
    """(field, column) of the known fields, the first column of a field winning."""
    extras: tuple[tuple[str, int], ...]
    """(attribute name, column) of the other columns, the first of a name winning."""
    at: dict[str, int] = field(default_factory=dict)
    """The column of each known field."""

    @classmethod
    def of(cls, header: list[str]) -> _Columns:
        fields: dict[str, int] = {}
        extras: dict[str, int] = {}
        for i, key in enumerate(header):
            name = _field_name(key)
            if name is not None and name not in fields:
                fields[name] = i
            else:
                extras.setdefault(key.strip(), i)
        return cls(len(header), tuple(fields.items()), tuple(extras.items()), fields)


def _csv_row(out: Decoded, columns: _Columns, row: list[str], line: int,
             device: str | None) -> None:  # fmt: skip
    if len(row) == columns.count:
        fix = _plain_row(columns, row, device)
        if fix is not None:
            out.fixes.append(fix)
            return
    n = len(row)
    values = {name: row[i] for name, i in columns.fields if i < n}
    name = device or device_name(values.get("device"))
    if n != columns.count:
        detail = f"row has {n} fields, the header {columns.count}"
        out.rejects.append(Reject("malformed", detail, line=line, device=name))
        return
    attributes = {key: row[i] for key, i in columns.extras if not is_blank(row[i])}
    try:
        out.fixes.append(make_fix(values, device=name, attributes=attributes, unix=True))
    except RecordError as bad:
        out.rejects.append(Reject(bad.reason, bad.detail, line=line, device=name))


_NUMBERS = ("altitude", "speed", "course", "hdop", "accuracy")


def _plain_number(cell: str) -> float | None:
    """A number cell as the careful path reads it; ``ValueError`` when it would not."""
    if not cell or cell.isspace():
        return None
    if "_" in cell:
        raise ValueError(cell)
    number = float(cell)
    if not math.isfinite(number):
        raise ValueError(cell)
    return number


def _plain_row(columns: _Columns, row: list[str], device: str | None) -> Fix | None:
    """The fix of a row in the usual shape (ISO 8601 time with a ``T``, plain numbers, a
    place), read quickly; None for anything else, which :func:`make_fix` then reads with
    its checks and messages. Both read a plain row the same way."""
    at = columns.at
    if "time" not in at or "lat" not in at or "lon" not in at:
        return None
    try:
        lat, lon = _plain_number(row[at["lat"]]), _plain_number(row[at["lon"]])
        text = row[at["time"]]
        if lat is None or lon is None or "T" not in text or text != text.strip() \
                or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) \
                or (lat == 0.0 and lon == 0.0):  # fmt: skip
            return None
        time = dt.datetime.fromisoformat(text)
        numbers = [_plain_number(row[at[n]]) if n in at else None for n in _NUMBERS]
        count = row[at["satellites"]] if "satellites" in at else ""
        satellites = int(count) if count and count.isdigit() else None
        if count and satellites is None:
            return None
    except (ValueError, OverflowError):
        return None
    if device is None and "device" in at:
        device = row[at["device"]].strip() or None
    time = time.replace(tzinfo=dt.UTC) if time.tzinfo is None else time.astimezone(dt.UTC)
    attributes = {key: row[i] for key, i in columns.extras if row[i] and not row[i].isspace()}
    return Fix(time=time, lon=lon, lat=lat, device=device, altitude=numbers[0],
               speed=numbers[1], course=numbers[2], hdop=numbers[3], accuracy=numbers[4],
               satellites=satellites, attributes=attributes)  # fmt: skip


# --- GeoJSON ----------------------------------------------------------------------------

_GEOJSON_CRS = re.compile(r"(CRS84|EPSG:[\d.]*:?(4326|4490))$", re.IGNORECASE)


def read_geojson(
    data: bytes, *, device: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Decoded:
    """Read a GeoJSON batch: a FeatureCollection of Points, or one Feature.

    Coordinates are ``[lon, lat]`` or ``[lon, lat, altitude]`` (the third value wins over
    an ``altitude`` property). Properties are recognised as CSV columns are; the rest
    keep their JSON values in ``attributes``. A legacy ``crs`` member is refused unless
    it names CRS84, EPSG:4326 or EPSG:4490 (CGCS2000, the same axes within centimetres).

    Args:
        data: the file, UTF-8.
        device: replaces the device of every feature.
        max_bytes: refuse larger input.

    Returns:
        Fixes, and rejects whose ``line`` is the feature's 1-based position.

    Raises:
        InvalidInputError: not JSON, not a FeatureCollection or Feature, or another CRS.
    """
    check_size(len(data), max_bytes)
    doc = jsonbody.loads(_utf8(data), "the batch")
    kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
    if kind == "FeatureCollection":
        features: list[Any] = doc.get("features")
        if not isinstance(features, list):
            raise InvalidInputError("the FeatureCollection has no 'features' array")
    elif kind == "Feature":
        features = [doc]
    else:
        raise InvalidInputError(f"GeoJSON must be a FeatureCollection or a Feature, not {kind}")
    _check_crs(doc.get("crs"))
    out = Decoded()
    for number, feature in enumerate(features, start=1):
        properties = feature.get("properties") if isinstance(feature, dict) else None
        values, attributes = _split_fields(
            properties.items() if isinstance(properties, dict) else (),
            skip=frozenset({"lat", "lon"}),
        )
        name = device or device_name(values.get("device"))
        try:
            values.update(_point_coordinates(feature))
            out.fixes.append(make_fix(values, device=name, attributes=attributes, unix=True))
        except RecordError as bad:
            detail = f"feature {number}: {bad.detail}"
            out.rejects.append(Reject(bad.reason, detail, line=number, device=name))
    return out


def _check_crs(crs: object) -> None:
    if crs is None:
        return
    properties = crs.get("properties") if isinstance(crs, dict) else None
    name = properties.get("name") if isinstance(properties, dict) else None
    if not isinstance(name, str) or not _GEOJSON_CRS.search(name):
        raise InvalidInputError(f"GeoJSON crs {name or crs!r} is not lon/lat (CRS84)")


def _point_coordinates(feature: object) -> dict[str, object]:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise RecordError("malformed", "not a Feature")
    geometry = feature.get("geometry")
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind != "Point":
        raise RecordError("malformed", f"geometry is {kind or 'missing'}, not a Point")
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if not isinstance(coordinates, list) or not 2 <= len(coordinates) <= 4:
        raise RecordError(
            "malformed", f"Point coordinates {coordinates!r} are not [lon, lat(, alt)]"
        )
    values: dict[str, object] = {"lon": coordinates[0], "lat": coordinates[1]}
    if len(coordinates) > 2 and coordinates[2] is not None:
        values["altitude"] = coordinates[2]
    return values
