"""Catalog change notifications: every change to ``platform.collections`` sends a NOTIFY.

API workers LISTEN on ``spatial_catalog`` and reload their catalog snapshot, so a
collection ingested, edited or deleted by any process appears (or goes) in every worker
without a restart. The notification is sent when the changing transaction commits.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION platform.notify_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('spatial_catalog', TG_OP);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER collections_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
        "ON platform.collections FOR EACH STATEMENT EXECUTE FUNCTION platform.notify_catalog()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER collections_notify ON platform.collections")
    op.execute("DROP FUNCTION platform.notify_catalog()")
