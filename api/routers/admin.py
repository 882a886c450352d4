"""The admin API: departments, users, keys, grants, who may see a collection, the audit log.

Accounts and departments are the ``admin`` role's; grants and visibility are for whoever
administers the collection (an admin, or a steward of the department that owns it); the
audit log is readable by stewards (the rows of the collections they administer) and admins
(every row). Each change is the same function the ``spatial user`` commands call
(:mod:`spatial.accounts`), audited with the caller's name and address.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection, text
from starlette.concurrency import run_in_threadpool

from api.auth import actor_of, view_of
from layers import View
from spatial import accounts
from spatial.access import ADMIN
from spatial.audit import Actor
from spatial.db import engine
from spatial.errors import ForbiddenError, UnauthorizedError

router = APIRouter(prefix="/admin", tags=["Admin"])
T = TypeVar("T")


class NewDepartment(BaseModel):
    """A department to create."""

    id: str
    name: str


class NewUser(BaseModel):
    """A user or service account to create."""

    username: str
    roles: list[str] = Field(default_factory=lambda: ["viewer"])
    department: str | None = None
    password: str | None = None
    service: bool = False
    display_name: str | None = None


class UserChange(BaseModel):
    """What to change of a user (what is left out stays)."""

    roles: list[str] | None = None
    active: bool | None = None
    password: str | None = None


class NewKey(BaseModel):
    """An API key to create."""

    name: str = ""
    days: int | None = Field(default=None, ge=1, le=3650)


class NewGrant(BaseModel):
    """A grant: ``grantee`` is public, department:ID, role:NAME or user:NAME."""

    collection: str
    grantee: str
    privilege: str = "read"
    filter: str | None = None
    area: str | None = None


class Visibility(BaseModel):
    """Whether everyone may read a collection, and the department that owns it."""

    public: bool | None = None
    department: str | None = None


def _admin(request: Request) -> View:
    seen = view_of(request)
    if seen.principal.anonymous:
        msg = "the admin API needs a key or a token"
        raise UnauthorizedError(msg)
    if not seen.principal.admin:
        msg = f"{seen.principal.username} is not an admin"
        raise ForbiddenError(msg)
    return seen


async def _in_transaction(request: Request, work: Callable[[Connection, Actor], T]) -> T:
    actor = actor_of(request)

    def run() -> T:
        with engine(request.app.state.url) as eng, eng.begin() as conn:
            return work(conn, actor)

    return await run_in_threadpool(run)


@router.get("/departments", summary="Departments")
async def departments(request: Request) -> list[dict[str, Any]]:
    """Every department."""
    _admin(request)

    def read(conn: Connection, _: Actor) -> list[dict[str, Any]]:
        rows = conn.execute(text("SELECT id, name FROM platform.departments ORDER BY id"))
        return [dict(r) for r in rows.mappings()]

    return await _in_transaction(request, read)


@router.post("/departments", status_code=201, summary="Create a department")
async def add_department(request: Request, body: NewDepartment) -> dict[str, str]:
    """A new department."""
    _admin(request)
    await _in_transaction(request, lambda c, a: accounts.add_department(c, a, body.id, body.name))
    return {"id": body.id, "name": body.name}


@router.get("/users", summary="Users")
async def users(request: Request) -> list[dict[str, Any]]:
    """Every user with department and roles (never a password)."""
    _admin(request)
    return await _in_transaction(request, lambda c, _: accounts.list_users(c))


@router.post("/users", status_code=201, summary="Create a user or service account")
async def add_user(request: Request, body: NewUser) -> dict[str, Any]:
    """A new user; a person has a password, a service account (``service``) keys only."""
    _admin(request)
    user_id = await _in_transaction(request, lambda c, a: accounts.add_user(
        c, a, body.username, roles=tuple(body.roles), department=body.department,
        password=body.password, service=body.service, display_name=body.display_name,
    ))  # fmt: skip
    return {"id": user_id, "username": body.username}


@router.patch("/users/{username}", summary="Change a user's roles, password or state")
async def change_user(request: Request, username: str, body: UserChange) -> dict[str, str]:
    """Roles, a new password (revokes their tokens), or disable/enable (``active``)."""
    _admin(request)

    def change(conn: Connection, actor: Actor) -> None:
        if body.roles is not None:
            accounts.set_roles(conn, actor, username, tuple(body.roles))
        if body.password is not None:
            accounts.set_password(conn, actor, username, body.password)
        if body.active is not None:
            accounts.set_active(conn, actor, username, active=body.active)

    await _in_transaction(request, change)
    return {"username": username}


@router.post("/users/{username}/keys", status_code=201, summary="Create an API key")
async def add_key(request: Request, username: str, body: NewKey) -> dict[str, Any]:
    """A key for the user (an admin's, or one's own): the only time it is shown."""
    seen = view_of(request)
    if seen.principal.username != username:
        _admin(request)
    elif seen.principal.anonymous:
        msg = "creating a key needs a key or a token"
        raise UnauthorizedError(msg)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=body.days) if body.days else None
    key = await _in_transaction(request, lambda c, a: accounts.create_key(
        c, a, username, name=body.name, expires=expires
    ))  # fmt: skip
    return {"key": key, "prefix": key.split("_")[1], "expires": expires}


@router.delete("/keys/{prefix}", summary="Revoke an API key")
async def revoke_key(request: Request, prefix: str) -> dict[str, str]:
    """Revoke a key by its prefix (an admin any key, a user their own)."""
    seen = view_of(request)
    key = request.app.state.directory.keys.get(prefix)
    if key is None or key.user_id != seen.principal.user_id:
        _admin(request)
    await _in_transaction(request, lambda c, a: accounts.revoke_key(c, a, prefix))
    return {"prefix": prefix, "state": "revoked"}


@router.get("/grants", summary="Grants")
async def grants(request: Request, collection: str | None = None) -> list[dict[str, Any]]:
    """Grants of one collection (its administrators) or all (admins)."""
    if collection is None:
        _admin(request)
    else:
        view_of(request).administrable(collection)
    return await _in_transaction(request, lambda c, _: accounts.list_grants(c, collection))


@router.post("/grants", status_code=201, summary="Grant a privilege on a collection")
async def add_grant(request: Request, body: NewGrant) -> dict[str, Any]:
    """Read, write or admin on a collection, optionally on the rows of a CQL2 filter and a
    lon/lat polygon only."""
    view_of(request).administrable(body.collection)
    grant_id = await _in_transaction(request, lambda c, a: accounts.add_grant(
        c, a, body.collection, body.grantee, body.privilege, row_filter=body.filter,
        area_wkt=body.area,
    ))  # fmt: skip
    return {"id": grant_id, **body.model_dump()}


@router.delete("/grants/{grant_id}", summary="Revoke a grant")
async def revoke_grant(request: Request, grant_id: int) -> dict[str, Any]:
    """Remove a grant (its collection's administrators)."""
    found = next((g for gs in request.app.state.directory.grants.values() for g in gs
                  if g.id == grant_id), None)  # fmt: skip
    if found is None:
        _admin(request)
    else:
        view_of(request).administrable(found.collection_id)
    await _in_transaction(request, lambda c, a: accounts.revoke_grant(c, a, grant_id))
    return {"id": grant_id, "state": "revoked"}


@router.patch("/collections/{collection_id}", summary="Who may see a collection")
async def visibility(request: Request, collection_id: str, body: Visibility) -> dict[str, Any]:
    """Make a collection public or private, or give it to a department."""
    view_of(request).administrable(collection_id)
    await _in_transaction(request, lambda c, a: accounts.set_visibility(
        c, a, collection_id, public=body.public, department=body.department
    ))  # fmt: skip
    return {"id": collection_id, **body.model_dump()}


@router.get("/audit", summary="The audit log")
async def audit_log(
    request: Request,
    collection: str | None = None,
    actor: str | None = None,
    action: str | None = Query(None, description="e.g. feature.update, ingest, grant.add"),
    since: dt.datetime | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Who did what, when and from where, newest first. A steward sees the rows of the
    collections they administer; an admin every row."""
    seen = view_of(request)
    if seen.principal.anonymous:
        msg = "the audit log needs a key or a token"
        raise UnauthorizedError(msg)
    if seen.principal.admin:
        allowed = None
    elif "steward" in seen.principal.roles:
        allowed = [cid for cid, a in seen.rights.items() if a.level >= ADMIN]
    else:
        msg = "the audit log is for stewards and admins"
        raise ForbiddenError(msg)

    def read(conn: Connection, _: Actor) -> list[dict[str, Any]]:
        rows = conn.execute(
            text("SELECT id, at, actor, user_id, host(remote_addr) AS address, action, "
                 "collection_id, feature_ids, version_before, version_after, details "
                 "FROM platform.audit_log WHERE (CAST(:c AS text) IS NULL OR collection_id = :c) "
                 "AND (CAST(:who AS text) IS NULL OR actor = :who) "
                 "AND (CAST(:act AS text) IS NULL OR action = :act) "
                 "AND (CAST(:since AS timestamptz) IS NULL OR at >= :since) "
                 "AND (CAST(:allowed AS text[]) IS NULL OR collection_id = ANY(:allowed)) "
                 "ORDER BY id DESC LIMIT :limit"),
            {"c": collection, "who": actor, "act": action, "since": since,
             "allowed": allowed, "limit": limit},
        )  # fmt: skip
        return [dict(r) for r in rows.mappings()]

    entries = await _in_transaction(request, read)
    return {"entries": entries, "numberReturned": len(entries)}
