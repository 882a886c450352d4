"""The audit log: who changed what, when and from where (``platform.audit_log``).

The log is append-only for everyone, the platform's own database role included (a trigger
refuses UPDATE, DELETE and TRUNCATE, migration 0001). Each write appends its row in the
transaction that makes the change, so a change and its record commit or vanish together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB


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


def audit(
    conn: Connection, actor: Actor, action: str, *, collection_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Append one row to the audit log (in the caller's transaction)."""
    conn.execute(
        text(
            "INSERT INTO platform.audit_log (actor, user_id, remote_addr, action, "
            "collection_id, details) VALUES (:actor, :uid, CAST(:addr AS inet), :action, "
            ":cid, :details)"
        ).bindparams(bindparam("details", type_=JSONB)),
        {"actor": actor.name, "uid": actor.user_id, "addr": actor.address, "action": action,
         "cid": collection_id, "details": details or {}},
    )  # fmt: skip


INSERT = (
    "INSERT INTO platform.audit_log (actor, user_id, remote_addr, action, collection_id, "
    "feature_ids, version_before, version_after, details) "
    "VALUES (%s, %s, %s::inet, %s, %s, %s, %s, %s, %s)"
)
"""The same row from a psycopg cursor (edits, ingest): values in that order."""
