"""The alarm triggers of ``layers/floods.yaml`` end to end, on the valley of ``floodcase``:
readings above danger stored for its gauge ``G1`` raise an alarm through the observation
store; the trigger's run then writes the extent collection and closes the road across the
river (routing goes around it), once for that alarm however often it runs.

The gauge gets the shipped water-level rule's levels through a rule of its own, synced
with the shipped ones and removed at the end (the sync clears its alarm)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import floodcase as fc
import psycopg
import pytest

from spatial.catalog import get_collection, list_collections
from spatial.db import engine
from spatial.flood import config, trigger
from spatial.network import closures, routing
from spatial.settings import Settings
from spatial.sta import rules, things
from spatial.sta.observations import Reading, store

T0 = dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)
RULE = """rules:
  - id: flt-water-level
    title: Water level of the flood trigger test (m)
    observed_property: Water level
    collection: flt_gauges
    levels:
      - {level: warning, attribute: warning_level_m}
      - {level: danger, attribute: warning_level_m, offset: 1.0}
"""
TRIGGER = """triggers:
  - {gauge: G1, at: warning, collection: flt_never}
  - {gauge: G1, at: danger, close_roads: true, closure_hours: 2, collection: flt_extent}
"""
_STREAM = """
WITH s AS (INSERT INTO sta.sensors (name, encoding_type, metadata)
           VALUES ('flt radar', 'text/plain', '-') RETURNING id),
p AS (INSERT INTO sta.observed_properties (name, definition)
      VALUES ('Water level', 'urn:test:flt-water-level') RETURNING id)
INSERT INTO sta.datastreams (name, observation_type, unit, thing_id, sensor_id,
                             observed_property_id)
SELECT 'G1 water level', 'http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement',
       '{"symbol": "m"}', t.id, s.id, p.id FROM s, p, sta.things t
WHERE t.collection = 'flt_gauges' AND t.feature_key = 'G1' RETURNING id
"""


@pytest.fixture(scope="module")
def valley(
    demo_url: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The valley (``flt_``), its network, G1 as a Thing with a water-level datastream,
    the test rule synced; the rules as shipped again afterwards."""
    folder = tmp_path_factory.mktemp("flood-trigger")
    ids = fc.ingest(settings, folder, "flt_")
    fc.network(settings, ids["roads"])
    (folder / "rules").mkdir()
    (folder / "rules" / "water.yaml").write_text(RULE, encoding="utf-8")
    with psycopg.connect(demo_url, autocommit=True) as conn:
        things.link(conn, ids["gauges"], name_field="name")
        row = conn.execute(_STREAM).fetchone()
        assert row is not None
        rules.sync(conn, rules.load() + rules.read(folder / "rules" / "water.yaml"))
        try:
            yield {"ids": ids, "datastream": int(row[0]),
                   "conf": config.read(fc.config(folder, ids, TRIGGER, ids["roads"]))}  # fmt: skip
        finally:
            rules.install(conn)


def _pending(url: str, settings: Settings, conf: config.Floods) -> list[dict[str, Any]]:
    """One pass of the triggers, as an API worker runs it."""

    async def run() -> list[dict[str, Any]]:
        with engine(url) as eng, eng.connect() as sconn:
            records = {r.id: r for r in list_collections(sconn)}
        ctx = trigger.SystemContext(url, settings, records, conf.gauges)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await trigger.run_pending(conn, ctx, conf)

    return asyncio.run(run())


def _seconds(url: str, network: str) -> tuple[float, dict[str, Any]]:
    """Across the river at the gauge, by road: seconds and the route's line."""

    async def run() -> tuple[float, dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            path = [tuple(fc.lonlat(12, fc.GAUGE_COL)), tuple(fc.lonlat(188, fc.GAUGE_COL))]
            found = await routing.route(conn, network, path)
            return found.seconds, found.geometry

    return asyncio.run(run())


def test_readings_above_danger_run_the_flood_extent_once(
    demo_url: str, settings: Settings, valley: dict[str, Any]
) -> None:
    assert not config.FloodSettings().runs_triggers("test")  # the workers leave it to us
    assert config.FloodSettings(triggers=True).runs_triggers("test")
    conf, network = valley["conf"], valley["ids"]["roads"]
    before, _ = _seconds(demo_url, network)
    assert _pending(demo_url, settings, conf) == []  # no alarm yet
    with psycopg.connect(demo_url, autocommit=True) as conn:
        done = store(conn, [Reading(valley["datastream"], T0.isoformat(), 85.5),
                            Reading(valley["datastream"], (T0 + dt.timedelta(hours=1)).isoformat(),
                                    86.4)], settings=settings.sta)  # fmt: skip
    assert [(e.state, e.level) for e in done.alarms] == [("raised", "danger")]
    alarm = done.alarms[0].alarm
    ran = _pending(demo_url, settings, conf)
    try:
        assert [r["alarm"] for r in ran] == [alarm] and ran[0]["error"] is None
        # Danger is 1 m over the 85 m warning level: 3 m over the bed at the gauge.
        assert ran[0]["water_level"] == 86.0 and ran[0]["method"] == "river"
        assert ran[0]["area_m2"] == pytest.approx(606 * fc.CELL**2)
        assert ran[0]["collection"] == "flt_extent"  # the danger trigger, not the warning's
        with engine(demo_url) as eng, eng.connect() as sconn:
            table = get_collection(sconn, "flt_extent").storage_table
        with psycopg.connect(demo_url) as conn:
            rows = conn.execute(f"SELECT gauge, method, level FROM layers.{table}").fetchall()  # noqa: S608 - the catalog's name
            closed = closures.list_closures(conn, [network])
        assert {tuple(r) for r in rows} == {("G1", "river", 86.0)} and len(rows) == 2
        assert [c.id for c in closed] == [ran[0]["closures"][0]["id"]]
        assert "G1" in closed[0].reason and closed[0].created_by == trigger.ACTOR.name
        after, line = _seconds(demo_url, network)
        assert after > 2 * before  # around by the road out of the gauge's reach
        assert max(x for x, _ in line["coordinates"]) > fc.lonlat(100, 270)[0]
        assert _pending(demo_url, settings, conf) == []  # once for that alarm
        with psycopg.connect(demo_url) as conn:
            runs = conn.execute("SELECT gauge, level, error FROM sta.flood_runs "
                                "WHERE alarm_id = %s", (alarm,)).fetchall()  # fmt: skip
        assert runs == [("G1", "danger", None)]
    finally:
        with psycopg.connect(demo_url, autocommit=True) as conn:
            for made in closures.list_closures(conn, [network]):
                closures.remove_closure(conn, made.id)


def test_the_shipped_triggers_are_valid() -> None:
    shipped = config.read(config.SHIPPED)
    assert [(t.gauge, t.at, t.close_roads) for t in shipped.triggers] == [
        ("YF-SW-02", "danger", True)]  # fmt: skip
    assert Path(config.SHIPPED).name == "floods.yaml"
