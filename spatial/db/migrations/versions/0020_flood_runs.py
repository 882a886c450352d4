"""Flood extents run by alarms: ``sta.flood_runs``, one row per alarm a trigger of
``layers/floods.yaml`` ran the flood extent for (:mod:`spatial.flood.trigger`).

The row is written first, claiming the alarm (its primary key), so that each alarm runs
its flood extent once whatever the number of workers; then its outcome (the area, the
closures, the collection) or the error that stopped it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sta.flood_runs (
            alarm_id bigint PRIMARY KEY REFERENCES sta.alarms (id) ON DELETE CASCADE,
            gauge text NOT NULL,
            level text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            outcome jsonb,
            error text
        );
        COMMENT ON TABLE sta.flood_runs IS
            'The alarms a flood trigger (layers/floods.yaml) ran the flood extent for, once each.';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS sta.flood_runs")
