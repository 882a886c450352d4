"""NMEA 0183 over TCP: a receiver for GNSS units and serial-to-TCP bridges that stream
their sentences to a socket.

One connection is one device. The device is named by a **login line**, the first line of
the connection: ``#`` followed by the device id (the ids :func:`spatial.gps.store.add_device`
accepts), e.g. ``#YF-AMB-01``, so that a plain bridge can be told to prefix its stream
(``(echo '#YF-AMB-01'; cat /dev/ttyUSB0) | nc host port``). A connection whose first line
is not a login line is named by ``device_of(peer_host, peer_port)`` when the server has
one (a unit that cannot send a login line, known by its address), and that first line is
decoded as NMEA; otherwise it is refused with one line ``ERROR ...`` and closed. The
device is not looked up at login: fixes of an unregistered device are refused and counted
by :func:`spatial.gps.store.store`, as from every other source.

Then each line goes to the connection's own :class:`spatial.gps.nmea.Decoder`. A line is
at most :attr:`TcpOptions.max_line` bytes: a longer one is read past and discarded as one
``malformed`` reject, and the connection stays up; binary junk and invalid UTF-8 are
rejects of the decoder. A connection that sends no complete line for
:attr:`TcpOptions.idle_timeout` seconds is closed. The decoder emits an epoch's fix when the
next epoch starts; after :data:`QUIET_S` seconds without a line the pending epoch is
emitted too, so a unit that pauses is not shown one epoch late.

Fixes and rejects are stored in batches, every :attr:`TcpOptions.batch_size` fixes or
:attr:`TcpOptions.batch_interval` seconds and at disconnect, each batch in one transaction
on a worker thread, through a small connection pool.

NMEA over TCP has no acknowledgement: a unit never learns whether a fix was stored, so the
receiver keeps what it read. While the database is unreachable a batch is kept and stored
again with backoff (:class:`Backoff`) until it is, and reading goes on into the
connection's buffer. The buffer is bounded: at :attr:`TcpOptions.max_pending` fixes and
rejects the connection stops reading, so TCP flow control holds the unit back (its send
buffer fills; what it does then is the unit's own policy, most drop or buffer themselves).
Nothing already read is dropped. A connection that ends while its fixes wait for the
database lives on until they are stored. Only cancelling :func:`serve_nmea` (stopping the
server) drops fixes not yet stored, and says how many in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool

from spatial.gps.fix import DEVICE_ID, Decoded, Fix, Reject
from spatial.gps.nmea import Decoder
from spatial.gps.store import Stored, store
from spatial.settings import GpsSettings

__all__ = [
    "INPUT_LIMITS",
    "QUIET_S",
    "TRANSIENT",
    "Backoff",
    "TcpOptions",
    "open_pool",
    "serve_connections",
    "serve_nmea",
    "store_parts",
]

log = logging.getLogger(__name__)

SOURCE = "nmea-tcp"
"""``gps.positions.source`` of the fixes received here."""
QUIET_S = 2.0
"""Seconds without a line after which a connection's pending epoch is complete."""
LOGIN = re.compile("#(" + DEVICE_ID + ")")
"""The login line: ``#`` and a device id, alone on the first line."""
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)
"""Errors that pass with time: the server is down or restarting, a connection broke, the
pool has no connection to give (``PoolTimeout`` is an ``OperationalError``); except
:data:`INPUT_LIMITS`."""
INPUT_LIMITS = (psycopg.errors.ProgramLimitExceeded,)
"""Operational errors the input causes (a value beyond a limit of the database): trying
again cannot cure them."""


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts to store while the database is unreachable."""

    first: float = 0.5
    """Seconds before the second attempt; each further wait doubles..."""
    longest: float = 30.0
    """...up to this."""


@dataclass(frozen=True)
class TcpOptions:
    """Limits of the NMEA TCP receiver."""

    max_line: int = 4096
    """Bytes in one line; a longer line is discarded as malformed."""
    idle_timeout: float = 300.0
    """Seconds a connection may wait between complete lines (and for the login line)."""
    batch_size: int = 100
    """Fixes that make a batch to store at once..."""
    batch_interval: float = 0.5
    """...or seconds after which what there is is stored."""
    max_pending: int = 10_000
    """Fixes and rejects a connection keeps while they wait for the database; at this
    many it stops reading until some are stored."""
    pool_size: int = 4
    """Database connections, shared by every device connection."""
    pool_timeout: float = 10.0
    """Seconds to wait for a database connection before an attempt counts as failed."""
    backoff: Backoff = Backoff()


# -- storing, shared with the MQTT subscriber --------------------------------------------


def open_pool(url: str, *, size: int, name: str, timeout: float) -> ConnectionPool:
    """A connection pool opened in the background (the database may be down right now)."""
    pool: ConnectionPool = ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        open=False,
        timeout=timeout,
        name=name,
        check=ConnectionPool.check_connection,  # a database restart leaves broken ones
        kwargs={"application_name": name},
    )
    pool.open(wait=False)
    return pool


def _store_now(
    pool: ConnectionPool, parts: Sequence[Decoded], source: str, settings: GpsSettings
) -> Stored:
    fixes = [fix for part in parts for fix in part.fixes]
    rejects = [reject for part in parts for reject in part.rejects]
    with pool.connection() as conn:
        return store(conn, fixes, source=source, settings=settings, rejects=rejects)


async def _retrying(
    pool: ConnectionPool,
    parts: Sequence[Decoded],
    *,
    source: str,
    settings: GpsSettings,
    backoff: Backoff,
) -> Stored:
    """Store ``parts`` in one transaction, trying again while the database is unreachable."""
    delay = backoff.first
    while True:
        try:
            return await asyncio.to_thread(_store_now, pool, parts, source, settings)
        except TRANSIENT as error:
            if isinstance(error, INPUT_LIMITS):
                raise
            count = sum(len(part.fixes) for part in parts)
            log.warning("%s: cannot store %d fixes (%s); trying again in %.1f s",
                        source, count, str(error).strip()[:200], delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff.longest)


def _add(total: Stored, done: Stored) -> None:
    total.stored += done.stored
    total.duplicates += done.duplicates
    total.rejects += done.rejects
    total.devices |= done.devices


async def store_parts(
    pool: ConnectionPool,
    parts: Sequence[Decoded],
    *,
    source: str,
    settings: GpsSettings,
    backoff: Backoff = Backoff(),
) -> Stored:
    """Store decoded input in one transaction; return only when it is stored or counted.

    While the database is unreachable (:data:`TRANSIENT`) the attempt is repeated with
    ``backoff``, for as long as it takes (until cancelled). Any other error is one that
    repeating cannot cure, caused by something in the input: then each part is stored
    alone, and a part that fails alone is dropped and counted as a ``malformed`` reject,
    so that one bad message never holds up the stream behind it.

    Args:
        parts: what to store; a part is the unit that may be dropped (one MQTT message,
            one fix).
    """
    try:
        return await _retrying(pool, parts, source=source, settings=settings, backoff=backoff)
    except Exception:  # anything else a batch raises: see the docstring
        if len(parts) == 1:
            log.exception("%s: input the database refuses, dropped", source)
            dropped = Reject("malformed", "input the database refuses (see the server log)")
            part = Decoded(rejects=[dropped])
            return await _retrying(pool, [part], source=source, settings=settings,
                                   backoff=backoff)  # fmt: skip
    total = Stored()
    for part in parts:
        _add(total, await store_parts(pool, [part], source=source, settings=settings,
                                      backoff=backoff))  # fmt: skip
    return total


# -- one connection ----------------------------------------------------------------------


async def _read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line with its ``\\n``, the last bytes before end of stream, ``b""`` at the
    end, or None for a line longer than the reader's limit (read past and discarded)."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as end:
        return end.partial
    except asyncio.LimitOverrunError as overrun:
        consumed = overrun.consumed
    while True:  # drop what was scanned, until the line's end
        await reader.readexactly(consumed)
        try:
            await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as again:
            consumed = again.consumed
        except asyncio.IncompleteReadError:
            return None  # the stream ended inside the long line
        else:
            return None


@dataclass
class _Buffer:
    """What a connection has read and not yet stored."""

    fixes: list[Fix]
    rejects: list[Reject]

    def __len__(self) -> int:
        return len(self.fixes) + len(self.rejects)


class _Connection:
    """One device's stream: a reader task that decodes, a writer task that stores."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        device: str,
        *,
        pool: ConnectionPool,
        settings: GpsSettings,
        options: TcpOptions,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.device, self.pool, self.settings, self.options = device, pool, settings, options
        self.decoder = Decoder(device=device)
        self.pending = _Buffer([], [])
        self.room = asyncio.Event()  # set while the buffer is below its bound
        self.room.set()
        self.full_batch = asyncio.Event()
        self.last_line = asyncio.get_running_loop().time()

    def take(self, fixes: list[Fix]) -> None:
        """Add decoded fixes and the decoder's rejects to the buffer."""
        self.pending.fixes += fixes
        self.pending.rejects += self.decoder.pop_rejects()
        if len(self.pending) >= self.options.max_pending:
            self.room.clear()
        if len(self.pending.fixes) >= self.options.batch_size:
            self.full_batch.set()

    def feed(self, line: bytes | None) -> None:
        self.last_line = asyncio.get_running_loop().time()
        if line is None:
            limit = self.options.max_line
            detail = f"a line longer than {limit} bytes, discarded"
            self.pending.rejects.append(Reject("malformed", detail, device=self.device))
            self.take([])
        else:
            self.take(self.decoder.feed(line))

    async def read(self) -> None:
        """Decode lines until the peer closes, goes quiet or breaks the connection."""
        try:
            while True:
                await self.room.wait()
                async with asyncio.timeout(self.options.idle_timeout):
                    line = await _read_line(self.reader)
                if line == b"":
                    return
                self.feed(line)
        except TimeoutError:
            log.info("nmea %s: no line for %g s, closing", self.device, self.options.idle_timeout)
        except (ConnectionError, OSError) as error:
            log.info("nmea %s: connection lost (%s)", self.device, error)
        finally:
            self.writer.close()
            self.full_batch.set()  # the writer stores the rest now

    async def write(self, reading: asyncio.Task[None]) -> None:
        """Store batches until the reader is done and everything it read is stored."""
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.batch_interval):
                    await self.full_batch.wait()
            self.full_batch.clear()
            finished = reading.done()
            if finished or loop.time() - self.last_line >= QUIET_S:
                self.take(self.decoder.flush())
            if len(self.pending):
                await self._store()
            elif finished:
                return

    async def _store(self) -> None:
        fixes, rejects = list(self.pending.fixes), list(self.pending.rejects)
        parts = [Decoded(fixes=[fix]) for fix in fixes]
        if rejects:
            parts.append(Decoded(rejects=rejects))
        await store_parts(self.pool, parts, source=SOURCE, settings=self.settings,
                          backoff=self.options.backoff)  # fmt: skip
        # the reader may have added more meanwhile: drop only what was stored
        del self.pending.fixes[: len(fixes)]
        del self.pending.rejects[: len(rejects)]
        if len(self.pending) < self.options.max_pending:
            self.room.set()

    async def run(self) -> None:
        """Receive the stream until it ends and everything read from it is stored."""
        reading = asyncio.create_task(self.read())
        try:
            await self.write(reading)
        except asyncio.CancelledError:
            if len(self.pending):
                fixes, rejects = len(self.pending.fixes), len(self.pending.rejects)
                log.warning("nmea %s: server stopped, %d fixes and %d rejects not stored",
                            self.device, fixes, rejects)  # fmt: skip
            raise
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading


# -- the server --------------------------------------------------------------------------


def _login(line: bytes) -> str | None:
    """The device id of a login line."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    match = LOGIN.fullmatch(text)
    return None if match is None else match.group(1)


async def _refuse(writer: asyncio.StreamWriter, why: str) -> None:
    writer.write(f"ERROR {why}\r\n".encode())
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    pool: ConnectionPool,
    settings: GpsSettings,
    options: TcpOptions,
    device_of: Callable[[str, int], str | None] | None,
) -> None:
    """Name the connection's device, then receive its stream."""
    peer = writer.get_extra_info("peername") or ("?", 0)
    try:
        async with asyncio.timeout(options.idle_timeout):
            first = await _read_line(reader)
        if first == b"":
            return
        device = None if first is None else _login(first)
        logged_in = device is not None
        if not logged_in and device_of is not None:
            device = device_of(str(peer[0]), int(peer[1]))
        if device is None:
            await _refuse(writer, "no device: send '#<device id>' as the first line")
            return
        log.info("nmea %s: connected from %s:%s", device, peer[0], peer[1])
        connection = _Connection(reader, writer, device, pool=pool, settings=settings,
                                 options=options)  # fmt: skip
        if not logged_in:
            connection.feed(first)  # NMEA already (or an overlong line)
        await connection.run()
    except (TimeoutError, ConnectionError, OSError) as error:
        log.info("nmea %s:%s: %s", peer[0], peer[1], error or type(error).__name__)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve_nmea(
    host: str,
    port: int,
    *,
    url: str,
    settings: GpsSettings,
    device_of: Callable[[str, int], str | None] | None = None,
    ready: asyncio.Event | None = None,
    options: TcpOptions | None = None,
) -> None:
    """Receive NMEA 0183 streams on a TCP port until cancelled (see the module docstring).

    Args:
        host: the address to listen on (``0.0.0.0`` for every interface).
        port: the TCP port.
        url: the database (a libpq URL).
        settings: how fixes are checked before they are stored.
        device_of: names the device of a connection without a login line, from the
            peer's address and port; None (or a None answer) refuses such a connection.
        ready: set once the port is listening.
        options: limits (line length, timeouts, batches, buffer, pool).
    """
    options = options or TcpOptions()
    pool = open_pool(url, size=options.pool_size, name="spatial-gps-nmea",
                     timeout=options.pool_timeout)  # fmt: skip

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(reader, writer, pool=pool, settings=settings, options=options,
                      device_of=device_of)  # fmt: skip

    try:
        await serve_connections(host, port, handle, name="nmea", ready=ready,
                                limit=options.max_line)  # fmt: skip
    finally:
        await asyncio.to_thread(pool.close)


async def serve_connections(
    host: str, port: int,
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], *,
    name: str, ready: asyncio.Event | None = None, limit: int = 2**16,
) -> None:  # fmt: skip
    """Serve each TCP connection with ``handle`` until cancelled; then cancel the
    connections and wait for them (the NMEA and JT/T 808 receivers)."""
    connections: set[asyncio.Task[None]] = set()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            connections.add(task)
            task.add_done_callback(connections.discard)
        # Cancelled only when the server stops; ending quietly then spares the log an
        # error from Python 3.11's streams, which ask a cancelled task for its exception.
        with contextlib.suppress(asyncio.CancelledError):
            await handle(reader, writer)

    server = await asyncio.start_server(accepted, host, port, limit=limit)
    try:
        log.info("%s: listening on %s:%s", name, host, port)
        if ready is not None:
            ready.set()
        await server.serve_forever()
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()
