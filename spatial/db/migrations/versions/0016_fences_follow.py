"""Fences that follow their layers, and the department each fence belongs to.

A fence made from a collection is now named by the feature's key (``source_key``: the
collection's key attribute, or its feature number when it has none), so a re-import that
renumbers the features finds the same fences; ``gps.fence_sources`` records, per
collection, how its fences were made (name field, dwell time) and from which version of
it, so that its edits and re-imports are followed (:func:`spatial.gps.fences.follow`).
``department`` says whose stewards manage a fence: the owner of its collection, or the
department of whoever drew it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE gps.fences ADD COLUMN source_key text;
        ALTER TABLE gps.fences ADD COLUMN department text
            REFERENCES platform.departments (id) ON DELETE SET NULL;
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT DISTINCT f.source_collection AS id, c.storage_schema AS s,
                            c.storage_table AS t, c.properties->>'key' AS k
                     FROM gps.fences f JOIN platform.collections c ON c.id = f.source_collection
                     WHERE c.properties->>'key' IS NOT NULL AND c.storage_table IS NOT NULL
            LOOP
                EXECUTE format('UPDATE gps.fences f SET source_key = t.%I::text FROM %I.%I t '
                               'WHERE f.source_collection = %L AND t.fid = f.source_feature',
                               r.k, r.s, r.t, r.id);
            END LOOP;
        END $$;
        UPDATE gps.fences SET source_key = source_feature::text
            WHERE source_collection IS NOT NULL AND source_key IS NULL;
        UPDATE gps.fences f SET department = c.owner_department
            FROM platform.collections c WHERE c.id = f.source_collection;
        ALTER TABLE gps.fences DROP CONSTRAINT fences_source_collection_source_feature_key;
        ALTER TABLE gps.fences ADD CONSTRAINT fences_source UNIQUE (source_collection, source_key);
        CREATE TABLE gps.fence_sources (
            collection text PRIMARY KEY
                REFERENCES platform.collections (id) ON UPDATE CASCADE ON DELETE CASCADE,
            name_field text,
            dwell_s integer CHECK (dwell_s > 0),
            collection_version integer NOT NULL,
            followed_at timestamptz NOT NULL DEFAULT now(),
            follow_error text
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE gps.fence_sources;
        ALTER TABLE gps.fences DROP CONSTRAINT fences_source;
        ALTER TABLE gps.fences ADD CONSTRAINT fences_source_collection_source_feature_key
            UNIQUE (source_collection, source_feature);
        ALTER TABLE gps.fences DROP COLUMN department;
        ALTER TABLE gps.fences DROP COLUMN source_key;
        """
    )
