"""The demo data generator: determinism, the up-to-date check and the content of every file.

No database is needed. The module builds the samples twice (into two temporary folders)
and reads them back with pyogrio, rasterio and the standard library.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import CRS

from spatial.samples import GENERATOR_VERSION, MANIFEST, OUTPUTS, SEED, BuildResult, build, floods
from spatial.samples import gps as gps_module

GPX_NS = {
    "g": "http://www.topografix.com/GPX/1/1",
    "x": "http://www.garmin.com/xmlschemas/TrackPointExtension/v2",
}
VEGETATED = ("01", "02", "03", "04")
BUILT_UP = ("05", "06", "07")


@dataclass(frozen=True)
class Built:
    """Two independent builds of the samples and what the first one reported."""

    first: BuildResult
    second: BuildResult
    steps: list[tuple[str, int, int]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Build the samples into two fresh folders with ``force=True``."""
    steps: list[tuple[str, int, int]] = []
    first = build(
        tmp_path_factory.mktemp("samples-a"),
        force=True,
        on_step=lambda name, index, total: steps.append((name, index, total)),
    )
    second = build(tmp_path_factory.mktemp("samples-b"), force=True)
    return Built(first, second, steps)


@pytest.fixture(scope="module")
def out(built: Built) -> Path:
    """The folder of the first build."""
    return built.first.out_dir


def _extent(out: Path) -> tuple[float, float, float, float]:
    """Lon/lat bounds of the districts (the city extent)."""
    doc = json.loads((out / "districts.geojson").read_text(encoding="utf-8"))
    coords = np.array(
        [xy for f in doc["features"] for ring in f["geometry"]["coordinates"] for xy in ring]
    )
    return (
        float(coords[:, 0].min()),
        float(coords[:, 1].min()),
        float(coords[:, 0].max()),
        float(coords[:, 1].max()),
    )


def _inside(extent: tuple[float, float, float, float], lon: float, lat: float) -> bool:
    return extent[0] <= lon <= extent[2] and extent[1] <= lat <= extent[3]


# --- building --------------------------------------------------------------------------


def test_builds_are_byte_identical(built: Built) -> None:
    a, b = built.first.out_dir, built.second.out_dir
    assert built.first.rebuilt and built.second.rebuilt
    assert list(built.first.files) == list(OUTPUTS)
    assert built.first.files == built.second.files
    for name in (*OUTPUTS, MANIFEST):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    generated = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    assert generated == {*OUTPUTS, MANIFEST}  # no scratch files left behind


def test_progress_steps(built: Built) -> None:
    total = len(OUTPUTS) + 1
    assert built.steps == [(name, index, total) for index, name in enumerate((*OUTPUTS, MANIFEST))]


def test_manifest(out: Path, built: Built) -> None:
    text = (out / MANIFEST).read_text(encoding="utf-8")
    manifest = json.loads(text)
    assert text == json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["seed"] == SEED
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == built.first.files[name]
        assert entry["size"] == (out / name).stat().st_size


def test_second_build_is_a_no_op(out: Path) -> None:
    before = {name: (out / name).stat().st_mtime_ns for name in (*OUTPUTS, MANIFEST)}
    calls: list[str] = []
    result = build(out, on_step=lambda name, index, total: calls.append(name))
    assert result.rebuilt is False
    assert calls == []
    assert result.out_dir == out
    assert set(result.files) == set(OUTPUTS)
    after = {name: (out / name).stat().st_mtime_ns for name in (*OUTPUTS, MANIFEST)}
    assert after == before


def test_damaged_folder_is_rebuilt(built: Built) -> None:
    folder = built.second.out_dir
    target = folder / "water_gauges.csv"
    target.write_text("damaged\n", encoding="utf-8")
    (folder / "gps" / "fleet.gpx").unlink()
    result = build(folder)
    assert result.rebuilt is True
    assert result.files == built.first.files
    assert target.read_bytes() == (built.first.out_dir / "water_gauges.csv").read_bytes()


# --- parcels ---------------------------------------------------------------------------


def test_parcel_zip_layout(out: Path) -> None:
    for year in (2025, 2026):
        stem = f"parcels_{year}"
        with zipfile.ZipFile(out / f"{stem}.zip") as archive:
            names = archive.namelist()
            assert names == [f"{stem}{ext}" for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg")]
            prj = archive.read(f"{stem}.prj").decode("ascii")
            assert prj.startswith('PROJCS["CGCS2000_3_Degree_GK_CM_111E"')
            assert archive.read(f"{stem}.cpg").decode("ascii").strip() == "GBK"
            assert all(i.date_time == (2025, 6, 30, 0, 0, 0) for i in archive.infolist())
        assert CRS.from_wkt(prj).to_epsg() == 4546


def test_parcels_2025(out: Path) -> None:
    info = pyogrio.read_info(out / "parcels_2025.zip")
    assert list(info["fields"]) == [
        "DKBM", "DLBM", "DLMC", "QSXZ", "QLR", "XZQDM", "XZQMC", "DJRQ", "TBMJ",
    ]  # fmt: skip
    assert info["ogr_types"][7] == "OFTDate"
    assert info["ogr_types"][8] == "OFTReal"
    df = pyogrio.read_dataframe(out / "parcels_2025.zip")
    assert df.crs.to_epsg() == 4546
    assert 19_000 <= len(df) <= 21_000
    assert df["DKBM"].is_unique
    assert all(re.fullmatch(r"\d{18}", k) for k in df["DKBM"])
    assert bool(shapely.is_valid(df.geometry.values).all())
    # Chinese text decoded from GBK, including GBK-only characters.
    assert {"耕地", "林地", "水田", "旱地", "乔木林地", "城镇住宅用地", "河流水面"} <= set(
        df["DLMC"]
    )
    assert all(re.fullmatch(r"\d{2}|\d{4}", c) for c in df["DLBM"])
    # First-level codes only for the farmland of 思劳镇 (an older rural survey).
    assert set(df.loc[df["DLBM"].str.len() == 2, "XZQMC"]) == {"思劳镇"}
    assert set(df.loc[df["DLBM"] == "01", "DLMC"]) == {"耕地"}
    assert {"黄堃", "李珺玥"} <= set(df["QLR"])
    assert any(q.endswith("村股份合作社") for q in df["QLR"])
    assert set(df["QSXZ"]) == {"国有", "集体"}
    assert set(df["XZQMC"]) == {"云城街道", "高峰街道", "河口街道", "安塘街道", "思劳镇"}
    assert len(set(df["XZQDM"])) == 5
    assert len({c[:2] for c in df["DLBM"]}) >= 8
    assert np.allclose(df["TBMJ"], df.geometry.area, atol=0.01)
    assert df["DJRQ"].min() >= np.datetime64("1998-01-01")
    assert df["DJRQ"].max() <= np.datetime64("2025-06-30")
    # Four-sided cells, one courtyard (a hole) and one parcel in two parts.
    kinds = Counter(df.geometry.geom_type)
    assert kinds["MultiPolygon"] == 1
    polygons = df.geometry[df.geometry.geom_type == "Polygon"]
    assert int((shapely.get_num_interior_rings(polygons.values) == 1).sum()) == 1
    four = shapely.get_num_coordinates(polygons.values) == 5
    assert four.mean() > 0.99
    # Built-up core, countryside outside: built-up share falls with distance.
    centre = df.geometry.union_all().centroid
    dist = df.geometry.centroid.distance(centre)
    built_up = df["DLBM"].str[:2].isin(BUILT_UP)
    assert (
        built_up[dist < dist.quantile(0.2)].mean() > 2 * built_up[dist > dist.quantile(0.8)].mean()
    )


def _read_changes(out: Path) -> list[dict[str, str]]:
    with (out / "parcel_changes.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["kind", "dkbm_2025", "dkbm_2026", "dlbm_2025", "dlbm_2026"]
        return list(reader)


def test_parcels_2026_match_change_list(out: Path) -> None:
    old = pyogrio.read_dataframe(out / "parcels_2025.zip").set_index("DKBM")
    new = pyogrio.read_dataframe(out / "parcels_2026.zip").set_index("DKBM")
    assert new.crs.to_epsg() == 4546
    assert list(new.columns) == list(old.columns)
    assert new.index.is_unique
    assert bool(shapely.is_valid(new.geometry.values).all())
    changes = _read_changes(out)
    by_kind: dict[str, list[dict[str, str]]] = {}
    for row in changes:
        by_kind.setdefault(row["kind"], []).append(row)
    assert set(by_kind) == {"split", "merged", "reattributed", "removed"}
    n = len(old)
    split_parents = {r["dkbm_2025"] for r in by_kind["split"]}
    merged_parents = {r["dkbm_2025"] for r in by_kind["merged"]}
    removed = {r["dkbm_2025"] for r in by_kind["removed"]}
    assert 0.02 * n < len(split_parents) < 0.04 * n
    assert 0.04 * n < len(by_kind["reattributed"]) < 0.06 * n
    assert 0.003 * n < len(removed) < 0.008 * n
    assert 3 <= len({r["dkbm_2026"] for r in by_kind["merged"]}) <= 30
    # The 2026 ids are exactly the 2025 ids with the changes applied.
    gone = split_parents | merged_parents | removed
    born = {r["dkbm_2026"] for r in by_kind["split"] + by_kind["merged"]}
    assert set(new.index) == (set(old.index) - gone) | born
    for row in by_kind["split"]:
        assert row["dkbm_2026"].startswith(row["dkbm_2025"])
        assert new.loc[row["dkbm_2026"], "DLBM"] == row["dlbm_2025"] == row["dlbm_2026"]
    for parent in split_parents:
        children = [r["dkbm_2026"] for r in by_kind["split"] if r["dkbm_2025"] == parent]
        assert len(children) == 2
        area = sum(new.geometry[c].area for c in children)
        assert abs(area - old.geometry[parent].area) < 1.0
    for merged in {r["dkbm_2026"] for r in by_kind["merged"]}:
        parents = [r["dkbm_2025"] for r in by_kind["merged"] if r["dkbm_2026"] == merged]
        assert len(parents) == 2
        assert abs(new.geometry[merged].area - sum(old.geometry[p].area for p in parents)) < 1.0
    for row in by_kind["reattributed"]:
        key = row["dkbm_2025"]
        assert key == row["dkbm_2026"]
        assert old.loc[key, "DLBM"] == row["dlbm_2025"] != row["dlbm_2026"]
        assert new.loc[key, "DLBM"] == row["dlbm_2026"]
        assert new.geometry[key].equals(old.geometry[key])
    for row in by_kind["removed"]:
        assert row["dkbm_2026"] == "" and old.loc[row["dkbm_2025"], "DLBM"] == row["dlbm_2025"]
    touched = {r["dkbm_2025"] for r in changes}
    same = sorted(set(old.index) - touched)
    assert (old.loc[same, "DLBM"] == new.loc[same, "DLBM"]).all()
    assert (old.loc[same, "QLR"] == new.loc[same, "QLR"]).all()
    greenfield = [r for r in by_kind["reattributed"] if _vegetated_to_built(r)]
    assert len(greenfield) >= 100


def _vegetated_to_built(row: dict[str, str]) -> bool:
    return row["dlbm_2025"][:2] in VEGETATED and row["dlbm_2026"][:2] in BUILT_UP


# --- rasters ---------------------------------------------------------------------------


def _ndvi_at(path: Path, points: np.ndarray) -> np.ndarray:
    """Mean NDVI of the 3x3 pixels around each point (EPSG:4546 coordinates)."""
    with rasterio.open(path) as src:
        red, nir = (b.astype(np.float64) for b in src.read([3, 4]))
        t = src.transform
    ndvi = (nir - red) / (nir + red)
    cols = np.floor((points[:, 0] - t.c) / t.a).astype(int)
    rows = np.floor((points[:, 1] - t.f) / t.e).astype(int)
    window = [ndvi[rows + dr, cols + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
    return np.mean(window, axis=0)


def test_scenes(out: Path) -> None:
    dates = {2025: "2025:10:15 03:00:00", 2026: "2026:10:20 03:00:00"}
    for year, stamp in dates.items():
        with rasterio.open(out / f"scene_{year}.tif") as src:
            assert src.count == 4
            assert src.dtypes == ("uint16",) * 4
            assert src.crs.to_epsg() == 4546
            assert src.res == (10.0, 10.0)
            assert src.descriptions == ("blue", "green", "red", "nir")
            assert src.nodata == 0
            assert src.block_shapes == [(256, 256)] * 4
            assert src.compression is not None and src.compression.name.lower() == "deflate"
            tags = src.tags()
            assert tags["TIFFTAG_DATETIME"] == stamp
            assert tags["SENSOR"] == "demo-4band"
            data = src.read()
            assert int(data.min()) >= 1
            assert int(data.max()) <= 10000
            west, south, east, north = src.bounds
    parcels = pyogrio.read_bounds(out / "parcels_2025.zip")[1]
    assert west < parcels[0].min() and east > parcels[2].max()
    assert south < parcels[1].min() and north > parcels[3].max()


def test_ndvi_follows_land_use(out: Path) -> None:
    df = pyogrio.read_dataframe(out / "parcels_2025.zip")
    points = shapely.get_coordinates(df.geometry.representative_point().values)
    ndvi_2025 = _ndvi_at(out / "scene_2025.tif", points)
    first = df["DLBM"].str[:2]
    green = ndvi_2025[first.isin(VEGETATED).to_numpy()].mean()
    built_up = ndvi_2025[first.isin(BUILT_UP).to_numpy()].mean()
    water = ndvi_2025[(first == "11").to_numpy()].mean()
    assert green > built_up + 0.3
    assert water < 0 < built_up
    # Parcels built on between the editions lose their greenness.
    changed = {r["dkbm_2025"] for r in _read_changes(out) if _vegetated_to_built(r)}
    mask = df["DKBM"].isin(changed).to_numpy()
    ndvi_2026 = _ndvi_at(out / "scene_2026.tif", points[mask])
    assert bool((ndvi_2026 < ndvi_2025[mask] - 0.2).all())
    unchanged = ~df["DKBM"].isin({r["dkbm_2025"] for r in _read_changes(out)}).to_numpy()
    drift = _ndvi_at(out / "scene_2026.tif", points[unchanged]) - ndvi_2025[unchanged]
    assert abs(float(drift.mean())) < 0.05


# --- other vector layers ---------------------------------------------------------------


def test_districts_tile_the_city(out: Path) -> None:
    df = pyogrio.read_dataframe(out / "districts.geojson")
    assert df.crs.to_epsg() == 4326  # RFC 7946: lon/lat
    assert len(df) == 5
    assert list(df.columns) == ["code", "name", "name_en", "geometry"]
    assert set(df["name"]) == {"云城街道", "高峰街道", "河口街道", "安塘街道", "思劳镇"}
    assert (df.geometry.geom_type == "Polygon").all()
    union = shapely.union_all(df.geometry.values)
    assert union.geom_type == "Polygon" and len(union.interiors) == 0
    assert abs(union.area - float(shapely.area(df.geometry.values).sum())) < 1e-9
    xmin, ymin, xmax, ymax = union.bounds
    assert 111.9 < xmin < 112.0 < xmax < 112.1
    assert 22.8 < ymin < 22.9 < ymax < 23.0
    parcels = pyogrio.read_dataframe(out / "parcels_2025.zip").to_crs(4490)
    sample = parcels.iloc[::50]
    for code, geom in zip(df["code"], df.geometry, strict=True):
        inside = sample[sample["XZQDM"] == code].geometry
        assert bool(shapely.contains(geom, inside.values).all())


def test_planning_zones(out: Path) -> None:
    df = pyogrio.read_dataframe(out / "planning_zones.geojson")
    assert 35 <= len(df) <= 45
    assert df["zone_id"].is_unique
    assert {"居住用地", "商业用地", "工业用地", "绿地与广场用地"} <= set(df["zone_type"])
    assert df["far_max"].dtype == np.float64
    assert (df["height_max_m"] >= 0).all()
    assert df.geometry.is_valid.all()


def test_network(out: Path) -> None:
    layers = {name for name, _ in pyogrio.list_layers(out / "network.gpkg")}
    assert layers == {"roads", "rivers"}
    roads = pyogrio.read_dataframe(out / "network.gpkg", layer="roads")
    rivers = pyogrio.read_dataframe(out / "network.gpkg", layer="rivers")
    assert roads.crs.to_epsg() == 4490 and rivers.crs.to_epsg() == 4490
    assert 50 <= len(roads) <= 70
    assert roads["road_id"].is_unique
    assert set(roads["class"]) == {"expressway", "arterial", "secondary", "local"}
    assert roads["lanes"].dtype == np.int32
    assert (roads.geometry.geom_type == "LineString").all()
    assert Counter(rivers["class"]) == {"main": 1, "tributary": 3, "canal": 1}
    assert "南山河" in set(rivers["name"])
    xmin, ymin, xmax, ymax = roads.total_bounds
    assert 111.9 < xmin < 112.0 < xmax < 112.1 and 22.8 < ymin < 22.9 < ymax < 23.0


def test_flood_zones(out: Path) -> None:
    """Bands of flood risk along the rivers: lon/lat, valid, never overlapping, each within
    its band width of its river, the high-risk zones on the river itself."""
    df = pyogrio.read_dataframe(out / "flood_zones.geojson")
    assert df.crs.to_epsg() == 4326  # RFC 7946: lon/lat
    assert list(df.columns) == [
        "zone_id", "name", "river_id", "risk", "return_period_years", "area_ha", "geometry",
    ]  # fmt: skip
    assert len(df) == 13
    assert df["zone_id"].is_unique and df["name"].is_unique
    assert all(n.endswith("风险洪泛区") for n in df["name"])
    assert Counter(df["risk"]) == {"high": 4, "medium": 4, "low": 5}
    assert {r: int(p) for r, p in zip(df["risk"], df["return_period_years"], strict=True)} == {
        "high": 10, "medium": 50, "low": 100,
    }  # fmt: skip
    zones = df.geometry.values
    assert set(df.geometry.geom_type) == {"MultiPolygon"}
    assert bool(shapely.is_valid(zones).all())
    union = shapely.union_all(zones)
    assert abs(union.area - float(shapely.area(zones).sum())) < 1e-6 * union.area
    extent = shapely.box(*_extent(out))
    assert bool(shapely.covers(extent.buffer(1e-6), zones).all())
    # In metres (the file's numbers are CGCS2000 lon/lat, as the rivers' are).
    metric = df.set_crs(4490, allow_override=True).to_crs(4546)
    assert np.allclose(metric.geometry.area / 10_000, df["area_ha"], rtol=1e-3)
    rivers = pyogrio.read_dataframe(out / "network.gpkg", layer="rivers").to_crs(4546)
    classes = dict(zip(rivers["river_id"], rivers["class"], strict=True))
    lines = dict(zip(rivers["river_id"], rivers.geometry, strict=True))
    for river_id, risk, zone in zip(df["river_id"], df["risk"], metric.geometry, strict=True):
        width = floods.BAND_WIDTHS_M[classes[river_id]][risk]
        corners = shapely.points(shapely.get_coordinates(zone))
        assert float(shapely.distance(lines[river_id], corners).max()) < width + 2.0
        if risk == "high":
            assert lines[river_id].intersects(zone)


def test_points(out: Path) -> None:
    extent = _extent(out)
    rivers = pyogrio.read_dataframe(out / "network.gpkg", layer="rivers").set_index("river_id")
    with (out / "water_gauges.csv").open(encoding="utf-8", newline="") as f:
        gauges = list(csv.DictReader(f))
    assert 12 <= len(gauges) <= 18
    assert list(gauges[0]) == [
        "gauge_id", "name", "river_id", "lon", "lat", "status", "warning_level_m",
    ]  # fmt: skip
    assert {g["status"] for g in gauges} == {"active", "maintenance", "offline"}
    for g in gauges:
        point = shapely.Point(float(g["lon"]), float(g["lat"]))
        assert rivers.geometry[g["river_id"]].distance(point) < 1e-6
        assert float(g["warning_level_m"]) > 0
        assert g["name"].endswith("水位站")
    stations = pyogrio.read_dataframe(out / "env_stations.geojson")
    assert 18 <= len(stations) <= 22
    assert set(stations["kind"]) == {"air", "water", "noise"}
    assert stations["station_id"].is_unique
    assert all(_inside(extent, p.x, p.y) for p in stations.geometry)
    hospitals = pyogrio.read_dataframe(out / "facilities.gpkg", layer="hospitals")
    fire = pyogrio.read_dataframe(out / "facilities.gpkg", layer="fire_stations")
    assert hospitals.crs.to_epsg() == 4490 and len(hospitals) == 12 and len(fire) == 8
    assert list(hospitals.columns) == ["facility_id", "name", "beds", "level", "geometry"]
    assert list(fire.columns) == ["facility_id", "name", "vehicles", "geometry"]
    assert "三级甲等" in set(hospitals["level"])
    assert all(_inside(extent, p.x, p.y) for p in [*hospitals.geometry, *fire.geometry])


DEPARTMENT_LAYERS = {
    "construction.gpkg": {"buildings": ("building_id", "Polygon"),
                          "construction_projects": ("project_id", "Polygon")},
    "utilities.gpkg": {"water_pipes": ("pipe_id", "LineString"),
                       "drain_pipes": ("pipe_id", "LineString"),
                       "manholes": ("manhole_id", "Point")},
    "forestry.gpkg": {"forest_compartments": ("xiaoban_id", "Polygon")},
    "agriculture.gpkg": {"basic_farmland": ("bh_id", "Polygon"),
                         "farmland_plots": ("plot_id", "Polygon")},
}  # fmt: skip
"""The departments' GeoPackages: layer -> (key, geometry type)."""


def test_department_geopackages(out: Path) -> None:
    # (pipes under the ring road lie a few metres beyond its centre line, the city's edge)
    west, south, east, north = _extent(out)
    extent = (west - 2e-4, south - 2e-4, east + 2e-4, north + 2e-4)
    for name, layers in DEPARTMENT_LAYERS.items():
        assert [n for n, _ in pyogrio.list_layers(out / name)] == list(layers)
        for layer, (key, geometry_type) in layers.items():
            info = pyogrio.read_info(out / name, layer=layer)
            assert info["crs"] == "EPSG:4490" and info["geometry_type"] == geometry_type
            frame = pyogrio.read_dataframe(out / name, layer=layer)
            assert frame[key].is_unique and 100 <= len(frame) <= 10_000, layer
            west, south, east, north = frame.total_bounds
            assert _inside(extent, west, south) and _inside(extent, east, north), layer


def test_dem(out: Path) -> None:
    with rasterio.open(out / "dem.tif") as dem, rasterio.open(out / "scene_2025.tif") as scene:
        assert (dem.crs, dem.transform, dem.shape) == (scene.crs, scene.transform, scene.shape)
        assert dem.count == 1 and dem.dtypes == ("float32",)
        heights = dem.read(1)
    assert 0 < heights.min() < heights.max() < 1000


# --- GPS -------------------------------------------------------------------------------


def _nmea_ok(line: str) -> bool:
    match = re.fullmatch(r"\$([^*$]+)\*([0-9A-F]{2})", line)
    if match is None:
        return False
    value = 0
    for char in match.group(1).encode("ascii"):
        value ^= char
    return value == int(match.group(2), 16)


def _nmea_degrees(value: str, hemisphere: str) -> float:
    head, minutes = divmod(float(value), 100)
    sign = -1.0 if hemisphere in "SW" else 1.0
    return sign * (head + minutes / 60)


def test_nmea(out: Path) -> None:
    extent = _extent(out)
    raw = (out / "gps" / "fleet.nmea").read_bytes()
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    lines = raw.decode("ascii").split("\r\n")[:-1]
    bad = [line for line in lines if not _nmea_ok(line)]
    assert len(bad) == gps_module.NMEA_BAD_CHECKSUM + gps_module.NMEA_TRUNCATED
    assert sum("*" not in line for line in bad) == gps_module.NMEA_TRUNCATED
    good = [line[1:].split("*")[0].split(",") for line in lines if _nmea_ok(line)]
    assert {f[0] for f in good} == {"GNRMC", "GNGGA", "BDRMC", "GBGGA"}
    no_fix = [f for f in good if f[0].endswith("RMC") and f[2] == "V"]
    no_fix += [f for f in good if f[0].endswith("GGA") and f[6] == "0"]
    assert len(no_fix) == gps_module.NMEA_NO_FIX
    fixes = [f for f in good if f[0].endswith("RMC") and f[2] == "A"]
    assert len(fixes) > 1000
    for f in fixes:
        lat, lon = _nmea_degrees(f[3], f[4]), _nmea_degrees(f[5], f[6])
        assert _inside(extent, lon, lat)
        assert 30.0 <= float(f[7]) * 1.852 <= 70.0
        assert f[9] == "010326"


def test_gpx(out: Path) -> None:
    extent = _extent(out)
    root = ET.parse(out / "gps" / "fleet.gpx").getroot()  # noqa: S314  (our own file)
    assert root.get("version") == "1.1"
    tracks = root.findall("g:trk", GPX_NS)
    assert len(tracks) == 6
    names = [t.findtext("g:name", namespaces=GPX_NS) for t in tracks]
    assert {"YF-AMB-01", "YF-FIRE-01", "YF-WATER-01"} <= set(names)
    for track in tracks:
        points = track.findall("g:trkseg/g:trkpt", GPX_NS)
        times = [np.datetime64(p.findtext("g:time", namespaces=GPX_NS).rstrip("Z")) for p in points]
        assert times[0] == np.datetime64("2026-03-01T00:00:00")
        steps = np.diff(np.array(times)).astype(int)
        assert steps.min() >= 1 and steps.max() <= 5
        assert 25 * 60 <= (times[-1] - times[0]).astype(int) <= 30 * 60
        for p in points:
            assert _inside(extent, float(p.get("lon")), float(p.get("lat")))
            assert p.find("g:ele", GPX_NS) is not None
            speed = float(
                p.findtext("g:extensions/x:TrackPointExtension/x:speed", namespaces=GPX_NS)
            )
            assert 30.0 <= speed * 3.6 <= 70.0


def test_the_fleet_crosses_the_flood_zones(out: Path) -> None:
    """Every vehicle drives into some flood zone and out of it again (roads cross the
    rivers), so the demo's flood-zone fences see enter and exit events."""
    zones = pyogrio.read_dataframe(out / "flood_zones.geojson")
    root = ET.parse(out / "gps" / "fleet.gpx").getroot()  # noqa: S314  (our own file)
    crossed: dict[str, set[str]] = {}
    for track in root.findall("g:trk", GPX_NS):
        points = track.findall("g:trkseg/g:trkpt", GPX_NS)
        fixes = shapely.points([(float(p.get("lon", "")), float(p.get("lat", ""))) for p in points])
        device = str(track.findtext("g:name", namespaces=GPX_NS))
        for zone_id, zone in zip(zones["zone_id"], zones.geometry, strict=True):
            inside = shapely.intersects(zone, fixes)
            into = np.flatnonzero(inside)
            if into.size and into[0] > 0 and not inside[into[0] :].all():
                crossed.setdefault(device, set()).add(zone_id)
    assert len(crossed) == 6
    assert all(len(zone_ids) >= 2 for zone_ids in crossed.values())


def test_osmand_log(out: Path) -> None:
    extent = _extent(out)
    lines = (out / "gps" / "osmand_requests.log").read_text(encoding="ascii").splitlines()
    valid: list[tuple[str, int]] = []
    junk = []
    for line in lines:
        method, _, target = line.partition(" ")
        query = parse_qs(urlsplit(target).query)
        try:
            device, lat, lon = query["id"][0], float(query["lat"][0]), float(query["lon"][0])
            stamp = int(query["timestamp"][0])
        except (KeyError, ValueError):
            junk.append(line)
            continue
        if method != "GET" or not _inside(extent, lon, lat):
            junk.append(line)
            continue
        valid.append((device, stamp))
        assert {"speed", "bearing", "altitude", "hdop", "batt"} <= set(query)
    assert junk == list(gps_module.OSMAND_JUNK)
    assert len(valid) - len(set(valid)) == gps_module.OSMAND_DUPLICATES
    assert len({d for d, _ in valid}) == 6
    gpx_points = (out / "gps" / "fleet.gpx").read_text(encoding="utf-8").count("<trkpt ")
    assert len(set(valid)) == gpx_points
    assert min(s for _, s in valid) == 1772323200  # 2026-03-01T08:00:00+08:00
