"""Flood extents run by alarms: the ``triggers`` of ``layers/floods.yaml``.

A trigger names a gauge and an alarm level; when an alarm at that level (or a higher one
of the same rule) is active on the gauge's water-level datastream, the flood extent runs
once for that alarm: at the trigger's ``level`` (default the level of ``at``), written to
its collection (the gauge's earlier polygons replaced) and, with ``close_roads``, closing
the roads it covers until the expiry, audited as the trigger (:data:`ACTOR`).

The alarm is raised in the observation store's transaction; the extent is not computed
there (it reads a DEM and writes a collection: seconds, not the milliseconds a reading's
write may take, and it must never make the reading fail). The API workers look for
alarms due every few seconds instead (:func:`run_pending`, run by
:func:`api.live.follow_floods`): each claims an alarm by inserting its row in
``sta.flood_runs`` (migration 0020) before running it, so an alarm runs once whatever the
number of workers, and its outcome or error is recorded there.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from spatial import analysis, rasterstore
from spatial.audit import Actor
from spatial.catalog import CollectionRecord, Kind
from spatial.errors import NotFoundError, SpatialError
from spatial.features import LayerSchema
from spatial.flood import config, process
from spatial.flood.config import Floods, Trigger
from spatial.network import closures
from spatial.settings import Settings

LOG = logging.getLogger(__name__)
ACTOR = Actor("api:flood-trigger")
"""Who runs the triggers' flood extents (in the audit log and the closures)."""

_PENDING = """
SELECT a.id, t.feature_key AS gauge, a.level, a.rank,
       (SELECT json_object_agg(lv.level, lv.rank) FROM sta.alarm_levels lv
        WHERE lv.rule_id = a.rule_id) AS ranks
FROM sta.alarms a
JOIN sta.datastreams d ON d.id = a.datastream_id
JOIN sta.things t ON t.id = d.thing_id
JOIN sta.observed_properties p ON p.id = d.observed_property_id
WHERE a.state = 'active' AND t.collection = %(c)s AND t.feature_key = ANY(%(gauges)s)
  AND (lower(p.name) = lower(%(p)s) OR p.definition = %(p)s)
  AND NOT EXISTS (SELECT 1 FROM sta.flood_runs r WHERE r.alarm_id = a.id)
ORDER BY a.id
"""
_CLAIM = """
INSERT INTO sta.flood_runs (alarm_id, gauge, level) VALUES (%s, %s, %s)
ON CONFLICT (alarm_id) DO NOTHING RETURNING alarm_id
"""
_DONE = (
    "UPDATE sta.flood_runs SET finished_at = now(), outcome = %s, error = %s WHERE alarm_id = %s"
)


@dataclass(frozen=True)
class Due:
    """An alarm a trigger runs the flood extent for."""

    alarm: int
    gauge: str
    level: str
    trigger: Trigger

    def inputs(self, conf: Floods) -> dict[str, Any]:
        """The flood-extent's inputs for it."""
        level = self.trigger.level if self.trigger.level is not None else self.trigger.at
        found: dict[str, Any] = {"gauge": self.gauge, "gauges": conf.gauges, "level": level,
                                 "close_roads": self.trigger.close_roads,
                                 "closure_hours": self.trigger.closure_hours}  # fmt: skip
        if self.trigger.collection is not None:
            found["collection"] = self.trigger.collection
        return found


def choose(rows: list[dict[str, Any]], triggers: tuple[Trigger, ...]) -> list[Due]:
    """The alarms a trigger fires for: of its gauge, at its level or above (by the rank of
    the alarm's rule); the highest such trigger when a gauge has several."""
    due = []
    for row in rows:
        ranks: dict[str, int] = row["ranks"] or {}
        fits = [t for t in triggers if t.gauge == row["gauge"] and t.at in ranks
                and ranks[t.at] <= row["rank"]]  # fmt: skip
        if fits:
            best = max(fits, key=lambda t: ranks[t.at])
            due.append(Due(int(row["id"]), str(row["gauge"]), str(row["level"]), best))
    return due


async def pending(conn: psycopg.AsyncConnection[Any], conf: Floods) -> list[Due]:
    """The active alarms of the triggers' gauges that no worker ran a flood extent for."""
    if not conf.triggers:
        return []
    gauges = sorted({t.gauge for t in conf.triggers})
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_PENDING, {"c": conf.gauges, "gauges": gauges, "p": conf.water_level})
        rows = await cur.fetchall()
    return choose(rows, conf.triggers)


class SystemContext:
    """What a trigger's (or the command line's) flood extent reaches: every collection (the
    platform's own work, no caller's restriction), the raster store, closures and ingest
    as the actor (:data:`ACTOR` for the triggers)."""

    def __init__(self, url: str, settings: Settings, records: Mapping[str, CollectionRecord],
                 gauges: str = "water_gauges", actor: Actor = ACTOR) -> None:  # fmt: skip
        """A context over the catalog ``records``; a new extents collection belongs to the
        department of ``gauges`` (the gauges' collection); ``actor`` closes and writes."""
        self.url = url
        self.gauges = gauges
        self.actor = actor
        self.settings = settings
        self.records = records
        self.rasters = rasterstore.of(settings)
        self.data_dir = settings.data_dir

    def _record(self, collection_id: str) -> CollectionRecord:
        record = self.records.get(collection_id)
        if record is None:
            raise NotFoundError(f"collection {collection_id!r} does not exist")
        return record

    def __call__(self, collection_id: str) -> LayerSchema:
        """A vector layer, every row."""
        return LayerSchema.of(self._record(collection_id))

    def raster(self, collection_id: str) -> CollectionRecord:
        """A raster collection.

        Raises:
            NotFoundError: missing, or not raster data.
        """
        record = self._record(collection_id)
        if record.kind != Kind.RASTER and record.storage_schema != "rs":
            raise NotFoundError(f"collection {collection_id!r} is not raster data")
        return record

    def may_close_roads(self) -> None:
        """The triggers close roads as configured."""

    async def close_roads(self, network: str, reason: str, wkt: str, expires_at: Any
                          ) -> closures.Closure:  # fmt: skip
        """Close roads as :data:`ACTOR` (audited)."""

        def work() -> closures.Closure:
            with psycopg.connect(self.url, autocommit=True) as conn:
                return closures.add_closure(
                    conn, network, reason, wkt, expires_at=expires_at,
                    max_days=self.settings.network.max_closure_days, actor=self.actor,
                )  # fmt: skip

        made: closures.Closure = await asyncio.to_thread(work)
        return made

    async def publish(self, frame: Any, collection_id: str, title: str) -> str:
        """Write the extent's collection (a new one belongs to the gauges' department and is
        public when they are)."""
        from spatial.ingest.vector import VectorSource, ingest_vector  # noqa: PLC0415 - heavy

        gauges = self.records.get(self.gauges)
        exists = collection_id in self.records

        def work() -> str:
            folder = Path(tempfile.mkdtemp(prefix="spatial-flood-"))
            try:
                path = analysis.write_gpkg(frame, folder, collection_id)
                source = VectorSource(
                    path=path, collection_id=collection_id, title=title,
                    department=None if exists or gauges is None else gauges.owner_department,
                    public=None if exists or gauges is None else gauges.is_public,
                    source_name=f"{collection_id}.gpkg",
                )  # fmt: skip
                return ingest_vector(self.url, source, self.settings, actor=self.actor).record.id
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        return str(await asyncio.to_thread(work))


async def run_one(conn: psycopg.AsyncConnection[Any], ctx: Any, conf: Floods, due: Due
                  ) -> dict[str, Any] | None:  # fmt: skip
    """Claim an alarm and run its flood extent; the outcome (None: another worker claimed
    it). An error is recorded on the run, never raised."""
    cur = await conn.execute(_CLAIM, (due.alarm, due.gauge, due.level))
    if await cur.fetchone() is None:
        return None
    outcome: dict[str, Any] = {"alarm": due.alarm, "gauge": due.gauge, "level": due.level}
    error = None
    try:
        result = await process.run_flood(conn, ctx, due.inputs(conf), conf)
        outcome |= {k: result[k] for k in ("area_m2", "closures", "collection", "method")}
        outcome["water_level"] = result["level"]
    except (SpatialError, psycopg.Error, OSError, ValueError) as exc:
        error = str(exc) if isinstance(exc, SpatialError) else f"{type(exc).__name__}: {exc}"
        LOG.warning("the flood extent of alarm %s (gauge %s) failed: %s", due.alarm,
                    due.gauge, error)  # fmt: skip
    await conn.execute(_DONE, (Jsonb(outcome), error, due.alarm))
    return outcome | {"error": error}


async def run_pending(conn: psycopg.AsyncConnection[Any], ctx: Any,
                      conf: Floods | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run the flood extent of every alarm due (each once); what each gave.

    ``conn`` must be in autocommit (each claim and outcome commits on its own)."""
    chosen = conf or config.load()
    done = []
    for due in await pending(conn, chosen):
        outcome = await run_one(conn, ctx, chosen, due)
        if outcome is not None:
            done.append(outcome)
    return done
