"""CRSs as real files carry them: Esri ``.prj`` text written by ArcGIS and SuperMap for
Beijing 1954, Xi'an 1980 and CGCS2000 Gauss-Krüger zones, CRSs that match no EPSG code
(an unnamed datum on GRS80, a rounded scale factor, a city's own meridian), and areas of
use across the antimeridian. Each file is built here with known coordinates, ingested
through the real ingest into PostGIS, and the stored geometry is compared with pyproj."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pyogrio
import pytest
import rasterio
import rasterio.transform
import shapely
from psycopg import sql
from pyproj import CRS, Transformer

from spatial import crs as crs_mod
from spatial.errors import InvalidInputError
from spatial.ingest import raster_checks
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

KRASOVSKY = ("Krasovsky_1940", 6378245.0, 298.3)
IAG1975 = ("Xian_1980", 6378140.0, 298.257)
GRS80 = ("GRS_1980", 6378137.0, 298.257222101)
CGCS = ("CGCS2000", 6378137.0, 298.257222101)
LONLAT = [(111.95, 22.85), (112.0, 22.9), (112.05, 22.95), (112.1, 23.0), (111.9, 22.8)]
"""Points around Yunfu: in the 3-degree zone 37 (CM 111E) and the 6-degree zone 19."""
TIGHT = 1e-8
"""Degrees (about a millimetre): an exact conversion, or the very operation reported."""


def esri_tm(
    name: str,
    datum: str,
    spheroid: tuple[str, float, float],
    *,
    cm: float = 111.0,
    fe: float = 500000.0,
    k: float = 1.0,
    lat0: float = 0.0,
    fn: float = 0.0,
    gcs: str | None = None,
    projection: str = "Gauss_Kruger",
) -> str:
    """An Esri ``.prj`` of a Transverse Mercator CRS, as ArcGIS and SuperMap write it."""
    ellipsoid = f'SPHEROID["{spheroid[0]}",{spheroid[1]!r},{spheroid[2]!r}]'
    geogcs = (
        f'GEOGCS["{gcs or "GCS_" + datum.removeprefix("D_")}",DATUM["{datum}",{ellipsoid}],'
        'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]'
    )
    return (
        f'PROJCS["{name}",{geogcs},PROJECTION["{projection}"],'
        f'PARAMETER["False_Easting",{fe!r}],PARAMETER["False_Northing",{fn!r}],'
        f'PARAMETER["Central_Meridian",{cm!r}],PARAMETER["Scale_Factor",{k!r}],'
        f'PARAMETER["Latitude_Of_Origin",{lat0!r}],UNIT["Meter",1.0]]'
    )


def esri_geogcs(name: str, datum: str, spheroid: tuple[str, float, float]) -> str:
    ellipsoid = f'SPHEROID["{spheroid[0]}",{spheroid[1]!r},{spheroid[2]!r}]'
    return (
        f'GEOGCS["{name}",DATUM["{datum}",{ellipsoid}],PRIMEM["Greenwich",0.0],'
        'UNIT["Degree",0.0174532925199433]]'
    )


# ArcGIS's own .prj files (the names are the Esri names of the EPSG codes).
BJ54_ZONE37 = esri_tm("Beijing_1954_3_Degree_GK_Zone_37", "D_Beijing_1954", KRASOVSKY, fe=37.5e6)
BJ54_CM111 = esri_tm("Beijing_1954_3_Degree_GK_CM_111E", "D_Beijing_1954", KRASOVSKY)
BJ54_6_ZONE19 = esri_tm("Beijing_1954_GK_Zone_19", "D_Beijing_1954", KRASOVSKY, fe=19.5e6)
XA80_ZONE37 = esri_tm("Xian_1980_3_Degree_GK_Zone_37", "D_Xian_1980", IAG1975, fe=37.5e6)
XA80_CM111 = esri_tm("Xian_1980_3_Degree_GK_CM_111E", "D_Xian_1980", IAG1975)
XA80_6_CM111 = esri_tm("Xian_1980_GK_CM_111E", "D_Xian_1980", IAG1975)
CGCS_CM111 = esri_tm(
    "CGCS2000_3_Degree_GK_CM_111E",
    "D_China_2000",
    CGCS,
    gcs="GCS_China_Geodetic_Coordinate_System_2000",
)
# SuperMap's Esri-style export: the PROJCS is named by the user, names spelled its way.
SM_BJ54 = esri_tm(
    "云浮城区",
    "D_BEIJING_1954",
    KRASOVSKY,
    gcs="GCS_BEIJING_1954",
    projection="Transverse_Mercator",
)
SM_XA80_ZONE19 = esri_tm("UserDefined", "D_Xian_1980", IAG1975, fe=19.5e6)
SM_BJ54_SHORT = esri_tm("UserDefined", "BJ54", KRASOVSKY, gcs="BJ54", fe=37.5e6)
SM_XA80_SHORT = esri_tm("UserDefined", "XA80", IAG1975, gcs="XA80")
SM_CGCS = esri_tm("UserDefined", "D_CGCS2000", CGCS, gcs="GCS_CGCS2000")
# Valid CRSs that match no EPSG code.
UNNAMED_GRS80 = esri_tm(
    "Custom_TM", "D_unknown", GRS80, gcs="GCS_unnamed", projection="Transverse_Mercator"
)
BNG_ROUNDED = esri_tm(
    "British_National_Grid",
    "D_OSGB_1936",
    ("Airy_1830", 6377563.396, 299.3249646),
    cm=-2.0,
    fe=400000.0,
    fn=-100000.0,
    k=0.9996013,
    lat0=49.0,
    gcs="GCS_OSGB_1936",
    projection="Transverse_Mercator",
)
"""EPSG:27700 with its scale factor 0.9996012717 rounded to 0.9996013."""
BJ54_CITY = esri_tm("Yunfu_City_1954", "D_Beijing_1954", KRASOVSKY, cm=112.25)
"""A city's own Beijing 1954 Transverse Mercator (central meridian 112°15'E)."""
NAD27 = esri_geogcs(
    "GCS_North_American_1927", "D_North_American_1927", ("Clarke_1866", 6378206.4, 294.9786982)
)
PULKOVO = esri_geogcs("GCS_Pulkovo_1942", "D_Pulkovo_1942", KRASOVSKY)


# --------------------------------------------------------------------------- helpers


def write_points(
    folder: Path, name: str, prj: str, xy: Sequence[tuple[float, ...]], *, gpkg: bool = False
) -> Path:
    """A point layer with exactly these coordinates and this CRS text (a Shapefile's
    hand-written ``.prj``, or a GeoPackage's spatial reference)."""
    frame = gpd.GeoDataFrame(
        {"code": [f"P{i}" for i in range(len(xy))]},
        geometry=[shapely.Point(*p) for p in xy],
        crs="EPSG:4326",  # replaced below by the CRS under test
    )
    if gpkg:
        path = folder / f"{name}.gpkg"
        pyogrio.write_dataframe(frame.set_crs(CRS.from_wkt(prj), allow_override=True), path)
        return path
    path = folder / f"{name}.shp"
    pyogrio.write_dataframe(frame, path)
    path.with_suffix(".prj").write_text(prj, encoding="utf-8")
    return path


def ingest(settings: Settings, path: Path, collection: str, **options: Any) -> dict[str, Any]:
    source = VectorSource(path=path, collection_id=collection, title=collection, **options)
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    return ingest_vector(url, source, settings, actor="pytest").report


def stored(url: str, collection: str, srid: int | None = None) -> tuple[int, np.ndarray]:
    """The layer's SRID and its point coordinates (x, y, z), in ``srid`` if given."""
    table = sql.Identifier("layers", collection)
    geom = sql.SQL("ST_Transform(geom, {})").format(sql.Literal(srid)) if srid else sql.SQL("geom")
    query = sql.SQL(
        "SELECT ST_SRID(geom), ST_X({g}), ST_Y({g}), ST_Z({g}) FROM {t} ORDER BY fid"
    ).format(g=geom, t=table)
    with psycopg.connect(url) as conn:
        rows = conn.execute(query).fetchall()
    return int(rows[0][0]), np.array([[r[1], r[2], np.nan if r[3] is None else r[3]] for r in rows])


def project(
    crs: str | int, lonlat: Sequence[tuple[float, float]], *, via: int
) -> list[tuple[float, float]]:
    """``lonlat`` (in the geographic CRS ``via``) projected into ``crs``, east and north."""
    t = Transformer.from_crs(via, CRS.from_user_input(crs), always_xy=True)
    x, y = t.transform(*np.array(lonlat).T)
    return list(zip(x.tolist(), y.tolist(), strict=True))


def loaded(url: str, collection: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"layers.{collection}",)
        ).fetchone()
    return bool(row and row[0])


# --------------------------------------------------------------------------- identification


IDENTIFIED = [
    ("arcgis_bj54_zone37", BJ54_ZONE37, 2413),
    ("arcgis_bj54_cm111", BJ54_CM111, 2434),
    ("arcgis_bj54_6deg_zone19", BJ54_6_ZONE19, 21419),
    ("arcgis_xa80_zone37", XA80_ZONE37, 2361),
    ("arcgis_xa80_cm111", XA80_CM111, 2382),
    ("arcgis_xa80_6deg_cm111", XA80_6_CM111, 2344),
    ("arcgis_cgcs2000_cm111", CGCS_CM111, 4546),
    ("supermap_bj54_user_name", SM_BJ54, 2434),
    ("supermap_xa80_6deg_zone19", SM_XA80_ZONE19, 2333),
    ("supermap_bj54_short_datum", SM_BJ54_SHORT, 2413),
    ("supermap_xa80_short_datum", SM_XA80_SHORT, 2382),
    ("supermap_cgcs2000", SM_CGCS, 4546),
    ("arcgis_gcs_bj54", esri_geogcs("GCS_Beijing_1954", "D_Beijing_1954", KRASOVSKY), 4214),
    ("supermap_gcs_xa80", esri_geogcs("GCS_XA80", "XA80", IAG1975), 4610),
    (
        "arcgis_gcs_cgcs2000",
        esri_geogcs("GCS_China_Geodetic_Coordinate_System_2000", "D_China_2000", CGCS),
        4490,
    ),
    ("nad27", NAD27, 4267),
]


@pytest.mark.parametrize(
    ("prj", "epsg"), [c[1:] for c in IDENTIFIED], ids=[c[0] for c in IDENTIFIED]
)
def test_prj_text_is_identified(prj: str, epsg: int) -> None:
    found = crs_mod.identify(prj)
    assert found.epsg == epsg, (found, CRS.from_epsg(epsg).name)
    assert re.match(
        r"PROJ identification \(confidence (70|90|100)%\)|Gauss-Kruger parameters",
        found.identified_by,
    )


def test_the_parameter_fallback_catches_names_proj_does_not_know() -> None:
    # PROJ gives these 60% at best; the datum name, ellipsoid and parameters say which.
    for prj, epsg in ((SM_BJ54_SHORT, 2413), (SM_XA80_SHORT, 2382), (SM_CGCS, 4546)):
        assert not CRS(prj).list_authority(auth_name="EPSG", min_confidence=crs_mod.CONFIDENCE)
        found = crs_mod.identify(prj)
        assert (found.epsg, found.identified_by.split(" (")[0]) == (epsg, "Gauss-Kruger parameters")
    # ...but not an unknown datum that merely has the ellipsoid of one.
    krasovsky = esri_tm("x", "D_unknown", KRASOVSKY, gcs="GCS_unknown")
    assert crs_mod.identify(krasovsky).epsg is None


@pytest.mark.parametrize(
    "prj", [UNNAMED_GRS80, BNG_ROUNDED, BJ54_CITY], ids=["grs80", "bng", "city"]
)
def test_crs_matching_no_epsg_code_is_kept_as_given(prj: str) -> None:
    found = crs_mod.identify(prj)
    assert found.epsg is None and found.wkt == prj and found.identified_by == ""
    assert not CRS(prj).list_authority(auth_name="EPSG", min_confidence=crs_mod.CONFIDENCE)


def test_gauss_kruger_series_match_the_epsg_database() -> None:
    for family in crs_mod.GAUSS_KRUGER:
        for width, zones in ((3, range(25, 46)), (6, range(13, 24))):
            for zone in zones:
                lon0 = zone * 3 if width == 3 else zone * 6 - 3
                for prefixed in (True, False):
                    code = family.code(width, zone, prefixed=prefixed)
                    assert code is not None
                    crs = CRS.from_epsg(code)
                    params = {p.name: p.value for p in crs.coordinate_operation.params}
                    false_easting = zone * 1e6 + 5e5 if prefixed else 5e5
                    assert not crs.is_deprecated
                    assert crs.geodetic_crs.to_epsg() == family.geographic, code
                    assert (params["Longitude of natural origin"], params["False easting"]) == (
                        lon0,
                        false_easting,
                    ), code
                    assert params["Scale factor at natural origin"] == 1.0


def test_areas_across_the_antimeridian_wrap() -> None:
    nad27, pulkovo = crs_mod.info(4267), crs_mod.info(4284)
    assert nad27.area[0] > nad27.area[2] and pulkovo.area[0] > pulkovo.area[2]
    lon = np.array([-97.7, -170.0, 175.0, 10.0, 100.0])
    lat = np.array([30.3, 60.0, 60.0, 50.0, 60.0])
    assert crs_mod.outside_area(nad27, lon, lat).tolist() == [False, False, False, True, True]
    assert crs_mod.outside_area(pulkovo, lon, lat).tolist() == [True, False, False, True, False]
    assert crs_mod.area_overlaps((-100.0, 30.0, -90.0, 40.0), nad27.area)
    assert crs_mod.area_overlaps((170.0, 50.0, 179.0, 60.0), nad27.area)
    assert not crs_mod.area_overlaps((0.0, 30.0, 10.0, 40.0), nad27.area)
    # The swapped-axes hint still sees into a wrapped area.
    message = crs_mod.diagnose_extent(nad27, (30.0, -98.0, 31.0, -97.0))
    assert "latitude and longitude are swapped" in message


# --------------------------------------------------------------------------- ingest


CHINESE = [
    # (id, prj, EPSG code the file is identified as, zone prefix in the coordinates?)
    ("arcgis_bj54_zone37", BJ54_ZONE37, 2413),
    ("arcgis_xa80_cm111", XA80_CM111, 2382),
    ("arcgis_bj54_6deg_zone19", BJ54_6_ZONE19, 21419),
    ("supermap_bj54_user_name", SM_BJ54, 2434),
    ("supermap_xa80_6deg_zone19", SM_XA80_ZONE19, 2333),
    ("supermap_bj54_short_datum", SM_BJ54_SHORT, 2413),
    ("arcgis_cgcs2000_cm111", CGCS_CM111, 4546),
]


@pytest.mark.parametrize(("prj", "epsg"), [c[1:] for c in CHINESE], ids=[c[0] for c in CHINESE])
def test_chinese_gauss_kruger_files_load_losslessly_where_they_belong(
    prj: str, epsg: int, tmp_path: Path, settings: Settings, database_url: str
) -> None:
    geographic = CRS.from_epsg(epsg).geodetic_crs.to_epsg()
    assert geographic in {4214, 4610, 4490}
    xy = project(epsg, LONLAT, via=geographic)
    collection = f"prj_{epsg}"
    report = ingest(settings, write_points(tmp_path, "parcels", prj, xy), collection)
    assert report["crs"] == f"EPSG:{epsg}" and "transformation" not in report
    assert report["crs_identified_by"]
    srid, coords = stored(database_url, collection)
    # Identified: GDAL's WKB as read, so the coordinates are the file's, bit for bit.
    assert srid == epsg and coords[:, :2].tolist() == [list(p) for p in xy]
    _, lonlat = stored(database_url, collection, geographic)
    np.testing.assert_allclose(lonlat[:, :2], LONLAT, rtol=0, atol=TIGHT)


def test_unnamed_datum_on_grs80_is_transformed_to_cgcs2000(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    source = CRS(UNNAMED_GRS80)
    xy = project(UNNAMED_GRS80, LONLAT, via=4490)
    xyz = [(x, y, 40.0 + i) for i, (x, y) in enumerate(xy)]
    report = ingest(settings, write_points(tmp_path, "grs80", UNNAMED_GRS80, xyz), "prj_grs80")
    move = report["transformation"]
    assert report["crs"] == "EPSG:4490" and report["crs_identified_by"] is None
    assert move["source_crs"]["name"] == "Custom_TM" and move["target_crs"] == "EPSG:4490"
    assert "Ballpark" in move["operation"] and move["ballpark"] is True
    assert move["accuracy_m"] is None  # PROJ cannot say how far apart the datums are
    assert "+proj=tmerc" in move["proj"] and "+lon_0=111" in move["proj"]
    assert any("ballpark" in note for note in report["notes"])
    srid, coords = stored(database_url, "prj_grs80")
    expected = np.column_stack(
        Transformer.from_crs(source, 4490, always_xy=True).transform(*np.array(xy).T)
    )
    assert srid == 4490
    np.testing.assert_allclose(coords[:, :2], expected, rtol=0, atol=TIGHT)
    np.testing.assert_allclose(coords[:, :2], LONLAT, rtol=0, atol=TIGHT)
    assert coords[:, 2].tolist() == [z for _, _, z in xyz]  # heights are not the CRS's: kept


def test_rounded_scale_factor_is_transformed_exactly_to_its_datum(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    lonlat = [(-0.1276, 51.5072), (-2.2426, 53.4808), (-3.1883, 55.9533)]
    xy = project(27700, lonlat, via=4277)
    report = ingest(settings, write_points(tmp_path, "bng", BNG_ROUNDED, xy), "prj_bng")
    move = report["transformation"]
    assert report["crs"] == "EPSG:4277" and move["target_crs"] == "EPSG:4277"
    assert move["accuracy_m"] == 0.0 and move["ballpark"] is False
    assert "+k=0.9996013" in move["proj"]
    srid, coords = stored(database_url, "prj_bng")
    expected = np.column_stack(
        Transformer.from_crs(CRS(BNG_ROUNDED), 4277, always_xy=True).transform(*np.array(xy).T)
    )
    assert srid == 4277
    np.testing.assert_allclose(coords[:, :2], expected, rtol=0, atol=TIGHT)
    # The rounding itself moves points by millimetres (about 3e-8 of their distance from
    # the central meridian): the data lands where EPSG:27700 would put it.
    np.testing.assert_allclose(coords[:, :2], lonlat, rtol=0, atol=1e-6)


def test_a_citys_own_meridian_in_a_geopackage_is_kept_in_beijing_1954(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    xy = project(BJ54_CITY, LONLAT, via=4214)
    path = write_points(tmp_path, "city", BJ54_CITY, xy, gpkg=True)
    report = ingest(settings, path, "prj_city")
    move = report["transformation"]
    assert report["crs"] == "EPSG:4214" and move["accuracy_m"] == 0.0 and not move["ballpark"]
    assert "+lon_0=112.25" in move["proj"]
    srid, coords = stored(database_url, "prj_city")
    assert srid == 4214
    np.testing.assert_allclose(coords[:, :2], LONLAT, rtol=0, atol=TIGHT)


def test_polygons_in_a_crs_without_code_keep_their_shape(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    cells = [shapely.box(112.0 + i * 0.001, 22.9, 112.001 + i * 0.001, 22.901) for i in range(4)]
    to_city = Transformer.from_crs(4214, CRS(BJ54_CITY), always_xy=True)
    projected = [
        shapely.transform(c, lambda p: np.column_stack(to_city.transform(*p.T))) for c in cells
    ]
    frame = gpd.GeoDataFrame({"dkbm": ["a", "b", "c", "d"]}, geometry=projected, crs="EPSG:4326")
    path = tmp_path / "cells.shp"
    pyogrio.write_dataframe(frame, path)
    path.with_suffix(".prj").write_text(BJ54_CITY, encoding="utf-8")
    report = ingest(settings, path, "prj_cells", key="dkbm")
    assert report["features_loaded"] == 4 and report["crs"] == "EPSG:4214"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT dkbm, ST_AsBinary(geom) FROM layers.prj_cells ORDER BY fid"
        ).fetchall()
    for cell, (_, wkb) in zip(cells, rows, strict=True):
        got = shapely.from_wkb(bytes(wkb))
        assert shapely.equals_exact(
            shapely.normalize(got), shapely.normalize(cell), tolerance=TIGHT
        )


def test_areas_across_the_antimeridian_load(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    texas = [(-97.74, 30.27), (-95.37, 29.76), (-96.8, 32.78)]
    report = ingest(settings, write_points(tmp_path, "nad27", NAD27, texas), "prj_nad27")
    assert report["crs"] == "EPSG:4267" and report["features_loaded"] == 3
    assert stored(database_url, "prj_nad27")[1][:, :2].tolist() == [list(p) for p in texas]
    russia = [(37.62, 55.75), (158.65, 53.02), (-173.0, 65.0)]  # Moscow, Kamchatka, Chukotka
    report = ingest(settings, write_points(tmp_path, "pulkovo", PULKOVO, russia), "prj_pulkovo")
    assert report["crs"] == "EPSG:4284" and report["features_loaded"] == 3


@pytest.mark.parametrize(("epsg", "west", "north"), [(4267, -98.0, 31.0), (4284, 170.0, 60.0)])
def test_a_raster_in_a_crs_across_the_antimeridian_passes_the_area_check(
    epsg: int, west: float, north: float, tmp_path: Path
) -> None:
    path = tmp_path / f"{epsg}.tif"
    profile = {
        "driver": "GTiff",
        "width": 16,
        "height": 16,
        "count": 1,
        "dtype": "uint8",
        "crs": CRS.from_epsg(epsg).to_wkt(),
        "transform": rasterio.transform.from_origin(west, north, 0.01, 0.01),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 16, 16), 7, dtype=np.uint8))
    checked = raster_checks.check_file(path, raster_checks.Limits())
    assert checked.crs_code == f"EPSG:{epsg}"
    profile["transform"] = rasterio.transform.from_origin(
        10.0 - 180 * (epsg == 4284), -40.0, 0.01, 0.01
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 16, 16), 7, dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="outside the area of use of its CRS"):
        raster_checks.check_file(path, raster_checks.Limits())


# --------------------------------------------------------------------------- refusals


def test_supermap_false_easting_without_the_prefix_the_coordinates_carry(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    xy = project(2413, LONLAT, via=4214)  # x = 37 5xx xxx, but the .prj says 500 000
    path = write_points(tmp_path, "prefixed", SM_BJ54, xy)
    with pytest.raises(InvalidInputError) as err:
        ingest(settings, path, "prj_prefixed")
    message = str(err.value)
    assert "outside the area of use of EPSG:2434" in message
    assert re.search(r"zone prefix \(37\).*EPSG:2413 \(Beijing 1954, zone 37\)", message), message
    assert not loaded(database_url, "prj_prefixed")
    # The hint is the cure.
    report = ingest(settings, path, "prj_prefixed", crs="EPSG:2413")
    assert report["crs"] == "EPSG:2413"
    _, lonlat = stored(database_url, "prj_prefixed", 4214)
    np.testing.assert_allclose(lonlat[:, :2], LONLAT, rtol=0, atol=TIGHT)


def test_zone_prefix_in_the_prj_but_not_in_the_coordinates(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    xy = project(2382, LONLAT, via=4610)  # x = 5xx xxx, the .prj says 37 500 000
    path = write_points(tmp_path, "plain", XA80_ZONE37, xy)
    with pytest.raises(
        InvalidInputError,
        match=r"expects eastings with the zone prefix \(37xxxxxx\.x\) .* EPSG:2382",
    ):
        ingest(settings, path, "prj_plain")
    assert not loaded(database_url, "prj_plain")


def test_a_crs_without_code_still_refuses_what_lies_outside(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    prefixed = [(x + 37e6, y) for x, y in project(UNNAMED_GRS80, LONLAT, via=4490)]
    path = write_points(tmp_path, "prefixed", UNNAMED_GRS80, prefixed)
    with pytest.raises(InvalidInputError) as err:
        ingest(settings, path, "prj_outside")
    message = str(err.value)
    assert "outside the area of use of the CRS 'Custom_TM' (no EPSG code" in message
    assert "x carries a Gauss-Kruger zone prefix (37)" in message and "EPSG:4525" in message
    degrees = write_points(tmp_path, "degrees", UNNAMED_GRS80, LONLAT)
    with pytest.raises(InvalidInputError, match="these look like degrees"):
        ingest(settings, degrees, "prj_outside")
    # A city's Beijing 1954 system covers China (its datum's area), not the Indian Ocean.
    south = project(BJ54_CITY, [(112.0, -30.0), (112.1, -30.5)], via=4214)
    with pytest.raises(
        InvalidInputError, match=r"the CRS 'Yunfu_City_1954' .*lon 73\.62\.\.134\.77"
    ):
        ingest(settings, write_points(tmp_path, "south", BJ54_CITY, south), "prj_outside")
    assert not loaded(database_url, "prj_outside")
