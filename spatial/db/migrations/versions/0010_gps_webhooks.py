"""Webhooks: geofence events POSTed to other systems.

- ``gps.webhooks``: a receiver's URL, the secret its deliveries are signed with (HMAC, so
  it is kept as given), optional filters (fences, event kinds, a department), and the
  delivery state: ``last_event_id``, the highest ``gps.events.id`` delivered (a new webhook
  starts at the newest event, so it is not flooded with history), the failures in a row,
  the last error, and when the next attempt is due (exponential backoff). A department
  that is removed takes its webhooks with it: dropping the filter instead would send every
  department's events to a receiver meant for one.
- A statement trigger on ``gps.events`` takes a transaction-level advisory lock before
  events are inserted, so event ids are handed out in the order their transactions commit:
  a reader that sees event *n* sees every earlier event that will ever exist, and the
  cursor ``last_event_id`` never skips one committed late. Only transactions that record
  events wait, and only from their first event to their commit (the end of a store).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION gps.last_event_id() RETURNS bigint LANGUAGE sql STABLE
            AS 'SELECT coalesce(max(id), 0) FROM gps.events';
        CREATE TABLE gps.webhooks (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            url text NOT NULL CHECK (url ~ '^https?://'),
            secret text NOT NULL CHECK (length(secret) >= 16),
            fence_ids bigint[] CHECK (cardinality(fence_ids) > 0),
            kinds text[] CHECK (cardinality(kinds) > 0
                                AND kinds <@ ARRAY['enter', 'exit', 'dwell']),
            department text REFERENCES platform.departments(id) ON DELETE CASCADE,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_event_id bigint NOT NULL DEFAULT gps.last_event_id(),
            failures integer NOT NULL DEFAULT 0,
            last_error text,
            last_attempt_at timestamptz,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            delivered_at timestamptz
        );
        CREATE FUNCTION gps.events_in_commit_order() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('spatial.gps.events'));
            RETURN NULL;
        END $$;
        CREATE TRIGGER events_in_commit_order BEFORE INSERT ON gps.events
            FOR EACH STATEMENT EXECUTE FUNCTION gps.events_in_commit_order();
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER events_in_commit_order ON gps.events; "
        "DROP FUNCTION gps.events_in_commit_order(); DROP TABLE gps.webhooks; "
        "DROP FUNCTION gps.last_event_id();"
    )
