"""What every ``spatial`` command shares: the consoles, the progress bar, and turning domain
errors into a clear message and exit code 1."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spatial.errors import SpatialError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


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
