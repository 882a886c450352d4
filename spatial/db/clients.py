"""PostgreSQL client programs (pg_dump, pg_restore, psql) run against a database URL.

The password goes through ``PGPASSWORD``, never the command line. When we are root and
the server's Unix socket directory belongs to another account (the embedded cluster,
:mod:`spatial.db.embedded`), the program runs as that account; it reads and writes only
the file handles given to it, so it needs no access to our folders.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from spatial.db.embedded import pg_bindir
from spatial.errors import DatabaseUnavailableError


def restore_dump(
    url: str, dump: IO[bytes], *, replace: bool = False, first: sql.Composable | None = None,
    last: sql.Composable | None = None,
) -> None:  # fmt: skip
    """Restore a custom-format dump into the database, in one transaction.

    ``pg_restore`` turns the dump into SQL and ``psql --single-transaction`` runs it, with
    ``first`` before everything and ``last`` after the dump: a failure anywhere (one of
    those statements raising included) leaves the database as it was.

    Args:
        replace: drop every extension and schema of the target first (``pg_restore
            --clean`` cannot drop the partitions' inherited constraints, GPS positions).
            Dropping a schema drops its tables whole: no row or TRUNCATE trigger fires, so
            the audit log's append-only trigger does not stop it (the caller keeps the
            log it replaces, :mod:`spatial.backup`).
        first: statements to run before anything is dropped or restored (a lock and a
            check that refuses the restore by raising an error).
        last: statements to run after the dump (the restore's own audit row).
    """
    with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
        commands = [] if first is None else [first.as_string(conn)]
        if replace:
            commands.append(_cleanup(conn))
        after = [] if last is None else [last.as_string(conn)]
    script = subprocess.Popen(
        [str(pg_bindir() / "pg_restore"), "--no-owner", "--no-privileges", "--file=-"],
        stdin=dump, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        run(url, ["psql", "--no-psqlrc", "--quiet", "--single-transaction",
                   "--set=ON_ERROR_STOP=1", *(f"--command={c}" for c in commands),
                   "--file=-", *(f"--command={c}" for c in after),
                   "--output=/dev/null"], stdin=script.stdout)  # fmt: skip
    finally:
        if script.stdout is not None:
            script.stdout.close()
        _, errors = script.communicate()
    if script.returncode != 0:
        reason = errors.decode("utf-8", errors="replace").strip()
        msg = f"pg_restore failed: {reason[-2000:]}"
        raise DatabaseUnavailableError(msg)


def _cleanup(conn: psycopg.Connection[Any]) -> str:
    """The statements that drop every extension and schema of the database (and make an
    empty ``public``)."""
    extensions = conn.execute(
        "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY extname"
    ).fetchall()
    schemas = conn.execute(
        "SELECT nspname FROM pg_namespace n WHERE nspname NOT IN ('pg_catalog', "
        "'information_schema') AND nspname NOT LIKE 'pg\\_%' AND NOT EXISTS (SELECT 1 "
        "FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass "
        "AND d.objid = n.oid AND d.deptype = 'e') ORDER BY nspname"
    ).fetchall()
    drops: list[sql.Composable] = [
        sql.SQL("DROP EXTENSION IF EXISTS {} CASCADE;").format(sql.Identifier(r[0]))
        for r in extensions
    ]
    drops += [
        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE;").format(sql.Identifier(r[0])) for r in schemas
    ]
    drops.append(sql.SQL("CREATE SCHEMA IF NOT EXISTS public;"))
    return sql.SQL(" ").join(drops).as_string(conn)


def run(url: str, argv: list[str], *, stdin: IO[bytes] | None = None,
         stdout: IO[bytes] | None = None) -> None:  # fmt: skip
    """Run a PostgreSQL client program (``argv[0]``) against ``url``.

    Raises:
        DatabaseUnavailableError: the program failed (its message is quoted).
    """
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    kwargs: dict[str, Any] = {}
    user = socket_owner(str(params.get("host") or ""))
    if user is not None:
        env = {"PATH": env.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": "/"}
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/"}
    if password:
        env["PGPASSWORD"] = str(password)
    command = [str(pg_bindir() / argv[0]), *argv[1:], f"--dbname={make_conninfo('', **params)}"]
    result = subprocess.run(
        command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env, check=False,
        **kwargs,
    )  # fmt: skip
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", errors="replace").strip()
        msg = f"{argv[0]} failed: {reason[-2000:]}"
        raise DatabaseUnavailableError(msg)


def socket_owner(host: str) -> pwd.struct_passwd | None:
    """The account to run as to reach a Unix socket directory, or None for ourselves."""
    if os.geteuid() != 0 or not host.startswith("/"):
        return None
    try:
        uid = Path(host.split(",", maxsplit=1)[0]).stat().st_uid
        return pwd.getpwuid(uid) if uid != 0 else None
    except (OSError, KeyError):
        return None
