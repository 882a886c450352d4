"""Alarms: thresholds on datastreams, the alarms they raise, and alarm events.

- ``sta.alarm_rules`` and ``sta.alarm_levels``: the rules of ``layers/alarms/*.yaml``
  (:mod:`spatial.sta.alarms`), synced by its loader, so that every process evaluates the
  same rules in SQL. A rule picks datastreams by observed property (name or definition)
  and optionally the Thing's collection; it measures the latest reading, or the sum of the
  readings in a window ending at the latest one; its levels (ordered by ``rank``, from 1)
  start above a fixed value, or above a number attribute of the Thing's feature plus an
  offset (:func:`sta.feature_number`). ``valid_min`` / ``valid_max`` is the plausible
  range it gives the datastreams it picks (written into ``properties.range`` by the
  loader and by a trigger on new datastreams; the observation store rejects readings
  outside it).
- ``sta.alarms``: one row per alarm, at one level for its whole life: ``active`` from the
  reading that crossed into the level, ``cleared`` by the reading that left it (a level
  change clears one alarm and raises another). At most one active alarm per datastream
  and rule. ``rule_id`` is not a foreign key: an alarm outlives a rule removed from the
  YAML (the loader clears its active alarms).
- ``gps.events`` takes ``alarm-raised`` and ``alarm-cleared`` events: no device, no fence;
  the alarm, the datastream's department, the Thing's location (none when it has none).
  The webhooks deliver them like the other kinds.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sta.alarm_rules (
            id text PRIMARY KEY,
            subsystem text NOT NULL,
            rule text NOT NULL,
            title text NOT NULL,
            property text NOT NULL,
            collection text,
            "window" interval CHECK ("window" > interval '0'),
            valid_min double precision,
            valid_max double precision,
            position integer NOT NULL,
            CHECK (id = subsystem || '/' || rule),
            CHECK (valid_min IS NULL OR valid_max IS NULL OR valid_min <= valid_max)
        );
        CREATE INDEX alarm_rules_property_idx ON sta.alarm_rules (lower(property));
        CREATE TABLE sta.alarm_levels (
            rule_id text NOT NULL REFERENCES sta.alarm_rules (id) ON DELETE CASCADE,
            rank integer NOT NULL CHECK (rank > 0),
            level text NOT NULL,
            above double precision,
            attribute text,
            "offset" double precision NOT NULL DEFAULT 0,
            alarm boolean NOT NULL,
            PRIMARY KEY (rule_id, rank),
            UNIQUE (rule_id, level),
            CHECK (above IS NULL OR attribute IS NULL)
        );

        CREATE FUNCTION sta.feature_number(collection text, feature_key text, field text)
            RETURNS double precision LANGUAGE plpgsql STABLE AS $$
        DECLARE
            c record;
            v text;
        BEGIN
            SELECT storage_schema AS s, storage_table AS t, properties->>'key' AS k INTO c
            FROM platform.collections
            WHERE id = collection AND properties->'fields' ? field
              AND properties->'fields' ? (properties->>'key');
            IF NOT FOUND OR c.t IS NULL THEN
                RETURN NULL;
            END IF;
            EXECUTE format('SELECT (%I)::text FROM %I.%I WHERE (%I)::text = $1 LIMIT 1',
                           field, c.s, c.t, c.k) INTO v USING feature_key;
            IF v ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*$' THEN
                RETURN v::double precision;
            END IF;
            RETURN NULL;
        END $$;
        COMMENT ON FUNCTION sta.feature_number(text, text, text) IS
            'A number attribute of a collection''s feature named by its key (NULL when the '
            'collection, the feature or the field is missing, or the value is no number).';

        CREATE FUNCTION sta.datastream_range() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            r record;
        BEGIN
            SELECT ar.valid_min, ar.valid_max INTO r
            FROM sta.alarm_rules ar
            JOIN sta.observed_properties p ON p.id = NEW.observed_property_id
            JOIN sta.things t ON t.id = NEW.thing_id
            WHERE (lower(ar.property) = lower(p.name) OR ar.property = p.definition)
              AND (ar.collection IS NULL OR ar.collection = t.collection)
              AND (ar.valid_min IS NOT NULL OR ar.valid_max IS NOT NULL)
            ORDER BY ar.subsystem, ar.position LIMIT 1;
            IF FOUND AND (NEW.properties IS NULL OR NOT NEW.properties ? 'range') THEN
                NEW.properties := coalesce(NEW.properties, '{}'::jsonb)
                    || jsonb_build_object('range', jsonb_build_array(r.valid_min, r.valid_max));
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER datastream_range
            BEFORE INSERT OR UPDATE OF observed_property_id, thing_id ON sta.datastreams
            FOR EACH ROW EXECUTE FUNCTION sta.datastream_range();

        CREATE TABLE sta.alarms (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            datastream_id bigint NOT NULL REFERENCES sta.datastreams (id) ON DELETE CASCADE,
            rule_id text NOT NULL,
            subsystem text NOT NULL,
            level text NOT NULL,
            rank integer NOT NULL,
            state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'cleared')),
            raised_at timestamptz NOT NULL,
            raised_value double precision,
            threshold double precision,
            cleared_at timestamptz,
            cleared_value double precision,
            acknowledged_by text,
            acknowledged_user_id bigint,
            acknowledged_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK ((state = 'cleared') = (cleared_at IS NOT NULL)),
            CHECK ((acknowledged_by IS NULL) = (acknowledged_at IS NULL))
        );
        CREATE UNIQUE INDEX alarms_active_idx ON sta.alarms (datastream_id, rule_id)
            WHERE state = 'active';
        CREATE INDEX alarms_datastream_idx ON sta.alarms (datastream_id, raised_at DESC);
        CREATE INDEX alarms_raised_idx ON sta.alarms (raised_at DESC);

        ALTER TABLE gps.events ALTER COLUMN device_id DROP NOT NULL;
        ALTER TABLE gps.events ALTER COLUMN geom DROP NOT NULL;
        ALTER TABLE gps.events ADD COLUMN alarm_id bigint
            REFERENCES sta.alarms (id) ON DELETE CASCADE;
        ALTER TABLE gps.events ADD COLUMN department text;
        CREATE INDEX events_alarm_idx ON gps.events (alarm_id) WHERE alarm_id IS NOT NULL;
        ALTER TABLE gps.events DROP CONSTRAINT events_kind_check;
        ALTER TABLE gps.events ADD CONSTRAINT events_kind_check CHECK (kind IN (
            'enter', 'exit', 'dwell', 'on-scene', 'alarm-raised', 'alarm-cleared'));
        ALTER TABLE gps.events DROP CONSTRAINT events_subject;
        ALTER TABLE gps.events ADD CONSTRAINT events_subject CHECK (CASE
            WHEN kind IN ('alarm-raised', 'alarm-cleared') THEN
                alarm_id IS NOT NULL AND device_id IS NULL AND fence_id IS NULL
                AND incident IS NULL
            WHEN kind = 'on-scene' THEN
                incident IS NOT NULL AND device_id IS NOT NULL AND fence_id IS NULL
                AND alarm_id IS NULL AND geom IS NOT NULL
            ELSE
                fence_id IS NOT NULL AND device_id IS NOT NULL AND incident IS NULL
                AND alarm_id IS NULL AND geom IS NOT NULL
            END);
        ALTER TABLE gps.webhooks DROP CONSTRAINT webhooks_kinds_check;
        ALTER TABLE gps.webhooks ADD CONSTRAINT webhooks_kinds_check
            CHECK (cardinality(kinds) > 0 AND kinds <@ ARRAY['enter', 'exit', 'dwell',
                   'on-scene', 'alarm-raised', 'alarm-cleared']);
        CREATE OR REPLACE VIEW gps.events_features AS
            SELECT e.id AS fid, e.device_id, coalesce(d.department, e.department) AS department,
                   e.fence_id, f.name AS fence, e.kind, e.time, e.geom, e.incident,
                   e.alarm_id, a.datastream_id, a.level,
                   CASE e.kind WHEN 'alarm-cleared' THEN a.cleared_value
                               ELSE a.raised_value END AS value
            FROM gps.events e LEFT JOIN gps.fences f ON f.id = e.fence_id
            LEFT JOIN gps.devices d ON d.id = e.device_id
            LEFT JOIN sta.alarms a ON a.id = e.alarm_id;
        UPDATE platform.collections
        SET properties = jsonb_set(properties, '{fields}', properties->'fields'
                || '{"alarm_id": "bigint", "datastream_id": "bigint", "level": "text",
                     "value": "double precision"}'),
            description = 'Devices entering, leaving and dwelling in geofences, units '
                          'arriving on scene, and sensor alarms raised and cleared.'
        WHERE id = 'gps_events';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM gps.events WHERE kind IN ('alarm-raised', 'alarm-cleared');
        UPDATE platform.collections
        SET properties = properties #- '{fields,alarm_id}' #- '{fields,datastream_id}'
                         #- '{fields,level}' #- '{fields,value}',
            description = 'Devices entering, leaving and dwelling in geofences.'
        WHERE id = 'gps_events';
        DROP VIEW gps.events_features;
        CREATE VIEW gps.events_features AS
            SELECT e.id AS fid, e.device_id, d.department, e.fence_id, f.name AS fence, e.kind,
                   e.time, e.geom, e.incident
            FROM gps.events e LEFT JOIN gps.fences f ON f.id = e.fence_id
            LEFT JOIN gps.devices d ON d.id = e.device_id;
        ALTER TABLE gps.webhooks DROP CONSTRAINT webhooks_kinds_check;
        UPDATE gps.webhooks
        SET kinds = array_remove(array_remove(kinds, 'alarm-raised'), 'alarm-cleared');
        UPDATE gps.webhooks SET active = false, kinds = ARRAY['enter']
        WHERE kinds = '{}';
        ALTER TABLE gps.webhooks ADD CONSTRAINT webhooks_kinds_check
            CHECK (cardinality(kinds) > 0
                   AND kinds <@ ARRAY['enter', 'exit', 'dwell', 'on-scene']);
        ALTER TABLE gps.events DROP CONSTRAINT events_subject;
        ALTER TABLE gps.events ADD CONSTRAINT events_subject
            CHECK ((fence_id IS NULL) = (kind = 'on-scene')
                   AND (incident IS NULL) = (kind <> 'on-scene'));
        ALTER TABLE gps.events DROP CONSTRAINT events_kind_check;
        ALTER TABLE gps.events ADD CONSTRAINT events_kind_check
            CHECK (kind IN ('enter', 'exit', 'dwell', 'on-scene'));
        DROP INDEX gps.events_alarm_idx;
        ALTER TABLE gps.events DROP COLUMN department;
        ALTER TABLE gps.events DROP COLUMN alarm_id;
        ALTER TABLE gps.events ALTER COLUMN geom SET NOT NULL;
        ALTER TABLE gps.events ALTER COLUMN device_id SET NOT NULL;
        DROP TABLE sta.alarms;
        DROP TRIGGER datastream_range ON sta.datastreams;
        DROP FUNCTION sta.datastream_range();
        DROP FUNCTION sta.feature_number(text, text, text);
        DROP TABLE sta.alarm_levels;
        DROP TABLE sta.alarm_rules;
        """
    )
