"""Routes on pgRouting between points snapped to edges: the fastest way by the class
speeds, via points, one-way streets, barriers and standing closures, and the clear
refusals (too far from a road, no path and why, unknown network), on the small city of
``tests/networkcase.py`` (network ``nr_roads``).

Expected times are worked out by hand from the drawing: local streets at 30 km/h
(8.33 m/s), the arterial H2 at 50 km/h (13.89 m/s); the stored lengths are on the
ellipsoid, 0.012 % shorter than the drawing's metres here, within the tolerance.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import shapely
from networkcase import build, ingest, lonlat
from support import LiveServer, wait_for_collection

from spatial.client import Client
from spatial.errors import InvalidInputError, NotFoundError
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.network import routing
from spatial.network.routing import Barrier, Leg, NoPathError, Route, Snapped
from spatial.settings import Settings

LOCAL, ARTERIAL = 30 / 3.6, 50 / 3.6
NETWORK = "nr_roads"


@pytest.fixture(scope="module")
def network(settings: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    build(database_url, ingest(settings, tmp_path_factory.mktemp("routing"), NETWORK))
    return database_url


def _run(url: str, work: Callable[[psycopg.AsyncConnection[Any]], Coroutine[Any, Any, Any]]) -> Any:
    async def main() -> Any:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(main())


def _route(url: str, *points: tuple[float, float], **options: Any) -> Route:
    at = [lonlat(x, y) for x, y in points]
    return _run(url, lambda conn: routing.route(conn, NETWORK, at, **options))  # type: ignore[no-any-return]


def _snapped(url: str, *points: tuple[float, float]) -> list[Snapped]:
    at = [lonlat(x, y) for x, y in points]
    return _run(url, lambda conn: routing.snap(conn, NETWORK, at))  # type: ignore[no-any-return]


def _edges(*barriers: Barrier) -> str:
    return routing.edges_query(routing.usable_edges(NETWORK, 4546, barriers))


def _box(name: str, x0: float, y0: float, x1: float, y1: float) -> Barrier:
    corners = [lonlat(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    return Barrier(name, "POLYGON((" + ", ".join(f"{x} {y}" for x, y in corners) + "))")


def test_the_fastest_route_by_class_speeds(network: str) -> None:
    # from H1 near its west end to H2 near its east end: back west to V1 and up it, then
    # along the faster H2 (268.8 s), not east along H1 and up V2 (292.8 s)
    found = _route(network, (100, -5), (1900, 1005))
    assert found.seconds == pytest.approx(100 / LOCAL + 1000 / LOCAL + 1900 / ARTERIAL, rel=1e-3)
    assert found.length_m == pytest.approx(3000, rel=1e-3)
    assert found.roads == ["一路", "西街", "二路"]
    assert [s.distance_m for s in found.snapped] == [pytest.approx(5, abs=0.1)] * 2
    line = found.geometry["coordinates"]
    assert found.geometry["type"] == "LineString"
    assert line[0] == pytest.approx(list(lonlat(100, 0)), abs=1e-6)
    assert line[-1] == pytest.approx(list(lonlat(1900, 1000)), abs=1e-6)
    assert [round(c, 6) for c in line[1]] == [round(c, 6) for c in lonlat(0, 0)]


def test_via_points_are_visited_in_order(network: str) -> None:
    found = _route(network, (100, -5), (1000, 500), (1900, 1005))
    assert found.seconds == pytest.approx(900 / LOCAL + 1000 / LOCAL + 900 / ARTERIAL, rel=1e-3)
    assert found.roads == ["一路", "中街", "二路"]
    assert len(found.snapped) == 3


def test_a_one_way_street_is_driven_only_as_drawn(network: str) -> None:
    up = _route(network, (2000, 100), (2000, 900))
    assert up.seconds == pytest.approx(800 / LOCAL, rel=1e-3) and up.roads == ["东街"]
    # down V3 is forbidden: up to H2, west to V2, down, east along H1, up V3 again
    down = _route(network, (2000, 900), (2000, 100))
    assert down.seconds == pytest.approx(
        100 / LOCAL + 1000 / ARTERIAL + 1000 / LOCAL + 1000 / LOCAL + 100 / LOCAL, rel=1e-3
    )
    assert down.roads == ["东街", "二路", "中街", "一路", "东街"]


def test_a_barrier_sends_the_route_another_way(network: str) -> None:
    closed = _box("west street", -20, 400, 20, 600)
    found = _route(network, (100, -5), (1900, 1005), barriers=[closed])
    assert found.seconds == pytest.approx(900 / LOCAL + 1000 / LOCAL + 900 / ARTERIAL, rel=1e-3)
    assert found.roads == ["一路", "中街", "二路"]


def test_no_path_names_the_barriers_that_cut_it(network: str) -> None:
    barriers = [_box(n, x - 20, 400, x + 20, 600) for n, x in (("west", 0), ("middle", 1000))]
    barriers.append(_box("east", 1980, 400, 2020, 600))
    with pytest.raises(NoPathError) as caught:
        _route(network, (100, -5), (1900, 1005), barriers=barriers)
    assert str(caught.value) == "no path between the two points: closed by west"


def test_no_path_between_pieces_says_they_do_not_connect(network: str) -> None:
    with pytest.raises(NoPathError) as caught:
        _route(network, (100, -5), (3050, 3002))
    assert "pieces of network 'nr_roads' that do not connect" in str(caught.value)
    with pytest.raises(NoPathError) as caught:
        _route(network, (100, -5), (1000, 500), (3050, 3002))
    assert str(caught.value).startswith("no path between points 2 and 3:")


def test_standing_closures_hold_until_they_expire(network: str) -> None:
    closed = _box("", -20, 400, 20, 600)
    with psycopg.connect(network, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO net.closures (network, reason, geom, geom_native, starts_at, "
            "expires_at, created_by) VALUES (%(n)s, 'burst main', ST_GeomFromText(%(g)s, 4326), "
            "ST_Transform(ST_GeomFromText(%(g)s, 4326), 4546), now(), now() + interval '1 hour', "
            "'pytest'), (%(n)s, 'old works', ST_GeomFromText(%(g2)s, 4326), "
            "ST_Transform(ST_GeomFromText(%(g2)s, 4326), 4546), now() - interval '1 day', "
            "now() - interval '1 second', 'pytest')",
            {"n": NETWORK, "g": closed.wkt, "g2": _box("", 980, 400, 1020, 600).wkt},
        )
        try:
            found = _route(network, (100, -5), (1900, 1005))
            with pytest.raises(NoPathError) as caught:
                _route(
                    network,
                    (100, -5),
                    (1900, 1005),
                    barriers=[
                        _box("middle", 980, 400, 1020, 600),
                        _box("east", 1980, 400, 2020, 600),
                    ],
                )
        finally:
            conn.execute("DELETE FROM net.closures WHERE network = %s", (NETWORK,))
    assert found.roads == ["一路", "中街", "二路"]  # the expired closure of V2 is ignored
    assert "closure" in str(caught.value) and "(burst main)" in str(caught.value)


@pytest.mark.parametrize(
    ("points", "options", "error", "message"),
    [
        ([(100, -5), (5000, 5000)], {}, InvalidInputError,
         "point 2 ({}) is 2,758 m from the nearest road of network 'nr_roads'"),
        ([(100, -40)], {}, InvalidInputError, "a route takes 2 to 25 points"),
        ([(100, -40), (200, -40)], {"limit_m": 30}, InvalidInputError, "the limit is 30 m"),
    ],
)  # fmt: skip
def test_bad_requests_say_what_is_wrong(
    network: str, points: list[tuple[float, float]], options: dict[str, Any],
    error: type[Exception], message: str,
) -> None:  # fmt: skip
    with pytest.raises(error) as caught:
        _route(network, *points, **options)
    where = ", ".join(f"{v:g}" for v in lonlat(*points[-1]))
    assert message.format(where) in str(caught.value)


def test_an_unknown_network_lists_the_known_ones(network: str) -> None:
    at = [lonlat(0, 0), lonlat(100, 0)]
    with pytest.raises(NotFoundError) as caught:
        _run(network, lambda conn: routing.route(conn, "nowhere", at))
    assert "no network 'nowhere'; the networks are:" in str(caught.value)
    assert NETWORK in str(caught.value)


def test_the_route_process_over_http(
    network: str, live_api: LiveServer, admin_auth: dict[str, str], settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    """``POST /processes/route/execution`` as the platform's users call it: a Feature of
    the route; a collection's polygons matching a CQL2 filter as a barrier; a named
    drawn barrier in the no-path answer; only for callers who may read the roads."""
    zones = tmp_path / "zones.geojson"
    zones.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"risk": risk},
         "geometry": {"type": "Polygon", "coordinates": [[list(lonlat(x, y)) for x, y in
                      ((cx - 20, 400), (cx + 20, 400), (cx + 20, 600), (cx - 20, 600),
                       (cx - 20, 400))]]}}
        for risk, cx in (("high", 0), ("low", 1000))
    ]}))  # fmt: skip
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    ingest_vector(url, VectorSource(path=zones, collection_id="nr_zones", title="Zones"),
                  settings, actor="pytest")  # fmt: skip
    start, end = list(lonlat(100, -5)), list(lonlat(1900, 1005))
    with httpx.Client(base_url=live_api.url, timeout=60, headers=admin_auth) as api:
        wait_for_collection(api, "nr_zones")
        plain = api.post("/processes/route/execution", json={"inputs": {
            "network": NETWORK, "from": start, "to": end}})  # fmt: skip
        avoided = api.post("/processes/route/execution", json={"inputs": {
            "network": NETWORK, "from": start, "to": end,
            "barriers": [{"collection": "nr_zones", "filter": "risk = 'high'"}]}})  # fmt: skip
        blocked = api.post("/processes/route/execution", json={"inputs": {
            "network": NETWORK, "from": start, "to": end, "barriers": [
                {"collection": "nr_zones"},
                {"type": "Feature", "properties": {"name": "东街封闭"},
                 "geometry": {"type": "Polygon", "coordinates": [[list(lonlat(x, y)) for x, y in
                              ((1980, 400), (2020, 400), (2020, 600), (1980, 600),
                               (1980, 400))]]}}]}})  # fmt: skip
        far = api.post("/processes/route/execution", json={"inputs": {
            "network": NETWORK, "from": start, "to": list(lonlat(5000, 5000))}})  # fmt: skip
        unknown = api.post("/processes/route/execution", json={"inputs": {
            "network": "nowhere", "from": start, "to": end}})  # fmt: skip
    anonymous = httpx.post(f"{live_api.url}/processes/route/execution", json={"inputs": {
        "network": NETWORK, "from": start, "to": end}}, timeout=60)  # fmt: skip
    assert plain.status_code == 200, plain.text
    feature = plain.json()["route"]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "LineString"
    assert feature["properties"]["roads"] == ["一路", "西街", "二路"]
    assert feature["properties"]["seconds"] == pytest.approx(
        100 / LOCAL + 1000 / LOCAL + 1900 / ARTERIAL, rel=1e-3
    )
    assert avoided.status_code == 200, avoided.text
    assert avoided.json()["route"]["properties"]["roads"] == ["一路", "中街", "二路"]
    assert blocked.status_code == 400 and "no path between the two points" in blocked.text
    assert "nr_zones" in blocked.text
    assert far.status_code == 400 and "from the nearest road" in far.text
    assert unknown.status_code == 404 and "no network 'nowhere'" in unknown.text
    assert anonymous.status_code == 404, anonymous.text  # the roads are not public


def test_the_client_routes_to_a_geodataframe(
    network: str, live_api: LiveServer, admin_auth: dict[str, str]
) -> None:
    token = admin_auth["Authorization"].removeprefix("Bearer ")
    with Client(live_api.url, token=token, progress=False) as client:
        frame = client.route(NETWORK, shapely.Point(lonlat(100, -5)), lonlat(1900, 1005),
                             via=[lonlat(1000, 500)])  # fmt: skip
        with pytest.raises(InvalidInputError) as caught:
            client.route(NETWORK, lonlat(100, -5), lonlat(1900, 1005), barriers=[
                shapely.box(*lonlat(-20, 400), *lonlat(20, 600)),
                shapely.box(*lonlat(980, 400), *lonlat(1020, 600)),
                {"type": "Feature", "properties": {"name": "东街封闭"},
                 "geometry": shapely.box(*lonlat(1980, 400), *lonlat(2020, 600)).__geo_interface__},
            ])  # fmt: skip
    assert len(frame) == 1 and frame.crs.to_epsg() == 4326
    row = frame.iloc[0]
    assert row["roads"] == ["一路", "中街", "二路"]
    assert row["seconds"] == pytest.approx(900 / LOCAL + 1000 / LOCAL + 900 / ARTERIAL, rel=1e-3)
    assert row.geometry.geom_type == "LineString" and row["length_m"] == pytest.approx(
        2800, rel=1e-3
    )
    assert "closed by barrier 1" in str(caught.value)


# Starts and ends of the many-to-many tests (the drawing's metres): two points on H1's
# west half (one edge), two at the vertex where H1 meets V1, one on the one-way V3, one on
# the isolated X1; ends on the same edge ahead of and behind start 0, on V2, on V3 below
# start 4 (a long way round), at start 0 itself, on X1, at the vertex where V1 meets H2
# and at the vertex of starts 2 and 3.
STARTS = [(100, -5), (300, 5), (0, 0), (-2, -2), (2000, 900), (3020, 3002)]
ENDS = [(200, -5), (50, 3), (1000, 500), (2000, 100), (100, -5), (3080, 2998), (0, 1000),
        (-1, -3)]  # fmt: skip


def _same_leg(found: Leg, expected: Leg) -> None:
    assert found.seconds == pytest.approx(expected.seconds, abs=1e-6)
    assert found.metres == pytest.approx(expected.metres, abs=1e-6)
    assert found.names == expected.names
    if expected.line is None:
        assert found.line is None
        return
    assert found.line is not None and found.line["type"] == "LineString"
    flat = [c for point in found.line["coordinates"] for c in point]
    assert flat == pytest.approx([c for p in expected.line["coordinates"] for c in p], abs=1e-7)


def test_legs_many_to_many_in_one_call_equal_each_walk(network: str) -> None:
    """``legs``: every start to every end in one pgRouting call, each leg as ``walk``
    finds it alone; a start or end without a path is absent, points that are one give
    the empty leg."""
    starts, ends = _snapped(network, *STARTS), _snapped(network, *ENDS)
    assert starts[0].edge == starts[1].edge == ends[0].edge == ends[1].edge
    assert starts[2].vertex is not None and starts[2].vertex == starts[3].vertex
    assert starts[4].vertex is None and ends[3].edge == starts[4].edge
    assert ends[6].vertex is not None and ends[7].vertex == starts[2].vertex
    edges = _edges()

    async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
        many = await routing.legs(conn, edges, starts, ends)
        alone = {(i, j): await routing.walk(conn, edges, a, b)
                 for i, a in enumerate(starts) for j, b in enumerate(ends)}  # fmt: skip
        return many, alone

    many, alone = _run(network, work)
    assert set(many) == {pair for pair, leg in alone.items() if leg is not None}
    isolated = {(5, j) for j in range(len(ENDS)) if j != 5} | {(i, 5) for i in range(5)}
    assert set(alone) - set(many) == isolated
    for pair, leg in many.items():
        _same_leg(leg, alone[pair])
    assert many[0, 4] == Leg(0.0, 0.0, [], None)  # start 0 is end 4
    assert many[2, 7] == many[3, 7] == Leg(0.0, 0.0, [], None)  # one vertex
    assert many[2, 6].seconds == pytest.approx(1000 / LOCAL, rel=1e-3)  # vertex to vertex
    assert many[0, 7].seconds == pytest.approx(100 / LOCAL, rel=1e-3)
    # along the one edge, ahead and back: 100 m and 50 m of the local street
    assert many[0, 0].seconds == pytest.approx(100 / LOCAL, rel=1e-3)
    assert many[0, 0].line is not None
    assert many[0, 0].line["coordinates"][0] == pytest.approx(list(lonlat(100, 0)), abs=1e-6)
    assert many[0, 0].line["coordinates"][-1] == pytest.approx(list(lonlat(200, 0)), abs=1e-6)
    assert many[0, 1].seconds == pytest.approx(50 / LOCAL, rel=1e-3)
    assert many[1, 1].line is not None and len(many[1, 1].line["coordinates"]) == 2
    # from the vertex (twice, as two starts) east along H1
    assert many[2, 0].seconds == many[3, 0].seconds == pytest.approx(200 / LOCAL, rel=1e-3)
    assert many[2, 0].line is not None
    assert many[2, 0].line["coordinates"][0] == pytest.approx(list(lonlat(0, 0)), abs=1e-6)
    # down the one-way V3 is forbidden: up to H2, west, down V2, east on H1, up V3
    assert many[4, 3].seconds == pytest.approx(
        100 / LOCAL + 1000 / ARTERIAL + 1000 / LOCAL + 1000 / LOCAL + 100 / LOCAL, rel=1e-3
    )
    around = routing.joined([many[4, 3]], [starts[4], ends[3]])
    assert around.roads == ["东街", "二路", "中街", "一路", "东街"]
    assert many[5, 5].seconds == pytest.approx(60 / LOCAL, rel=1e-3)  # along X1


def test_legs_one_to_many_and_many_to_one(network: str) -> None:
    starts, ends = _snapped(network, *STARTS), _snapped(network, *ENDS)
    edges = _edges()

    async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
        return (await routing.legs(conn, edges, starts, ends),
                await routing.legs(conn, edges, starts[4:5], ends),
                await routing.legs(conn, edges, starts, ends[3:4]),
                await routing.legs(conn, edges, [], ends))  # fmt: skip

    every, out, towards, nothing = _run(network, work)
    assert set(out) == {(0, j) for j in range(len(ENDS)) if j != 5}
    for (_, j), leg in out.items():
        _same_leg(leg, every[4, j])
    assert set(towards) == {(i, 0) for i in range(5)}
    for (i, _), leg in towards.items():
        _same_leg(leg, every[i, 3])
    assert nothing == {}


def test_costs_are_the_seconds_of_the_legs(network: str) -> None:
    starts, ends = _snapped(network, *STARTS), _snapped(network, *ENDS)
    edges = _edges()
    barred = _edges(_box("H2 east", 1700, 980, 1800, 1020))

    async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
        return (await routing.costs(conn, edges, starts, ends),
                await routing.legs(conn, edges, starts, ends),
                [await routing.costs(conn, edges, starts, [end]) for end in ends],
                [await routing.costs(conn, edges, [start], ends) for start in starts],
                await routing.costs(conn, barred, [starts[0], starts[4]], ends[2:3]),
                await routing.walk(conn, barred, starts[0], ends[2]))  # fmt: skip

    seconds, ways, towards, out, closed, walked = _run(network, work)
    assert set(seconds) == set(ways)
    for pair, leg in ways.items():
        assert seconds[pair] == pytest.approx(leg.seconds, abs=1e-6)
    assert seconds[0, 4] == 0.0
    # many to one (searched backwards from the end, on the reversed edges) and one to many
    assert {(i, j): c for j, each in enumerate(towards) for (i, _), c in each.items()} == (
        pytest.approx(seconds, abs=1e-6)
    )
    assert {(i, j): c for i, each in enumerate(out) for (_, j), c in each.items()} == (
        pytest.approx(seconds, abs=1e-6)
    )
    # H2's east end barred: up the one-way V3 leads nowhere, start 4 has no path
    assert walked is not None and closed == {(0, 0): pytest.approx(walked.seconds, abs=1e-6)}
    assert walked.seconds == pytest.approx(1400 / LOCAL, rel=1e-3)


def test_the_closures_test_is_left_out_only_when_none_is_in_force(network: str) -> None:
    """The edges queries test the closures only when one is in force; one that starts
    later does not count until it starts."""
    assert "net.closures" in _edges()
    assert "net.closures" not in routing.edges_query(
        routing.usable_edges(NETWORK, 4546, closures=False)
    )
    later = _box("", -20, 400, 20, 600).wkt

    def state() -> routing.NetworkState:
        return _run(network, lambda conn: routing.network_state(conn, NETWORK))  # type: ignore[no-any-return]

    assert state() == routing.NetworkState(4546, NETWORK, closed=False)
    with psycopg.connect(network, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO net.closures (network, reason, geom, geom_native, starts_at, "
            "expires_at, created_by) VALUES (%(n)s, 'works tomorrow', "
            "ST_GeomFromText(%(g)s, 4326), ST_Transform(ST_GeomFromText(%(g)s, 4326), 4546), "
            "now() + interval '1 day', now() + interval '2 days', 'pytest')",
            {"n": NETWORK, "g": later},
        )
        try:
            before = state()
            conn.execute("UPDATE net.closures SET starts_at = now() WHERE network = %s",
                         (NETWORK,))  # fmt: skip
            during = state()
            middle, east = _box("middle", 980, 400, 1020, 600), _box("east", 1980, 400, 2020, 600)
            found = _route(network, (100, -5), (1900, 1005), barriers=[middle])
            with pytest.raises(NoPathError) as caught:
                _route(network, (100, -5), (1900, 1005), barriers=[middle, east])
        finally:
            conn.execute("DELETE FROM net.closures WHERE network = %s", (NETWORK,))
    assert before.closed is False and during.closed is True
    # west closed and middle barred: only the one-way V3 leads up
    assert found.roads == ["一路", "东街", "二路"]
    assert str(caught.value).endswith("(works tomorrow)")
