"""OwnTracks over MQTT: a subscriber that stores every location the phones publish.

The OwnTracks apps publish JSON (:mod:`spatial.gps.owntracks`) to ``owntracks/{user}/{device}``
on a broker such as Mosquitto; :func:`follow_owntracks` subscribes and stores. It is made so
that a message the broker handed over is never lost:

* **MQTT 5, QoS 1, a persistent session.** The client connects with a fixed ``client_id``,
  ``clean_start`` false and a session expiry (:attr:`MqttOptions.session_expiry`), so the
  broker keeps the subscription and queues the messages published while the subscriber is
  away (restarting, or the broker itself restarting with persistence on), and delivers
  them when it is back. Published at QoS 0 a message is delivered at QoS 0 (at most once,
  as its sender chose).
* **Acknowledged after the commit.** Messages are decoded and stored in batches
  (:attr:`MqttOptions.batch_size` or :attr:`MqttOptions.batch_interval`), one transaction
  per batch, and only when :func:`spatial.gps.store.store` has committed is each one's
  PUBACK sent, in the order they came. A message whose PUBACK never reached the broker
  (a crash, a broken connection) is delivered again: storing is idempotent on device and
  time, so a repeat is counted as a duplicate and nothing else.
* **The database down.** A batch is kept and stored again with backoff until it is
  (:func:`spatial.gps.tcp.store_parts`); meanwhile nothing is acknowledged, so the broker
  sends at most :attr:`MqttOptions.receive_maximum` unacknowledged messages (MQTT 5 flow
  control) and queues the rest in the session: memory here stays bounded, and how much
  the broker queues is its own limit (Mosquitto's ``max_queued_messages``, 1000 by
  default, beyond which it drops). A message the database refuses for what it holds is
  dropped and counted as ``malformed``, so that it cannot hold up the others.
* **The broker down.** paho-mqtt reconnects with backoff (from
  :attr:`MqttOptions.reconnect_min` to :attr:`MqttOptions.reconnect_max` seconds); the
  subscription is renewed on every connection, with retained messages sent only when it
  is new (a retained last location already stored would only be a duplicate).

Messages other than locations (transitions, waypoints, cards, commands) decode to nothing
and are simply acknowledged; junk is counted as a reject and acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg_pool import ConnectionPool

from spatial.gps.fix import Decoded, Reject
from spatial.gps.owntracks import decode_owntracks
from spatial.gps.tcp import Backoff, open_pool, store_parts
from spatial.settings import GpsSettings

__all__ = ["MqttOptions", "follow_owntracks"]

log = logging.getLogger(__name__)

SOURCE = "owntracks-mqtt"
"""``gps.positions.source`` of the fixes received here."""


@dataclass(frozen=True)
class MqttOptions:
    """How the OwnTracks subscriber talks to the broker and batches its work."""

    keepalive: int = 30
    """Seconds between keep-alive pings when nothing else is sent."""
    session_expiry: int = 7 * 86400
    """Seconds the broker keeps the session (and queues messages) while we are away."""
    receive_maximum: int = 200
    """Unacknowledged QoS 1 messages the broker may send at once."""
    batch_size: int = 100
    """Messages that make a batch to store at once..."""
    batch_interval: float = 0.2
    """...or seconds after the first one, whichever comes first."""
    max_qos0: int = 1000
    """QoS 0 messages kept while they wait to be stored; further ones are dropped."""
    reconnect_min: int = 1
    reconnect_max: int = 30
    pool_size: int = 2
    """Database connections."""
    pool_timeout: float = 10.0
    """Seconds to wait for a database connection before an attempt counts as failed."""
    backoff: Backoff = field(default_factory=Backoff)


class Inbox:
    """Messages handed over from paho's network thread, in the order they came."""

    def __init__(self, max_qos0: int) -> None:
        self.messages: deque[mqtt.MQTTMessage] = deque()
        self.arrived = asyncio.Event()
        self.max_qos0 = max_qos0
        self.qos0 = 0
        self.dropped = 0

    def put(self, message: mqtt.MQTTMessage) -> None:
        """Keep a message (in the event loop's thread)."""
        if message.qos == 0:
            if self.qos0 >= self.max_qos0:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.warning("owntracks: %d QoS 0 messages dropped (still storing)",
                                self.dropped)  # fmt: skip
                return
            self.qos0 += 1
        self.messages.append(message)
        self.arrived.set()

    async def _more(self) -> None:
        self.arrived.clear()
        await self.arrived.wait()

    async def take(self, size: int, interval: float) -> list[mqtt.MQTTMessage]:
        """The next batch: wait for a message, then up to ``interval`` for ``size``."""
        while not self.messages:
            await self._more()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                while len(self.messages) < size:
                    await self._more()
        batch = [self.messages.popleft() for _ in range(min(size, len(self.messages)))]
        self.qos0 -= sum(1 for message in batch if message.qos == 0)
        return batch


def _decode(message: mqtt.MQTTMessage) -> Decoded:
    try:
        topic = message.topic
    except UnicodeDecodeError:  # brokers refuse these; a client library might not
        return Decoded(rejects=[Reject("malformed", "the topic is not UTF-8")])
    return decode_owntracks(bytes(message.payload), topic=topic)


def _client(
    loop: asyncio.AbstractEventLoop,
    inbox: Inbox,
    *,
    topic: str,
    client_id: str,
    options: MqttOptions,
    ready: asyncio.Event | None,
) -> mqtt.Client:
    """A paho client whose callbacks (on its network thread) hand over to the loop."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    client.enable_logger(log.getChild("paho"))
    client.suppress_exceptions = True  # a failing callback must not end the network thread
    client.reconnect_delay_set(options.reconnect_min, options.reconnect_max)

    def in_loop(call: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing: we are stopping
            loop.call_soon_threadsafe(call, *args)

    def on_connect(
        client: mqtt.Client, _: Any, flags: mqtt.ConnectFlags, code: ReasonCode, __: Any
    ) -> None:
        if code.is_failure:
            log.error("owntracks: the broker refused the connection: %s", code)
            return
        log.info("owntracks: connected (session present: %s)", flags.session_present)
        # Renewed every time (the topic may have changed since the session began);
        # retained messages only for a new subscription.
        choice = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe(topic, options=choice)

    def on_subscribe(_: mqtt.Client, __: Any, ___: int, codes: list[ReasonCode], ____: Any) -> None:
        if any(code.is_failure for code in codes):
            log.error("owntracks: the broker refused the subscription to %s: %s", topic, codes)
        elif ready is not None:
            in_loop(ready.set)

    def on_disconnect(
        _: mqtt.Client, __: Any, ___: mqtt.DisconnectFlags, code: ReasonCode, ____: Any
    ) -> None:
        if code.value == 0:  # we asked for it: stopping
            log.info("owntracks: disconnected from the broker")
        else:
            log.warning("owntracks: disconnected from the broker (%s); reconnecting", code)

    def on_message(_: mqtt.Client, __: Any, message: mqtt.MQTTMessage) -> None:
        in_loop(inbox.put, message)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    return client


async def _consume(
    client: mqtt.Client,
    inbox: Inbox,
    pool: ConnectionPool,
    *,
    settings: GpsSettings,
    options: MqttOptions,
) -> None:
    """Store batch after batch, acknowledging each message once its batch is committed."""
    while True:
        batch = await inbox.take(options.batch_size, options.batch_interval)
        parts = [_decode(message) for message in batch]
        await store_parts(pool, parts, source=SOURCE, settings=settings,
                          backoff=options.backoff)  # fmt: skip
        for message in batch:
            if message.qos > 0:
                # Lost if the connection broke meanwhile: then the broker sends the
                # message again, and storing it again is harmless.
                client.ack(message.mid, message.qos)


def session(options: MqttOptions) -> Properties:
    """The CONNECT properties of a persistent session: how long the broker keeps it, and
    how many unacknowledged messages it may send (MQTT 5 flow control)."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = options.session_expiry
    properties.ReceiveMaximum = options.receive_maximum
    return properties


async def follow_owntracks(
    broker: str,
    port: int,
    *,
    url: str,
    settings: GpsSettings,
    topic: str = "owntracks/#",
    client_id: str = "spatial-gps",
    ready: asyncio.Event | None = None,
    options: MqttOptions | None = None,
) -> None:
    """Subscribe to OwnTracks messages and store them, until cancelled (see the module
    docstring for the guarantees).

    Args:
        broker: the MQTT broker's host name or address.
        port: its port (1883 without TLS).
        url: the database (a libpq URL).
        settings: how fixes are checked before they are stored.
        topic: the topic filter to subscribe to.
        client_id: the MQTT client id; the broker keys the persistent session on it, so
            it must stay the same from run to run, and differ between two subscribers.
        ready: set once the subscription is in place (the first time).
        options: session, batching and reconnection settings.
    """
    options = options or MqttOptions()
    loop = asyncio.get_running_loop()
    inbox = Inbox(options.max_qos0)
    client = _client(loop, inbox, topic=topic, client_id=client_id, options=options, ready=ready)
    properties = session(options)
    pool = open_pool(url, size=options.pool_size, name="spatial-gps-mqtt",
                     timeout=options.pool_timeout)  # fmt: skip
    try:
        client.connect_async(broker, port, keepalive=options.keepalive, clean_start=False,
                             properties=properties)  # fmt: skip
        client.loop_start()
        await _consume(client, inbox, pool, settings=settings, options=options)
    finally:
        # Messages received and not yet acknowledged stay in the broker's session.
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        await asyncio.to_thread(pool.close)
