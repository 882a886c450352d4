"""What a scene is: its files, its bands (names, STAC common names, wavelengths) and
when it was taken.

A path given to the raster ingest is one scene: a file (all its bands), or a folder whose
raster files are the bands of one scene (a Landsat product with its ``*_MTL.txt``, the
Sentinel-2 band files of a granule). Band names come, in this order, from ``--bands``,
the sensor's band table (by the ``B4``/``B8A`` suffix of per-band files, or by position),
the band descriptions in the file, its colour interpretation (red, green, blue), and
``b1``, ``b2``... The acquisition time comes from ``--datetime``, the Landsat MTL, the
file's ``ACQUISITION_DATETIME`` or ``TIFFTAG_DATETIME`` tags, or the Sentinel-2 product
name; with none of these the scene is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatial.errors import InvalidInputError
from spatial.ingest.raster_checks import FileInfo

BandSpec = tuple[str, str | None, float | None]
"""(name, STAC eo common name, centre wavelength in micrometres)."""

SENSORS: dict[str, dict[str, BandSpec]] = {
    "landsat8": {
        "B1": ("B1", "coastal", 0.443),
        "B2": ("B2", "blue", 0.482),
        "B3": ("B3", "green", 0.561),
        "B4": ("B4", "red", 0.655),
        "B5": ("B5", "nir08", 0.865),
        "B6": ("B6", "swir16", 1.609),
        "B7": ("B7", "swir22", 2.201),
        "B8": ("B8", "pan", 0.59),
        "B9": ("B9", "cirrus", 1.373),
        "B10": ("B10", "lwir11", 10.895),
        "B11": ("B11", "lwir12", 12.005),
    },
    "landsat7": {
        "B1": ("B1", "blue", 0.485),
        "B2": ("B2", "green", 0.56),
        "B3": ("B3", "red", 0.66),
        "B4": ("B4", "nir08", 0.835),
        "B5": ("B5", "swir16", 1.65),
        "B6": ("B6", "lwir", 11.45),
        "B7": ("B7", "swir22", 2.22),
        "B8": ("B8", "pan", 0.71),
    },
    "sentinel2": {
        "B01": ("B01", "coastal", 0.443),
        "B02": ("B02", "blue", 0.49),
        "B03": ("B03", "green", 0.56),
        "B04": ("B04", "red", 0.665),
        "B05": ("B05", "rededge", 0.705),
        "B06": ("B06", "rededge", 0.74),
        "B07": ("B07", "rededge", 0.783),
        "B08": ("B08", "nir", 0.842),
        "B8A": ("B8A", "nir08", 0.865),
        "B09": ("B09", "nir09", 0.945),
        "B10": ("B10", "cirrus", 1.375),
        "B11": ("B11", "swir16", 1.61),
        "B12": ("B12", "swir22", 2.19),
    },
    "demo-4band": {
        "blue": ("blue", "blue", 0.49),
        "green": ("green", "green", 0.56),
        "red": ("red", "red", 0.665),
        "nir": ("nir", "nir", 0.842),
    },
}
"""Band tables of the sensors the platform knows (``--sensor``)."""
ORDER = {
    "landsat7": ("B1", "B2", "B3", "B4", "B5", "B7"),
    "demo-4band": ("blue", "green", "red", "nir"),
}
"""Band order of multi-band files of a sensor (a Landsat 7 reflectance stack omits B6)."""
PLATFORMS = {"landsat8": "landsat-8", "landsat7": "landsat-7", "sentinel2": "sentinel-2"}
COMMON = {name: (name, wl) for name, wl in (("red", 0.665), ("green", 0.56), ("blue", 0.49))}
RASTER_SUFFIXES = frozenset(
    {
        ".tif",
        ".tiff",
        ".jp2",
        ".j2k",
        ".img",
        ".png",
        ".jpg",
        ".jpeg",
        ".bil",
        ".asc",
        ".ntf",
        ".ers",
        ".rst",
        ".sdat",
        ".pix",
        ".dat",
        ".vrt",
        ".xml",
    }
)
"""Files of a scene folder that are read as bands (``.vrt`` only to be refused clearly)."""
_BAND_SUFFIX = re.compile(r"(?:^|[_\-.])(B\d{1,2}A?)$", re.IGNORECASE)
_ITEM_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Band:
    """One band of a scene and where it is read from."""

    name: str
    common_name: str | None
    wavelength: float | None
    file: int
    """Index of the file in ``Scene.files``."""
    index: int
    """1-based band of that file."""


@dataclass(frozen=True)
class Scene:
    """One item to ingest."""

    item_id: str
    files: tuple[FileInfo, ...]
    bands: tuple[Band, ...]
    datetime: dt.datetime
    sensor: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    """Extra STAC properties (``platform``, ``eo:cloud_cover``...)."""


def scene_files(path: Path) -> list[Path]:
    """The raster files of one scene path (a file, or a folder's raster files by name).

    Raises:
        InvalidInputError: a folder without raster files.
    """
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
    if not files:
        msg = (
            f"{path.name}: the folder holds no raster files ({', '.join(sorted(RASTER_SUFFIXES))})"
        )
        raise InvalidInputError(msg)
    return files


def item_id_for(path: Path, metadata: dict[str, str]) -> str:
    """A STAC item id from the product metadata or the file/folder name."""
    product = metadata.get("LANDSAT_PRODUCT_ID") or metadata.get("LANDSAT_SCENE_ID")
    base = product or (path.name if path.is_dir() else path.stem)
    cleaned = _ITEM_ID.sub("_", base.strip('"')).strip("_.-") or "scene"
    return cleaned[:128]


def read_mtl(folder: Path) -> dict[str, str]:
    """The ``KEY = value`` pairs of a Landsat ``*_MTL.txt`` in a scene folder (empty if none)."""
    found = sorted(folder.glob("*_MTL.txt")) if folder.is_dir() else []
    if not found:
        return {}
    values: dict[str, str] = {}
    for line in found[0].read_text(encoding="ascii", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.strip(), value.strip().strip('"'))
    return values


def describe(
    path: Path,
    files: list[FileInfo],
    *,
    item_id: str | None,
    when: dt.datetime | None,
    sensor: str | None,
    band_names: tuple[str, ...] = (),
    undated: dt.datetime | None = None,
) -> Scene:
    """The scene a path holds (``undated``: its time when neither ``when`` nor the files
    give one; else that is refused).

    Raises:
        InvalidInputError: unknown sensor, band names that do not fit, files of a folder in
            different CRSs or with different nodata, or no acquisition time.
    """
    mtl = read_mtl(path)
    sensor = sensor or _sensor_from(mtl, files)
    if sensor is not None and sensor not in SENSORS:
        msg = f"unknown sensor {sensor!r}; known: {', '.join(SENSORS)}"
        raise InvalidInputError(msg)
    _same_grid_family(path, files)
    bands = _bands(files, sensor, band_names)
    properties: dict[str, Any] = {}
    if sensor in PLATFORMS:
        properties["platform"] = PLATFORMS[sensor]
    if sensor:
        properties["instruments"] = [mtl.get("SENSOR_ID", sensor).lower()]
    if "CLOUD_COVER" in mtl:
        properties["eo:cloud_cover"] = float(mtl["CLOUD_COVER"])
    return Scene(
        item_id=item_id or item_id_for(path, mtl),
        files=tuple(files),
        bands=bands,
        datetime=_when(path, files, mtl, when, undated),
        sensor=sensor,
        properties=properties,
    )


def _sensor_from(mtl: dict[str, str], files: list[FileInfo]) -> str | None:
    spacecraft = mtl.get("SPACECRAFT_ID", "").upper()
    if spacecraft in {"LANDSAT_8", "LANDSAT_9"}:
        return "landsat8"
    if spacecraft == "LANDSAT_7":
        return "landsat7"
    tagged = {f.tags.get("SENSOR") for f in files} - {None}
    if len(tagged) == 1 and (tag := tagged.pop()) in SENSORS:
        return tag
    return None


def _same_grid_family(path: Path, files: list[FileInfo]) -> None:
    codes = {f.crs_code or f.crs_wkt for f in files}
    if len(codes) > 1:
        listed = ", ".join(f"{f.path.name}: {f.crs_code or 'custom'}" for f in files)
        msg = f"{path.name}: the band files of one scene must share one CRS ({listed})"
        raise InvalidInputError(msg)
    nodata = {f.nodata for f in files}
    if len(nodata) > 1:
        listed = ", ".join(f"{f.path.name}: {f.nodata}" for f in files)
        msg = f"{path.name}: the band files declare different nodata values ({listed})"
        raise InvalidInputError(msg)
    w = max(f.lonlat[0] for f in files)
    e = min(f.lonlat[2] for f in files)
    s = max(f.lonlat[1] for f in files)
    n = min(f.lonlat[3] for f in files)
    if w >= e or s >= n:
        msg = f"{path.name}: the band files do not overlap; they are not one scene"
        raise InvalidInputError(msg)


def _bands(files: list[FileInfo], sensor: str | None, names: tuple[str, ...]) -> tuple[Band, ...]:
    table = SENSORS.get(sensor or "", {})
    slots = [(i, b) for i, f in enumerate(files) for b in range(1, f.count + 1)]
    if names and len(names) != len(slots):
        msg = f"--bands names {len(names)} bands but the scene has {len(slots)}"
        raise InvalidInputError(msg)
    order = ORDER.get(sensor or "", ())
    bands = []
    for position, (i, b) in enumerate(slots):
        info = files[i]
        suffix = _BAND_SUFFIX.search(info.path.stem) if len(files) > 1 else None
        key = suffix.group(1).upper() if suffix else None
        if sensor == "sentinel2" and key and len(key) == 2:
            key = f"B0{key[1]}"
        spec: BandSpec
        if names:
            spec = _named(names[position], table)
        elif key and key in table:
            spec = table[key]
        elif len(files) == 1 and position < len(order) and len(slots) == len(order):
            spec = table[order[position]]
        elif info.descriptions[b - 1]:
            spec = _named(str(info.descriptions[b - 1]), table)
        elif info.colorinterp[b - 1] in COMMON:
            common, wavelength = COMMON[info.colorinterp[b - 1]]
            spec = (common, common, wavelength)
        elif key:
            spec = (key, None, None)
        else:
            spec = (f"b{position + 1}", None, None)
        bands.append(Band(spec[0], spec[1], spec[2], i, b))
    seen: set[str] = set()
    for band in bands:
        if band.name in seen:
            msg = f"two bands are named {band.name!r}; name them with --bands"
            raise InvalidInputError(msg)
        seen.add(band.name)
    return tuple(bands)


def _named(name: str, table: dict[str, BandSpec]) -> BandSpec:
    clean = name.strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", clean):
        msg = f"band name {name!r}: use letters, digits and _ (it is used in expressions)"
        raise InvalidInputError(msg)
    if clean in table:
        return table[clean]
    by_common = {spec[1]: spec for spec in table.values()}
    if clean.lower() in by_common:
        spec = by_common[clean.lower()]
        return (clean, spec[1], spec[2])
    if clean.lower() in COMMON:
        common, wavelength = COMMON[clean.lower()]
        return (clean, common, wavelength)
    if clean.lower() == "nir":
        return (clean, "nir", 0.842)
    return (clean, None, None)


def _when(
    path: Path,
    files: list[FileInfo],
    mtl: dict[str, str],
    when: dt.datetime | None,
    undated: dt.datetime | None = None,
) -> dt.datetime:
    if when is not None:
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    if "DATE_ACQUIRED" in mtl:
        clock = mtl.get("SCENE_CENTER_TIME", "00:00:00Z").rstrip("Z")[:15]
        return dt.datetime.fromisoformat(f"{mtl['DATE_ACQUIRED']}T{clock}+00:00")
    for info in files:
        tags = info.tags
        if "ACQUISITION_DATETIME" in tags:
            return _parse(tags["ACQUISITION_DATETIME"], info.path.name)
        if "TIFFTAG_DATETIME" in tags:
            return _parse(tags["TIFFTAG_DATETIME"].replace(":", "-", 2), info.path.name)
    match = re.search(r"_(\d{8}T\d{6})_", path.name)
    if match:
        return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    if undated is not None:
        return undated
    msg = f"{path.name}: no acquisition time in the files; give it with --datetime"
    raise InvalidInputError(msg)


def _parse(text: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        msg = f"{name}: the acquisition time {text!r} is not a date and time"
        raise InvalidInputError(msg) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
