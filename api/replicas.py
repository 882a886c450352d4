"""Read replicas: reads that tolerate lag are served by a streaming replica.

With ``SPATIAL_DATABASE_REPLICA_URLS`` set, each worker opens a small pool per replica.
:func:`read_connection` lends a replica's connection when the replica is reachable, no
further behind than ``SPATIAL_DATABASE_REPLICA_MAX_LAG_S`` and, for a client that just
wrote, has replayed that write; otherwise the primary's. The replica's state (its replay
position and lag) is read at most once a second, on the connection it is about to lend.
:meth:`api.db.Database.read_connection` decides which connection a read gets.

Read-after-write: every successful write response carries the primary's WAL position
after the commit (``Spatial-Wal-Lsn``, and a short-lived cookie of the same value for
browsers, :class:`WalPosition`); a read carrying it goes to a replica only if the replica
has replayed up to that position. Without replicas nothing of this runs: no header, no
extra round trip.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spatial.errors import SpatialError
from spatial.settings import Settings

WAL_HEADER = "Spatial-Wal-Lsn"
WAL_COOKIE = "spatial_wal_lsn"
COOKIE_AGE_S = 60
"""How long a browser keeps sending the position of its last write."""
CHECK_S = 1.0
MARGIN_S = 1.0
"""Added to the lag limit and the check interval before a change counts as replayed."""
"""How long a replica's replay position and lag are trusted before being read again."""
RETRY_S = 2.0
"""How long a replica that could not lend a connection is skipped."""
RECONNECT_S = 10.0
"""How long a replica's pool keeps trying to connect before giving up until the next read."""
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_STATE = (
    "SELECT pg_last_wal_replay_lsn()::text, "
    "CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() "
    "THEN 0 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)
"""The replica's replay position, and its lag: none when it has replayed all it received
(an idle primary sends nothing, and the last replayed commit grows old), else the age of
the last replayed commit."""
NEVER = 1 << 64
"""A position no replica reaches: the read goes to the primary."""


def parse_lsn(text: str | None) -> int:
    """A ``pg_lsn`` (``16/B374D848``) as a number; 0 for none; :data:`NEVER` if malformed."""
    if not text:
        return 0
    match = _LSN.match(text.strip())
    if match is None:
        return NEVER
    return (int(match[1], 16) << 32) + int(match[2], 16)


def wanted_lsn(request: HTTPConnection) -> int:
    """The WAL position the caller's reads must see: its last write's (header or cookie)."""
    header = parse_lsn(request.headers.get(WAL_HEADER))
    cookie = parse_lsn(request.cookies.get(WAL_COOKIE)) if "cookie" in request.headers else 0
    return max(header, cookie)


@dataclass
class Replica:
    """One replica's pool and what was last read of its state."""

    pool: AsyncConnectionPool
    checked: float = float("-inf")
    lag_s: float = float("inf")
    replay: int = 0
    down_until: float = 0.0

    async def usable(self, conn: psycopg.AsyncConnection[Any], need: int, max_lag_s: float) -> bool:
        """Whether reads may be served from ``conn``: lag within the limit and, for a
        caller that wrote, its write replayed (read again if the known state is older)."""
        now = time.monotonic()
        if now - self.checked > CHECK_S or (need > self.replay and need != NEVER):
            cur = await conn.execute(_STATE)
            row = await cur.fetchone()
            self.checked = now
            self.replay = parse_lsn(row[0]) if row and row[0] else 0
            self.lag_s = float(row[1]) if row and row[1] is not None else float("inf")
            if not self.replay:  # not a replica (or not yet replaying): never read it
                self.lag_s = float("inf")
        return self.lag_s <= max_lag_s and self.replay >= need


@dataclass
class Replicas:
    """The worker's replicas (falsy when none is configured)."""

    replicas: list[Replica] = field(default_factory=list)
    max_lag_s: float = 5.0
    timeout_s: float = 1.0
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def __bool__(self) -> bool:
        return bool(self.replicas)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        options: dict[str, Any],
        check: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]],
    ) -> Replicas:
        """A small pool per configured replica, opened without waiting (a replica down
        at start-up is skipped until it answers)."""
        db = settings.database
        replicas = []
        for url in db.replica_urls:
            pool = AsyncConnectionPool(
                url.get_secret_value(),
                min_size=1,
                max_size=max(2, db.pool_max // 2),
                kwargs={**options, "application_name": "spatial-api-replica"},
                open=False,
                check=check,
                # After an outage, start afresh soon: the pool's back-off between attempts
                # doubles for as long as this lasts.
                reconnect_timeout=RECONNECT_S,
            )
            await pool.open(wait=False)
            replicas.append(Replica(pool))
        return cls(replicas, db.replica_max_lag_s, min(db.pool_timeout_s, 1.0))

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.pool.close()

    @contextlib.asynccontextmanager
    async def lend(self, need: int) -> AsyncIterator[psycopg.AsyncConnection[Any] | None]:
        """A connection of a replica fit to serve the read, or None (read the primary)."""
        now = time.monotonic()
        start = next(self._turn)
        candidates = [
            self.replicas[(start + i) % len(self.replicas)] for i in range(len(self.replicas))
        ]
        for replica in candidates:
            fresh = now - replica.checked <= CHECK_S
            if replica.down_until > now or (fresh and replica.lag_s > self.max_lag_s):
                continue
            async with contextlib.AsyncExitStack() as stack:
                try:
                    conn = await stack.enter_async_context(
                        replica.pool.connection(timeout=self.timeout_s)
                    )
                    usable = await replica.usable(conn, need, self.max_lag_s)
                except (psycopg.Error, PoolTimeout):
                    replica.down_until = time.monotonic() + RETRY_S
                    replica.checked = float("-inf")
                    continue
                if usable:
                    yield conn
                    return
            # A replica behind the caller's write: the others are likely behind too.
            if need > replica.replay:
                break
        yield None


class WalPosition:
    """Add the primary's WAL position to every successful write's response (installed
    only with replicas): the ``Spatial-Wal-Lsn`` header and cookie."""

    def __init__(self, app: ASGIApp, platform: Any) -> None:
        self.app = app
        self.platform = platform

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                lsn = await self._position()
                if lsn:
                    headers = MutableHeaders(scope=message)
                    headers.append(WAL_HEADER, lsn)
                    headers.append(
                        "Set-Cookie",
                        f"{WAL_COOKIE}={lsn}; Max-Age={COOKIE_AGE_S}; Path=/; HttpOnly; "
                        "SameSite=Lax",
                    )
            await send(message)

        await self.app(scope, receive, sending)

    async def _position(self) -> str | None:
        """The primary's current WAL position (after the write's commit), or None."""
        try:
            async with self.platform.state.db.connection() as c:
                cur = await c.execute("SELECT pg_current_wal_lsn()::text")
                row = await cur.fetchone()
        except (psycopg.Error, SpatialError):
            return None
        return str(row[0]) if row else None
