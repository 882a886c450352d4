"""Departments, users, roles, API keys, bearer tokens and grants: the writes, and signing in.

Passwords are hashed with Argon2id (argon2-cffi). An API key is ``s3s_<prefix>_<secret>``:
the prefix finds it, only the SHA-256 of the secret is stored (the secret is 32 random
bytes, so a fast hash is as safe as a slow one here), and it is shown once. Bearer tokens
are JWTs (HS256) signed with ``SPATIAL_SECRET_KEY``, carrying the user's id and token
version; raising the version (a new password, a disabled account) revokes them all.

Every change here is written to the audit log by the same transaction, and every table it
touches notifies the API workers (``spatial_access``), which reload their snapshot
(:class:`spatial.access.Directory`).

The statements are SQLAlchemy Core built over the models of :mod:`spatial.models`, values
bound; a grant's area goes through geoalchemy2 (its ``Geometry`` column and the
``ST_GeomFromText``/``ST_Multi``/``ST_AsText`` functions). The models are imported on first
use (:func:`_tables`), not with this module: every ``spatial`` command imports it, the
benchmarked ``spatial ingest vector`` included, and the ORM with geoalchemy2 would add
about a fifth of a second to each start-up (figures in :mod:`spatial.models`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import (
    ARRAY,
    Boolean,
    Connection,
    Interval,
    Text,
    bindparam,
    cast,
    delete,
    extract,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import INET, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as upsert

from spatial.access import GRANTEE_KINDS, LEVELS, ROLE_CAPS, Account, Directory, row_condition
from spatial.audit import Actor, audit
from spatial.catalog import get_collection
from spatial.errors import ConflictError, InvalidInputError, NotFoundError, UnauthorizedError

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from spatial import models

KEY_PREFIX = "s3s"
AUDIENCE = "spatial"
_HASHER = PasswordHasher()
_NAME = re.compile(r"[a-z][a-z0-9_.-]{1,62}")
_KEY = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{8}})_([A-Za-z0-9_-]{{43}})")
MIN_PASSWORD = 10


@dataclass(frozen=True)
class _Tables:
    """The models this module's statements are built from."""

    departments: type[models.Department]
    users: type[models.User]
    user_roles: type[models.UserRole]
    api_keys: type[models.ApiKey]
    grants: type[models.Grant]
    collections: type[models.Collection]
    auth_failures: type[models.AuthFailure]


@cache
def _tables() -> _Tables:
    """The models, imported on the first statement (see the module's docstring); importing
    them also registers geoalchemy2's functions, so ``func.ST_*`` are geoalchemy2's."""
    from spatial import models  # noqa: PLC0415 - heavy (the ORM, geoalchemy2): off every start-up

    return _Tables(
        models.Department, models.User, models.UserRole, models.ApiKey, models.Grant,
        models.Collection, models.AuthFailure,
    )  # fmt: skip


def _inet(address: str | None) -> ColumnElement[Any]:
    """A client address bound as ``inet``; None stays a bound NULL (``= NULL`` matches no
    row, where SQLAlchemy would write ``IS NULL`` for a bare None)."""
    return cast(bindparam("address", address, type_=Text), INET)


# -- departments and users ----------------------------------------------------------------


def add_department(conn: Connection, actor: Actor, dept_id: str, name: str) -> None:
    """Create a department (``dept_id``: a short lower-case code, e.g. ``land``).

    Raises:
        InvalidInputError: a malformed id. ConflictError: the id exists.
    """
    _check_name(dept_id, "department id")
    departments = _tables().departments
    if conn.execute(select(departments.id).where(departments.id == dept_id)).first():
        msg = f"department {dept_id!r} already exists"
        raise ConflictError(msg)
    conn.execute(insert(departments).values(id=dept_id, name=name))
    audit(conn, actor, "department.add", details={"department": dept_id, "name": name})


def add_user(
    conn: Connection, actor: Actor, username: str, *, roles: tuple[str, ...],
    department: str | None = None, password: str | None = None, service: bool = False,
    display_name: str | None = None,
) -> int:  # fmt: skip
    """Create a user or (``service``) a service account; returns its id.

    Raises:
        InvalidInputError: a malformed name, an unknown role or department, or a short
            password. ConflictError: the user name is taken.
    """
    _check_name(username, "user name")
    _check_roles(roles)
    if department is not None:
        _department(conn, department)
    users = _tables().users
    if conn.execute(select(users.id).where(users.username == username)).first():
        msg = f"user {username!r} already exists"
        raise ConflictError(msg)
    digest = hash_password(password) if password is not None else None
    user_id = int(conn.execute(
        insert(users).values(username=username, display_name=display_name,
                             department_id=department, password_hash=digest, is_service=service)
        .returning(users.id)
    ).scalar_one())  # fmt: skip
    _add_roles(conn, user_id, roles)
    details = {"user": username, "roles": list(roles), "department": department,
               "service": service}  # fmt: skip
    audit(conn, actor, "user.add", details=details)
    return user_id


def set_password(conn: Connection, actor: Actor, username: str, password: str) -> None:
    """Set a user's password; their bearer tokens stop working."""
    user_id = _user_id(conn, username)
    _update_user(conn, user_id, password_hash=hash_password(password))
    audit(conn, actor, "user.password", details={"user": username})


def set_active(conn: Connection, actor: Actor, username: str, *, active: bool) -> None:
    """Enable or disable a user; disabling revokes their tokens (their keys stop working
    while they are disabled)."""
    user_id = _user_id(conn, username)
    _update_user(conn, user_id, active=active)
    audit(conn, actor, "user.enable" if active else "user.disable", details={"user": username})


def _update_user(conn: Connection, user_id: int, **values: Any) -> None:
    """Set columns of a user and raise their token version (revoking their tokens)."""
    users = _tables().users
    conn.execute(
        update(users).where(users.id == user_id)
        .values(**values, token_version=users.token_version + 1, updated_at=func.now())
    )  # fmt: skip


def set_roles(conn: Connection, actor: Actor, username: str, roles: tuple[str, ...]) -> None:
    """Replace a user's roles."""
    _check_roles(roles)
    user_id = _user_id(conn, username)
    user_roles = _tables().user_roles
    conn.execute(delete(user_roles).where(user_roles.user_id == user_id))
    _add_roles(conn, user_id, roles)
    audit(conn, actor, "user.roles", details={"user": username, "roles": list(roles)})


def _add_roles(conn: Connection, user_id: int, roles: tuple[str, ...]) -> None:
    if roles:
        conn.execute(insert(_tables().user_roles),
                     [{"user_id": user_id, "role": role} for role in roles])  # fmt: skip


def list_departments(conn: Connection) -> list[dict[str, Any]]:
    """Every department (id, name), by id."""
    departments = _tables().departments
    rows = conn.execute(select(departments.id, departments.name).order_by(departments.id))
    return [dict(r) for r in rows.mappings()]


def list_users(conn: Connection) -> list[dict[str, Any]]:
    """Every user with roles and department (never a password hash)."""
    tables = _tables()
    u, r = tables.users, tables.user_roles
    roles = func.array_agg(aggregate_order_by(r.role, r.role)).filter(r.role.is_not(None))
    rows = conn.execute(
        select(u.id, u.username, u.display_name, u.department_id.label("department"),
               u.is_service.label("service"), u.active,
               func.coalesce(roles, cast([], ARRAY(Text))).label("roles"))
        .outerjoin(r, r.user_id == u.id).group_by(u.id).order_by(u.username)
    ).mappings()  # fmt: skip
    return [dict(row) for row in rows]


def hash_password(password: str) -> str:
    """Argon2id hash of a password of at least :data:`MIN_PASSWORD` characters.

    Raises:
        InvalidInputError: the password is too short.
    """
    if len(password) < MIN_PASSWORD:
        msg = f"a password has at least {MIN_PASSWORD} characters"
        raise InvalidInputError(msg)
    return _HASHER.hash(password)


def check_password(account: Account | None, password: str) -> bool:
    """Whether the password is the account's (always spends a hash's time, so a missing
    user answers as slowly as a wrong password)."""
    stored = account.password_hash if account is not None else None
    ok: bool = False
    try:
        ok = _HASHER.verify(stored or _dummy_hash(), password)
    except (VerifyMismatchError, InvalidHashError):
        ok = False
    return ok and account is not None and account.active and stored is not None


@cache
def _dummy_hash() -> str:
    """A hash to spend a check's time on when the user does not exist (made on first use:
    at import it cost every ``spatial`` command a hash)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


# -- API keys ---------------------------------------------------------------------------------


def create_key(
    conn: Connection, actor: Actor, username: str, *, name: str = "",
    expires: dt.datetime | None = None,
) -> str:  # fmt: skip
    """A new API key for the user: the only time its secret is seen."""
    user_id = _user_id(conn, username)
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    conn.execute(insert(_tables().api_keys).values(
        user_id=user_id, prefix=prefix, secret_sha256=_sha256(secret), name=name,
        expires_at=expires,
    ))  # fmt: skip
    audit(conn, actor, "key.create", details={"user": username, "prefix": prefix, "name": name})
    return f"{KEY_PREFIX}_{prefix}_{secret}"


def revoke_key(conn: Connection, actor: Actor, prefix: str) -> None:
    """Revoke a key by its prefix (the 8 hex digits after ``s3s_``).

    Raises:
        NotFoundError: no such key.
    """
    keys = _tables().api_keys
    done = conn.execute(
        update(keys).where(keys.prefix == prefix, keys.revoked_at.is_(None))
        .values(revoked_at=func.now()).returning(keys.id)
    ).first()  # fmt: skip
    if done is None:
        msg = f"no active key with prefix {prefix!r}"
        raise NotFoundError(msg)
    audit(conn, actor, "key.revoke", details={"prefix": prefix})


def key_account(directory: Directory, key: str, now: dt.datetime | None = None) -> Account:
    """The account an API key acts for.

    Raises:
        UnauthorizedError: a malformed, unknown, expired or revoked key, or a disabled
            account.
    """
    match = _KEY.fullmatch(key.strip())
    found = directory.keys.get(match[1]) if match else None
    if match is None or found is None or not hmac.compare_digest(found.secret_sha256,
                                                                 _sha256(match[2])):  # fmt: skip
        msg = "the API key is not valid"
        raise UnauthorizedError(msg)
    now = now or dt.datetime.now(dt.UTC)
    if found.revoked_at is not None:
        msg = "the API key was revoked"
        raise UnauthorizedError(msg)
    if found.expires_at is not None and found.expires_at <= now:
        msg = "the API key has expired"
        raise UnauthorizedError(msg)
    return _active(directory, found.user_id)


def _sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


# -- bearer tokens ----------------------------------------------------------------------------


def issue_token(account: Account, secret: str, minutes: int, issuer: str = AUDIENCE) -> str:
    """A signed bearer token for the account, valid ``minutes``."""
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": str(account.id), "name": account.username, "ver": account.token_version,
              "iat": now, "exp": now + dt.timedelta(minutes=minutes), "aud": AUDIENCE,
              "iss": issuer}  # fmt: skip
    return jwt.encode(claims, secret, algorithm="HS256")


def token_account(directory: Directory, token: str, secret: str) -> Account:
    """The account a platform bearer token was issued to.

    Raises:
        UnauthorizedError: a token that is malformed, signed with another key, for another
            audience, expired, or revoked (its account disabled or its password changed).
    """
    claims = claims_of(token, secret, algorithms=("HS256",), audience=AUDIENCE,
                       require=("exp", "sub", "aud"))  # fmt: skip
    account = _active(directory, int(claims["sub"]) if str(claims["sub"]).isdigit() else -1)
    if claims.get("ver") != account.token_version:
        msg = "the bearer token was revoked; sign in again"
        raise UnauthorizedError(msg)
    return account


def claims_of(
    token: str, key: Any, *, algorithms: tuple[str, ...], audience: str | None,
    issuer: str | None = None, require: tuple[str, ...] = ("exp",),
) -> dict[str, Any]:  # fmt: skip
    """A JWT's claims once its signature, audience, issuer and expiry are checked.

    Raises:
        UnauthorizedError: saying which check failed.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=list(algorithms), audience=audience, issuer=issuer,
            options={"require": list(require)},
        )  # fmt: skip
    except jwt.ExpiredSignatureError as exc:
        msg = "the bearer token has expired; sign in again"
        raise UnauthorizedError(msg) from exc
    except jwt.InvalidAudienceError as exc:
        msg = "the bearer token is for another audience"
        raise UnauthorizedError(msg) from exc
    except jwt.InvalidTokenError as exc:
        msg = f"the bearer token is not valid ({exc})"
        raise UnauthorizedError(msg) from exc
    return claims


def _active(directory: Directory, user_id: int) -> Account:
    account = directory.accounts.get(user_id)
    if account is None or not account.active:
        msg = "the account is unknown or disabled"
        raise UnauthorizedError(msg)
    return account


# -- grants -----------------------------------------------------------------------------------


def add_grant(
    conn: Connection, actor: Actor, collection_id: str, grantee: str, privilege: str, *,
    row_filter: str | None = None, area_wkt: str | None = None,
) -> int:  # fmt: skip
    """Grant ``privilege`` (read, write, admin) on a collection to ``grantee``:
    ``public``, ``department:ID``, ``role:NAME`` or ``user:NAME``; optionally only the rows
    that match ``row_filter`` (CQL2 text) and lie in ``area_wkt`` (a lon/lat polygon).
    Returns the grant's id.

    Raises:
        InvalidInputError: a bad grantee, privilege, filter or area.
        NotFoundError: no such collection, department or user.
    """
    record = get_collection(conn, collection_id)
    kind, _, name = grantee.partition(":")
    if kind not in GRANTEE_KINDS or (kind == "public") != (name == ""):
        msg = f"grantee {grantee!r}: use public, department:ID, role:NAME or user:NAME"
        raise InvalidInputError(msg)
    if privilege not in LEVELS:
        msg = f"privilege {privilege!r}: use read, write or admin"
        raise InvalidInputError(msg)
    if kind == "department":
        _department(conn, name)
    elif kind == "role":
        _check_roles((name,))
    elif kind == "user":
        _user_id(conn, name)
    if row_filter is not None or area_wkt is not None:
        row_condition(record, row_filter, area_wkt)  # refuses what would not compile
    grants = _tables().grants
    # The area as bound WKT (a NULL gives no area); ST_Multi: the column holds multipolygons.
    area = func.ST_Multi(func.ST_GeomFromText(bindparam("area", area_wkt, type_=Text), 4326))
    add = upsert(grants).values(
        collection_id=collection_id,
        grantee_kind=kind,
        grantee=name,
        privilege=privilege,
        row_filter=row_filter,
        row_filter_area=area,
    )
    grant_id = int(conn.execute(
        add.on_conflict_do_update(
            index_elements=[grants.collection_id, grants.grantee_kind, grants.grantee,
                            grants.privilege],
            set_={"row_filter": add.excluded.row_filter,
                  "row_filter_area": add.excluded.row_filter_area},
        ).returning(grants.id)
    ).scalar_one())  # fmt: skip
    audit(conn, actor, "grant.add", collection_id=collection_id,
          details={"grant": grant_id, "grantee": grantee, "privilege": privilege,
                   "row_filter": row_filter, "area": area_wkt})  # fmt: skip
    return grant_id


def revoke_grant(conn: Connection, actor: Actor, grant_id: int) -> None:
    """Remove a grant.

    Raises:
        NotFoundError: no such grant.
    """
    grants = _tables().grants
    row = conn.execute(
        delete(grants).where(grants.id == grant_id).returning(grants.collection_id)
    ).first()
    if row is None:
        msg = f"no grant {grant_id}"
        raise NotFoundError(msg)
    audit(conn, actor, "grant.revoke", collection_id=row[0], details={"grant": grant_id})


def list_grants(conn: Connection, collection_id: str | None = None) -> list[dict[str, Any]]:
    """Grants, of one collection or all."""
    g = _tables().grants
    query = select(g.id, g.collection_id, g.grantee_kind, g.grantee, g.privilege, g.row_filter,
                   func.ST_AsText(g.row_filter_area).label("area"))  # fmt: skip
    if collection_id is not None:
        query = query.where(g.collection_id == collection_id)
    rows = conn.execute(query.order_by(g.collection_id, g.id)).mappings()
    return [dict(r) for r in rows]


def set_visibility(
    conn: Connection, actor: Actor, collection_id: str, *, public: bool | None = None,
    department: str | None = None,
) -> None:  # fmt: skip
    """Make a collection public (or not) and set the department that owns it."""
    get_collection(conn, collection_id)
    if department is not None:
        _department(conn, department)
    c = _tables().collections
    conn.execute(
        update(c).where(c.id == collection_id).values(
            is_public=func.coalesce(bindparam("public", public, type_=Boolean), c.is_public),
            owner_department=func.coalesce(bindparam("department", department, type_=Text),
                                           c.owner_department),
            updated_at=func.now(),
        )
    )  # fmt: skip
    audit(
        conn,
        actor,
        "collection.visibility",
        collection_id=collection_id,
        details={"public": public, "department": department},
    )


# -- checks -----------------------------------------------------------------------------------


def _check_name(name: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        msg = (f"{what} {name!r}: 2-63 lower-case letters, digits, '_', '.' or '-', "
               "starting with a letter")  # fmt: skip
        raise InvalidInputError(msg)


def _check_roles(roles: tuple[str, ...]) -> None:
    unknown = [r for r in roles if r not in ROLE_CAPS]
    if unknown:
        msg = f"unknown role {unknown[0]!r}; roles are: {', '.join(ROLE_CAPS)}"
        raise InvalidInputError(msg)


def _department(conn: Connection, dept_id: str) -> None:
    departments = _tables().departments
    if not conn.execute(select(departments.id).where(departments.id == dept_id)).first():
        msg = f"department {dept_id!r} does not exist"
        raise NotFoundError(msg)


def _user_id(conn: Connection, username: str) -> int:
    users = _tables().users
    row = conn.execute(select(users.id).where(users.username == username)).first()
    if row is None:
        msg = f"user {username!r} does not exist"
        raise NotFoundError(msg)
    return int(row[0])


def record_failure(conn: Connection, kind: str, subject: str, address: str | None) -> None:
    """Record a failed sign-in (``password``) or an unknown key (``key``), for every
    worker's lockout (:func:`recent_failures`)."""
    failures = _tables().auth_failures
    conn.execute(insert(failures).values(kind=kind, subject=subject, remote_addr=_inet(address)))


def recent_failures(
    conn: Connection, subject: str | None, address: str | None, window_s: float
) -> tuple[int, int, float, float]:
    """Failures within the last ``window_s`` seconds: (of the user name, of the address,
    age in seconds of the user name's oldest, of the address's oldest)."""
    f = _tables().auth_failures
    # Bound, so that a None compares as ``= NULL`` (no row), never as ``IS NULL``.
    of_subject = f.subject == bindparam("subject", subject, type_=Text)
    of_address = f.remote_addr == _inet(address)
    row = conn.execute(
        select(
            func.count().filter(of_subject),
            func.count().filter(of_address),
            func.coalesce(extract("epoch", func.now() - func.min(f.at).filter(of_subject)), 0),
            func.coalesce(extract("epoch", func.now() - func.min(f.at).filter(of_address)), 0),
        ).where(
            f.at > func.now() - bindparam("window", dt.timedelta(seconds=window_s),
                                          type_=Interval),
            or_(of_subject, of_address),
        )
    ).first()  # fmt: skip
    return (int(row[0]), int(row[1]), float(row[2]), float(row[3])) if row else (0, 0, 0.0, 0.0)
