"""Road networks: the graphs pgRouting walks, built from line collections.

``net.networks`` names each network, the collection it is built from and how (fields,
speeds, snap tolerance), with the last build's report. ``net.edges`` holds its edges
(pgRouting's ``id, source, target, cost, reverse_cost``; costs in seconds, -1 where a
one-way road forbids the direction), each with the feature it came from and its geometry
in the collection's CRS; ``net.vertices`` the nodes where edges meet; ``net.closures``
the standing road closures every routing request honours until they expire (their area
in CRS84 and in the network's CRS).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE SCHEMA IF NOT EXISTS net;
        CREATE TABLE net.networks (
            id text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{0,62}$'),
            collection text NOT NULL
                REFERENCES platform.collections (id) ON UPDATE CASCADE ON DELETE CASCADE,
            srid integer NOT NULL,
            settings jsonb NOT NULL,
            report jsonb,
            built_at timestamptz,
            collection_version integer
        );
        CREATE TABLE net.vertices (
            network text NOT NULL REFERENCES net.networks (id) ON DELETE CASCADE,
            id bigint NOT NULL,
            geom geometry(Point) NOT NULL,
            PRIMARY KEY (network, id)
        );
        CREATE INDEX vertices_geom ON net.vertices USING gist (geom);
        CREATE TABLE net.edges (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            network text NOT NULL REFERENCES net.networks (id) ON DELETE CASCADE,
            fid bigint NOT NULL,
            road text,
            name text,
            class text,
            level integer NOT NULL DEFAULT 0,
            source bigint NOT NULL,
            target bigint NOT NULL,
            length_m double precision NOT NULL,
            kmh double precision NOT NULL,
            cost double precision NOT NULL,
            reverse_cost double precision NOT NULL,
            geom geometry(LineString) NOT NULL
        );
        CREATE INDEX edges_network ON net.edges (network);
        CREATE INDEX edges_geom ON net.edges USING gist (geom);
        CREATE TABLE net.closures (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            network text NOT NULL REFERENCES net.networks (id) ON DELETE CASCADE,
            reason text NOT NULL CHECK (length(trim(reason)) > 0),
            geom geometry(Geometry, 4326) NOT NULL,
            geom_native geometry NOT NULL,
            starts_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK (expires_at > starts_at)
        );
        CREATE INDEX closures_geom ON net.closures USING gist (geom_native);
        """
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS net CASCADE")
