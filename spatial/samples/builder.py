"""Run every generation step and move the outputs into place atomically."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from spatial.samples import (
    agriculture,
    construction,
    floods,
    forestry,
    gps,
    rasters,
    terrain,
    themes,
    utilities,
    vectors,
)
from spatial.samples.city import City, Parcels, build_city
from spatial.samples.editions import CHANGE_FIELDS, Change, build_2026
from spatial.samples.grid import FloatArray, Grid
from spatial.samples.manifest import MANIFEST, OUTPUTS, BuildResult, manifest_text
from spatial.samples.network import River, Road, build_rivers, build_roads

STAGING = ".build-tmp"
"""Scratch folder inside the output folder; files are renamed from here into place."""

GBK_FIELDS = ("dkbm", "dlbm", "dlmc", "qsxz", "qlr", "xzqdm", "xzqmc")


class Context:
    """Everything the steps share, computed on first use."""

    @cached_property
    def grid(self) -> Grid:
        """The city frame."""
        return Grid.around_yunfu()

    @cached_property
    def roads(self) -> list[Road]:
        """Road lines (EPSG:4546)."""
        return build_roads(self.grid)

    @cached_property
    def rivers(self) -> list[River]:
        """River lines (EPSG:4546)."""
        return build_rivers(self.grid)

    @cached_property
    def city(self) -> City:
        """The 2025 cadastre."""
        return build_city(self.grid, self.rivers)

    @cached_property
    def edition_2026(self) -> tuple[Parcels, list[Change]]:
        """The 2026 cadastre and the change list."""
        return build_2026(self.city)

    @cached_property
    def edges(self) -> list[utilities.Edge]:
        """The roads cut at their crossings (the pipes' courses)."""
        return utilities.road_edges(self.roads)

    @cached_property
    def tracks(self) -> list[gps.Track]:
        """The fleet's tracks."""
        city = self.city
        hospitals = shapely.get_coordinates(
            shapely.point_on_surface(city.parcels.geometry[city.hospitals])
        )
        fires = shapely.get_coordinates(
            shapely.point_on_surface(city.parcels.geometry[city.fire_stations])
        )
        vehicles = gps.fleet(hospitals, fires, self.grid)
        return [gps.simulate(v, self.grid, n) for n, v in enumerate(vehicles)]

    def lonlat(self, geometry: BaseGeometry) -> BaseGeometry:
        """A geometry in EPSG:4546 as lon/lat (EPSG:4490 / CRS84), rounded to 7 decimals."""

        def project(coords: FloatArray) -> FloatArray:
            lon, lat = self.grid.lonlat(coords[:, 0], coords[:, 1])
            return np.column_stack([lon, lat])

        return vectors.lonlat_geometry(geometry, project)

    def geojson(self, name: str, records: list[themes.Record]) -> str:
        """RFC 7946 text of records given in EPSG:4546."""
        return vectors.geojson_text(name, [(p, self.lonlat(g)) for p, g in records])

    def gpkg_layer(
        self, name: str, kind: str, records: list[themes.Record], types: dict[str, str]
    ) -> vectors.GpkgLayer:
        """A GeoPackage layer of records, columns typed by ``types`` (numpy dtypes)."""
        columns = {
            field: np.array([p[field] for p, _ in records], dtype=dtype)
            for field, dtype in types.items()
        }
        return name, kind, [self.lonlat(g) for _, g in records], columns


def _check_gbk(parcels: Parcels) -> None:
    """Fail early (instead of a GDAL warning) if a value cannot be encoded in GBK."""
    for field in GBK_FIELDS:
        for value in getattr(parcels, field):
            str(value).encode("gbk")


def _write_parcels(ctx: Context, target: Path, parcels: Parcels) -> None:
    _check_gbk(parcels)
    work = target.parent / f"{target.stem}.parts"
    work.mkdir()
    vectors.write_parcels_zip(parcels, target, work)
    shutil.rmtree(work)


def _changes(ctx: Context, target: Path) -> None:
    rows = [[getattr(c, f) for f in CHANGE_FIELDS] for c in ctx.edition_2026[1]]
    target.write_text(vectors.csv_text(CHANGE_FIELDS, rows), encoding="utf-8")


def _network(ctx: Context, target: Path) -> None:
    roads = [
        (
            {
                "road_id": r.road_id,
                "name": r.name,
                "class": r.road_class,
                "lanes": r.lanes,
                "oneway": r.oneway,
            },
            r.line,
        )
        for r in ctx.roads
    ]
    rivers = [
        ({"river_id": r.river_id, "name": r.name, "class": r.river_class}, r.line)
        for r in ctx.rivers
    ]
    vectors.write_gpkg(
        target,
        [
            ctx.gpkg_layer(
                "roads",
                "LineString",
                roads,
                {
                    "road_id": "object",
                    "name": "object",
                    "class": "object",
                    "lanes": "int32",
                    "oneway": "object",
                },
            ),
            ctx.gpkg_layer(
                "rivers",
                "LineString",
                rivers,
                {"river_id": "object", "name": "object", "class": "object"},
            ),
        ],
    )


def _facilities(ctx: Context, target: Path) -> None:
    vectors.write_gpkg(
        target,
        [
            ctx.gpkg_layer(
                "hospitals",
                "Point",
                themes.hospitals(ctx.city),
                {"facility_id": "object", "name": "object", "beds": "int32", "level": "object"},
            ),
            ctx.gpkg_layer(
                "fire_stations",
                "Point",
                themes.fire_stations(ctx.city),
                {"facility_id": "object", "name": "object", "vehicles": "int32"},
            ),
        ],
    )


def _gauges(ctx: Context, target: Path) -> None:
    header = ("gauge_id", "name", "river_id", "lon", "lat", "status", "warning_level_m")
    rows = []
    for props, point in themes.water_gauges(ctx.grid, ctx.rivers):
        lonlat = ctx.lonlat(point)
        rows.append(
            [
                props["gauge_id"],
                props["name"],
                props["river_id"],
                f"{lonlat.x:.7f}",
                f"{lonlat.y:.7f}",
                props["status"],
                f"{props['warning_level_m']:.2f}",
            ]
        )
    target.write_text(vectors.csv_text(header, rows), encoding="utf-8")


TEXT, INT, FLOAT, DATE = "object", "int32", "float64", "datetime64[D]"


def _construction(ctx: Context, target: Path) -> None:
    buildings = {"building_id": TEXT, "name": TEXT, "address": TEXT, "use": TEXT,
                 "floors": INT, "height_m": FLOAT, "residents": INT, "year_built": INT,
                 "district_code": TEXT, "dkbm": TEXT}  # fmt: skip
    projects = {"project_id": TEXT, "name": TEXT, "developer": TEXT, "permit_no": TEXT,
                "status": TEXT, "use": TEXT, "start_date": DATE, "planned_end_date": DATE,
                "site_area_m2": FLOAT, "floor_area_m2": FLOAT}  # fmt: skip
    vectors.write_gpkg(target, [
        ctx.gpkg_layer("buildings", "Polygon",
                       construction.buildings(ctx.city, ctx.roads), buildings),
        ctx.gpkg_layer("construction_projects", "Polygon",
                       construction.projects(ctx.city, ctx.edition_2026, ctx.roads), projects),
    ])  # fmt: skip


def _utilities(ctx: Context, target: Path) -> None:
    water = utilities.water_pipes(ctx.city, ctx.edges)
    drains = utilities.drain_pipes(ctx.city, ctx.edges)
    water_types = {"pipe_id": TEXT, "road": TEXT, "diameter_mm": INT, "material": TEXT,
                   "install_year": INT, "pressure_class": TEXT, "length_m": FLOAT}  # fmt: skip
    drain_types = {"pipe_id": TEXT, "kind": TEXT, "road": TEXT, "diameter_mm": INT,
                   "material": TEXT, "install_year": INT, "invert_up_m": FLOAT,
                   "invert_down_m": FLOAT, "slope_permille": FLOAT,
                   "length_m": FLOAT}  # fmt: skip
    manhole_types = {"manhole_id": TEXT, "kind": TEXT, "pipe_id": TEXT, "depth_m": FLOAT,
                     "cover": TEXT}  # fmt: skip
    vectors.write_gpkg(target, [
        ctx.gpkg_layer("water_pipes", "LineString", water, water_types),
        ctx.gpkg_layer("drain_pipes", "LineString", drains, drain_types),
        ctx.gpkg_layer("manholes", "Point", utilities.manholes(ctx.grid, water, drains),
                       manhole_types),
    ])  # fmt: skip


def _forestry(ctx: Context, target: Path) -> None:
    types = {"xiaoban_id": TEXT, "linban": INT, "xiaoban": INT, "district_code": TEXT,
             "land_class": TEXT, "species": TEXT, "species_en": TEXT, "origin": TEXT,
             "age_years": INT, "age_class": TEXT, "canopy_density": FLOAT,
             "volume_m3_per_ha": FLOAT, "area_ha": FLOAT}  # fmt: skip
    vectors.write_gpkg(target, [
        ctx.gpkg_layer("forest_compartments", "Polygon", forestry.compartments(ctx.city), types),
    ])  # fmt: skip


def _agriculture(ctx: Context, target: Path) -> None:
    patches = {"bh_id": TEXT, "district_code": TEXT, "quality_grade": INT,
               "protected_since": DATE, "area_ha": FLOAT}  # fmt: skip
    plots = {"plot_id": TEXT, "dkbm": TEXT, "land_class": TEXT, "crop": TEXT, "crop_en": TEXT,
             "irrigation": TEXT, "owner": TEXT, "area_mu": FLOAT, "area_ha": FLOAT,
             "district_code": TEXT}  # fmt: skip
    vectors.write_gpkg(target, [
        ctx.gpkg_layer("basic_farmland", "Polygon", agriculture.basic_farmland(ctx.city),
                       patches),
        ctx.gpkg_layer("farmland_plots", "Polygon", agriculture.plots(ctx.city), plots),
    ])  # fmt: skip


def _text(render: Callable[[Context], str]) -> Callable[[Context, Path], None]:
    def step(ctx: Context, target: Path) -> None:
        target.write_text(render(ctx), encoding="utf-8", newline="")

    return step


Step = Callable[[Context, Path], None]

STEPS: dict[str, Step] = {
    "parcels_2025.zip": lambda ctx, t: _write_parcels(ctx, t, ctx.city.parcels),
    "parcels_2026.zip": lambda ctx, t: _write_parcels(ctx, t, ctx.edition_2026[0]),
    "parcel_changes.csv": _changes,
    "districts.geojson": _text(lambda c: c.geojson("districts", themes.districts(c.city))),
    "planning_zones.geojson": _text(
        lambda c: c.geojson("planning_zones", themes.planning_zones(c.city))
    ),
    "network.gpkg": _network,
    "flood_zones.geojson": _text(
        lambda c: c.geojson("flood_zones", floods.flood_zones(c.grid, c.rivers))
    ),
    "water_gauges.csv": _gauges,
    "env_stations.geojson": _text(
        lambda c: c.geojson("env_stations", themes.env_stations(c.city, c.rivers, c.roads))
    ),
    "facilities.gpkg": _facilities,
    "scene_2025.tif": lambda ctx, t: rasters.write_scene(t, ctx.grid, ctx.city.parcels, 2025),
    "scene_2026.tif": lambda ctx, t: rasters.write_scene(t, ctx.grid, ctx.edition_2026[0], 2026),
    "dem.tif": lambda ctx, t: terrain.write_dem(t, ctx.grid, ctx.rivers, ctx.city.parcels),
    "gps/fleet.nmea": _text(lambda c: gps.nmea_text(c.tracks)),
    "gps/fleet.gpx": _text(lambda c: gps.gpx_text(c.tracks)),
    "gps/osmand_requests.log": _text(lambda c: gps.osmand_text(c.tracks)),
    "construction.gpkg": _construction,
    "utilities.gpkg": _utilities,
    "forestry.gpkg": _forestry,
    "agriculture.gpkg": _agriculture,
}


def build_all(out_dir: Path, on_step: Callable[[str, int, int], None] | None = None) -> BuildResult:
    """Regenerate every output into a folder (see ``spatial.samples.build``).

    Args:
        out_dir: target folder (created if missing).
        on_step: progress callback ``(name, index, total)``.

    Returns:
        The result with ``rebuilt=True``.
    """
    if tuple(STEPS) != OUTPUTS:
        raise RuntimeError("STEPS and OUTPUTS disagree")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    staging = out_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    total = len(OUTPUTS) + 1
    ctx = Context()
    for index, (name, step) in enumerate(STEPS.items()):
        if on_step is not None:
            on_step(name, index, total)
        temporary, final = staging / name, out_dir / name
        temporary.parent.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        step(ctx, temporary)
        temporary.replace(final)
    if on_step is not None:
        on_step(MANIFEST, total - 1, total)
    text, digests = manifest_text(out_dir)
    (staging / MANIFEST).write_text(text, encoding="utf-8")
    (staging / MANIFEST).replace(out_dir / MANIFEST)
    shutil.rmtree(staging)
    return BuildResult(out_dir=out_dir, rebuilt=True, files=digests)
