"""Short dependency aliases shared by the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg_pool import PoolTimeout

from api.auth import view_of
from layers import View
from spatial.errors import DatabaseUnavailableError


@asynccontextmanager
async def connection(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection; a database that cannot be reached is a DatabaseUnavailableError
    (503), whether the pool waited in vain or the connection broke."""
    try:
        async with request.app.state.pool.connection(
            timeout=request.app.state.settings.database.pool_timeout_s
        ) as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        msg = "the database is not reachable; try again shortly"
        raise DatabaseUnavailableError(msg) from exc


async def _conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    async with connection(request) as conn:
        yield conn


async def _read_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    from api.replicas import read_connection  # noqa: PLC0415 - api.replicas imports this

    async with read_connection(request) as conn:
        yield conn


def _view(request: Request) -> View:
    return view_of(request)


Conn = Annotated[psycopg.AsyncConnection, Depends(_conn)]
ReadConn = Annotated[psycopg.AsyncConnection, Depends(_read_conn)]
"""A connection for reads that tolerate lag: a read replica's when one is configured and
fit, else the primary's (:mod:`api.replicas`). Writes use :data:`Conn`."""
ViewDep = Annotated[View, Depends(_view)]
"""The caller's view of the catalog: what they may read, and their rights (api.auth)."""
