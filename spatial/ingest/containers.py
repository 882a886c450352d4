"""NetCDF and HDF5 scenes: one variable (a *subdataset*) of a container file, read by GDAL.

A NetCDF or HDF5 file holds many arrays; the raster ingest takes one, named with
``--subdataset`` (the variable's name in a NetCDF file, the dataset's path in an HDF5
file, with or without the leading ``/``). The variable is read through GDAL
(``NETCDF:"file":var``, ``HDF5:"file"://path``) and copied into a plain GeoTIFF in the
ingest's work folder, which then takes the usual path (checks, COG, item):

- georeferencing is GDAL's reading of the CF conventions: 1-D ``lat``/``lon`` or
  projected ``x``/``y`` coordinate variables and the ``grid_mapping`` variable. A grid
  on lat/lon coordinates with no ``grid_mapping`` is CF's plain geographic grid, taken as
  WGS 84 (EPSG:4326) and said so in the item's ``processing:lineage``. An HDF5 file is
  read with GDAL's netCDF driver first (a NetCDF-4 file, or HDF5 with dimension scales,
  carries its coordinates there), then with the HDF5 driver;
- extra dimensions (time, level) become bands, named ``<var>_<dim><i>`` (``temperature_
  time0``, ``temperature_time1``), their coordinate values recorded in the item
  (``spatial:dimensions``); a time axis in CF units (``days since 2024-05-01``) gives the
  item its datetime and ``start_datetime``/``end_datetime``;
- a container without ``--subdataset`` is refused with the list of its subdatasets
  (name, shape, type), an unknown name likewise, a variable without georeferencing as any
  other raster is (``not georeferenced``). HDF4 (MODIS HDF-EOS 2) is refused: this GDAL
  has no HDF4 driver.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from spatial.errors import InvalidInputError

CONTAINER_DRIVERS = frozenset({"netCDF", "HDF5", "HDF5Image", "HDF4", "HDF4Image"})
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HDF4_MAGIC = b"\x0e\x03\x13\x01"
_CDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_DESC = re.compile(r"^\[([0-9x]+)\]\s+(.*?)\s+\(([^()]*)\)\s*$")
_UNITS = re.compile(r"^\s*(\w+)\s+since\s+(.+?)\s*$", re.IGNORECASE)
_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_CALENDARS = {"", "standard", "gregorian", "proleptic_gregorian"}
_ROWS = 1024
"""Rows copied at a time."""


@dataclass(frozen=True)
class Subdataset:
    """One variable of a container file."""

    name: str
    """As the user names it: ``temperature``, ``science/grids/ndvi``."""
    shape: str
    """``2x180x360`` as GDAL describes it."""
    dtype: str
    gdal_names: tuple[str, ...]
    """What GDAL opens, in the order tried (netCDF driver first)."""

    def describe(self) -> str:
        return f"{self.name} ({self.shape}, {self.dtype})"


def kind_of(path: Path) -> str | None:
    """``netcdf``, ``hdf5`` or ``hdf4`` for a container file (by its first bytes), else
    None."""
    if not path.is_file():
        return None
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(_CDF_MAGIC):
        return "netcdf"
    if head.startswith(_HDF4_MAGIC):
        return "hdf4"
    return None


def subdatasets(path: Path) -> list[Subdataset]:
    """The variables of a container file GDAL reads as rasters (2-D or more).

    Raises:
        InvalidInputError: an HDF4 file, or one GDAL cannot open.
    """
    kind = kind_of(path)
    if kind == "hdf4":
        raise InvalidInputError(
            f"{path.name}: HDF4 files (HDF-EOS 2, e.g. MODIS) cannot be read here: this "
            "GDAL has no HDF4 driver; convert the variable to GeoTIFF or NetCDF first "
            "(e.g. with NASA's HEG tool or gdal_translate where HDF4 is built in)"
        )
    found: dict[str, Subdataset] = {}
    prefixes = ("NETCDF:", "HDF5:") if kind == "hdf5" else ("",)
    for prefix in prefixes:
        listed = _listing(path, prefix)
        if found and len(listed) == 1 and listed[0].gdal_names[0].startswith("HDF5:/"):
            continue  # one dataset the netCDF driver named already
        for entry in listed:
            old = found.get(entry.name)
            if old is None:
                found[entry.name] = entry
            else:
                found[entry.name] = Subdataset(
                    old.name, old.shape, old.dtype, old.gdal_names + entry.gdal_names
                )
    return sorted(found.values(), key=lambda s: s.name)


def _listing(path: Path, prefix: str) -> list[Subdataset]:
    target = str(path.resolve())
    try:
        with _quiet(), rasterio.open(f"{prefix}{target}" if prefix else target) as src:
            tags = src.tags(ns="SUBDATASETS")
            if not tags and src.count:  # a file of one variable opens as that raster
                var = src.tags(1).get("NETCDF_VARNAME") or path.stem
                shape = "x".join(str(v) for v in (src.count, src.height, src.width))
                name = f"{prefix}{target}" if prefix else target
                return [Subdataset(var, shape, src.dtypes[0], (name,))]
    except RasterioError:
        if prefix:  # an HDF5 file the netCDF driver does not read
            return []
        raise InvalidInputError(f"{path.name}: GDAL cannot open the container file") from None
    out = []
    for key, gdal_name in tags.items():
        if not key.endswith("_NAME"):
            continue
        match = _DESC.match(tags.get(key[: -len("NAME")] + "DESC", ""))
        if match is None:
            continue
        shape, name, dtype = match.groups()
        out.append(Subdataset(_clean(name), shape, dtype, (gdal_name,)))
    return out


def _clean(name: str) -> str:
    return name.strip().lstrip("/")


def choose(path: Path, name: str | None) -> Subdataset:
    """The subdataset named ``name`` (``None``: the only one).

    Raises:
        InvalidInputError: no name given for a file of several, or an unknown name; the
            message lists the subdatasets.
    """
    found = subdatasets(path)
    if not found:
        raise InvalidInputError(f"{path.name}: the file holds no raster variables (2-D arrays)")
    listed = "; ".join(s.describe() for s in found)
    if name is None:
        if len(found) == 1:
            return found[0]
        raise InvalidInputError(
            f"{path.name} holds {len(found)} subdatasets; choose one with --subdataset "
            f"NAME: {listed}"
        )
    wanted = _clean(name)
    exact = [s for s in found if s.name == wanted]
    short = [s for s in found if s.name.rsplit("/", 1)[-1] == wanted]
    if exact or len(short) == 1:
        return (exact or short)[0]
    if short:
        msg = f"{path.name}: several subdatasets are named {name!r}; give the full path: {listed}"
        raise InvalidInputError(msg)
    raise InvalidInputError(f"{path.name} has no subdataset {name!r}; it has: {listed}")


@dataclass(frozen=True)
class Extracted:
    """A subdataset written as a GeoTIFF, and what the item should say of it."""

    path: Path
    properties: dict[str, Any]


def extract(path: Path, name: str | None, target: Path) -> Extracted:
    """Copy the subdataset ``name`` of ``path`` into the GeoTIFF ``target``.

    Raises:
        InvalidInputError: see :func:`choose`; a variable without georeferencing, with a
            rotated grid, or on a curvilinear (2-D lat/lon) grid.
    """
    entry = choose(path, name)
    opened = georeferenced(path, entry)
    with _quiet(), rasterio.open(opened) as src:
        crs, assumed = _crs(src, path, entry)
        dims = _dimensions(src)
        names = _band_names(entry.name, dims, src.count)
        tags = {"SUBDATASET": entry.name}
        times = _times(dims, src)
        if times:
            tags["ACQUISITION_DATETIME"] = times[0]
        elif start := _coverage_start(src.tags()):
            tags["ACQUISITION_DATETIME"] = start
        fill = nodata_for(src.dtypes[0], src.nodata)
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtype": src.dtypes[0],
            "crs": crs,
            "transform": src.transform,
            "nodata": fill,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "BIGTIFF": "IF_SAFER",
        }
        with rasterio.open(target, "w", **profile) as dst:
            for row in range(0, src.height, _ROWS):
                window = Window(0, row, src.width, min(_ROWS, src.height - row))
                block = src.read(window=window)
                if fill != src.nodata and src.nodata is not None:  # NaN: see nodata_for
                    block[np.isnan(block)] = fill
                dst.write(block, window=window)
            dst.descriptions = tuple(names)
            dst.scales, dst.offsets = src.scales, src.offsets
            dst.units = src.units
            dst.update_tags(**tags)
    lineage = f"read from subdataset {entry.name} of {path.name} by GDAL ({_driver(opened)})"
    if assumed:
        lineage += "; CRS taken as WGS 84 (EPSG:4326): CF lat/lon coordinates, no grid_mapping"
    properties: dict[str, Any] = {"processing:lineage": lineage, "spatial:subdataset": entry.name}
    if dims:
        properties["spatial:dimensions"] = [
            {"band": band, **d} for band, d in zip(names, dims, strict=True)
        ]
    if len(times) > 1:
        properties["start_datetime"] = min(times)
        properties["end_datetime"] = max(times)
    return Extracted(target, properties)


def nodata_for(dtype: str, nodata: float | None) -> float | None:
    """The nodata value to write: the source's, but a NaN one becomes the type's lowest
    finite value (JSON, and so the catalog's ``raster:bands``, has no NaN)."""
    if nodata is not None and math.isnan(nodata):
        return float(np.finfo(dtype).min)
    return nodata


def _driver(gdal_name: str) -> str:
    return "HDF5 driver" if gdal_name.upper().startswith("HDF5:") else "netCDF driver"


def georeferenced(path: Path, entry: Subdataset) -> str:
    """The first of the subdataset's GDAL names that opens with a geotransform.

    Raises:
        InvalidInputError: none does (no CF coordinates, or a curvilinear grid).
    """
    for gdal_name in entry.gdal_names:
        try:
            with _quiet(), rasterio.open(gdal_name) as src:
                if not src.transform.is_identity:
                    return gdal_name
                if src.gcps[0] or _geolocation(src):
                    raise InvalidInputError(
                        f"{path.name}: subdataset {entry.name} is on a curvilinear grid "
                        "(2-D latitude/longitude arrays), not a regular one; regrid it first "
                        "(e.g. gdalwarp -geoloc)"
                    )
        except RasterioError:
            continue
    raise InvalidInputError(
        f"{path.name}: subdataset {entry.name} is not georeferenced: GDAL found no CF "
        "coordinates for it (1-D lat/lon or x/y coordinate variables, a grid_mapping)"
    )


def _geolocation(src: Any) -> bool:
    return bool(src.tags(ns="GEOLOCATION"))


def _crs(src: Any, path: Path, entry: Subdataset) -> tuple[Any, bool]:
    """The variable's CRS, and whether it was assumed (CF lat/lon without grid_mapping)."""
    if src.crs is not None:
        return src.crs, False
    tags = src.tags()
    geographic = any(
        key.split("#", 1)[0].lower() in {"lat", "latitude", "lon", "longitude"}
        or (key.endswith("#standard_name") and value in {"latitude", "longitude"})
        or (key.endswith("#units") and value.lower() in _DEGREES)
        for key, value in tags.items()
    )
    if not geographic:
        raise InvalidInputError(
            f"{path.name}: subdataset {entry.name} has a grid but no CRS: its coordinates "
            "are not lat/lon and no grid_mapping variable names the projection"
        )
    return rasterio.crs.CRS.from_epsg(4326), True


_DEGREES = {
    "degrees_north",
    "degree_north",
    "degrees_n",
    "degree_n",
    "degreesn",
    "degrees_east",
    "degree_east",
    "degrees_e",
    "degree_e",
    "degreese",
}


def _dimensions(src: Any) -> list[dict[str, Any]]:
    """Per band, its position on the extra dimensions (``{"time": "2024-05-01T00:00:00Z"}``,
    ``{"level": 850}``: a CF time as an ISO instant); empty for a 2-D variable."""
    tags = src.tags()
    names = [d for d in tags.get("NETCDF_DIM_EXTRA", "").strip("{}").split(",") if d]
    out = []
    for band in range(1, src.count + 1) if names else ():
        band_tags = src.tags(band)
        position: dict[str, Any] = {}
        for dim in names:
            raw = band_tags.get(f"NETCDF_DIM_{dim}")
            if raw is not None:
                value = _number(raw)
                when = _time(value, tags.get(f"{dim}#units"), tags.get(f"{dim}#calendar"))
                position[dim] = value if when is None else when
        out.append(position)
    return out


def _times(dims: list[dict[str, Any]], src: Any) -> list[str]:
    """The bands' times (ISO instants) along a CF time dimension, if there is one."""
    tags = src.tags()
    axis = [
        k
        for k in (dims[0] if dims else {})
        if _UNITS.match(tags.get(f"{k}#units", "")) and isinstance(dims[0][k], str)
    ]
    return [d[axis[0]] for d in dims] if axis else []


def _number(raw: str) -> float | int | str:
    try:
        value = float(raw)
    except ValueError:
        return raw
    return int(value) if value.is_integer() else value


def _time(value: Any, units: str | None, calendar: str | None) -> str | None:
    """A CF time coordinate (``days since 2024-05-01``) as an ISO UTC instant, or None."""
    if units is None or not isinstance(value, int | float):
        return None
    match = _UNITS.match(units)
    if match is None or (calendar or "").lower() not in _CALENDARS:
        return None
    unit = match.group(1).lower().rstrip("s")
    if unit not in _SECONDS:
        return None
    try:
        origin = dt.datetime.fromisoformat(match.group(2).replace(" UTC", "").strip())
    except ValueError:
        return None
    if origin.tzinfo is None:
        origin = origin.replace(tzinfo=dt.UTC)
    seconds = float(value) * _SECONDS[unit]
    if not math.isfinite(seconds):
        return None
    moment = origin + dt.timedelta(seconds=seconds)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _coverage_start(tags: dict[str, str]) -> str | None:
    value = tags.get("NC_GLOBAL#time_coverage_start")
    try:
        return (
            dt.datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat() if value else None
        )
    except ValueError:
        return None


def _band_names(var: str, dims: list[dict[str, Any]], count: int) -> list[str]:
    """Band names usable in expressions: ``ndvi``; ``temperature_time0``, ``temperature_
    time1``; ``wind_time0_level2``."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", var.rsplit("/", 1)[-1]) or "band"
    if not base[0].isalpha():
        base = f"v{base}"
    if count == 1:
        return [base[:32]]
    axes = list(dims[0]) if dims else []
    steps: dict[str, list[Any]] = {k: [] for k in axes}
    for d in dims:
        for k in axes:
            if d.get(k) not in steps[k]:
                steps[k].append(d.get(k))
    names = []
    for band in range(count):
        if axes:
            parts = [f"{re.sub(r'[^A-Za-z0-9]', '', k)}{steps[k].index(dims[band].get(k))}"
                     for k in axes]  # fmt: skip
            suffix = "_" + "_".join(parts)
        else:
            suffix = f"_{band + 1}"
        names.append(base[: 32 - len(suffix)] + suffix)
    return names


@contextmanager
def _quiet() -> Iterator[None]:
    """GDAL's NotGeoreferencedWarning for a container's root and variables is expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield
