"""Process jobs: ``platform.ingest_jobs`` also holds OGC API - Processes jobs (kind ``process``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("kind_valid", "ingest_jobs", schema="platform", type_="check")
    op.create_check_constraint(
        "kind_valid",
        "ingest_jobs",
        "kind IN ('vector', 'raster', 'gps', 'process')",
        schema="platform",
    )


def downgrade() -> None:
    op.execute("DELETE FROM platform.ingest_jobs WHERE kind = 'process'")
    op.drop_constraint("kind_valid", "ingest_jobs", schema="platform", type_="check")
    op.create_check_constraint(
        "kind_valid", "ingest_jobs", "kind IN ('vector', 'raster', 'gps')", schema="platform"
    )
