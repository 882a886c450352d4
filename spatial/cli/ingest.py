"""``spatial ingest``: load files into the platform."""

from __future__ import annotations

from pathlib import Path

import typer

from spatial.cli import console, friendly, progress_bar
from spatial.db import engine, resolve_url
from spatial.settings import Settings

app = typer.Typer(
    help="Load vector files (and, later, rasters and GPS logs).", no_args_is_help=True
)


@app.command()
@friendly
def vector(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="The file to load."),
    collection: str = typer.Option(..., "--collection", help="Collection id (a-z, 0-9, _)."),
    title: str | None = typer.Option(None, help="Human title [default: the id]."),
    subsystem: list[str] = typer.Option([], help="Subsystem(s) that show it (repeatable)."),
    layer: str | None = typer.Option(None, help="Layer inside a multi-layer file."),
    crs: str | None = typer.Option(None, help="CRS when the file has none, e.g. EPSG:4546."),
    encoding: str | None = typer.Option(None, help="Attribute encoding, e.g. gbk."),
) -> None:
    """Load a vector file into a layer table and register it in the catalog."""
    from spatial.ingest.vector import VectorSource, load_vector  # noqa: PLC0415 - heavy

    source = VectorSource(
        path=path,
        collection_id=collection,
        title=title or collection,
        subsystems=tuple(subsystem),
        layer=layer,
        crs=crs,
        encoding=encoding,
    )
    with (
        engine(resolve_url(Settings())) as eng,
        progress_bar() as bar,
        eng.begin() as conn,
    ):
        task = bar.add_task(f"loading {path.name}", total=None)
        record = load_vector(
            conn, source, lambda done, total: bar.update(task, completed=done, total=total)
        )
    console.print(
        f"[green]loaded[/] {record.feature_count} features into "
        f"[bold]{record.id}[/] (version {record.version}, {record.crs})"
    )
