"""JT/T 808 terminals: a device's terminal phone number (``gps.devices.terminal``).

A JT/T 808 terminal names itself by the phone number of its SIM card in every frame; the
receiver (``spatial gps receive --jt808-port``) finds the device by it. Stored without
leading zeros (terminals pad it to 12 or 20 digits), unique.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE gps.devices ADD COLUMN terminal text UNIQUE "
        "CHECK (terminal ~ '^[1-9][0-9]{0,19}$')"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE gps.devices DROP COLUMN terminal")
