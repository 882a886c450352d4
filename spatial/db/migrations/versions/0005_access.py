"""Access: API keys, revocable tokens, failed sign-ins, and change notifications.

Users, roles, departments, grants and the audit log are in the foundation (0001). This
adds what signing in needs:

- ``platform.api_keys``: keys are shown once; only a SHA-256 of their secret part is
  kept (a key is 32 random bytes, so a fast hash is as strong as a slow one), found by a
  short public prefix, with an expiry and a revocation time;
- ``platform.users.token_version``: a bearer token carries the version it was issued at;
  raising it revokes every token of the user at once (password change, disable);
- ``platform.auth_failures``: failed sign-ins and unknown keys by subject and address,
  which every worker sees, so that guessing is limited across all of them;
- ``NOTIFY spatial_access`` on every change to departments, users, roles, keys and
  grants: workers reload their access snapshot (as they do the catalog, 0003).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NOTIFYING = ("departments", "users", "user_roles", "grants", "api_keys")


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_version", sa.Integer, nullable=False, server_default="1"),
        schema="platform",
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "user_id",
            sa.BigInteger,
            sa.ForeignKey("platform.users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("prefix", sa.Text, nullable=False, unique=True),
        sa.Column("secret_sha256", sa.LargeBinary, nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        schema="platform",
    )
    op.create_table(
        "auth_failures",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("remote_addr", pg.INET),
        sa.CheckConstraint("kind IN ('password', 'key', 'token')", name="kind_valid"),
        schema="platform",
    )
    op.create_index(
        "auth_failures_subject_idx", "auth_failures", ["subject", "at"], schema="platform"
    )
    op.create_index(
        "auth_failures_addr_idx", "auth_failures", ["remote_addr", "at"], schema="platform"
    )
    op.execute(
        """
        CREATE FUNCTION platform.notify_access() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('spatial_access', TG_TABLE_NAME);
            RETURN NULL;
        END $$
        """
    )
    for table in NOTIFYING:
        op.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON platform.{table} FOR EACH STATEMENT EXECUTE FUNCTION platform.notify_access()"
        )


def downgrade() -> None:
    for table in NOTIFYING:
        op.execute(f"DROP TRIGGER {table}_notify ON platform.{table}")
    op.execute("DROP FUNCTION platform.notify_access()")
    op.drop_table("auth_failures", schema="platform")
    op.drop_table("api_keys", schema="platform")
    op.drop_column("users", "token_version", schema="platform")
