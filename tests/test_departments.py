"""The departments beyond the first five (issue 27): construction, municipal utilities,
forestry and agriculture, on the demo city.

Their maps' definitions load; their collections are in the demo with the fields their maps
read; and the data is plausible and consistent with the city it was derived from, checked
in PostGIS: every building on a built-up parcel, residents only in homes; every manhole on
a pipe of its network and every pipe under a road; every forest sub-compartment on forest
land with the age class its species' rules give; every farmland plot on its cultivated
parcel, every basic-farmland patch on cultivated land. (That two builds of the samples are
byte-identical, these files included, is tests/test_samples.py's first test.)
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import psycopg
import pytest
from psycopg import sql

from layers import subsystems
from spatial.demo import DEPARTMENT_LAYERS
from spatial.samples import forestry

MAPS = {
    "construction": ("buildings", "construction_projects"),
    "utilities": ("water_pipes", "drain_pipes", "manholes"),
    "forestry": ("forest_compartments",),
    "agriculture": ("basic_farmland", "farmland_plots"),
}
"""Each new map and the demo collections it draws."""


@pytest.fixture(scope="module")
def db(demo_url: str) -> Any:
    with psycopg.connect(demo_url) as conn:
        yield conn


def _rows(conn: Any, query: Any, *params: object) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(query, params).fetchall()]


def _value(conn: Any, query: Any, *params: object) -> Any:
    return conn.execute(query, params).fetchone()[0]


def test_the_four_maps_load_with_their_collections(db: Any) -> None:
    maps = subsystems.load()
    fields = dict(_rows(db, "SELECT id, properties->'fields' FROM platform.collections"))
    keys = dict(_rows(db, "SELECT id, properties->>'key' FROM platform.collections"))
    assert {d.collection_id for d in DEPARTMENT_LAYERS} == {c for cs in MAPS.values() for c in cs}
    for subsystem_id, collections in MAPS.items():
        subsystem = maps.get(subsystem_id)
        assert re.search("[\u4e00-\u9fff]", subsystem.title) and subsystem.access.public
        drawn = {layer.collection for layer in subsystem.layers}
        assert set(collections) <= drawn and "districts" in drawn
        for layer in subsystem.layers:
            if layer.kind != "vector":
                continue
            known = set(fields[layer.collection])
            assert set(layer.popup) | set(layer.search) <= known, (subsystem_id, layer.id)
            assert layer.legend, layer.id
        for collection in collections:
            demo = next(x for x in DEPARTMENT_LAYERS if x.collection_id == collection)
            assert keys[collection] == demo.key and subsystem_id in demo.subsystems
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("layers", collection))
            count = _value(db, query)
            assert count > 0, collection


def test_buildings_stand_on_built_up_parcels_and_only_homes_have_residents(db: Any) -> None:
    total, uses = (
        _value(db, "SELECT count(*) FROM layers.buildings"),
        dict(_rows(db, "SELECT use, count(*) FROM layers.buildings GROUP BY use")),
    )
    assert 2_000 <= total <= 8_000
    assert set(uses) == {"residential", "commercial", "industrial", "warehouse", "public"}
    assert _value(db, "SELECT count(*) FROM layers.buildings WHERE (residents > 0) <> "
                      "(use = 'residential')") == 0  # fmt: skip
    assert _value(db, "SELECT count(*) FROM layers.buildings WHERE floors < 1 OR "
                      "height_m < 2.8 * floors OR height_m > 8.5 * floors + 2 "
                      "OR year_built NOT BETWEEN 1970 AND 2025") == 0  # fmt: skip
    outside = _value(
        db,
        """
        SELECT count(*) FROM layers.buildings b JOIN layers.parcels p ON p.dkbm = b.dkbm
        WHERE left(p.dlbm, 2) NOT IN ('05', '06', '07', '08') OR b.district_code <> p.xzqdm
           OR NOT ST_Covers(ST_Buffer(ST_Transform(p.geom, 4546), 0.05),
                            ST_Transform(b.geom, 4546))""",
    )
    joined = _value(db, "SELECT count(*) FROM layers.buildings b "
                        "JOIN layers.parcels p ON p.dkbm = b.dkbm")  # fmt: skip
    assert outside == 0 and joined == total
    people = _value(db, "SELECT sum(residents) FROM layers.buildings")
    assert 100_000 <= people <= 1_000_000


def test_projects_have_permits_dates_and_a_status_that_fits_them(db: Any) -> None:
    rows = _rows(db, "SELECT project_id, status, permit_no, start_date, planned_end_date, "
                     "floor_area_m2, site_area_m2 FROM layers.construction_projects")  # fmt: skip
    assert 100 <= len(rows) <= 2_000
    status_day = dt.date(2026, 6, 30)
    seen = set()
    for pid, status, permit, begins, ends, floor_area, site in rows:
        seen.add(status)
        start = dt.date.fromisoformat(str(begins)[:10])
        end = dt.date.fromisoformat(str(ends)[:10])
        assert start < end and floor_area > 0 and site > 0, pid
        if status == "planned":
            assert permit is None and start > status_day, pid
        else:
            assert re.fullmatch(r"445302(20\d{6})\d{4}", permit), (pid, permit)
            issued = dt.date.fromisoformat(f"{permit[6:10]}-{permit[10:12]}-{permit[12:14]}")
            assert issued <= start <= status_day, pid
            assert (end <= status_day) == (status == "completed"), pid
    assert seen == {"planned", "under construction", "completed"}


def test_pipes_run_under_roads_and_manholes_sit_on_their_pipes(db: Any) -> None:
    for table in ("water_pipes", "drain_pipes"):
        far = _value(
            db,
            sql.SQL("""
            SELECT count(*) FROM {} t WHERE NOT EXISTS (
                SELECT 1 FROM layers.roads r
                WHERE ST_DWithin(ST_Transform(r.geom, 4546), ST_Transform(t.geom, 4546), 12)
                  AND ST_Length(ST_Intersection(ST_Buffer(ST_Transform(r.geom, 4546), 12),
                                                ST_Transform(t.geom, 4546)))
                      > 0.9 * ST_Length(ST_Transform(t.geom, 4546)))""").format(
                sql.Identifier("layers", table)
            ),
        )
        assert far == 0, table
    assert dict(_rows(db, "SELECT kind, count(*) > 0 FROM layers.drain_pipes GROUP BY kind")) == {
        "storm": True, "sewage": True, "combined": True}  # fmt: skip
    assert _value(db, "SELECT count(*) FROM layers.water_pipes WHERE diameter_mm NOT BETWEEN "
                      "100 AND 800 OR material NOT IN ('ductile iron', 'PE', 'steel', 'PVC', "
                      "'grey cast iron')") == 0  # fmt: skip
    assert _value(db, "SELECT count(*) FROM layers.drain_pipes WHERE invert_up_m < "
                      "invert_down_m OR slope_permille <= 0") == 0  # fmt: skip
    kinds = dict(_rows(db, "SELECT kind, count(*) FROM layers.manholes GROUP BY kind"))
    assert set(kinds) == {"water", "storm", "sewage", "combined"}
    astray = _value(
        db,
        """
        SELECT count(*) FROM layers.manholes m WHERE NOT EXISTS (
            SELECT 1 FROM layers.water_pipes w WHERE m.kind = 'water'
               AND ST_DWithin(ST_Transform(w.geom, 4546), ST_Transform(m.geom, 4546), 1.0)
            UNION ALL
            SELECT 1 FROM layers.drain_pipes d WHERE d.kind = m.kind
               AND ST_DWithin(ST_Transform(d.geom, 4546), ST_Transform(m.geom, 4546), 1.0))
        OR m.depth_m NOT BETWEEN 0.5 AND 8""",
    )
    assert astray == 0


def test_forest_sub_compartments_lie_on_forest_land_with_their_age_classes(db: Any) -> None:
    rows = _rows(db, "SELECT xiaoban_id, species, origin, age_years, age_class, canopy_density, "
                     "volume_m3_per_ha FROM layers.forest_compartments")  # fmt: skip
    assert 300 <= len(rows) <= 5_000
    for xid, species, origin, age, age_class, canopy, volume in rows:
        assert species in forestry.SPECIES_EN and origin in ("natural", "planted"), xid
        assert age_class == forestry.age_group(species, origin, age), xid
        assert 0.1 <= canopy <= 0.95 and volume >= 0, xid
    assert {r[4] for r in rows} >= set(forestry.AGE_GROUPS)
    off = _value(
        db,
        """
        SELECT count(*) FROM layers.forest_compartments c
        WHERE ST_Area(ST_Transform(c.geom, 4546)) * 0.999 > (
            SELECT coalesce(sum(ST_Area(ST_Intersection(ST_Transform(p.geom, 4546),
                                                        ST_Transform(c.geom, 4546)))), 0)
            FROM layers.parcels p
            WHERE left(p.dlbm, 2) = '03' AND ST_Intersects(p.geom, ST_Transform(c.geom, 4546)))
    """,
    )
    assert off == 0


def test_farmland_plots_and_basic_farmland_lie_on_cultivated_land(db: Any) -> None:
    wrong = _value(
        db,
        """
        SELECT count(*) FROM layers.farmland_plots f LEFT JOIN layers.parcels p ON p.dkbm = f.dkbm
        WHERE p.dkbm IS NULL OR left(p.dlbm, 2) <> '01' OR p.dlbm <> f.land_class
           OR NOT ST_Covers(ST_Transform(p.geom, 4546), ST_Transform(f.geom, 4546))
           OR abs(f.area_mu / 15.0 - f.area_ha) > 0.001""",
    )
    assert wrong == 0
    assert _value(db, "SELECT count(*) FROM layers.farmland_plots WHERE crop = '水稻' "
                      "AND irrigation <> 'yes'") == 0  # fmt: skip
    grades = dict(_rows(db, "SELECT quality_grade, count(*) FROM layers.basic_farmland "
                            "GROUP BY 1"))  # fmt: skip
    assert set(grades) <= set(range(1, 11)) and len(grades) >= 5
    off = _value(
        db,
        """
        SELECT count(*) FROM layers.basic_farmland b
        WHERE ST_Area(ST_Transform(b.geom, 4546)) * 0.999 > (
            SELECT coalesce(sum(ST_Area(ST_Intersection(ST_Transform(p.geom, 4546),
                                                        ST_Transform(b.geom, 4546)))), 0)
            FROM layers.parcels p
            WHERE left(p.dlbm, 2) = '01' AND ST_Intersects(p.geom, ST_Transform(b.geom, 4546)))
    """,
    )
    assert off == 0
    share = _value(db, "SELECT sum(b.area_ha) / (SELECT sum(area_ha) FROM layers.farmland_plots) "
                       "FROM layers.basic_farmland b")  # fmt: skip
    assert 0.4 < share < 1.0


@pytest.mark.parametrize("department", ["construction", "utilities", "forestry", "agriculture"])
def test_each_new_department_has_its_row(db: Any, department: str) -> None:
    """Migration 0019: the departments a map's ``access`` may name."""
    name, name_en = _rows(db, "SELECT name, name_en FROM platform.departments WHERE id = %s",
                          department)[0]  # fmt: skip
    assert re.search("[\u4e00-\u9fff]", name) and name_en


def test_the_demo_dem_is_an_elevation_collection_every_map_may_show(db: Any) -> None:
    """``dem.tif`` (spatial/samples/terrain.py) loaded as the raster collection ``dem``."""
    public, subsystems_, kind = _rows(
        db, "SELECT is_public, subsystems, properties->>'spatial:kind' "
        "FROM platform.collections WHERE id = 'dem'")[0]  # fmt: skip
    assert public and kind == "elevation"
    assert set(subsystems_) >= {s.id for s in subsystems.load()}
    items = _rows(db, "SELECT id, properties->>'spatial:kind', "
                      "properties->>'spatial:source_sha256' FROM rs.items "
                      "WHERE collection_id = 'dem'")  # fmt: skip
    assert [(i, k) for i, k, _ in items] == [("dem", "elevation")] and items[0][2]
