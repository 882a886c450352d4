"""Helpers shared by the tests (plain functions and classes; fixtures live in conftest)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyogrio
import uvicorn
from psycopg import sql
from sqlalchemy import text

from spatial import accounts, samples
from spatial.audit import Actor
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

TESTS = Actor(name="pytest")


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def create_database(server_url: str, prefix: str = "spatial_test") -> str:
    """Create an empty database with PostGIS on the test server; returns its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    """Drop a database this test session created."""
    name = urlsplit(url).path.lstrip("/")
    assert name.startswith("spatial_test"), "refusing to drop a database the tests did not make"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """A real uvicorn server on loopback, running in a thread."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                msg = "the test server did not start"
                raise RuntimeError(msg)
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        if self.thread.is_alive():  # a connection that would not end: close them all
            self.server.force_exit = True
            self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the test server did not stop"


def cli_env(**overrides: str) -> dict[str, str]:
    """The environment for a ``spatial`` subprocess, without inherited SPATIAL_* values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPATIAL_")}
    env.update(overrides)
    return env


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``spatial ARGS`` in a subprocess with a clean ``SPATIAL_*`` environment."""
    return subprocess.run(
        [sys.executable, "-m", "spatial.cli", *args],
        env=cli_env(**env),
        capture_output=True,
        text=True,
        check=False,
    )


def ingest_cadastre(
    folder: Path, settings: Settings, collection_id: str, title: str, *, public: bool = True
) -> Any:
    """The 2025 demo cadastre (a GBK Shapefile in EPSG:4546, built into ``folder``),
    ingested as ``collection_id`` keyed by DKBM (readable by everyone unless ``public`` is
    False); returns the source as GDAL reads it."""
    samples.build(folder)
    path = folder / "parcels_2025.zip"
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(
        path=path, collection_id=collection_id, title=title, key="DKBM", public=public
    )
    ingest_vector(url, source, settings, actor="pytest")
    return pyogrio.read_dataframe(f"/vsizip/{path}")


_ADMIN_KEYS: dict[str, str] = {}


def admin_key(url: str) -> str:
    """An API key of ``pytest_admin`` (the admin role) in the database at ``url``."""
    if url not in _ADMIN_KEYS:
        with engine(url) as eng, eng.begin() as conn:
            known = conn.execute(
                text("SELECT 1 FROM platform.users WHERE username = 'pytest_admin'")
            ).first()
            if known is None:
                accounts.add_user(conn, TESTS, "pytest_admin", roles=("admin",), service=True)
            _ADMIN_KEYS[url] = accounts.create_key(conn, TESTS, "pytest_admin", name="tests")
    return _ADMIN_KEYS[url]


def admin_headers(url: str) -> dict[str, str]:
    """Headers that act as ``pytest_admin``."""
    return {"Authorization": f"Bearer {admin_key(url)}"}


def wait_for_collection(client: Any, collection_id: str, *, present: bool = True) -> None:
    """Wait (10 s at most) until the API lists the collection, or no longer does."""
    deadline = time.monotonic() + 10
    while (
        collection_id in [c["id"] for c in client.get("/collections").json()["collections"]]
    ) != present:
        if time.monotonic() > deadline:
            msg = "the API did not catch up with the catalog"
            raise AssertionError(msg)
        time.sleep(0.1)


@dataclass
class Got:
    """One request a receiver got, and the status it answered."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = json.loads(self.body)["events"]
        return events


@dataclass
class Receiver:
    """A webhook receiver on loopback (``http.server`` on a thread): answers each POST with
    the next of ``statuses`` (then 200), after ``delay`` seconds, and keeps what it got."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[Got] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver, lock = self, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                with lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.got.append(Got(status, dict(self.headers.items()), body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def accepted(self) -> list[dict[str, Any]]:
        """The events of the requests answered 2xx, in the order they came."""
        return [e for g in list(self.got) if 200 <= g.status < 300 for e in g.events]


def until(
    read: Callable[[], Any], ok: Callable[[Any], bool] = bool, what: str = "the condition",
    *, seconds: float = 60.0,
) -> Any:  # fmt: skip
    """Read until ``ok`` holds of the reading (every 0.1 s, ``seconds`` at most): the
    reading. Fails saying what was awaited and the last reading: a wait with a deadline on
    a condition, never a fixed sleep."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: last seen {value!r}"
        time.sleep(0.1)
