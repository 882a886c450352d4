"""pygeoapi as the protocol engine: its documents and pages over the platform catalog.

The collection documents are pygeoapi's, from the configuration generated from the
catalog; every link they give answers. Its HTML and JSON-LD pages read the layer through
the platform's provider plugin and agree with the GeoJSON fast path. Every page loads
its scripts and styles from this server, and the items page draws its features in a
real headless Chromium with no other origin reachable.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import httpx
import pytest
from selenium import webdriver
from support import LiveServer, ingest_cadastre, wait_for_collection

from spatial.settings import Settings

COLLECTION = "web_parcels"
GEOJSON = "application/geo+json"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> gpd.GeoDataFrame:
    frame: gpd.GeoDataFrame = ingest_cadastre(
        tmp_path_factory.mktemp("web"), settings, COLLECTION, "宗地 2025 (web)"
    )
    return frame


@pytest.fixture(scope="module")
def api(live_api: LiveServer, source: gpd.GeoDataFrame) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        wait_for_collection(client, COLLECTION)
        yield client


def test_collection_document_is_pygeoapis_and_every_link_answers(api: httpx.Client) -> None:
    body = api.get(f"/collections/{COLLECTION}").json()
    assert body["title"] == "宗地 2025 (web)" and body["itemType"] == "feature"
    assert body["storageCrs"] == "http://www.opengis.net/def/crs/EPSG/0/4546"
    assert "http://www.opengis.net/def/crs/EPSG/0/4490" in body["crs"]
    items = {link["type"] for link in body["links"] if link["rel"] == "items"}
    assert items == {GEOJSON, "text/html", "application/ld+json", "text/csv",
                     "application/flatgeobuf", "application/geopackage+sqlite3"}  # fmt: skip
    for link in body["links"]:
        response = api.get(link["href"])
        assert response.status_code == 200, link
        media = response.headers["content-type"].split(";")[0]
        assert media == link["type"] or (link["type"], media) in {
            ("application/json", "application/geo+json"),
            ("application/json", "application/ld+json"),  # f=jsonld links typed as json
        }, (link, media)


def test_jsonld_and_html_pages_agree_with_the_geojson_fast_path(
    api: httpx.Client, source: gpd.GeoDataFrame
) -> None:
    west, south, east, north = (
        gpd.GeoSeries([source.geometry.iloc[40].buffer(200)], crs=4546).to_crs(4326).total_bounds
    )
    query = {"bbox": f"{west},{south},{east},{north}", "sortby": "-tbmj", "limit": 50}
    fast = api.get(f"/collections/{COLLECTION}/items", params=query).json()
    linked = api.get(f"/collections/{COLLECTION}/items", params={**query, "f": "jsonld"}).json()
    assert fast["numberMatched"] > 1
    # The bbox reached the provider in the storage CRS and its axis order (northing first).
    ids = [f["id"] for f in fast["features"]]
    assert [int(f["@id"].rsplit("/", 1)[1]) for f in linked["features"]] == ids
    page = api.get(f"/collections/{COLLECTION}/items", params={**query, "f": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for feature in fast["features"]:
        assert feature["properties"]["dkbm"] in page.text
    fid = fast["features"][0]["id"]
    one = api.get(f"/collections/{COLLECTION}/items/{fid}", params={"f": "jsonld"}).json()
    assert one["dkbm"] == fast["features"][0]["properties"]["dkbm"]  # JSON-LD: flat
    assert one["@id"].endswith(f"/collections/{COLLECTION}/items/{fid}")
    assert api.get(f"/collections/{COLLECTION}/items/999999999?f=html").status_code == 404


def test_queryables_work_as_query_parameters(api: httpx.Client, source: gpd.GeoDataFrame) -> None:
    forests = source.index[source["DLMC"] == "林地"]
    fast = api.get(f"/collections/{COLLECTION}/items", params={"dlmc": "林地", "limit": 5}).json()
    assert fast["numberMatched"] == len(forests) > 0
    assert {x["properties"]["dlmc"] for x in fast["features"]} == {"林地"}
    # The same parameter through pygeoapi's handler and the provider plugin.
    linked = api.get(
        f"/collections/{COLLECTION}/items", params={"dlmc": "林地", "limit": 10000, "f": "jsonld"}
    ).json()
    assert len(linked["features"]) == len(forests)
    area = float(source["TBMJ"].iloc[7])
    exact = api.get(f"/collections/{COLLECTION}/items", params={"tbmj": str(area)}).json()
    assert exact["numberMatched"] == int((source["TBMJ"] == area).sum())
    bad = api.get(f"/collections/{COLLECTION}/items", params={"tbmj": "big"})
    assert bad.status_code == 400 and "tbmj" in bad.json()["description"]
    conforms = api.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters" in (
        conforms
    )


def _pages(api: httpx.Client) -> list[str]:
    fid = api.get(f"/collections/{COLLECTION}/items?limit=1").json()["features"][0]["id"]
    return [
        "/?f=html",
        "/conformance?f=html",
        "/collections?f=html",
        f"/collections/{COLLECTION}?f=html",
        f"/collections/{COLLECTION}/queryables?f=html",
        f"/collections/{COLLECTION}/schema?f=html",
        f"/collections/{COLLECTION}/items?f=html",
        f"/collections/{COLLECTION}/items/{fid}?f=html",
        "/collections/catalog/items?f=html",
        "/openapi?f=html",
        "/processes?f=html",
        "/processes/buffer?f=html",
        "/jobs?f=html",
    ]


_ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.I)


def test_every_page_loads_its_assets_from_this_server(api: httpx.Client) -> None:
    base = str(api.base_url).rstrip("/")
    assets: set[str] = set()
    for path in _pages(api):
        page = api.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for url in _ASSET.findall(page.text):
            assert url.startswith(base) or not re.match(r"^([a-z]+:)?//", url), (path, url)
            assets.add(url)
    assert any("/vendor/leaflet/" in a for a in assets)
    assert any("/vendor/bootstrap/" in a for a in assets)
    stylesheets_and_scripts = [a for a in assets if a.endswith((".js", ".css", ".png", ".ico"))]
    for url in stylesheets_and_scripts:
        response = api.get(url)
        assert response.status_code == 200 and len(response.content) > 0, url


def _chromium() -> Any:
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                # Only loopback answers: a request to any other origin fails.
                "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"):  # fmt: skip
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or ""
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs chromium and chromium-driver (make install installs them)",
)
def test_items_page_draws_the_features_offline_in_chromium(api: httpx.Client) -> None:
    base = str(api.base_url).rstrip("/")
    driver = _chromium()
    try:
        driver.get(f"{base}/collections/{COLLECTION}/items?f=html&limit=25")
        deadline = time.monotonic() + 20
        drawn = 0
        while time.monotonic() < deadline:
            drawn = driver.execute_script(
                "return document.querySelectorAll('path.leaflet-interactive').length"
            )
            if drawn >= 25:
                break
            time.sleep(0.2)
        assert drawn == 25, "Leaflet drew the page's 25 parcels"
        assert driver.execute_script("return typeof L") == "object"
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded and all(name.startswith(base) for name in loaded), loaded
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


def test_cql2_filters_reach_pygeoapis_pages_as_the_platform_parsed_them(
    api: httpx.Client,
) -> None:
    # CQL2 that pygeoapi's own (ECQL) parser refuses: function-style temporal and
    # case-insensitive operators, and filter-lang=cql2-text.
    cql2 = "T_AFTER(djrq, DATE('2015-01-01')) AND CASEI(dlmc) LIKE CASEI('%地')"
    query = {"filter": cql2, "filter-lang": "cql2-text", "limit": 7, "sortby": "dkbm"}
    fast = api.get(f"/collections/{COLLECTION}/items", params=query).json()
    ids = [f["id"] for f in fast["features"]]
    assert len(ids) == 7
    linked = api.get(f"/collections/{COLLECTION}/items", params={**query, "f": "jsonld"}).json()
    assert [int(f["@id"].rsplit("/", 1)[1]) for f in linked["features"]] == ids
    page = api.get(f"/collections/{COLLECTION}/items", params={**query, "f": "html"})
    assert page.status_code == 200
    assert all(f"/items/{i}" in page.text for i in ids)
    # pygeoapi's next link keeps the filter it never saw.
    nxt = re.search(r'href="([^"]*offset=7[^"]*)"', page.text)
    assert nxt is not None and "T_AFTER" in httpx.URL(nxt[1].replace("&amp;", "&")).params["filter"]
    bad = api.get(f"/collections/{COLLECTION}/items", params={"filter": "nosuch = 1", "f": "html"})
    assert bad.status_code == 400 and "nosuch" in bad.json()["description"]
