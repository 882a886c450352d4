"""Raster tiles and coverage subsets from the COGs of raster items (rio-tiler).

- map tiles (PNG, WebP, JPEG) read the item's display COG, which the ingest warped onto
  the WebMercatorQuad grid with an overview per zoom: a WebMercatorQuad tile is one
  aligned read, no reprojection; other tile matrix sets warp from it;
- value tiles and coverages (float GeoTIFF) read the native COG (or the VRT stacking the
  per-band COGs), so the values are the source's, resampled only onto the output grid;
- a collection's tile or subset is a mosaic of its items, latest on top: a pixel comes
  from the newest item that has data there.

Bands are chosen by ``bands`` (names) or computed by an ``expression``
(:mod:`spatial.imagery`); map tiles are then rescaled to bytes and coloured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import morecantile
import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.utils import render

from spatial import imagery, rasterstore
from spatial.errors import InvalidInputError, NotFoundError
from spatial.mosaic import Scene
from tiles.tms import tile_matrix_set

MAP_FORMATS = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg", "jpg": "image/jpeg"}
TIFF = "image/tiff; application=geotiff"
MAX_PIXELS = 64_000_000
"""Largest coverage subset (pixels per band); larger asks get a 400 with the size."""


@dataclass(frozen=True)
class Style:
    """What to compute and how to draw it, as asked (parsed per item's bands)."""

    expression: str | None = None
    bands: tuple[str, ...] = ()
    rescale: str | None = None
    colormap: str | None = None

    def plan(self, item: Scene) -> tuple[tuple[int, ...], imagery.Expression | None]:
        """The bands to read from ``item`` and the expression over them."""
        return _plan(self.expression, self.bands, item.bands)

    def ranges(self, item: Scene, count: int) -> list[tuple[float, float]] | None:
        """Rescale ranges: as asked; -1..1 for a named index; else the first bands'
        2nd-98th percentiles (recorded at ingest) for non-byte data."""
        asked = imagery.rescale_ranges(self.rescale, count)
        if asked is not None or self.expression is not None:
            if asked is None and (self.expression or "").strip().lower() in imagery.INDICES:
                return [(-1.0, 1.0)] * count
            return asked
        indexes, _ = self.plan(item)
        kinds = {str(b.get("data_type")) for b in item.raster_bands}
        if kinds == {"uint8"}:
            return None  # bytes are drawn as they are
        stats = [
            item.raster_bands[i - 1].get("statistics") if i <= len(item.raster_bands) else None
            for i in indexes
        ]
        if all(s and "percentile_2" in s for s in stats):
            return [
                (float(s["percentile_2"]), float(s["percentile_98"]) + 1e-6)  # type: ignore[index]
                for s in stats
            ]
        return None


@lru_cache(maxsize=256)
def _plan_cached(
    expression: str | None, wanted: tuple[str, ...], bands: tuple[tuple[tuple[str, Any], ...], ...]
) -> tuple[tuple[int, ...], imagery.Expression | None]:
    described = [dict(b) for b in bands]
    if expression is not None:
        parsed = imagery.Expression.parse(expression, described)
        return parsed.bands, parsed
    names = imagery.band_names(described)
    if not wanted:
        rgb = [names.get(c) for c in ("red", "green", "blue")]
        chosen = [i for i in rgb if i is not None] if all(rgb) else [1]
        return tuple(chosen), None
    missing = [w for w in wanted if w not in names]
    if missing:
        known = ", ".join(str(b["name"]) for b in described)
        msg = f"no band named {', '.join(missing)}; bands are {known}"
        raise InvalidInputError(msg)
    return tuple(names[w] for w in wanted), None


def _plan(
    expression: str | None, wanted: tuple[str, ...], bands: Sequence[dict[str, Any]]
) -> tuple[tuple[int, ...], imagery.Expression | None]:
    frozen = tuple(
        tuple(sorted((k, v) for k, v in b.items() if isinstance(v, str | float | int)))
        for b in bands
    )
    return _plan_cached(expression, wanted, frozen)


def _values(
    img: Any, indexes: tuple[int, ...], expr: imagery.Expression | None
) -> np.ma.MaskedArray:
    data: np.ma.MaskedArray = np.ma.asarray(img.array)
    if expr is None:
        return data
    return expr.evaluate({number: data[i] for i, number in enumerate(indexes)})


def _merge(result: np.ma.MaskedArray | None, layer: np.ma.MaskedArray) -> np.ma.MaskedArray:
    """Fill the masked pixels of ``result`` from ``layer`` (the mosaic, latest first)."""
    if result is None:
        return np.ma.asarray(layer.astype("float32") if layer.dtype.kind == "f" else layer.copy())
    holes = np.ma.getmaskarray(result).all(axis=0) & ~np.ma.getmaskarray(layer).any(axis=0)
    if holes.any():
        result[:, holes] = layer[:, holes]
    return result


def _read_tile(
    items: Iterable[Scene], style: Style, tile: tuple[str, int, int, int], *, web: bool
) -> tuple[np.ma.MaskedArray, Scene] | None:
    tms_id, z, x, y = tile
    tms = tile_matrix_set(tms_id)
    result: np.ma.MaskedArray | None = None
    first: Scene | None = None
    for item in items:
        indexes, expr = style.plan(item)
        path = item.web if web else item.data
        with Reader(str(path), tms=tms) as reader:
            try:
                if z >= reader.minzoom:
                    img = reader.tile(x, y, z, indexes=indexes)
                else:
                    # Coarser than the data: GDAL read a subset of the bands through a
                    # full-resolution window of the whole tile (16 s for a z6 tile of a
                    # 10 m scene); every band, then the subset, takes 0.05 s.
                    img = reader.tile(x, y, z)
                    img.array = img.array[[i - 1 for i in indexes]]
            except TileOutsideBounds:
                continue
        layer = _values(img, indexes, expr)
        first = first or item
        result = _merge(result, layer)
        if not np.ma.getmaskarray(result).all(axis=0).any():
            break
    if result is None or first is None:
        return None
    return result, first


def map_tile(
    items: Sequence[Scene], style: Style, tile: tuple[str, int, int, int], fmt: str
) -> bytes | None:
    """A map tile (``png``, ``webp``, ``jpeg``) of the mosaic of ``items`` (latest first);
    None when no item covers the tile."""
    if items:
        indexes, expr = style.plan(items[0])
        count = len(expr.trees) if expr is not None else len(indexes)
        if count not in {1, 3}:
            msg = (
                f"a map tile shows 1 band (grey or a colormap) or 3 (red, green, blue), not {count}"
            )
            raise InvalidInputError(msg)
    with rasterstore.reading():
        read = _read_tile(items, style, tile, web=True)
    if read is None:
        return None
    values, first = read
    lut = imagery.colormap(style.colormap) if style.colormap else None
    scaled = imagery.to_bytes(values, style.ranges(first, values.shape[0]))
    pixels = imagery.rgba(scaled, lut)
    if fmt == "png":
        return imagery.png(pixels)
    driver = "JPEG" if fmt in {"jpeg", "jpg"} else "WEBP"
    channels = np.ascontiguousarray(np.moveaxis(pixels[..., :3], -1, 0))
    return bytes(render(channels, pixels[..., 3], img_format=driver))


def value_tile(
    items: Sequence[Scene], style: Style, tile: tuple[str, int, int, int]
) -> bytes | None:
    """A float32 GeoTIFF tile of the values (bands or expression) from the native COGs."""
    with rasterstore.reading():
        read = _read_tile(items, style, tile, web=False)
    if read is None:
        return None
    values, _first = read
    tms_id, z, x, y = tile
    tms = tile_matrix_set(tms_id)
    bounds = tms.xy_bounds(morecantile.Tile(x, y, z))
    return geotiff(values, tuple(bounds), CRS.from_user_input(tms.crs.to_wkt()))


def coverage(
    items: Sequence[Scene],
    style: Style,
    bbox: tuple[float, float, float, float] | None,
    bbox_crs: str,
    *,
    width: int | None = None,
    height: int | None = None,
) -> bytes:
    """A float32 GeoTIFF subset of the mosaic of ``items`` (latest first) over ``bbox``
    (in ``bbox_crs``), in the newest item's CRS and resolution unless a size is asked.

    Raises:
        NotFoundError: no item covers the box.
        InvalidInputError: a box outside the data, or a subset larger than
            :data:`MAX_PIXELS`.
    """
    if not items:
        raise NotFoundError("no scene matches the request")
    with rasterstore.reading():
        return _coverage(items, style, bbox, bbox_crs, width=width, height=height)


def _coverage(
    items: Sequence[Scene],
    style: Style,
    bbox: tuple[float, float, float, float] | None,
    bbox_crs: str,
    *,
    width: int | None,
    height: int | None,
) -> bytes:
    first = items[0]
    with rasterio.open(first.data) as src:
        crs, native = src.crs, src.bounds
        res_x, res_y = src.res
    if bbox is None:
        box = tuple(native)
        box_crs = crs
    else:
        box, box_crs = bbox, CRS.from_user_input(bbox_crs)
    out_bounds = rasterio.warp.transform_bounds(box_crs, crs, *box, densify_pts=21)
    if width is None and height is None:
        width = max(1, math.ceil((out_bounds[2] - out_bounds[0]) / res_x))
        height = max(1, math.ceil((out_bounds[3] - out_bounds[1]) / res_y))
    elif width is None or height is None:
        aspect = (out_bounds[2] - out_bounds[0]) / max(out_bounds[3] - out_bounds[1], 1e-12)
        width = width or max(1, round((height or 1) * aspect))
        height = height or max(1, round(width / aspect))
    if width * height > MAX_PIXELS:
        msg = (
            f"the subset would be {width} x {height} pixels, more than {MAX_PIXELS:,}; "
            "ask for a smaller bbox or give width/height (scale-size)"
        )
        raise InvalidInputError(msg)
    result: np.ma.MaskedArray | None = None
    for item in items:
        indexes, expr = style.plan(item)
        with Reader(str(item.data)) as reader:
            try:
                img = reader.part(
                    out_bounds,
                    dst_crs=crs,
                    bounds_crs=crs,
                    width=width,
                    height=height,
                    indexes=indexes,
                )
            except TileOutsideBounds:
                continue
        result = _merge(result, np.ma.asarray(_values(img, indexes, expr).astype("float32")))
        if not np.ma.getmaskarray(result).all(axis=0).any():
            break
    if result is None or np.ma.getmaskarray(result).all():
        raise InvalidInputError("the bbox does not overlap the data of any scene")
    return geotiff(result, tuple(out_bounds), crs, band_names=_output_names(style, first))


def _output_names(style: Style, item: Scene) -> list[str]:
    indexes, expr = style.plan(item)
    if expr is not None:
        return (
            [f"expression{i + 1}" for i in range(len(expr.trees))]
            if len(expr.trees) > 1
            else [expr.text]
        )
    return [str(item.bands[i - 1].get("name")) for i in indexes]


def geotiff(
    values: np.ma.MaskedArray,
    bounds: tuple[float, ...],
    crs: CRS,
    band_names: Sequence[str] = (),
) -> bytes:
    """A float32 GeoTIFF (nodata NaN) of masked values on ``bounds``."""
    data: npt.NDArray[np.float32] = np.ma.filled(values.astype("float32"), np.nan)
    count, height, width = data.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": "float32",
        "crs": crs,
        "nodata": float("nan"),
        "compress": "deflate",
        "predictor": 3,
        "tiled": width >= 256 and height >= 256,
        "transform": from_bounds(*bounds, width, height),
    }
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
            for i, name in enumerate(band_names, start=1):
                dst.set_band_description(i, name)
        return bytes(memory.read())
