"""Vector editions: history of every feature version, changes between editions, quarantine.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql as pg

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHANGE_KINDS = ("added", "removed", "geometry", "attributes", "geometry+attributes")


def _at(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "editions",
        sa.Column(
            "collection_id",
            sa.Text,
            sa.ForeignKey("platform.collections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("edition", sa.Integer, primary_key=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        _at("recorded_at"),
        sa.Column("job_id", pg.UUID(as_uuid=True)),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("checksum", sa.Text),
        sa.Column("key", sa.Text),
        sa.Column("feature_count", sa.BigInteger, nullable=False),
        sa.Column("counts", pg.JSONB, nullable=False, server_default="{}"),
        schema="platform",
    )
    op.create_table(
        "feature_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("collection_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("edition_from", sa.Integer, nullable=False),
        sa.Column("edition_to", sa.Integer, nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("properties", pg.JSONB, nullable=False),
        sa.Column("geom", Geometry(spatial_index=False)),
        sa.ForeignKeyConstraint(
            ["collection_id", "edition_to"],
            ["platform.editions.collection_id", "platform.editions.edition"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("edition_from < edition_to", name="editions_ordered"),
        schema="platform",
    )
    op.create_index(
        "feature_history_key_idx", "feature_history", ["collection_id", "key"], schema="platform"
    )
    op.create_index(
        "feature_history_editions_idx",
        "feature_history",
        ["collection_id", "edition_to", "edition_from"],
        schema="platform",
    )
    op.create_table(
        "feature_changes",
        sa.Column("collection_id", sa.Text, primary_key=True),
        sa.Column("edition", sa.Integer, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("change", sa.Text, nullable=False),
        sa.Column("fields", pg.ARRAY(sa.Text)),
        sa.ForeignKeyConstraint(
            ["collection_id", "edition"],
            ["platform.editions.collection_id", "platform.editions.edition"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(f"change IN {CHANGE_KINDS}", name="change_kind_valid"),
        schema="platform",
    )
    op.create_index(
        "feature_changes_key_idx", "feature_changes", ["collection_id", "key"], schema="platform"
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "job_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("platform.ingest_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("collection_id", sa.Text, nullable=False),
        sa.Column("source_fid", sa.BigInteger),
        sa.Column("key", sa.Text),
        sa.Column("reasons", pg.JSONB, nullable=False),
        sa.Column("properties", pg.JSONB, nullable=False),
        sa.Column("geom", Geometry(spatial_index=False)),
        _at("created_at"),
        schema="platform",
    )
    op.create_index("quarantine_job_idx", "quarantine", ["job_id"], schema="platform")
    # Quarantined geometry can be anything (self-intersecting, far outside its CRS);
    # serving it in lon/lat must not fail the whole download.
    op.execute("""
        CREATE FUNCTION platform.try_transform(g geometry, srid integer) RETURNS geometry
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        BEGIN
            RETURN ST_Transform(g, srid);
        EXCEPTION WHEN OTHERS THEN
            RETURN NULL;
        END $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS platform.try_transform(geometry, integer)")
    op.drop_table("quarantine", schema="platform")
    op.drop_table("feature_changes", schema="platform")
    op.drop_table("feature_history", schema="platform")
    op.drop_table("editions", schema="platform")
