"""Foundation: schemas by concern, the catalog, accounts, grants, audit log, ingest jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMAS = ("platform", "layers", "gps", "rs")
ROLES = {
    "viewer": "reads the collections granted to them",
    "editor": "edits features of collections granted for write",
    "steward": "ingests data, manages collections of their department, reads the audit log",
    "admin": "manages departments, users, grants and every collection",
}


def _created() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis_raster")
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

    op.create_table(
        "departments",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text),
        _created(),
        schema="platform",
    )
    roles = op.create_table(
        "roles",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        schema="platform",
    )
    op.bulk_insert(roles, [{"name": k, "description": v} for k, v in ROLES.items()])
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("username", sa.Text, nullable=False, unique=True),
        sa.Column("display_name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column(
            "department_id", sa.Text, sa.ForeignKey("platform.departments.id", ondelete="SET NULL")
        ),
        sa.Column("password_hash", sa.Text),
        sa.Column("is_service", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
        _created(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema="platform",
    )
    op.create_table(
        "user_roles",
        sa.Column(
            "user_id",
            sa.BigInteger,
            sa.ForeignKey("platform.users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.Text, sa.ForeignKey("platform.roles.name"), primary_key=True),
        schema="platform",
    )
    op.create_table(
        "collections",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("subsystems", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("keywords", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("storage_schema", sa.Text),
        sa.Column("storage_table", sa.Text),
        sa.Column("storage_path", sa.Text),
        sa.Column("crs", sa.Text),
        sa.Column("srid", sa.Integer),
        sa.Column("footprint", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)),
        sa.Column("temporal_start", sa.DateTime(timezone=True)),
        sa.Column("temporal_end", sa.DateTime(timezone=True)),
        sa.Column(
            "owner_department",
            sa.Text,
            sa.ForeignKey("platform.departments.id", ondelete="SET NULL"),
        ),
        sa.Column("is_public", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("feature_count", sa.BigInteger),
        sa.Column("properties", pg.JSONB, nullable=False, server_default="{}"),
        _created(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("kind IN ('vector', 'raster', 'gps')", name="kind_valid"),
        sa.CheckConstraint("id ~ '^[a-z][a-z0-9_]{0,62}$'", name="id_format"),
        schema="platform",
    )
    op.create_index(
        "collections_subsystems_idx",
        "collections",
        ["subsystems"],
        schema="platform",
        postgresql_using="gin",
    )
    op.create_index(
        "collections_footprint_idx",
        "collections",
        ["footprint"],
        schema="platform",
        postgresql_using="gist",
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "collection_id",
            sa.Text,
            sa.ForeignKey("platform.collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("grantee_kind", sa.Text, nullable=False),
        sa.Column("grantee", sa.Text, nullable=False, server_default=""),
        sa.Column("privilege", sa.Text, nullable=False),
        sa.Column("row_filter", sa.Text),
        sa.Column("row_filter_area", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)),
        _created(),
        sa.CheckConstraint(
            "grantee_kind IN ('public', 'department', 'role', 'user')", name="grantee_kind_valid"
        ),
        sa.CheckConstraint("privilege IN ('read', 'write', 'admin')", name="privilege_valid"),
        sa.UniqueConstraint("collection_id", "grantee_kind", "grantee", "privilege"),
        schema="platform",
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("user_id", sa.BigInteger),
        sa.Column("remote_addr", pg.INET),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("collection_id", sa.Text),
        sa.Column("feature_ids", pg.ARRAY(sa.Text)),
        sa.Column("version_before", sa.Integer),
        sa.Column("version_after", sa.Integer),
        sa.Column("details", pg.JSONB, nullable=False, server_default="{}"),
        schema="platform",
    )
    op.create_index(
        "audit_log_collection_at_idx", "audit_log", ["collection_id", "at"], schema="platform"
    )
    # Append-only: history is evidence. UPDATE, DELETE and TRUNCATE are refused for
    # everyone, including the platform's own role; retention is done by an operator who
    # disables the trigger explicitly.
    op.execute("""
        CREATE FUNCTION platform.audit_log_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'platform.audit_log is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute("""
        CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON platform.audit_log
        FOR EACH ROW EXECUTE FUNCTION platform.audit_log_append_only()
    """)
    op.execute("""
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON platform.audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION platform.audit_log_append_only()
    """)
    op.create_table(
        "ingest_jobs",
        sa.Column(
            "id", pg.UUID(as_uuid=True), primary_key=True, server_default=sa.func.gen_random_uuid()
        ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("collection_id", sa.Text),
        sa.Column("state", sa.Text, nullable=False, server_default="queued"),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("message", sa.Text),
        sa.Column("source", sa.Text),
        sa.Column("options", pg.JSONB, nullable=False, server_default="{}"),
        sa.Column("report", pg.JSONB, nullable=False, server_default="{}"),
        sa.Column("created_by", sa.Text),
        _created(),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state_valid"
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 1", name="progress_range"),
        sa.CheckConstraint("kind IN ('vector', 'raster', 'gps')", name="kind_valid"),
        schema="platform",
    )
    op.create_index(
        "ingest_jobs_state_idx", "ingest_jobs", ["state", "created_at"], schema="platform"
    )


def downgrade() -> None:
    # Layer, GPS and raster tables belong to later migrations and data loads; dropping
    # the foundation drops everything in the platform's schemas.
    for schema in reversed(SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
