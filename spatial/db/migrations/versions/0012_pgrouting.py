"""pgRouting in the platform database: road networks and routing (issue 14).

The extension must be available on the server (the Debian package
``postgresql-<major>-pgrouting``); without it the migration stops with a message naming
that package rather than PostgreSQL's "could not open extension control file".

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any, cast

import psycopg
from alembic import op

from spatial.db import extensions

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = cast("psycopg.Connection[Any]", op.get_bind().connection.dbapi_connection)
    extensions.require(conn, "pgrouting")
    op.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")


def downgrade() -> None:
    op.execute("DROP EXTENSION IF EXISTS pgrouting")
