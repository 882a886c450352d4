"""The live stream of GPS positions and sensor alarms: ``/gps/live`` (WebSocket), also at
``/live``.

Every store of fixes sends ``NOTIFY spatial_gps`` with the devices it moved and the
geofence events it found (:mod:`spatial.gps.store`), whichever worker or process stored
them; every store of sensor readings that raised or cleared alarms sends
``{"alarms": [...]}`` (:mod:`spatial.sta.alarms`), told as they are to the subscribers who
may see the datastream's Thing. Each API worker
LISTENs (:func:`follow`), reads those devices' latest positions once per distinct row
restriction of its subscribers (the access policy, applied in SQL as everywhere), and puts
a message in the queue of every subscriber whose filters (devices, departments, a bbox)
match. Each subscriber has its own bounded queue: a slow client loses its oldest messages
(counted, and told), it never stalls the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from api.db import Database
from spatial.audit import Actor
from spatial.command import dispatch
from spatial.edits import Editable
from spatial.features import LayerSchema, Rows, source
from spatial.flood import config as flood_config
from spatial.flood import trigger as flood_trigger
from spatial.gps import fences
from spatial.gps.tracks import rebuild_all, refresh_extents
from spatial.network import build as network_build
from spatial.sta import things

LOG = logging.getLogger(__name__)
FOLLOWER = Actor("api:network-follower")
"""Who rebuilds a network after its roads were edited (in the audit log)."""
FENCE_FOLLOWER = Actor("api:fence-follower")
"""Who remakes the geofences of a collection after it was edited (in the audit log)."""
ARRIVALS = Actor("api:dispatch")
"""Who turns units and incidents on scene (in the audit log)."""
COLLECTION = "gps_latest"
QUEUE = 1000
"""Messages a subscriber may have waiting before the oldest are dropped."""


@dataclass(eq=False)
class Subscriber:
    """One WebSocket client: what it may see and what it asked for."""

    layer: LayerSchema | None
    """The latest positions' layer as the client may read it; None: a client who may not
    read ``gps_latest``, or asked for no positions (a map without vehicles), is told no
    position or geofence event (alarms and incidents only)."""
    devices: frozenset[str] | None = None
    departments: frozenset[str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    incidents: bool = False
    """Whether the client may read the incidents: it is then told their changes, the
    dispatches and the arrivals on scene (:mod:`spatial.command.dispatch`)."""
    sees_alarm: Callable[[str | None, str | None], bool] | None = None
    """Whether the client may see an alarm of a datastream of this department and a Thing
    of this collection (:meth:`layers.access.View.sees_fence`: an admin, a signed-in
    member of the department, a reader of the collection); None: it is told no alarm."""
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    dropped: int = 0

    def wants(self, row: dict[str, Any]) -> bool:
        """Whether a position passes the client's filters."""
        if self.devices is not None and row["device_id"] not in self.devices:
            return False
        if self.departments is not None and row["department"] not in self.departments:
            return False
        if self.bbox is not None:
            w, s, e, n = self.bbox
            return bool(w <= row["lon"] <= e and s <= row["lat"] <= n)
        return True

    def offer(self, message: str) -> None:
        """Queue a message; when full, drop the oldest (the client is too slow)."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


@dataclass
class Hub:
    """The subscribers of one worker."""

    subscribers: set[Subscriber] = field(default_factory=set)
    events: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a notification says events were recorded (geofence events, alarms): the
    webhook deliverer (:mod:`api.webhooks`) then runs at once rather than at its next
    round, so an alarm reaches the webhooks well within a second."""


def positions_statement(layer: LayerSchema) -> sql.Composed:
    """The latest positions of some devices (``%(devices)s``, None for all) as the layer's
    restriction lets its reader see them."""
    return sql.SQL(
        "SELECT t.device_id, t.name, t.kind, t.department, t.time, ST_X(t.geom) AS lon, "
        "ST_Y(t.geom) AS lat, t.speed, t.course FROM {} t "
        "WHERE %(devices)s::text[] IS NULL OR t.device_id = ANY(%(devices)s)"
    ).format(source(layer))


def message(row: dict[str, Any]) -> str:
    """A position as the stream sends it (JSON)."""
    return json.dumps({
        "type": "position", "device": row["device_id"], "name": row["name"],
        "kind": row["kind"], "department": row["department"], "time": row["time"].isoformat(),
        "lon": row["lon"], "lat": row["lat"], "speed": row["speed"], "course": row["course"],
    })  # fmt: skip


async def positions(
    db: Database, layer: LayerSchema, devices: list[str] | None
) -> list[dict[str, Any]]:
    """The latest positions of ``devices`` (all when None) that ``layer`` shows."""
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        await cur.execute(positions_statement(layer), {"devices": devices})
        rows: list[dict[str, Any]] = await cur.fetchall()
        return rows


async def broadcast(
    hub: Hub,
    db: Database,
    devices: list[str],
    events: list[dict[str, Any]] | None = None,
    incidents: list[dict[str, Any]] | None = None,
    *,
    alarms: list[dict[str, Any]] | None = None,
) -> None:
    """Send the new positions of ``devices``, and geofence ``events``, to every subscriber
    that may see the device and wants it; what happened to ``incidents`` to every
    subscriber who may read them; ``alarms`` raised and cleared to those who may see
    them."""
    _tell_incidents(hub, incidents or [])
    _tell_alarms(hub, alarms or [])
    if not devices and not events:
        return
    events = events or []
    moved = sorted({*devices, *(e["device"] for e in events)})
    groups: dict[Rows | None, list[Subscriber]] = {}
    for subscriber in list(hub.subscribers):
        if subscriber.layer is not None:
            groups.setdefault(subscriber.layer.restriction, []).append(subscriber)
    for members in groups.values():
        layer = members[0].layer
        assert layer is not None  # noqa: S101 - grouped above
        rows = {r["device_id"]: r for r in await positions(db, layer, moved)}
        for device in devices:
            if device in rows:
                text = message(rows[device])
                for subscriber in members:
                    if subscriber.wants(rows[device]):
                        subscriber.offer(text)
        for event in events:
            row = rows.get(event["device"])
            if row is None:
                continue  # a device this group may not see
            where = {**row, "lon": event["lon"], "lat": event["lat"]}
            text = json.dumps({"type": "event", **event})
            for subscriber in members:
                if subscriber.wants(where):
                    subscriber.offer(text)


def _tell_incidents(hub: Hub, incidents: list[dict[str, Any]]) -> None:
    """What happened to incidents, to the subscribers who may read them."""
    for said in incidents:
        text = json.dumps({"type": "incident", **said})
        for subscriber in list(hub.subscribers):
            if subscriber.incidents:
                subscriber.offer(text)


def _tell_alarms(hub: Hub, alarms: list[dict[str, Any]]) -> None:
    """Alarms raised and cleared (:meth:`spatial.sta.alarms.Event.message`), to the
    subscribers who may see them."""
    for said in alarms:
        if not isinstance(said, dict):
            continue
        text = json.dumps({**said, "type": "alarm"}, ensure_ascii=False)
        department, collection = said.get("department"), said.get("collection")
        for subscriber in list(hub.subscribers):
            sees = subscriber.sees_alarm
            if sees is not None and sees(department, collection):
                subscriber.offer(text)


async def follow(app: Any) -> None:
    """LISTEN for stored fixes and broadcast them, reconnecting after a lost connection.

    Notifications are queued as they come and broadcast by :func:`_send`, which takes
    everything queued at once: one read of the latest positions serves every
    notification that came meanwhile, so a worker keeps up with any rate of fixes (a
    device that moved several times is sent once, at its newest position; every event is
    sent)."""
    queued: asyncio.Queue[str] = asyncio.Queue()
    sender = asyncio.create_task(_send(app, queued))
    delay = 0.5
    try:
        while True:
            try:
                async with app.state.db.listen("spatial_gps") as conn:
                    delay = 0.5
                    async for note in conn.notifies():
                        if '"events"' in note.payload or '"alarms"' in note.payload:
                            app.state.live.events.set()
                        if app.state.live.subscribers:
                            queued.put_nowait(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.warning("the live GPS stream lost its connection; reconnecting",
                            exc_info=True)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
    finally:
        sender.cancel()


async def _send(app: Any, queued: asyncio.Queue[str]) -> None:
    """Broadcast what is queued, all of it at a time."""
    while True:
        payloads = [await queued.get()]
        while not queued.empty():
            payloads.append(queued.get_nowait())
        devices: set[str] = set()
        events: list[dict[str, Any]] = []
        incidents: list[dict[str, Any]] = []
        alarms: list[dict[str, Any]] = []
        for payload in payloads:
            try:
                said = json.loads(payload)
                devices.update(said.get("devices", []))
                events.extend(said.get("events", []))
                incidents.extend(said.get("incidents", []))
                alarms.extend(said.get("alarms", []))
            except (ValueError, AttributeError, TypeError):
                continue
        try:
            await broadcast(app.state.live, app.state.db, sorted(devices), events, incidents,
                            alarms=alarms)  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.warning("the live GPS stream could not read positions", exc_info=True)


async def derive_tracks(app: Any, every_s: float = 10.0, share: float = 0.25) -> None:
    """Derive the tracks, trips and stops of changed device-days, and then the GPS
    collections' extents (:mod:`spatial.gps.tracks`; several workers share the work):
    every ``every_s`` seconds, or less often when a pass takes long, so that deriving
    takes at most about ``share`` of the time (a large fleet streaming hard gets its
    tracks a little later rather than slower ingest)."""

    def work() -> int:
        with app.state.db.sync() as conn:
            done = rebuild_all(conn, wait=False)
            if done:
                refresh_extents(conn)
            return done

    took = 0.0
    while True:
        await asyncio.sleep(max(every_s, took / share - took))
        started = time.monotonic()
        try:
            await asyncio.to_thread(work)
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.warning("deriving GPS tracks failed; retrying", exc_info=True)
        took = time.monotonic() - started


async def follow_networks(app: Any, every_s: float = 10.0) -> None:
    """Rebuild the road networks, and remake the geofences, whose collection changed (an
    edit through the API; a re-import follows them in its own job), every ``every_s``
    seconds; workers share the work by a lock per network or collection
    (:func:`spatial.network.build.follow`, :func:`spatial.gps.fences.follow`)."""

    def work() -> list[dict[str, Any]]:
        with app.state.db.sync() as conn:  # a pooled connection: most passes stop here
            networks = conn.execute(network_build.STALE, {"c": None}).fetchone() is not None
            fenced = conn.execute(fences.STALE, {"c": None}).fetchone() is not None
            linked = conn.execute(things.STALE, {"c": None}).fetchone() is not None
        done = network_build.follow(app.state.url, None, FOLLOWER) if networks else []
        done += things.follow(app.state.url, FENCE_FOLLOWER) if linked else []
        return done + (fences.follow(app.state.url, None, FENCE_FOLLOWER) if fenced else [])

    while True:
        await asyncio.sleep(every_s)
        try:
            done = await asyncio.to_thread(work)
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.warning("following the changed collections failed; retrying", exc_info=True)
            continue
        for summary in done:
            LOG.info("followed a collection that changed: %s", summary)


async def follow_arrivals(app: Any, every_s: float = 2.0) -> None:
    """Turn dispatched units on scene once their fixes reach the incident, every
    ``every_s`` seconds (:func:`spatial.command.dispatch.arrivals`; workers share the work
    by row locks)."""
    while True:
        await asyncio.sleep(every_s)
        record = app.state.catalog.collections.get(dispatch.COLLECTION)
        if record is None:
            continue
        try:
            async with app.state.db.connection() as conn:
                await dispatch.arrivals(conn, Editable.of(record), actor=ARRIVALS,
                                        within_m=app.state.settings.command.on_scene_m)  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.warning("turning units on scene failed; retrying", exc_info=True)


async def follow_floods(app: Any) -> None:
    """Run the flood extents the alarm triggers of ``layers/floods.yaml`` call for, every
    few seconds (:func:`spatial.flood.trigger.run_pending`: each alarm once, whatever the
    number of workers); not in the test environment unless ``SPATIAL_FLOOD_TRIGGERS``."""
    settings = flood_config.FloodSettings()
    if not settings.runs_triggers(app.state.settings.environment):
        return
    while True:
        await asyncio.sleep(settings.every_s)
        try:
            conf = await asyncio.to_thread(flood_config.load)
            if not conf.triggers:
                continue
            ctx = flood_trigger.SystemContext(
                app.state.url, app.state.settings, app.state.catalog.collections, conf.gauges
            )
            async with app.state.db.connection() as conn:
                done = await flood_trigger.run_pending(conn, ctx, conf)
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.warning("running the flood triggers failed; retrying", exc_info=True)
            continue
        for outcome in done:
            LOG.info("a flood trigger ran: %s", outcome)
