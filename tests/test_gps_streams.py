"""The GPS stream receivers over real sockets, on the session database.

- NMEA 0183 over TCP (:mod:`spatial.gps.tcp`): one vehicle of the demo fleet streamed with
  junk between its sentences (random bytes, a 100 KB line, invalid UTF-8); the login line,
  ``device_of`` and refusal; idle clients closed; the database unreachable mid-stream
  (through a proxy that is switched off and on).
- OwnTracks over MQTT (:mod:`spatial.gps.mqtt`) through a real Mosquitto started on a free
  port with persistence in a temporary folder: stored once and acknowledged, messages sent
  while the subscriber is away delivered on its return, and 200 messages published across
  a broker restart, every one the publisher saw acknowledged stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from gpsnet import QUICK_MQTT, Broker, Publisher, broker_in, query, running, until
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from support import free_port

from spatial.gps.mqtt import follow_owntracks
from spatial.gps.nmea import decode
from spatial.gps.store import add_device
from spatial.gps.tcp import Backoff, TcpOptions, serve_nmea
from spatial.samples import build
from spatial.settings import GpsSettings

SETTINGS = GpsSettings()
FAST = TcpOptions(batch_interval=0.1, idle_timeout=3.0, pool_timeout=0.5,
                  backoff=Backoff(0.1, 0.5))  # fmt: skip
T0 = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp())
DEVICES = ("nmea-tcp-1", "nmea-tcp-2", "nmea-tcp-3", "nmea-tcp-4", "mqtt/alice", "mqtt/bob")


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def url(database_url: str) -> str:
    """The session database, with this module's devices registered."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for device in DEVICES:
            add_device(conn, device)
    return database_url


@pytest.fixture(scope="module")
def vehicle(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """YF-AMB-01's lines of the demo fleet.nmea (talker GN), with their CRLF."""
    folder = build(tmp_path_factory.mktemp("samples")).out_dir
    lines = (folder / "gps" / "fleet.nmea").read_bytes().splitlines(keepends=True)
    return [line for line in lines if line.startswith(b"$GN")]


def _times(url: str, device: str) -> list[dt.datetime]:
    rows = query(url, "SELECT time FROM gps.positions WHERE device_id = %s ORDER BY time", device)
    return [row[0] for row in rows]


def _rejects(url: str, device: str) -> dict[str, int]:
    rows = query(url, "SELECT reason, count FROM gps.rejects WHERE device_id = %s", device)
    return {reason: int(count) for reason, count in rows}


async def _send(port: int, chunks: list[bytes], *, local_port: int | None = None) -> bytes:
    """Connect, send, close; returns what the server said."""
    local = None if local_port is None else ("127.0.0.1", local_port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# -- NMEA over TCP -----------------------------------------------------------------------


def test_nmea_stream_with_junk(url: str, vehicle: list[bytes]) -> None:
    """Every fix of the vehicle is stored, every piece of junk counted, the server lives on."""
    device, port = "nmea-tcp-1", free_port()
    noise = random.Random(7)  # noqa: S311 (reproducible junk, not a secret)
    junk = [
        bytes(b for b in noise.randbytes(300) if b not in b"\n$!")[:200] + b"\r\n" for _ in range(5)
    ]
    junk += [b"$GNRMC," + b"9" * 100_000 + b"\r\n", b"\xff\xfe\xc3( caf\xe9 $GP\xc0\xaf\r\n",
             b"\x00" * 64 + b"\n"]  # fmt: skip
    stream = [b"#" + device.encode() + b"\r\n"]
    for n, line in enumerate(vehicle):
        stream.append(line)
        if n % 97 == 5 and junk:
            stream.append(junk.pop())
    assert not junk
    expected = decode(vehicle, device=device)
    wanted = {fix.time for fix in expected.fixes}
    assert len(wanted) > 300

    async def body() -> None:
        assert await _send(port, stream) == b""
        await until(lambda: len(_times(url, device)) == len(wanted))
        # another device afterwards, the same server
        assert await _send(port, [b"#nmea-tcp-2\n", *vehicle[:40]]) == b""
        await until(lambda: len(_times(url, "nmea-tcp-2")) > 0)

    asyncio.run(running(lambda ready: serve_nmea("127.0.0.1", port, url=url, settings=SETTINGS,
                                                 ready=ready, options=FAST), body))  # fmt: skip
    assert set(_times(url, device)) == wanted
    latest = query(url, "SELECT time, ST_X(geom), ST_Y(geom) FROM gps.latest "
                   "WHERE device_id = %s", device)  # fmt: skip
    last = max(expected.fixes, key=lambda fix: fix.time)
    assert latest == [(last.time, pytest.approx(last.lon), pytest.approx(last.lat))]
    counts = expected.counts()
    assert counts == {"no_fix": 3, "checksum": 1, "malformed": 1}  # the file's own junk
    counts["malformed"] += 8  # ours: 5 random, the long line, invalid UTF-8, NULs
    assert _rejects(url, device) == counts


def test_nmea_login_refusal_and_idle(url: str, vehicle: list[bytes]) -> None:
    """No login line: named by ``device_of``, else refused; a quiet client is closed."""
    port, bridge = free_port(), free_port()

    def device_of(host: str, peer_port: int) -> str | None:
        return "nmea-tcp-3" if (host, peer_port) == ("127.0.0.1", bridge) else None

    async def body() -> None:
        # one line each: unread input would make the server's close a reset
        answer = await _send(port, vehicle[:1])
        assert answer.startswith(b"ERROR no device")
        assert (await _send(port, [b"#not a device id\n"])).startswith(b"ERROR")
        assert await _send(port, vehicle[:40], local_port=bridge) == b""
        await until(lambda: len(_times(url, "nmea-tcp-3")) > 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"#nmea-tcp-3\r\n$GNRMC,0000")  # then nothing: closed after 3 s
        started = time.monotonic()
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        assert 2.5 < time.monotonic() - started < 6
        writer.close()

    asyncio.run(running(lambda ready: serve_nmea(
        "127.0.0.1", port, url=url, settings=SETTINGS, device_of=device_of, ready=ready,
        options=FAST), body))  # fmt: skip


class _Proxy:
    """A TCP port in front of the database that can be switched off and on."""

    def __init__(self, database_url: str) -> None:
        params = conninfo_to_dict(database_url)
        self.host, self.port = (
            str(params.get("host") or "localhost"),
            int(params.get("port") or 5432),
        )
        self.listen = free_port()
        self.url = make_conninfo(database_url, host="127.0.0.1", port=str(self.listen),
                                 sslmode="disable")  # fmt: skip
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.listen)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in self.pipes:
                writer.transport.abort()
            await self.server.wait_closed()
            self.server = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.host.startswith("/"):
            up = await asyncio.open_unix_connection(f"{self.host}/.s.PGSQL.{self.port}")
        else:
            up = await asyncio.open_connection(self.host, self.port)
        self.pipes |= {writer, up[1]}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        with contextlib.suppress(asyncio.CancelledError):  # (see spatial.gps.tcp)
            await asyncio.gather(copy(reader, up[1]), copy(up[0], writer))
        self.pipes -= {writer, up[1]}


def test_nmea_database_down_mid_stream(url: str, vehicle: list[bytes]) -> None:
    """Fixes read while the database is unreachable are kept and stored once it is back."""
    device, port, proxy = "nmea-tcp-4", free_port(), _Proxy(url)
    login = [b"#" + device.encode() + b"\r\n"]
    first, second = vehicle[:200], vehicle[200:500]
    wanted = {fix.time for fix in decode(vehicle[:500]).fixes}

    async def body() -> None:
        await _send(port, [*login, *first])
        await until(lambda: len(_times(url, device)) > 0)
        await proxy.stop()
        await _send(port, [*login, *second])  # read now, stored later
        await asyncio.sleep(1.0)
        before = len(_times(url, device))
        await proxy.start()
        await until(lambda: set(_times(url, device)) == wanted, 30)
        assert before < len(wanted)

    async def main() -> None:
        await proxy.start()
        try:
            await running(lambda ready: serve_nmea("127.0.0.1", port, url=proxy.url,
                           settings=SETTINGS, ready=ready, options=FAST), body)  # fmt: skip
        finally:
            await proxy.stop()

    asyncio.run(main())


# -- OwnTracks over MQTT -----------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with broker_in(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


def _follow(
    broker: Broker, url: str, client_id: str, **options: Any
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Starts the subscriber (for :func:`_running`), with quick retries and ``options``."""
    chosen = replace(QUICK_MQTT, **options)

    def start(ready: asyncio.Event) -> Awaitable[None]:
        return follow_owntracks("127.0.0.1", broker.port, url=url, settings=SETTINGS,
                                client_id=client_id, ready=ready, options=chosen)  # fmt: skip

    return start


def test_owntracks_over_mqtt(broker: Broker, url: str) -> None:
    """Locations stored once; junk counted; acknowledged (nothing comes back on
    reconnect); messages sent while the subscriber is away delivered when it returns."""
    device, topic = "mqtt/alice", "owntracks/mqtt/alice"
    publisher = Publisher(broker.port, "test-phone-alice")
    follow = _follow(broker, url, "spatial-gps-test-alice")
    stamps = [T0 + 10 * n for n in range(10)]

    async def first() -> None:
        for tst in stamps:
            publisher.location(topic, tst)
        publisher.location(topic, T0 + 500, lat=0, lon=0)  # zero_position
        publisher.publish(topic, b'{"_type": "encrypted", "data": "xyz"}')  # malformed
        publisher.publish(topic + "/event", b'{"_type": "transition", "event": "enter"}')
        await asyncio.to_thread(publisher.wait)
        await until(lambda: len(_times(url, device)) == 10)
        await until(lambda: _rejects(url, device) == {"zero_position": 1, "malformed": 1})

    async def later() -> None:
        await until(lambda: len(_times(url, device)) == 15)
        await asyncio.sleep(1.0)  # time for anything unacknowledged to come back

    try:
        asyncio.run(running(follow, first))
        for n in range(5):  # while nobody is subscribed: kept in the session
            publisher.location(topic, T0 + 1000 + n)
        publisher.wait()
        asyncio.run(running(follow, later))
    finally:
        publisher.close()
    times = _times(url, device)
    assert len(times) == len(set(times)) == 15
    # nothing was delivered twice: every message was acknowledged after it was stored
    assert _rejects(url, device) == {"zero_position": 1, "malformed": 1}


def test_owntracks_broker_restart_loses_nothing(broker: Broker, url: str) -> None:
    """200 messages at QoS 1, the broker restarted in the middle while it still holds
    messages for the subscriber: every message the publisher had acknowledged is stored,
    once.

    The subscriber takes at most 20 unacknowledged messages at a time and stores every
    0.4 s, so that the broker is still holding some of the first 80 when it stops.
    """
    device, topic = "mqtt/bob", "owntracks/mqtt/bob"
    publisher = Publisher(broker.port, "test-phone-bob")
    stamps = [T0 + 100_000 + n for n in range(200)]
    follow = _follow(broker, url, "spatial-gps-test-bob", receive_maximum=20,
                     batch_interval=0.4)  # fmt: skip

    async def body() -> None:
        for tst in stamps[:80]:
            publisher.location(topic, tst)
        await asyncio.to_thread(publisher.wait)
        acked_at_stop = len(publisher.acked)
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(0.5)  # the subscriber stores what it had received
        received = len(_times(url, device))
        for n, tst in enumerate(stamps[80:]):
            if n == 40:
                await asyncio.to_thread(broker.start)
            publisher.location(topic, tst)
            await asyncio.sleep(0.01)
        await asyncio.to_thread(publisher.wait, 30)
        acked = {dt.datetime.fromtimestamp(tst, dt.UTC) for tst in publisher.acked}
        assert received < acked_at_stop == 80, "the broker held nothing when it stopped"
        assert len(acked) >= 120, f"only {len(acked)} of 200 acknowledged to the publisher"
        await until(lambda: acked <= set(_times(url, device)), 30)

    try:
        asyncio.run(running(follow, body))
    finally:
        publisher.close()
        broker.ensure_running()  # for the tests after this one, had it failed in the outage
    rows = query(url, "SELECT time, count(*) FROM gps.positions WHERE device_id = %s "
                 "GROUP BY time", device)  # fmt: skip
    assert all(count == 1 for _, count in rows)
    published = {dt.datetime.fromtimestamp(tst, dt.UTC) for tst in stamps}
    assert {time_ for time_, _ in rows} <= published
