"""Who may do what: principals, accounts, keys, grants, and the rows a grant covers.

:class:`Directory` is a snapshot of accounts, keys and grants (reloaded by every worker on
``NOTIFY spatial_access``, migration 0005). :mod:`layers.access` applies these rules to a
catalog snapshot: each principal's view.

Rules:

- the ``admin`` role may do everything, everywhere;
- a public collection (``is_public``) is readable by everyone, anonymous callers included;
- a ``steward`` administers the collections their department owns;
- a grant gives ``read``, ``write`` or ``admin`` on one collection to everyone
  (``public``), a department, a role or a user; a role caps what grants give its holder
  (viewer: read, editor: write, steward: admin), and anonymous callers only ever read;
- a grant may carry a row filter (CQL2 text, e.g. ``district = 3``) and an area (a
  polygon in lon/lat): the grant then covers only the rows that match both. Of several
  grants, any one without a filter gives every row; otherwise the rows of each are joined.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, func, select

from spatial import features, filters
from spatial.catalog import CollectionRecord
from spatial.errors import InvalidInputError, NotFoundError

READ, WRITE, ADMIN = 1, 2, 3
LEVELS = {"read": READ, "write": WRITE, "admin": ADMIN}
ROLE_CAPS = {"viewer": READ, "editor": WRITE, "steward": ADMIN, "admin": ADMIN}
GRANTEE_KINDS = ("public", "department", "role", "user")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a signed-in user or service account, or nobody (anonymous)."""

    user_id: int | None = None
    username: str = "anonymous"
    department: str | None = None
    roles: frozenset[str] = frozenset()
    service: bool = False

    @property
    def anonymous(self) -> bool:
        """True for a caller that presented no credentials."""
        return self.user_id is None

    @property
    def admin(self) -> bool:
        """True for holders of the ``admin`` role."""
        return "admin" in self.roles

    @property
    def cap(self) -> int:
        """The most any grant may give this principal."""
        if self.anonymous:
            return READ
        return max((ROLE_CAPS.get(r, READ) for r in self.roles), default=READ)


ANONYMOUS = Principal()


@dataclass(frozen=True)
class Grant:
    """One row of ``platform.grants``."""

    id: int
    collection_id: str
    grantee_kind: str
    grantee: str
    privilege: str
    row_filter: str | None = None
    area_wkt: str | None = None

    def applies_to(self, who: Principal) -> bool:
        """Whether the grant names this principal (by everyone, department, role, user)."""
        if self.grantee_kind == "public":
            return True
        if who.anonymous:
            return False
        if self.grantee_kind == "department":
            return who.department == self.grantee
        if self.grantee_kind == "role":
            return self.grantee in who.roles
        return self.grantee in {who.username, str(who.user_id)}


@dataclass(frozen=True)
class Account:
    """A user as the access snapshot holds it."""

    id: int
    username: str
    department: str | None
    roles: frozenset[str]
    active: bool
    service: bool
    token_version: int
    password_hash: str | None

    def principal(self) -> Principal:
        """The principal this account acts as."""
        return Principal(self.id, self.username, self.department, self.roles, self.service)


@dataclass(frozen=True)
class Key:
    """An API key as the snapshot holds it (never its secret)."""

    id: int
    prefix: str
    user_id: int
    secret_sha256: bytes
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class Directory:
    """Accounts, keys and grants: a snapshot that never changes under a reader."""

    accounts: Mapping[int, Account] = field(default_factory=lambda: MappingProxyType({}))
    keys: Mapping[str, Key] = field(default_factory=lambda: MappingProxyType({}))
    grants: Mapping[str, tuple[Grant, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def load(cls, conn: Connection) -> Directory:
        """Read accounts, keys and grants (statements built over :mod:`spatial.models`)."""
        # Imported here: every ``spatial`` command imports this module (through the
        # accounts), and the ORM with geoalchemy2 cost about a fifth of a second.
        from spatial import models  # noqa: PLC0415 - heavy (the ORM, geoalchemy2)

        user, key, grant, user_role = models.User, models.ApiKey, models.Grant, models.UserRole
        roles: dict[int, set[str]] = {}
        for user_id, role in conn.execute(select(user_role.user_id, user_role.role)):
            roles.setdefault(user_id, set()).add(role)
        accounts = {
            row.id: Account(row.id, row.username, row.department_id,
                            frozenset(roles.get(row.id, ())), row.active, row.is_service,
                            row.token_version, row.password_hash)
            for row in conn.execute(select(
                user.id, user.username, user.department_id, user.active, user.is_service,
                user.token_version, user.password_hash,
            ))
        }  # fmt: skip
        keys = {
            row.prefix: Key(row.id, row.prefix, row.user_id, bytes(row.secret_sha256),
                            row.expires_at, row.revoked_at)
            for row in conn.execute(select(
                key.id, key.prefix, key.user_id, key.secret_sha256, key.expires_at,
                key.revoked_at,
            ))
        }  # fmt: skip
        grants: dict[str, list[Grant]] = {}
        for row in conn.execute(
            select(grant.id, grant.collection_id, grant.grantee_kind, grant.grantee,
                   grant.privilege, grant.row_filter,
                   func.ST_AsText(grant.row_filter_area).label("area")).order_by(grant.id)
        ):  # fmt: skip
            grants.setdefault(row.collection_id, []).append(
                Grant(row.id, row.collection_id, row.grantee_kind, row.grantee, row.privilege,
                      row.row_filter, row.area)
            )  # fmt: skip
        return cls(
            MappingProxyType(accounts),
            MappingProxyType(keys),
            MappingProxyType({k: tuple(v) for k, v in grants.items()}),
        )

    def by_username(self, username: str) -> Account | None:
        """The account with that user name, if any."""
        return next((a for a in self.accounts.values() if a.username == username), None)


def grant_rows(grant: Grant, record: CollectionRecord) -> features.Rows | None:
    """A grant's rows (None: every row)."""
    if grant.row_filter is None and grant.area_wkt is None:
        return None
    try:
        return features.Rows.of(row_condition(record, grant.row_filter, grant.area_wkt))
    except (InvalidInputError, NotFoundError):
        # A filter naming a column the collection no longer has gives no rows.
        return features.NO_ROWS


class _Literals(features.Params):
    """Values written into the SQL as literals quoted by the driver, not placeholders:
    a restriction is part of statement texts that are cached and shared."""

    def bind(self, value: Any) -> sql.Composable:
        return sql.Literal(value)


def row_condition(
    record: CollectionRecord, row_filter: str | None, area_wkt: str | None
) -> sql.Composable:
    """The SQL condition over ``t`` of a row filter (CQL2 text) and an area (lon/lat WKT),
    its values as literals.

    Raises:
        InvalidInputError: the filter does not parse or names properties the collection
            does not have, or the area is not a polygon.
    """
    layer = features.LayerSchema.of(record)
    literals = _Literals()
    parts: list[sql.Composable] = []
    if row_filter:
        parts.append(filters.compile_filter(filters.parse(row_filter), layer, literals))
    if area_wkt:
        tree = {"op": "s_intersects", "args": [{"property": "geometry"}, _polygon(area_wkt)]}
        parts.append(filters.compile_filter(tree, layer, literals))
    return sql.SQL(" AND ").join(sql.SQL("({})").format(p) for p in parts)


def _polygon(wkt: str) -> dict[str, Any]:
    import shapely  # noqa: PLC0415 - only for grants with an area

    try:
        shape = shapely.from_wkt(wkt)
    except shapely.errors.GEOSException as exc:
        msg = f"area: not WKT ({exc})"
        raise InvalidInputError(msg) from exc
    if shape.geom_type not in {"Polygon", "MultiPolygon"} or shape.is_empty:
        msg = f"area: expected a polygon in lon/lat, found {shape.geom_type}"
        raise InvalidInputError(msg)
    geometry: dict[str, Any] = shapely.geometry.mapping(shape)
    return geometry
