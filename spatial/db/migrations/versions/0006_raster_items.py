"""Raster items: ``rs.items``, one row per scene of a raster collection (a STAC Item).

The collection itself is a ``platform.collections`` row of kind ``raster``; an item holds
its footprint (lon/lat), acquisition time, the STAC properties (``eo:bands``, ``proj:*``,
sensor...) and assets (COG paths relative to the data directory). A change to the items
of a collection bumps nothing by itself: the ingest updates the collection row in the
same transaction, which notifies the API workers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column(
            "collection_id",
            sa.Text,
            sa.ForeignKey("platform.collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("datetime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("properties", JSONB, nullable=False, server_default="{}"),
        sa.Column("assets", JSONB, nullable=False, server_default="{}"),
        sa.Column("data_path", sa.Text, nullable=False),
        sa.Column("web_path", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("collection_id", "id"),
        sa.CheckConstraint("id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name="id_format"),
        schema="rs",
    )
    op.create_index("items_geom_idx", "items", ["geom"], schema="rs", postgresql_using="gist")
    op.create_index("items_datetime_idx", "items", ["datetime", "collection_id", "id"], schema="rs")


def downgrade() -> None:
    op.drop_table("items", schema="rs")
