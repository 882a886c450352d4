"""The admin API: departments, users, keys, grants, who may see a collection, the audit log.

Accounts and departments are the ``admin`` role's; grants and visibility are for whoever
administers the collection (an admin, or a steward of the department that owns it); the
audit log is readable by stewards (the rows of the collections they administer) and admins
(every row). Each change is the same function the ``spatial user`` commands call
(:mod:`spatial.accounts`), audited with the caller's name and address.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from api.deps import ActorDep, Admin, Db, SignedIn, Steward
from spatial import accounts, audit

router = APIRouter(prefix="/admin", tags=["Admin"])


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


@router.get("/departments", summary="Departments")
async def departments(_: Admin, db: Db) -> list[dict[str, Any]]:
    """Every department."""
    return await db.run_core(accounts.list_departments)


@router.post("/departments", status_code=201, summary="Create a department")
async def add_department(body: NewDepartment, _: Admin, actor: ActorDep, db: Db) -> dict[str, str]:
    """A new department."""
    await db.run_core(lambda c: accounts.add_department(c, actor, body.id, body.name))
    return {"id": body.id, "name": body.name}


@router.get("/users", summary="Users")
async def users(_: Admin, db: Db) -> list[dict[str, Any]]:
    """Every user with department and roles (never a password)."""
    return await db.run_core(accounts.list_users)


@router.post("/users", status_code=201, summary="Create a user or service account")
async def add_user(body: NewUser, _: Admin, actor: ActorDep, db: Db) -> dict[str, Any]:
    """A new user; a person has a password, a service account (``service``) keys only."""
    user_id = await db.run_core(lambda c: accounts.add_user(
        c, actor, body.username, roles=tuple(body.roles), department=body.department,
        password=body.password, service=body.service, display_name=body.display_name,
    ))  # fmt: skip
    return {"id": user_id, "username": body.username}


@router.patch("/users/{username}", summary="Change a user's roles, password or state")
async def change_user(
    username: str, body: UserChange, _: Admin, actor: ActorDep, db: Db
) -> dict[str, str]:
    """Roles, a new password (revokes their tokens), or disable/enable (``active``)."""

    def change(conn: Connection) -> None:
        if body.roles is not None:
            accounts.set_roles(conn, actor, username, tuple(body.roles))
        if body.password is not None:
            accounts.set_password(conn, actor, username, body.password)
        if body.active is not None:
            accounts.set_active(conn, actor, username, active=body.active)

    await db.run_core(change)
    return {"username": username}


@router.post("/users/{username}/keys", status_code=201, summary="Create an API key")
async def add_key(
    username: str, body: NewKey, seen: SignedIn, actor: ActorDep, db: Db
) -> dict[str, Any]:
    """A key for the user (an admin's, or one's own): the only time it is shown."""
    if seen.principal.username != username:
        seen.admin("creating another user's key")
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=body.days) if body.days else None
    key = await db.run_core(lambda c: accounts.create_key(
        c, actor, username, name=body.name, expires=expires
    ))  # fmt: skip
    return {"key": key, "prefix": key.split("_")[1], "expires": expires}


@router.delete("/keys/{prefix}", summary="Revoke an API key")
async def revoke_key(
    request: Request, prefix: str, seen: SignedIn, actor: ActorDep, db: Db
) -> dict[str, str]:
    """Revoke a key by its prefix (an admin any key, a user their own)."""
    key = request.app.state.directory.keys.get(prefix)
    if key is None or key.user_id != seen.principal.user_id:
        seen.admin("revoking another user's key")
    await db.run_core(lambda c: accounts.revoke_key(c, actor, prefix))
    return {"prefix": prefix, "state": "revoked"}


@router.get("/grants", summary="Grants")
async def grants(seen: SignedIn, db: Db, collection: str | None = None) -> list[dict[str, Any]]:
    """Grants of one collection (its administrators) or all (admins)."""
    if collection is None:
        seen.admin("the list of every grant")
    else:
        seen.administrable(collection)
    return await db.run_core(lambda c: accounts.list_grants(c, collection))


@router.post("/grants", status_code=201, summary="Grant a privilege on a collection")
async def add_grant(body: NewGrant, seen: SignedIn, actor: ActorDep, db: Db) -> dict[str, Any]:
    """Read, write or admin on a collection, optionally on the rows of a CQL2 filter and a
    lon/lat polygon only."""
    seen.administrable(body.collection)
    grant_id = await db.run_core(lambda c: accounts.add_grant(
        c, actor, body.collection, body.grantee, body.privilege, row_filter=body.filter,
        area_wkt=body.area,
    ))  # fmt: skip
    return {"id": grant_id, **body.model_dump()}


@router.delete("/grants/{grant_id}", summary="Revoke a grant")
async def revoke_grant(
    request: Request, grant_id: int, seen: SignedIn, actor: ActorDep, db: Db
) -> dict[str, Any]:
    """Remove a grant (its collection's administrators)."""
    found = next((g for gs in request.app.state.directory.grants.values() for g in gs
                  if g.id == grant_id), None)  # fmt: skip
    if found is None:
        seen.admin("revoking a grant")
    else:
        seen.administrable(found.collection_id)
    await db.run_core(lambda c: accounts.revoke_grant(c, actor, grant_id))
    return {"id": grant_id, "state": "revoked"}


@router.patch("/collections/{collection_id}", summary="Who may see a collection")
async def visibility(
    collection_id: str, body: Visibility, seen: SignedIn, actor: ActorDep, db: Db
) -> dict[str, Any]:
    """Make a collection public or private, or give it to a department."""
    seen.administrable(collection_id)
    await db.run_core(lambda c: accounts.set_visibility(
        c, actor, collection_id, public=body.public, department=body.department
    ))  # fmt: skip
    return {"id": collection_id, **body.model_dump()}


@router.get("/audit", summary="The audit log")
async def audit_log(
    seen: Steward,
    db: Db,
    collection: str | None = None,
    actor: str | None = None,
    action: str | None = Query(None, description="e.g. feature.update, ingest, grant.add"),
    since: dt.datetime | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Who did what, when and from where, newest first. A steward sees the rows of the
    collections they administer; an admin every row."""
    found = await db.run_core(lambda c: audit.entries(
        c, collection_id=collection, actor=actor, action=action, since=since,
        allowed=seen.administered(), limit=limit,
    ))  # fmt: skip
    return {"entries": found, "numberReturned": len(found)}
