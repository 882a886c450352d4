"""Read a prepared dataset with GDAL into plain arrays, typed for PostgreSQL.

GDAL streams the layer as Arrow (pyogrio's ``read_arrow``: several times faster than
feature by feature). The geometry stays as the WKB GDAL produced (nothing is re-encoded,
so coordinates are kept bit for bit); attributes become one array per field with the
PostgreSQL type the field will have. No pandas on this path.

Only a layer in a CRS without EPSG code has its coordinates changed: :func:`transform_xy`
rewrites the x and y doubles inside the WKB and nothing else.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyogrio
import pyogrio.raw
import shapely

from spatial.errors import InvalidInputError
from spatial.ingest.files import Dataset

RESERVED = frozenset({"fid", "geom"})
MULTI_LAYER = frozenset({".gpkg", ".gdb", ".kml", ".gml", ".gpx", ".sqlite"})
"""Formats that can hold several layers (the others are opened without listing them)."""
DRIVERS = {
    ".shp": "ESRI Shapefile",
    ".gpkg": "GPKG",
    ".gdb": "OpenFileGDB",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".geojsonl": "GeoJSONSeq",
    ".geojsons": "GeoJSONSeq",
    ".fgb": "FlatGeobuf",
    ".kml": "KML",
    ".gml": "GML",
    ".gpx": "GPX",
    ".csv": "CSV",
}
_CSV_OPTIONS = {
    "GEOM_POSSIBLE_NAMES": "wkt,geom,geometry,the_geom,shape,wkt_geom",
    "X_POSSIBLE_NAMES": "lon,longitude,lng,x,经度",
    "Y_POSSIBLE_NAMES": "lat,latitude,y,纬度",
    "KEEP_GEOM_COLUMNS": "NO",
}
# (OGR type, OGR subtype) -> PostgreSQL type; anything else is kept as text.
_PG_TYPES = {
    ("OFTInteger", "OFSTBoolean"): "boolean",
    ("OFTInteger", "OFSTInt16"): "smallint",
    ("OFTInteger", "OFSTNone"): "integer",
    ("OFTInteger64", "OFSTNone"): "bigint",
    ("OFTReal", "OFSTFloat32"): "real",
    ("OFTReal", "OFSTNone"): "double precision",
    ("OFTString", "OFSTNone"): "text",
    ("OFTDate", "OFSTNone"): "date",
    ("OFTDateTime", "OFSTNone"): "timestamp",
    ("OFTBinary", "OFSTNone"): "bytea",
}
COPY_TYPES = {
    "boolean": "bool",
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "text": "text",
    "date": "date",
    "timestamp": "timestamp",
    "bytea": "bytea",
}
"""Type names psycopg's binary COPY uses for each column type."""
_LINEAR = frozenset({2, 8})
"""WKB types whose body is one run of points (LineString, CircularString)."""
_RINGED = frozenset({3, 17})
"""WKB types whose body is runs of points (Polygon, Triangle)."""
_NESTED = frozenset({4, 5, 6, 7, 9, 10, 11, 12, 15, 16})
"""WKB types whose body is whole geometries (multi geometries, collections, curves, TIN)."""
XY = npt.NDArray[np.float64]


@dataclass
class Field:
    """One attribute column."""

    source: str
    """The name in the file."""
    column: str
    """The column name in PostgreSQL (lower-case, safe, unique)."""
    pgtype: str
    values: list[Any]
    """Python values for COPY, None for NULL."""


@dataclass
class Table:
    """A layer as read: source FIDs, WKB geometries, typed attributes, and metadata."""

    driver: str
    layer: str
    crs_text: str | None
    encoding: str | None
    fids: npt.NDArray[np.int64]
    wkb: npt.NDArray[np.object_]
    wkb_types: npt.NDArray[np.uint32]
    """The ISO WKB type code of each geometry (3 Polygon, 1006 MultiPolygon Z...), read
    from its header; 0 where there is none."""
    fields: list[Field]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.wkb)

    def field_named(self, name: str) -> Field:
        """The field called ``name`` in the file or in PostgreSQL (case-insensitive).

        Raises:
            InvalidInputError: there is no such field.
        """
        for f in self.fields:
            if name.lower() in {f.source.lower(), f.column}:
                return f
        names = ", ".join(f.source for f in self.fields) or "none"
        msg = f"the layer has no field {name!r}; its fields are: {names}"
        raise InvalidInputError(msg)


def read(dataset: Dataset) -> Table:
    """Read the dataset's layer.

    Raises:
        InvalidInputError: GDAL cannot open or read it, it has several layers and none was
            chosen, the chosen layer does not exist, or it has no geometry column.
    """
    path = str(dataset.path)
    name = dataset.path.name
    layer = _layer(dataset)
    options: dict[str, Any] = {}
    if dataset.path.suffix.lower() == ".csv":
        options.update(_CSV_OPTIONS)
    captured: list[str] = []
    handler = _Capture(captured)
    gdal_log = logging.getLogger("pyogrio._err")
    gdal_log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            meta, arrow = pyogrio.raw.read_arrow(
                path, layer=layer, encoding=dataset.encoding, return_fids=True, **options
            )
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        msg = f"GDAL cannot read {name}: {_clean(exc)}"
        raise InvalidInputError(msg) from exc
    except (pyogrio.errors.CRSError, pyogrio.errors.FieldError) as exc:
        msg = f"GDAL cannot read {name}: {_clean(exc)}"
        raise InvalidInputError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = (
            f"{name}: attribute text does not decode as "
            f"{dataset.encoding or 'its declared encoding'}"
            f" ({exc.reason} at byte {exc.start}); give the right one with --encoding"
        )
        raise InvalidInputError(msg) from exc
    finally:
        gdal_log.removeHandler(handler)
    captured += [str(w.message) for w in caught]
    if meta.get("geometry_type") is None:
        msg = f"{name} has no geometry column (for a CSV: a WKT column or lon/lat columns)"
        raise InvalidInputError(msg)
    # GDAL's Arrow stream: the FID first, then the fields, then the WKB geometry.
    columns = [_numpy(c) for c in arrow.columns]
    if len(columns) != len(meta["fields"]) + 2:  # pragma: no cover - GDAL's stream layout
        msg = f"{name}: GDAL returned {len(columns)} columns for {len(meta['fields'])} fields"
        raise InvalidInputError(msg)
    return Table(
        driver=DRIVERS.get(dataset.path.suffix.lower(), dataset.path.suffix.lstrip(".")),
        layer=layer or dataset.path.stem,
        crs_text=meta.get("crs"),
        encoding=meta.get("encoding"),
        fids=np.asarray(columns[0], dtype=np.int64),
        wkb=np.asarray(columns[-1], dtype=object),
        wkb_types=_wkb_types(arrow.columns[-1]),
        fields=_fields(meta, columns[1:-1]),
        warnings=_dedupe(captured),
    )


def transform_xy(table: Table, transform: Callable[[XY, XY], tuple[XY, XY]]) -> Table:
    """``table`` with the x and y of every point passed through ``transform`` (once, for
    all points of the layer together).

    Only those doubles of the WKB change: its structure, byte order, z and m stay as GDAL
    wrote them, and so do NULL and unreadable geometries (the checks report those) and
    points that are not finite.

    Raises:
        InvalidInputError: a geometry GEOS can read but whose WKB cannot be walked.
    """
    runs: list[tuple[int, int, int, bool]] = []
    starts: list[int] = []
    blob = bytearray()
    for row, wkb in enumerate(table.wkb.tolist()):
        starts.append(len(blob))
        if wkb is None:
            continue
        found: list[tuple[int, int, int, bool]] = []
        try:
            if _walk(wkb, 0, found) != len(wkb):
                raise ValueError("trailing bytes")
        except (ValueError, IndexError, struct.error) as exc:
            if shapely.from_wkb(wkb, on_invalid="ignore") is None:
                continue  # unreadable: kept as it is for the checks to report
            msg = f"cannot transform the geometry of feature {int(table.fids[row])}: {exc}"
            raise InvalidInputError(msg) from exc
        base = len(blob)
        blob += wkb
        runs += [(base + offset, n, dims, little) for offset, n, dims, little in found]
    starts.append(len(blob))
    views = [
        np.ndarray((n, dims), dtype="<f8" if little else ">f8", buffer=blob, offset=offset)
        for offset, n, dims, little in runs
    ]
    if views:
        xy = np.concatenate([v[:, :2] for v in views]).astype(np.float64)
        ok = np.isfinite(xy).all(axis=1)
        x, y = transform(xy[ok, 0], xy[ok, 1])
        xy[ok, 0], xy[ok, 1] = x, y
        done = 0
        for v in views:
            v[:, :2] = xy[done : done + len(v)]
            done += len(v)
    wkb_out = np.empty(len(table), dtype=object)
    for row, wkb in enumerate(table.wkb.tolist()):
        start, end = starts[row], starts[row + 1]
        wkb_out[row] = bytes(blob[start:end]) if end > start else wkb
    return replace(table, wkb=wkb_out)


def _walk(wkb: bytes, at: int, runs: list[tuple[int, int, int, bool]]) -> int:
    """Find the runs of points of the (ISO or extended) WKB geometry at ``at``.

    Appends (offset of the first point, points, doubles per point, little-endian) for each
    run and returns where the geometry ends.
    """
    little = wkb[at] == 1
    if wkb[at] not in (0, 1):
        raise ValueError(f"bad byte order {wkb[at]}")
    order = "<" if little else ">"
    (code,) = struct.unpack_from(order + "I", wkb, at + 1)
    at += 5
    if code & 0x20000000:  # extended WKB with an SRID
        at += 4
    kind, iso = (code & 0x0FFFFFFF) % 1000, (code & 0x0FFFFFFF) // 1000
    dims = 2 + (iso in (1, 3)) + (iso in (2, 3)) + bool(code & 0x80000000) + bool(code & 0x40000000)
    if kind == 1:
        runs.append((at, 1, dims, little))
        at += 8 * dims
    elif kind in _LINEAR:
        (n,) = struct.unpack_from(order + "I", wkb, at)
        runs.append((at + 4, n, dims, little))
        at += 4 + 8 * dims * n
    elif kind in _RINGED:
        (rings,) = struct.unpack_from(order + "I", wkb, at)
        at += 4
        for _ in range(rings):
            (n,) = struct.unpack_from(order + "I", wkb, at)
            runs.append((at + 4, n, dims, little))
            at += 4 + 8 * dims * n
    elif kind in _NESTED:
        (parts,) = struct.unpack_from(order + "I", wkb, at)
        at += 4
        for _ in range(parts):
            at = _walk(wkb, at, runs)
    else:
        raise ValueError(f"unknown WKB geometry type {code}")
    if at > len(wkb):
        raise ValueError("truncated WKB")
    return at


def _wkb_types(column: Any) -> npt.NDArray[np.uint32]:
    """The type code in each WKB header, read from the Arrow buffers without a loop."""
    array = column.combine_chunks()
    codes = np.zeros(len(array), dtype=np.uint32)
    offsets_buffer, data_buffer = array.buffers()[1:3]
    if data_buffer is None:
        return codes
    width = np.int64 if str(array.type).startswith("large") else np.int32
    offsets: npt.NDArray[np.int64] = np.frombuffer(offsets_buffer, dtype=width)[array.offset :][
        : len(array) + 1
    ].astype(np.int64)
    start = offsets[:-1]
    ok = (offsets[1:] - start >= 5) & ~array.is_null().to_numpy(zero_copy_only=False)
    heads = np.frombuffer(data_buffer, dtype=np.uint8)[start[ok, None] + np.arange(5)]
    body = np.ascontiguousarray(heads[:, 1:])
    codes[ok] = np.where(
        heads[:, 0] == 1,
        body.view("<u4").ravel(),
        np.where(heads[:, 0] == 0, body.view(">u4").ravel(), 0),
    )
    return codes


def _numpy(column: Any) -> npt.NDArray[Any]:
    """An Arrow column as numpy: numbers with NaN for NULL (booleans with None), dates as
    datetime64 with NaT, timestamps in UTC, text, bytes and lists as objects (None for NULL).
    """
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _layer(dataset: Dataset) -> str | None:
    if dataset.path.suffix.lower() not in MULTI_LAYER:
        if dataset.layer not in {None, dataset.path.stem}:
            msg = (
                f"{dataset.path.name} has one layer, {dataset.path.stem!r}; "
                f"--layer {dataset.layer!r} does not name it"
            )
            raise InvalidInputError(msg)
        return None
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(str(dataset.path))]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        msg = f"GDAL cannot read {dataset.path.name}: {_clean(exc)}"
        raise InvalidInputError(msg) from exc
    if dataset.layer is not None:
        if dataset.layer in layers:
            return dataset.layer
        msg = (
            f"{dataset.path.name} has no layer {dataset.layer!r}; "
            f"its layers are: {', '.join(layers)}"
        )
        raise InvalidInputError(msg)
    if len(layers) > 1:
        msg = (
            f"{dataset.path.name} has {len(layers)} layers ({', '.join(layers[:10])}); "
            "choose one with --layer"
        )
        raise InvalidInputError(msg)
    if not layers:
        msg = f"{dataset.path.name} has no layers"
        raise InvalidInputError(msg)
    return layers[0]


def _fields(meta: dict[str, Any], values: list[npt.NDArray[Any]]) -> list[Field]:
    out: list[Field] = []
    seen: set[str] = set()
    for source, ogr_type, subtype, array in zip(
        meta["fields"], meta["ogr_types"], meta["ogr_subtypes"], values, strict=True
    ):
        pgtype = _PG_TYPES.get((ogr_type, subtype), _PG_TYPES.get((ogr_type, "OFSTNone"), "text"))
        column = column_name(str(source), seen)
        seen.add(column)
        out.append(Field(str(source), column, pgtype, _python_values(array, pgtype)))
    return out


def column_name(source: str, taken: set[str]) -> str:
    """A safe, unique, lower-case PostgreSQL column name for a source field name.

    Letters of any script are kept (Chinese field names stay readable); other characters
    become ``_``; names that clash with ``fid``/``geom`` or start with a digit get ``f_``.
    """
    col = re.sub(r"[^\w]+", "_", source.strip().lower()).strip("_") or "field"
    if col[0].isdigit() or col in RESERVED:
        col = f"f_{col}"
    while len(col.encode()) > 60:
        col = col[:-1]
    base, n = col, 1
    while col in taken:
        n += 1
        col = f"{base}_{n}"
    return col


def _python_values(array: npt.NDArray[Any], pgtype: str) -> list[Any]:
    """Values ready for binary COPY: numbers, strings, dates; NULLs (and NaN) as None."""
    if pgtype in {"date", "timestamp"} and np.issubdtype(array.dtype, np.datetime64):
        out = array.astype("datetime64[us]" if pgtype == "timestamp" else "datetime64[D]")
        objs = out.astype(object)
        objs[np.isnat(out)] = None
        return list(objs)
    if array.dtype.kind == "f":
        nulls = np.isnan(array)
        if pgtype in {"integer", "bigint", "smallint", "boolean"}:
            cast = {"boolean": bool}.get(pgtype, int)
            return [None if n else cast(v) for v, n in zip(array.tolist(), nulls, strict=True)]
        if nulls.any():
            return [None if n else v for v, n in zip(array.tolist(), nulls, strict=True)]
        return list(array.tolist())
    if array.dtype.kind == "O" and pgtype == "text":
        return [_text(v) for v in array.tolist()]
    return list(array.tolist())


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        return json.dumps(value.tolist(), ensure_ascii=False)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class _Capture(logging.Handler):
    """Collects GDAL's warnings (pyogrio logs them) for the report."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _clean(exc: Exception) -> str:
    text = str(exc).strip()
    return re.sub(r"\s+", " ", text)[:400]


def _dedupe(messages: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for m in messages:
        seen[m] = seen.get(m, 0) + 1
    return [m if n == 1 else f"{m} (x{n})" for m, n in list(seen.items())[:50]]
