"""The platform tables (schemas ``platform`` and ``rs``) as SQLAlchemy/GeoAlchemy2 models.

These describe the tables the migrations create; the migrations themselves never import
this module (a migration is frozen at the schema of its day). Who uses the models:

- :mod:`spatial.accounts` (departments, users, roles, API keys, grants, visibility, the
  sign-in failure counts), :meth:`spatial.access.Directory.load` and the SQLAlchemy half of
  :mod:`spatial.audit` (:func:`~spatial.audit.audit`, :func:`~spatial.audit.entries`) build
  their statements with SQLAlchemy Core over these tables, values bound; a grant's area
  goes through its ``Geometry`` column and geoalchemy2's ``ST_GeomFromText``, ``ST_Multi``
  and ``ST_AsText``. They import this module when they first build a statement, not when
  they are imported: every ``spatial`` command imports them, and this module (the ORM and
  geoalchemy2) costs a start-up about a fifth of a second (below).
- ``tests/test_migrations.py`` compares the models with the migrated schema
  (``alembic.autogenerate.compare_metadata``); ``tests/test_models_use.py`` checks that the
  repositories above run only statements built from them, and that a whole vector ingest
  never imports this module.

The rest reads and writes these tables with plain SQL (values bound, identifiers quoted by
the driver), for these reasons:

- the catalog (:mod:`spatial.catalog`, ``collections``): the vector ingest imports it, and
  the ingest's whole process is timed against ogr2ogr (``benchmarks/ingest.py``). Measured
  2026-12-07 on the shared 2-core machine, medians of 9 runs: ``python -X importtime``
  gives ``import spatial.catalog`` 0.29 s and ``import spatial.models`` 0.55 s (the
  catalog included); imported after a ``spatial ingest vector`` process's own imports
  (``spatial.cli``, ``spatial.ingest.vector``), this module adds 0.22 s.
- the editions, feature history and changes, the quarantine (:mod:`spatial.edits`,
  :mod:`spatial.ingest.history`, :mod:`spatial.ingest.publish`): psycopg connections
  (asynchronous ones for the edits), in the transaction that changes the layer table, with
  SQL composed per layer table (``psycopg.sql``) whose columns are known only at run time;
  their audit rows go through :data:`spatial.audit.INSERT`. The jobs
  (:mod:`spatial.ingest.jobs`) are written beside them, on a psycopg connection of their own.
- GPS (:mod:`spatial.gps`): psycopg pipelines on the receivers' hot path; their audit rows
  go through :func:`spatial.audit.record`.
- raster items (``rs.items``): plain SQL in :mod:`spatial.ingest.raster` beside the
  catalog's upsert (not moved to the models yet; nothing stands in the way, as that ingest
  loads them for its audit row anyway), read through psycopg by the STAC, coverage and
  mosaic readers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from spatial.catalog import LAYERS

PLATFORM = "platform"
GPS = "gps"
RS = "rs"
SCHEMAS = (PLATFORM, LAYERS, GPS, RS)
"""Schemas by concern: the catalog and accounts, vector layer tables, GPS, raster items."""

COLLECTION_KINDS = ("vector", "raster", "gps")
JOB_KINDS = (*COLLECTION_KINDS, "process")
ROLES = ("viewer", "editor", "steward", "admin")
PRIVILEGES = ("read", "write", "admin")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


class Base(DeclarativeBase):
    """Declarative base bound to the ``platform`` schema."""

    metadata = MetaData(schema=PLATFORM)


def _now() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Department(Base):
    """A city department (planning, water, land resources, ...)."""

    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_en: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now()


class Role(Base):
    """A role a user holds: viewer, editor, steward or admin."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    description: Mapped[str] = mapped_column(Text, nullable=False)


class User(Base):
    """A person or a service account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    display_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    department_id: Mapped[str | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL")
    )
    password_hash: Mapped[str | None] = mapped_column(Text)
    is_service: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    """Bearer tokens carry the version they were issued at; raising it revokes them all."""


class ApiKey(Base):
    """An API key: shown once, kept as the SHA-256 of its secret, found by its prefix."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    prefix: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[dt.datetime] = _now()
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuthFailure(Base):
    """A failed sign-in or an unknown key, counted to limit guessing across workers."""

    __tablename__ = "auth_failures"
    __table_args__ = (
        CheckConstraint("kind IN ('password', 'key', 'token')", name="kind_valid"),
        Index("auth_failures_subject_idx", "subject", "at"),
        Index("auth_failures_addr_idx", "remote_addr", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = _now()
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    """password, key or token."""
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    remote_addr: Mapped[str | None] = mapped_column(INET)


class UserRole(Base):
    """Which roles a user holds."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(ForeignKey("roles.name"), primary_key=True)


class Collection(Base):
    """One entry of the catalog: a vector layer, a raster collection or a GPS view."""

    __tablename__ = "collections"
    __table_args__ = (
        CheckConstraint(f"kind IN {COLLECTION_KINDS}", name="kind_valid"),
        CheckConstraint("id ~ '^[a-z][a-z0-9_]{0,62}$'", name="id_format"),
        Index("collections_subsystems_idx", "subsystems", postgresql_using="gin"),
        Index("collections_footprint_idx", "footprint", postgresql_using="gist"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    subsystems: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    keywords: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    storage_schema: Mapped[str | None] = mapped_column(Text)
    storage_table: Mapped[str | None] = mapped_column(Text)
    storage_path: Mapped[str | None] = mapped_column(Text)
    crs: Mapped[str | None] = mapped_column(Text)
    """The source CRS as an authority code, e.g. ``EPSG:4546``."""
    srid: Mapped[int | None] = mapped_column(Integer)
    footprint: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True
    )
    """Spatial extent in lon/lat (CRS84 axis order)."""
    temporal_start: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    temporal_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    owner_department: Mapped[str | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL")
    )
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    feature_count: Mapped[int | None] = mapped_column(BigInteger)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    """Attribute schema and kind-specific settings (key field, bands, styles...)."""
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()


class Grant(Base):
    """A privilege on a collection for the public, a department, a role or a user."""

    __tablename__ = "grants"
    __table_args__ = (
        CheckConstraint(
            "grantee_kind IN ('public', 'department', 'role', 'user')", name="grantee_kind_valid"
        ),
        CheckConstraint(f"privilege IN {PRIVILEGES}", name="privilege_valid"),
        UniqueConstraint("collection_id", "grantee_kind", "grantee", "privilege"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    )
    grantee_kind: Mapped[str] = mapped_column(Text, nullable=False)
    grantee: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    privilege: Mapped[str] = mapped_column(Text, nullable=False)
    row_filter: Mapped[str | None] = mapped_column(Text)
    """A CQL2 text expression limiting the rows, e.g. ``district = 3``."""
    row_filter_area: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True
    )
    created_at: Mapped[dt.datetime] = _now()


class AuditEntry(Base):
    """One write or admin action. Append-only: a trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("audit_log_collection_at_idx", "collection_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = _now()
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    remote_addr: Mapped[str | None] = mapped_column(INET)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    collection_id: Mapped[str | None] = mapped_column(Text)
    feature_ids: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    version_before: Mapped[int | None] = mapped_column(Integer)
    version_after: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


class IngestJob(Base):
    """A vector, raster or GPS ingest, or a process run: state, progress and the report."""

    __tablename__ = "ingest_jobs"
    __table_args__ = (
        CheckConstraint(f"state IN {JOB_STATES}", name="state_valid"),
        CheckConstraint("progress BETWEEN 0 AND 1", name="progress_range"),
        CheckConstraint(f"kind IN {JOB_KINDS}", name="kind_valid"),
        Index("ingest_jobs_state_idx", "state", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    collection_id: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default="queued")
    progress: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    message: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Edition(Base):
    """One ingest of a vector collection: edition 1, 2, ... with its valid-from time."""

    __tablename__ = "editions"

    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    edition: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recorded_at: Mapped[dt.datetime] = _now()
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str | None] = mapped_column(Text)
    checksum: Mapped[str | None] = mapped_column(Text)
    key: Mapped[str | None] = mapped_column(Text)
    feature_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    """The diff against the previous edition: added, removed, geometry/attributes changed."""


class FeatureVersion(Base):
    """A replaced version of a feature, valid from one edition up to (not including) another."""

    __tablename__ = "feature_history"
    __table_args__ = (
        ForeignKeyConstraint(
            ["collection_id", "edition_to"],
            ["editions.collection_id", "editions.edition"],
            ondelete="CASCADE",
        ),
        CheckConstraint("edition_from < edition_to", name="editions_ordered"),
        Index("feature_history_key_idx", "collection_id", "key"),
        Index("feature_history_editions_idx", "collection_id", "edition_to", "edition_from"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    collection_id: Mapped[str] = mapped_column(Text, nullable=False)
    key: Mapped[str] = mapped_column(Text, nullable=False)
    edition_from: Mapped[int] = mapped_column(Integer, nullable=False)
    edition_to: Mapped[int] = mapped_column(Integer, nullable=False)
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    valid_to: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    geom: Mapped[Any] = mapped_column(Geometry(spatial_index=False), nullable=True)


class FeatureChange(Base):
    """How one feature changed in one edition."""

    __tablename__ = "feature_changes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["collection_id", "edition"],
            ["editions.collection_id", "editions.edition"],
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "change IN ('added', 'removed', 'geometry', 'attributes', 'geometry+attributes')",
            name="change_kind_valid",
        ),
        Index("feature_changes_key_idx", "collection_id", "key"),
    )

    collection_id: Mapped[str] = mapped_column(Text, primary_key=True)
    edition: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    change: Mapped[str] = mapped_column(Text, nullable=False)
    """added, removed, geometry, attributes or geometry+attributes."""
    fields: Mapped[list[str] | None] = mapped_column(ARRAY(Text))


class QuarantinedFeature(Base):
    """A feature an ingest kept aside, with the reasons, for the steward to fix."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("quarantine_job_idx", "job_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ingest_jobs.id", ondelete="CASCADE"), nullable=False
    )
    collection_id: Mapped[str] = mapped_column(Text, nullable=False)
    source_fid: Mapped[int | None] = mapped_column(BigInteger)
    key: Mapped[str | None] = mapped_column(Text)
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSONB, nullable=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    geom: Mapped[Any] = mapped_column(Geometry(spatial_index=False), nullable=True)
    created_at: Mapped[dt.datetime] = _now()


class RasterItem(Base):
    """One scene of a raster collection (a STAC Item): footprint, time, bands, COG assets."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name="id_format"),
        Index("items_geom_idx", "geom", postgresql_using="gist"),
        Index("items_datetime_idx", "datetime", "collection_id", "id"),
        {"schema": RS},
    )

    collection_id: Mapped[str] = mapped_column(
        ForeignKey("platform.collections.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    datetime: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False
    )
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    """STAC Item properties: ``eo:bands``, ``proj:*``, ``platform``, ``gsd``..."""
    assets: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    """STAC assets; ``href`` relative to the data directory."""
    data_path: Mapped[str] = mapped_column(Text, nullable=False)
    """What the values are read from: the COG, or a VRT stacking per-band COGs."""
    web_path: Mapped[str] = mapped_column(Text, nullable=False)
    """The display COG on the WebMercatorQuad grid (map tiles)."""
    created_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
