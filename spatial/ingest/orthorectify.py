"""RPC scenes onto a map grid: orthorectification at ingest with the platform's DEM.

Gaofen (GF-1/2/6) and ZY-3 products are delivered as images with rational polynomial
coefficients (RPCs: embedded TIFF tags, an ``.RPB`` or ``_rpc.txt`` sidecar, which GDAL
reads alike) and no geotransform. The ingest warps such a file with GDAL's RPC
transformer and the heights of an elevation collection (``--dem``, default: the only one
in the catalog) into a GeoTIFF in its work folder, which then takes the usual path
(checks, COG, item). Choices:

- **heights**: the DEM items under the scene (:mod:`spatial.ingest.heights`), their
  native COGs read where the raster store keeps them (a local file or ``/vsis3/``);
  ``RPC_DEM_INTERPOLATION=bilinear``. The DEM's heights are used as they are (no
  geoid-to-ellipsoid shift unless the DEM declares a vertical CRS; GDAL applies that one).
  DEM cells without data take the DEM's mean height (``RPC_DEM_MISSING_VALUE``).
- **grid**: the DEM's CRS when it is projected; else the CGCS2000 3-degree Gauss-Krüger
  zone of the scene's centre (EPSG:4534-4554, central meridian 75°E-135°E) inside China's
  longitudes, else the WGS 84 UTM zone. The resolution and extent are GDAL's suggestion
  for the footprint (``calculate_default_transform``: what ``gdalwarp`` picks).
- **warp**: bilinear (nearest for a categorical file), the exact transformer (no linear
  approximation between sampled points: what ``gdalwarp`` does whenever ``RPC_DEM`` is
  given, as the DEM's relief is not linear; rasterio's ``reproject`` does the same), all
  cores. Pixels outside the image are nodata: the file's
  nodata, else 0 (integers) or the type's lowest value (floats: the catalog has no NaN).
- **record**: the item says how it was made (``processing:lineage``,
  ``processing:software``) and keeps the RPC model (``spatial:rpc``), so the original
  geometry is not lost.

Refusals say what is wrong: no elevation collection (ingest one with ``--kind
elevation``, or name one with ``--dem``), an unknown ``--dem``, corrupt coefficients,
a footprint outside the DEM.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.rpc import RPC
from rasterio.transform import RPCTransformer
from rasterio.warp import calculate_default_transform, reproject

from spatial import rasterstore
from spatial.errors import InvalidInputError
from spatial.ingest import containers
from spatial.ingest.raster_checks import has_colormap

ERROR_THRESHOLD = 0.0
"""Pixels: the approximation error allowed; none (gdalwarp's default with ``RPC_DEM``)."""
WARP_MEMORY_MB = 256
_EDGE = 11
"""Points along each image edge for the footprint."""


@dataclass(frozen=True)
class RpcScene:
    """A file georeferenced by RPCs only, with its checked model and footprint."""

    path: Path
    rpcs: RPC
    width: int
    height: int
    footprint: shapely.Polygon
    """Lon/lat outline at the model's mean height."""


@dataclass(frozen=True)
class Dem:
    """The heights an orthorectification uses."""

    collection: str
    item: str
    gdal_path: str
    crs_wkt: str
    mean: float
    coverage: float
    """Share of the scene's footprint inside the DEM item's footprint."""


def rpc_only(path: Path) -> bool:
    """Whether a file is georeferenced by RPCs alone (no geotransform, no CRS, no GCPs)."""
    if not path.is_file():
        return False
    try:
        with _quiet(), rasterio.open(path) as src:
            return (
                src.rpcs is not None
                and src.crs is None
                and src.transform.is_identity
                and not src.gcps[0]
            )
    except RasterioError:
        return False  # the checks name what is wrong with it


def read_scene(path: Path) -> RpcScene:
    """The file's RPC model, checked, and its footprint.

    Raises:
        InvalidInputError: coefficients missing, not finite, or that do not map the image
            onto the ground and back (corrupt).
    """
    name = path.name
    try:
        with _quiet(), rasterio.open(path) as src:
            rpcs, width, height = src.rpcs, src.width, src.height
    except RasterioError as exc:
        raise InvalidInputError(f"{name}: cannot be read as a raster: {exc}") from None
    if rpcs is None:
        raise InvalidInputError(f"{name}: the file has no RPCs")
    _check_model(name, rpcs)
    ground = _footprint_points(rpcs, width, height)
    if ground is None:
        raise InvalidInputError(
            f"{name}: the RPC coefficients are corrupt: the image corners do not map to "
            "places on the ground"
        )
    lon, lat = ground
    outline = shapely.Polygon(np.column_stack([lon, lat]))
    if not outline.is_valid or outline.area <= 0:
        raise InvalidInputError(
            f"{name}: the RPC coefficients are corrupt: the image's outline on the ground "
            "folds over itself"
        )
    return RpcScene(path, rpcs, width, height, outline)


def _check_model(name: str, rpcs: RPC) -> None:
    offsets = (rpcs.lat_off, rpcs.long_off, rpcs.height_off, rpcs.line_off, rpcs.samp_off)
    scales = (rpcs.lat_scale, rpcs.long_scale, rpcs.height_scale, rpcs.line_scale,
              rpcs.samp_scale)  # fmt: skip
    coefficients = (
        *rpcs.line_num_coeff, *rpcs.line_den_coeff, *rpcs.samp_num_coeff, *rpcs.samp_den_coeff
    )  # fmt: skip
    if not all(math.isfinite(v) for v in (*offsets, *scales, *coefficients)):
        raise InvalidInputError(f"{name}: the RPC coefficients are corrupt (not finite numbers)")
    if any(len(c) != 20 for c in (rpcs.line_num_coeff, rpcs.line_den_coeff,
                                  rpcs.samp_num_coeff, rpcs.samp_den_coeff)):  # fmt: skip
        raise InvalidInputError(f"{name}: the RPC coefficients are corrupt (20 per polynomial)")
    if any(s == 0 for s in scales) or not any(rpcs.line_den_coeff) or not any(rpcs.samp_den_coeff):
        raise InvalidInputError(
            f"{name}: the RPC coefficients are corrupt (a zero scale or denominator)"
        )
    if not (-90 <= rpcs.lat_off <= 90 and -180 <= rpcs.long_off <= 360):
        raise InvalidInputError(
            f"{name}: the RPC coefficients are corrupt: the scene centre "
            f"({rpcs.long_off:g}, {rpcs.lat_off:g}) is not a longitude and latitude"
        )


def _footprint_points(rpcs: RPC, width: int, height: int) -> tuple[Any, Any] | None:
    """The image outline on the ground at the model's mean height, checked by mapping it
    back to pixels (a corrupt model does not invert)."""
    steps = np.linspace(0.0, 1.0, _EDGE)
    cols = np.concatenate([steps * width, np.full(_EDGE, width), (1 - steps) * width,
                           np.zeros(_EDGE)])  # fmt: skip
    rows = np.concatenate([np.zeros(_EDGE), steps * height, np.full(_EDGE, height),
                           (1 - steps) * height])  # fmt: skip
    zs = np.full(cols.shape, rpcs.height_off)
    try:
        with RPCTransformer(rpcs) as transformer:
            lon, lat = transformer.xy(rows, cols, zs=zs, offset="ul")
            lon, lat = np.asarray(lon, "float64"), np.asarray(lat, "float64")
            if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
                return None
            if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 360):
                return None
            back_rows, back_cols = transformer.rowcol(lon, lat, zs=zs, op=lambda v: v)
    except (RasterioError, ValueError, RuntimeError):
        return None
    error = np.hypot(np.asarray(back_rows) - rows, np.asarray(back_cols) - cols)
    if not np.all(np.isfinite(error)) or float(error.max()) > 1.0:
        return None
    return lon, lat


def target_crs(dem: Dem, scene: RpcScene) -> CRS:
    """The DEM's CRS when projected; else the Gauss-Krüger (CGCS2000, 3°) or UTM zone of
    the scene's centre."""
    crs = CRS.from_wkt(dem.crs_wkt)
    if crs.is_projected:
        return crs
    centre = scene.footprint.centroid
    lon, lat = ((centre.x + 180) % 360) - 180, centre.y
    if 73.5 <= lon < 136.5 and lat >= 0:
        return CRS.from_epsg(4534 + round((lon - 75) / 3))
    zone = min(60, int((lon + 180) // 6) + 1)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@dataclass(frozen=True)
class Grid:
    """Where the orthorectified image goes."""

    crs: CRS
    transform: Any
    width: int
    height: int


def grid(scene: RpcScene, dem: Dem) -> Grid:
    """GDAL's suggested grid for the scene in :func:`target_crs` (``gdalwarp``'s own)."""
    crs = target_crs(dem, scene)
    with rasterstore.reading():
        transform, width, height = calculate_default_transform(
            CRS.from_epsg(4326), crs, scene.width, scene.height, rpcs=scene.rpcs,
            **_rpc_options(dem),
        )  # fmt: skip
    if not width or not height:
        raise InvalidInputError(f"{scene.path.name}: the RPCs give an empty footprint")
    return Grid(crs, transform, int(width), int(height))


def _rpc_options(dem: Dem) -> dict[str, Any]:
    return {
        "RPC_DEM": dem.gdal_path,
        "RPC_DEM_INTERPOLATION": "bilinear",
        "RPC_DEM_MISSING_VALUE": repr(dem.mean),
    }


def orthorectify(scene: RpcScene, dem: Dem, target: Path) -> dict[str, Any]:
    """Warp the scene onto its map grid into the GeoTIFF ``target``; return the STAC
    properties that say how."""
    where = grid(scene, dem)
    with _quiet(), rasterio.open(scene.path) as src:
        categorical = has_colormap(src)
        floating = np.dtype(src.dtypes[0]).kind == "f"
        given = src.nodata if src.nodata is not None else (math.nan if floating else 0)
        nodata = containers.nodata_for(src.dtypes[0], given)
        profile = {
            "driver": "GTiff", "width": where.width, "height": where.height,
            "count": src.count, "dtype": src.dtypes[0], "crs": where.crs,
            "transform": where.transform, "nodata": nodata, "tiled": True,
            "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER",
        }  # fmt: skip
        resampling = Resampling.nearest if categorical else Resampling.bilinear
        bands = list(range(1, src.count + 1))
        with rasterio.open(target, "w", **profile) as dst, rasterstore.reading():
            reproject(
                rasterio.band(src, bands), rasterio.band(dst, bands),
                rpcs=src.rpcs, src_crs=CRS.from_epsg(4326), src_nodata=src.nodata,
                dst_crs=where.crs, dst_transform=where.transform, dst_nodata=nodata,
                resampling=resampling, num_threads=os.cpu_count() or 1,
                warp_mem_limit=WARP_MEMORY_MB, **_rpc_options(dem),
            )  # fmt: skip
            dst.descriptions = src.descriptions
            dst.colorinterp = src.colorinterp
            dst.scales, dst.offsets = src.scales, src.offsets
            if categorical:
                dst.write_colormap(1, src.colormap(1))
            dst.update_tags(**_tags(src.tags()))
    method = "nearest" if categorical else "bilinear"
    lineage = (
        f"orthorectified with RPCs and DEM {dem.collection}/{dem.item} (GDAL "
        f"{rasterio.__gdal_version__} RPC transformer, exact, {method}, onto "
        f"{where.crs.to_string()}); heights outside the DEM's "
        f"data: its mean {dem.mean:.1f} m"
    )
    return {
        "processing:lineage": lineage,
        "processing:software": {"GDAL": rasterio.__gdal_version__},
        "spatial:dem": f"{dem.collection}/{dem.item}",
        "spatial:rpc": scene.rpcs.to_dict(),
    }


def _tags(tags: dict[str, str]) -> dict[str, str]:
    """The file's tags without what described the unrectified image."""
    return {k: v for k, v in tags.items() if not k.startswith(("RPC", "AREA_OR_POINT"))}


@contextmanager
def _quiet() -> Iterator[None]:
    """An RPC image has no geotransform: rasterio warns that it is not georeferenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield
