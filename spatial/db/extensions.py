"""The PostgreSQL extensions the platform stands on, and the versions it reports.

PostGIS (with its raster part) and pgRouting live in the platform database; each is a
package of the server's operating system, so when one is missing the message names the
package to install on *that* server (an external database included), not a Python one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from spatial.errors import ConfigurationError

PACKAGES = {"postgis": "postgis-3", "postgis_raster": "postgis-3", "pgrouting": "pgrouting"}
"""Extension → the Debian/Ubuntu package suffix after ``postgresql-<major>-``."""

VERSIONS = (
    "SELECT current_setting('server_version'), "
    "(SELECT extversion FROM pg_extension WHERE extname = 'postgis'), "
    "(SELECT extversion FROM pg_extension WHERE extname = 'pgrouting')"
)


@dataclass(frozen=True)
class Versions:
    """The server's and the installed extensions' versions (None: not installed)."""

    postgres: str | None
    postgis: str | None
    pgrouting: str | None


def versions(conn: psycopg.Connection[Any]) -> Versions:
    """What ``spatial db status`` reports of the database behind ``conn``."""
    row = conn.execute(VERSIONS).fetchone()
    return Versions(*row) if row else Versions(None, None, None)


def package(conn: psycopg.Connection[Any], extension: str) -> str:
    """The operating-system package that brings ``extension`` to this server's version."""
    row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
    major = row[0] if row else "NN"
    return f"postgresql-{major}-{PACKAGES.get(extension, extension)}"


def require(conn: psycopg.Connection[Any], extension: str) -> None:
    """Refuse, with the package to install, when the server cannot create ``extension``.

    Raises:
        ConfigurationError: the extension is not available on the server.
    """
    found = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = %s", (extension,)
    ).fetchone()
    if found is None:
        msg = (
            f"the database server has no {extension} extension: install the package "
            f"{package(conn, extension)} on that server (scripts/sysdeps.sh does it for the "
            "embedded cluster), then run 'spatial db migrate' again"
        )
        raise ConfigurationError(msg)
