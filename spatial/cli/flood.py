"""``spatial flood``: flood extents from the command line (as the ``flood-extent`` process,
:mod:`spatial.flood`), and one pass of the alarm triggers of ``layers/floods.yaml``."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from spatial.audit import Actor
from spatial.cli.common import console, friendly
from spatial.db import resolve_url
from spatial.settings import Settings

app = typer.Typer(help="Flood extents on the elevation model.", no_args_is_help=True)


def _context(url: str, settings: Settings, actor: Actor) -> tuple[Any, Any]:
    """The floods configuration and a context over the whole catalog."""
    # Imported here: the flood modules would slow `spatial --help`.
    from spatial.catalog import list_collections  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.db import engine  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.flood import config, trigger  # noqa: PLC0415 - keep `spatial --help` fast

    conf = config.load()
    with engine(url) as eng, eng.connect() as conn:
        records = {r.id: r for r in list_collections(conn)}
    return conf, trigger.SystemContext(url, settings, records, conf.gauges, actor)


async def _run(url: str, work: Any) -> Any:
    import psycopg  # noqa: PLC0415 - keep `spatial --help` fast

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await work(conn)


@app.command()
@friendly
def run(
    gauge: str = typer.Option(..., "--gauge", help="A water gauge's key (e.g. YF-SW-02)."),
    level: str = typer.Option(
        "latest", "--level", help="Metres on the DEM's datum, warning, danger or latest."
    ),
    close_roads: bool = typer.Option(False, "--close-roads", help="Close the roads it covers."),
    hours: float = typer.Option(12.0, "--hours", help="How long the closure lasts."),
    collection: str | None = typer.Option(
        None, "--collection", help="Write the polygons as this collection."
    ),
    dem: str | None = typer.Option(None, "--dem", help="The elevation collection."),
) -> None:
    """The flood extent at a gauge: its area, what it covers, the closure made."""
    from spatial.flood import process  # noqa: PLC0415 - keep `spatial --help` fast

    settings = Settings()
    url = resolve_url(settings)
    conf, ctx = _context(url, settings, Actor.local())
    number = _number(level)
    inputs: dict[str, Any] = {"gauge": gauge, "level": level if number is None else number,
                              "close_roads": close_roads, "closure_hours": hours}  # fmt: skip
    if collection:
        inputs["collection"] = collection
    if dem:
        inputs["dem"] = dem
    out = asyncio.run(_run(url, lambda conn: process.run_flood(conn, ctx, inputs, conf)))
    console.print(
        f"[green]{out['method']} method[/] at {out['level']:.2f} m, gauge {out['gauge']}: "
        f"{out['area_m2'] / 1e4:,.1f} ha in {len(out['extent']['features'])} polygons",
        highlight=False,
    )
    for layer in out["affected"]:
        total = "" if layer["total"] is None else f", {layer['total']:,.0f} {layer['measure']}"
        console.print(f"  {layer['title']}: {layer['count']:,}{total}", highlight=False)
    console.print(f"  residents: {out['population']['total']:,}", highlight=False)
    for made in out["closures"]:
        console.print(f"closure {made['id']} until {made['expires_at']}", highlight=False)
    if out["collection"]:
        console.print(f"written to collection {out['collection']}", highlight=False)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@app.command()
@friendly
def triggers() -> None:
    """Run the alarm triggers once (what the API workers do every few seconds)."""
    from spatial.flood import trigger  # noqa: PLC0415 - keep `spatial --help` fast

    settings = Settings()
    url = resolve_url(settings)
    conf, ctx = _context(url, settings, trigger.ACTOR)
    done = asyncio.run(_run(url, lambda conn: trigger.run_pending(conn, ctx, conf)))
    for outcome in done:
        console.print(outcome, highlight=False)
    console.print(f"{len(done)} alarm(s) run", highlight=False)
