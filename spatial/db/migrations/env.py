"""Alembic environment: runs migrations on the connection handed in by spatial.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

_conn = context.config.attributes.get("connection")
if not isinstance(_conn, Connection):  # pragma: no cover - only through spatial.db.migrate
    msg = "run migrations with 'spatial db migrate', which provides the connection"
    raise RuntimeError(msg)

context.configure(
    connection=_conn,
    target_metadata=None,
    version_table="alembic_version",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
