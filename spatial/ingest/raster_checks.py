"""Checks of raster files before anything is written.

Each file must open with a raster driver of the allow-list, be georeferenced north-up by
a geotransform in a CRS that maps to lon/lat, lie inside that CRS's valid range, declare
sane dimensions (no decompression bombs) and a nodata value its data type can hold, and
its blocks must decode: a sample of blocks is read at full resolution and at every
overview. A refusal names the file and says what is wrong.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from spatial.crs import area_overlaps
from spatial.errors import InvalidInputError
from spatial.ingest.files import what

DRIVERS = frozenset(
    {
        "GTiff",
        "COG",
        "JP2OpenJPEG",
        "JPEG",
        "PNG",
        "HFA",
        "ENVI",
        "EHdr",
        "AAIGrid",
        "NITF",
        "ERS",
        "RST",
        "SAGA",
        "PCIDSK",
    }
)
"""Raster formats accepted. Formats that point at other files (VRT and the like) are not:
a VRT could read any file on the server."""
DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"})
SAMPLE_BLOCKS = 12
"""Blocks read per band and level (corners, centre, and a spread between)."""


@dataclass(frozen=True)
class Limits:
    """What a raster may declare."""

    max_bands: int = 200
    max_side: int = 200_000
    """Pixels along one side."""
    max_gigabytes: float = 64.0
    """Declared uncompressed size of all bands."""
    max_ratio: float = 5000.0
    """Declared uncompressed size over file size (a decompression bomb has a huge one)."""


@dataclass(frozen=True)
class FileInfo:
    """What a checked file is."""

    path: Path
    driver: str
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None
    crs_wkt: str
    crs_code: str | None
    """``EPSG:4546`` when the CRS has an authority code, else None."""
    transform: tuple[float, ...]
    bounds: tuple[float, float, float, float]
    lonlat: tuple[float, float, float, float]
    descriptions: tuple[str | None, ...]
    colorinterp: tuple[str, ...]
    tags: dict[str, str]
    band_tags: tuple[dict[str, str], ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    has_colormap: bool

    @property
    def resolution(self) -> tuple[float, float]:
        return abs(self.transform[0]), abs(self.transform[4])


def check_file(path: Path, limits: Limits) -> FileInfo:
    """Open and check one raster file.

    Raises:
        InvalidInputError: the file is not a usable raster; the message says why.
    """
    name = path.name
    if not path.is_file():
        raise InvalidInputError(f"{name}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(f"{name}: the file is empty (0 bytes)")
    if path.suffix.lower() in {".vrt", ".xml"} or _head(path).lstrip().startswith(b"<VRTDataset"):
        raise InvalidInputError(
            f"{name}: VRT files are not accepted (they can point at any file); "
            "send the rasters they reference"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with (
                rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
                rasterio.open(path) as src,
            ):
                info = _describe(src, path, size, limits)
                _decode_sample(src, name, path)
    except InvalidInputError:
        raise
    except (RasterioError, OSError, ValueError) as exc:
        reason = _reason(exc, path)
        if "not recognized as being in a supported file format" in reason:
            reason = "not a raster format GDAL reads" + what(_head(path))
        raise InvalidInputError(f"{name}: cannot be read as a raster: {reason}") from None
    return info


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(64)


def _reason(exc: BaseException, path: Path) -> str:
    """GDAL's message, without the server's paths."""
    text = str(exc).strip() or type(exc).__name__
    for full in (str(path), str(path.resolve()), os.fspath(Path.cwd()) + "/"):
        text = text.replace(full, path.name if full != os.fspath(Path.cwd()) + "/" else "")
    return text[:300]


def _describe(src: Any, path: Path, size: int, limits: Limits) -> FileInfo:
    name = path.name
    if src.driver not in DRIVERS:
        raise InvalidInputError(
            f"{name}: the {src.driver} format is not accepted; "
            f"use one of {', '.join(sorted(DRIVERS))}"
        )
    _dimensions(src, name, size, limits)
    bad = sorted({d for d in src.dtypes if d not in DTYPES})
    if bad:
        raise InvalidInputError(f"{name}: data type {', '.join(bad)} is not supported")
    transform = src.transform
    if src.crs is None:
        if transform.is_identity and not src.gcps[0]:
            raise InvalidInputError(
                f"{name}: the file is not georeferenced (no geotransform and no CRS)"
            )
        if transform.is_identity:
            raise InvalidInputError(
                f"{name}: georeferenced by ground control points only; warp it to a "
                "north-up grid first (gdalwarp)"
            )
        raise InvalidInputError(f"{name}: the file has a geotransform but no CRS")
    if transform.is_identity:
        raise InvalidInputError(f"{name}: the file is not georeferenced (no geotransform)")
    if transform.b != 0 or transform.d != 0:
        raise InvalidInputError(
            f"{name}: the grid is rotated or sheared; warp it to a north-up grid first (gdalwarp)"
        )
    steps = (transform.a, transform.e)
    if not all(math.isfinite(v) and v != 0 for v in steps):
        raise InvalidInputError(f"{name}: the geotransform has a zero or invalid pixel size")
    if not (math.isfinite(transform.c) and math.isfinite(transform.f)):
        raise InvalidInputError(f"{name}: the geotransform has an invalid origin")
    crs_wkt, code, lonlat = _crs(src, name)
    nodata = _nodata(src, name)
    _declared_nodata(src, name)
    return FileInfo(
        path=path,
        driver=src.driver,
        width=src.width,
        height=src.height,
        count=src.count,
        dtypes=tuple(src.dtypes),
        nodata=nodata,
        crs_wkt=crs_wkt,
        crs_code=code,
        transform=tuple(transform)[:6],
        bounds=tuple(src.bounds),
        lonlat=lonlat,
        descriptions=tuple(src.descriptions),
        colorinterp=tuple(c.name for c in src.colorinterp),
        tags={k: str(v) for k, v in src.tags().items()},
        band_tags=tuple(
            {k: str(v) for k, v in src.tags(i).items()} for i in range(1, src.count + 1)
        ),
        scales=tuple(src.scales),
        offsets=tuple(src.offsets),
        has_colormap=has_colormap(src),
    )


def _dimensions(src: Any, name: str, size: int, limits: Limits) -> None:
    if src.count < 1:
        raise InvalidInputError(f"{name}: the raster has no bands")
    if src.count > limits.max_bands:
        raise InvalidInputError(
            f"{name}: {src.count} bands is more than the {limits.max_bands} bands allowed"
        )
    if src.width < 1 or src.height < 1:
        raise InvalidInputError(f"{name}: the raster is empty ({src.width} x {src.height})")
    if max(src.width, src.height) > limits.max_side:
        raise InvalidInputError(
            f"{name}: {src.width} x {src.height} pixels is too large "
            f"(at most {limits.max_side} pixels a side)"
        )
    declared = src.width * src.height * sum(np.dtype(d).itemsize for d in src.dtypes)
    if declared > limits.max_gigabytes * 2**30:
        raise InvalidInputError(
            f"{name}: the raster declares {declared / 2**30:.1f} GiB of pixels, too large "
            f"(at most {limits.max_gigabytes:g} GiB)"
        )
    if declared > 2**30 and declared / size > limits.max_ratio:
        raise InvalidInputError(
            f"{name}: the raster declares {declared / 2**30:.1f} GiB of pixels in a "
            f"{size / 2**20:.1f} MiB file: too large a ratio (a decompression bomb?)"
        )


def _crs(src: Any, name: str) -> tuple[str, str | None, tuple[float, float, float, float]]:
    try:
        crs = pyproj.CRS.from_wkt(src.crs.to_wkt())
    except (pyproj.exceptions.CRSError, RasterioError) as exc:
        raise InvalidInputError(f"{name}: unknown CRS ({exc})") from None
    if not (crs.is_geographic or crs.is_projected):
        raise InvalidInputError(
            f"{name}: unknown CRS {crs.name!r}: it is neither geographic nor projected, so it "
            "cannot be placed on the map"
        )
    authority = crs.to_authority(min_confidence=70)
    code = f"{authority[0]}:{authority[1]}" if authority else None
    try:
        to_lonlat = pyproj.Transformer.from_crs(crs, "OGC:CRS84", always_xy=True)
        left, bottom, right, top = src.bounds
        west, south, east, north = to_lonlat.transform_bounds(
            left, bottom, right, top, densify_pts=21
        )
    except pyproj.exceptions.ProjError as exc:
        raise InvalidInputError(
            f"{name}: unknown CRS: cannot transform to lon/lat ({exc})"
        ) from None
    box = (west, south, east, north)
    if not all(math.isfinite(v) for v in box) or not (
        -180.5 <= west < east <= 180.5 and -90.5 <= south < north <= 90.5
    ):
        raise InvalidInputError(
            f"{name}: the raster's bounds {tuple(round(v, 3) for v in src.bounds)} fall "
            f"outside the valid area of its CRS {code or crs.name}"
        )
    # GDAL's WKT1 carries no area of use: take the identified code's.
    area = crs.area_of_use or (
        pyproj.CRS.from_authority(*authority).area_of_use if authority else None
    )
    if area is not None and not area_overlaps(box, area.bounds, margin=1.0):
        raise InvalidInputError(
            f"{name}: the raster lies outside the area of use of its CRS {code or crs.name} "
            f"(lon {west:.2f}..{east:.2f}, lat {south:.2f}..{north:.2f})"
        )
    return (
        crs.to_wkt(),
        code,
        (max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0)),
    )


def _nodata(src: Any, name: str) -> float | None:
    values = {v for v in src.nodatavals if v is not None}
    nan = any(isinstance(v, float) and math.isnan(v) for v in values)
    plain = {v for v in values if not (isinstance(v, float) and math.isnan(v))}
    if len(plain) + nan > 1 or (values and None in src.nodatavals):
        raise InvalidInputError(
            f"{name}: the bands declare different nodata values ({list(src.nodatavals)})"
        )
    if not values:
        return None
    value = float(next(iter(values)))
    for dtype in set(src.dtypes):
        if np.dtype(dtype).kind in "iu":
            info = np.iinfo(dtype)
            if math.isnan(value) or not (info.min <= value <= info.max) or value != int(value):
                raise InvalidInputError(
                    f"{name}: the nodata value {value:g} is outside the range of {dtype} "
                    f"({info.min}..{info.max})"
                )
    return value


def _declared_nodata(src: Any, name: str) -> None:
    """Refuse a nodata value the data type cannot hold (rasterio reports those as no
    nodata; GDAL, which writes them into a VRT description, does not)."""
    with MemoryFile(ext=".vrt") as memory:
        rasterio.shutil.copy(src, memory.name, driver="VRT")
        text = memory.read().decode("utf-8", "replace")
    for value in re.findall(r"<NoDataValue>([^<]*)</NoDataValue>", text):
        try:
            number = float(value)
        except ValueError:
            continue
        for dtype in set(src.dtypes):
            if np.dtype(dtype).kind in "iu" and not math.isnan(number):
                info = np.iinfo(dtype)
                if not (info.min <= number <= info.max) or number != int(number):
                    raise InvalidInputError(
                        f"{name}: the nodata value {number:g} is outside the range of {dtype} "
                        f"({info.min}..{info.max})"
                    )


def has_colormap(src: Any) -> bool:
    """Whether band 1 of an open dataset has a colour table (a categorical raster)."""
    try:
        src.colormap(1)
    except ValueError:
        return False
    return True


def _decode_sample(src: Any, name: str, path: Path) -> None:
    """Read a sample of blocks at full resolution and at each overview."""
    height, width = src.block_shapes[0]
    factors = [1, *src.overviews(1)]
    for factor in factors:
        level_w, level_h = math.ceil(src.width / factor), math.ceil(src.height / factor)
        cols, rows = math.ceil(level_w / width), math.ceil(level_h / height)
        for index in _spread(cols * rows):
            row, col = divmod(index, cols)
            window = Window(
                col * width * factor,
                row * height * factor,
                min(width * factor, src.width - col * width * factor),
                min(height * factor, src.height - row * height * factor),
            )
            shape = (
                src.count,
                max(1, round(window.height / factor)),
                max(1, round(window.width / factor)),
            )
            try:
                src.read(window=window, out_shape=shape)
            except RasterioError as exc:
                level = "full resolution" if factor == 1 else f"overview 1:{factor}"
                raise InvalidInputError(
                    f"{name}: a block at {level} (row {row}, column {col}) does not decode; "
                    f"the file is truncated or corrupt: {_reason(exc, path)}"
                ) from None


def _spread(n: int) -> list[int]:
    if n <= SAMPLE_BLOCKS:
        return list(range(n))
    step = (n - 1) / (SAMPLE_BLOCKS - 1)
    return sorted({round(i * step) for i in range(SAMPLE_BLOCKS)})
