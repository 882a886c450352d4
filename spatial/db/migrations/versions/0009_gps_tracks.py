"""Tracks, trips and stops derived from positions.

- ``gps.tracks``: one line per device and UTC day (the full line, and a simplified one for
  display), with its point count, time span and length;
- ``gps.trips`` and ``gps.stops``: the day split where the device stood still (a stop:
  within a radius for a while) or sent nothing for a while (a gap);
- ``gps.tracks_dirty``: the device-days whose positions changed since they were derived
  (the store marks them; :func:`spatial.gps.tracks.rebuild` clears them).

The catalog entries ``gps_tracks``, ``gps_trips`` and ``gps_stops`` serve them as
features and tiles (views with a stable ``fid``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gps.tracks_dirty (
            device_id text NOT NULL,
            day date NOT NULL,
            PRIMARY KEY (device_id, day)
        );
        CREATE TABLE gps.tracks (
            id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            device_id text NOT NULL,
            day date NOT NULL,
            geom geometry(LineString, 4326) NOT NULL,
            simple geometry(LineString, 4326) NOT NULL,
            points integer NOT NULL,
            started timestamptz NOT NULL,
            ended timestamptz NOT NULL,
            length_m double precision NOT NULL,
            PRIMARY KEY (device_id, day)
        );
        CREATE INDEX tracks_simple_idx ON gps.tracks USING gist (simple);
        CREATE TABLE gps.trips (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_id text NOT NULL,
            day date NOT NULL,
            started timestamptz NOT NULL,
            ended timestamptz NOT NULL,
            geom geometry(LineString, 4326) NOT NULL,
            length_m double precision NOT NULL
        );
        CREATE INDEX trips_device_day_idx ON gps.trips (device_id, day);
        CREATE INDEX trips_geom_idx ON gps.trips USING gist (geom);
        CREATE TABLE gps.stops (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_id text NOT NULL,
            day date NOT NULL,
            started timestamptz NOT NULL,
            ended timestamptz NOT NULL,
            geom geometry(Point, 4326) NOT NULL
        );
        CREATE INDEX stops_device_day_idx ON gps.stops (device_id, day);
        CREATE INDEX stops_geom_idx ON gps.stops USING gist (geom);
        CREATE VIEW gps.tracks_features AS
            SELECT t.id AS fid, t.device_id, d.department, t.day, t.points, t.started AS time,
                   t.ended, t.length_m, t.simple AS geom
            FROM gps.tracks t LEFT JOIN gps.devices d ON d.id = t.device_id;
        CREATE VIEW gps.trips_features AS
            SELECT t.id AS fid, t.device_id, d.department, t.day, t.started AS time, t.ended,
                   extract(epoch FROM t.ended - t.started)::float8 AS seconds, t.length_m,
                   t.geom
            FROM gps.trips t LEFT JOIN gps.devices d ON d.id = t.device_id;
        CREATE VIEW gps.stops_features AS
            SELECT s.id AS fid, s.device_id, d.department, s.day, s.started AS time, s.ended,
                   extract(epoch FROM s.ended - s.started)::float8 AS seconds, s.geom
            FROM gps.stops s LEFT JOIN gps.devices d ON d.id = s.device_id;
        INSERT INTO platform.collections (id, title, description, kind, subsystems, keywords,
                storage_schema, storage_table, crs, srid, properties)
        VALUES
            ('gps_tracks', 'GPS tracks', 'Each device''s track of each day (simplified).',
             'gps', '{emergency}', '{gps,tracks}', 'gps', 'tracks_features', 'EPSG:4326', 4326,
             '{"fields": {"device_id": "text", "department": "text", "day": "date",
               "points": "integer", "time": "timestamp", "ended": "timestamp",
               "length_m": "double precision"},
               "geometry_type": "LineString", "temporal_field": "time"}'),
            ('gps_trips', 'GPS trips', 'Tracks split at stops and gaps.',
             'gps', '{emergency}', '{gps,trips}', 'gps', 'trips_features', 'EPSG:4326', 4326,
             '{"fields": {"device_id": "text", "department": "text", "day": "date",
               "time": "timestamp", "ended": "timestamp", "seconds": "double precision",
               "length_m": "double precision"},
               "geometry_type": "LineString", "temporal_field": "time"}'),
            ('gps_stops', 'GPS stops', 'Where devices stood still, and how long.',
             'gps', '{emergency}', '{gps,stops}', 'gps', 'stops_features', 'EPSG:4326', 4326,
             '{"fields": {"device_id": "text", "department": "text", "day": "date",
               "time": "timestamp", "ended": "timestamp", "seconds": "double precision"},
               "geometry_type": "Point", "temporal_field": "time"}');
        """
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM platform.collections WHERE id IN ('gps_tracks', 'gps_trips', 'gps_stops'); "
        "DROP VIEW gps.stops_features; DROP VIEW gps.trips_features; "
        "DROP VIEW gps.tracks_features; DROP TABLE gps.stops; DROP TABLE gps.trips; "
        "DROP TABLE gps.tracks; DROP TABLE gps.tracks_dirty;"
    )
