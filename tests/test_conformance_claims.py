"""Every conformance class the platform declares, with the tests that exercise it.

:data:`CLAIMS` names, for each class :mod:`api.conformance` declares, the tests that
exercise its requirements. ``/conformance`` (JSON and HTML) must serve exactly the classes
named here, and every test named must exist: a class declared without naming its tests,
a class named but no longer declared, or a named test renamed or deleted fails here.

The classes no other test exercised have their tests here: the tilesets list and the
collection's link to it (OGC API - Tiles), ``datetime`` on a coverage (Coverages), the
process descriptions (Processes), and the JSON Schemas of queryables and feature schemas
(Features Parts 3 and 5).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import httpx
import mapbox_vector_tile
import numpy as np
import pytest
import rasterio
import rasterio.io
from rasterio.transform import from_origin
from support import LiveServer, wait_for_collection

from api.conformance import CLASSES
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings
from tiles.tms import TILE_MATRIX_SETS

ROOT = Path(__file__).resolve().parent.parent
_OGC = "http://www.opengis.net/spec/"
_COMMON, _FEATURES = f"{_OGC}ogcapi-common-1/1.0/conf/", f"{_OGC}ogcapi-features-1/1.0/conf/"
_FILTER, _CQL2 = f"{_OGC}ogcapi-features-3/1.0/conf/", f"{_OGC}cql2/1.0/conf/"
_EDITS, _RECORDS = f"{_OGC}ogcapi-features-4/1.0/conf/", f"{_OGC}ogcapi-records-1/1.0/conf/"
_TILES, _COVERAGES = f"{_OGC}ogcapi-tiles-1/1.0/conf/", f"{_OGC}ogcapi-coverages-1/1.0/conf/"
_PROCESSES = f"{_OGC}ogcapi-processes-1/1.0/conf/"
_STYLES, _MAPS = f"{_OGC}ogcapi-styles-1/1.0/conf/", f"{_OGC}ogcapi-maps-1/1.0/conf/"

_API = "tests/test_api.py::"
_OAPIF = "tests/test_ogc_features.py::"
_WEB = "tests/test_web_pages.py::"
_OPENAPI = "tests/test_openapi.py::"
_EDIT = "tests/test_ogc_transactions.py::"
_CQL = "tests/test_cql2_spatial_case.py::"
_TEMPORAL = "tests/test_cql2_temporal_arithmetic.py::"
_RECORD = "tests/test_records.py::"
_TILE = "tests/test_tiles.py::"
_COVERAGE = "tests/test_coverages.py::"
_GDAL = "tests/test_gdal_clients.py::"
_RASTER = "tests/test_rasters.py::"
_PROCESS = "tests/test_ogc_processes.py::"
_HERE = "tests/test_conformance_claims.py::"
_STYLE = "tests/test_styles.py::"
_MAP = "tests/test_map_images.py::"
_SCHEMAS = f"{_HERE}test_queryables_and_schemas_are_json_schema_2020_12"
"""Queryables' JSON Schema: a requirement of ``queryables``, on which the other classes
of Features Part 3 depend."""

CLAIMS: dict[str, tuple[str, ...]] = {
    # OGC API - Common
    f"{_COMMON}core": (
        f"{_API}test_landing_page_json", f"{_OAPIF}test_landing_conformance_and_collection",
        f"{_OAPIF}test_ogctests_features_core_passes", f"{_OAPIF}test_errors_are_ogc_exceptions",
    ),
    f"{_COMMON}landing-page": (f"{_API}test_landing_page_json",),
    f"{_COMMON}json": (
        f"{_API}test_landing_page_json", f"{_HERE}test_conformance_serves_exactly_the_claims",
    ),
    f"{_COMMON}html": (
        f"{_API}test_landing_page_html_by_accept_and_by_f",
        f"{_WEB}test_every_page_loads_its_assets_from_this_server",
        f"{_HERE}test_conformance_serves_exactly_the_claims",
    ),
    f"{_COMMON}oas30": (f"{_OPENAPI}test_the_document_is_valid_openapi",),
    f"{_OGC}ogcapi-common-2/1.0/conf/collections": (
        f"{_OAPIF}test_landing_conformance_and_collection",
        f"{_WEB}test_collection_document_is_pygeoapis_and_every_link_answers",
        f"{_OAPIF}test_a_new_collection_appears_and_a_deleted_one_goes",
    ),
    # OGC API - Features
    f"{_FEATURES}core": (
        f"{_OAPIF}test_ogctests_features_core_passes",
        f"{_OAPIF}test_gdal_reads_every_feature_through_paging",
        f"{_OAPIF}test_paging_follows_next_links_to_the_end",
        f"{_OAPIF}test_bbox_crs_and_properties", f"{_OAPIF}test_errors_are_ogc_exceptions",
    ),
    f"{_FEATURES}geojson": (
        f"{_OAPIF}test_gdal_reads_every_feature_through_paging", f"{_OAPIF}test_sortby_and_item",
    ),
    f"{_FEATURES}html": (
        f"{_OAPIF}test_sortby_and_item",
        f"{_WEB}test_jsonld_and_html_pages_agree_with_the_geojson_fast_path",
        f"{_WEB}test_items_page_draws_the_features_offline_in_chromium",
    ),
    f"{_FEATURES}oas30": (
        f"{_OPENAPI}test_the_document_is_valid_openapi", f"{_OPENAPI}test_schemathesis_anonymous",
    ),
    f"{_OGC}ogcapi-features-2/1.0/conf/crs": (
        f"{_OAPIF}test_bbox_crs_and_properties", f"{_OAPIF}test_landing_conformance_and_collection",
    ),
    f"{_FILTER}queryables": (f"{_OAPIF}test_queryables_describe_the_columns", _SCHEMAS),
    f"{_FILTER}queryables-query-parameters": (
        f"{_WEB}test_queryables_work_as_query_parameters", _SCHEMAS,
    ),
    f"{_FILTER}filter": (
        f"{_OAPIF}test_cql2_text_and_json_filters",
        f"{_OAPIF}test_bad_filters_are_400_with_the_reason", _SCHEMAS,
    ),
    f"{_FILTER}features-filter": (
        f"{_OAPIF}test_cql2_text_and_json_filters",
        f"{_WEB}test_cql2_filters_reach_pygeoapis_pages_as_the_platform_parsed_them", _SCHEMAS,
    ),
    f"{_EDITS}create-replace-delete": (
        f"{_EDIT}test_create_read_replace_stale_update_delete",
        f"{_EDIT}test_bad_edits_are_refused_and_change_nothing",
    ),
    f"{_EDITS}update": (f"{_EDIT}test_create_read_replace_stale_update_delete",),
    f"{_EDITS}features": (f"{_EDIT}test_create_read_replace_stale_update_delete",),
    f"{_OGC}ogcapi-features-5/1.0/conf/schemas": (
        f"{_OAPIF}test_queryables_describe_the_columns", _SCHEMAS,
    ),
    f"{_OGC}ogcapi-features-5/1.0/conf/core-roles-features": (
        f"{_OAPIF}test_queryables_describe_the_columns", f"{_HERE}test_the_schema_roles",
    ),
    # CQL2
    f"{_CQL2}cql2-text": (f"{_OAPIF}test_cql2_text_and_json_filters", f"{_CQL}test_basic_cql2"),
    f"{_CQL2}cql2-json": (
        f"{_OAPIF}test_cql2_text_and_json_filters", f"{_CQL}test_basic_cql2",
        f"{_CQL}test_the_standards_examples_as_written_in_json",
    ),
    f"{_CQL2}basic-cql2": (f"{_CQL}test_basic_cql2", f"{_OAPIF}test_cql2_text_and_json_filters"),
    f"{_CQL2}advanced-comparison-operators": (
        f"{_CQL}test_advanced_comparison",
        f"{_CQL}test_null_matches_neither_a_comparison_nor_its_negation",
    ),
    f"{_CQL2}case-insensitive-comparison": (
        f"{_CQL}test_casei", f"{_CQL}test_the_standards_examples_as_written_in_json",
        f"{_CQL}test_casei_folds_every_character_as_unicode_does",
    ),
    f"{_CQL2}basic-spatial-functions": (
        f"{_CQL}test_every_spatial_function_with_every_literal",
        f"{_OAPIF}test_cql2_text_and_json_filters",
    ),
    f"{_CQL2}basic-spatial-functions-plus": (
        f"{_CQL}test_every_spatial_function_with_every_literal",
        f"{_CQL}test_the_standards_spatial_literal_examples",
    ),
    f"{_CQL2}spatial-functions": (
        f"{_CQL}test_every_spatial_function_with_every_literal",
        f"{_CQL}test_a_literal_first_swaps_the_relation",
    ),
    f"{_CQL2}temporal-functions": (
        f"{_TEMPORAL}test_every_function_over_intervals",
        f"{_TEMPORAL}test_the_standards_temporal_test_data",
        f"{_TEMPORAL}test_items_filter_with_temporal_functions",
    ),
    f"{_CQL2}arithmetic": (
        f"{_TEMPORAL}test_arithmetic", f"{_TEMPORAL}test_items_filter_with_arithmetic",
    ),
    # OGC API - Records (the catalog)
    # OGC API - Tiles
    f"{_TILES}core": (
        f"{_TILE}test_tiles_hold_what_sql_finds_with_the_source_geometry",
        f"{_TILE}test_etag_304_gzip_empty_and_out_of_range",
    ),
    f"{_TILES}tileset": (f"{_TILE}test_tileset_metadata_and_tilejson",),
    f"{_TILES}tilesets-list": (f"{_HERE}test_the_tilesets_list_and_the_collections_link",),
    f"{_TILES}geodata-tilesets": (
        f"{_HERE}test_the_tilesets_list_and_the_collections_link",
        f"{_TILE}test_tileset_metadata_and_tilejson",
    ),
    f"{_TILES}mvt": (
        f"{_TILE}test_tiles_hold_what_sql_finds_with_the_source_geometry",
        f"{_TILE}test_gdal_reads_a_tile",
    ),
    f"{_OGC}tms/2.0/conf/json-tilematrixset": (f"{_TILE}test_tileset_metadata_and_tilejson",),
    # OGC API - Coverages
    f"{_COVERAGES}core": (
        f"{_COVERAGE}test_gdal_reads_the_native_grid_and_values",
        f"{_RASTER}test_a_coverage_on_the_source_grid_equals_rasterio",
    ),
    f"{_COVERAGES}oas30": (f"{_COVERAGE}test_the_openapi_document_declares_the_subset_parameters",),
    f"{_COVERAGES}geodata-coverage": (
        f"{_COVERAGE}test_the_collection_links_its_domain_set_and_range_type",
        f"{_COVERAGE}test_the_domain_set_is_the_native_grid",
        f"{_COVERAGE}test_the_range_type_lists_the_bands",
    ),
    f"{_COVERAGES}coverage-subset": (
        f"{_COVERAGE}test_a_lat_lon_subset_is_the_equivalent_bbox",
        f"{_COVERAGE}test_a_native_subset_is_the_equivalent_bbox_crs_and_the_source",
        f"{_COVERAGE}test_subset_crs_names_the_crs_of_lat_lon",
        f"{_COVERAGE}test_open_ends_slices_and_scale_size",
    ),
    f"{_COVERAGES}coverage-rangesubset": (
        f"{_COVERAGE}test_properties_name_bands_by_name_index_or_star",
    ),
    f"{_COVERAGES}coverage-bbox": (
        f"{_COVERAGE}test_a_lat_lon_subset_is_the_equivalent_bbox",
        f"{_RASTER}test_a_coverage_by_a_lonlat_bbox_is_in_the_native_crs",
    ),
    f"{_COVERAGES}coverage-datetime": (f"{_HERE}test_coverage_datetime_picks_the_scenes",),
    f"{_COVERAGES}coverage-scaling": (
        f"{_GDAL}test_the_coverage_scales_by_a_factor_or_per_axis",
        f"{_GDAL}test_gdal_reads_the_imagery_coverage_at_its_native_grid_and_values",
        f"{_COVERAGE}test_open_ends_slices_and_scale_size",
    ),
    # OGC API - Processes
    f"{_PROCESSES}core": (
        f"{_PROCESS}test_the_process_list_and_descriptions",
        f"{_PROCESS}test_intersect_summarise_matches_geopandas",
        f"{_PROCESS}test_bad_execution_requests",
    ),
    f"{_PROCESSES}ogc-process-description": (
        f"{_HERE}test_every_process_description",
        f"{_PROCESS}test_the_process_list_and_descriptions",
    ),
    f"{_PROCESSES}json": (
        f"{_PROCESS}test_the_process_list_and_descriptions",
        f"{_PROCESS}test_async_job_results_and_dismissal",
    ),
    f"{_PROCESSES}dismiss": (f"{_PROCESS}test_async_job_results_and_dismissal",),
    # OGC API - Styles (draft 20-009)
    f"{_STYLES}core": (
        f"{_STYLE}test_styles_list_the_maps_and_serve_maplibre", f"{_STYLE}test_collection_styles",
    ),
    f"{_STYLES}mapbox-styles": (
        f"{_STYLE}test_styles_list_the_maps_and_serve_maplibre", f"{_STYLE}test_collection_styles",
        f"{_STYLE}test_a_collection_no_map_draws_has_a_style_by_geometry",
    ),
    f"{_STYLES}sld-11": (
        f"{_STYLE}test_sld_carries_the_yaml_colours", f"{_STYLE}test_qgis_reads_the_sld_as_rules",
        f"{_STYLE}test_every_layer_translates_and_mapnik_loads_every_map",
    ),
    # OGC API - Maps 1.0
    f"{_MAPS}core": (
        f"{_MAP}test_defaults_jpeg_background_and_the_aspect_ratio",
        f"{_MAP}test_unknown_names_are_404",
    ),
    f"{_MAPS}crs": (f"{_MAP}test_a_parcel_has_its_yaml_colour_in_every_crs",),
    f"{_MAPS}background": (f"{_MAP}test_defaults_jpeg_background_and_the_aspect_ratio",),
    f"{_MAPS}collection-map": (f"{_MAP}test_a_collection_links_its_map_and_styles",),
    f"{_MAPS}png": (f"{_MAP}test_a_parcel_has_its_yaml_colour_in_every_crs",),
    f"{_MAPS}jpeg": (f"{_MAP}test_defaults_jpeg_background_and_the_aspect_ratio",),
}  # fmt: skip
"""Each class the platform may declare: the tests (``path::function``) that exercise it."""

NOT_TO_DECLARE = {
    f"{_RECORDS}core": "not a class of OGC API - Records 1.0 (a draft's name)",
    f"{_RECORDS}opensearch": "not a class of Records 1.0 (OpenSearch is left to a Part 2); "
    "no OpenSearch description document nor OpenSearch Geo parameters are served",
    f"{_RECORDS}sorting": "no /collections/catalog/sortables resource (nor its link) and no "
    "defaultSortOrder in the catalog",
    f"{_RECORDS}json": "application/ogc-catalog+json is refused (406) and responses have no "
    "profile link to ogc-catalog",
    f"{_RECORDS}searchable-catalog": "the ids and externalIds parameters are refused, and the "
    "catalog document has no type 'Collection'",
    f"{_PROCESSES}job-list": "/jobs takes none of the parameters type, processID, status, "
    "datetime, minDuration, maxDuration, limit, and has no alternate link",
    f"{_RECORDS}record-core": "without the json class, Records wants records in HTML by "
    "default; the catalog is served as an OGC API - Features collection of records",
    f"{_RECORDS}html": "a Records encoding class, not declared without Records itself",
}
"""Classes declared today that no test backs because a requirement of theirs does not
hold (the reason, for the failure message)."""


# -- the claims ----------------------------------------------------------------------------


class _Conformance(HTMLParser):
    """The links in the conformance section of pygeoapi's conformance page."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section" and ("id", "conformance") in attrs:
            self.depth = 1
        elif tag == "section" and self.depth:
            self.depth += 1
        elif tag == "a" and self.depth:
            self.links += [v for k, v in attrs if k == "href" and v]

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.depth:
            self.depth -= 1


def _difference(served: set[str]) -> str:
    """What differs between the classes served and the claims, and why."""
    lines = [f"declared without naming its tests: {c} ({NOT_TO_DECLARE.get(c, 'no reason')})"
             for c in sorted(served - set(CLAIMS))]  # fmt: skip
    lines += [f"named here but not declared: {c}" for c in sorted(set(CLAIMS) - served)]
    return "\n".join(lines)


def test_conformance_serves_exactly_the_claims(live_api: LiveServer) -> None:
    """``/conformance`` as JSON and as HTML lists every class named here and no other."""
    assert set(CLASSES) == set(CLAIMS), _difference(set(CLASSES))
    response = httpx.get(f"{live_api.url}/conformance", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    served = response.json()["conformsTo"]
    assert len(served) == len(set(served)) and set(served) == set(CLAIMS), _difference(set(served))
    page = httpx.get(f"{live_api.url}/conformance", params={"f": "html"}, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    parser = _Conformance()
    parser.feed(page.text)
    assert sorted(parser.links) == sorted(CLAIMS), _difference(set(parser.links))


@cache
def _module(path: str) -> ModuleType:
    """A test module, imported from its file (as its own module, beside pytest's)."""
    name = f"claimed_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_named_test_exists() -> None:
    """Each test named is a test function of its module (a parametrized one by its name
    without parameters): renaming or deleting it breaks the claim."""
    named = {test for tests in CLAIMS.values() for test in tests}
    for test in sorted(named):
        path, _, name = test.partition("::")
        assert re.fullmatch(r"tests/test_\w+\.py", path) and (ROOT / path).is_file(), test
        function = getattr(_module(path), name.split("[")[0], None)
        assert callable(function) and function.__name__.startswith("test_"), test
    assert all(CLAIMS.values()), "every class names at least one test"
    assert not set(NOT_TO_DECLARE) & set(CLAIMS)


# -- classes no other test exercises -------------------------------------------------------

SCENES = {"s2025": (dt.datetime(2025, 3, 1, tzinfo=dt.UTC), 100),
          "s2026": (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), 200)}  # fmt: skip
"""Two scenes of the same 16 x 16 grid: their acquisition time and their one value."""


@pytest.fixture(scope="module")
def api(
    live_api: LiveServer, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The live API with a point layer (``claims_points``: a date, a number, a name) and
    two scenes (``claims_scenes``)."""
    folder = tmp_path_factory.mktemp("claims")
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    points = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [112.0 + i / 100, 22.9]},
         "properties": {"name": f"p{i}", "n": i, "day": f"2024-05-0{i + 1}"}}
        for i in range(3)
    ]  # fmt: skip
    path = folder / "claims_points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": points}))
    source = VectorSource(path=path, collection_id="claims_points", title="claims", public=True)
    ingest_vector(url, source, settings, actor="pytest")
    for item, (when, value) in SCENES.items():
        tif = folder / f"{item}.tif"
        grid = from_origin(600_000, 2_540_000, 10, 10)
        profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 1, "dtype": "uint16",
                   "crs": "EPSG:4546", "transform": grid}  # fmt: skip
        with rasterio.open(tif, "w", **profile) as dst:
            dst.write(np.full((1, 16, 16), value, dtype=np.uint16))
        scene = RasterSource(paths=(tif,), collection_id="claims_scenes", item_id=item,
                             datetime=when, public=True)  # fmt: skip
        ingest_raster(url, scene, settings)
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        wait_for_collection(client, "claims_points")
        wait_for_collection(client, "claims_scenes")
        yield client


def test_the_tilesets_list_and_the_collections_link(api: httpx.Client) -> None:
    """A layer's tilesets (one per tile matrix set, vector) are linked from the layer as
    ``tilesets-vector``; each tileset and its tiling scheme answer, and its tiles hold
    the layer's features."""
    document = api.get("/collections/claims_points").json()
    linked = [
        link["href"] for link in document["links"]
        if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
    ]  # fmt: skip
    assert [httpx.URL(h).path for h in linked] == ["/collections/claims_points/tiles"]
    listing = api.get(linked[0])
    assert listing.status_code == 200 and listing.headers["content-type"] == "application/json"
    tilesets = listing.json()["tilesets"]
    assert {t["tileMatrixSetURI"].rsplit("/", 1)[1] for t in tilesets} == set(TILE_MATRIX_SETS)
    for tileset in tilesets:
        assert tileset["dataType"] == "vector"
        links = {link["rel"]: link["href"] for link in tileset["links"]}
        tms_id = tileset["tileMatrixSetURI"].rsplit("/", 1)[1]
        scheme = api.get(links["http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"]).json()
        assert scheme["id"] == tms_id and scheme["crs"] == tileset["crs"]
        own = api.get(links["self"]).json()
        template = next(link["href"] for link in own["links"] if link["rel"] == "item")
        t = TILE_MATRIX_SETS[tms_id].tile(112.01, 22.9, 10)
        tile = api.get(template.format(tileMatrix=10, tileRow=t.y, tileCol=t.x))
        assert tile.status_code == 200, (tms_id, tile.text)
        decoded = mapbox_vector_tile.decode(tile.content)["claims_points"]["features"]
        assert {f["properties"]["name"] for f in decoded} == {"p0", "p1", "p2"}


def _values(response: httpx.Response) -> set[int]:
    assert response.status_code == 200, response.text
    with rasterio.io.MemoryFile(response.content) as file, file.open() as dataset:
        return {int(v) for v in np.unique(dataset.read())}


def test_coverage_datetime_picks_the_scenes(api: httpx.Client) -> None:
    """``datetime`` on the coverage: an instant is the mosaic as it was then (the newest
    scene before it), an interval the scenes in it; the same as ``subset=time(...)``."""
    url = "/collections/claims_scenes/coverage"
    cases = {
        None: 200,
        "2025-06-01": 100,
        "2026-03-01T00:00:00Z": 200,
        "2025-01-01/2025-12-31": 100,
        "2026-01-01T00:00:00Z/..": 200,
        "../2025-12-31": 100,
    }
    for when, value in cases.items():
        params = {} if when is None else {"datetime": when}
        assert _values(api.get(url, params=params)) == {value}, when
    as_subset = api.get(url, params={"subset": 'time("2025-01-01":"2025-12-31")'})
    assert as_subset.content == api.get(url, params={"datetime": "2025-01-01/2025-12-31"}).content
    before = api.get(url, params={"datetime": "2020-01-01"})
    assert before.status_code == 404 and "no scene" in before.json()["description"]
    bad = api.get(url, params={"datetime": "yesterday"})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameterValue"


def test_every_process_description(api: httpx.Client) -> None:
    """Each process as OGC's process description has it: an id and a version, how it can
    run, its inputs and outputs each with a JSON Schema, a link to run it."""
    listed = api.get("/processes").json()["processes"]
    assert listed
    for summary in listed:
        response = api.get(f"/processes/{summary['id']}")
        assert response.status_code == 200
        process = response.json()
        assert process["id"] == summary["id"] and isinstance(process["version"], str)
        assert set(process["jobControlOptions"]) <= {"sync-execute", "async-execute", "dismiss"}
        assert process["inputs"] and process["outputs"]
        for name, described in [*process["inputs"].items(), *process["outputs"].items()]:
            assert isinstance(described["schema"], dict) and described["schema"], name
            assert described.get("minOccurs", 1) <= described.get("maxOccurs", 1) or (
                described.get("maxOccurs") == "unbounded"
            ), name
        rels = {link["rel"]: link["href"] for link in process["links"]}
        assert httpx.URL(rels["self"]).path == f"/processes/{process['id']}"
        execute = rels["http://www.opengis.net/def/rel/ogc/1.0/execute"]
        assert httpx.URL(execute).path == f"/processes/{process['id']}/execution"


JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def test_queryables_and_schemas_are_json_schema_2020_12(api: httpx.Client) -> None:
    """Queryables (Features Part 3, ``/req/queryables/get-queryables-response``) and
    schemas (Part 5, ``/req/schemas/json-schema``) are JSON Schema 2020-12 documents with
    the resource's URI as ``$id``, served as ``application/schema+json``."""
    base = str(api.base_url).rstrip("/")
    for resource in ("queryables", "schema"):
        path = f"/collections/claims_points/{resource}"
        response = api.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/schema+json", resource
        body = response.json()
        assert body["$schema"] == JSON_SCHEMA, (resource, body["$schema"])
        assert body["$id"] == f"{base}{path}" and body["type"] == "object"


def test_the_schema_roles(api: httpx.Client) -> None:
    """The roles of Features Part 5 (feature core roles): one primary geometry, a spatial
    property; one primary instant, a temporal one; types on every other property."""
    body = api.get("/collections/claims_points/schema").json()
    roles = {name: p.get("x-ogc-role") for name, p in body["properties"].items()}
    assert list(roles.values()).count("primary-geometry") == 1
    geometry = next(p for p in body["properties"].values()
                    if p.get("x-ogc-role") == "primary-geometry")  # fmt: skip
    assert geometry["format"].startswith("geometry-") and "type" not in geometry
    assert roles["day"] == "primary-instant" and body["properties"]["day"]["format"] == "date"
    assert list(roles.values()).count("primary-instant") == 1
    assert body["properties"]["n"]["type"] == "integer"
    assert body["properties"]["name"]["type"] == "string"
