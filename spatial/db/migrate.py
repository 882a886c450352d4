"""Schema migrations (Alembic), run on a connection we open ourselves.

There is no ``alembic.ini``: the script location is this package's ``migrations``
folder and the connection comes from :func:`spatial.db.resolve_url`, so the same code
upgrades the embedded cluster, an external server and each test database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from spatial.db import engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    """The newest revision the code knows."""
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    if rev is None:  # pragma: no cover - the foundation migration always exists
        msg = "no migrations found"
        raise RuntimeError(msg)
    return rev


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None for an empty database."""
    with engine(url) as eng, eng.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` in place (each migration in its own transaction)."""
    _run(url, "upgrade", revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` removes everything)."""
    _run(url, "downgrade", revision)


def _run(url: str, direction: str, revision: str) -> None:
    with engine(url) as eng, eng.begin() as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


VERSIONS = "SELECT postgis_lib_version(), (SELECT version_num FROM alembic_version)"
"""PostGIS's version and the schema's revision (one row): what readiness reports."""
