"""Emergency command: incidents, units and their dispatch.

``layers.incidents`` is an ordinary editable vector collection (OGC API - Features with
Part 4 edits, versioned and audited like any other): owned by the ``emergency``
department (created here when missing), private, written by that department's editors.
A trigger keeps its rules whoever edits it: a new incident is ``reported`` (reported now
unless given); the status only moves forward, ``reported → dispatched → on-scene →
closed``, and a closed incident no longer changes; the assigned ``units`` are written by
the dispatch alone (:mod:`spatial.command`, which sets ``spatial.dispatching`` for its
transaction); closing or deleting an incident frees its units and ends their
assignments; every change is told to the live streams (``NOTIFY spatial_gps``,
``{"incidents": [...]}``). A refused change raises SQLSTATE 22023 (the API answers 400
with the message).

``cmd.units`` makes GPS devices dispatchable units, each of a kind (``fire-engine``,
``ambulance``...), with a status ``available / assigned / on-scene / off-duty`` and the
incident it serves.
``cmd.assignments`` records each dispatch of a unit: its route and ETA, when it arrived
and when it was released; one open assignment per unit at most (a unique index, the last
word when two dispatchers assign the same unit at once).

``gps.events`` takes ``on-scene`` events (a unit came within the set distance of its
incident): no fence, the incident instead; the webhooks deliver them like fence events.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        INSERT INTO platform.departments (id, name, name_en)
        VALUES ('emergency', '应急指挥', 'Emergency command') ON CONFLICT (id) DO NOTHING;

        CREATE TABLE layers.incidents (
            fid bigint PRIMARY KEY,
            incident_id text NOT NULL UNIQUE,
            kind text,
            level integer,
            address text,
            description text,
            reported_at timestamp,
            status text,
            units text,
            closed_at timestamp,
            geom geometry(Point, 4326) NOT NULL
        );
        CREATE INDEX incidents_geom ON layers.incidents USING gist (geom);
        CREATE INDEX incidents_open ON layers.incidents (status) WHERE status <> 'closed';

        CREATE SCHEMA IF NOT EXISTS cmd;
        CREATE SEQUENCE cmd.incident_numbers;
        CREATE TABLE cmd.units (
            device_id text PRIMARY KEY
                REFERENCES gps.devices (id) ON UPDATE CASCADE ON DELETE CASCADE,
            kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9-]{0,31}$'),
            status text NOT NULL DEFAULT 'available'
                CHECK (status IN ('available', 'assigned', 'on-scene', 'off-duty')),
            incident text,
            since timestamptz NOT NULL DEFAULT now(),
            CHECK ((incident IS NULL) = (status IN ('available', 'off-duty')))
        );
        CREATE TABLE cmd.assignments (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            incident text NOT NULL,
            unit text NOT NULL REFERENCES cmd.units (device_id) ON UPDATE CASCADE
                ON DELETE CASCADE,
            network text,
            seconds double precision,
            metres double precision,
            roads text[],
            route geometry(LineString, 4326),
            dispatched_at timestamptz NOT NULL DEFAULT now(),
            eta timestamptz,
            dispatched_by text NOT NULL,
            arrived_at timestamptz,
            released_at timestamptz
        );
        CREATE INDEX assignments_incident ON cmd.assignments (incident);
        CREATE UNIQUE INDEX assignments_open_unit ON cmd.assignments (unit)
            WHERE released_at IS NULL;

        CREATE FUNCTION cmd.status_rank(status text) RETURNS integer LANGUAGE sql IMMUTABLE
            AS $$ SELECT array_position(ARRAY['reported', 'dispatched', 'on-scene', 'closed'],
                                        status) $$;

        CREATE FUNCTION cmd.release(incident text) RETURNS void LANGUAGE sql AS $$
            UPDATE cmd.assignments SET released_at = now()
            WHERE assignments.incident = release.incident AND released_at IS NULL;
            UPDATE cmd.units SET status = 'available', incident = NULL, since = now()
            WHERE units.incident = release.incident;
        $$;

        CREATE FUNCTION cmd.tell(incident text, kind text, status text) RETURNS void
            LANGUAGE sql AS $$
            SELECT pg_notify('spatial_gps', json_build_object('incidents', json_build_array(
                json_build_object('incident', incident, 'kind', kind, 'status', status)))::text)
        $$;

        CREATE FUNCTION cmd.incident_rules() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            dispatching boolean := coalesce(current_setting('spatial.dispatching', true), '')
                                   = 'on';
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM cmd.release(OLD.incident_id);
                PERFORM cmd.tell(OLD.incident_id, 'deleted', OLD.status);
                RETURN OLD;
            END IF;
            IF TG_OP = 'INSERT' THEN
                NEW.status := coalesce(NEW.status, 'reported');
                NEW.reported_at := coalesce(NEW.reported_at, now() AT TIME ZONE 'UTC');
                IF NOT dispatching THEN
                    NEW.units := NULL;
                END IF;
            ELSE
                NEW.status := coalesce(NEW.status, OLD.status);
                NEW.reported_at := coalesce(NEW.reported_at, OLD.reported_at);
                IF NOT dispatching THEN
                    NEW.units := OLD.units;
                END IF;
                IF OLD.status = 'closed' AND NEW IS DISTINCT FROM OLD THEN
                    RAISE EXCEPTION 'incident % is closed: it no longer changes',
                        OLD.incident_id USING ERRCODE = '22023';
                END IF;
            END IF;
            IF cmd.status_rank(NEW.status) IS NULL THEN
                RAISE EXCEPTION 'status %: an incident is reported, dispatched, on-scene or '
                    'closed', quote_literal(NEW.status) USING ERRCODE = '22023';
            END IF;
            IF TG_OP = 'UPDATE'
               AND cmd.status_rank(NEW.status) < cmd.status_rank(OLD.status) THEN
                RAISE EXCEPTION 'incident %: the status goes forward only (reported, '
                    'dispatched, on-scene, closed), not from % back to %', OLD.incident_id,
                    OLD.status, NEW.status USING ERRCODE = '22023';
            END IF;
            IF NEW.level IS NOT NULL AND NEW.level NOT BETWEEN 1 AND 4 THEN
                RAISE EXCEPTION 'level %: an incident''s level is 1 (most severe) to 4',
                    NEW.level USING ERRCODE = '22023';
            END IF;
            IF NEW.status = 'closed' THEN
                NEW.closed_at := coalesce(NEW.closed_at, now() AT TIME ZONE 'UTC');
                PERFORM cmd.release(NEW.incident_id);
            ELSE
                NEW.closed_at := NULL;
            END IF;
            PERFORM cmd.tell(NEW.incident_id,
                             CASE TG_OP WHEN 'INSERT' THEN 'reported' ELSE 'changed' END,
                             NEW.status);
            RETURN NEW;
        END $$;
        CREATE TRIGGER incident_rules BEFORE INSERT OR UPDATE OR DELETE ON layers.incidents
            FOR EACH ROW EXECUTE FUNCTION cmd.incident_rules();
        """
    )
    op.execute(
        """
        INSERT INTO platform.collections (id, title, description, kind, subsystems, keywords,
                storage_schema, storage_table, crs, srid, owner_department, is_public,
                feature_count, properties)
        VALUES ('incidents', '事件 Incidents', 'Emergencies reported to the command centre: '
                'where, what, how severe, their status and the units dispatched to them.',
                'vector', '{emergency}', '{incidents,emergency,dispatch}', 'layers',
                'incidents', 'EPSG:4326', 4326, 'emergency', false, 0,
                jsonb_build_object('fields', jsonb_build_object(
                    'incident_id', 'text', 'kind', 'text', 'level', 'integer',
                    'address', 'text', 'description', 'text', 'reported_at', 'timestamp',
                    'status', 'text', 'units', 'text', 'closed_at', 'timestamp'),
                                   'geometry_type', 'Point',
                                   'key', 'incident_id', 'editable', true, 'edition', 1,
                                   'temporal_field', 'reported_at'));
        INSERT INTO platform.editions (collection_id, edition, valid_from, actor, source, key,
                                       feature_count)
        VALUES ('incidents', 1, now(), 'spatial db migrate', 'migration 0015', 'incident_id', 0);
        INSERT INTO platform.grants (collection_id, grantee_kind, grantee, privilege)
        VALUES ('incidents', 'department', 'emergency', 'write');

        ALTER TABLE gps.events ALTER COLUMN fence_id DROP NOT NULL;
        ALTER TABLE gps.events ADD COLUMN incident text;
        ALTER TABLE gps.events DROP CONSTRAINT events_kind_check;
        ALTER TABLE gps.events ADD CONSTRAINT events_kind_check
            CHECK (kind IN ('enter', 'exit', 'dwell', 'on-scene'));
        ALTER TABLE gps.events ADD CONSTRAINT events_subject
            CHECK ((fence_id IS NULL) = (kind = 'on-scene')
                   AND (incident IS NULL) = (kind <> 'on-scene'));
        ALTER TABLE gps.webhooks DROP CONSTRAINT webhooks_kinds_check;
        ALTER TABLE gps.webhooks ADD CONSTRAINT webhooks_kinds_check
            CHECK (cardinality(kinds) > 0
                   AND kinds <@ ARRAY['enter', 'exit', 'dwell', 'on-scene']);
        CREATE OR REPLACE VIEW gps.events_features AS
            SELECT e.id AS fid, e.device_id, d.department, e.fence_id, f.name AS fence, e.kind,
                   e.time, e.geom, e.incident
            FROM gps.events e LEFT JOIN gps.fences f ON f.id = e.fence_id
            LEFT JOIN gps.devices d ON d.id = e.device_id;
        UPDATE platform.collections
        SET properties = jsonb_set(properties, '{fields,incident}', '"text"')
        WHERE id = 'gps_events';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM gps.events WHERE kind = 'on-scene';
        UPDATE platform.collections SET properties = properties #- '{fields,incident}'
        WHERE id = 'gps_events';
        DROP VIEW gps.events_features;
        CREATE VIEW gps.events_features AS
            SELECT e.id AS fid, e.device_id, d.department, e.fence_id, f.name AS fence, e.kind,
                   e.time, e.geom
            FROM gps.events e JOIN gps.fences f ON f.id = e.fence_id
            LEFT JOIN gps.devices d ON d.id = e.device_id;
        ALTER TABLE gps.webhooks DROP CONSTRAINT webhooks_kinds_check;
        UPDATE gps.webhooks SET kinds = array_remove(kinds, 'on-scene');
        ALTER TABLE gps.webhooks ADD CONSTRAINT webhooks_kinds_check
            CHECK (cardinality(kinds) > 0 AND kinds <@ ARRAY['enter', 'exit', 'dwell']);
        ALTER TABLE gps.events DROP CONSTRAINT events_subject;
        ALTER TABLE gps.events DROP CONSTRAINT events_kind_check;
        ALTER TABLE gps.events ADD CONSTRAINT events_kind_check
            CHECK (kind IN ('enter', 'exit', 'dwell'));
        ALTER TABLE gps.events DROP COLUMN incident;
        ALTER TABLE gps.events ALTER COLUMN fence_id SET NOT NULL;
        DELETE FROM platform.collections WHERE id = 'incidents';
        DROP TABLE layers.incidents;
        DROP SCHEMA cmd CASCADE;
        """
    )
