"""Byte-stable writers: zipped Shapefile, GeoJSON (RFC 7946), GeoPackage, CSV, zip.

Determinism measures: the DBF header date comes from ``DBF_DATE_LAST_UPDATE``,
GeoPackage timestamps from GDAL's ``OGR_CURRENT_DATE``, zip members carry a fixed
date, order and permissions, and text is written with explicit encodings and ``\\n``.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyogrio
import shapely
from pyogrio.raw import write as ogr_write
from pyproj import CRS
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from spatial.samples.city import Parcels
from spatial.samples.constants import (
    CRS_GEOGRAPHIC,
    CRS_PROJECTED,
    FILE_DATE,
    GPKG_CURRENT_DATE,
    ZIP_DATE_TIME,
)

SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
PARCEL_FIELDS = ("DKBM", "DLBM", "DLMC", "QSXZ", "QLR", "XZQDM", "XZQMC", "DJRQ", "TBMJ")
COORDINATE_DECIMALS = 7

Project = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


def zip_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A zip archive with fixed timestamps and permissions, members in the given order.

    Args:
        members: (name, content) pairs.

    Returns:
        The archive bytes.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data, compresslevel=6)
    return buffer.getvalue()


def write_parcels_zip(parcels: Parcels, target: Path, work: Path) -> None:
    """Write one cadastre edition as a GBK-encoded Shapefile zipped at the archive root.

    Args:
        parcels: the edition.
        target: the ``.zip`` to write; members are named after it.
        work: an empty scratch folder for the Shapefile parts.
    """
    stem = target.stem
    shp = work / f"{stem}.shp"
    ogr_write(
        str(shp),
        shapely.to_wkb(parcels.geometry),
        [
            parcels.dkbm,
            parcels.dlbm,
            parcels.dlmc,
            parcels.qsxz,
            parcels.qlr,
            parcels.xzqdm,
            parcels.xzqmc,
            parcels.djrq.astype("datetime64[D]"),
            parcels.tbmj,
        ],
        list(PARCEL_FIELDS),
        layer=stem,
        driver="ESRI Shapefile",
        geometry_type="Polygon",
        crs=CRS.from_epsg(CRS_PROJECTED).to_wkt(),
        encoding="GBK",
        layer_options={"DBF_DATE_LAST_UPDATE": FILE_DATE},
    )
    members = [(f"{stem}{ext}", (work / f"{stem}{ext}").read_bytes()) for ext in SHAPEFILE_PARTS]
    target.write_bytes(zip_bytes(members))


def lonlat_geometry(geometry: BaseGeometry, project: Project) -> BaseGeometry:
    """Project a geometry to lon/lat, rounded to 7 decimals (about 1 cm).

    Args:
        geometry: a geometry in the source CRS.
        project: maps an (N, 2) array of source coordinates to lon/lat.

    Returns:
        The projected geometry.
    """

    def transform(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(np.round(project(coords), COORDINATE_DECIMALS), dtype=np.float64)

    result: BaseGeometry = shapely.transform(geometry, transform)
    return result


def geojson_text(name: str, features: Sequence[tuple[dict[str, Any], BaseGeometry]]) -> str:
    """An RFC 7946 FeatureCollection (lon/lat, counter-clockwise exteriors), one feature a line.

    Args:
        name: collection name (the ``name`` member GDAL uses as the layer name).
        features: (properties, lon/lat geometry) pairs.

    Returns:
        The document text.
    """
    lines = []
    for properties, geometry in features:
        oriented = shapely.orient_polygons(geometry, exterior_cw=False)
        feature = {
            "type": "Feature",
            "properties": properties,
            "geometry": mapping(oriented),
        }
        lines.append(json.dumps(feature, ensure_ascii=False, sort_keys=False))
    body = ",\n".join(lines)
    head = json.dumps({"type": "FeatureCollection", "name": name}, ensure_ascii=False)[:-1]
    return f'{head}, "features": [\n{body}\n]}}\n'


def csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """CSV text with ``\\n`` line ends and minimal quoting.

    Args:
        header: column names.
        rows: values (formatted with ``str``).

    Returns:
        The text.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@contextmanager
def gdal_option(name: str, value: str) -> Iterator[None]:
    """Set a GDAL config option for pyogrio's GDAL, restoring the old value afterwards.

    Args:
        name: option name.
        value: value while the block runs.

    Yields:
        Nothing.
    """
    old = pyogrio.get_gdal_config_option(name)
    pyogrio.set_gdal_config_options({name: value})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({name: old})


GpkgLayer = tuple[str, str, Sequence[BaseGeometry], dict[str, npt.NDArray[Any]]]
"""(layer name, geometry type, lon/lat geometries, columns)."""


def write_gpkg(target: Path, layers: Sequence[GpkgLayer]) -> None:
    """Write a GeoPackage in EPSG:4490 with fixed internal timestamps.

    Args:
        target: the ``.gpkg`` to create (must not exist).
        layers: the layers in order.
    """
    with gdal_option("OGR_CURRENT_DATE", GPKG_CURRENT_DATE):
        for name, geometry_type, geometries, columns in layers:
            ogr_write(
                str(target),
                shapely.to_wkb(np.asarray(geometries, dtype=object)),
                list(columns.values()),
                list(columns),
                layer=name,
                driver="GPKG",
                geometry_type=geometry_type,
                crs=f"EPSG:{CRS_GEOGRAPHIC}",
            )
