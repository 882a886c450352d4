"""GPS: devices, positions partitioned by month, the latest position per device, and
reject counters.

- ``gps.devices``: the registry (id, name, department, kind, a hashed token);
- ``gps.positions``: one row per device and instant (the primary key makes a repeated fix
  a no-op), partitioned by month of ``time`` so that retention drops whole partitions;
  GiST on the point, BRIN on the time; ``gps.ensure_month(ts)`` creates a month's
  partition (the store calls it before writing);
- ``gps.latest``: the newest position of each device;
- ``gps.rejects``: how much input was refused, per device (``''`` when unknown) and reason;
- the catalog entries ``gps_latest`` and ``gps_positions`` (kind ``gps``, private until
  granted), served as features and vector tiles through the views
  ``gps.latest_features`` and ``gps.positions_features`` (``fid`` is the device's number,
  or the position's id; ``department`` comes from the device, for row grants).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gps.devices (
            id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,63}$'),
            num bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            name text NOT NULL,
            department text REFERENCES platform.departments(id) ON DELETE SET NULL,
            kind text NOT NULL DEFAULT 'vehicle',
            token_sha256 text,
            auto_registered boolean NOT NULL DEFAULT false,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE gps.positions (
            id bigserial NOT NULL,
            device_id text NOT NULL,
            time timestamptz NOT NULL,
            geom geometry(Point, 4326) NOT NULL,
            altitude double precision,
            speed double precision,
            course double precision,
            hdop double precision,
            satellites integer,
            accuracy double precision,
            attributes jsonb NOT NULL DEFAULT '{}',
            source text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (device_id, time)
        ) PARTITION BY RANGE (time);
        CREATE INDEX positions_geom_idx ON gps.positions USING gist (geom);
        CREATE INDEX positions_time_brin ON gps.positions USING brin (time);
        CREATE INDEX positions_id_idx ON gps.positions (id);
        CREATE TABLE gps.latest (
            device_id text PRIMARY KEY,
            time timestamptz NOT NULL,
            geom geometry(Point, 4326) NOT NULL,
            altitude double precision,
            speed double precision,
            course double precision,
            attributes jsonb NOT NULL DEFAULT '{}',
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX latest_geom_idx ON gps.latest USING gist (geom);
        CREATE TABLE gps.rejects (
            device_id text NOT NULL DEFAULT '',
            reason text NOT NULL,
            count bigint NOT NULL DEFAULT 0,
            last_at timestamptz NOT NULL DEFAULT now(),
            last_detail text,
            PRIMARY KEY (device_id, reason)
        );
        CREATE VIEW gps.latest_features AS
            SELECT d.num AS fid, l.device_id, d.name, d.kind, d.department, l.time, l.speed,
                   l.course, l.altitude, l.geom
            FROM gps.latest l JOIN gps.devices d ON d.id = l.device_id;
        CREATE VIEW gps.positions_features AS
            SELECT p.id AS fid, p.device_id, d.department, p.time, p.speed, p.course,
                   p.altitude, p.hdop, p.satellites, p.source, p.geom
            FROM gps.positions p LEFT JOIN gps.devices d ON d.id = p.device_id;
        INSERT INTO platform.collections (id, title, description, kind, subsystems, keywords,
                storage_schema, storage_table, crs, srid, properties)
        VALUES
            ('gps_latest', 'GPS latest positions', 'The newest position of every device.',
             'gps', '{emergency}', '{gps,vehicles}', 'gps', 'latest_features', 'EPSG:4326',
             4326, '{"fields": {"device_id": "text", "name": "text", "kind": "text",
               "department": "text", "time": "timestamp", "speed": "double precision",
               "course": "double precision", "altitude": "double precision"},
               "geometry_type": "Point", "temporal_field": "time"}'),
            ('gps_positions', 'GPS positions', 'Every stored position of every device.',
             'gps', '{emergency}', '{gps,tracks}', 'gps', 'positions_features', 'EPSG:4326',
             4326, '{"fields": {"device_id": "text", "department": "text",
               "time": "timestamp", "speed": "double precision", "course": "double precision",
               "altitude": "double precision", "hdop": "double precision",
               "satellites": "integer", "source": "text"},
               "geometry_type": "Point", "temporal_field": "time"}');
        CREATE FUNCTION gps.ensure_month(ts timestamptz) RETURNS text
        LANGUAGE plpgsql AS $$
        DECLARE
            first date := date_trunc('month', ts AT TIME ZONE 'UTC')::date;
            part text := 'positions_' || to_char(first, 'YYYYMM');
        BEGIN
            IF to_regclass('gps.' || part) IS NULL THEN
                BEGIN
                    EXECUTE format(
                        'CREATE TABLE gps.%I PARTITION OF gps.positions '
                        'FOR VALUES FROM (%L) TO (%L)',
                        part, first::text || ' 00:00:00+00',
                        (first + interval '1 month')::date::text || ' 00:00:00+00');
                EXCEPTION WHEN duplicate_table THEN
                    NULL;  -- another writer made it meanwhile
                END;
            END IF;
            RETURN part;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM platform.collections WHERE id IN ('gps_latest', 'gps_positions'); "
        "DROP VIEW gps.positions_features; DROP VIEW gps.latest_features; "
        "DROP FUNCTION gps.ensure_month(timestamptz); DROP TABLE gps.rejects; "
        "DROP TABLE gps.latest; DROP TABLE gps.positions; DROP TABLE gps.devices;"
    )
