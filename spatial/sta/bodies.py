"""SensorThings request bodies: each entity's own properties checked and made into
columns, GeoJSON checked as lon/lat, and the two patch formats (RFC 7396 JSON Merge Patch,
RFC 6902 JSON Patch). Every refusal is a 400 naming the property (``Thing.name``)."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
import shapely.errors
from psycopg.types.json import Jsonb

from spatial.errors import InvalidInputError
from spatial.sta import observations
from spatial.sta.observations import OM

OBSERVATION_TYPES = tuple(OM + t for t in ("OM_Measurement", "OM_CountObservation",
                                            "OM_TruthObservation", "OM_CategoryObservation",
                                            "OM_Observation"))  # fmt: skip
GEO_ENCODINGS = ("application/geo+json", "application/vnd.geo+json")
MAX_TEXT = 10_000
"""The longest name, description, definition, encoding type or sensor metadata text."""
MAX_VERTICES = 100_000
_GEOMETRIES = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2,
               "Polygon": 2, "MultiPolygon": 3}  # fmt: skip
"""GeoJSON geometry types, and how deeply their coordinates nest positions."""


def clean(value: Any, where: str, depth: int = 0) -> Any:
    """A JSON value PostgreSQL can store: no NUL character, finite numbers.

    Raises:
        InvalidInputError: naming ``where``.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInputError(f"{where}: text may not hold a NUL character")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: {value} is not a JSON number")
    elif isinstance(value, dict):
        for k, v in value.items():
            clean(k, where, depth + 1)
            clean(v, where, depth + 1)
    elif isinstance(value, list):
        for v in value:
            clean(v, where, depth + 1)
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{where} must be a string, not {kind(value)}")
    if len(value) > MAX_TEXT:
        raise InvalidInputError(f"{where} is longer than {MAX_TEXT} characters")
    return str(clean(value, where))


def _name(value: Any, where: str) -> str:
    text = _text(value, where)
    if not text.strip():
        raise InvalidInputError(f"{where} may not be empty")
    return text


def _object(value: Any, where: str) -> Jsonb | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} must be a JSON object, not {kind(value)}")
    return Jsonb(clean(value, where))


def kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _geo_encoding(value: Any, where: str) -> str:
    if value not in GEO_ENCODINGS:
        msg = f"{where} must be {' or '.join(GEO_ENCODINGS)}, not {str(value)[:60]!r}"
        raise InvalidInputError(msg)
    return str(value)


def _observation_type(value: Any, where: str) -> str:
    if value not in OBSERVATION_TYPES:
        names = ", ".join(t.rsplit("/", 1)[1] for t in OBSERVATION_TYPES)
        msg = f"{where} must be an OGC O&M 2.0 observation type URI ({names})"
        raise InvalidInputError(msg)
    return str(value)


def _unit(value: Any, where: str) -> Jsonb:
    if not isinstance(value, dict) or set(value) - {"name", "symbol", "definition"}:
        msg = f"{where} must be an object with name, symbol and definition"
        raise InvalidInputError(msg)
    for k, v in value.items():
        if v is not None:
            _text(v, f"{where}.{k}")
    return Jsonb(value)


def _metadata(value: Any, where: str) -> str:
    if isinstance(value, str):
        return _text(value, where)
    return _text(json.dumps(clean(value, where), ensure_ascii=False), where)


def _moment(value: Any, where: str) -> dt.datetime:
    try:
        start, end = observations.interval(value, where)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    if end is not None:
        raise InvalidInputError(f"{where} is an instant, not an interval")
    return start


def _positions(coords: Any, depth: int, where: str) -> int:
    """Check GeoJSON coordinates nested ``depth`` deep; their number of positions."""
    if not isinstance(coords, list):
        raise InvalidInputError(f"{where}: coordinates must be arrays, not {kind(coords)}")
    if depth == 0:
        if not 2 <= len(coords) <= 3 or any(type(c) not in (int, float) for c in coords):
            raise InvalidInputError(f"{where}: a position is 2 or 3 numbers")
        return 1
    return sum(_positions(c, depth - 1, where) for c in coords)


def _geometry(value: Any, where: str) -> bytes:
    """A GeoJSON geometry (or a Feature's) as WKB in lon/lat.

    Raises:
        InvalidInputError: not GeoJSON, not valid, or not lon/lat.
    """
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in _GEOMETRIES:
        msg = f"{where} must be a GeoJSON geometry ({', '.join(_GEOMETRIES)})"
        raise InvalidInputError(msg)
    if set(value) - {"type", "coordinates", "bbox", "crs"}:
        raise InvalidInputError(f"{where}: a GeoJSON geometry has type and coordinates")
    if _positions(value.get("coordinates"), _GEOMETRIES[value["type"]], where) > MAX_VERTICES:
        raise InvalidInputError(f"{where} has more than {MAX_VERTICES} positions")
    try:
        geom = shapely.force_2d(shapely.geometry.shape(value))
    except (ValueError, TypeError, IndexError, shapely.errors.ShapelyError) as exc:
        raise InvalidInputError(f"{where} is not valid GeoJSON: {exc}") from None
    xy = shapely.get_coordinates(geom)
    if geom.is_empty or not np.isfinite(xy).all():
        raise InvalidInputError(f"{where} is empty or has coordinates that are not numbers")
    if (np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any():
        raise InvalidInputError(f"{where}: coordinates are lon, lat in degrees (WGS 84)")
    if not geom.is_valid:
        raise InvalidInputError(f"{where} is not a valid geometry: {shapely.is_valid_reason(geom)}")
    return bytes(shapely.to_wkb(geom))


Check = Callable[[Any, str], Any]
_COMMON: dict[str, tuple[str, Check]] = {
    "name": ("name", _name), "description": ("description", _text),
    "properties": ("properties", _object),
}  # fmt: skip
FIELDS: dict[str, dict[str, tuple[str, Check]]] = {
    "Things": _COMMON,
    "Locations": {**_COMMON, "encodingType": ("encoding_type", _geo_encoding),
                  "location": ("geom", _geometry)},
    "HistoricalLocations": {"time": ("time", _moment)},
    "Sensors": {**_COMMON, "encodingType": ("encoding_type", _name),
                "metadata": ("metadata", _metadata)},
    "ObservedProperties": {**_COMMON, "definition": ("definition", _name)},
    "Datastreams": {**_COMMON, "unitOfMeasurement": ("unit", _unit),
                    "observationType": ("observation_type", _observation_type)},
    "FeaturesOfInterest": {**_COMMON, "encodingType": ("encoding_type", _geo_encoding),
                           "feature": ("geom", _geometry)},
}  # fmt: skip
"""Each entity set's own properties: the column and the check of each."""
DEFAULTS = {"description": "", "properties": None}
"""What an optional property becomes when a PUT leaves it out."""


def merge(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge(merged.get(key), value)
    return merged


def patched(current: dict[str, Any], ops: Any, where: str) -> dict[str, Any]:
    """A JSON Patch (RFC 6902) applied to an entity's own properties: the properties it
    changed, with their new values (a removed one as null).

    Raises:
        InvalidInputError: not a JSON Patch, a path that is not there, a failed test.
    """
    if not isinstance(ops, list):
        raise InvalidInputError(f"{where}: a JSON Patch is an array of operations")
    if "properties" in current and current["properties"] is None:
        current = {**current, "properties": {}}  # no properties yet: a patch adds the first
    doc: Any = json.loads(json.dumps(current, default=str))
    for n, op in enumerate(ops):
        at = f"{where}: operation {n}"
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise InvalidInputError(f"{at} must be an object with op and path")
        doc = _operate(doc, op, at)
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{where}: a JSON Patch may not replace the entity")
    changed = {k: v for k, v in doc.items() if current.get(k) != v}
    changed.update({k: None for k in current if k not in doc})
    return changed


def _pointer(path: Any, at: str) -> list[str]:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInputError(f"{at}: {str(path)[:60]!r} is not a JSON Pointer to a property")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _step(container: Any, part: str, at: str, *, adding: bool = False) -> Any:
    """The index or key ``part`` names in ``container``."""
    if isinstance(container, dict):
        if not adding and part not in container:
            raise InvalidInputError(f"{at}: no {part[:60]!r}")
        return part
    if isinstance(container, list):
        if adding and part == "-":
            return len(container)
        if not part.isdigit() or int(part) > len(container) - (0 if adding else 1):
            raise InvalidInputError(f"{at}: no element {part[:20]!r}")
        return int(part)
    raise InvalidInputError(f"{at}: the path goes through a value that is not a container")


def _operate(doc: Any, op: dict[str, Any], at: str) -> Any:
    """``doc`` after one operation (RFC 6902 section 4)."""
    name = op.get("op")
    if name in {"move", "copy"}:
        value = _value(doc, _pointer(op.get("from"), at), at)
        if name == "move":
            doc = _operate(doc, {"op": "remove", "path": op["from"]}, at)
        return _operate(doc, {"op": "add", "path": op["path"], "value": value}, at)
    if name not in {"add", "remove", "replace", "test"}:
        raise InvalidInputError(f"{at}: op must be add, remove, replace, move, copy or test")
    if name != "remove" and "value" not in op:
        raise InvalidInputError(f"{at}: {name} needs a value")
    *parents, last = _pointer(op["path"], at)
    target = doc
    for part in parents:
        target = target[_step(target, part, at)]
    key = _step(target, last, at, adding=name == "add")
    if name == "test" and target[key] != op["value"]:
        raise InvalidInputError(f"{at}: test failed at {op['path'][:60]}")
    if name == "remove":
        del target[key]
    elif name == "replace" or (name == "add" and isinstance(target, dict)):
        target[key] = op["value"]
    elif name == "add":
        target.insert(key, op["value"])
    return doc


def _value(doc: Any, parts: list[str], at: str) -> Any:
    for part in parts:
        doc = doc[_step(doc, part, at)]
    return json.loads(json.dumps(doc))
