"""The SensorThings MQTT extension (:mod:`spatial.sta.mqtt`) through a real Mosquitto
(started on a free port with persistence, :mod:`gpsnet`) on the session database.

- Create: an Observation published to ``v1.1/Datastreams(<id>)/Observations`` (or to
  ``v1.1/Observations`` with a Datastream link) is stored; hostile messages are dropped
  and counted in ``sta.rejects`` with nothing half-written and the bridge still working;
  a QoS 1 message published while the bridge is stopped is stored when it is back.
- Receive updates: an observation stored by any path (MQTT, HTTP POST, the store called
  directly as the demo does) is published as ``GET`` answers it, with ``@iot.id``.

The bridge runs on an event loop of its own thread, so that the tests wait with
:func:`support.until`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from gpsnet import QUICK_MQTT, Broker, Publisher, broker_in, query
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from support import LiveServer, cli_env, until

from spatial.cli.sta import broker_address
from spatial.errors import InvalidInputError
from spatial.settings import SensorThingsSettings
from spatial.sta.mqtt import BridgeOptions, bridge
from spatial.sta.observations import Reading, store

SETTINGS = SensorThingsSettings()
BASE = "http://sta.example:8000/sta/v1.1"
OPTIONS = BridgeOptions(mqtt=QUICK_MQTT)
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=2)
_numbers = itertools.count()


def _when(seconds: int) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _observation(seconds: int, result: Any = 1.5, **extra: Any) -> bytes:
    return json.dumps({"phenomenonTime": _when(seconds), "result": result, **extra}).encode()


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with broker_in(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


@pytest.fixture(scope="module")
def stream(database_url: str) -> int:
    """A numeric Datastream of a Thing with a Location (its readings' FeatureOfInterest)."""
    with psycopg.connect(database_url) as conn:
        thing = conn.execute("INSERT INTO sta.things (name) VALUES ('mqtt gauge') "
                             "RETURNING id").fetchone()[0]  # type: ignore[index]  # fmt: skip
        place = conn.execute(
            "INSERT INTO sta.locations (name, geom) VALUES "
            "('mqtt gauge', ST_SetSRID(ST_MakePoint(112.03, 22.91), 4326)) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO sta.things_locations VALUES (%s, %s)", (thing, place))
        sensor = conn.execute("INSERT INTO sta.sensors (name, encoding_type, metadata) VALUES "
                              "('radar', 'text/plain', 'radar') RETURNING id").fetchone()[0]  # type: ignore[index]  # fmt: skip
        prop = conn.execute("INSERT INTO sta.observed_properties (name, definition) VALUES "
                            "('water level', 'urn:level') RETURNING id").fetchone()[0]  # type: ignore[index]  # fmt: skip
        return int(conn.execute(
            "INSERT INTO sta.datastreams (name, observation_type, unit, thing_id, sensor_id, "
            "observed_property_id) VALUES ('level', %s, %s, %s, %s, %s) RETURNING id",
            ("http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
             '{"name": "metre", "symbol": "m"}', thing, sensor, prop),
        ).fetchone()[0])  # type: ignore[index]  # fmt: skip


def _stored(url: str, ds: int) -> dict[str, Any]:
    """The datastream's readings: phenomenon time (as published) -> result."""
    rows = query(url, "SELECT phenomenon_start, coalesce(to_jsonb(result_number), result_json) "
                 "FROM sta.observations WHERE datastream_id = %s", ds)  # fmt: skip
    return {t.isoformat().replace("+00:00", "Z"): r for t, r in rows}


def _rejects(url: str) -> dict[tuple[int, str], int]:
    rows = query(url, "SELECT datastream_id, reason, count FROM sta.rejects")
    return {(int(d), r): int(n) for d, r, n in rows}


def _added(before: dict[tuple[int, str], int], after: dict[tuple[int, str], int]
           ) -> dict[tuple[int, str], int]:  # fmt: skip
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


class _Bridge:
    """The bridge on an event loop of its own thread, from ``with`` to its end."""

    def __init__(self, broker: Broker, url: str, client_id: str) -> None:
        self.start = lambda ready: bridge("127.0.0.1", broker.port, url=url, settings=SETTINGS,
                                          base=BASE, client_id=client_id, ready=ready,
                                          options=OPTIONS)  # fmt: skip
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.task: asyncio.Task[None] | None = None

    async def _begin(self) -> None:
        ready = asyncio.Event()
        self.task = asyncio.create_task(self.start(ready))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({self.task, waiting}, timeout=20,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        waiting.cancel()
        if self.task.done():
            self.task.result()  # raises what stopped it
        assert ready.is_set(), "the bridge was not ready within 20 s"

    async def _end(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def __enter__(self) -> _Bridge:
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._begin(), self.loop).result(30)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._end(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class _Listener:
    """An MQTT 5 subscriber keeping what it receives: (topic, JSON or the raw bytes)."""

    def __init__(self, port: int, *topics: str) -> None:
        self.got: list[tuple[str, Any]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=f"sta-listener-{next(_numbers)}")  # fmt: skip
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(t, SubscribeOptions(qos=1)) for t in topics]
        )
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _, __, m: self.got.append((m.topic, _json(m.payload)))
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        until(self.subscribed.is_set, what="the listener's subscription", seconds=10)

    def entities(self, topic: str) -> list[dict[str, Any]]:
        """The stored Observations received on ``topic`` (they carry ``@iot.id``)."""
        return [m for t, m in list(self.got) if t == topic and isinstance(m, dict)
                and "@iot.id" in m]  # fmt: skip

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return payload


@contextlib.contextmanager
def _clients(broker: Broker, ds: int) -> Iterator[tuple[Publisher, _Listener]]:
    publisher = Publisher(broker.port, f"sta-device-{next(_numbers)}")
    listener = _Listener(broker.port, f"v1.1/Datastreams({ds})/Observations", "v1.1/Observations")
    try:
        yield publisher, listener
    finally:
        publisher.close()
        listener.close()


# -- create, and receive updates ---------------------------------------------------------


def test_create_and_receive(broker: Broker, database_url: str, stream: int) -> None:
    """Published to the datastream's topic, or to Observations with a link: stored once,
    and each stored one published to both topics as GET answers it."""
    topic = f"v1.1/Datastreams({stream})/Observations"
    link = {"Datastream": {"@iot.id": stream}}
    with (
        _clients(broker, stream) as (publisher, listener),
        _Bridge(broker, database_url, "sta-test-create"),
    ):
        publisher.publish(topic, _observation(10, 1.25))
        publisher.publish("v1.1/Observations", _observation(20, 2.5, **link))
        publisher.wait()
        stored = until(lambda: _stored(database_url, stream),
                       lambda s: {_when(10), _when(20)} <= set(s), "both stored")  # fmt: skip
        for where in (topic, "v1.1/Observations"):
            got = until(lambda w=where: listener.entities(w), lambda g: len(g) >= 2,
                        f"the stored observations on {where}", seconds=20)  # fmt: skip
            assert {(m["phenomenonTime"], m["result"]) for m in got} == {
                (_when(10), 1.25), (_when(20), 2.5)}  # fmt: skip
    ids = dict(query(database_url, "SELECT phenomenon_start, id FROM sta.observations "
                     "WHERE datastream_id = %s", stream))  # fmt: skip
    first = next(m for m in got if m["phenomenonTime"] == _when(10))
    oid = ids[T0 + dt.timedelta(seconds=10)]
    assert first["@iot.id"] == oid
    assert first["@iot.selfLink"] == f"{BASE}/Observations({oid})"
    assert first["Datastream@iot.navigationLink"] == f"{BASE}/Observations({oid})/Datastream"
    assert stored[_when(10)] == 1.25
    # Mosquitto hands a subscriber of the datastream's topic the raw creates too
    raw = [m for t, m in listener.got if t == topic and isinstance(m, dict) and "@iot.id" not in m]
    assert raw == [{"phenomenonTime": _when(10), "result": 1.25}]


def test_other_paths_are_published(
    broker: Broker, database_url: str, stream: int, live_api: LiveServer,
    admin_auth: dict[str, str],
) -> None:  # fmt: skip
    """Observations created over HTTP POST, or by the store called directly (the demo),
    are published by the bridge."""
    topic = f"v1.1/Datastreams({stream})/Observations"
    with _clients(broker, stream) as (_, listener), _Bridge(broker, database_url, "sta-test-paths"):
        answer = httpx.post(f"{live_api.url}/sta/v1.1/Datastreams({stream})/Observations",
                            json={"phenomenonTime": _when(30), "result": 3.5},
                            headers=admin_auth, timeout=20)  # fmt: skip
        assert answer.status_code == 201, answer.text
        with psycopg.connect(database_url) as conn:
            done = store(conn, [Reading(stream, _when(40), 4.5), Reading(stream, _when(41), 4.75)],
                         settings=SETTINGS)  # fmt: skip
        assert done.stored == 2
        got = until(lambda: listener.entities(topic), lambda g: len(g) >= 3,
                    "the three observations published")  # fmt: skip
    # what the POST answered, under the bridge's public URL
    posted = json.loads(answer.text.replace(f"{live_api.url}/sta/v1.1", BASE))
    by_time = {m["phenomenonTime"]: m for m in got}
    assert by_time[_when(30)] == posted
    assert by_time[_when(30)]["@iot.selfLink"].startswith(BASE + "/Observations(")
    assert [by_time[_when(t)]["@iot.id"] for t in (40, 41)] == done.ids
    assert [by_time[_when(t)]["result"] for t in (40, 41)] == [4.5, 4.75]


# -- hostile messages, and a restart -----------------------------------------------------


def _hostile(ds: int) -> list[tuple[str, bytes, tuple[int, str]]]:
    """(topic, payload, the reject it counts as (datastream, reason))."""
    topic = f"v1.1/Datastreams({ds})/Observations"
    bad = (0, "malformed")
    deep = b'{"result": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}"
    huge = _observation(60, 1.0, parameters={"pad": "x" * 1_000_000})
    return [
        (topic, b"not JSON at all", bad),
        (topic, b"[1.5, 2.5]", bad),
        (topic, b"[" * 100_000 + b"]" * 100_000, bad),
        (topic, deep, bad),
        (topic, b'{"phenomenonTime": "' + _when(61).encode() + b'", "result": NaN}', bad),
        (topic, huge, bad),
        (topic, b"\xff\xfe{\x00", bad),
        (topic, _observation(62, "\u0000"), bad),
        (topic, b'{"result": "\\ud800"}', bad),  # a lone surrogate
        (topic, _observation(63, 1.0, FeatureOfInterest={"@iot.id": 10**30}), bad),
        (topic, _observation(64, 1.0, Thing={"@iot.id": 1}), bad),
        ("v1.1/Datastreams(abc)/Observations", _observation(65), bad),
        ("v1.1/Observations", _observation(66), bad),
        ("v1.1/Datastreams(999999)/Observations", _observation(67), (0, "unknown_datastream")),
        (topic, _observation(68, "high water"), (ds, "not_a_number")),
        (topic, _observation(69, 2.0, validTime="yesterday"), (ds, "no_time")),
    ]


def test_hostile_messages(broker: Broker, database_url: str, stream: int) -> None:
    """Each dropped and counted by reason; the good readings around them stored, nothing
    else; the bridge still running and storing after them."""
    topic = f"v1.1/Datastreams({stream})/Observations"
    hostile = _hostile(stream)
    wanted: dict[tuple[int, str], int] = {}
    for *_, reject in hostile:
        wanted[reject] = wanted.get(reject, 0) + 1
    before, stored = _rejects(database_url), _stored(database_url, stream)
    with (
        _clients(broker, stream) as (publisher, _),
        _Bridge(broker, database_url, "sta-test-hostile") as running,
    ):
        publisher.publish(topic, _observation(100, 10.0))
        for where, payload, _ in hostile:
            publisher.publish(where, payload)
        publisher.publish(topic, _observation(101, 10.5))
        publisher.wait()
        until(lambda: _added(before, _rejects(database_url)), lambda a: a == wanted,
              "the rejects counted")  # fmt: skip
        after = until(lambda: _stored(database_url, stream),
                      lambda s: _when(101) in s, "the reading after them")  # fmt: skip
        assert running.alive
        publisher.publish(topic, _observation(102, 11.0))
        until(lambda: _stored(database_url, stream), lambda s: _when(102) in s,
              "a reading after the check")  # fmt: skip
    assert set(after) - set(stored) == {_when(100), _when(101)}
    assert _added(before, _rejects(database_url)) == wanted
    latest = query(database_url, "SELECT phenomenon_start FROM sta.latest "
                   "WHERE datastream_id = %s", stream)  # fmt: skip
    assert latest == [(T0 + dt.timedelta(seconds=102),)]


def test_restart_keeps_messages(broker: Broker, database_url: str, stream: int) -> None:
    """A QoS 1 message published while the bridge is stopped is stored when it returns
    (its persistent session), once: acknowledged, it is not delivered again."""
    topic = f"v1.1/Datastreams({stream})/Observations"
    with _clients(broker, stream) as (publisher, listener):
        with _Bridge(broker, database_url, "sta-test-restart"):
            publisher.publish(topic, _observation(200, 20.0))
            # published once stored, which is after its PUBACK left
            until(lambda: listener.entities(topic), lambda g: _when(200) in
                  {m["phenomenonTime"] for m in g}, "the first reading")  # fmt: skip
        before = _rejects(database_url)
        publisher.publish(topic, _observation(201, 20.5))  # nobody subscribed: the session
        publisher.wait()
        assert len(publisher.acked) == 2
        assert _when(201) not in _stored(database_url, stream)
        with _Bridge(broker, database_url, "sta-test-restart"):
            until(lambda: _stored(database_url, stream), lambda s: _when(201) in s,
                  "the reading published while the bridge was away")  # fmt: skip
        with _Bridge(broker, database_url, "sta-test-restart") as running:
            publisher.publish(topic, _observation(202, 21.0))
            until(lambda: _stored(database_url, stream), lambda s: _when(202) in s,
                  "a reading after the restarts")  # fmt: skip
            assert running.alive
    assert _added(before, _rejects(database_url)) == {}


def test_command(broker: Broker, database_url: str, stream: int) -> None:
    """``spatial sta mqtt`` runs the bridge: a message queued in its session is stored."""
    topic = f"v1.1/Datastreams({stream})/Observations"
    with _Bridge(broker, database_url, "sta-cli"):  # the session, with its subscriptions
        pass
    publisher = Publisher(broker.port, "sta-device-cli")
    try:
        publisher.publish(topic, _observation(300, 30.0))
        publisher.wait()
        assert publisher.acked == [0]
    finally:
        publisher.close()
    command = [sys.executable, "-m", "spatial.cli", "sta", "mqtt", "--client-id", "sta-cli",
               "--broker", f"127.0.0.1:{broker.port}"]  # fmt: skip
    env = cli_env(SPATIAL_DATABASE_URL=database_url, SPATIAL_ENVIRONMENT="test")
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:  # fmt: skip
        try:
            until(lambda: _stored(database_url, stream), lambda s: _when(300) in s,
                  "the reading stored by the command", seconds=30)  # fmt: skip
        finally:
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=20)
    said = " ".join(output.split())  # the console wraps lines
    assert f"SensorThings over MQTT on mqtt://127.0.0.1:{broker.port}" in said
    assert "self links under http://127.0.0.1:8000/sta/v1.1" in said


def test_broker_address() -> None:
    assert broker_address("localhost:1884") == ("localhost", 1884)
    assert broker_address("mqtt://gis.example") == ("gis.example", 1883)
    for wrong in ("http://x:1", "x:0", "x:port", ":1883"):
        with pytest.raises(InvalidInputError):
            broker_address(wrong)
