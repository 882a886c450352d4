"""The demo city: built, loaded through the CLI into PostGIS, served, and loaded only once."""

from __future__ import annotations

import asyncio
import heapq
import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pyogrio
import pytest
import shapely
from support import LiveServer, run_cli

from api import create_app
from spatial import samples
from spatial.demo import DEMO_LAYERS, FLEET
from spatial.network import routing
from spatial.settings import Settings


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo files, built once for this module."""
    out = tmp_path_factory.mktemp("samples")
    samples.build(out)
    return out


@pytest.fixture(scope="module")
def loaded(samples_dir: Path, database_url: str, settings: Settings) -> Iterator[str]:
    """The session database with the demo layers loaded through ``spatial samples load``
    (its scenes in the session's data folder, where the session's API reads them)."""
    env = {"SPATIAL_DATABASE_URL": database_url, "SPATIAL_DATA_DIR": str(settings.data_dir)}
    out = run_cli("samples", "load", "--source", str(samples_dir), **env)
    assert out.returncode == 0, out.stderr
    assert "loaded" in out.stdout
    yield database_url


def _rows(url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]  # type: ignore[arg-type]


def _one(url: str, query: str, *params: object) -> tuple[object, ...]:
    rows = _rows(url, query, *params)
    assert len(rows) == 1
    return rows[0]


def test_every_demo_layer_is_in_the_catalog(loaded: str) -> None:
    with psycopg.connect(loaded) as conn:
        rows = conn.execute(
            "SELECT id, kind, srid, feature_count, storage_schema, storage_table, "
            "ST_XMin(footprint), ST_YMin(footprint) FROM platform.collections"
        ).fetchall()
    found = {r[0]: r for r in rows}
    assert {d.collection_id for d in DEMO_LAYERS} <= set(found)
    for layer in DEMO_LAYERS:
        _, kind, _srid, count, schema, table, xmin, ymin = found[layer.collection_id]
        assert kind == "vector"
        assert schema == "layers" and table == layer.collection_id
        assert count and count > 0
        # Footprints are lon/lat around Yunfu (112.0°E, 22.9°N).
        assert 111.5 < xmin < 112.5 and 22.5 < ymin < 23.3
        actual = _one(loaded, f"SELECT count(*) FROM layers.{table}")[0]  # noqa: S608
        assert actual == count


def test_parcels_keep_their_crs_text_and_coordinates(loaded: str, samples_dir: Path) -> None:
    srid, crs, count = _one(
        loaded, "SELECT srid, crs, feature_count FROM platform.collections WHERE id = 'parcels'"
    )
    assert (srid, crs) == (4546, "EPSG:4546")
    assert 15_000 <= int(count) <= 25_000  # type: ignore[call-overload]
    assert _one(loaded, "SELECT Find_SRID('layers', 'parcels', 'geom')") == (4546,)
    # GBK attributes arrive as proper Chinese text.
    names = {r for (r,) in _rows(loaded, "SELECT DISTINCT dlmc FROM layers.parcels")}
    assert "耕地" in names
    # Source coordinates are kept exactly (no reprojection, no rounding).
    src = pyogrio.read_dataframe(
        f"/vsizip/{samples_dir / 'parcels_2025.zip'}", where="DKBM IS NOT NULL", max_features=50
    )
    for dkbm, geom in zip(src["DKBM"], src.geometry, strict=True):
        (wkb,) = _one(loaded, "SELECT ST_AsBinary(geom) FROM layers.parcels WHERE dkbm = %s", dkbm)
        stored = shapely.from_wkb(bytes(wkb))  # type: ignore[arg-type]
        expected = geom if geom.geom_type == "MultiPolygon" else shapely.MultiPolygon([geom])
        assert shapely.equals_exact(stored, expected, tolerance=0)


def test_second_load_changes_nothing(loaded: str, samples_dir: Path) -> None:
    before = _rows(loaded, "SELECT id, version, updated_at FROM platform.collections ORDER BY id")
    env = {"SPATIAL_DATABASE_URL": loaded}
    out = run_cli("samples", "load", "--source", str(samples_dir), **env)
    assert out.returncode == 0, out.stderr
    assert "unchanged" in out.stdout
    after = _rows(loaded, "SELECT id, version, updated_at FROM platform.collections ORDER BY id")
    assert after == before


def test_load_refuses_missing_samples(database_url: str, tmp_path: Path) -> None:
    env = {"SPATIAL_DATABASE_URL": database_url}
    out = run_cli("samples", "load", "--source", str(tmp_path), **env)
    assert out.returncode == 1
    assert "spatial samples build" in out.stderr


def test_the_api_lists_the_demo_collections(loaded: str, settings: Settings) -> None:
    with LiveServer(create_app(settings)) as server:
        body = httpx.get(f"{server.url}/collections").json()
        page = httpx.get(f"{server.url}/collections?f=html").text
        record = httpx.get(f"{server.url}/collections/catalog/items/parcels").json()
    ids = {c["id"] for c in body["collections"]}
    assert {d.collection_id for d in DEMO_LAYERS} <= ids
    parcels = next(c for c in body["collections"] if c["id"] == "parcels")
    assert {"land", "planning"} <= set(parcels["keywords"])
    assert record["properties"]["subsystems"] == ["land", "planning"]
    assert "Cadastral parcels" in page  # English unless asked (tests/test_i18n.py)


def test_the_demo_fleet_drives_through_the_districts(loaded: str) -> None:
    """The fleet's tracks are stored, derived into tracks and trips, and crossing from one
    district (a fence) to another made enter and exit events; the GPS collections holding
    data are open, as the rest of the demo city."""
    fleet = {"YF-AMB-01", "YF-FIRE-01", "YF-AMB-02", "YF-FIRE-02", "YF-WATER-01", "YF-ENV-01"}
    assert fleet <= {d for (d,) in _rows(loaded, "SELECT device_id FROM gps.latest")}
    assert _one(loaded, "SELECT count(*) FROM gps.positions") >= (4_766,)
    kinds = {k for (k,) in _rows(loaded, "SELECT DISTINCT kind FROM gps.events "
                                 "WHERE device_id LIKE 'YF-%%'")}  # fmt: skip
    assert kinds == {"enter", "exit"}
    assert _one(loaded, "SELECT count(*) FROM gps.tracks") >= (6,)
    public = {c for (c,) in _rows(loaded, "SELECT id FROM platform.collections "
                                  "WHERE kind = 'gps' AND is_public")}  # fmt: skip
    assert {"gps_latest", "gps_positions", "gps_events", "gps_tracks", "gps_trips"} <= public


def test_the_demo_fleet_crosses_the_flood_zones(loaded: str) -> None:
    """The water department's flood-risk zones are a collection and geofences too (made
    before the fleet's tracks were imported), and the fleet crossing the rivers drove into
    and out of them."""
    kind, srid, subsystems, count = _one(
        loaded, "SELECT kind, srid, subsystems, feature_count FROM platform.collections "
        "WHERE id = 'flood_zones'")  # fmt: skip
    assert (kind, srid) == ("vector", 4326)
    assert "water" in subsystems  # type: ignore[operator]
    zones = {r[0]: r[1] for r in _rows(loaded, "SELECT fid, name FROM layers.flood_zones")}
    assert len(zones) == count == 13
    assert "南山河高风险洪泛区" in zones.values()
    fenced = "SELECT source_feature, name FROM gps.fences WHERE source_collection = 'flood_zones'"
    fences = {r[0]: r[1] for r in _rows(loaded, fenced + " AND active")}
    assert fences == zones
    crossings = _rows(
        loaded,
        "SELECT e.device_id, e.fence_id, array_agg(DISTINCT e.kind ORDER BY e.kind) "
        "FROM gps.events e JOIN gps.fences f ON f.id = e.fence_id "
        "WHERE f.source_collection = 'flood_zones' AND e.device_id = ANY(%s) "
        "GROUP BY e.device_id, e.fence_id",
        list(FLEET),
    )
    crossed = {device for device, _, kinds in crossings if kinds == ["enter", "exit"]}
    assert len(crossed) >= 1


def test_the_demo_roads_are_one_routable_network(loaded: str) -> None:
    """``samples load`` builds the network ``roads`` from the roads and
    ``layers/networks/roads.yaml``: one connected piece, the grid noded at its crossings,
    the three one-way streets honoured, every class with its own speed."""
    report = _one(loaded, "SELECT report FROM net.networks WHERE id = 'roads'")[0]
    assert isinstance(report, dict)
    assert report["pieces"] == 1 and report["disconnected"] == [] and report["isolated"] == []
    assert report["roads"] == 57 and report["edges"] > 3 * 57  # cut at the crossings
    assert report["default_speed_classes"] == {}
    one_way = _rows(
        loaded,
        "SELECT DISTINCT road, cost < 0, reverse_cost < 0 FROM net.edges "
        "WHERE network = 'roads' AND (cost < 0 OR reverse_cost < 0) ORDER BY road",
    )
    assert one_way == [("YF-R008", False, True), ("YF-R011", True, False), ("YF-R038", False, True)]
    speeds = dict(
        _rows(loaded, "SELECT DISTINCT class, kmh FROM net.edges WHERE network = 'roads'")
    )
    assert speeds == {"expressway": 80.0, "arterial": 45.0, "secondary": 35.0, "local": 25.0}


def _demo_route(url: str, start: tuple[float, float], end: tuple[float, float],
                barriers: list[routing.Barrier] | None = None) -> routing.Route:  # fmt: skip
    async def main() -> routing.Route:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await routing.route(conn, "roads", [start, end], barriers=barriers or [])

    return asyncio.run(main())


def _dijkstra(url: str, source: int, target: int) -> float:
    """Seconds from vertex to vertex over the network's edges and costs, by a Dijkstra
    of the test's own (pgRouting not involved)."""
    graph: dict[int, list[tuple[int, float]]] = {}
    for a, b, cost, back in _rows(url, "SELECT source, target, cost, reverse_cost "
                                  "FROM net.edges WHERE network = 'roads'"):  # fmt: skip
        if cost >= 0:  # type: ignore[operator]
            graph.setdefault(a, []).append((b, cost))  # type: ignore[arg-type]
        if back >= 0:  # type: ignore[operator]
            graph.setdefault(b, []).append((a, back))  # type: ignore[arg-type]
    best, queue = {source: 0.0}, [(0.0, source)]
    while queue:
        seconds, node = heapq.heappop(queue)
        if node == target:
            return seconds
        if seconds > best.get(node, math.inf):
            continue
        for nxt, cost in graph.get(node, []):
            if seconds + cost < best.get(nxt, math.inf):
                best[nxt] = seconds + cost
                heapq.heappush(queue, (seconds + cost, nxt))
    return math.inf


def _corner(url: str, sign: int) -> tuple[int, tuple[float, float]]:
    """The vertex of the least (sign 1) or greatest (-1) x + y: a corner of the ring."""
    vid, x, y = _one(url, "SELECT id, ST_X(geom), ST_Y(geom) FROM net.vertices WHERE "
                     "network = 'roads' ORDER BY %s * (ST_X(geom) + ST_Y(geom)) LIMIT 1",
                     sign)  # fmt: skip
    return int(vid), (float(x), float(y))  # type: ignore[arg-type]


def test_a_demo_route_equals_an_independent_dijkstra(loaded: str) -> None:
    """From the south-west corner of the ring road to its north-east corner: pgRouting's
    route through the points placed on the roads takes the seconds a plain Dijkstra over
    the same edges and costs finds between the two vertices (within 0.5 %)."""
    (a, start), (b, end) = _corner(loaded, 1), _corner(loaded, -1)
    found = _demo_route(loaded, start, end)
    expected = _dijkstra(loaded, a, b)
    assert math.isfinite(expected) and expected > 300
    assert found.seconds == pytest.approx(expected, rel=0.005)
    assert found.roads and found.length_m > 5000


def test_a_barrier_on_the_bridge_sends_the_route_over_another(loaded: str) -> None:
    """Across the main river (南山河): a barrier over the bridge the route takes makes it
    cross by another, slower; a barrier along the whole river leaves no path, and the
    answer names it."""
    ends = "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(geom), 4326) p "
    south = _one(loaded, ends + "FROM layers.districts ORDER BY ST_Y(ST_Centroid(geom)) LIMIT 1) x")
    north = _one(loaded, ends + "FROM layers.districts ORDER BY ST_Y(ST_Centroid(geom)) DESC "
                 "LIMIT 1) x")  # fmt: skip
    start, end = (float(south[0]), float(south[1])), (float(north[0]), float(north[1]))  # type: ignore[arg-type]
    first = _demo_route(loaded, start, end)
    line = json.dumps(first.geometry)
    bridge = _one(loaded, "SELECT ST_AsText(ST_Buffer(ST_Intersection(ST_GeomFromGeoJSON(%s), "
                  "ST_Transform(r.geom, 4326))::geography, 40)::geometry) FROM layers.rivers r "
                  "WHERE r.name = '南山河'", line)[0]  # fmt: skip
    assert bridge is not None
    other = _demo_route(loaded, start, end, [routing.Barrier("the bridge", str(bridge))])
    assert other.seconds > first.seconds
    river = _one(loaded, "SELECT ST_AsText(ST_Buffer(ST_Transform(geom, 4326)::geography, 30)"
                 "::geometry) FROM layers.rivers WHERE name = '南山河'")[0]  # fmt: skip
    with pytest.raises(routing.NoPathError) as caught:
        _demo_route(loaded, start, end, [routing.Barrier("南山河 flood", str(river))])
    assert "closed by 南山河 flood" in str(caught.value)
