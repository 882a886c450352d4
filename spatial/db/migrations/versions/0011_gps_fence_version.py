"""A version number of the geofences, so every API worker can keep them in memory.

``gps.fences_version`` holds one row; any insert, update or delete on ``gps.fences``
increments it (a statement trigger, in the same transaction). The store reads it with
every batch and loads the fences again only when it changed
(:func:`spatial.gps.fences.locate`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gps.fences_version (
            one boolean PRIMARY KEY DEFAULT true CHECK (one),
            version bigint NOT NULL
        );
        INSERT INTO gps.fences_version (version) VALUES (1);
        CREATE FUNCTION gps.bump_fences_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE gps.fences_version SET version = version + 1;
            RETURN NULL;
        END $$;
        CREATE TRIGGER fences_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON gps.fences FOR EACH STATEMENT EXECUTE FUNCTION gps.bump_fences_version();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER fences_version ON gps.fences;
        DROP FUNCTION gps.bump_fences_version();
        DROP TABLE gps.fences_version;
        """
    )
