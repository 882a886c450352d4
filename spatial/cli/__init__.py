"""The ``spatial`` command line: database, server, demo data, ingest.

Every command builds its :class:`~spatial.settings.Settings` from the environment
(``SPATIAL_*``) once and passes it down. Domain errors become a red message and exit
code 1, never a traceback.
"""

from __future__ import annotations

import gc
from importlib.metadata import entry_points

import typer

from spatial.cli import backup, db, flood, gps, ingest, network, samples, serve, sta, users
from spatial.cli.common import console, err_console, friendly, progress_bar

__all__ = ["app", "console", "err_console", "friendly", "main", "progress_bar"]

app = typer.Typer(
    name="spatial",
    help="The 3S spatial platform: imagery, parcels and GPS tracks in one PostGIS.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    app.add_typer(db.app, name="db")
    app.add_typer(samples.app, name="samples")
    app.add_typer(ingest.app, name="ingest")
    app.add_typer(users.app, name="user")
    app.add_typer(gps.app, name="gps")
    app.add_typer(network.app, name="network")
    app.add_typer(sta.app, name="sta")
    app.add_typer(flood.app, name="flood")
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
