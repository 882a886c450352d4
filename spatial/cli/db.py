"""``spatial db``: the database, embedded or external."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict

import psycopg
import typer
from rich.table import Table

from spatial.cli.common import console, friendly
from spatial.db import EmbeddedCluster, extensions, redact, resolve_url
from spatial.errors import DatabaseUnavailableError
from spatial.settings import Settings

app = typer.Typer(help="Run and inspect the platform database.", no_args_is_help=True)


@app.command()
@friendly
def up() -> None:
    """Start the embedded PostGIS cluster (initialising it on first use).

    With SPATIAL_DATABASE_URL set, only checks that the server answers.
    """
    settings = Settings()
    url = resolve_url(settings)
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.execute("SELECT 1")
    where = "external server" if not settings.uses_embedded else "embedded cluster"
    console.print(f"[green]database ready[/] ({where}): {redact(url)}")


@app.command()
@friendly
def down() -> None:
    """Stop the embedded cluster (never touches an external server)."""
    settings = Settings()
    if not settings.uses_embedded:
        console.print("SPATIAL_DATABASE_URL is set: nothing to stop (the server is not ours).")
        return
    stopped = EmbeddedCluster(settings.var_dir, settings.embedded).stop()
    console.print("embedded cluster stopped" if stopped else "embedded cluster was not running")


@app.command()
@friendly
def status(
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Report where the database is, whether it runs, PostgreSQL/PostGIS/pgRouting versions,
    schema."""
    from spatial.db import migrate  # noqa: PLC0415 - keep `spatial --help` fast

    settings = Settings()
    report: dict[str, object] = {"mode": "embedded" if settings.uses_embedded else "external"}
    if settings.uses_embedded:
        st = EmbeddedCluster(settings.var_dir, settings.embedded).status()
        report.update(asdict(st))
        url = resolve_url(settings, start=False) if st.initialised else None
    else:
        url = resolve_url(settings)
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                found = extensions.versions(conn)
            report.update(
                running=True,
                postgres_version=found.postgres,
                postgis_version=found.postgis,
                pgrouting_version=found.pgrouting,
            )
        except psycopg.OperationalError as exc:
            report.update(running=False, error=str(exc).strip())
    report["url"] = redact(url) if url else None
    if url and report.get("running"):
        report["schema_revision"] = migrate.current(url)
    report["schema_head"] = migrate.head()
    if as_json:
        console.print_json(json.dumps(report, default=str))
        return
    table = Table(show_header=False, box=None)
    for key, value in report.items():
        table.add_row(f"[bold]{key}[/]", "-" if value is None else str(value))
    console.print(table)


@app.command()
@friendly
def url(
    redacted: bool = typer.Option(False, "--redact", help="Hide the password."),
    tcp: bool = typer.Option(
        False, "--tcp", help="The embedded cluster over TCP on 127.0.0.1, not its Unix socket."
    ),
) -> None:
    """Print the database URL (starting the embedded cluster if needed)."""
    value = resolve_url(Settings(), tcp=tcp)
    typer.echo(redact(value) if redacted else value)


@app.command("migrate")
@friendly
def migrate_cmd(
    revision: str = typer.Option("head", help="Target revision; lower than current downgrades."),
) -> None:
    """Bring the database schema to the newest (or the given) revision, in place."""
    from spatial.db import migrate  # noqa: PLC0415 - keep `spatial --help` fast

    target = resolve_url(Settings())
    before = migrate.current(target)
    wanted = migrate.head() if revision == "head" else revision
    if before == wanted:
        console.print(f"schema already at revision {before}")
        return
    if revision == "base" or (before is not None and _is_older(wanted, before)):
        migrate.downgrade(target, revision)
    else:
        migrate.upgrade(target, revision)
    console.print(f"[green]schema migrated[/] {before or '(empty)'} → {migrate.current(target)}")


def _is_older(wanted: str, current: str) -> bool:
    return wanted < current  # revisions are zero-padded sequence numbers: "0001", "0002"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly
def psql(ctx: typer.Context) -> None:
    """Open psql on the platform database (extra arguments go to psql)."""
    exe = shutil.which("psql")
    if exe is None:
        msg = "psql is not installed (Debian: apt-get install postgresql-client)"
        raise DatabaseUnavailableError(msg)
    os.execv(exe, [exe, resolve_url(Settings()), *ctx.args])  # noqa: S606 - replaces this process
