"""``spatial network``: road networks built from line collections (pgRouting's graphs)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import typer

from spatial.audit import Actor
from spatial.cli.common import console, friendly
from spatial.db import resolve_url
from spatial.settings import Settings

app = typer.Typer(help="Road networks for routing (pgRouting).", no_args_is_help=True)


@app.command()
@friendly
def build(
    collection: str = typer.Argument(..., help="A line collection (roads)."),
    speeds: Path = typer.Option(
        ..., "--speeds", help="YAML of km/h per class (e.g. layers/networks/roads.yaml)."
    ),
    speed_field: str = typer.Option("class", "--speed-field", help="The road class field."),
    oneway_field: str | None = typer.Option(
        None, "--oneway-field", help="yes/true/1: drawn direction only; -1/reverse: opposite."
    ),
    level_field: str | None = typer.Option(
        None, "--level-field", help="Whole numbers; crossings of different levels never join."
    ),
    name_field: str | None = typer.Option("name", "--name-field", help="Road names ('' none)."),
    key_field: str | None = typer.Option(
        None, "--key-field", help="The road id reported [default: the collection's key]."
    ),
    snap: float = typer.Option(1.0, "--snap", help="Ends this close (m) to a road join it."),
    network: str | None = typer.Option(
        None, "--network", help="The network's name [default: the collection's id]."
    ),
) -> None:
    """Build (or rebuild) the network of a line collection, and report what is not connected."""
    # Imported here: the catalog and geometry modules would slow `spatial --help`.
    from spatial.catalog import get_collection  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.db import engine  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.network import build as nb  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.network.speeds import Speeds  # noqa: PLC0415 - keep `spatial --help` fast

    settings = nb.Settings(
        fields=nb.Fields(
            speed=speed_field,
            name=name_field or None,
            oneway=oneway_field,
            level=level_field,
            key=key_field,
        ),
        speeds=Speeds.load(speeds),
        snap_m=snap,
    )
    url = resolve_url(Settings())
    with engine(url) as eng, eng.connect() as conn:
        record = get_collection(conn, collection)
    with psycopg.connect(url) as conn:
        report = nb.build(conn, record, settings, network=network, actor=Actor.local())
    console.print(
        f"[green]network {report.network}[/] from {report.collection}: {report.edges} edges, "
        f"{report.vertices} vertices, {report.length_km:.1f} km of {report.roads} roads, "
        f"{report.one_way_edges} one-way edges, rebuilt {report.rebuilt} in {report.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    for cls, roads in report.default_speed_classes.items():
        console.print(
            f"class {cls!r} ({roads} roads) has no speed: {settings.speeds.default:g} km/h"
        )
    if report.pieces <= 1:
        console.print("one connected piece")
        return
    console.print(f"[yellow]{report.pieces} pieces[/]: the largest, and")
    for piece in report.disconnected:
        more = (
            ""
            if piece["roads"] <= len(piece["road_ids"])
            else f" (+{piece['roads'] - len(piece['road_ids'])})"
        )
        console.print(
            f"  {piece['edges']} edge(s): {', '.join(piece['road_ids'])}{more}", highlight=False
        )
    if report.isolated:
        console.print(
            f"isolated segments: {', '.join(report.isolated)}", highlight=False, soft_wrap=True
        )
