"""The catalog as OGC API - Records (``/collections/catalog``) on a live server: sorting
(``sortby``, ascending and descending, by text and by number), text search (``q``: terms
separated by commas are alternatives, the words of a term a phrase), and the records as
HTML, each checked against the catalog's own listing and against layers made for it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import LiveServer, wait_for_collection

from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

LAYERS = {  # id: (title, description, number of features)
    "rec_stations": ("Water Quality Stations", "Where the water quality of rivers is read", 1),
    "rec_supply": ("quality of water supply", "Pipes and mains", 2),
    "rec_rivers": ("Rivers and Lakes 河湖", "河流 and lakes of Yunfu", 3),
    "rec_shores": ("Lake shores", "Water \t  QUALITY along the shores", 10),
    "rec_parcels": ("宗地 测试", "地籍 parcels, for the records tests", 12),
}
OURS = set(LAYERS)


def _ingest(settings: Settings, folder: Path, collection: str) -> None:
    title, description, count = LAYERS[collection]
    points = [
        {"type": "Feature", "properties": {"n": i},
         "geometry": {"type": "Point", "coordinates": [112.0 + i / 100, 22.9]}}
        for i in range(count)
    ]  # fmt: skip
    path = folder / f"{collection}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": points}))
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(
        path=path, collection_id=collection, title=title, description=description, public=True
    )
    ingest_vector(url, source, settings, actor="pytest")


@pytest.fixture(scope="module")
def api(
    live_api: LiveServer, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The live API once the catalog holds the five layers made for these tests."""
    folder = tmp_path_factory.mktemp("records")
    for collection in LAYERS:
        _ingest(settings, folder, collection)
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        for collection in LAYERS:
            wait_for_collection(client, collection)
        yield client


def _records(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Every record the search finds, in the order served."""
    response = api.get("/collections/catalog/items", params={"limit": "10000", **params})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["numberMatched"] == page["numberReturned"] == len(page["features"])
    records: list[dict[str, Any]] = page["features"]
    return records


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


def _value(record: dict[str, Any], name: str) -> Any:
    return record["id"] if name == "id" else record["properties"][name]


# -- sorting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sortby", ["title", "+title", "-title", "id", "-id", "featureCount", "-featureCount"]
)
def test_sortby_orders_every_record(api: httpx.Client, sortby: str) -> None:
    """The order is the catalog's records sorted by the property's value (numbers as
    numbers), ascending by default or with ``+``, descending with ``-``."""
    listing = _records(api)
    assert set(_ids(listing)) >= OURS
    name = sortby.lstrip("+-")
    known = [r for r in listing if _value(r, name) is not None]
    expected = sorted(known, key=lambda r: _value(r, name), reverse=sortby.startswith("-"))
    got = [r for r in _records(api, sortby=sortby) if _value(r, name) is not None]
    assert [_value(r, name) for r in got] == [_value(r, name) for r in expected]
    assert len(_records(api, sortby=sortby)) == len(listing)


def test_sortby_our_layers(api: httpx.Client) -> None:
    """The layers made here, in the orders worked out by hand: feature counts 1, 2, 3,
    10, 12 (not 1, 10, 12, 2, 3 as text), titles by code point (capitals first)."""

    def ours(**params: str) -> list[str]:
        return [i for i in _ids(_records(api, **params)) if i in OURS]

    by_count = ["rec_stations", "rec_supply", "rec_rivers", "rec_shores", "rec_parcels"]
    assert ours(sortby="featureCount") == by_count
    assert ours(sortby="-featureCount") == by_count[::-1]
    by_title = ["rec_shores", "rec_rivers", "rec_stations", "rec_supply", "rec_parcels"]
    assert ours(sortby="title") == by_title
    assert ours(sortby="-title") == by_title[::-1]
    by_id = sorted(OURS)
    assert ours(sortby="id") == by_id and ours(sortby="-id") == by_id[::-1]
    # several keys: the first decides, the next breaks its ties
    assert ours(sortby="type,-featureCount") == by_count[::-1]
    # a property left out of the answer still sorts it
    assert ours(sortby="-featureCount", properties="title") == by_count[::-1]
    assert ours(sortby="featureCount", q="water") == ["rec_stations", "rec_supply", "rec_shores"]


def test_sorted_pages_follow_each_other(api: httpx.Client) -> None:
    whole = _ids(_records(api, sortby="-title"))
    pages: list[str] = []
    for offset in range(0, len(whole), 2):
        response = api.get(
            "/collections/catalog/items", params={"sortby": "-title", "limit": 2, "offset": offset}
        )
        pages += _ids(response.json()["features"])
    assert pages == whole


def test_an_unknown_sort_property_is_400(api: httpx.Client) -> None:
    response = api.get("/collections/catalog/items", params={"sortby": "nosuch"})
    assert response.status_code == 400 and response.json()["code"] == "InvalidParameterValue"


# -- text search ---------------------------------------------------------------------------


def _texts(record: dict[str, Any]) -> list[str]:
    p = record["properties"]
    return [t.casefold() for t in (record["id"], p["title"], p["description"], *p["keywords"])]


def _found(record: dict[str, Any], q: str) -> bool:
    """OGC API - Records: any comma-separated term; a term's words together, in order,
    separated by any white space, in one of the searched texts; in any case."""
    terms = [term.casefold().split() for term in q.split(",")]
    patterns = [r"\s+".join(map(re.escape, words)) for words in terms if words]
    return any(re.search(p, text) for p in patterns for text in _texts(record))


QUERIES = {  # q: the layers made here it finds
    "water": {"rec_stations", "rec_supply", "rec_shores"},
    "WATER": {"rec_stations", "rec_supply", "rec_shores"},
    "water quality": {"rec_stations", "rec_shores"},  # white space of any kind and length
    "Quality  Water": set(),  # the words in another order are another phrase
    "quality of water": {"rec_supply"},
    "water supply": {"rec_supply"},
    "河湖,宗地": {"rec_rivers", "rec_parcels"},
    "lake shores,water supply": {"rec_shores", "rec_supply"},
    "lakes of yunfu": {"rec_rivers"},
    "rec_parcels": {"rec_parcels"},
    "records tests,nosuchword": {"rec_parcels"},
    "nosuchword": set(),
}


@pytest.mark.parametrize("q", list(QUERIES))
def test_q_finds_terms_and_phrases(api: httpx.Client, q: str) -> None:
    found = _records(api, q=q)
    assert {i for i in _ids(found) if i in OURS} == QUERIES[q]
    everything = _records(api)
    assert _ids(found) == [r["id"] for r in everything if _found(r, q)]


def test_q_combines_with_the_other_criteria(api: httpx.Client) -> None:
    """Every parameter must hold (AND): text, kind, place."""
    found = _ids(_records(api, q="water,河湖", type="vector", bbox="111.9,22.8,112.2,23.0"))
    assert OURS & set(found) == {"rec_stations", "rec_supply", "rec_shores", "rec_rivers"}
    assert not OURS & set(_ids(_records(api, q="water", bbox="100,10,101,11")))
    assert not OURS & set(_ids(_records(api, q="water", type="raster")))


# -- HTML ----------------------------------------------------------------------------------


def _page(api: httpx.Client, path: str, **params: str) -> str:
    response = api.get(path, params={**params, "f": "html"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return html.unescape(response.text)


def test_the_records_as_html(api: httpx.Client) -> None:
    """The items page shows each record found (its title, a link to it) and no other;
    each record has its own page, as has the catalog."""
    base = str(api.base_url).rstrip("/")
    found = _records(api, q="water,河湖", sortby="title")
    page = _page(api, "/collections/catalog/items", q="water,河湖", sortby="title", limit="1000")
    for record in found:
        assert f"{base}/collections/catalog/items/{record['id']}" in page
        assert record["properties"]["title"] in page
    for missing in OURS - set(_ids(found)):
        assert f"/collections/catalog/items/{missing}" not in page
        assert LAYERS[missing][0] not in page
    # in the order served
    positions = [page.index(f'/collections/catalog/items/{i}"') for i in _ids(found)]
    assert positions == sorted(positions)
    one = _page(api, "/collections/catalog/items/rec_rivers")
    assert "Rivers and Lakes 河湖" in one and "河流 and lakes of Yunfu" in one
    assert f"{base}/collections/rec_rivers" in one  # the link to the collection it describes
    assert "Catalog" in _page(api, "/collections/catalog")
    assert api.get("/collections/catalog/items/nosuch", params={"f": "html"}).status_code == 404


# -- the records ---------------------------------------------------------------------------

PROFILE = "http://www.opengis.net/def/profile/OGC/0/ogc-record"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _check_record(api: httpx.Client, record: dict[str, Any]) -> None:
    """A record as OGC API - Records' record core asks: an identifier, GeoJSON, the
    catalog's link once, the record profile, a link to what it describes."""
    base = str(api.base_url).rstrip("/")
    assert isinstance(record["id"], str) and record["id"]
    assert record["type"] == "Feature"
    assert record["geometry"] is None or record["geometry"]["type"] == "Polygon"
    p = record["properties"]
    assert isinstance(p["title"], str) and isinstance(p["description"], str)
    assert p["type"] in {"vector", "raster", "gps"} and isinstance(p["keywords"], list)
    assert RFC3339.fullmatch(p["updated"]), p["updated"]
    rels = [link["rel"] for link in record["links"]]
    assert rels.count("collection") == 1
    catalog = next(link for link in record["links"] if link["rel"] == "collection")
    assert catalog["href"] == f"{base}/collections/catalog"
    assert [link["href"] for link in record["links"] if link["rel"] == "profile"] == [PROFILE]
    assert all(link["type"] for link in record["links"])
    described = next(link for link in record["links"] if link["rel"] == "describes")
    assert described["href"] == f"{base}/collections/{record['id']}"
    assert api.get(described["href"]).json()["id"] == record["id"]


def test_each_record_has_the_core_properties_and_links(api: httpx.Client) -> None:
    listed = [r for r in _records(api) if r["id"] in OURS]
    assert len(listed) == len(OURS)
    for record in listed:
        _check_record(api, record)
        title, description, count = LAYERS[record["id"]]
        p = record["properties"]
        assert (p["title"], p["description"], p["featureCount"]) == (title, description, count)
        alone = api.get(f"/collections/catalog/items/{record['id']}")
        assert alone.status_code == 200
        _check_record(api, alone.json())
        assert alone.json()["properties"] == p
