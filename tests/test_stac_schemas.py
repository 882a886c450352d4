"""Every kind of STAC document the server answers, validated against the STAC JSON Schemas
offline: the landing catalog, collections, items, item pages and searches (GET, POST and
their next pages), including the extensions each document declares in ``stac_extensions``.

The schemas are vendored under ``tests/data/stac-schemas/`` (where each came from is in the
README there), one file per URI (``https://`` + its path in that folder). They are loaded
into a :class:`referencing.Registry` whose ``retrieve`` refuses every URI, so a ``$ref``
that is not vendored fails the test instead of reaching for the network.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jsonschema_specifications
import pytest
from jsonschema import Draft7Validator, Draft201909Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import validator_for
from rastercases import Ingested, client_for, ingest_cases
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from support import LiveServer

from spatial import stac
from spatial.settings import Settings

SCHEMAS = Path(__file__).resolve().parent / "data" / "stac-schemas"
CORE = "https://schemas.stacspec.org/v{version}/{kind}-spec/json-schema/{kind}.json"
KINDS = {"Catalog": "catalog", "Collection": "collection", "Feature": "item"}


def _refuse(uri: str) -> Resource[Any]:
    """The registry's only way out for a URI it does not hold: an error, never the network."""
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class; mypy misses it


def _vendored() -> dict[str, Any]:
    """URI: schema, for every file under ``SCHEMAS``."""
    return {
        "https://" + path.relative_to(SCHEMAS).as_posix(): json.loads(path.read_text())
        for path in sorted(SCHEMAS.rglob("*.json"))
    }


def _registry() -> Registry[Any]:
    """The vendored schemas and the JSON Schema meta-schemas (which ship with jsonschema)."""
    resources = [(uri, Resource.from_contents(s)) for uri, s in _vendored().items()]
    own: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]  # attrs, as above
    return own.with_resources(resources).combine(jsonschema_specifications.REGISTRY).crawl()


REGISTRY = _registry()


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The innermost errors: a failed ``oneOf``/``anyOf`` says why in its context, for each
    branch; only the branch closest to matching is told (not "type must be Collection"
    for an item)."""
    if not error.context:
        yield error
        return
    branch = best_match(error.context).relative_schema_path[0]
    for inner in error.context:
        if inner.relative_schema_path[0] == branch:
            yield from _leaves(inner)


def problems(document: dict[str, Any], uri: str) -> list[str]:
    """What ``document`` breaks of the vendored schema ``uri`` ([] when it is valid)."""
    schema = REGISTRY.contents(uri)
    kind = validator_for(schema)
    validator = kind(schema, registry=REGISTRY, format_checker=kind.FORMAT_CHECKER)
    return sorted(
        {
            f"{uri}: {leaf.json_path}: {leaf.message[:300]}"
            for error in validator.iter_errors(document)
            for leaf in _leaves(error)
        }
    )


def schemas_of(document: dict[str, Any]) -> list[str]:
    """The core schema of the document's type and version, then its declared extensions."""
    kind = KINDS[document["type"]]
    core = CORE.format(version=document["stac_version"], kind=kind)
    return [core, *document.get("stac_extensions", [])]


def assert_valid(document: dict[str, Any]) -> None:
    """``document`` is valid against its core schema and every extension it declares."""
    assert document.get("stac_version") == stac.STAC_VERSION, document.get("stac_version")
    found = []
    for uri in schemas_of(document):
        assert uri in REGISTRY, f"{uri} is declared but not vendored in {SCHEMAS}"
        found += problems(document, uri)
    assert not found, f"{document['type']} {document.get('id')!r}:\n" + "\n".join(found)


def assert_valid_page(page: dict[str, Any]) -> None:
    """An item page or search answer: a GeoJSON FeatureCollection of valid STAC items,
    with links of the STAC link form and ``numberReturned`` telling the truth."""
    envelope = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["type", "features", "links"],
        "properties": {
            "type": {"const": "FeatureCollection"},
            "features": {"type": "array"},
            "links": {"type": "array", "items": {"$ref": f"{_item_uri()}#/definitions/link"}},
            "numberReturned": {"type": "integer", "minimum": 0},
        },
    }
    errors = [e.message for e in Draft7Validator(envelope, registry=REGISTRY).iter_errors(page)]
    assert not errors, errors
    assert page.get("numberReturned", len(page["features"])) == len(page["features"])
    for feature in page["features"]:
        assert_valid(feature)


def assert_bands_on_data_assets(item: dict[str, Any]) -> None:
    """Each data asset carries ``raster:bands``, one per band of its ``eo:bands``.

    The raster extension v1.1 defines ``raster:bands`` on assets only, so its schema checks
    nothing elsewhere: a band table left in the properties alone would pass validation yet
    be invisible to clients, and its ``nodata: null`` would go unchecked.
    """
    data = {k: a for k, a in item["assets"].items() if "data" in a.get("roles", [])}
    assert data, item["assets"]
    for key, asset in data.items():
        names = [b["name"] for b in asset["eo:bands"]]
        assert len(asset.get("raster:bands", [])) == len(names), (item["id"], key)


def _item_uri() -> str:
    return CORE.format(version=stac.STAC_VERSION, kind="item")


# -- the vendored schemas themselves ----------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_vendored_schema_is_at_its_id_and_every_ref_resolves_offline() -> None:
    vendored = _vendored()
    for name in ("catalog", "collection", "item"):
        assert CORE.format(version=stac.STAC_VERSION, kind=name) in vendored
    for uri, schema in vendored.items():
        assert schema["$id"].rstrip("#") == uri, f"{uri} holds the schema {schema['$id']}"
        Draft7Validator.check_schema(schema)
        resolver = REGISTRY.resolver(base_uri=uri)
        for ref in _refs(schema):
            # A miss raises here (Unresolvable), naming the $ref that is not vendored.
            resolver.lookup(ref)


def test_a_ref_that_is_not_vendored_fails_instead_of_fetching() -> None:
    missing = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
    validator = Draft7Validator({"$ref": missing}, registry=REGISTRY)
    with pytest.raises(Unresolvable) as caught:
        validator.validate({"type": "Feature"})
    assert missing in str(caught.value)


# -- what the server answers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes(settings: Settings, database_url: str) -> dict[str, Ingested]:
    """Every imagery case whose files are here, ingested (public) once for the module."""
    return ingest_cases(settings, database_url)


@pytest.fixture(scope="module")
def api(live_api: LiveServer, scenes: dict[str, Ingested]) -> Iterator[httpx.Client]:
    yield from client_for(live_api, scenes)


def _get(api: httpx.Client, path: str, **params: str) -> dict[str, Any]:
    answer = api.get(path, params=params)
    assert answer.status_code == 200, (path, answer.text)
    body: dict[str, Any] = answer.json()
    return body


def test_the_landing_page_is_a_valid_catalog(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    landing = _get(api, "/stac")
    assert landing["type"] == "Catalog"
    assert_valid(landing)


def test_every_collection_is_a_valid_collection(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    listed = _get(api, "/stac/collections")["collections"]
    mine = {s.case.collection for s in scenes.values()}
    assert mine <= {c["id"] for c in listed}
    for collection in listed:
        assert_valid(collection)
        assert _get(api, f"/stac/collections/{collection['id']}") == collection
    assert any("eo:bands" in c["summaries"] for c in listed if c["id"] in mine)


def test_every_item_is_a_valid_item_with_its_extensions(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    declared: set[str] = set()
    for ingested in scenes.values():
        cid = ingested.case.collection
        for iid in ingested.rows:
            item = _get(api, f"/stac/collections/{cid}/items/{iid}")
            assert item["id"] == iid and item["collection"] == cid
            assert_valid(item)
            assert_bands_on_data_assets(item)
            declared |= set(item["stac_extensions"])
    for name in ("eo", "projection", "raster"):
        assert any(f"/{name}/" in uri for uri in declared), (name, declared)


def test_item_pages_are_valid_item_collections(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    for ingested in scenes.values():
        cid = ingested.case.collection
        for path in (f"/stac/collections/{cid}/items", f"/collections/{cid}/items"):
            page = _get(api, path)
            assert sorted(f["id"] for f in page["features"]) == sorted(ingested.rows), path
            assert_valid_page(page)


def test_searches_and_their_next_pages_are_valid_item_collections(
    scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    mine = [s.case.collection for s in scenes.values()]
    every = {i for s in scenes.values() for i in s.rows}
    page = _get(api, "/stac/search", collections=",".join(mine), limit="1")
    seen = _walk_get(api, page, len(every))
    assert seen == every
    body: dict[str, Any] = {"collections": mine, "limit": 1}
    posted: set[str] = set()
    for _ in range(len(every) + 1):
        answer = api.post("/stac/search", json=body)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert_valid_page(page)
        posted |= {f["id"] for f in page["features"]}
        following = [link for link in page["links"] if link["rel"] == "next"]
        if not following:
            break
        body = following[0]["body"]
    assert posted == every
    filtered = _get(api, "/stac/search", filter="gsd > 0", limit="100")
    assert filtered["features"]
    assert_valid_page(filtered)


def _walk_get(api: httpx.Client, page: dict[str, Any], most: int) -> set[str]:
    """The ids of a GET search and its next pages, each page validated."""
    seen: set[str] = set()
    for _ in range(most + 1):
        assert_valid_page(page)
        seen |= {f["id"] for f in page["features"]}
        following = [link for link in page["links"] if link["rel"] == "next"]
        if not following:
            return seen
        href = following[0]["href"]
        assert urlsplit(href).netloc == urlsplit(str(api.base_url)).netloc
        answer = api.get(urljoin(str(api.base_url), href))
        assert answer.status_code == 200, answer.text
        page = answer.json()
    pytest.fail(f"the search had more than {most} pages of one item")


def test_queryables_is_a_valid_json_schema(scenes: dict[str, Ingested], api: httpx.Client) -> None:
    queryables = api.get("/stac/queryables").json()
    assert queryables["$schema"] == "https://json-schema.org/draft/2019-09/schema"
    Draft201909Validator.check_schema(queryables)


DATA, DELETE = object(), object()
"""Placeholders: the item's first data asset; a member removed rather than set."""
BREAKS: dict[str, tuple[str, tuple[Any, ...], Any]] = {
    "no assets": ("core", ("assets",), DELETE),
    "a datetime that is not one": ("core", ("properties", "datetime"), "now"),
    "a bbox of two numbers": ("core", ("bbox",), [1, 2]),
    "a cloud cover over 100%": ("eo", ("properties", "eo:cloud_cover"), 150),
    "an EPSG number as proj:code": ("projection", ("properties", "proj:code"), 4326),
    "a null nodata": ("raster", ("assets", DATA, "raster:bands", 0, "nodata"), None),
    "an unknown data type": ("raster", ("assets", DATA, "raster:bands", 0, "data_type"), "x"),
    "a file size in words": ("file", ("assets", DATA, "file:size"), "big"),
}
"""Ways to break a served item: the schema (core or extension) that must catch it, the
member changed, its new value."""


def _broken(item: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = next(k for k, a in item["assets"].items() if "data" in a["roles"])
    broken = copy.deepcopy(item)
    *parents, last = [data if step is DATA else step for step in path]
    node = broken
    for step in parents:
        node = node[step]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return broken


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_broken_item_is_refused(
    name: str, scenes: dict[str, Ingested], api: httpx.Client
) -> None:
    """The validation can fail, and each declared extension's schema is really applied."""
    where, path, value = BREAKS[name]
    ingested = next(iter(scenes.values()))
    iid = next(iter(ingested.rows))
    item = _get(api, f"/stac/collections/{ingested.case.collection}/items/{iid}")
    uri = next(u for u in schemas_of(item) if where == "core" or f"/{where}/" in u)
    assert problems(item, uri) == []
    assert problems(_broken(item, path, value), uri), (name, uri)
