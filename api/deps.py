"""The dependencies routes declare: connections, the caller's view, and who they must be.

- ``Conn``: a connection to the primary (writes, and reads that must see them);
  ``ReadConn``: a connection for reads that tolerate lag (a read replica's when one is
  fit); both from :class:`api.db.Database`, the one way to a connection, which maps an
  unreachable database to 503 with ``Retry-After``. ``Db``: the database itself, for work
  on threads (:meth:`~api.db.Database.sync`, :meth:`~api.db.Database.transaction`).
- ``Caller``: the caller's view of the catalog (:class:`layers.View`), with the permission
  checks as its methods (may read, may write, may ingest, steward of, admin);
  ``SignedIn``, ``Steward`` and ``Admin``: the same view, once the caller is known to be
  signed in, a steward (or admin), an admin.

Plain Starlette routes (the hot paths of :mod:`api.routing`) call :func:`caller` and the
database's methods themselves: they have no dependency injection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from starlette.requests import HTTPConnection
from starlette.types import Scope

from api.db import Database
from layers import View, view
from spatial.access import ANONYMOUS, Principal
from spatial.audit import Actor

_VIEWS = 256
"""Views kept per worker (the most recent callers')."""


def caller(request: HTTPConnection) -> View:
    """The caller's view of the catalog: what they may read, their rights and rows (built
    once per principal and snapshot: a catalog or access change makes new snapshots, and
    so new views)."""
    state = request.app.state
    principal: Principal = request.scope.get("state", {}).get("principal", ANONYMOUS)
    catalog, directory = state.catalog, state.directory
    cache: OrderedDict[Principal, tuple[Any, Any, View]] = state.views
    found = cache.get(principal)
    if found is not None and found[0] is catalog and found[1] is directory:
        cache.move_to_end(principal)
        return found[2]
    made = view(principal, catalog, directory)
    cache[principal] = (catalog, directory, made)
    while len(cache) > _VIEWS:
        cache.popitem(last=False)
    return made


def client_address(scope: Scope) -> str | None:
    """The client's address."""
    client = scope.get("client")
    return str(client[0]) if client else None


def actor_of(request: HTTPConnection) -> Actor:
    """Who to record in the audit log for this request: the principal and the address."""
    principal = caller(request).principal
    return Actor(principal.username, principal.user_id, client_address(request.scope))


def database(request: HTTPConnection) -> Database:
    """The worker's database (:mod:`api.db`)."""
    db: Database = request.app.state.db
    return db


async def _conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with database(request).connection() as conn:
        yield conn


async def _read_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with database(request).read_connection(request) as conn:
        yield conn


def _signed_in(request: Request) -> View:
    seen = caller(request)
    seen.signed_in(f"{request.method} {request.url.path}")
    return seen


def _steward(request: Request) -> View:
    seen = caller(request)
    seen.steward(request.url.path)
    return seen


def _admin(request: Request) -> View:
    seen = caller(request)
    seen.admin(request.url.path)
    return seen


Conn = Annotated[psycopg.AsyncConnection[Any], Depends(_conn)]
"""A pooled connection to the primary."""
ReadConn = Annotated[psycopg.AsyncConnection[Any], Depends(_read_conn)]
"""A connection for reads that tolerate lag: a read replica's when one is configured and
fit, else the primary's (:meth:`api.db.Database.read_connection`)."""
Db = Annotated[Database, Depends(database)]
"""The worker's database, for work on threads."""
Caller = Annotated[View, Depends(caller)]
"""The caller's view of the catalog: what they may read, and their rights."""
SignedIn = Annotated[View, Depends(_signed_in)]
"""The caller's view; anonymous callers get 401."""
Steward = Annotated[View, Depends(_steward)]
"""The caller's view; only stewards and admins pass (401 anonymous, 403 others)."""
Admin = Annotated[View, Depends(_admin)]
"""The caller's view; only admins pass (401 anonymous, 403 others)."""
ActorDep = Annotated[Actor, Depends(actor_of)]
"""Who the audit log records for this request."""
