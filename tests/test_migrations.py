"""Migrations: every revision up and down, models in step, the audit log append-only."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from support import run_cli

from spatial.db import migrate, sqlalchemy_url
from spatial.models import SCHEMAS, Base

PLATFORM_TABLES = {
    "collections",
    "departments",
    "users",
    "roles",
    "user_roles",
    "grants",
    "audit_log",
    "ingest_jobs",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'platform'"
        ).fetchall()
    return {r[0] for r in rows}


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace").fetchall()
    return {r[0] for r in rows}


def test_cli_migrate_creates_the_schema_on_an_empty_database(empty_database: str) -> None:
    env = {"SPATIAL_DATABASE_URL": empty_database}
    out = run_cli("db", "migrate", **env)
    assert out.returncode == 0, out.stderr
    assert "schema migrated" in out.stdout
    assert _tables(empty_database) >= PLATFORM_TABLES
    assert set(SCHEMAS) <= _schemas(empty_database)
    assert migrate.current(empty_database) == migrate.head()
    # In place and idempotent: a second run changes nothing.
    again = run_cli("db", "migrate", **env)
    assert again.returncode == 0
    assert "already at revision" in again.stdout


def test_every_migration_up_and_down(empty_database: str) -> None:
    script = ScriptDirectory(str(migrate.MIGRATIONS))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions[0] == "0001"
    for rev in revisions:
        migrate.upgrade(empty_database, rev)
        assert migrate.current(empty_database) == rev
    assert _tables(empty_database) >= PLATFORM_TABLES
    for rev in reversed(revisions):
        down_to = script.get_revision(rev).down_revision or "base"
        migrate.downgrade(empty_database, str(down_to))
        assert migrate.current(empty_database) == (None if down_to == "base" else down_to)
    assert _tables(empty_database) == set()
    assert not set(SCHEMAS) & _schemas(empty_database)
    migrate.upgrade(empty_database)
    assert _tables(empty_database) >= PLATFORM_TABLES


def test_models_match_the_migrated_schema(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "include_schemas": True,
                    "include_name": lambda name, type_, _p: (
                        type_ != "schema" or name in {"platform", "rs"}
                    ),
                    "compare_type": True,
                },
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_roles_are_seeded(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        roles = {r[0] for r in conn.execute("SELECT name FROM platform.roles")}
    assert roles == {"viewer", "editor", "steward", "admin"}


def test_audit_log_is_append_only(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO platform.audit_log (actor, action, collection_id) "
            "VALUES ('tester', 'test', 'x')"
        )
        conn.commit()
        for statement in (
            "UPDATE platform.audit_log SET actor = 'someone else'",
            "DELETE FROM platform.audit_log",
            "TRUNCATE platform.audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
            conn.rollback()
        count = conn.execute(
            "SELECT count(*) FROM platform.audit_log WHERE actor = 'tester'"
        ).fetchone()
    assert count == (1,)


def test_check_constraints_reject_bad_rows(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO platform.collections (id, title, kind) "
                "VALUES ('ok_id', 't', 'hologram')"
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO platform.collections (id, title, kind) "
                "VALUES ('Bad Id; DROP', 't', 'vector')"
            )
        conn.rollback()
