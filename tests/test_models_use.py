"""The models of ``spatial.models`` are what the account, access and audit repositories
build their statements from, and the vector ingest never imports them.

- Every statement that ``spatial.accounts``, ``Directory.load`` and the audit log's
  SQLAlchemy functions run, caught as it is executed on a real database, is a Core
  statement over the models' tables (a ``text()`` string would be caught here), and the
  values in it are bound: hostile text comes back as it went in.
- A whole ``spatial ingest vector`` process, run for real with ``-X importtime``, imports
  neither ``spatial.models`` nor geoalchemy2 nor the ORM (their import costs its start-up a
  fifth to a half of a second; see ``spatial/models.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Alias, Delete, Engine, Insert, Select, Table, TextClause, Update, event
from sqlalchemy.sql.util import find_tables
from support import cli_env

from spatial import accounts, audit, models
from spatial.access import Directory
from spatial.audit import Actor
from spatial.catalog import get_collection
from spatial.db import engine

ROOT = Path(__file__).resolve().parent.parent
SPATIAL = ROOT / "spatial"
REPOSITORIES = {"accounts.py", "access.py", "audit.py"}
COLLECTION = "models_use_points"
ACTOR = Actor(name="pytest-models-use", address="192.0.2.7")
HOSTILE = "O'Brien'); DROP TABLE platform.users; --"
HEAVY = ("spatial.models", "geoalchemy2", "sqlalchemy.orm")


@pytest.fixture(scope="module")
def ingest(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small point layer loaded by a whole ``spatial ingest vector`` process under
    ``-X importtime``; returns the process's standard error (the import times)."""
    folder = tmp_path_factory.mktemp("models_use")
    points = [{"type": "Feature", "properties": {"district": d, "name": f"p{d}"},
               "geometry": {"type": "Point", "coordinates": [112.0 + d / 100, 22.9]}}
              for d in range(1, 5)]  # fmt: skip
    source = folder / "points.geojson"
    source.write_text(json.dumps({"type": "FeatureCollection", "features": points}))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "spatial.cli", "ingest", "vector",
         str(source), "--collection", COLLECTION],
        env=cli_env(SPATIAL_DATABASE_URL=database_url, SPATIAL_ENVIRONMENT="test"),
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stderr


def test_a_vector_ingest_imports_no_models_and_no_geoalchemy2(ingest: str) -> None:
    imported = {line.rsplit("|", 1)[-1].strip() for line in ingest.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    # The listing is real: the ingest command and the catalog are in it.
    assert {"spatial.ingest.vector", "spatial.catalog", "spatial.accounts"} <= imported
    heavy = sorted(name for name in imported if name.startswith(HEAVY))
    assert heavy == []


def _tables_of(statement: Any) -> set[str]:
    """The names of the tables a statement reads or writes (an alias: its table)."""
    found = set()
    for each in find_tables(statement, check_columns=True, include_crud=True):
        table = each
        while isinstance(table, Alias):
            table = table.element
        if table is not None:  # the ``*`` of ``count(*)`` has no table
            found.add(table.fullname if isinstance(table, Table) else repr(table))
    return found


@pytest.fixture
def executed(database_url: str) -> Iterator[tuple[Engine, list[tuple[str, str, Any]]]]:
    """An engine on the session database, and every statement run through it as
    (repository file, its function, the statement object)."""
    seen: list[tuple[str, str, Any]] = []

    def caught(conn: Any, statement: Any, *_: Any) -> None:
        for frame in reversed(traceback.extract_stack()):
            path = Path(frame.filename)
            if path.is_relative_to(SPATIAL):
                seen.append((path.name, frame.name, statement))
                return

    with engine(database_url) as eng:
        event.listen(eng, "before_execute", caught)
        yield eng, seen


def test_the_repositories_build_their_statements_from_the_models(
    ingest: str, executed: tuple[Engine, list[tuple[str, str, Any]]]
) -> None:
    eng, seen = executed
    with eng.begin() as conn:
        accounts.add_department(conn, ACTOR, "mu_dept", "Models in use")
        accounts.add_user(conn, ACTOR, "mu_user", roles=("viewer",), department="mu_dept",
                          password="a long enough password", display_name=HOSTILE)  # fmt: skip
        accounts.set_password(conn, ACTOR, "mu_user", "another long password")
        accounts.set_active(conn, ACTOR, "mu_user", active=False)
        accounts.set_active(conn, ACTOR, "mu_user", active=True)
        accounts.set_roles(conn, ACTOR, "mu_user", ("viewer", "editor"))
        key = accounts.create_key(conn, ACTOR, "mu_user", name=HOSTILE)
        accounts.revoke_key(conn, ACTOR, key.split("_")[1])
        area = "POLYGON((112 22, 113 22, 113 23, 112 23, 112 22))"
        grant = accounts.add_grant(conn, ACTOR, COLLECTION, "department:mu_dept", "read",
                                   row_filter="district = 2", area_wkt=area)  # fmt: skip
        again = accounts.add_grant(conn, ACTOR, COLLECTION, "department:mu_dept", "read")
        listed = accounts.list_grants(conn, COLLECTION)
        accounts.add_grant(conn, ACTOR, COLLECTION, "user:mu_user", "read", area_wkt=area)
        directory = Directory.load(conn)
        accounts.revoke_grant(conn, ACTOR, grant)
        accounts.set_visibility(conn, ACTOR, COLLECTION, department="mu_dept")
        departments = accounts.list_departments(conn)
        users = accounts.list_users(conn)
        accounts.record_failure(conn, "password", "mu_user", "192.0.2.7")
        accounts.record_failure(conn, "password", "mu_nobody", None)
        counts = accounts.recent_failures(conn, "mu_user", "192.0.2.7", 3600)
        by_null_address = accounts.recent_failures(conn, "mu_user", None, 3600)
        log = audit.entries(conn, actor=ACTOR.name, limit=1000)
        none_allowed = audit.entries(conn, actor=ACTOR.name, allowed=[])
        record = get_collection(conn, COLLECTION)

    # The statements: Core over the models' tables, from every repository function.
    tables = set(models.Base.metadata.tables)
    ours = [(f, name, s) for f, name, s in seen if f in REPOSITORIES]
    texts = [f"{f}:{name}" for f, name, s in ours if not isinstance(s, Select | Insert | Update
                                                                      | Delete)]  # fmt: skip
    assert texts == []
    for file, name, statement in ours:
        used = _tables_of(statement)
        assert used, f"{file}:{name} reads no table"
        assert used <= tables, f"{file}:{name}: {used - tables}"
    functions = {name for _, name, _ in ours}
    assert functions >= {
        "add_department", "add_user", "_update_user", "_add_roles", "set_roles",
        "list_departments", "list_users", "create_key", "revoke_key", "add_grant",
        "revoke_grant", "list_grants", "set_visibility", "record_failure", "recent_failures",
        "_department", "_user_id", "load", "audit", "entries",
    }  # fmt: skip
    # ...and the catalog is plain SQL, on purpose (see spatial/catalog.py): the check tells
    # the two apart.
    assert any(f == "catalog.py" and isinstance(s, TextClause) for f, _, s in seen)

    # What they did: the same results as ever, values bound (the hostile text came back).
    assert again == grant
    assert [(g["id"], g["row_filter"], g["area"]) for g in listed] == [(grant, None, None)]
    by_user = [g for g in directory.grants[COLLECTION] if g.grantee == "mu_user"]
    assert [g.area_wkt for g in by_user] == ["MULTIPOLYGON(((112 22,113 22,113 23,112 23,112 22)))"]
    account = directory.by_username("mu_user")
    assert account is not None
    assert (account.department, account.roles, account.active, account.token_version) == (
        "mu_dept",
        frozenset({"viewer", "editor"}),
        True,
        4,
    )
    assert any(k.user_id == account.id and k.revoked_at for k in directory.keys.values())
    assert {"id": "mu_dept", "name": "Models in use"} in departments
    user = next(u for u in users if u["username"] == "mu_user")
    assert (user["display_name"], user["roles"], user["department"], user["service"]) == (
        HOSTILE,
        ["editor", "viewer"],
        "mu_dept",
        False,
    )
    assert record.owner_department == "mu_dept"
    assert counts[:2] == (1, 1)
    assert by_null_address[:2] == (1, 0)  # a NULL address is no address: it counts nothing
    actions = [e["action"] for e in log]
    assert actions[0] == "collection.visibility"
    assert actions.count("grant.add") == 3
    assert {e["address"] for e in log} == {"192.0.2.7"}
    assert any(e["details"].get("name") == HOSTILE for e in log)
    assert none_allowed == []
