"""Geofences: polygons devices enter, leave and dwell in; the state of each device in each
fence; the events.

- ``gps.fences``: a polygon copied from a polygon collection (``source_collection`` and
  ``source_feature``, re-imported by the same pair) or drawn; ``dwell_s`` makes a
  ``dwell`` event after that long inside;
- ``gps.fence_state``: whether a device is inside a fence, since when, and whether its
  dwell event was sent;
- ``gps.events``: ``enter``, ``exit`` and ``dwell`` events, served as the catalog entry
  ``gps_events`` through the view ``gps.events_features``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gps.fences (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL,
            source_collection text,
            source_feature bigint,
            geom geometry(MultiPolygon, 4326) NOT NULL,
            dwell_s integer CHECK (dwell_s > 0),
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (source_collection, source_feature)
        );
        CREATE INDEX fences_geom_idx ON gps.fences USING gist (geom);
        CREATE TABLE gps.fence_state (
            device_id text NOT NULL,
            fence_id bigint NOT NULL REFERENCES gps.fences(id) ON DELETE CASCADE,
            inside boolean NOT NULL,
            since timestamptz NOT NULL,
            dwelt boolean NOT NULL DEFAULT false,
            PRIMARY KEY (device_id, fence_id)
        );
        CREATE TABLE gps.events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_id text NOT NULL,
            fence_id bigint NOT NULL REFERENCES gps.fences(id) ON DELETE CASCADE,
            kind text NOT NULL CHECK (kind IN ('enter', 'exit', 'dwell')),
            time timestamptz NOT NULL,
            geom geometry(Point, 4326) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX events_device_time_idx ON gps.events (device_id, time);
        CREATE INDEX events_geom_idx ON gps.events USING gist (geom);
        CREATE VIEW gps.events_features AS
            SELECT e.id AS fid, e.device_id, d.department, e.fence_id, f.name AS fence, e.kind,
                   e.time, e.geom
            FROM gps.events e JOIN gps.fences f ON f.id = e.fence_id
            LEFT JOIN gps.devices d ON d.id = e.device_id;
        INSERT INTO platform.collections (id, title, description, kind, subsystems, keywords,
                storage_schema, storage_table, crs, srid, properties)
        VALUES ('gps_events', 'Geofence events', 'Devices entering, leaving and dwelling in '
                'geofences.', 'gps', '{emergency}', '{gps,geofences}', 'gps',
                'events_features', 'EPSG:4326', 4326,
                '{"fields": {"device_id": "text", "department": "text", "fence_id": "bigint",
                  "fence": "text", "kind": "text", "time": "timestamp"},
                  "geometry_type": "Point", "temporal_field": "time"}');
        """
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM platform.collections WHERE id = 'gps_events'; "
        "DROP VIEW gps.events_features; DROP TABLE gps.events; DROP TABLE gps.fence_state; "
        "DROP TABLE gps.fences;"
    )
