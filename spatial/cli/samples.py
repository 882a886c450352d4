"""``spatial samples``: the deterministic demo city."""

from __future__ import annotations

from pathlib import Path

import typer

from spatial.cli.common import console, friendly, progress_bar
from spatial.db import resolve_url
from spatial.settings import Settings

app = typer.Typer(
    help="Build and load the demo data set (a city around Yunfu).", no_args_is_help=True
)


@app.command()
@friendly
def build(
    out: Path | None = typer.Option(None, help="Output folder [default: data-samples/]."),
    force: bool = typer.Option(False, help="Regenerate even when the files are up to date."),
) -> None:
    """Generate the demo files (deterministic: the same bytes every time)."""
    from spatial import samples  # noqa: PLC0415 - heavy (GDAL, numpy)

    target = out or Settings().samples_dir
    with progress_bar() as bar:
        task = bar.add_task("building samples", total=None)

        def step(name: str, index: int, total: int) -> None:
            bar.update(task, description=f"building {name}", completed=index, total=total)

        result = samples.build(target, force=force, on_step=step)
        bar.update(
            task, description="samples", completed=len(result.files), total=len(result.files)
        )
    verb = "built" if result.rebuilt else "up to date:"
    console.print(f"[green]{verb}[/] {len(result.files)} files in {result.out_dir}")


@app.command()
@friendly
def load(
    source: Path | None = typer.Option(None, help="Sample folder [default: data-samples/]."),
) -> None:
    """Load the demo layers into the database (unchanged files are skipped)."""
    from spatial.demo import DEMO_STEPS, DemoLayer, load_demo  # noqa: PLC0415 - heavy

    settings = Settings()
    folder = source or settings.samples_dir
    url = resolve_url(settings)
    with progress_bar() as bar:
        task = bar.add_task("loading demo layers", total=DEMO_STEPS)

        def step(item: DemoLayer, fresh: bool) -> None:
            state = "loading" if fresh else "unchanged"
            bar.update(task, description=f"{state} {item.collection_id}", advance=1)

        loaded = load_demo(url, settings, folder, step)
    if loaded:
        console.print(f"[green]loaded[/] {', '.join(loaded)}")
    else:
        console.print("demo layers already loaded and unchanged")
