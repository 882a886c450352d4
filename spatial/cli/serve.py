"""``spatial serve``: the HTTP API, in the foreground or detached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import typer

from spatial.cli.common import console, friendly
from spatial.db import resolve_url
from spatial.errors import ConfigurationError, DatabaseUnavailableError
from spatial.settings import Settings

_START_TIMEOUT_S = 60


def serve(
    host: str | None = typer.Option(None, help="Interface to bind [default: 127.0.0.1]."),
    port: int | None = typer.Option(None, help="TCP port [default: 8000]."),
    detach: bool = typer.Option(False, help="Run in the background; return once it answers."),
    stop: bool = typer.Option(False, help="Stop a server started with --detach."),
    workers: int = typer.Option(
        1,
        min=1,
        help="Worker processes on the one port. They share nothing that matters: the "
        "catalog, accounts, tile invalidations and live positions reach every worker "
        "through PostgreSQL LISTEN/NOTIFY. Rate limits, the in-memory tile cache, metrics "
        "and queued ingests are per worker.",
    ),
) -> None:
    """Serve the platform API (starts the embedded database on demand)."""
    _serve(host, port, detach=detach, stop=stop, workers=workers)


@friendly
def _serve(
    host: str | None, port: int | None, *, detach: bool, stop: bool, workers: int = 1
) -> None:
    settings = Settings()
    host = host or settings.server.host
    port = port or settings.server.port
    pidfile = settings.var_dir / "run" / f"api-{port}.pid"
    base = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"  # noqa: S104
    if stop:
        _stop(pidfile)
        return
    from spatial.db import migrate  # noqa: PLC0415 - keep `spatial --help` fast

    url = resolve_url(settings)
    revision, head = migrate.current(url), migrate.head()
    if revision != head:
        msg = (
            f"the database schema is at {revision or 'nothing'} but this code needs {head}; "
            "run 'spatial db migrate'"
        )
        raise DatabaseUnavailableError(msg)
    if detach:
        _detach(host, port, base, pidfile, settings, workers)
        return
    import uvicorn  # noqa: PLC0415 - heavy; only the serving path needs it

    plural = f", {workers} workers" if workers > 1 else ""
    console.print(f"serving the 3S platform on [bold]{base}/[/]{plural} (Ctrl-C stops)")
    uvicorn.run(
        "api.main:app_factory",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=True,
        workers=workers,
    )


def _alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text(encoding="utf-8").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _detach(
    host: str, port: int, base: str, pidfile: Path, settings: Settings, workers: int = 1
) -> None:
    if _alive(pidfile) and _answers(base):
        console.print(f"the platform is already serving on [bold]{base}/[/]")
        return
    if _answers(base):
        msg = f"something else already answers on {base}; choose another --port"
        raise ConfigurationError(msg)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    log = settings.var_dir / "log" / f"api-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        command = [sys.executable, "-m", "spatial.cli", "serve", "--host", host,
                   "--port", str(port), "--workers", str(workers)]  # fmt: skip
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pidfile.write_text(f"{proc.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            pidfile.unlink(missing_ok=True)
            msg = "the API server exited at start:\n" + "\n".join(tail)
            raise ConfigurationError(msg)
        if _answers(base):
            console.print(
                f"[green]the platform is serving on[/] [bold]{base}/[/] (pid {proc.pid}, log {log})"
            )
            return
        time.sleep(0.3)
    msg = f"the API server did not answer within {_START_TIMEOUT_S} s; see {log}"
    raise ConfigurationError(msg)


def _stop(pidfile: Path) -> None:
    pid = _alive(pidfile)
    if pid is None:
        console.print("no detached server is running")
        pidfile.unlink(missing_ok=True)
        return
    os.killpg(pid, signal.SIGTERM)
    for _ in range(50):
        if _alive(pidfile) is None:
            break
        time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    console.print(f"stopped the server (pid {pid})")
