"""No loss: the database and the MQTT broker restarted in the middle of two GPS streams.

The test owns everything it restarts: a private PostgreSQL (an :class:`EmbeddedCluster` in
a temporary folder, migrated to head), the real API on it over HTTP, a Mosquitto, and the
OwnTracks subscriber (:func:`spatial.gps.mqtt.follow_owntracks`) between the two. Two
phones stream at once:

- an OsmAnd client (``GET /gps/osmand``) sending one fix after another, each again after a
  short pause until it is answered 200 (a 503 or a broken connection is no answer);
- an OwnTracks app publishing locations at QoS 1 to the broker (paho queues what it
  cannot send and sends it again after reconnecting, as the app does).

Mid-stream the database is stopped (``pg_ctl stop -m fast``) and kept down until both
receivers have felt it (2 s at least; requests that need the database to count a failed
key or sign-in are answered 503 meanwhile); the broker is stopped too, the database
started again while the broker is still down, then the broker. Afterwards every fix
answered 200 or acknowledged by the broker is in ``gps.positions`` exactly once, nothing
else is there, ``gps.latest`` holds each phone's newest fix, and the API answers at once,
writing and reading (no connection the restart closed is lent again).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from gpsnet import QUICK_MQTT, Broker, Publisher, broker_in, query, running, until
from pydantic import SecretStr
from support import LiveServer, admin_headers

from api import create_app
from spatial.accounts import KEY_PREFIX
from spatial.db import EmbeddedCluster, migrate
from spatial.db.embedded import pg_bindir
from spatial.errors import ConfigurationError
from spatial.gps.mqtt import follow_owntracks
from spatial.gps.store import add_device
from spatial.settings import DatabaseSettings, GpsSettings, Settings

pytestmark = pytest.mark.slow  # a PostgreSQL cluster of its own
log = logging.getLogger(__name__)

OSMAND = "restart-osmand"
PHONE, TOPIC = "restart/phone", "owntracks/restart/phone"
SUBSCRIBER = "spatial-gps-restart"
START = int(time.time()) - 3600
"""The first fix's time: an hour ago, one fix a second after it (a track of minutes)."""
STEP = 5 / 111_320
"""Five metres north a second (18 km/h), in degrees of latitude: never a jump."""
PACE, RETRY = 0.05, 0.1
"""Seconds between fixes, and before sending a fix again."""


def _position(device: str, tst: int) -> tuple[float, float]:
    """Where a phone is at ``tst``: (lon, lat), on a straight road at a steady speed."""
    lon, lat = (113.26, 23.10) if device == OSMAND else (113.30, 23.05)
    return lon, lat + (tst - START) * STEP


def _time(tst: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(tst, dt.UTC)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedCluster]:
    """A PostgreSQL of this module's own (restarting it disturbs no other test)."""
    try:
        pg_bindir()
    except ConfigurationError as missing:
        pytest.skip(str(missing))
    folder = Path(tempfile.mkdtemp(prefix="spatial-restart-"))
    folder.chmod(0o755)  # as root the cluster runs as 'postgres', which must reach it
    private = EmbeddedCluster(folder / "var")
    try:
        yield private
    finally:
        private.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def url(cluster: EmbeddedCluster) -> str:
    """Its database with PostGIS, migrated to head, the two phones registered."""
    address = cluster.ensure_running().url()
    migrate.upgrade(address)
    with psycopg.connect(address, autocommit=True) as conn:
        for device in (OSMAND, PHONE):
            add_device(conn, device)
    return address


@pytest.fixture(scope="module")
def api(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The platform API on the private database; a request waits 1 s for a connection
    before it is answered 503 (the default 10 s would only slow the test)."""
    admin_headers(url)  # the admin's key exists before the API reads the accounts
    var = tmp_path_factory.mktemp("var")
    database = DatabaseSettings(url=SecretStr(url), pool_timeout_s=1)
    settings = Settings(environment="test", var_dir=var, data_dir=var / "data", database=database)
    with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with broker_in(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


# -- the two phones ----------------------------------------------------------------------


class OsmAndPhone:
    """An OsmAnd client: a fix a step, each sent again after a pause until answered 200."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)
        self.sent: list[int] = []  # the tst of every fix sent at least once
        self.acked: list[int] = []  # ... and of every fix answered 200
        self.failed: Counter[str] = Counter()  # "503", "connection": not acknowledged
        self.retried = 0  # fixes that noted more than one request
        self.unexpected: list[str] = []  # any other answer: a bug
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tst = START
        while not self.stop.is_set():  # a fix begun is sent until answered, then no more
            self._send(tst)
            tst += 1
            time.sleep(PACE)

    def _send(self, tst: int) -> None:
        lon, lat = _position(OSMAND, tst)
        params: dict[str, Any] = {"id": OSMAND, "lat": lat, "lon": lon, "timestamp": tst,
                                  "speed": 9.7, "bearing": 0}  # fmt: skip
        self.sent.append(tst)
        deadline, tries = time.monotonic() + 30, 0
        while time.monotonic() < deadline:
            tries += 1
            try:
                answer = self.client.get("/gps/osmand", params=params)
            except httpx.TransportError:
                self.failed["connection"] += 1
            else:
                if answer.status_code == 200 and answer.text == "OK":
                    self.acked.append(tst)
                    self.retried += tries > 1
                    return
                if answer.status_code == 503 and answer.headers.get("retry-after"):
                    self.failed["503"] += 1
                else:
                    self.unexpected.append(f"{answer.status_code}: {answer.text[:300]}")
            time.sleep(RETRY)
        self.unexpected.append(f"the fix of {tst} was never answered 200")

    def finish(self) -> None:
        """Stop after the fix being sent."""
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(40)

    def close(self) -> None:
        self.finish()
        self.client.close()


class OwnTracksPhone:
    """An OwnTracks app publishing a location a step at QoS 1 (paho keeps and re-sends)."""

    def __init__(self, port: int) -> None:
        self.publisher = Publisher(port, "test-phone-restart")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tst = START
        while not self.stop.is_set():
            lon, lat = _position(PHONE, tst)
            self.publisher.location(TOPIC, tst, lat=lat, lon=lon)
            tst += 1
            time.sleep(PACE)

    @property
    def sent(self) -> list[int]:
        return [tst for tst, _ in self.publisher.sent]

    @property
    def acked(self) -> list[int]:
        return self.publisher.acked

    def finish(self) -> None:
        """Stop publishing, and wait for the broker to acknowledge what paho still holds."""
        self.close(wait=30)

    def close(self, wait: float = 0) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)
        self.publisher.wait(wait)


# -- the test ----------------------------------------------------------------------------


def _said(caplog: pytest.LogCaptureFixture, logger: str, words: str) -> int:
    """How many records ``logger`` wrote containing ``words``."""
    return sum(1 for r in caplog.records if r.name == logger and words in r.getMessage())


def _stored(url: str, device: str) -> dict[dt.datetime, int]:
    rows = query(url, "SELECT time, count(*) FROM gps.positions WHERE device_id = %s "
                 "GROUP BY time", device)  # fmt: skip
    return {row[0]: int(row[1]) for row in rows}


def _answers_without_database(base_url: str, url: str) -> dict[str, Any]:
    """Statuses of requests that need the database for more than the fix: a known key (the
    accounts are in memory), an unknown one (failures are counted in the database), a
    sign-in (so are those of passwords), a page of features; and the probes and metrics."""
    fix = {"id": "restart-probe", "lat": 23.0, "lon": 113.0, "timestamp": START}
    unknown = {"X-API-Key": f"{KEY_PREFIX}_00000000_{'A' * 43}"}
    admin = admin_headers(url)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        known = client.get("/gps/osmand", params=fix, headers=admin)
        guessed = client.get("/gps/osmand", params=fix, headers=unknown)
        signing_in = client.post("/auth/token", data={"username": "pytest_admin",
                                                      "password": "not the password"})  # fmt: skip
        items = client.get("/collections/gps_latest/items", headers=admin)
        ready = client.get("/health/ready")
        live = client.get("/health/live")
        metrics = client.get("/metrics", headers=admin)
    return {
        "a known key": known.status_code, "an unknown key": guessed.status_code,
        "signing in": signing_in.status_code,
        "items": (items.status_code, items.headers.get("retry-after")),
        "ready": (ready.status_code, ready.headers.get("retry-after"),
                  "not reachable" in ready.text),
        "live": live.status_code,
        "metrics": (metrics.status_code, "spatial_database_up 0.0" in metrics.text),
    }  # fmt: skip


def test_database_and_broker_restart_lose_nothing(
    cluster: EmbeddedCluster,
    url: str,
    api: LiveServer,
    broker: Broker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every fix answered 200 or acknowledged by the broker is stored exactly once across
    a database restart overlapped by a broker restart."""
    caplog.set_level(logging.INFO, logger="spatial.gps.mqtt")
    caplog.set_level(logging.INFO, logger=__name__)
    osmand, owntracks = OsmAndPhone(api.url), OwnTracksPhone(broker.port)
    noted: dict[str, float] = {}
    answers: dict[str, int] = {}

    def follow(ready: asyncio.Event) -> Awaitable[None]:
        return follow_owntracks("127.0.0.1", broker.port, url=url, settings=GpsSettings(),
                                client_id=SUBSCRIBER, ready=ready, options=QUICK_MQTT)  # fmt: skip

    def flowing(osmand_at_least: int, owntracks_at_least: int) -> bool:
        return len(osmand.acked) >= osmand_at_least and len(owntracks.acked) >= owntracks_at_least

    def receiver_retried() -> bool:
        return _said(caplog, "spatial.gps.tcp", "owntracks-mqtt: cannot store") > 0

    async def body() -> None:
        osmand.thread.start()
        owntracks.thread.start()
        await until(lambda: flowing(30, 30))
        # The database stops, and stays down until both receivers have felt it (2 s at least).
        down = time.monotonic()
        await asyncio.to_thread(cluster.stop)
        await until(lambda: sum(osmand.failed.values()) > 0 and receiver_retried(), 15)
        answers.update(await asyncio.to_thread(_answers_without_database, api.url, url))
        await asyncio.sleep(max(0.0, down + 2 - time.monotonic()))
        # The broker stops too; the database comes back while it is away, then the broker.
        away = time.monotonic()
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(1)
        await asyncio.to_thread(cluster.ensure_running)
        noted["database"] = time.monotonic() - down
        await asyncio.sleep(1)
        noted["held"] = len(owntracks.sent) - len(owntracks.acked)  # by paho, unacknowledged
        await asyncio.to_thread(broker.start)
        noted["broker"] = time.monotonic() - away
        # Both streams flow again: thirty more fixes acknowledged on each.
        back, wanted = time.monotonic(), (len(osmand.acked) + 30, len(owntracks.acked) + 30)
        await until(lambda: flowing(*wanted), 30)
        noted["recovery"] = time.monotonic() - back
        await asyncio.to_thread(osmand.finish)
        await asyncio.to_thread(owntracks.finish)
        acked = {OSMAND: osmand.acked, PHONE: owntracks.acked}
        await until(lambda: all({_time(t) for t in acked[d]} <= set(_stored(url, d))
                                for d in acked), 30)  # fmt: skip

    try:
        asyncio.run(running(follow, body))
    finally:
        osmand.close()
        owntracks.close()
        owntracks.publisher.close()

    # The outage was real for both receivers; nothing was answered but 200 and 503.
    assert answers == {
        **dict.fromkeys(("a known key", "an unknown key", "signing in"), 503),
        "items": (503, "5"), "ready": (503, "5", True), "live": 200, "metrics": (200, True),
    }  # fmt: skip
    assert osmand.unexpected == []
    assert sum(osmand.failed.values()) > 0, "no request failed: the database never went away"
    assert receiver_retried(), "the MQTT receiver never had to store again"
    assert _said(caplog, "spatial.gps.mqtt", "disconnected from the broker") > 0
    assert _said(caplog, "spatial.gps.mqtt", "connected (session present: True)") > 0
    # Every acknowledged fix stored once, nothing that was not sent, the newest the latest.
    assert owntracks.acked == owntracks.sent, "paho gave up on a message"
    for device, phone in ((OSMAND, osmand), (PHONE, owntracks)):
        stored = _stored(url, device)
        assert set(stored.values()) == {1}, f"{device}: a fix stored twice"
        assert {_time(t) for t in phone.acked} <= set(stored), f"{device}: an acknowledged fix lost"
        assert set(stored) <= {_time(t) for t in phone.sent}
        newest = max(phone.acked)
        latest = query(url, "SELECT time, ST_X(geom), ST_Y(geom) FROM gps.latest "
                       "WHERE device_id = %s", device)  # fmt: skip
        assert latest == [(_time(newest), *map(pytest.approx, _position(device, newest)))]
    # The API answers at once, writing and reading, and says it is ready.
    with httpx.Client(base_url=api.url, timeout=10) as client:
        assert client.get("/health/ready").json()["status"] == "ok"
        tst = max(osmand.acked) + 1
        lon, lat = _position(OSMAND, tst)
        answer = client.get("/gps/osmand", params={"id": OSMAND, "lat": lat, "lon": lon,
                                                   "timestamp": tst})  # fmt: skip
        assert (answer.status_code, answer.text) == (200, "OK")
        items = client.get("/collections/gps_latest/items", headers=admin_headers(url))
        assert items.status_code == 200, items.text
        found = {f["properties"]["device_id"]: f["properties"]["time"][:19]
                 for f in items.json()["features"]}  # fmt: skip
    assert found == {OSMAND: _time(tst).isoformat()[:19],
                     PHONE: _time(max(owntracks.acked)).isoformat()[:19]}  # fmt: skip
    log.info("database down %.1f s, broker down %.1f s, flowing again %.1f s after; OsmAnd: "
             "%d fixes answered 200, %s requests failed, %d fixes sent again; OwnTracks: %d "
             "of %d acknowledged, %d held by paho until the broker was back; the receiver "
             "tried to store again %d times",
             noted["database"], noted["broker"], noted["recovery"], len(osmand.acked),
             dict(osmand.failed), osmand.retried, len(owntracks.acked), len(owntracks.sent),
             noted["held"],
             _said(caplog, "spatial.gps.tcp", "owntracks-mqtt: cannot store"))  # fmt: skip
