"""The ``spatial`` command line: database, server, demo data, ingest.

Every command builds its :class:`~spatial.settings.Settings` from the environment
(``SPATIAL_*``) once and passes it down. Domain errors become a red message and exit
code 1, never a traceback.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import wraps
from importlib.metadata import entry_points
from typing import Any, TypeVar

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spatial.errors import SpatialError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="spatial",
    help="The 3S spatial platform: imagery, parcels and GPS tracks in one PostGIS.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def progress_bar() -> Progress:
    """The progress bar every long command shows."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def friendly(func: F) -> F:
    """Turn a domain error into a clear message and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpatialError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
        except psycopg.OperationalError as exc:
            err_console.print(
                f"[bold red]error:[/] cannot reach the database: {exc}".strip(), highlight=False
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _register() -> None:
    from spatial.cli import backup, db, gps, ingest, samples, serve, users  # noqa: PLC0415

    app.add_typer(db.app, name="db")
    app.add_typer(samples.app, name="samples")
    app.add_typer(ingest.app, name="ingest")
    app.add_typer(users.app, name="user")
    app.add_typer(gps.app, name="gps")
    app.command("serve")(serve.serve)
    app.command("backup")(backup.backup)
    app.command("restore")(backup.restore)
    # Command groups of the other packages (``tiles``), found through their entry points so
    # that ``spatial`` imports none of them.
    for entry in entry_points(group="spatial.commands"):
        app.add_typer(entry.load(), name=entry.name)


def main() -> None:
    """Entry point of the ``spatial`` console script."""
    _register()
    try:
        app(prog_name="spatial")
    finally:
        # The process ends now: spare it the final collection over every object that
        # the commands created (half a second after an ingest of 200,000 features).
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
