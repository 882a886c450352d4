"""The SensorThings 1.1 MQTT extension on the platform's broker: a bridge between Mosquitto
and the observation store.

The platform embeds no broker: :func:`bridge` is an MQTT client of the platform's Mosquitto
(``spatial sta mqtt``) that implements two conformance classes on it.

**Create via MQTT** (``create-observations-via-mqtt``). A client publishes an Observation,
the JSON body of an HTTP POST, to ``v1.1/Datastreams(<id>)/Observations``, to
``v1.1/FeaturesOfInterest(<id>)/Observations`` or to ``v1.1/Observations`` with a
``"Datastream": {"@iot.id": <id>}`` link in the body. The bridge subscribes to those
topics and stores what arrives as the OwnTracks follower does (:mod:`spatial.gps.mqtt`,
whose inbox and options it shares): MQTT 5, QoS 1, a persistent session (a fixed client
id, ``clean_start`` false, a session expiry), messages stored in batches through
:func:`spatial.sta.observations.store` and each one's PUBACK sent only once its batch is
committed; a message whose PUBACK never reached the broker comes again and is then a
``duplicate`` reject (one reading per datastream and phenomenon time). The subscription is
``no_local``: the bridge never receives what it publishes itself. A message is read
strictly (:func:`decode`): larger than :data:`MAX_MESSAGE` bytes, not JSON (``NaN`` and
``Infinity`` included), nested deeper than :data:`MAX_DEPTH`, not an object, with a
property an Observation does not have, without a result, on a topic that names no
Datastream, or with text PostgreSQL cannot store, it is dropped and counted in
``sta.rejects`` as ``malformed``; the store's own checks count the rest by reason. A batch
is stored whole or, when the database refuses it for what it holds, message by message, a
message refused alone being counted as ``malformed``: nothing is half-written and one bad
message never holds up the others. While the database is unreachable the batch waits and
is tried again with backoff, and nothing is acknowledged meanwhile (MQTT 5 flow control
bounds what the broker sends). Who may publish to these topics is the broker's business
(its ACL); the bridge stores what it is handed, as a service.

**Receive updates via MQTT** (``receive-updates-via-mqtt``). After observations are
committed, by whatever path (HTTP, DataArray, MQTT, the demo), the store notifies
``spatial_sta`` with their ids; the bridge listens, reads the stored entities in one
statement per notification (the JSON ``GET`` answers, with ``@iot.id`` and
``@iot.selfLink`` under ``public_url``) and publishes each at QoS 1 to
``v1.1/Datastreams(<id>)/Observations`` and ``v1.1/Observations``. It publishes every
observation: who may subscribe to which topic is, again, the broker's ACL. Updates are a
live feed: observations committed while the bridge is stopped, or while its database
connection is broken, are not published (readers catch up over HTTP); while the broker is
unreachable, or :attr:`BridgeOptions.max_pending` publications wait for their PUBACK, the
updates are dropped and counted in the log. A message carrying ``@iot.id`` on a create topic
is such an update (another bridge's, or a client's echo): it is acknowledged and ignored.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from spatial import jsonbody
from spatial.errors import InvalidInputError
from spatial.gps.mqtt import Inbox, MqttOptions, session
from spatial.gps.tcp import INPUT_LIMITS, TRANSIENT, open_pool
from spatial.settings import SensorThingsSettings
from spatial.sta import query, write
from spatial.sta.entities import VERSION
from spatial.sta.observations import CHANNEL, Reading, Reject, Stored, store

__all__ = ["MAX_DEPTH", "MAX_MESSAGE", "TOPICS", "BridgeOptions", "bridge", "decode"]

log = logging.getLogger(__name__)

TOPICS = (f"{VERSION}/Observations", f"{VERSION}/+/Observations")
"""The topic filters of creates (``+`` is ``Datastreams(<id>)`` or
``FeaturesOfInterest(<id>)``; other topics under it are refused)."""
MAX_MESSAGE = 256 * 1024
"""Bytes of one Observation message; a larger one is dropped."""
MAX_DEPTH = 32
"""How deeply a message's JSON may nest (a result, a resultQuality, parameters)."""
_TOPIC = re.compile(r"v1\.1/(?:(Datastreams|FeaturesOfInterest)\(([^/]*)\)/)?Observations")
_ID = re.compile(r"[0-9]{1,19}")
_MAX_ID = 2**63 - 1
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""Characters PostgreSQL's text and jsonb cannot hold (NUL, lone surrogates)."""
IDS_PER_READ = 5000
"""Observations read (and published) at a time for a notification."""


@dataclass(frozen=True)
class BridgeOptions:
    """How the bridge talks to the broker: the OwnTracks follower's options, and a bound
    on the updates that wait for their PUBACK."""

    mqtt: MqttOptions = field(default_factory=MqttOptions)
    max_pending: int = 10_000
    """Updates published and not yet acknowledged by the broker; beyond, they are dropped."""


class _MalformedError(Exception):
    """A message that cannot be read (inside :func:`decode` only)."""


def _malformed(detail: str) -> Reject:
    return Reject("malformed", detail)


def _check_value(value: Any, depth: int = 0) -> None:
    """Refuse JSON PostgreSQL cannot store, or nested beyond :data:`MAX_DEPTH`.

    Raises:
        _MalformedError: saying why.
    """
    if depth > MAX_DEPTH:
        raise _MalformedError(f"the JSON nests more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if kind is str:
        if _UNSTORABLE.search(value):
            raise _MalformedError("text holds a NUL character or a lone surrogate")
    elif kind is float:
        if not math.isfinite(value):
            raise _MalformedError(f"{value} is not a finite number")
    elif kind is dict:
        for k, v in value.items():
            _check_value(k, depth + 1)
            _check_value(v, depth + 1)
    elif kind is list:
        for v in value:
            _check_value(v, depth + 1)


def _link(body: dict[str, Any], name: str) -> int | None:
    """The id of a link ``{"@iot.id": <id>}`` in the body (None: none given).

    Raises:
        _MalformedError: not a link to an id.
    """
    if name not in body:
        return None
    value = body[name]
    ident = value.get("@iot.id") if isinstance(value, dict) else None
    if type(ident) is not int or not 0 <= ident <= _MAX_ID:
        raise _MalformedError(f'{name} must be a link {{"@iot.id": <id>}} to an existing entity')
    return ident


def _owner(topic: str) -> tuple[str | None, int | None]:
    """(entity set, id) of the topic: ``Datastreams`` or ``FeaturesOfInterest`` and the id,
    or (None, None) for ``v1.1/Observations``.

    Raises:
        _MalformedError: a topic that is not an Observations collection.
    """
    found = _TOPIC.fullmatch(topic)
    if found is None:
        msg = (f"topic {topic[:80]!r} is not v1.1/Observations, v1.1/Datastreams(<id>)/"
               "Observations or v1.1/FeaturesOfInterest(<id>)/Observations")  # fmt: skip
        raise _MalformedError(msg)
    name, key = found.group(1), found.group(2)
    if name is None:
        return None, None
    if _ID.fullmatch(key) is None or int(key) > _MAX_ID:
        raise _MalformedError(f"topic {topic[:80]!r}: {name}({key[:20]}) does not name an id")
    return name, int(key)


def _body(payload: bytes) -> dict[str, Any]:
    """The JSON object of a message, read as HTTP bodies are (:mod:`spatial.jsonbody`).

    Raises:
        _MalformedError: too large, not JSON, not an object, or unstorable.
    """
    if len(payload) > MAX_MESSAGE:
        raise _MalformedError(f"a message of {len(payload)} bytes (at most {MAX_MESSAGE})")
    try:
        body = jsonbody.loads(payload, "the message")
    except InvalidInputError as exc:
        raise _MalformedError(str(exc)) from None
    if not isinstance(body, dict):
        raise _MalformedError("an Observation is a JSON object")
    _check_value(body)
    return body


def _reading(body: dict[str, Any], owner: str | None, ident: int | None) -> Reading:
    """The reading of an Observation's body published to the topic of ``owner(ident)``:
    the links here, the rest as an HTTP POST's (:func:`spatial.sta.write.reading`).

    Raises:
        _MalformedError: a property an Observation has not, no result, no Datastream.
    """
    datastream, feature = _link(body, "Datastream"), _link(body, "FeatureOfInterest")
    if owner == "Datastreams":
        if datastream not in {None, ident}:
            raise _MalformedError(f"the topic names Datastream {ident}, the body {datastream}")
        datastream = ident
    elif owner == "FeaturesOfInterest":
        if feature not in {None, ident}:
            raise _MalformedError(f"the topic names FeatureOfInterest {ident}, the body {feature}")
        feature = ident
    if datastream is None:
        raise _MalformedError("no Datastream: publish to v1.1/Datastreams(<id>)/Observations "
                              'or link one ("Datastream": {"@iot.id": <id>})')  # fmt: skip
    if not isinstance(body.get("parameters", {}), dict | None):
        raise _MalformedError("parameters must be a JSON object")
    try:
        return write.reading(body, "Observation", datastream, feature)
    except InvalidInputError as exc:
        raise _MalformedError(str(exc)) from None


def decode(topic: str, payload: bytes) -> Reading | Reject | None:
    """An Observation published to ``topic``, as the store takes it.

    Returns:
        The reading; a ``malformed`` reject saying why the message cannot be read; or None
        for an entity published by the service (it carries ``@iot.id``), which is not a
        create.
    """
    try:
        owner, ident = _owner(topic)
        body = _body(payload)
        return None if "@iot.id" in body else _reading(body, owner, ident)
    except _MalformedError as exc:
        return _malformed(str(exc))


def _decode(message: mqtt.MQTTMessage) -> Reading | Reject | None:
    try:
        topic = message.topic
    except UnicodeDecodeError:  # brokers refuse these; a client library might not
        return _malformed("the topic is not UTF-8")
    return decode(topic, bytes(message.payload))


# -- storing -----------------------------------------------------------------------------

Part = Reading | Reject | None
"""One message as decoded: what may be dropped alone."""


def _store_now(pool: ConnectionPool, parts: Sequence[Part], settings: SensorThingsSettings,
               ) -> Stored:  # fmt: skip
    rows = [p for p in parts if isinstance(p, Reading)]
    rejects = [p for p in parts if isinstance(p, Reject)]
    with pool.connection() as conn:
        return store(conn, rows, settings=settings, rejects=rejects)


async def _retrying(pool: ConnectionPool, parts: Sequence[Part], settings: SensorThingsSettings,
                    options: MqttOptions) -> Stored:  # fmt: skip
    """Store ``parts`` in one transaction, trying again while the database is unreachable."""
    delay = options.backoff.first
    while True:
        try:
            return await asyncio.to_thread(_store_now, pool, parts, settings)
        except TRANSIENT as error:
            if isinstance(error, INPUT_LIMITS):
                raise
            log.warning("sta-mqtt: cannot store %d messages (%s); trying again in %.1f s",
                        len(parts), str(error).strip()[:200], delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, options.backoff.longest)


async def _store(pool: ConnectionPool, parts: Sequence[Part], settings: SensorThingsSettings,
                 options: MqttOptions) -> None:  # fmt: skip
    """Store decoded messages; return only when each is stored or counted (see
    :func:`spatial.gps.tcp.store_parts`, whose policy this is)."""
    try:
        await _retrying(pool, parts, settings, options)
    except Exception:  # the database refuses what the batch holds: message by message
        if len(parts) == 1:
            log.exception("sta-mqtt: a message the database refuses, dropped")
            dropped = _malformed("a message the database refuses (see the bridge's log)")
            await _retrying(pool, [dropped], settings, options)
            return
        for part in parts:
            await _store(pool, [part], settings, options)


async def _consume(client: mqtt.Client, inbox: Inbox, pool: ConnectionPool, *,
                   settings: SensorThingsSettings, options: MqttOptions) -> None:  # fmt: skip
    """Store batch after batch, acknowledging each message once its batch is committed."""
    while True:
        batch = await inbox.take(options.batch_size, options.batch_interval)
        await _store(pool, [_decode(message) for message in batch], settings, options)
        for message in batch:
            if message.qos > 0:
                client.ack(message.mid, message.qos)


# -- publishing updates ------------------------------------------------------------------


class _Outbox:
    """Updates published at QoS 1 and not yet acknowledged by the broker (counted in the
    event loop's thread; paho's thread hands each PUBACK over)."""

    def __init__(self, client: mqtt.Client, limit: int) -> None:
        self.client = client
        self.limit = limit
        self.pending = 0
        self.dropped = 0
        self.room = asyncio.Event()

    def acknowledged(self) -> None:
        self.pending -= 1
        self.room.set()

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish, waiting while the broker holds :attr:`limit` unacknowledged; drop the
        update when the broker is unreachable."""
        while self.pending >= self.limit and self.client.is_connected():
            self.room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.room.wait()
        if not self.client.is_connected():
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("sta-mqtt: %d updates dropped (the broker is unreachable)",
                            self.dropped)  # fmt: skip
            return
        info = self.client.publish(topic, payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.pending += 1


def _ranges(payload: str) -> list[tuple[int, int, int]]:
    """The ``[datastream, first id, last id]`` triples of a ``spatial_sta`` notification
    (:func:`spatial.sta.observations.notifications`); any other payload is none."""
    try:
        found = json.loads(payload).get("observations")
    except (ValueError, AttributeError):
        found = None
    if not isinstance(found, list):
        log.warning("sta-mqtt: a notification not understood: %.200s", payload)
        return []
    ranges = []
    for item in found:
        if (isinstance(item, list) and len(item) == 3 and all(type(v) is int for v in item)
                and item[1] <= item[2]):  # fmt: skip
            ranges.append((item[0], item[1], item[2]))
    return ranges


def _chunks(ranges: list[tuple[int, int, int]]) -> Iterator[list[tuple[int, int, int]]]:
    """The ranges cut into groups of :data:`IDS_PER_READ` ids at most."""
    group: list[tuple[int, int, int]] = []
    room = IDS_PER_READ
    for ds, first, last in ranges:
        at = first
        while at <= last:
            upto = min(last, at + room - 1)
            group.append((ds, at, upto))
            room -= upto - at + 1
            at = upto + 1
            if room == 0:
                yield group
                group, room = [], IDS_PER_READ
    if group:
        yield group


async def _read(conn: psycopg.AsyncConnection[Any], ranges: list[tuple[int, int, int]],
                base: str) -> list[tuple[int, dict[str, Any]]]:  # fmt: skip
    """(datastream, entity JSON as GET answers it) of the observations in ``ranges``, in
    one statement (the ids' index of each partition, range by range).

    The columns and the JSON are the read path's own (:mod:`spatial.sta.query`), so that
    an update is what ``GET Observations(<id>)`` answers."""
    statement = sql.SQL(
        "SELECT {} FROM sta.observations e "
        "JOIN unnest(%s::int8[], %s::int8[]) AS r(lo, hi) ON e.id BETWEEN r.lo AND r.hi "
        "ORDER BY e.id"
    ).format(query.columns("Observations"))
    firsts, lasts = [r[1] for r in ranges], [r[2] for r in ranges]
    async with conn.cursor(row_factory=dict_row) as cur:
        rows = await (await cur.execute(statement, (firsts, lasts))).fetchall()
    order = sorted(ranges, key=lambda r: r[1])
    starts = [r[1] for r in order]
    found = []
    for row in rows:
        ds = order[bisect.bisect_right(starts, row["_id"]) - 1][0]
        found.append((ds, query.as_entity(row, "Observations", base)))
    return found


async def _publish_stored(conn: psycopg.AsyncConnection[Any], outbox: _Outbox, payload: str,
                          base: str) -> None:  # fmt: skip
    for group in _chunks(_ranges(payload)):
        for ds, entity in await _read(conn, group, base):
            body = json.dumps(entity, separators=(",", ":"), ensure_ascii=False).encode()
            await outbox.publish(f"{VERSION}/Datastreams({ds})/Observations", body)
            await outbox.publish(f"{VERSION}/Observations", body)


async def _updates(url: str, outbox: _Outbox, base: str, options: MqttOptions,
                   listening: asyncio.Event) -> None:  # fmt: skip
    """Publish the observations the store notifies, until cancelled; reconnect to the
    database with backoff (what is committed meanwhile is not published)."""
    delay = options.backoff.first
    while True:
        try:
            async with (
                await psycopg.AsyncConnection.connect(url, autocommit=True) as listen,
                await psycopg.AsyncConnection.connect(url, autocommit=True) as reader,
            ):
                await listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                listening.set()
                delay = options.backoff.first
                async for note in listen.notifies():
                    await _publish_stored(reader, outbox, note.payload, base)
        except TRANSIENT as error:
            log.warning("sta-mqtt: updates stopped (%s); listening again in %.1f s",
                        str(error).strip()[:200], delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, options.backoff.longest)


# -- the client --------------------------------------------------------------------------


def _in_loop(loop: asyncio.AbstractEventLoop, call: Any, *args: Any) -> None:
    """Run ``call`` in the event loop (from paho's network thread)."""
    with contextlib.suppress(RuntimeError):  # the loop is closing: we are stopping
        loop.call_soon_threadsafe(call, *args)


def _client(loop: asyncio.AbstractEventLoop, inbox: Inbox, *, client_id: str,
            options: MqttOptions, subscribed: asyncio.Event) -> mqtt.Client:  # fmt: skip
    """A paho client whose callbacks (on its network thread) hand over to the loop."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    client.enable_logger(log.getChild("paho"))
    client.suppress_exceptions = True  # a failing callback must not end the network thread
    client.reconnect_delay_set(options.reconnect_min, options.reconnect_max)

    def in_loop(call: Any, *args: Any) -> None:
        _in_loop(loop, call, *args)

    def on_connect(client: mqtt.Client, _: Any, flags: mqtt.ConnectFlags, code: ReasonCode,
                   __: Any) -> None:  # fmt: skip
        if code.is_failure:
            log.error("sta-mqtt: the broker refused the connection: %s", code)
            return
        log.info("sta-mqtt: connected (session present: %s)", flags.session_present)
        # no_local: our own updates go to the same topics; a retained message is not a
        # new reading
        choice = SubscribeOptions(qos=1, noLocal=True,
                                  retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)  # fmt: skip
        client.subscribe([(topic, choice) for topic in TOPICS])

    def on_subscribe(_: mqtt.Client, __: Any, ___: int, codes: list[ReasonCode], ____: Any) -> None:
        if any(code.is_failure for code in codes):
            log.error("sta-mqtt: the broker refused the subscription to %s: %s", TOPICS, codes)
        else:
            in_loop(subscribed.set)

    def on_disconnect(_: mqtt.Client, __: Any, ___: mqtt.DisconnectFlags, code: ReasonCode,
                      ____: Any) -> None:  # fmt: skip
        if code.value == 0:
            log.info("sta-mqtt: disconnected from the broker")
        else:
            log.warning("sta-mqtt: disconnected from the broker (%s); reconnecting", code)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    client.on_message = lambda _, __, message: in_loop(inbox.put, message)
    return client


async def _ready_when(ready: asyncio.Event | None, *events: asyncio.Event) -> None:
    for event in events:
        await event.wait()
    if ready is not None:
        ready.set()


async def bridge(
    broker: str,
    port: int,
    *,
    url: str,
    settings: SensorThingsSettings,
    base: str,
    client_id: str = "spatial-sta",
    ready: asyncio.Event | None = None,
    options: BridgeOptions | None = None,
) -> None:
    """Store the Observations published to the broker, and publish the ones stored, until
    cancelled (see the module docstring).

    Args:
        broker: the MQTT broker's host name or address.
        port: its port (1883 without TLS).
        url: the database (a libpq URL).
        settings: how readings are checked (``max_future_s``).
        base: the service root of self links, e.g. ``https://gis.example/sta/v1.1``.
        client_id: the MQTT client id; the broker keys the persistent session on it, so
            it must stay the same from run to run, and differ between two bridges.
        ready: set once subscribed and listening (the first time).
        options: session, batching, reconnection and publishing settings.
    """
    options = options or BridgeOptions()
    mqtt_options = options.mqtt
    loop = asyncio.get_running_loop()
    inbox = Inbox(mqtt_options.max_qos0)
    subscribed, listening = asyncio.Event(), asyncio.Event()
    client = _client(loop, inbox, client_id=client_id, options=mqtt_options,
                     subscribed=subscribed)  # fmt: skip
    outbox = _Outbox(client, options.max_pending)
    client.on_publish = lambda *_: _in_loop(loop, outbox.acknowledged)
    properties = session(mqtt_options)
    pool = open_pool(url, size=mqtt_options.pool_size, name="spatial-sta-mqtt",
                     timeout=mqtt_options.pool_timeout)  # fmt: skip
    try:
        client.connect_async(broker, port, keepalive=mqtt_options.keepalive, clean_start=False,
                             properties=properties)  # fmt: skip
        client.loop_start()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_ready_when(ready, subscribed, listening))
            tasks.create_task(_updates(url, outbox, base.rstrip("/"), mqtt_options, listening))
            tasks.create_task(_consume(client, inbox, pool, settings=settings,
                                       options=mqtt_options))  # fmt: skip
    finally:
        # Messages received and not yet acknowledged stay in the broker's session.
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        await asyncio.to_thread(pool.close)
