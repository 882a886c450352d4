"""The database: where it is, how to reach it, and its schema migrations.

One function decides where the database is (:func:`resolve_url`): the configured
``SPATIAL_DATABASE_URL``, or the embedded cluster, started on demand. Everything else
(CLI, API, tests) goes through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from spatial.db.embedded import EmbeddedCluster
from spatial.errors import DatabaseUnavailableError
from spatial.settings import Settings

__all__ = ["EmbeddedCluster", "engine", "redact", "resolve_url", "sqlalchemy_url"]


def resolve_url(settings: Settings, *, start: bool = True, tcp: bool = False) -> str:
    """The libpq URL of the platform database.

    Args:
        settings: the instance settings.
        start: when no URL is configured, initialise and start the embedded cluster if it
            is not running. With ``start=False`` the recorded cluster's URL is returned
            whether or not it runs.
        tcp: the embedded cluster's URL over TCP on 127.0.0.1 rather than through its
            Unix socket (the default, and the faster).

    Returns:
        A ``postgresql://`` URL. With a configured URL no server is ever started.

    Raises:
        DatabaseUnavailableError: the embedded cluster is absent and ``start`` is False,
            or it could not be started.
    """
    if settings.database.url is not None:
        return settings.database.url.get_secret_value()
    cluster = EmbeddedCluster(settings.var_dir, settings.embedded)
    if start:
        return cluster.ensure_running().url(tcp=tcp)
    info = cluster.info()
    if info is None:
        msg = "the embedded cluster is not initialised; run 'spatial db up'"
        raise DatabaseUnavailableError(msg)
    return info.url(tcp=tcp)


def sqlalchemy_url(url: str) -> str:
    """The same URL for SQLAlchemy with the psycopg 3 driver."""
    scheme, rest = url.split("://", 1)
    if scheme in {"postgres", "postgresql"}:
        scheme = "postgresql+psycopg"
    return f"{scheme}://{rest}"


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def engine(url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine without a pool, for short-lived work (CLI, migrations, reloads).

    Raises:
        DatabaseUnavailableError: the server cannot be reached (the message names it).
    """
    eng = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        yield eng
    except OperationalError as exc:
        reason = str(exc.orig).strip() if exc.orig else str(exc)
        msg = f"cannot reach the database at {redact(url)}: {reason}"
        raise DatabaseUnavailableError(msg) from exc
    finally:
        eng.dispose()
