"""The conformance classes the platform declares (``/conformance``): one list, each class
with the code that implements it.

A class is declared only when every requirement of it works and a test exercises it
(``tests/test_conformance_claims.py`` names that test for each class and fails when this
list and its registry differ). pygeoapi's own declarations are not used: they follow the
resource types configured, not what the platform's paths really do.
"""

from __future__ import annotations

from types import MappingProxyType

_OGC = "http://www.opengis.net/spec/"
CLASSES = MappingProxyType({
    # OGC API - Common
    f"{_OGC}ogcapi-common-1/1.0/conf/core": "api.routers.landing",
    f"{_OGC}ogcapi-common-1/1.0/conf/landing-page": "api.routers.landing",
    f"{_OGC}ogcapi-common-1/1.0/conf/json": "api.routers.landing",
    f"{_OGC}ogcapi-common-1/1.0/conf/html": "api.engine (pygeoapi's pages)",
    f"{_OGC}ogcapi-common-1/1.0/conf/oas30": "api.openapi",
    f"{_OGC}ogcapi-common-2/1.0/conf/collections": "api.routers.features",
    # OGC API - Features
    f"{_OGC}ogcapi-features-1/1.0/conf/core": "api.routers.features, spatial.features",
    f"{_OGC}ogcapi-features-1/1.0/conf/geojson": "spatial.features",
    f"{_OGC}ogcapi-features-1/1.0/conf/html": "api.engine (pygeoapi's pages)",
    f"{_OGC}ogcapi-features-1/1.0/conf/oas30": "api.openapi",
    f"{_OGC}ogcapi-features-2/1.0/conf/crs": "spatial.features (serving_crs)",
    f"{_OGC}ogcapi-features-3/1.0/conf/queryables": "api.provider (get_fields)",
    f"{_OGC}ogcapi-features-3/1.0/conf/queryables-query-parameters": "spatial.filters",
    f"{_OGC}ogcapi-features-3/1.0/conf/filter": "spatial.filters",
    f"{_OGC}ogcapi-features-3/1.0/conf/features-filter": "api.params (items_query)",
    f"{_OGC}ogcapi-features-4/1.0/conf/create-replace-delete": "spatial.edits",
    f"{_OGC}ogcapi-features-4/1.0/conf/update": "spatial.edits",
    f"{_OGC}ogcapi-features-4/1.0/conf/features": "api.routers.transactions",
    f"{_OGC}ogcapi-features-5/1.0/conf/schemas": "api.provider (pygeoapi's schema)",
    f"{_OGC}ogcapi-features-5/1.0/conf/core-roles-features": "api.provider",
    # CQL2
    f"{_OGC}cql2/1.0/conf/cql2-text": "spatial.filters (the cql2 parser)",
    f"{_OGC}cql2/1.0/conf/cql2-json": "spatial.filters",
    f"{_OGC}cql2/1.0/conf/basic-cql2": "spatial.filters",
    f"{_OGC}cql2/1.0/conf/advanced-comparison-operators": "spatial.filters",
    f"{_OGC}cql2/1.0/conf/case-insensitive-comparison": "spatial.filters",
    f"{_OGC}cql2/1.0/conf/basic-spatial-functions": "spatial.filters",
    f"{_OGC}cql2/1.0/conf/basic-spatial-functions-plus": "spatial.filters",
    f"{_OGC}cql2/1.0/conf/spatial-functions": "spatial.filters",
    f"{_OGC}cql2/1.0/conf/temporal-functions": "spatial.cql2_temporal",
    f"{_OGC}cql2/1.0/conf/arithmetic": "spatial.filters",
    # OGC API - Tiles
    f"{_OGC}ogcapi-tiles-1/1.0/conf/core": "api.routers.tiles, tiles.service",
    f"{_OGC}ogcapi-tiles-1/1.0/conf/tileset": "api.routers.tiles",
    f"{_OGC}ogcapi-tiles-1/1.0/conf/tilesets-list": "api.routers.tiles",
    f"{_OGC}ogcapi-tiles-1/1.0/conf/geodata-tilesets": "api.routers.tiles",
    f"{_OGC}ogcapi-tiles-1/1.0/conf/mvt": "tiles.mvt",
    f"{_OGC}tms/2.0/conf/json-tilematrixset": "tiles.tms",
    # OGC API - Coverages (2022 draft: /coverage, domain set, range type)
    f"{_OGC}ogcapi-coverages-1/1.0/conf/core": "api.routers.coverages",
    f"{_OGC}ogcapi-coverages-1/1.0/conf/oas30": "api.openapi",
    f"{_OGC}ogcapi-coverages-1/1.0/conf/geodata-coverage": "api.routers.coverages",
    f"{_OGC}ogcapi-coverages-1/1.0/conf/coverage-subset": "spatial.coverages",
    f"{_OGC}ogcapi-coverages-1/1.0/conf/coverage-rangesubset": "tiles.coverage",
    f"{_OGC}ogcapi-coverages-1/1.0/conf/coverage-bbox": "spatial.coverages",
    f"{_OGC}ogcapi-coverages-1/1.0/conf/coverage-datetime": "spatial.coverages",
    f"{_OGC}ogcapi-coverages-1/1.0/conf/coverage-scaling": "spatial.coverages (resolve)",
    # OGC API - Processes
    f"{_OGC}ogcapi-processes-1/1.0/conf/core": "api.routers.processes",
    f"{_OGC}ogcapi-processes-1/1.0/conf/ogc-process-description": "spatial.processes",
    f"{_OGC}ogcapi-processes-1/1.0/conf/json": "api.routers.processes",
    f"{_OGC}ogcapi-processes-1/1.0/conf/dismiss": "api.routers.processes",
    # OGC API - Styles (draft 20-009): /styles, /collections/{id}/styles
    f"{_OGC}ogcapi-styles-1/1.0/conf/core": "api.routers.styles",
    f"{_OGC}ogcapi-styles-1/1.0/conf/mapbox-styles": "layers.styles (maplibre_document)",
    f"{_OGC}ogcapi-styles-1/1.0/conf/sld-11": "layers.sld",
    # OGC API - Maps 1.0: /collections/{id}/map, /maps/{subsystem}/map
    f"{_OGC}ogcapi-maps-1/1.0/conf/core": "api.routers.map_images, tiles.render",
    f"{_OGC}ogcapi-maps-1/1.0/conf/crs": "api.routers.map_images",
    f"{_OGC}ogcapi-maps-1/1.0/conf/background": "api.routers.map_images",
    f"{_OGC}ogcapi-maps-1/1.0/conf/collection-map": "api.routers.map_images, api.engine",
    f"{_OGC}ogcapi-maps-1/1.0/conf/png": "tiles.render",
    f"{_OGC}ogcapi-maps-1/1.0/conf/jpeg": "tiles.render",
})  # fmt: skip
"""Every class declared, and where it is implemented.

Not declared, although pygeoapi would: OGC API - Records (the catalog is an OGC API -
Features collection of records, searchable with ``q``, properties and ``sortby``, but the
Records 1.0 requirements of its ``json``, ``searchable-catalog`` and ``sorting`` classes
are not all met: the catalog media type and profile links, ``ids``/``externalIds``,
``/sortables``), Processes ``job-list`` (``/jobs`` takes no filter parameters), Coverages
``html`` (no HTML for a coverage); Maps ``spatial-subsetting`` (``subset`` and ``center``
are not taken), ``scaling`` (no ``scale-denominator``), ``datetime`` (no
``subset=time(...)``); Styles ``sld-10``."""
