"""Road networks built from a line collection: noding, levels, snapping, one-ways, costs
and the report of what is not connected, checked on the small city of
``tests/networkcase.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pytest
from networkcase import ROADS, SETTINGS, SPEEDS, X0, Y0, build, ingest, write
from pydantic import SecretStr
from shapely.geometry import LineString, Point
from support import create_database, drop_database, run_cli

from spatial.catalog import get_collection
from spatial.db import engine, migrate
from spatial.errors import InvalidInputError
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.network import build as nb
from spatial.network.speeds import Speeds
from spatial.settings import DatabaseSettings, Settings


@pytest.fixture(scope="module")
def roads(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The drawn city ingested as ``nw_roads``; its catalog record."""
    return ingest(settings, tmp_path_factory.mktemp("network"), "nw_roads")


@pytest.fixture(scope="module")
def built(roads: Any, database_url: str) -> nb.Report:
    return build(database_url, roads)


@pytest.fixture(scope="module")
def alone(server_url: str, settings: Settings) -> Iterator[Settings]:
    """Settings on a database of this module's own: no API worker of the session follows
    its networks, so a test sees which call rebuilt what."""
    url = create_database(server_url)
    try:
        migrate.upgrade(url)
        yield settings.model_copy(update={"database": DatabaseSettings(url=SecretStr(url))})
    finally:
        drop_database(server_url, url)


def _edges(url: str, network: str = "nw_roads") -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "SELECT road, name, class, level, source, target, length_m, kmh, cost, "
            "reverse_cost FROM net.edges WHERE network = %s ORDER BY road, id",
            (network,),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_lines_are_cut_at_true_junctions_only(built: nb.Report, database_url: str) -> None:
    edges = _edges(database_url)
    per_road = {r: sum(1 for e in edges if e["road"] == r) for r in {e["road"] for e in edges}}
    # H1 at V2's end; H2 at V2's end and T1's snapped end; the bridge is not cut by the
    # streets it crosses, nor are they by it.
    assert per_road == {"H1": 2, "H2": 3, "V1": 1, "V2": 1, "V3": 1, "T1": 1, "B1": 1,
                        "S1": 1, "N1": 1, "T2": 1, "X1": 1}  # fmt: skip
    assert built.edges == 14 and built.roads == 11
    bridge = next(e for e in edges if e["road"] == "B1")
    ends = {e["source"] for e in edges if e["road"] in {"S1", "N1"}} | {
        e["target"] for e in edges if e["road"] in {"S1", "N1"}
    }
    assert {bridge["source"], bridge["target"]} <= ends  # joined at its ends, whatever the level
    street = {e["source"] for e in edges if e["road"] in {"H1", "H2"}}
    assert not {bridge["source"], bridge["target"]} & street


def test_costs_are_seconds_from_the_class_speeds(built: nb.Report, database_url: str) -> None:
    edges = _edges(database_url)
    h2 = sorted((e for e in edges if e["road"] == "H2"), key=lambda e: e["length_m"])
    assert [round(e["length_m"]) for e in h2] == [500, 500, 1000]  # 1000-1500, 1500-2000, 0-1000
    for e in edges:
        assert e["kmh"] == SPEEDS.classes.get(e["class"], SPEEDS.default)
        if e["cost"] > 0:
            assert e["cost"] == pytest.approx(e["length_m"] / (e["kmh"] / 3.6))
    v3 = next(e for e in edges if e["road"] == "V3")
    assert v3["cost"] > 0 and v3["reverse_cost"] == -1  # northwards only, as drawn
    assert built.one_way_edges == 1
    assert built.default_speed_classes == {"track": 1}
    # lengths on the ellipsoid: the grid's 1000 m are 999.9 m this far from the meridian
    assert h2[-1]["length_m"] == pytest.approx(1000, rel=5e-4)


def test_the_report_names_what_is_not_connected(built: nb.Report, database_url: str) -> None:
    assert built.pieces == 4
    assert built.disconnected[0] == {"edges": 3, "roads": 3, "road_ids": ["B1", "N1", "S1"]}
    assert sorted(built.isolated) == ["T2", "X1"]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT report, collection, collection_version FROM net.networks WHERE id = 'nw_roads'"
        ).fetchone()
        audit = conn.execute(
            "SELECT actor, details FROM platform.audit_log WHERE action = 'network.build' "
            "AND collection_id = 'nw_roads' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert stored is not None and stored[0]["pieces"] == 4 and stored[1] == "nw_roads"
    assert audit is not None and audit[0].startswith("cli:") and audit[1]["edges"] == 14


def test_pgrouting_walks_the_graph_and_honours_the_one_way(
    built: nb.Report, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:

        def vertex(x: float, y: float) -> int:
            row = conn.execute(
                "SELECT id FROM net.vertices WHERE network = 'nw_roads' "
                "ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4546) LIMIT 1",
                (X0 + x, Y0 + y),
            ).fetchone()
            assert row is not None
            return int(row[0])

        def seconds(a: int, b: int) -> float:
            row = conn.execute(
                "SELECT max(agg_cost) FROM pgr_dijkstra(%s, %s, %s)",
                (nb.edges_sql("nw_roads"), a, b),
            ).fetchone()
            return float(row[0]) if row and row[0] is not None else -1.0

        south_east, north_east = vertex(2000, 0), vertex(2000, 1000)
        north = seconds(south_east, north_east)
        south = seconds(north_east, south_east)
        unreachable = seconds(vertex(0, 0), vertex(3000, 3000))
    assert north == pytest.approx(1000 / (30 / 3.6), rel=1e-3)  # straight up V3
    # down V3 is forbidden: back along H2 to V2, down V2, along H1
    assert south == pytest.approx(1000 / (50 / 3.6) + 2000 / (30 / 3.6), rel=1e-3)
    assert unreachable == -1.0


def test_a_rebuild_replaces_the_network_whole(
    roads: Any, built: nb.Report, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        again = nb.build(conn, roads, SETTINGS)
        count = conn.execute("SELECT count(*) FROM net.edges WHERE network = 'nw_roads'").fetchone()
    assert again.rebuilt == "whole" and again.edges == built.edges
    assert count == (built.edges,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": nb.Fields(speed="kind")}, "has no property 'kind'"),
        ({"fields": nb.Fields(speed="class", level="name")}, "must hold whole numbers"),
        ({"snap_m": 0.0}, "snap tolerance must be in (0, 50] m"),
        ({"snap_m": 80.0}, "snap tolerance must be in (0, 50] m"),
    ],
)
def test_bad_settings_are_refused_and_leave_the_network(
    roads: Any, built: nb.Report, database_url: str, change: dict[str, Any], message: str
) -> None:
    bad = nb.Settings(**{"fields": SETTINGS.fields, "speeds": SPEEDS, "snap_m": 1.0, **change})
    with psycopg.connect(database_url) as conn:
        with pytest.raises(InvalidInputError) as caught:
            nb.build(conn, roads, bad)
        conn.rollback()
        count = conn.execute("SELECT count(*) FROM net.edges WHERE network = 'nw_roads'").fetchone()
    assert message in str(caught.value)
    assert count == (built.edges,)


def test_a_point_collection_is_no_network(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "points.gpkg", ROADS[:1], [Point(X0, Y0)])
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    ingest_vector(url, VectorSource(path=path, collection_id="nw_points", title="Points"),
                  settings, actor="pytest")  # fmt: skip
    with engine(url) as eng, eng.connect() as conn:
        record = get_collection(conn, "nw_points")
    with psycopg.connect(database_url) as conn, pytest.raises(InvalidInputError) as caught:
        nb.build(conn, record, SETTINGS)
    assert "holds POINT: a network is built from lines" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default: 30\nclasses: {a: 0}\n", "class 'a': 0 km/h is outside (0, 300]"),
        ("classes: {a: 30}\n", "'default'"),
        ("default: fast\n", "'fast' is not a speed in km/h"),
        ("default: 30\nspeed: 2\n", "unknown key(s) speed"),
        ("- 30\n", "expected a mapping"),
        ("default: [\n", "is not valid YAML"),
    ],
)
def test_bad_speed_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "speeds.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError) as caught:
        Speeds.load(path)
    assert message in str(caught.value)


def test_the_demo_speeds_file_loads() -> None:
    speeds = Speeds.load(Path(__file__).resolve().parent.parent / "layers/networks/roads.yaml")
    assert speeds.default > 0 and {"expressway", "arterial", "secondary", "local"} <= set(
        speeds.classes
    )


def test_the_cli_builds_reports_and_refuses_clearly(
    roads: Any, built: nb.Report, database_url: str, tmp_path: Path
) -> None:
    speeds = tmp_path / "speeds.yaml"
    speeds.write_text("default: 20\nclasses: {arterial: 50, local: 30, bridge: 40}\n")
    env = {"SPATIAL_DATABASE_URL": database_url}
    common = ("network", "build", "nw_roads", "--speeds", str(speeds))
    out = run_cli(*common, "--oneway-field", "oneway", "--level-field", "level", **env)
    assert out.returncode == 0, out.stderr
    assert "network nw_roads from nw_roads: 14 edges" in out.stdout
    assert "1 one-way edges" in out.stdout and "rebuilt whole" in out.stdout
    assert "class 'track' (1 roads) has no speed: 20 km/h" in out.stdout
    assert "4 pieces" in out.stdout and "3 edge(s): B1, N1, S1" in out.stdout
    assert "isolated segments:" in out.stdout and "T2" in out.stdout and "X1" in out.stdout
    # without the level field the bridge meets both streets it crosses: one piece fewer
    out = run_cli(*common, "--oneway-field", "oneway", "--network", "nw_flat", **env)
    assert out.returncode == 0, out.stderr
    assert "3 pieces" in out.stdout and "B1" not in out.stdout
    bad = run_cli(*common, "--speed-field", "speed", **env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "has no property 'speed'" in bad.stderr
    missing = run_cli("network", "build", "nw_roads", "--speeds", str(tmp_path / "no.yaml"), **env)
    assert missing.returncode == 1 and "cannot read the speeds file" in missing.stderr


def test_the_network_follows_its_collection(alone: Settings, tmp_path: Path) -> None:
    """A re-import rebuilds the networks of the collection in its own job (the job report
    says so); an edit (any change of the catalog version) is caught up by ``follow``."""
    settings = alone
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    record = ingest(settings, tmp_path, "nw_follow")
    build(url, record)
    fewer = [r for r in ROADS if r[0] != "X1"]
    lines = [LineString([(X0 + x, Y0 + y) for x, y in r[5]]) for r in fewer]
    path = write(tmp_path / "nw_follow_2.gpkg", fewer, lines)
    again = ingest_vector(url, VectorSource(path=path, collection_id="nw_follow", title="Roads",
                                            key="road_id"), settings, actor="pytest")  # fmt: skip
    [rebuilt] = again.report["networks"]
    assert rebuilt["network"] == "nw_follow" and rebuilt["rebuilt"] == "whole"
    assert (rebuilt["edges"], rebuilt["pieces"]) == (13, 3)
    assert nb.follow(url) == []  # nothing left behind
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE platform.collections SET version = version + 1 WHERE id = 'nw_follow'")
    caught_up = nb.follow(url)
    assert [(s["network"], s["edges"]) for s in caught_up] == [("nw_follow", 13)]
    with psycopg.connect(url) as conn:
        actors = conn.execute(
            "SELECT actor FROM platform.audit_log WHERE action = 'network.build' "
            "AND collection_id = 'nw_follow' ORDER BY id"
        ).fetchall()
    assert [a for (a,) in actors][1] == "pytest"  # the re-import's actor
    assert len(actors) == 3  # the first build, the re-import's, the catch-up


def test_a_rebuild_the_new_data_refuses_keeps_the_network(alone: Settings, tmp_path: Path) -> None:
    settings = alone
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    record = ingest(settings, tmp_path, "nw_broken")
    build(url, record)
    lines = [LineString([(X0 + x, Y0 + y) for x, y in r[5]]) for r in ROADS]
    frame = gpd.GeoDataFrame({"road_id": [r[0] for r in ROADS]}, geometry=lines, crs="EPSG:4546")
    frame.to_file(tmp_path / "bare.gpkg", driver="GPKG")  # the class field is gone
    again = ingest_vector(url, VectorSource(path=tmp_path / "bare.gpkg", collection_id="nw_broken",
                                            title="Roads", key="road_id"), settings)  # fmt: skip
    [failed] = again.report["networks"]
    assert failed["network"] == "nw_broken" and "has no property 'class'" in failed["error"]
    with psycopg.connect(url) as conn:
        kept = conn.execute("SELECT count(*) FROM net.edges WHERE network = 'nw_broken'").fetchone()
        report = conn.execute("SELECT report FROM net.networks WHERE id = 'nw_broken'").fetchone()
    assert kept == (14,)
    assert report is not None and "has no property 'class'" in report[0]["follow_error"]
    assert nb.follow(url) == []  # not tried again until the roads change again
