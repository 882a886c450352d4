"""The audit log: who changed what, when and from where (``platform.audit_log``).

The log is append-only for everyone, the platform's own database role included (a trigger
refuses UPDATE, DELETE and TRUNCATE, migration 0001). Each write appends its row in the
transaction that makes the change, so a change and its record commit or vanish together:
:func:`audit` through SQLAlchemy (accounts, raster ingest), :func:`record` through psycopg
(the GPS registry, fences, webhooks and retention, whether the API or a command calls them).
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import (
    ARRAY,
    Connection,
    DateTime,
    Text,
    any_,
    bindparam,
    cast,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import INET

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user name (or ``cli:<OS user>``), their id, their address."""

    name: str
    user_id: int | None = None
    address: str | None = None

    @classmethod
    def of(cls, who: str | Actor | None, default: str) -> Actor:
        """An actor from a name, an actor, or nothing (then ``default``)."""
        if isinstance(who, Actor):
            return who
        return cls(who or default)

    @classmethod
    def local(cls) -> Actor:
        """The person at this machine, ``cli:<OS user>``: the actor of the ``spatial``
        commands, and of a script that names none."""
        return cls(f"cli:{getpass.getuser()}")


def audit(
    conn: Connection, actor: Actor, action: str, *, collection_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Append one row to the audit log (in the caller's transaction), a statement built
    over :class:`spatial.models.AuditEntry`."""
    # Imported on first use: the ingest, edit and GPS paths import this module and audit
    # through psycopg (:data:`INSERT`, :func:`record`); the models would slow their start.
    from spatial.models import AuditEntry  # noqa: PLC0415 - heavy (the ORM, geoalchemy2)

    conn.execute(insert(AuditEntry).values(
        actor=actor.name, user_id=actor.user_id, remote_addr=_inet(actor.address),
        action=action, collection_id=collection_id, details=details or {},
    ))  # fmt: skip


def _inet(address: str | None) -> ColumnElement[Any]:
    """An address bound as ``inet`` (None: NULL)."""
    return cast(bindparam("address", address, type_=Text), INET)


INSERT = (
    "INSERT INTO platform.audit_log (actor, user_id, remote_addr, action, collection_id, "
    "feature_ids, version_before, version_after, details) "
    "VALUES (%s, %s, %s::inet, %s, %s, %s, %s, %s, %s)"
)
"""The same row from a psycopg cursor (edits, ingest): values in that order."""


def record(
    conn: psycopg.Connection[Any], actor: Actor, action: str, *,
    collection_id: str | None = None, feature_ids: Sequence[str] | None = None,
    details: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Append one row to the audit log through psycopg (in the caller's transaction).

    Args:
        feature_ids: the ids of what changed (devices, fences, webhooks, features).
        details: what else a reader needs; never a secret or a token.
    """
    conn.execute(INSERT, (
        actor.name, actor.user_id, actor.address, action, collection_id,
        None if feature_ids is None else list(feature_ids), None, None, Jsonb(details or {}),
    ))  # fmt: skip


def entries(
    conn: Connection, *, collection_id: str | None = None, actor: str | None = None,
    action: str | None = None, since: Any = None, allowed: Sequence[str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of the audit log, newest first, filtered by each argument given; ``allowed``:
    only rows of those collections (None: every row). Built over
    :class:`spatial.models.AuditEntry` (imported on first use, as in :func:`audit`)."""
    from spatial.models import AuditEntry  # noqa: PLC0415 - heavy (the ORM, geoalchemy2)

    log = AuditEntry
    query = select(
        log.id, log.at, log.actor, log.user_id, func.host(log.remote_addr).label("address"),
        log.action, log.collection_id, log.feature_ids, log.version_before, log.version_after,
        log.details,
    )  # fmt: skip
    if collection_id is not None:
        query = query.where(log.collection_id == collection_id)
    if actor is not None:
        query = query.where(log.actor == actor)
    if action is not None:
        query = query.where(log.action == action)
    if since is not None:
        query = query.where(log.at >= cast(bindparam("since", since), DateTime(timezone=True)))
    if allowed is not None:
        query = query.where(log.collection_id == any_(
            bindparam("allowed", list(allowed), type_=ARRAY(Text))
        ))  # fmt: skip
    rows = conn.execute(query.order_by(log.id.desc()).limit(limit))
    return [dict(r) for r in rows.mappings()]
