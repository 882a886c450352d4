"""OGC API - Features over real HTTP, read by real clients: GDAL's OAPIF driver, OWSLib,
and plain requests that check paging, counts, CRSs, CQL2 filters and errors against the
demo cadastre as ingested."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pyogrio
import pytest
import shapely
import shapely.geometry
from owslib.ogcapi.features import Features
from support import LiveServer, ingest_cadastre

from spatial.catalog import delete_collection
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

COLLECTION = "ogc_parcels"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GK = "http://www.opengis.net/def/crs/EPSG/0/4546"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> gpd.GeoDataFrame:
    """The 2025 demo cadastre (GBK Shapefile, EPSG:4546), ingested as ``ogc_parcels``."""
    frame: gpd.GeoDataFrame = ingest_cadastre(
        tmp_path_factory.mktemp("ogc"), settings, COLLECTION, "宗地 2025"
    )
    return frame


@pytest.fixture(scope="module")
def api(live_api: LiveServer, source: gpd.GeoDataFrame) -> Iterator[httpx.Client]:
    """A client of the live API, once the cadastre is in its catalog."""
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        _eventually(lambda: COLLECTION in _ids(client))
        yield client


def _ids(client: httpx.Client) -> list[str]:
    return [c["id"] for c in client.get("/collections").json()["collections"]]


def _eventually(check: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("the API did not catch up with the catalog")
        time.sleep(0.1)


def test_landing_conformance_and_collection(api: httpx.Client) -> None:
    rels = {link["rel"] for link in api.get("/").json()["links"]}
    assert {"conformance", "data", "service-desc"} <= rels
    conforms = api.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conforms
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter" in conforms
    body = api.get(f"/collections/{COLLECTION}").json()
    assert body["title"] == "宗地 2025" and body["itemType"] == "feature"
    assert body["storageCrs"] == GK and CRS84 in body["crs"] and GK in body["crs"]
    west, south, east, north = body["extent"]["spatial"]["bbox"][0]
    assert 111.9 < west < east < 112.3 and 22.7 < south < north < 23.2


def test_gdal_reads_every_feature_through_paging(
    live_api: LiveServer, api: httpx.Client, source: gpd.GeoDataFrame, tmp_path: Path
) -> None:
    listing = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OAPIF:{live_api.url}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{COLLECTION} (title: 宗地 2025) (Multi Polygon)" in listing
    out = tmp_path / "read.geojson"
    subprocess.run(
        ["ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{live_api.url}", COLLECTION,
         "-oo", "PAGE_SIZE=1500"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    got = gpd.read_file(out)
    assert len(got) == len(source)
    got = got.set_index("dkbm").sort_index()
    want = source.set_index("DKBM").sort_index()
    assert list(got.index) == list(want.index)
    assert (got["dlmc"] == want["DLMC"]).all() and (got["qlr"] == want["QLR"]).all()
    assert "耕地" in set(got["dlmc"])
    # Served in CRS84: within a few centimetres of the source reprojected by PROJ.
    expected = want.geometry.to_crs(4326)
    gap = shapely.hausdorff_distance(got.geometry.values, expected.values)
    assert float(np.max(gap)) < 1e-6


def test_paging_follows_next_links_to_the_end(api: httpx.Client, source: gpd.GeoDataFrame) -> None:
    url: str | None = f"/collections/{COLLECTION}/items?limit=5000&skipGeometry=true"
    seen: list[int] = []
    while url:
        page = api.get(url).json()
        assert page["numberMatched"] == len(source)
        assert page["numberReturned"] == len(page["features"])
        seen += [f["id"] for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == len(source)
    prev = api.get(f"/collections/{COLLECTION}/items?limit=10&offset=30").json()
    assert "offset=20" in next(link["href"] for link in prev["links"] if link["rel"] == "prev")


def test_bbox_crs_and_properties(api: httpx.Client, source: gpd.GeoDataFrame) -> None:
    parcel = source.iloc[123]
    x, y = parcel.geometry.representative_point().coords[0]
    # bbox in the layer's own CRS, in its axis order (northing, easting), output likewise.
    response = api.get(
        f"/collections/{COLLECTION}/items",
        params={
            "bbox": f"{y - 0.01},{x - 0.01},{y + 0.01},{x + 0.01}",
            "bbox-crs": GK,
            "crs": GK,
            "properties": "dkbm,tbmj",
        },
    )
    assert response.headers["content-crs"] == f"<{GK}>"
    (feature,) = response.json()["features"]
    assert feature["properties"] == {"dkbm": parcel["DKBM"], "tbmj": parcel["TBMJ"]}
    served = shapely.geometry.shape(feature["geometry"])
    easting_northing = shapely.transform(served, lambda yx: yx[:, ::-1])
    assert shapely.hausdorff_distance(easting_northing, parcel.geometry) < 1e-3
    # The same point as a CRS84 bbox finds the same parcel.
    lon, lat = gpd.GeoSeries([shapely.Point(x, y)], crs=4546).to_crs(4326).iloc[0].coords[0]
    near = api.get(
        f"/collections/{COLLECTION}/items",
        params={"bbox": f"{lon - 1e-7},{lat - 1e-7},{lon + 1e-7},{lat + 1e-7}"},
    ).json()
    assert [f["properties"]["dkbm"] for f in near["features"]] == [parcel["DKBM"]]
    assert near["numberMatched"] == 1


def test_no_properties_is_an_empty_object(api: httpx.Client) -> None:
    """``properties=`` (an empty list) returns features with ``"properties": {}``, as
    valid JSON, on the list and the single feature (schemathesis found ``{{}}``)."""
    page = api.get(f"/collections/{COLLECTION}/items", params={"properties": "", "limit": 2})
    assert page.status_code == 200
    features = page.json()["features"]
    assert len(features) == 2 and all(f["properties"] == {} for f in features)
    one = api.get(f"/collections/{COLLECTION}/items/{features[0]['id']}?properties=")
    assert one.status_code == 200 and one.json()["properties"] == {}


def test_sortby_and_item(api: httpx.Client, source: gpd.GeoDataFrame) -> None:
    page = api.get(
        f"/collections/{COLLECTION}/items", params={"sortby": "-tbmj", "limit": 3}
    ).json()
    areas = [f["properties"]["tbmj"] for f in page["features"]]
    assert areas == sorted(source["TBMJ"], reverse=True)[:3]
    fid = page["features"][0]["id"]
    item = api.get(f"/collections/{COLLECTION}/items/{fid}")
    assert item.status_code == 200 and item.headers["content-type"] == "application/geo+json"
    assert item.json()["properties"]["tbmj"] == areas[0]
    html = api.get(f"/collections/{COLLECTION}/items?limit=2&f=html")
    assert html.headers["content-type"].startswith("text/html") and "dkbm" in html.text


def test_cql2_text_and_json_filters(api: httpx.Client, source: gpd.GeoDataFrame) -> None:
    def matched(**params: str) -> int:
        response = api.get(f"/collections/{COLLECTION}/items", params={"limit": 1, **params})
        assert response.status_code == 200, response.text
        return int(response.json()["numberMatched"])

    cultivated = int((source["DLMC"] == "耕地").sum())
    assert matched(filter="dlmc = '耕地'") == cultivated
    assert (
        matched(
            filter=json.dumps({"op": "=", "args": [{"property": "dlmc"}, "耕地"]}),
            **{"filter-lang": "cql2-json"},
        )
        == cultivated
    )
    big = int(((source["TBMJ"] > 5000) & (source["DLMC"] != "耕地")).sum())
    assert matched(filter="tbmj > 5000 AND NOT dlmc = '耕地'") == big
    assert matched(filter="dkbm LIKE '4453020010010000%'") == int(
        source["DKBM"].str.startswith("4453020010010000").sum()
    )
    assert matched(filter="dlbm IN ('0101', '0301')") == int(
        source["DLBM"].isin(["0101", "0301"]).sum()
    )
    box = source.total_bounds
    assert matched(
        # In the axis order of EPSG:4546: northing first.
        filter=f"S_INTERSECTS(geometry, BBOX({box[1]},{box[0]},{box[3]},{box[2]}))",
        **{"filter-crs": GK},
    ) == len(source)


@pytest.mark.parametrize(
    "text",
    [
        "dkbm = 'x'' OR ''1''=''1'",
        "dkbm = 'a'')); DROP TABLE layers.ogc_parcels; --'",
        "dlmc = '耕地' /* comment */",
    ],
)
def test_cql2_injection_is_data(api: httpx.Client, text: str) -> None:
    response = api.get(f"/collections/{COLLECTION}/items", params={"filter": text})
    assert response.status_code in {200, 400}
    if response.status_code == 200:
        assert response.json()["numberMatched"] == 0
    assert _count(api) > 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("dkbm = 'a'; DROP TABLE layers.ogc_parcels", "not valid cql2-text"),
        ('"dkbm; DROP TABLE x" = 1', "has no property"),
        ('"dkbm"") OR 1=1 --" = \'a\'', "has no property"),
        ("pg_sleep(10) = 1", "unknown function 'pg_sleep'"),
        ("dkbm = 1", "cannot compare text"),
        ("tbmj = 'lots'", "cannot compare numeric"),
        ("S_INTERSECTS(geometry, POINT(1))", "expected the geometry property and a geometry"),
        ("T_DURING(djrq, DATE('2020-01-01'))", "t_during needs an interval"),
    ],
)
def test_bad_filters_are_400_with_the_reason(api: httpx.Client, text: str, reason: str) -> None:
    response = api.get(f"/collections/{COLLECTION}/items", params={"filter": text})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidParameterValue" and reason in body["description"]
    assert _count(api) > 0


def _count(api: httpx.Client) -> int:
    return int(api.get(f"/collections/{COLLECTION}/items?limit=1").json()["numberMatched"])


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/collections/nosuch", 404),
        ("/collections/nosuch/items", 404),
        (f"/collections/{COLLECTION}/items/999999999", 404),
        (f"/collections/{COLLECTION}/items/abc", 404),
        (f"/collections/{COLLECTION}/items?limit=0", 400),
        (f"/collections/{COLLECTION}/items?limit=ten", 400),
        (f"/collections/{COLLECTION}/items?bbox=1,2,3", 400),
        (f"/collections/{COLLECTION}/items?bbox=1,5,3,2", 400),
        (f"/collections/{COLLECTION}/items?crs=EPSG:9999", 400),
        (f"/collections/{COLLECTION}/items?sortby=nosuch", 400),
        (f"/collections/{COLLECTION}/items?properties=nosuch", 400),
        (f"/collections/{COLLECTION}/items?unknown=1", 400),
        (f"/collections/{COLLECTION}/items?f=xml", 400),
        (f"/collections/{COLLECTION}/items?skipGeometry=maybe", 400),
        (f"/collections/{COLLECTION}/items?datetime=../..", 400),
    ],
)
def test_errors_are_ogc_exceptions(api: httpx.Client, path: str, status: int) -> None:
    response = api.get(path)
    assert response.status_code == status
    body = response.json()
    assert {"code", "description"} <= set(body) <= {"code", "type", "description"}
    assert body["description"]


def test_queryables_describe_the_columns(api: httpx.Client) -> None:
    body = api.get(f"/collections/{COLLECTION}/queryables").json()
    assert body["properties"]["dkbm"] == {"title": "dkbm", "type": "string"}
    assert body["properties"]["tbmj"]["type"] == "number"
    assert body["properties"]["djrq"]["format"] == "date"
    assert "geometry" in body["properties"]
    # The schema (Part 5) keeps the source file's names as titles.
    schema = api.get(f"/collections/{COLLECTION}/schema").json()
    assert schema["properties"]["dkbm"] == {"title": "DKBM", "type": "string"}
    assert schema["properties"]["djrq"]["x-ogc-role"] == "primary-instant"


def test_owslib_reads_collections_and_filtered_items(
    live_api: LiveServer, api: httpx.Client, source: gpd.GeoDataFrame
) -> None:
    client = Features(live_api.url)
    assert COLLECTION in [c["id"] for c in client.collections()["collections"]]
    box = gpd.GeoSeries([source.geometry.iloc[0]], crs=4546).to_crs(4326).total_bounds
    items = client.collection_items(COLLECTION, bbox=list(box), limit=50)
    assert source["DKBM"].iloc[0] in [f["properties"]["dkbm"] for f in items["features"]]
    filtered = client.collection_items(COLLECTION, filter="dlmc = '林地'", limit=5)
    assert filtered["numberMatched"] == int((source["DLMC"] == "林地").sum())
    assert {f["properties"]["dlmc"] for f in filtered["features"]} == {"林地"}


def test_a_new_collection_appears_and_a_deleted_one_goes(
    api: httpx.Client, settings: Settings, tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "points.geojson"
    gpd.GeoDataFrame(
        {"name": ["a", "b"]}, geometry=[shapely.Point(112.1, 23.0), shapely.Point(112.2, 23.1)],
        crs="EPSG:4490",
    ).to_file(path)  # fmt: skip
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    ingest_vector(
        url, VectorSource(path=path, collection_id="ogc_points", title="p", public=True), settings
    )
    _eventually(lambda: "ogc_points" in _ids(api))
    assert api.get("/collections/ogc_points/items").json()["numberMatched"] == 2
    # pygeoapi's pages follow the catalog too (not its once-per-process configuration).
    page = api.get("/collections/ogc_points?f=html")
    assert page.status_code == 200 and "/collections/ogc_points/items" in page.text
    with engine(database_url) as eng, eng.begin() as conn:
        delete_collection(conn, "ogc_points")
    _eventually(lambda: "ogc_points" not in _ids(api))
    assert api.get("/collections/ogc_points/items").status_code == 404
    with psycopg.connect(database_url) as conn:
        conn.execute("DROP TABLE layers.ogc_points")


def test_ogctests_features_core_passes(
    live_api: LiveServer, api: httpx.Client, tmp_path: Path
) -> None:
    """OGC's black-box verifier (PyPI ``ogctests``, installed by ``make install`` in its own
    venv because it pins old versions of our dependencies) against the live server."""
    python = Path(__file__).resolve().parent.parent / ".venv-ogctests" / "bin" / "python"
    assert python.exists(), "run `make install`: it installs ogctests into .venv-ogctests"
    # Its own pytest run of the suite (what ``python -m ogctests`` does), with one line per
    # failure; "-p no:warnings" keeps this project's warning filters out of it.
    suite = python.parent.parent / "lib" / "python3.11" / "site-packages" / "ogctests"
    done = subprocess.run(
        [str(python), "-m", "pytest", str(suite / "features" / "core"), "-p", "no:warnings",
         "-p", "no:cacheprovider", "--tb=line", "-q", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=600, cwd=tmp_path,
        env={**os.environ, "INSTANCE_URL": live_api.url},
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in summary and "failed" not in summary


@pytest.mark.parametrize("fmt", ["csv", "fgb", "gpkg"])
def test_items_as_files(
    api: httpx.Client, source: gpd.GeoDataFrame, fmt: str, tmp_path: Path
) -> None:
    """The same page as CSV (WKT), FlatGeobuf and GeoPackage, read back by GDAL."""
    response = api.get(
        f"/collections/{COLLECTION}/items",
        params={"f": fmt, "limit": 25, "sortby": "dkbm", "filter": "dlmc = '耕地'", "crs": GK},
    )
    assert response.status_code == 200, response.text
    assert f'filename="{COLLECTION}.{fmt}"' in response.headers["content-disposition"]
    path = tmp_path / f"page.{fmt}"
    path.write_bytes(response.content)
    options = {"X_POSSIBLE_NAMES": "none", "GEOM_POSSIBLE_NAMES": "wkt"} if fmt == "csv" else {}
    got = pyogrio.read_dataframe(path, **options)
    want = source[source["DLMC"] == "耕地"].sort_values("DKBM").head(25)
    assert list(got["dkbm"]) == list(want["DKBM"]) and list(got["qlr"]) == list(want["QLR"])
    if fmt != "csv":
        assert got.crs.to_epsg() == 4546
    # x/y in easting/northing order, as GIS files store them, whatever the CRS's axis order
    gap = shapely.hausdorff_distance(got.geometry.values, want.geometry.values)
    assert float(np.max(gap)) < 1e-3


def test_the_catalog_is_searchable_as_records(api: httpx.Client) -> None:
    listed = {c["id"]: c for c in api.get("/collections").json()["collections"]}
    assert listed["catalog"]["itemType"] == "record"
    assert api.get("/collections/catalog").json()["itemType"] == "record"
    found = api.get(
        "/collections/catalog/items", params={"q": "宗地 2025", "type": "vector", "limit": 1000}
    ).json()
    assert COLLECTION in [r["id"] for r in found["features"]]
    for r in found["features"]:  # every word somewhere in the record's text
        text = " ".join([r["id"], r["properties"]["title"], r["properties"]["description"],
                         *r["properties"]["keywords"]])  # fmt: skip
        assert "宗地" in text and "2025" in text
    assert found["numberMatched"] == len(found["features"])
    record = next(r for r in found["features"] if r["id"] == COLLECTION)
    assert record["properties"]["featureCount"] > 0 and record["geometry"]["type"] == "Polygon"
    near = api.get(
        "/collections/catalog/items", params={"bbox": "112.0,22.8,112.3,23.2", "limit": 1000}
    ).json()
    assert COLLECTION in [r["id"] for r in near["features"]]
    far = api.get(
        "/collections/catalog/items", params={"bbox": "100,10,101,11", "limit": 1000}
    ).json()
    assert COLLECTION not in [r["id"] for r in far["features"]]
    assert far["numberMatched"] < near["numberMatched"]
    assert api.get("/collections/catalog/items", params={"type": "pdf"}).status_code == 400
    # The catalog is a Features collection of records; Records 1.0 itself is not claimed
    # (api/conformance.py says which of its requirements are missing).
    conforms = api.get("/conformance").json()["conformsTo"]
    assert not [c for c in conforms if "ogcapi-records-1" in c]


def test_an_unacceptable_accept_header_is_406(api: httpx.Client) -> None:
    refused = api.get(f"/collections/{COLLECTION}/items", headers={"Accept": "application/xml"})
    assert refused.status_code == 406 and refused.json()["code"] == "NotAcceptable"
    assert "text/csv" in refused.json()["description"]
    for accept, media in (
        ("application/geo+json, application/json;q=0.9", "application/geo+json"),
        ("text/csv", "text/csv"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html"),
        ("application/xml, */*", "application/geo+json"),
    ):
        response = api.get(f"/collections/{COLLECTION}/items?limit=1", headers={"Accept": accept})
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
