"""Cloud-Optimized GeoTIFFs: the values in their own grid, and a display copy on the
WebMercatorQuad grid.

- :func:`to_cog`: the native COG: the source grid and CRS untouched, DEFLATE with a
  predictor, 512-pixel tiles, bands stored separately (an index reads only its bands),
  internal overviews (averaged; nearest for classified rasters), nodata, data type,
  band descriptions and band metadata (common names, wavelengths) kept.
- :func:`to_web_cog`: the same bands warped once, at ingest, onto the WebMercatorQuad
  tiles at the zoom that matches the source resolution, with an overview per zoom: a map
  tile is then one aligned block read with no reprojection, which a tile server
  otherwise redoes for every request.
- :func:`band_vrt`: a VRT document naming the bands of one or more files (used as the
  conversion input, and stored to stack the per-band COGs of a multi-file scene).
"""

from __future__ import annotations

import math
import uuid
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles
from rio_cogeo.utils import get_web_optimized_params

from spatial.errors import InvalidInputError

GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}
_CONFIG = {
    "GDAL_NUM_THREADS": "ALL_CPUS",
    "GDAL_TIFF_INTERNAL_MASK": "TRUE",
    "GDAL_TIFF_OVR_BLOCKSIZE": "512",
    "GDAL_PAM_ENABLED": "NO",
}


@dataclass(frozen=True)
class VrtBand:
    """One band of a VRT: the source file and band, and what to call it."""

    path: Path
    index: int
    name: str
    common_name: str | None = None
    wavelength: float | None = None


def band_vrt(
    bands: Sequence[VrtBand],
    *,
    crs_wkt: str,
    dtype: str,
    nodata: float | None,
    relative_to: Path | None = None,
    metadata: dict[str, str] | None = None,
) -> str:
    """A VRT stacking ``bands`` on the finest of their grids (coarser files are
    resampled by nearest neighbour when read).

    Args:
        bands: the bands, each from a file and band number.
        crs_wkt: the CRS all the files share.
        dtype: the common data type.
        nodata: the common nodata value.
        relative_to: write file names relative to this folder (the VRT's own), else absolute.
        metadata: dataset tags to carry (acquisition time, sensor...).
    """
    grids = {}
    for band in bands:
        if band.path not in grids:
            with rasterio.open(band.path) as src:
                grids[band.path] = (src.transform, src.width, src.height, src.scales, src.offsets)
    finest = min(grids.values(), key=lambda g: abs(g[0].a))[0]
    step_x, step_y = finest.a, finest.e
    west = min(t.c for t, *_ in grids.values())
    north = max(t.f for t, *_ in grids.values())
    east = max(t.c + t.a * w for t, w, *_ in grids.values())
    south = min(t.f + t.e * h for t, _w, h, *_ in grids.values())
    width = math.ceil(round((east - west) / step_x, 6))
    height = math.ceil(round((south - north) / step_y, 6))
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = crs_wkt
    geo = f"{west!r}, {step_x!r}, 0, {north!r}, 0, {step_y!r}"
    ET.SubElement(root, "GeoTransform").text = geo
    if metadata:
        tags = ET.SubElement(root, "Metadata")
        for key, value in metadata.items():
            ET.SubElement(tags, "MDI", key=key).text = value
    for number, band in enumerate(bands, start=1):
        transform, src_w, src_h, scales, offsets = grids[band.path]
        node = ET.SubElement(root, "VRTRasterBand", dataType=GDAL_TYPES[dtype], band=str(number))
        ET.SubElement(node, "Description").text = band.name
        if nodata is not None:
            ET.SubElement(node, "NoDataValue").text = repr(nodata)
        if scales[band.index - 1] != 1 or offsets[band.index - 1] != 0:
            ET.SubElement(node, "Offset").text = repr(offsets[band.index - 1])
            ET.SubElement(node, "Scale").text = repr(scales[band.index - 1])
        meta = ET.SubElement(node, "Metadata")
        ET.SubElement(meta, "MDI", key="name").text = band.name
        if band.common_name:
            ET.SubElement(meta, "MDI", key="common_name").text = band.common_name
        if band.wavelength is not None:
            # GDAL's IMAGERY domain name, in the default domain (the one a COG keeps).
            ET.SubElement(meta, "MDI", key="CENTRAL_WAVELENGTH_UM").text = repr(band.wavelength)
        source = ET.SubElement(node, "SimpleSource")
        name = ET.SubElement(source, "SourceFilename")
        if relative_to is not None:
            name.set("relativeToVRT", "1")
            name.text = band.path.relative_to(relative_to).as_posix()
        else:
            name.set("relativeToVRT", "0")
            name.text = str(band.path.resolve())
        ET.SubElement(source, "SourceBand").text = str(band.index)
        ET.SubElement(source, "SrcRect", xOff="0", yOff="0", xSize=str(src_w), ySize=str(src_h))
        x_off = (transform.c - west) / step_x
        y_off = (transform.f - north) / step_y
        ET.SubElement(
            source,
            "DstRect",
            xOff=_num(x_off),
            yOff=_num(y_off),
            xSize=_num(src_w * transform.a / step_x),
            ySize=_num(src_h * transform.e / step_y),
        )
    return ET.tostring(root, encoding="unicode")


def _num(value: float) -> str:
    return str(round(value, 9))


def _profile(dtype: str, *, web: bool) -> dict[str, object]:
    profile = dict(cog_profiles.get("deflate"))  # type: ignore[no-untyped-call]
    floating = np.dtype(dtype).kind == "f"
    profile.update(
        predictor=3 if floating else 2,
        blockxsize=256 if web else 512,
        blockysize=256 if web else 512,
        interleave="band",
        bigtiff="IF_SAFER",
    )
    return profile


def to_cog(
    source: Path, target: Path, *, categorical: bool = False, name: str | None = None
) -> None:
    """Write the native-grid COG of ``source`` (a raster file or a VRT) to ``target``.

    Raises:
        InvalidInputError: a block of the source does not decode (nothing is left at
            ``target``); the message names ``name`` (default: the source's file name).
    """
    _translate(source, target, web=False, categorical=categorical, name=name)


def to_web_cog(
    source: Path, target: Path, *, categorical: bool = False, name: str | None = None
) -> None:
    """Write the WebMercatorQuad display COG of ``source`` to ``target``."""
    _translate(source, target, web=True, categorical=categorical, name=name)


def _translate(
    source: Path, target: Path, *, web: bool, categorical: bool, name: str | None
) -> None:
    with rasterio.open(source) as src:
        dtype, has_nodata = src.dtypes[0], src.nodata is not None
    options: dict[str, Any] = {}
    if web:
        options["tms"] = morecantile.tms.get("WebMercatorQuad")
        options["resampling"] = "nearest" if categorical else "bilinear"
    try:
        with warnings.catch_warnings(), rasterio.open(source) as src:
            warnings.simplefilter("ignore", PendingDeprecationWarning)  # affine, via rio-cogeo
            if web and not has_nodata:
                _web_masked(src, target, categorical=categorical)
                return
            cog_translate(
                src,
                target,
                _profile(dtype, web=web),
                add_mask=not has_nodata and web,
                overview_resampling="nearest" if categorical else "average",
                forward_band_tags=True,
                config=_CONFIG,
                quiet=True,
                **options,
            )
    except (rasterio.errors.RasterioError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        reason = str(exc).replace(str(source), name or source.name)
        what = name or source.name
        msg = f"{what}: a block does not decode, the file is truncated or corrupt: {reason}"
        raise InvalidInputError(msg[:600]) from None


def _web_masked(src: Any, target: Path, *, categorical: bool) -> None:
    """The display COG of a source without nodata: the bands warped onto the
    WebMercatorQuad grid into a temporary GeoTIFF whose internal mask marks the scene,
    then GDAL's COG driver (which keeps that mask; rio-cogeo's warp would mark the padding
    around the scene valid, so it would draw black)."""
    tms = morecantile.tms.get("WebMercatorQuad")
    grid = get_web_optimized_params(src, zoom_level_strategy="auto", tms=tms)
    step = grid["transform"].a
    zoom = tms.zoom_for_res(step, max_z=30, zoom_level_strategy="auto")  # fmt: skip
    resampling = Resampling.nearest if categorical else Resampling.bilinear
    temporary = target.parent / f".{uuid.uuid4().hex}.warped.tif"
    profile = {"driver": "GTiff", "count": src.count, "dtype": src.dtypes[0], "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "zstd", "bigtiff": "IF_SAFER",
               "crs": grid["crs"], "transform": grid["transform"], "width": grid["width"],
               "height": grid["height"]}  # fmt: skip
    floating = np.dtype(src.dtypes[0]).kind == "f"
    try:
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True, GDAL_NUM_THREADS="ALL_CPUS"):
            with (
                WarpedVRT(src, **grid, resampling=resampling, add_alpha=True) as vrt,
                rasterio.open(temporary, "w", **profile) as out,
            ):
                out.descriptions = src.descriptions
                for i in range(1, src.count + 1):
                    out.update_tags(i, **src.tags(i))
                # The tags rio-cogeo writes on the display COGs it makes itself.
                out.update_tags(**src.tags(), TILING_SCHEME_NAME=tms.id,
                                TILING_SCHEME_ZOOM_LEVEL=str(zoom))  # fmt: skip
                for _, window in out.block_windows(1):
                    data = vrt.read(window=window)
                    out.write(data[:-1], window=window)
                    out.write_mask(data[-1] > 0, window=window)
            rasterio.shutil.copy(
                temporary, target, driver="COG", COMPRESS="DEFLATE",
                PREDICTOR="3" if floating else "2", BLOCKSIZE="256", INTERLEAVE="BAND",
                OVERVIEW_RESAMPLING="NEAREST" if categorical else "AVERAGE", BIGTIFF="IF_SAFER",
            )  # fmt: skip
    finally:
        temporary.unlink(missing_ok=True)


def validate(path: Path) -> list[str]:
    """The reasons ``path`` is not a valid COG (empty when it is one)."""
    ok, errors, _warnings = cog_validate(str(path), quiet=True)
    return [] if ok else list(errors) or ["not a valid COG"]
