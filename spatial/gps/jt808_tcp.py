"""The JT/T 808 receiver: vehicle terminals over TCP (``spatial gps receive --jt808-port``).

Each connection is one terminal. Its frames (:mod:`spatial.gps.jt808`) are answered as the
standard asks:

- registration (``0x0100``): ``0x8100`` with an authentication code when the terminal's
  phone number is registered to a device (``spatial gps device add ID --jt808-phone N``),
  else result 4, "no such terminal";
- authentication (``0x0102``): ``0x8001`` success when the code is the one given (a keyed
  hash of the number: nothing to store, the same from every receiver), else failure;
- heartbeat (``0x0002``): ``0x8001`` success;
- location report (``0x0200``) and batch upload (``0x0704``): the positions are checked
  and stored like every other source's (:func:`spatial.gps.store.store`), and only then
  answered ``0x8001`` success, so a terminal resends what was not stored; positions
  without a fix (status bit 1 clear) are ``no_fix`` rejects;
- anything else: ``0x8001`` "not supported".

A frame that fails its checksum is answered "message error" (result 2) and counted as a
``checksum`` reject; one that cannot be read is counted ``malformed``; bytes outside any
frame are skipped and counted. The connection stays up through all of it. Frames from a
number that no device has are counted as ``unknown_device`` under ``jt808:<number>``.
Positions wait for the database as the NMEA receiver's do (:func:`spatial.gps.tcp.store_parts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging

from psycopg_pool import ConnectionPool

from spatial.gps import jt808
from spatial.gps.fix import Decoded, Fix, Reject
from spatial.gps.jt808 import Frame, FrameError, Splitter
from spatial.gps.tcp import TcpOptions, open_pool, serve_connections, store_parts
from spatial.settings import GpsSettings

log = logging.getLogger(__name__)

SOURCE = "jt808"
"""``gps.positions.source`` of the fixes received here."""
READ = 4096


def auth_code(secret: str, terminal: str) -> str:
    """The authentication code a terminal is given at registration."""
    return hmac.new(secret.encode(), f"jt808:{terminal}".encode(), hashlib.sha256).hexdigest()[:16]


def _device(pool: ConnectionPool, terminal: str) -> str | None:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT id FROM gps.devices WHERE terminal = %s AND active", (terminal,)
        ).fetchone()
    return str(row[0]) if row else None


def _fix(position: jt808.Position, device: str) -> Fix | Reject:
    if not position.fixed:
        return Reject("no_fix", "status bit 1 (positioned) is clear", device=device)
    return Fix(
        time=position.time, lon=position.lon, lat=position.lat, device=device,
        altitude=float(position.altitude), speed=position.speed_kmh / 3.6,
        course=float(position.course), satellites=position.extra.get("satellites"),
        attributes={"alarm": position.alarm, "status": position.status, **position.extra},
    )  # fmt: skip


class _Terminal:
    """One connection: frames in, answers out, positions stored before they are answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 pool: ConnectionPool, settings: GpsSettings, options: TcpOptions,
                 secret: str) -> None:  # fmt: skip
        self.reader, self.writer = reader, writer
        self.pool, self.settings, self.options, self.secret = pool, settings, options, secret
        self.serial = 0
        self.devices: dict[str, str | None] = {}

    async def run(self) -> None:
        splitter = Splitter()
        skipped = 0
        while True:
            try:
                data = await asyncio.wait_for(self.reader.read(READ), self.options.idle_timeout)
            except TimeoutError:
                return
            if not data:
                return
            for content in splitter.feed(data):
                await self.frame(content)
            if splitter.skipped > skipped:
                detail = f"{splitter.skipped - skipped} bytes outside any frame"
                await self.store(Decoded(rejects=[Reject("malformed", detail)]))
                skipped = splitter.skipped

    async def send(self, message: bytes) -> None:
        self.writer.write(message)
        await self.writer.drain()

    def next_serial(self) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial

    async def store(self, decoded: Decoded) -> None:
        await store_parts(self.pool, [decoded], source=SOURCE, settings=self.settings,
                          backoff=self.options.backoff)  # fmt: skip

    async def device(self, terminal: str) -> str | None:
        if terminal not in self.devices:
            self.devices[terminal] = await asyncio.to_thread(_device, self.pool, terminal)
        return self.devices[terminal]

    async def frame(self, content: bytes) -> None:
        try:
            frame = jt808.parse(content)
        except FrameError as error:
            unchecked = None
            with contextlib.suppress(FrameError):
                unchecked = jt808.parse(content, check=False)
            device = await self.device(unchecked.terminal) if unchecked else None
            await self.store(Decoded(rejects=[Reject(error.reason, str(error), device=device)]))
            if unchecked is not None:  # a readable header: tell the terminal to send again
                await self.send(jt808.general_response(unchecked, jt808.BAD_MESSAGE,
                                                       self.next_serial()))  # fmt: skip
            return
        device = await self.device(frame.terminal)
        if device is None:
            who = f"jt808:{frame.terminal}"
            detail = f"terminal {frame.terminal} is not registered to a device"
            await self.store(Decoded(rejects=[Reject("unknown_device", detail, device=who)]))
            if frame.msg_id == jt808.REGISTER:
                await self.send(jt808.register_response(frame, jt808.NO_SUCH_TERMINAL, "",
                                                        self.next_serial()))  # fmt: skip
            else:
                await self.send(jt808.general_response(frame, jt808.FAILED, self.next_serial()))
            return
        await self.known(frame, device)

    async def known(self, frame: Frame, device: str) -> None:
        code = auth_code(self.secret, frame.terminal)
        if frame.msg_id == jt808.REGISTER:
            await self.send(jt808.register_response(frame, jt808.OK, code, self.next_serial()))
            return
        if frame.msg_id in (jt808.LOCATION, jt808.BATCH):
            try:
                made = [_fix(p, device) for p in jt808.locations(frame)]
            except FrameError as error:
                bad = Reject(error.reason, str(error), device=device)
                await self.store(Decoded(rejects=[bad]))
                await self.send(jt808.general_response(frame, jt808.BAD_MESSAGE,
                                                       self.next_serial()))  # fmt: skip
                return
            fixes = [f for f in made if isinstance(f, Fix)]
            await self.store(Decoded(fixes, [r for r in made if isinstance(r, Reject)]))
            result = jt808.OK
        elif frame.msg_id == jt808.AUTHENTICATE:
            given = jt808.auth_code(frame)
            result = jt808.OK if hmac.compare_digest(given, code) else jt808.FAILED
        elif frame.msg_id == jt808.HEARTBEAT:
            result = jt808.OK
        else:
            result = jt808.UNSUPPORTED
        await self.send(jt808.general_response(frame, result, self.next_serial()))


async def serve_jt808(
    host: str, port: int, *, url: str, settings: GpsSettings, secret: str,
    ready: asyncio.Event | None = None, options: TcpOptions | None = None,
) -> None:  # fmt: skip
    """Receive JT/T 808 terminals on a TCP port until cancelled (see the module docstring).

    Args:
        secret: the key of the authentication codes (the instance's secret key).
        ready: set once the port is listening.
        options: timeouts, the pool and the backoff of :mod:`spatial.gps.tcp`.
    """
    options = options or TcpOptions()
    pool = open_pool(url, size=options.pool_size, name="spatial-gps-jt808",
                     timeout=options.pool_timeout)  # fmt: skip

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(ConnectionError):
                await _Terminal(reader, writer, pool=pool, settings=settings, options=options,
                                secret=secret).run()  # fmt: skip
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    try:
        await serve_connections(host, port, handle, name="jt808", ready=ready)
    finally:
        await asyncio.to_thread(pool.close)
