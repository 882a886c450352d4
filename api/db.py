"""The worker's database connections: the one way to a connection in ``api/``.

A :class:`Database` is opened by the app's lifespan and kept on ``app.state.db``; nothing
else in ``api/`` opens a pool, an engine or a connection. It holds:

- the **request pool** (psycopg, asynchronous): :meth:`Database.connection` for writes and
  reads that must see the latest data, :meth:`Database.read_connection` for reads that
  tolerate lag (a read replica's connection when one is configured and fit,
  :mod:`api.replicas`; the primary's otherwise, at no extra cost);
- the **thread pool** (psycopg, synchronous): :meth:`Database.sync` for work that runs on
  threads (pygeoapi's providers, GPS stores, webhook deliveries, track derivation);
- one **SQLAlchemy engine** for the repositories written in SQLAlchemy Core over the
  platform tables (:mod:`spatial.accounts`, :mod:`spatial.catalog`):
  :meth:`Database.transaction`, on threads;
- :meth:`Database.listen`: a dedicated connection for ``LISTEN`` (notifications cannot
  share a pooled connection).

Whatever the way, a database that cannot be reached is a
:class:`~spatial.errors.DatabaseUnavailableError` (503 with ``Retry-After``). Routes get
connections through the dependencies of :mod:`api.deps`.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from sqlalchemy import Connection, Engine, create_engine, event, exc
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from api import replicas
from spatial.db import sqlalchemy_url
from spatial.errors import DatabaseUnavailableError
from spatial.settings import Settings

UNREACHABLE = "the database is not reachable; try again shortly"
T = TypeVar("T")


def _spoken_to(conn: Any) -> bool:
    """Whether the server sent something to an idle pooled connection: its goodbye when it
    restarted or ended the session (a healthy idle connection receives nothing)."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _check(conn: psycopg.Connection[Any]) -> None:
    """The thread pool's check before lending a connection. Without it a connection the
    server closed in a restart was lent, and its request answered 503 with the database
    back. A round trip only when the socket has news: one for every request cost 30 us."""
    if _spoken_to(conn):
        ConnectionPool.check_connection(conn)


async def _acheck(conn: psycopg.AsyncConnection[Any]) -> None:
    """:func:`_check` for the request pool."""
    if _spoken_to(conn):
        await AsyncConnectionPool.check_connection(conn)


class Database:
    """The pools of one worker (see the module)."""

    def __init__(self, settings: Settings, url: str) -> None:
        """Describe the pools; :meth:`open` opens them."""
        self.settings = settings
        self.url = url
        timeout = settings.database.statement_timeout_ms
        self.options: dict[str, Any] = {
            "application_name": "spatial-api",
            "autocommit": True,
            # Prepared statements, but planned for their values each time: the best plan
            # for a bbox depends on the bbox, and a generic plan was 1.7 times slower.
            # UTC sessions: a date or a timestamp without an offset in a filter means UTC,
            # whatever the server's own time zone.
            "options": f"-c statement_timeout={timeout} -c plan_cache_mode=force_custom_plan "
            "-c TimeZone=UTC",
        }
        db = settings.database
        self.pool = AsyncConnectionPool(
            url, min_size=db.pool_min, max_size=db.pool_max, kwargs=self.options,
            open=False, check=_acheck,
        )  # fmt: skip
        self.sync_pool = ConnectionPool(
            url, min_size=1, max_size=db.pool_max, timeout=db.pool_timeout_s,
            kwargs={**self.options, "application_name": "spatial-api-sync"},
            open=False, check=_check,
        )  # fmt: skip
        self.engine: Engine = create_engine(
            sqlalchemy_url(url), pool_size=1, max_overflow=4, pool_timeout=db.pool_timeout_s,
            connect_args={"application_name": "spatial-api-core",
                          "options": self.options["options"]},
        )  # fmt: skip
        event.listen(self.engine, "checkout", _check_checkout)
        self.replicas = replicas.Replicas()

    async def open(self) -> None:
        """Open the pools, waiting for the primary (a replica down now is skipped until it
        answers)."""
        await self.pool.open(wait=True, timeout=30)
        self.replicas = await replicas.Replicas.open(self.settings, self.options, _acheck)
        await run_in_threadpool(self.sync_pool.open, True, 30)

    async def close(self) -> None:
        """Close every pool."""
        await self.pool.close()
        await self.replicas.close()
        await run_in_threadpool(self.sync_pool.close)
        await run_in_threadpool(self.engine.dispose)

    @contextlib.asynccontextmanager
    async def connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection to the primary (autocommit).

        Raises:
            DatabaseUnavailableError: the pool waited in vain or the connection broke.
        """
        wait = self.settings.database.pool_timeout_s if timeout is None else timeout
        try:
            async with self.pool.connection(timeout=wait) as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailableError(UNREACHABLE) from exc

    def read_connection(
        self, caller: HTTPConnection, *, primary: bool = False
    ) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A connection for a read that tolerates lag: a replica's when one is fit (lag
        within the limit, the caller's last write replayed), else the primary's. Without
        replicas this is :meth:`connection` as it is: the hot paths pay nothing.
        ``primary`` forces the primary (a tile of a collection that just changed); so does
        a collection of the path that appeared so lately that a replica may lack its
        table."""
        if not self.replicas or primary:
            return self.connection()
        collection = caller.path_params.get("collection_id")
        appeared = caller.app.state.appeared.get(collection) if collection else None
        if appeared is not None and time.monotonic() - appeared < self.replica_window:
            return self.connection()
        return self._replica_or_primary(replicas.wanted_lsn(caller))

    @property
    def replica_window(self) -> float:
        """How long after a change a replica fit to read may still lack it."""
        return self.replicas.max_lag_s + replicas.CHECK_S + replicas.MARGIN_S

    @contextlib.asynccontextmanager
    async def _replica_or_primary(self, need: int) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if need != replicas.NEVER:
            async with self.replicas.lend(need) as conn:
                if conn is not None:
                    try:
                        yield conn
                    except psycopg.OperationalError as exc:
                        raise DatabaseUnavailableError(UNREACHABLE) from exc
                    return
        async with self.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def sync(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled synchronous connection (autocommit), for work on a thread.

        Raises:
            DatabaseUnavailableError: the pool waited in vain or the connection broke.
        """
        try:
            with self.sync_pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailableError(UNREACHABLE) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A SQLAlchemy connection in a transaction, committed when the block ends (rolled
        back on an error), for the SQLAlchemy Core repositories; on a thread.

        Raises:
            DatabaseUnavailableError: the database cannot be reached.
        """
        try:
            with self.engine.begin() as conn:
                yield conn
        except (exc.OperationalError, exc.TimeoutError, exc.DisconnectionError) as err:
            raise DatabaseUnavailableError(UNREACHABLE) from err

    async def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` on a thread with a connection of :meth:`sync` (autocommit: it opens
        its own transactions)."""

        def run() -> T:
            with self.sync() as conn:
                return work(conn)

        return await run_in_threadpool(run)

    async def run_core(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a thread in one SQLAlchemy transaction (:meth:`transaction`)."""

        def run() -> T:
            with self.transaction() as conn:
                return work(conn)

        return await run_in_threadpool(run)

    @contextlib.asynccontextmanager
    async def listen(self, *channels: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection of its own that LISTENs on ``channels`` (constant names).

        Raises:
            DatabaseUnavailableError: the database cannot be reached.
        """
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, application_name="spatial-api-listen"
            )
        except psycopg.OperationalError as err:
            raise DatabaseUnavailableError(UNREACHABLE) from err
        async with conn:
            for channel in channels:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            yield conn

    def pools(self) -> dict[str, AsyncConnectionPool | ConnectionPool]:
        """The psycopg pools by name, for the metrics."""
        return {"async": self.pool, "sync": self.sync_pool}


def _check_checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
    """The engine's check before lending a connection (as :func:`_check`): a connection the
    server dropped is replaced, not lent."""
    if _spoken_to(dbapi_conn):
        raise exc.DisconnectionError
