"""``spatial backup`` and ``spatial restore``: the database and the raster store together.

A restore is audited as ``cli:<OS user>`` in the restored database; a forced one first
keeps the audit log it replaces in a new archive (:func:`spatial.backup.keep_audit_log`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spatial.audit import Actor
from spatial.cli.common import console, friendly
from spatial.db import redact, resolve_url
from spatial.settings import Settings

if TYPE_CHECKING:
    from spatial.backup import Manifest


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _summary(manifest: Manifest) -> None:
    features = sum(c["rows"] or 0 for c in manifest.collections.values() if c["kind"] == "vector")
    console.print(
        f"  database dump  {_size(manifest.database['size'])} "
        f"(PostgreSQL {manifest.postgres_version}, PostGIS {manifest.postgis_version}, "
        f"schema {manifest.alembic_revision})"
    )
    console.print(f"  rasters        {len(manifest.files)} files, {_size(manifest.raster_bytes)}")
    console.print(
        f"  catalog        {len(manifest.collections)} collections, {features} features, "
        f"{manifest.gps_positions or 0} GPS positions, {manifest.editions or 0} editions, "
        f"{manifest.feature_history or 0} history rows"
    )
    console.print(f"  took           {manifest.seconds:.1f} s")


@friendly
def backup(
    out: Path = typer.Argument(..., help="The archive to write (a .tar; must not exist)."),
) -> None:
    """Back up the database and the raster store, consistent at one point in time."""
    from spatial.backup import backup as run  # noqa: PLC0415 - keep `spatial --help` fast

    settings = Settings()
    url = resolve_url(settings)
    manifest = run(url, settings, out)
    console.print(f"[green]backup written[/] {out} ({_size(out.stat().st_size)}) of {redact(url)}")
    _summary(manifest)


@friendly
def restore(
    archive: Path = typer.Argument(..., help="An archive written by 'spatial backup'."),
    force: bool = typer.Option(
        False, "--force", help="Restore over a database or raster store that is not empty."
    ),
    keep_log_in: Path | None = typer.Option(
        None,
        "--keep-log-in",
        help="With --force: the folder where the audit log the restore "
        "replaces is kept (default: the archive's folder).",
    ),
) -> None:
    """Restore a backup into the (empty) database and the data folder's raster store."""
    from spatial.backup import restore as run  # noqa: PLC0415 - keep `spatial --help` fast

    settings = Settings()
    url = resolve_url(settings)
    manifest = run(archive, url, settings, force=force, actor=Actor.local(),
                   keep_log_in=keep_log_in)  # fmt: skip
    console.print(f"[green]restored[/] {archive} (made {manifest.created})", highlight=False)
    console.print(f"  into {redact(url)} and {settings.data_dir}", highlight=False)
    console.print("  counts and checksums verified")
    kept = manifest.replaced_log
    if kept is not None and kept.path is not None:
        console.print(f"  replaced audit log ({kept.rows} rows) kept in {kept.path}",
                      highlight=False)  # fmt: skip
    _summary(manifest)
