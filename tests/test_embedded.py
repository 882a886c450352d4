"""The embedded cluster: first start, reuse, recovery after a kill, and the URL override."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import psycopg
import pytest
from support import run_cli

from spatial.db import EmbeddedCluster, resolve_url
from spatial.errors import DatabaseUnavailableError
from spatial.settings import DatabaseSettings, EmbeddedSettings, Settings


def _postgis(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT postgis_lib_version()").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.slow
def test_cluster_starts_reuses_and_recovers_from_a_kill(open_tmp: Path) -> None:
    cluster = EmbeddedCluster(open_tmp / "var", EmbeddedSettings())
    assert cluster.status().initialised is False
    try:
        info = cluster.ensure_running()
        assert _postgis(info.url()).startswith("3.")
        # The platform's way in is the private Unix socket; TCP on 127.0.0.1 is offered too.
        with psycopg.connect(info.url()) as conn:
            assert conn.info.host == info.socket_dir
            assert conn.execute("SELECT inet_server_addr()").fetchone() == (None,)
        with psycopg.connect(info.url(tcp=True)) as conn:
            assert conn.execute("SELECT host(inet_server_addr())").fetchone() == ("127.0.0.1",)
        first = cluster.status()
        assert first.running and first.pid is not None
        assert (Path(info.data_dir) / "PG_VERSION").is_file()
        assert oct(Path(info.data_dir).stat().st_mode)[-3:] == "700"
        recorded = json.loads((open_tmp / "var" / "pg" / "cluster.json").read_text())
        assert recorded["port"] == info.port

        # A second call reuses the running server: same process, nothing re-created.
        again = cluster.ensure_running()
        assert again == info
        assert cluster.status().pid == first.pid

        # The server dies hard (as when its parent is killed): the next call restarts it.
        os.kill(first.pid, signal.SIGKILL)
        for _ in range(100):
            if not cluster.status().running:
                break
            time.sleep(0.05)
        assert (Path(info.data_dir) / "postmaster.pid").exists(), "a stale lock is left behind"
        revived = cluster.ensure_running()
        assert revived.data_dir == info.data_dir
        assert cluster.status().pid not in {None, first.pid}
        assert _postgis(revived.url()).startswith("3.")

        # A lock naming a process that is not postgres (a recycled pid) is cleared too.
        cluster.stop()
        lock = Path(info.data_dir) / "postmaster.pid"
        lock.write_text(f"{os.getpid()}\n{info.data_dir}\n")
        cluster.ensure_running()
        assert cluster.status().running
    finally:
        cluster.stop("immediate")
    assert cluster.status().running is False


def test_stop_when_never_started(open_tmp: Path) -> None:
    cluster = EmbeddedCluster(open_tmp / "var")
    assert cluster.stop() is False
    assert cluster.status().initialised is False


def test_url_without_start_refuses_missing_cluster(open_tmp: Path) -> None:
    settings = Settings(var_dir=open_tmp / "var")
    with pytest.raises(DatabaseUnavailableError, match="spatial db up"):
        resolve_url(settings, start=False)


def test_database_url_points_everything_elsewhere_and_starts_nothing(
    database_url: str,
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    env = {"SPATIAL_DATABASE_URL": database_url, "SPATIAL_VAR_DIR": str(var)}
    before = _postgres_data_dirs()

    up = run_cli("db", "up", **env)
    assert up.returncode == 0, up.stderr
    assert "external server" in up.stdout

    status = run_cli("db", "status", "--json", **env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["mode"] == "external"
    assert report["running"] is True
    assert report["postgis_version"].startswith("3.")
    assert report["schema_revision"] == report["schema_head"]

    down = run_cli("db", "down", **env)
    assert "not ours" in down.stdout
    # No cluster was initialised or started for this settings' var dir.
    assert not (var / "pg").exists()
    assert _postgres_data_dirs() == before
    # The server is still there (down did not touch it).
    assert _postgis(database_url).startswith("3.")
    # Resolving in-process gives exactly the configured URL.
    settings = Settings(var_dir=var, database=DatabaseSettings(url=database_url))
    assert resolve_url(settings) == database_url


def _postgres_data_dirs() -> set[str]:
    """Data directories of every postmaster running on this machine."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-D" in argv:
            found.add(argv[argv.index(b"-D") + 1].decode())
    return found


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another account")
def test_root_with_a_private_checkout_keeps_the_cluster_where_postgres_can_reach_it(
    tmp_path: Path,
) -> None:
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    cluster = EmbeddedCluster(private / "var")
    try:
        info = cluster.ensure_running()
        assert info.os_user == "postgres"
        assert info.data_dir.startswith("/var/lib/spatial/")
        assert _postgis(info.url()).startswith("3.")
        # The record stays under var/, so the cluster is found again from the checkout.
        assert EmbeddedCluster(private / "var").status().running
    finally:
        cluster.stop("immediate")
        recorded = cluster.info()
        if recorded is not None:
            shutil.rmtree(Path(recorded.data_dir).parent, ignore_errors=True)
