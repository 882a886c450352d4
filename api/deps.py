"""Short dependency aliases shared by the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg_pool import PoolTimeout

from layers import Catalog
from spatial.errors import DatabaseUnavailableError


async def _conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    try:
        async with request.app.state.pool.connection(
            timeout=request.app.state.settings.database.pool_timeout_s
        ) as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        msg = "the database is not reachable; try again shortly"
        raise DatabaseUnavailableError(msg) from exc


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


Conn = Annotated[psycopg.AsyncConnection, Depends(_conn)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]
