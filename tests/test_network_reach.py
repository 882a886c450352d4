"""Service areas and closest facilities by road, over HTTP (the ``service-area`` and
``closest-facility`` processes), on the small city of ``tests/networkcase.py`` (network
``nf_roads``, readable by everyone) with four stations:

- A at the north-west corner (0, 1000), B at the south-east corner (2000, 0), E on the
  one-way V3 at (2000, 500), C on the isolated X1 (unreachable), D far from every road.

From the incident at (100, -5) on H1: A is 12 + 120 = 132 s away (west on H1, up V1), B
228 s (east on H1), E 288 s going (H1 east, up V3) but 336 s coming back (V3 only
northwards: up to H2, west along it, down V1, east on H1).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import shapely
from networkcase import SETTINGS, lonlat
from networkcase import ingest as ingest_roads
from support import LiveServer, wait_for_collection

from spatial.catalog import get_collection
from spatial.db import engine
from spatial.features import LayerSchema
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.network import build as nb
from spatial.network import reach, routing
from spatial.settings import Settings

NETWORK = "nf_roads"
LOCAL, ARTERIAL = 30 / 3.6, 50 / 3.6
STATIONS = {"A": (0, 1000), "B": (2000, 0), "E": (2000, 500), "C": (3050, 3000),
            "D": (5000, 5000)}  # fmt: skip
INCIDENT = list(lonlat(100, -5))


@pytest.fixture(scope="module")
def api(
    live_api: LiveServer, settings: Settings, database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:  # fmt: skip
    folder = tmp_path_factory.mktemp("reach")
    record = ingest_roads(settings, folder, NETWORK, public=True)
    with psycopg.connect(database_url) as conn:
        nb.build(conn, record, SETTINGS)
    path = folder / "stations.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": name},
         "geometry": {"type": "Point", "coordinates": list(lonlat(x, y))}}
        for name, (x, y) in STATIONS.items()
    ]}))  # fmt: skip
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    ingest_vector(url, VectorSource(path=path, collection_id="nf_stations", title="Stations",
                                    public=True), settings, actor="pytest")  # fmt: skip
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        wait_for_collection(client, "nf_stations")
        yield client


def _run(api: httpx.Client, process: str, **inputs: Any) -> httpx.Response:
    return api.post(
        f"/processes/{process}/execution", json={"inputs": {"network": NETWORK, **inputs}}
    )


def _near(area: dict[str, Any], x: float, y: float) -> bool:
    """Whether the drawing's point (x, y) is inside the polygon or on its edge."""
    return bool(shapely.geometry.shape(area).distance(shapely.Point(lonlat(x, y))) < 1e-6)


def test_closest_facilities_by_travel_time_with_routes(api: httpx.Client) -> None:
    answer = _run(api, "closest-facility", point=INCIDENT, collection="nf_stations", k=3)
    assert answer.status_code == 200, answer.text
    found = answer.json()["facilities"]["features"]
    assert [f["properties"]["name"] for f in found] == ["A", "B", "E"]
    assert [f["properties"]["rank"] for f in found] == [1, 2, 3]
    seconds = [f["properties"]["seconds"] for f in found]
    assert seconds == pytest.approx([100 / LOCAL + 1000 / LOCAL, 1900 / LOCAL,
                                     1900 / LOCAL + 500 / LOCAL], rel=1e-3)  # fmt: skip
    assert found[0]["properties"]["roads"] == ["一路", "西街"]
    assert found[0]["geometry"]["type"] == "LineString"
    back = _run(api, "closest-facility", point=INCIDENT, collection="nf_stations", k=3,
                direction="from-facility").json()["facilities"]["features"]  # fmt: skip
    assert [f["properties"]["name"] for f in back] == ["A", "B", "E"]
    assert back[2]["properties"]["seconds"] == pytest.approx(
        500 / LOCAL + 2000 / ARTERIAL + 1000 / LOCAL + 100 / LOCAL, rel=1e-3
    )  # E to the incident: up V3 (not down), all of the faster H2, down V1, east on H1
    only = _run(api, "closest-facility", point=INCIDENT, collection="nf_stations", k=5,
                filter="name IN ('B', 'C', 'D')").json()["facilities"]["features"]  # fmt: skip
    assert [f["properties"]["name"] for f in only] == ["B"]  # C unreachable, D off the roads


@pytest.fixture(scope="module")
def posts(api: httpx.Client, settings: Settings, database_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> LayerSchema:  # fmt: skip
    """Stations A, B and E again, and H at the incident itself."""
    path = tmp_path_factory.mktemp("posts") / "posts.geojson"
    places = {**{n: STATIONS[n] for n in "ABE"}, "H": (100, -5)}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": name},
         "geometry": {"type": "Point", "coordinates": list(lonlat(x, y))}}
        for name, (x, y) in places.items()
    ]}))  # fmt: skip
    ingest_vector(database_url, VectorSource(path=path, collection_id="nf_posts", title="Posts"),
                  settings, actor="pytest")  # fmt: skip
    with engine(database_url) as eng, eng.connect() as conn:
        return LayerSchema.of(get_collection(conn, "nf_posts"))


@pytest.mark.parametrize("towards", [True, False])
def test_closest_facilities_are_the_ways_walked_to_each(
    posts: LayerSchema, database_url: str, towards: bool
) -> None:
    """The k nearest from two pgRouting calls (the times to all, then the k routes in
    one call) are each facility's own fastest way, either way, nearest first; a station
    at the incident itself is 0 s away."""
    incident = lonlat(100, -5)

    async def work() -> Any:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            found = await reach.closest_facility(conn, NETWORK, incident, posts, 4,
                                                 towards=towards)  # fmt: skip
            edges = routing.edges_query(routing.usable_edges(NETWORK, 4546))
            point = (await routing.snap(conn, NETWORK, [incident]))[0]
            at = {**STATIONS, "H": (100, -5)}
            spots = await routing.snap(conn, NETWORK, [lonlat(*at[f.properties["name"]])
                                                       for f in found])  # fmt: skip
            walked = [await routing.walk(conn, edges, *((point, s) if towards else (s, point)))
                      for s in spots]  # fmt: skip
            return found, walked

    found, walked = asyncio.run(work())
    assert [f.properties["name"] for f in found] == ["H", "A", "B", "E"]
    assert found[0].route.seconds == 0 and found[0].route.geometry["coordinates"] == []
    for facility, leg in zip(found, walked, strict=True):
        assert leg is not None
        assert facility.route.seconds == pytest.approx(leg.seconds, abs=0.05)
        assert facility.route.length_m == pytest.approx(leg.metres, abs=0.05)
        assert facility.route.geometry["coordinates"] == (leg.line or {}).get("coordinates", [])


def test_service_areas_grow_with_the_minutes(api: httpx.Client) -> None:
    answer = _run(api, "service-area", points=[INCIDENT], minutes=[1, 2])
    assert answer.status_code == 200, answer.text
    areas = answer.json()["areas"]["features"]
    assert [a["properties"]["minutes"] for a in areas] == [2, 1]
    two, one = (a["geometry"] for a in areas)
    # 1 minute: H1 from x=0 to 600 (500 m east of the incident, west to V1), 400 m up V1
    assert areas[1]["properties"]["km"] == pytest.approx(1.0, rel=2e-3)
    assert _near(one, 550, 0) and _near(one, 0, 350)
    assert not _near(one, 700, 0) and not _near(one, 0, 500)
    # 2 minutes: all of H1's west half, 100 m of its east half, 900 m of V1, 100 m of V2
    assert areas[0]["properties"]["km"] == pytest.approx(2.1, rel=2e-3)
    assert _near(two, 1050, 0) and _near(two, 0, 850) and _near(two, 1000, 50)
    assert not _near(two, 1200, 0) and not _near(two, 0, 950)
    assert shapely.geometry.shape(two).contains(shapely.geometry.shape(one).buffer(-1e-7))


def test_service_area_from_two_points_and_with_a_barrier(api: httpx.Client) -> None:
    both = _run(api, "service-area", points=[INCIDENT, list(lonlat(2000, 995))], minutes=[1])
    assert both.status_code == 200, both.text
    area = both.json()["areas"]["features"][0]
    assert _near(area["geometry"], 550, 0) and _near(area["geometry"], 1600, 1000)
    closed = {"type": "Polygon", "coordinates": [[list(lonlat(x, y)) for x, y in
              ((-20, 100), (20, 100), (20, 200), (-20, 200), (-20, 100))]]}  # fmt: skip
    barred = _run(api, "service-area", points=[INCIDENT], minutes=[1], barriers=[closed])
    one = barred.json()["areas"]["features"][0]
    assert not _near(one["geometry"], 0, 300)
    assert one["properties"]["km"] < 1.0


@pytest.mark.parametrize(
    ("process", "inputs", "status", "message"),
    [
        ("service-area", {"points": [INCIDENT], "minutes": [0]}, 400, "more than 0"),
        ("service-area", {"points": [INCIDENT], "minutes": [500]}, 400, "at most 180"),
        ("service-area", {"points": [], "minutes": [5]}, 400, "'points' must be a list"),
        ("service-area", {"points": [INCIDENT], "minutes": "5"}, 400, "list of numbers"),
        ("closest-facility", {"point": INCIDENT, "collection": "nf_stations",
                              "direction": "sideways"}, 400, "'direction' must be"),
        ("closest-facility", {"point": INCIDENT, "collection": "nf_stations",
                              "filter": "name = 'D'"}, 400, "within 500 m of a road"),
        ("closest-facility", {"point": INCIDENT, "collection": "nf_stations",
                              "filter": "name = 'C'"}, 400, "can be reached by road"),
        ("closest-facility", {"point": INCIDENT, "collection": "nosuch"}, 404, "nosuch"),
    ],
)  # fmt: skip
def test_bad_requests_say_what_is_wrong(
    api: httpx.Client, process: str, inputs: dict[str, Any], status: int, message: str
) -> None:
    answer = _run(api, process, **inputs)
    assert answer.status_code == status, answer.text
    assert message in answer.text


def test_the_processes_are_described(api: httpx.Client, tmp_path: Path) -> None:
    ids = [p["id"] for p in api.get("/processes").json()["processes"]]
    assert {"route", "service-area", "closest-facility"} <= set(ids)
    described = api.get("/processes/closest-facility").json()["inputs"]
    assert {"network", "point", "collection", "filter", "k", "direction", "barriers"} <= set(
        described
    )
