"""Helpers shared by the GPS stream tests (``test_gps_streams``, ``test_gps_restart``):
a Mosquitto of the test's own, an OwnTracks publisher that notes what the broker
acknowledged, running a receiver while a test body runs, and polling with a deadline; and
for the geofence tests (``test_gps_flood``, ``test_map_live``) the demo's flood-zone fence
and a straight crossing of it."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
import shapely
from paho.mqtt.enums import CallbackAPIVersion
from shapely.geometry.base import BaseGeometry
from support import free_port

from spatial.gps.mqtt import MqttOptions
from spatial.gps.tcp import Backoff

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
QUICK_MQTT = MqttOptions(batch_interval=0.05, reconnect_min=1, reconnect_max=2, pool_timeout=0.5,
                         backoff=Backoff(0.1, 0.5))  # fmt: skip
"""The OwnTracks subscriber's options for tests: quick batches, reconnections and retries."""


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on a connection of its own."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


async def until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait until ``check()`` (run on a thread: it may query the database) is true."""
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {seconds} s")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def started(
    start: Callable[[asyncio.Event], Awaitable[None]],
) -> AsyncIterator[asyncio.Task[None]]:
    """A receiver (``start(ready)``) running in a task once it is ready; cancelled at the end.
    The task is given, so that a test can check the receiver is still running."""
    ready = asyncio.Event()
    task = asyncio.create_task(start(ready))
    waiting = asyncio.create_task(ready.wait())
    try:
        async with asyncio.timeout(10):
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what made it stop
        yield task
    finally:
        waiting.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def running(
    start: Callable[[asyncio.Event], Awaitable[None]], body: Callable[[], Awaitable[None]]
) -> None:
    """Run a receiver (``start(ready)``) in a task while ``body`` runs, then cancel it."""
    async with started(start):
        await body()


class Broker:
    """A Mosquitto on a free port of loopback, with persistence in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "mosquitto.log"
        self.config = folder / "mosquitto.conf"
        (folder / "data").mkdir()
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder / 'data'}/\nlog_dest stderr\n"
            f"user {getpass.getuser()}\n"  # as root it would switch to 'mosquitto'
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=out,
                                            stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe, contextlib.suppress(OSError):
                probe.connect(("127.0.0.1", self.port))
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # mosquitto saves its persistence file on SIGTERM
            self.process.wait(10)

    def ensure_running(self) -> None:
        """Start it again if a test stopped it and failed before restarting it."""
        if self.process is None or self.process.poll() is not None:
            self.start()


@contextlib.contextmanager
def broker_in(folder: Path) -> Iterator[Broker]:
    """A running broker for a fixture (the test is skipped without Mosquitto)."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (scripts/sysdeps.sh installs it)")
    server = Broker(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Publisher:
    """A paho client publishing OwnTracks locations at QoS 1, noting what was acknowledged."""

    def __init__(self, port: int, name: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.reconnect_delay_set(1, 2)
        self.sent: list[tuple[int, int]] = []  # (tst, mid)
        self.puback: list[int] = []  # mids; list.append needs no lock (paho's thread)
        self.client.on_publish = self._on_publish
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, _: Any, __: Any, mid: int, code: Any, ___: Any) -> None:
        if not code.is_failure:
            self.puback.append(mid)

    @property
    def acked(self) -> list[int]:
        """The ``tst`` of every message the broker acknowledged (a mid is not reused
        within 65,535 messages)."""
        mids = set(self.puback)
        return [tst for tst, mid in self.sent if mid in mids]

    def location(self, topic: str, tst: int, **extra: Any) -> None:
        message = {"_type": "location", "lat": 22.91 + tst % 1000 * 1e-5, "lon": 112.03,
                   "tst": tst, "acc": 5, "batt": 80, "tid": "ph", **extra}  # fmt: skip
        self.publish(topic, json.dumps(message).encode(), tst)

    def publish(self, topic: str, payload: bytes, tst: int = 0) -> None:
        # queued by paho even while disconnected, and sent (again) once connected
        self.sent.append((tst, self.client.publish(topic, payload, qos=1).mid))

    def wait(self, seconds: float = 20) -> None:
        """Until every message is acknowledged, or ``seconds`` have passed."""
        deadline = time.monotonic() + seconds
        while len(self.acked) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def flood_fence(url: str, zone_id: str) -> tuple[int, str, BaseGeometry]:
    """The fence the demo made of flood zone ``zone_id``: id, name and polygon (lon/lat)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT f.id, f.name, ST_AsBinary(f.geom) FROM gps.fences f "
            "JOIN layers.flood_zones z ON z.fid = f.source_feature "
            "WHERE f.source_collection = 'flood_zones' AND z.zone_id = %s",
            (zone_id,),
        ).fetchone()
    assert row is not None, f"no fence was made of flood zone {zone_id}"
    return int(row[0]), str(row[1]), shapely.from_wkb(bytes(row[2]))


def crossing(
    zone: BaseGeometry, *, step: float, clear: float, edge: float
) -> list[tuple[float, float, bool]]:
    """Fixes (lon, lat, inside) ``step`` degrees apart on a north-south line that starts
    ``clear`` degrees south of the zone, is inside it for one stretch, and ends ``clear``
    north of it; fixes closer than ``edge`` to its outline are left out (inside or outside
    is then beyond doubt)."""
    west, _, east, _ = zone.bounds
    for k in range(1, 50):
        lon = round(west + (east - west) * k / 50, 7)
        meridian = shapely.LineString([(lon, -90.0), (lon, 90.0)])
        pieces = shapely.get_parts(shapely.intersection(meridian, zone))
        if len(pieces) != 1 or pieces[0].geom_type != "LineString":
            continue  # the zone bends back across this meridian: try the next
        _, south, _, north = pieces[0].bounds
        fixes = []
        lat = south - clear
        while lat < north + clear + step:
            point = shapely.Point(lon, round(lat, 7))
            if zone.boundary.distance(point) > edge:
                fixes.append((lon, round(lat, 7), bool(zone.contains(point))))
            lat += step
        inside = [n for n, (*_, into) in enumerate(fixes) if into]
        if inside and inside == list(range(inside[0], inside[-1] + 1)) and not fixes[-1][2]:
            return fixes
    raise AssertionError("no straight crossing of the zone found")
